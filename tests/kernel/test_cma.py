"""Longterm pins leave CMA, in a VM booted with a CMA area on node 1 (tests/run.py:
`gupctl vm --arch arm64 --cma 1536M`).

The area is where the kernel said at boot it reserved it (gupctl/cma.py);
here it must also add up to /proc/meminfo's CmaTotal and show in
/proc/pagetypeinfo's CMA pageblocks on node 1, so that a boot without CMA
fails instead of running nothing.  Then every placement.cma.* case must pass:
each checks each page's frame against the areas before and after the pin.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import check_placement

from gupctl import cma

CASES = 8  # {anon, thp} x (longterm {slow, fast} + short-term {pin, pin_fast})


def _cma_blocks(node: int) -> int:
    """/proc/pagetypeinfo's count of CMA pageblocks on `node`, every zone."""
    text = Path("/proc/pagetypeinfo").read_text()
    head = re.search(r"^Number of blocks type\s+(.*)$", text, re.MULTILINE)
    assert head, text[:500]
    column = head.group(1).split().index("CMA")
    rows = re.findall(rf"^Node {node}, zone\s+\S+\s+(.*)$", text[head.end() :], re.MULTILINE)
    return sum(int(row.split()[column]) for row in rows)


def test_node1_has_the_cma_area_booted_with() -> None:
    areas, why = cma.areas()
    assert areas, why
    on_node1 = [a for a in areas if a.node == 1]
    assert on_node1, f"no CMA area on node 1 among {areas}: boot with `gupctl vm --cma 1536M`"
    assert _cma_blocks(1) > 0


def test_cma_placement_cases_pass(gupctl, node) -> None:
    check_placement(gupctl, node, "placement.cma.*", CASES, cma.CMA)

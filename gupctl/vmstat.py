"""Pin accounting: nr_foll_pin_acquired and nr_foll_pin_released.

The kernel counts FOLL_PIN pins per 4 KiB subpage, per NUMA node, batched per
CPU (mm/vmstat.c).  Writing /proc/sys/vm/stat_refresh (root) folds the per-CPU
batches first, so reads are exact.  The counters are system-wide: anything else
that pins (io_uring, O_DIRECT, 9p/netfs reads into user buffers...) moves them
too.  A balance check is exact only on a NUMA node that holds nothing but the
test memory; gupctl's VM provides one (see gupctl/vm/qemu.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gupctl.errors import GupctlError

ACQUIRED = "nr_foll_pin_acquired"
RELEASED = "nr_foll_pin_released"
PROC_VMSTAT = Path("/proc/vmstat")
NODE_ROOT = Path("/sys/devices/system/node")
STAT_REFRESH = Path("/proc/sys/vm/stat_refresh")


def read(path: Path = PROC_VMSTAT) -> dict[str, int]:
    """All `name value` lines of a vmstat file."""
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[name] = int(value)
    return out


def refresh() -> bool:
    """Fold per-CPU counter batches into the global ones; False if not permitted."""
    try:
        STAT_REFRESH.write_text("1\n")
        return True
    except OSError:
        return False


def nodes() -> list[int]:
    """The NUMA nodes with a vmstat file, in order."""
    found = (re.fullmatch(r"node(\d+)", p.name) for p in NODE_ROOT.glob("node*"))
    return sorted(int(m.group(1)) for m in found if m)


def node_has_cpus(node: int) -> bool:
    """Whether `node` has CPUs (a memory-only node has none)."""
    try:
        return bool((NODE_ROOT / f"node{node}" / "cpulist").read_text().strip())
    except OSError:
        return False


@dataclass(frozen=True)
class PinCounters:
    """One reading of the two counters; `scope` is 'system' or 'nodeN'."""

    scope: str
    nr_foll_pin_acquired: int
    nr_foll_pin_released: int
    outstanding: int
    refreshed: bool


def snapshot(node: int | None = None, do_refresh: bool = True) -> PinCounters:
    """Read the counters system-wide, or of one NUMA node."""
    refreshed = refresh() if do_refresh else False
    if node is None:
        scope, values = "system", read(PROC_VMSTAT)
    else:
        scope, values = f"node{node}", read(NODE_ROOT / f"node{node}" / "vmstat")
    if ACQUIRED not in values:
        # Before v5.7 ("mm/gup: track FOLL_PIN pages") there is nothing to read.
        raise GupctlError(
            f"{ACQUIRED} is not in the {scope} vmstat: this kernel predates "
            "FOLL_PIN accounting (v5.7)"
        )
    acq, rel = values[ACQUIRED], values.get(RELEASED, 0)
    return PinCounters(scope, acq, rel, acq - rel, refreshed)


def snapshot_all() -> list[PinCounters]:
    """System-wide counters, then each node's (one refresh for all)."""
    refreshed = refresh()
    out = [snapshot(None, do_refresh=False)]
    out += [snapshot(n, do_refresh=False) for n in nodes()]
    return [
        PinCounters(
            c.scope, c.nr_foll_pin_acquired, c.nr_foll_pin_released, c.outstanding, refreshed
        )
        for c in out
    ]


@dataclass(frozen=True)
class Balance:
    """Counter deltas around an operation, compared with the pins it should take.

    `expected` is None where gupctl could not tell how many pins to expect
    (pages that may be the shared zero page, and no CAP_SYS_ADMIN to look):
    such a balance is never exact.
    """

    scope: str
    expected: int | None
    acquired: int
    released: int
    outstanding_before: int
    outstanding_after: int
    exact: bool

    @classmethod
    def between(cls, before: PinCounters, after: PinCounters, expected: int | None) -> Balance:
        acquired = after.nr_foll_pin_acquired - before.nr_foll_pin_acquired
        released = after.nr_foll_pin_released - before.nr_foll_pin_released
        exact = (
            expected is not None
            and acquired == expected
            and released == expected
            and after.outstanding == before.outstanding
        )
        return cls(
            before.scope, expected, acquired, released, before.outstanding, after.outstanding, exact
        )

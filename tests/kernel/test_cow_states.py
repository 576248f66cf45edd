"""cow.c's states are what they claim (selftest/cow.py), by the kernel's own word.

Before the R/O pin: /proc/self/pagemap's PM_MMAP_EXCLUSIVE and
/proc/kpagecount say who maps each page; `shared` is mapped twice and not
exclusively, the other two once and exclusively.  After it: `gupctl pins`
(GUPCTL_PAGES) sees every page pinned once, each page is exclusive, and a
shared page was unshared: the pin holds a new page, not the child's.
"""

from __future__ import annotations

import os

import pytest

from gupctl import longterm, pagemap, pins, thp
from gupctl.device import Device
from gupctl.memory import PAGE_SIZE
from gupctl.selftest import cow
from gupctl.selftest.cases import STATES, Layout
from gupctl.selftest.cow_memory import populated

pytestmark = pytest.mark.kmod  # GUPCTL_PAGES is the kmod's

DEVICE = "/dev/gup_test"


def _who_maps(addr: int, size: int) -> tuple[list[int], set[bool], set[int]]:
    """The pfns, PM_MMAP_EXCLUSIVE bits and kpagecount values of the range."""
    entries = pagemap.entries(addr, size // PAGE_SIZE)
    assert all(e.present for e in entries), "a page of the range is not present"
    pfns = [e.pfn for e in entries]
    counts = pagemap.kpagecount(sorted(set(pfns)))
    return pfns, {e.exclusive for e in entries}, {counts[p] for p in pfns}


#: Four of cow.c's layouts: a base page, a PMD-mapped THP, the smallest THP
#: size PTE-mapped (an mTHP where the kernel has them, v6.8; else the PMD
#: size), and a THP whose first page was shared with a child that has exited.
SMALLEST = min(thp.sizes())
LAYOUTS = {"anon": Layout("anon", "base"), "thp": Layout("thp", "thp", thp.pmd_size()),
           "pte_mapped_thp_smallest": Layout("pte_mapped_thp", "thp", SMALLEST, "pte_mapped_thp"),
           "partial_shared_thp": Layout("partial_shared_thp", "thp", thp.pmd_size(),
                                        "partial_shared_thp")}  # fmt: skip


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("state", STATES)
def test_state_is_what_it_claims(layout: str, state: str, node) -> None:
    memory = populated(LAYOUTS[layout], node)
    with thp.allowed([SMALLEST]), Device(DEVICE) as dev, \
            memory as (addr, size), cow.state(addr, size, state):  # fmt: skip
        before, exclusive, mapcounts = _who_maps(addr, size)
        longterm.start(dev, addr, size, write=False, fast=False)
        try:
            held = pins.query(dev, os.getpid(), addr, addr + size)
            after, exclusive_after, _ = _who_maps(addr, size)
        finally:
            longterm.stop(dev)
    shared = state == "shared"
    assert exclusive == {not shared}, f"{state}: PM_MMAP_EXCLUSIVE {exclusive}"
    assert mapcounts == {2 if shared else 1}, f"{state}: kpagecount {mapcounts}"
    assert (held.pinned, held.pins) == (size // PAGE_SIZE, size // PAGE_SIZE)
    assert exclusive_after == {True}, f"{state}: the R/O pin left a page shared"
    if shared:
        assert not set(before) & set(after), "the R/O pin kept the page the child maps"

"""cow.c's vmsplice(), io_uring and swapped-out cases (selftest/cow_*.py):
each check can fail, and each swapped layout is what it claims.

- A leak is seen: on MAP_SHARED memory, where fork() shares instead of
  copying, the vmsplice() checks must report one in both directions.
- A stale pin is seen: an io_uring fixed buffer whose mapping is replaced
  under it keeps the old pages, and the check must say the pin is not
  reliable.
- Swapped out is swapped out: by the kernel's own count of the process's
  swap entries (VmSwap in /proc/self/status), not the pagemap bit the
  layouts check themselves, and the pages read back as written.
"""

from __future__ import annotations

import mmap
import tempfile

import pytest

from gupctl import io_uring, thp
from gupctl._libc import MAP_FAILED, ffi, lib
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec
from gupctl.selftest import cow_iouring, cow_vmsplice, resources
from gupctl.selftest.cases import Layout
from gupctl.selftest.cow_memory import FILL, MAP_FIXED, populated

SIZE = 16 * PAGE_SIZE


@pytest.mark.parametrize("variant", ["in_child", "after_fork"])
def test_vmsplice_check_sees_a_leak_on_shared_memory(variant: str) -> None:
    with Mapping(MemorySpec(shared=True), SIZE) as m:
        m.fill(1)
        outcome = cow_vmsplice.run(m.addr, SIZE, variant, hugetlb=False)
    assert outcome.status == "fail" and "Leak from" in outcome.reason, outcome


def test_vmsplice_on_private_memory_passes() -> None:
    with Mapping(MemorySpec(thp=False), SIZE) as m:
        m.fill(1)
        assert cow_vmsplice.run(m.addr, SIZE, "after_fork", hugetlb=False).status == "pass"


def test_iouring_check_sees_a_stale_pin() -> None:
    with Mapping(MemorySpec(thp=False), SIZE) as m, io_uring.Ring() as ring, \
            tempfile.TemporaryFile() as file:  # fmt: skip
        m.fill(1)
        ring.register_buffer(m.addr, SIZE)
        try:
            # New pages where the buffer was: the pins still hold the old ones.
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_FIXED
            prot = mmap.PROT_READ | mmap.PROT_WRITE
            assert lib.mmap(ffi.cast("void *", m.addr), SIZE, prot, flags, -1, 0) != MAP_FAILED
            outcome = cow_iouring.write_through_pin(ring, file.fileno(), m.addr, SIZE, False)
        finally:
            ring.unregister_buffers()
    assert outcome.status == "fail" and "not reliable" in outcome.reason, outcome


SMALLEST = min(thp.sizes())
SWAPPED = [Layout("anon_swap", "base", swap=True),
           Layout("thp_swap", "thp", thp.pmd_size(), swap=True),
           Layout("pte_mapped_thp_swap", "thp", SMALLEST, "pte_mapped_thp", True),
           Layout("single_pte_of_thp_swap", "thp", SMALLEST, "single_pte_of_thp",
                  True)]  # fmt: skip


def _vm_swap_bytes() -> int:
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("VmSwap:"))
    return int(line.split()[1]) << 10


@pytest.mark.parametrize("layout", SWAPPED, ids=lambda lay: lay.name)
def test_swapped_layout_is_swapped_out(layout: Layout, node) -> None:
    with resources.scratch_swap() as no_swap, thp.allowed([SMALLEST]):
        assert not no_swap, no_swap
        before = _vm_swap_bytes()
        with populated(layout, node) as (addr, size):
            swapped = _vm_swap_bytes() - before
            back = bytes(ffi.buffer(ffi.cast("char *", addr), size))  # swapped in again
    assert swapped >= size, f"VmSwap grew by {swapped} bytes, {size} swapped out"
    assert back == bytes([FILL]) * size

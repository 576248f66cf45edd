"""The memory cow.c runs its tests on (do_run_with_base_page(), do_run_with_thp(),
run_with_hugetlb()), one layout per record.

A THP layout maps exactly one naturally aligned THP-sized VMA, so that the
largest folio a fault may take there is the size asked for (cow.c instead
enables that one size and disables the PMD size around each run), touches
its first byte and checks that the last page came with it, as cow.c does,
and then reshapes it: PTE-mapped, one PTE left, half mremap()ed away, or
the first page shared with a child that has exited.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from gupctl import pagemap, process
from gupctl._libc import MAP_FAILED, ffi, lib
from gupctl.errors import MappingError
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec
from gupctl.selftest.cases import Layout

MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
PROT_NONE = 0  # not in Python's mmap module


class NotPopulated(Exception):
    """No THP of the size came when the memory was touched: cow.c's skip."""


@contextmanager
def populated(layout: Layout, node: int | None) -> Iterator[tuple[int, int]]:
    """(address, length) of `layout`'s memory, written with 1s and reshaped."""
    if layout.kind != "thp":
        spec = MemorySpec(thp=False, numa_node=node) if layout.kind == "base" else \
            MemorySpec(hugetlb=True, hugetlb_size=layout.size, numa_node=node)  # fmt: skip
        with Mapping(spec, layout.size) as m:
            m.fill(1)
            yield m.addr, layout.size
        return
    with ExitStack() as unmap:
        mem = _aligned(layout.size)
        try:
            length = _reshape(layout, mem, unmap)
        except BaseException:
            lib.munmap(ffi.cast("void *", mem), layout.size)
            raise
        # After a partial mremap() only the lower half is still at `mem`: the
        # hole above it may hold another mapping by the end.
        moved = layout.run == "partial_mremap_thp"
        _unmap_later(mem, length if moved else layout.size, unmap)
        yield mem, length


def _call(ret: int, what: str) -> None:
    if ret != 0:
        raise MappingError(what, ffi.errno, "cow layout")


def _map(size: int, prot: int) -> int:
    ptr = lib.mmap(ffi.NULL, size, prot, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if ptr == MAP_FAILED:
        raise MappingError(f"mmap of {size} bytes", ffi.errno, "cow layout")
    return int(ffi.cast("uintptr_t", ptr))


def _unmap_later(addr: int, size: int, unmap: ExitStack) -> None:
    unmap.callback(lib.munmap, ffi.cast("void *", addr), size)


def _aligned(size: int) -> int:
    """A THP of `size` at a `size`-aligned address, alone in its VMA."""
    raw = _map(2 * size, mmap.PROT_READ | mmap.PROT_WRITE)
    mem = (raw + size) & ~(size - 1)
    # Only [mem, mem + size) stays mapped, and only it is unmapped at the end:
    # the trimmed address space may hold someone else's mapping by then.
    for start, end in ((raw, mem), (mem + size, raw + 2 * size)):
        if end > start:
            _call(lib.munmap(ffi.cast("void *", start), end - start), "munmap")
    try:
        _populate(mem, size)
    except BaseException:
        lib.munmap(ffi.cast("void *", mem), size)
        raise
    return mem


def _populate(mem: int, size: int) -> None:
    """Ask for a THP at `mem`, touch its first byte, check that its last page
    came with it (cow.c's test), and write it all."""
    _call(lib.madvise(ffi.cast("void *", mem), size, mmap.MADV_HUGEPAGE), "MADV_HUGEPAGE")
    ffi.cast("char *", mem)[0] = b"\x01"
    if not pagemap.entries(mem + size - PAGE_SIZE, 1, require_pfns=False)[0].present:
        raise NotPopulated(f"did not get a {size >> 10} kB THP populated")
    lib.memset(ffi.cast("void *", mem), 1, size)


def _reshape(layout: Layout, mem: int, unmap: ExitStack) -> int:
    """do_run_with_thp()'s switch: reshape the THP at `mem`; the length to test."""
    size = layout.size
    rest = ffi.cast("void *", mem + PAGE_SIZE)
    if layout.run == "pte_mapped_thp":  # a page R/O and back: the PMD is split
        _call(lib.mprotect(rest, PAGE_SIZE, mmap.PROT_READ), "mprotect")
        _call(lib.mprotect(rest, PAGE_SIZE, mmap.PROT_READ | mmap.PROT_WRITE), "mprotect")
    elif layout.run == "single_pte_of_thp":
        _call(lib.madvise(rest, size - PAGE_SIZE, mmap.MADV_DONTNEED), "MADV_DONTNEED")
        return PAGE_SIZE
    elif layout.run == "partial_mremap_thp":
        half = size // 2
        target = _map(half, PROT_NONE)
        _unmap_later(target, half, unmap)
        moved = lib.mremap(ffi.cast("void *", mem + half), half, half,
                           MREMAP_MAYMOVE | MREMAP_FIXED, ffi.cast("void *", target))  # fmt: skip
        if int(ffi.cast("uintptr_t", moved)) != target:
            raise MappingError("mremap", ffi.errno, "cow layout")
        return half
    elif layout.run == "partial_shared_thp":  # the first page shared with a child, gone
        _call(lib.madvise(rest, size - PAGE_SIZE, mmap.MADV_DONTFORK), "MADV_DONTFORK")
        pid = process.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        _call(lib.madvise(rest, size - PAGE_SIZE, mmap.MADV_DOFORK), "MADV_DOFORK")
    return size

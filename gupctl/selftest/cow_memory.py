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

import errno
import mmap
import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from gupctl import pagemap, process
from gupctl._libc import MAP_FAILED, ffi, lib
from gupctl.errors import MappingError
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec
from gupctl.selftest.cases import NON_ANON, Layout

MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
FILL, WRITE = 0x01, 0xFF  # cow.c: memset(mem, 1) to populate, memset(mem, 0xff) to modify
# Not in Python's mmap module; the same on x86_64, arm64, ppc64 and s390x.
MADV_PAGEOUT, MAP_FIXED = 21, 0x10
MFD_HUGETLB, MFD_HUGE_SHIFT = 0x4, 26
USE_ZERO_PAGE = "/sys/kernel/mm/transparent_hugepage/use_zero_page"
PROT_NONE = 0  # not in Python's mmap module


class NotPopulated(Exception):
    """No THP of the size came when the memory was touched: cow.c's skip."""


@contextmanager
def populated(layout: Layout, node: int | None) -> Iterator[tuple[int, int]]:
    """(address, length) of `layout`'s memory: anonymous memory written with 1s
    and reshaped, other memory mapped private and read."""
    if layout.kind in NON_ANON:
        with _non_anon(layout) as found:
            yield found
        return
    if layout.kind != "thp":
        spec = MemorySpec(thp=False, numa_node=node) if layout.kind == "base" else \
            MemorySpec(hugetlb=True, hugetlb_size=layout.size, numa_node=node)  # fmt: skip
        with Mapping(spec, layout.size) as m:
            m.fill(FILL)
            if layout.kind == "hugetlb":
                _second_huge_page(spec, layout.size)
            if layout.swap:
                _swap_out(m.addr, layout.size)
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
        if layout.swap:
            _swap_out(mem, length)
        yield mem, length


@contextmanager
def _non_anon(layout: Layout) -> Iterator[tuple[int, int]]:
    """run_with_zeropage() and its kin: a private mapping populated by a read."""
    size = layout.size
    with ExitStack() as stack:
        fd = -1
        if layout.kind in ("memfd", "memfd_hugetlb", "tmpfile"):
            fd = _backing_file(layout, stack)
        if layout.kind == "huge_zeropage":
            if Path(USE_ZERO_PAGE).read_text().strip() != "1":
                raise NotPopulated("Huge zeropage not enabled")
            mem = _aligned_unpopulated(size, stack)
        else:
            flags = mmap.MAP_PRIVATE | (mmap.MAP_ANONYMOUS if fd < 0 else 0)
            ptr = lib.mmap(ffi.NULL, size, mmap.PROT_READ | mmap.PROT_WRITE, flags, fd, 0)
            if ptr == MAP_FAILED:
                raise NotPopulated(f"mmap: {os.strerror(ffi.errno)} (need more free huge pages?)")
            stack.callback(lib.munmap, ptr, size)
            mem = int(ffi.cast("uintptr_t", ptr))
        _ = ffi.cast("volatile char *", mem)[0]  # populate_page_checked(): a read
        if layout.kind == "huge_zeropage" and not pagemap.entries(
                mem + PAGE_SIZE, 1, require_pfns=False)[0].present:  # fmt: skip
            raise NotPopulated("did not get THPs populated")
        yield mem, size


def _backing_file(layout: Layout, stack: ExitStack) -> int:
    """A file of one page (or huge page) of zeroes, allocated (fallocate())."""
    if layout.kind == "tmpfile":
        fd = stack.enter_context(tempfile.TemporaryFile()).fileno()  # noqa: SIM115
    else:
        huge = MFD_HUGETLB | (layout.size.bit_length() - 1) << MFD_HUGE_SHIFT
        fd = os.memfd_create("gupctl-cow", huge if layout.kind == "memfd_hugetlb" else 0)
        stack.callback(os.close, fd)
    try:
        os.posix_fallocate(fd, 0, layout.size)
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP:
            raise NotPopulated("fallocate() not supported by filesystem") from None
        if layout.kind == "memfd_hugetlb":
            raise NotPopulated(f"fallocate(): {e.strerror}: need more free huge pages") from None
        raise
    return fd


def _aligned_unpopulated(size: int, stack: ExitStack) -> int:
    """`size` bytes at a `size`-aligned address, alone in their VMA, asked to be THP."""
    mem = _trimmed(size)
    _unmap_later(mem, size, stack)
    _call(lib.madvise(ffi.cast("void *", mem), size, mmap.MADV_HUGEPAGE), "MADV_HUGEPAGE")
    return mem


def protect(addr: int, size: int, prot: int) -> None:
    """mprotect(), a MappingError if it fails."""
    _call(lib.mprotect(ffi.cast("void *", addr), size, prot), "mprotect")


def clear_softdirty() -> None:
    """cow.c's clear_softdirty(): the next mprotect(RW) cannot map the pages
    writable at once, so that the next write faults."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("4")


def fork_keeper() -> int:
    """A child that keeps what fork() gave it (the pages COW-shared) until
    end() kills it."""
    pid = process.fork()
    if pid == 0:
        try:
            while True:
                signal.pause()
        finally:
            os._exit(0)  # never back into the caller's code
    return pid


def end(pid: int) -> None:
    """Kill and reap a child of fork_keeper()."""
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def differing_pages(a: int, b: int, size: int) -> int:
    """How many of the pages at addresses `a` and `b` differ, compared in C:
    a 1 GB huge page copied into Python twice would need 2 GB more."""
    pa, pb = ffi.cast("char *", a), ffi.cast("char *", b)
    if lib.memcmp(pa, pb, size) == 0:
        return 0
    return sum(lib.memcmp(pa + off, pb + off, min(PAGE_SIZE, size - off)) != 0
               for off in range(0, size, PAGE_SIZE))  # fmt: skip


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


def _trimmed(size: int) -> int:
    """`size` bytes mapped at a `size`-aligned address, alone in their VMA.
    Only they are unmapped at the end: the trimmed address space around them
    may hold someone else's mapping by then."""
    raw = _map(2 * size, mmap.PROT_READ | mmap.PROT_WRITE)
    mem = (raw + size) & ~(size - 1)
    for start, end in ((raw, mem), (mem + size, raw + 2 * size)):
        if end > start:
            _call(lib.munmap(ffi.cast("void *", start), end - start), "munmap")
    return mem


def _aligned(size: int) -> int:
    """A THP of `size` at a `size`-aligned address, alone in its VMA."""
    mem = _trimmed(size)
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
    ffi.cast("char *", mem)[0] = bytes([FILL])
    if not pagemap.entries(mem + size - PAGE_SIZE, 1, require_pfns=False)[0].present:
        raise NotPopulated(f"did not get a {size >> 10} kB THP populated")
    lib.memset(ffi.cast("void *", mem), FILL, size)


def _second_huge_page(spec: MemorySpec, size: int) -> None:
    """cow.c's run_with_hugetlb(): a second huge page must be free for a COW
    copy or an unshare, or the fault would SIGBUS; it maps one and lets it go."""
    try:
        with Mapping(spec, size):
            pass
    except MappingError as e:
        raise NotPopulated(f"need more free huge pages: {e}") from None


def _swap_out(mem: int, size: int) -> None:
    """MADV_PAGEOUT, and cow.c's check that every page went (range_is_swapped())."""
    lib.madvise(ffi.cast("void *", mem), size, MADV_PAGEOUT)  # its result ignored, as cow.c
    if not all(e.swapped for e in pagemap.entries(mem, size // PAGE_SIZE, require_pfns=False)):
        raise NotPopulated("MADV_PAGEOUT did not work, is swap enabled?")  # cow.c's words


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

"""cow.c's io_uring fixed-buffer tests (do_test_iouring()): a R/W longterm
pin must keep seeing the pages the mapping writes.

The pages are registered as a fixed buffer (FOLL_WRITE | FOLL_PIN |
FOLL_LONGTERM).  Then either they are mapped R/O and back with softdirty
cleared in between (`ro`: the next write faults), or a child is forked and
kept (`fork`: a pinned page must not be COW-shared with it).  The mapping is
written, IORING_OP_WRITE_FIXED writes the buffer, as its pins see it, to a
temporary file, and the file must read what the mapping reads.
"""

from __future__ import annotations

import mmap
import os
import tempfile

from gupctl import io_uring
from gupctl._libc import ffi, lib
from gupctl.errors import IoUringError
from gupctl.memory import PAGE_SIZE
from gupctl.selftest.cow_memory import (
    WRITE,
    clear_softdirty,
    differing_pages,
    end,
    fork_keeper,
    protect,
)
from gupctl.selftest.outcome import Outcome


def run(addr: int, size: int, fork: bool) -> Outcome:
    """The test on [addr, addr + size), written with 1s; `fork` or R/O-mapped."""
    with tempfile.TemporaryFile() as file:
        try:
            ring = io_uring.Ring()
        except IoUringError as e:  # cow.c: no kernel support is a skip
            return Outcome("skip", f"io_uring_queue_init() failed: {e}")
        with ring:
            try:
                ring.register_buffer(addr, size)
            except IoUringError as e:  # cow.c: no support or no memlock: a skip
                return Outcome("skip", f"io_uring_register_buffers() failed: {e}")
            try:
                return write_through_pin(ring, file.fileno(), addr, size, fork)
            finally:
                ring.unregister_buffers()


def write_through_pin(ring: io_uring.Ring, fd: int, addr: int, size: int,
                      fork: bool) -> Outcome:  # fmt: skip
    """The check, with [addr, addr + size) registered in `ring`: R/O-map it
    and back (or fork() a child that keeps it), write it, write the buffer
    through its pins to file `fd`, and compare."""
    child = fork_keeper() if fork else None
    try:
        if not fork:
            protect(addr, size, mmap.PROT_READ)
            clear_softdirty()
            protect(addr, size, mmap.PROT_READ | mmap.PROT_WRITE)
        lib.memset(ffi.cast("void *", addr), WRITE, size)
        written = ring.write_fixed(fd, addr, size)
    finally:
        if child:
            end(child)
    if written != size:
        return Outcome("fail", f"write_fixed failed: {_result(written)} of {size} bytes")
    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as seen:  # the file, compared in place
        ptr = ffi.from_buffer(seen)
        try:
            stale = differing_pages(int(ffi.cast("uintptr_t", ptr)), addr, size)
        finally:
            ffi.release(ptr)
    if stale:  # cow.c's words, spelt right
        return Outcome("fail", f"Longterm R/W pin is not reliable: {stale} of "
                       f"{size // PAGE_SIZE} pages stale")  # fmt: skip
    return Outcome("pass")


def _result(res: int) -> str:
    return os.strerror(-res) if res < 0 else str(res)

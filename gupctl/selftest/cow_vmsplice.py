"""cow.c's vmsplice() tests: a reference GUP takes (vmsplice() into a pipe,
R/O, no pin) must not let one side of a fork() see the other's later writes.

- `in_child` (CVE-2020-29374): the child vmsplice()s the shared pages and
  unmaps them; the parent writes; the pipe must still hold the old data.
  `in_child_mprotect` adds mprotect(R) and mprotect(RW) before the write, so
  that an optimisation mapping the pages writable at once is caught.
- `before_fork` and `after_fork`: the parent vmsplice()s (before or after
  fork()) and unmaps; the child writes; the pipe must hold the old data.

A pipe holds 16 pages by default, so vmsplice() takes what fits, as in
cow.c, and only that much is compared.  On hugetlb a leak is cow.c's
expected failure (XFAIL: "harder to fix and nobody really cares").
"""

from __future__ import annotations

import fcntl
import mmap
import os
from collections.abc import Callable

from gupctl import process
from gupctl._libc import MAP_FAILED, ffi, lib
from gupctl.errors import MappingError
from gupctl.selftest.cow_memory import MAP_FIXED, WRITE, protect
from gupctl.selftest.outcome import Outcome

RW = mmap.PROT_READ | mmap.PROT_WRITE
F_GETPIPE_SZ = 1032  # fcntl's from Python 3.10 on; gupctl runs on 3.9


def run(addr: int, size: int, variant: str, hugetlb: bool) -> Outcome:
    """The vmsplice() test `variant` on [addr, addr + size), written with 1s."""
    if variant.startswith("in_child"):
        leaked = _in_child(addr, size, variant.endswith("_mprotect"))
        where = "Leak from parent into child"
    else:
        leaked = _in_parent(addr, size, variant == "before_fork")
        where = "Leak from child into parent"
    if leaked is None:
        return Outcome("pass")
    if leaked and hugetlb:
        return Outcome("xfail", f"{where}: expected on hugetlb (cow.c)")
    return Outcome("fail", where if leaked else "the forked child failed before its check")


class _Pipes:
    """cow.c's comm_pipes: each side says it is ready with one byte.  After
    fork() each side keeps only its own ends, so that a side that died
    reads as EOF instead of a wait for ever."""

    def __init__(self) -> None:
        self.child_ready = os.pipe()
        self.parent_ready = os.pipe()
        self.open = {*self.child_ready, *self.parent_ready}

    def keep(self, child: bool) -> None:
        """Close the ends of the other side of the fork()."""
        mine = (self.child_ready[1], self.parent_ready[0]) if child else (
            self.child_ready[0], self.parent_ready[1])  # fmt: skip
        for fd in self.open - set(mine):
            os.close(fd)
        self.open = set(mine)

    def say(self, child: bool) -> None:
        os.write((self.child_ready if child else self.parent_ready)[1], b"0")

    def wait(self, for_child: bool) -> None:
        if os.read((self.child_ready if for_child else self.parent_ready)[0], 1) != b"0":
            raise _Gone

    def close(self) -> None:
        for fd in self.open:
            os.close(fd)
        self.open = set()


class _Gone(Exception):
    """The other side of the fork() ended before it said it was ready."""


def _head(addr: int, size: int, pipe_w: int) -> bytes:
    """The bytes at `addr` that vmsplice() can put in the pipe at most (its
    capacity): all that is compared, and all worth copying of a 1 GB page."""
    capacity = fcntl.fcntl(pipe_w, F_GETPIPE_SZ)
    return bytes(ffi.buffer(ffi.cast("char *", addr), min(size, capacity)))


def _splice(addr: int, size: int, pipe_w: int) -> int:
    iov = ffi.new("struct iovec *", {"iov_base": ffi.cast("void *", addr), "iov_len": size})
    transferred = lib.vmsplice(pipe_w, iov, 1, 0)
    if transferred <= 0:
        raise OSError(ffi.errno, f"vmsplice(): {os.strerror(ffi.errno)}")
    return int(transferred)


def _drain(pipe_r: int, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = os.read(pipe_r, n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _in_child(addr: int, size: int, mprotect: bool) -> bool | None:
    """do_test_cow_in_parent() with child_vmsplice_memcmp_fn(): True for a
    leak, False for the child's failure, None when the pipe kept the old data."""
    pipes = _Pipes()
    try:

        def child() -> int:
            r, w = os.pipe()
            old = _head(addr, size, w)
            transferred = _splice(addr, size, w)
            if lib.munmap(ffi.cast("void *", addr), size) != 0:
                return 2
            pipes.say(child=True)
            pipes.wait(for_child=False)
            return 0 if _drain(r, transferred) == old[:transferred] else 1

        pid = _fork(child, pipes)
        try:
            pipes.wait(for_child=True)
            if mprotect:
                protect(addr, size, mmap.PROT_READ)
                protect(addr, size, RW)
            lib.memset(ffi.cast("void *", addr), WRITE, size)
            pipes.say(child=False)
        except _Gone:
            pass  # the child failed before its vmsplice() was done: its status says so
        finally:
            pipes.close()
            status = os.waitpid(pid, 0)[1]
    finally:
        pipes.close()
    code = os.waitstatus_to_exitcode(status)
    return None if code == 0 else code == 1


def _in_parent(addr: int, size: int, before_fork: bool) -> bool | None:
    """do_test_vmsplice_in_parent(): True for a leak, False for the child's
    failure, None when the pipe kept the old data."""
    pipes = _Pipes()
    r, w = os.pipe()
    old = _head(addr, size, w)
    try:
        transferred = _splice(addr, size, w) if before_fork else 0

        def child() -> int:
            pipes.say(child=True)
            pipes.wait(for_child=False)
            lib.memset(ffi.cast("void *", addr), WRITE, size)  # the child's write
            return 0

        pid = _fork(child, pipes)
        try:
            if not before_fork:
                transferred = _splice(addr, size, w)
            pipes.wait(for_child=True)
            _unmap_in_place(addr, size)
            pipes.say(child=False)
        finally:
            pipes.close()  # on an error, the child reads EOF and leaves unwritten
            status = os.waitpid(pid, 0)[1]
        if os.waitstatus_to_exitcode(status) != 0:
            return False
        return None if _drain(r, transferred) == old[:transferred] else True
    finally:
        pipes.close()
        os.close(r)
        os.close(w)


def _fork(child: Callable[[], int], pipes: _Pipes) -> int:
    pid = process.fork()
    if pid == 0:
        code = 3
        try:
            pipes.keep(child=True)
            code = child()
        finally:
            os._exit(code)  # never back into the caller's code
    pipes.keep(child=False)
    return pid


def _unmap_in_place(addr: int, size: int) -> None:
    """cow.c's munmap() of the parent's pages, as a PROT_NONE mapping over
    them: the pages leave the page tables all the same, and the range stays
    reserved until the layout's owner unmaps it (a real munmap() would let a
    later mapping of someone else's land where that unmap falls)."""
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_FIXED
    if lib.mmap(ffi.cast("void *", addr), size, 0, flags, -1, 0) == MAP_FAILED:
        raise MappingError("mmap(MAP_FIXED)", ffi.errno, "cow vmsplice")

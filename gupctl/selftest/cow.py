"""cow.c's R/O longterm pin tests (do_test_ro_pin()), as cow.c takes them.

The pages are written first (populated, exclusive).  Then one of cow.c's
states is made:

- `shared`: a fork()ed child still maps them (COW-shared, R/O in both);
- `previously_shared`: the child has exited, so they are mapped R/O but by
  this process alone, and not marked exclusive;
- `ro_exclusive`: mprotect(PROT_READ), clear_refs softdirty (so that the
  next mprotect() cannot map them R/W again at once), mprotect(RW).

An R/O longterm pin must then unshare what needs it, so that a write through
the mapping lands where the pin sees it: PIN_LONGTERM_TEST_READ must read
what the mapping reads.  A kernel that pins the shared page and lets the
write fault copy it is the bug these tests exist for.
"""

from __future__ import annotations

import errno
import mmap
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from gupctl import longterm, process
from gupctl._libc import ffi, lib
from gupctl.device import Device
from gupctl.errors import GupctlError, MappingError
from gupctl.memory import PAGE_SIZE, MemorySpec
from gupctl.release import version
from gupctl.selftest.cases import NON_ANON, Case, Layout
from gupctl.selftest.cow_memory import NotPopulated, populated
from gupctl.selftest.outcome import Env, Outcome, skip_if_no_hugepages

STATES = ("shared", "previously_shared", "ro_exclusive")
#: Why cow.c's non-anonymous R/O pins are not run before v6.2: cow.c itself
#: is not in those trees, and what it tests came with the commit it names.
UNRELIABLE_BEFORE_6_2 = ("R/O longterm pins of pages a private mapping shares without fork() "
                         "are reliable from v6.2 (84209e87c696, \"mm/gup: reliable R/O long-term "
                         "pinning in COW mappings\"); this kernel predates it, and upstream's "
                         "cow.c with it")  # fmt: skip
FILL, WRITE = 0x01, 0xFF  # cow.c: memset(mem, 1) to populate, memset(mem, 0xff) to modify
CLEAR_REFS = "/proc/self/clear_refs"


@contextmanager
def state(addr: int, size: int, name: str) -> Iterator[None]:
    """The pages of [addr, addr + size), written already, in cow.c's state
    `name` for the block; a sharing child is gone when the block ends."""
    child = None
    try:
        if name in ("shared", "previously_shared"):
            child = _fork_sharer()
            if name == "previously_shared":
                _end(child)  # cow.c: the child _exit()s, the parent wait()s
                child = None
        elif name == "ro_exclusive":
            _protect(addr, size, mmap.PROT_READ)
            with open(CLEAR_REFS, "w") as f:
                f.write("4")  # clear_softdirty()
            _protect(addr, size, mmap.PROT_READ | mmap.PROT_WRITE)
        elif name != "private":  # RO_PIN_TEST: as mapped
            raise ValueError(f"no cow.c state {name!r}")
        yield
    finally:
        if child:
            _end(child)


def run(dev: Device, case: Case, env: Env) -> Outcome:
    """do_test_ro_pin() on the case's layout: pin R/O in the state, write
    through the mapping, read through the pin, compare."""
    p = case.params
    layout: Layout = p["layout"]  # type: ignore[assignment]
    if layout.kind in NON_ANON and version(env.release)[:2] < (6, 2):
        return Outcome("skip", UNRELIABLE_BEFORE_6_2)
    try:
        with populated(layout, env.node) as (addr, size), state(addr, size, str(p["state"])):
            return _ro_pin(dev, addr, size, bool(p["fast"]))
    except NotPopulated as e:
        return Outcome("skip", str(e))  # as cow.c skips
    except MappingError as e:
        if layout.kind != "hugetlb":
            raise
        return skip_if_no_hugepages(e, MemorySpec(hugetlb=True, hugetlb_size=layout.size),
                                    layout.size)  # fmt: skip


def _ro_pin(dev: Device, addr: int, size: int, fast: bool) -> Outcome:
    try:
        longterm.start(dev, addr, size, write=False, fast=fast)
    except GupctlError as e:
        if e.errno == errno.EINVAL:  # cow.c: a skip
            return Outcome("skip", f"PIN_LONGTERM_TEST_START: {os.strerror(e.errno)}")
        raise
    try:
        lib.memset(ffi.cast("void *", addr), WRITE, size)
        seen = longterm.read(dev, size)
    finally:
        longterm.stop(dev)
    now = bytes(ffi.buffer(ffi.cast("char *", addr), size))
    if seen != now:
        stale = sum(seen[i] != now[i] for i in range(0, size, PAGE_SIZE))
        return Outcome("fail", f"longterm R/O pin is not reliable: the pin sees stale data "
                       f"in {stale} of {size // PAGE_SIZE} pages")  # fmt: skip
    return Outcome("pass")


def _protect(addr: int, size: int, prot: int) -> None:
    if lib.mprotect(ffi.cast("void *", addr), size, prot) != 0:
        raise MappingError("mprotect", ffi.errno, "cow state")


def _fork_sharer() -> int:
    """A child that keeps the parent's pages COW-shared until it is killed."""
    pid = process.fork()
    if pid == 0:
        try:
            while True:
                signal.pause()
        finally:
            os._exit(0)  # never back into the caller's code
    return pid


def _end(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)

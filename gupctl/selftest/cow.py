"""cow.c's tests with GUP in them, on its layouts (cow_memory.py): the R/O
longterm pin tests (do_test_ro_pin()) here, as cow.c takes them; vmsplice()
and io_uring's in cow_vmsplice.py and cow_iouring.py.

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
from collections.abc import Iterator
from contextlib import contextmanager

from gupctl import longterm, vmstat
from gupctl._libc import ffi, lib
from gupctl.device import Device
from gupctl.errors import GupctlError, MappingError
from gupctl.memory import PAGE_SIZE, MemorySpec
from gupctl.release import version
from gupctl.selftest import cow_iouring, cow_vmsplice
from gupctl.selftest.cases import NON_ANON, Case, Layout
from gupctl.selftest.cow_memory import (
    WRITE,
    NotPopulated,
    clear_softdirty,
    differing_pages,
    end,
    fork_keeper,
    populated,
    protect,
)
from gupctl.selftest.outcome import Env, Outcome, judged_pins, skip_if_no_hugepages

#: Why cow.c's non-anonymous R/O pins are not run before v6.2: cow.c itself
#: is not in those trees, and what it tests came with the commit it names.
UNRELIABLE_BEFORE_6_2 = ("R/O longterm pins of pages a private mapping shares without fork() "
                         "are reliable from v6.2 (84209e87c696, \"mm/gup: reliable R/O long-term "
                         "pinning in COW mappings\"); this kernel predates it, and upstream's "
                         "cow.c with it")  # fmt: skip


@contextmanager
def state(addr: int, size: int, name: str) -> Iterator[None]:
    """The pages of [addr, addr + size), written already, in cow.c's state
    `name` for the block; a sharing child is gone when the block ends."""
    child = None
    try:
        if name in ("shared", "previously_shared"):
            child = fork_keeper()
            if name == "previously_shared":
                end(child)  # cow.c: the child _exit()s, the parent wait()s
                child = None
        elif name == "ro_exclusive":
            protect(addr, size, mmap.PROT_READ)
            clear_softdirty()
            protect(addr, size, mmap.PROT_READ | mmap.PROT_WRITE)
        elif name != "private":  # RO_PIN_TEST: as mapped
            raise ValueError(f"no cow.c state {name!r}")
        yield
    finally:
        if child:
            end(child)


def run(dev: Device, case: Case, env: Env) -> Outcome:
    """One of cow.c's tests (`test`: ro_pin, vmsplice or iouring) on the
    case's layout, populated as cow.c populates it."""
    p = case.params
    layout: Layout = p["layout"]  # type: ignore[assignment]
    if layout.kind in NON_ANON and version(env.release)[:2] < (6, 2):
        return Outcome("skip", UNRELIABLE_BEFORE_6_2)
    # vmsplice() takes references, not pins: its cases count nothing.
    counted = env.exact_counts and p["test"] != "vmsplice"
    before = vmstat.snapshot(env.node) if counted else None
    try:
        with populated(layout, env.node) as (addr, size):
            if p["test"] == "vmsplice":
                return cow_vmsplice.run(addr, size, str(p["variant"]), layout.kind == "hugetlb")
            if p["test"] == "iouring":
                outcome = cow_iouring.run(addr, size, fork=p["variant"] == "fork")
            else:
                with state(addr, size, str(p["state"])):
                    outcome = _ro_pin(dev, addr, size, bool(p["fast"]))
        if outcome.status != "pass" or before is None:
            return outcome
        return judged_pins(before, env, size // PAGE_SIZE)
    except NotPopulated as e:
        why = f" ({env.no_swap})" if layout.swap and env.no_swap else ""
        return Outcome("skip", f"{e}{why}")  # as cow.c skips
    except MappingError as e:
        if layout.kind != "hugetlb":
            raise
        return skip_if_no_hugepages(e, MemorySpec(hugetlb=True, hugetlb_size=layout.size),
                                    layout.size, env.node)  # fmt: skip


def _ro_pin(dev: Device, addr: int, size: int, fast: bool) -> Outcome:
    buf = ffi.new("char[]", size)  # before the pin: nothing can fail between it and stop()
    try:
        longterm.start(dev, addr, size, write=False, fast=fast)
    except GupctlError as e:
        if e.errno == errno.EINVAL:  # cow.c: a skip
            return Outcome("skip", f"PIN_LONGTERM_TEST_START: {os.strerror(e.errno)}")
        raise
    try:
        lib.memset(ffi.cast("void *", addr), WRITE, size)
        longterm.read_into(dev, buf)
    finally:
        longterm.stop(dev)
    stale = differing_pages(int(ffi.cast("uintptr_t", buf)), addr, size)
    if stale:
        return Outcome("fail", f"longterm R/O pin is not reliable: the pin sees stale data "
                       f"in {stale} of {size // PAGE_SIZE} pages")  # fmt: skip
    return Outcome("pass")

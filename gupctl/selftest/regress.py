"""Regression cases for known pin bugs, named `regress.<commit>.<what>` after the
upstream commit that fixed each: a kernel without the fix fails the case.

- aa6f8b2593b5 ("mm/gup: stop leaking pinned pages in low memory
  conditions"): when a FOLL_LONGTERM pin must migrate pages out of
  ZONE_MOVABLE and cannot, the pins already taken must be dropped.  That
  commit fixed the allocation failure in check_and_migrate_movable_pages();
  its migration failure is the same function's other way out, and the one
  userspace can force: a pipe holds a reference to one page (vmsplice()),
  which no migration can account for.  So the case guards the contract the
  commit restored, not its exact line; every pin taken
  must be released (the node's counters, and no pin left on any page:
  GUPCTL_PAGES, so gupctl's kmod), and a pin that succeeds must not leave a
  page in ZONE_MOVABLE.  Only where a ZONE_MOVABLE exists.
- c8070b787519 ("mm: Don't pin ZERO_PAGE in pin_user_pages()", v6.5;
  Debian's 6.1 has it from 6.1.130): a read-only longterm pin of
  never-touched anonymous memory gets the shared zero page, which must not be
  pinned, or a few million pins would overflow its refcount.  Checked by the
  system's nr_foll_pin_acquired over 3,200 pins of it.  With gupctl's kmod
  only: the in-kernel gup_test WARNs on a page it finds unpinned.
- c77369b437f9 ("mm/gup_test: start/stop/read functionality for PIN LONGTERM
  test") kept the longterm pins in one global state for every open file.
  Its fix, "mm/gup_test: keep longterm pin state per file" (2026, Fixes:
  c77369b437f9; its own upstream id could not be read here), moves it into
  each file: two files can each hold pins, and one file's STOP can no longer
  race another's release() on the same pages (a double free).  Two cases:
  the isolation (a second file's START must not be refused), and STOP on one
  file racing the close of another that holds pins, run only where the
  state is per file (on the others the race is the bug, and may corrupt the
  kernel's heap).
- e8ae6fd67021 (gup_test: PIN_LONGTERM_TEST_START refuses an `addr + size`
  that wraps): refused, nothing pinned.  Before it, GUP refused such a
  range anyway (EFAULT); either is a pass, a pin is not.
"""

from __future__ import annotations

import errno
import os
import threading

from gupctl import abi, longterm, pagemap, pins, vmstat
from gupctl._libc import ffi, lib
from gupctl.device import Device
from gupctl.errors import DeviceError
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec
from gupctl.selftest.cases import Case
from gupctl.selftest.outcome import Env, Outcome
from gupctl.selftest.placement import MOVABLE, frame_zones, movable_node, short_term_pin

_SIZE = 64 * PAGE_SIZE
_REPEATS = 50  # of the zero page case: 3,200 pins of it
_RACES = 50  # closes racing STOP


def run(dev: Device, case: Case, env: Env) -> Outcome:
    """One regression case, by the commit it guards."""
    commit = case.name.split(".")[1]
    what = case.name.split(".")[2]
    return {"aa6f8b2593b5": _migration_fails, "c8070b787519": _zero_page,
            "c77369b437f9": _per_file if what == "longterm_state_per_file" else _stop_vs_close,
            "e8ae6fd67021": _wrapped}[commit](dev, env)  # fmt: skip


def _pins_of(before: vmstat.PinCounters, env: Env) -> vmstat.Balance:
    return vmstat.Balance.between(before, vmstat.snapshot(env.node), None)


def _migration_fails(dev: Device, env: Env) -> Outcome:
    spans = pagemap.zone_spans()
    spec = MemorySpec(thp=False, numa_node=movable_node(env, spans))
    with Mapping(spec, _SIZE) as m:
        m.fill(0x5A)
        if any(z != MOVABLE for z in frame_zones(m, spans)[1]):
            return Outcome("skip", f"the test memory is not all in {MOVABLE}")
        read_end, write_end = os.pipe()
        try:
            iov = ffi.new("struct iovec *", {"iov_base": ffi.cast("void *", m.addr),
                                            "iov_len": PAGE_SIZE})  # fmt: skip
            if lib.vmsplice(write_end, iov, 1, 0) != PAGE_SIZE:
                return Outcome("fail", f"vmsplice() failed: {os.strerror(ffi.errno)}")
            before = vmstat.snapshot(env.node)
            try:
                longterm.start(dev, m.addr, _SIZE, write=True, fast=False)
            except DeviceError as e:
                worked, why = False, errno.errorcode.get(e.errno or 0, str(e.errno))
            else:
                worked, why = True, ""
                try:
                    after = frame_zones(m, spans)[1]
                finally:
                    longterm.stop(dev)
            # The exact per-page oracle where the counters are not (no test node).
            served = pins.served(dev)
            left = pins.query(dev, os.getpid(), m.addr, m.addr + _SIZE).pins if served else None
        finally:
            os.close(read_end)
            os.close(write_end)
        balance = _pins_of(before, env)
    details: dict[str, object] = {"pinned": worked, "errno": why, "pins_left": left,
                                  "balance": vars(balance)}  # fmt: skip
    if left or (env.exact_counts and balance.acquired != balance.released):
        return Outcome("fail", f"pins leaked: {left} left on the pages, acquired "
                       f"{balance.acquired}, released {balance.released}", details)  # fmt: skip
    if worked and MOVABLE in after:
        return Outcome("fail", f"a longterm pin left a page in {MOVABLE}", details)
    return Outcome("pass", details=details)


#: Why the zero page case skips on the in-kernel gup_test (gupctl's own
#: case: upstream has no such test to skip).
NEEDS_KMOD = "needs gupctl's kmod: the in-kernel gup_test WARNs on a zero page it finds unpinned"


def _zero_page(dev: Device, env: Env) -> Outcome:
    if not pins.served(dev):
        return Outcome("skip", NEEDS_KMOD)
    spec = MemorySpec(thp=False, prefault=False, numa_node=env.node)
    with Mapping(spec, _SIZE) as m:
        # A short-term read-only pin faults the zero page in and keeps it (a
        # longterm one unshares it in a COW mapping: it would not see writes).
        short_term_pin(dev, abi.PIN_BASIC_TEST, m, write=False)
        frames = pagemap.frames(m.addr, _SIZE)
        before = vmstat.snapshot(None)
        short_term_pin(dev, abi.PIN_BASIC_TEST, m, write=False, repeats=_REPEATS)
        after = vmstat.snapshot(None)
    zero = sum(f.zero for f in frames)
    if zero != len(frames):
        return Outcome("fail", f"{zero} of {len(frames)} pages were the zero page: a read-only "
                       "pin of untouched memory should have mapped it")  # fmt: skip
    # System-wide (the zero page is on whichever node the kernel image is):
    # other pin users add a few, a pinned zero page would add every one.
    acquired = after.nr_foll_pin_acquired - before.nr_foll_pin_acquired
    asked = zero * _REPEATS
    details: dict[str, object] = {"pins_of_the_zero_page": asked, "acquired": acquired}
    if acquired >= asked // 2:
        return Outcome("fail", f"the zero page was pinned: nr_foll_pin_acquired moved by "
                       f"{acquired} over {asked} pins of it", details)  # fmt: skip
    return Outcome("pass", details=details)


def _per_file(dev: Device, env: Env) -> Outcome:
    before = vmstat.snapshot(env.node)
    isolated = longterm.per_file(env.device)
    balance = _pins_of(before, env)
    details: dict[str, object] = {"per_file": isolated, "balance": vars(balance)}
    if env.exact_counts and balance.acquired != balance.released:
        return Outcome("fail", f"pin balance: {vars(balance)}", details)
    if not isolated:
        return Outcome("fail", "longterm pins are one global state: a second file's START was "
                       "refused (EINVAL); \"mm/gup_test: keep longterm pin state per file\" "
                       "(Fixes: c77369b437f9) is missing", details)  # fmt: skip
    return Outcome("pass", details=details)


def _stop_vs_close(dev: Device, env: Env) -> Outcome:
    if not longterm.per_file(env.device):
        return Outcome("skip", "longterm pins are one global state here: STOP racing another "
                       "file's close is the bug itself (a double free), not run")  # fmt: skip
    before = vmstat.snapshot(env.node)
    stop = threading.Event()
    errors: list[BaseException] = []
    with Mapping(MemorySpec(numa_node=env.node), _SIZE) as m, Device(env.device) as other:

        def stopper() -> None:
            try:
                while not stop.is_set():
                    longterm.stop(other)
            except BaseException as e:  # the case fails with it, below
                errors.append(e)

        thread = threading.Thread(target=stopper)
        thread.start()
        try:
            for _ in range(_RACES):
                with Device(env.device) as victim:  # its release() races other's STOP
                    longterm.start(victim, m.addr, _SIZE, write=True, fast=False)
        finally:
            stop.set()
            thread.join()
    balance = _pins_of(before, env)
    pinned = _RACES * (_SIZE // PAGE_SIZE)
    details: dict[str, object] = {"rounds": _RACES, "balance": vars(balance)}
    if errors:
        return Outcome("fail", f"STOP on the other file failed: {errors[0]}", details)
    # >=: a first pin of pages in ZONE_MOVABLE is taken again after their migration.
    if env.exact_counts and not (balance.acquired == balance.released >= pinned):
        return Outcome("fail", f"{_RACES} rounds of {_SIZE // PAGE_SIZE} pages: acquired "
                       f"{balance.acquired}, released {balance.released}", details)  # fmt: skip
    return Outcome("pass", details=details)


def _wrapped(dev: Device, env: Env) -> Outcome:
    before = vmstat.snapshot(env.node)
    addr = (1 << 64) - PAGE_SIZE
    try:
        longterm.start(dev, addr, 2 * PAGE_SIZE, write=False, fast=False)
    except DeviceError as e:
        refused = e.errno
    else:
        longterm.stop(dev)
        return Outcome("fail", f"PIN_LONGTERM_TEST_START of {addr:#x} + 2 pages was not refused")
    balance = _pins_of(before, env)
    name = errno.errorcode.get(refused or 0, str(refused))
    details: dict[str, object] = {"errno": name, "balance": vars(balance)}
    if refused not in (errno.EINVAL, errno.EFAULT):
        return Outcome("fail", f"refused with {name}, not EINVAL or EFAULT", details)
    if env.exact_counts and balance.acquired:
        return Outcome("fail", f"{balance.acquired} pins taken for a wrapped range", details)
    return Outcome("pass", details=details)

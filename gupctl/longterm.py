"""PIN_LONGTERM_TEST_START/READ/STOP: FOLL_LONGTERM pins that outlive the ioctl.

START pins a range with pin_user_pages{,_fast}(FOLL_LONGTERM [| FOLL_WRITE]),
READ copies every pinned page's contents to a user buffer, STOP unpins.
Where the pins live differs: gupctl's kmod and the in-kernel gup_test of
7.3 keep them per open file; the in-kernel gup_test of v6.2 to 6.12 keeps
one global set, and closing any gup_test file unpins it (per_file() tells
which).  The commands came in v6.2 ("mm/gup_test: start/stop/read
functionality for PIN LONGTERM test"): 6.1's in-kernel gup_test has none.
Either way a process's pins die with its file descriptor, so the commands
here pin, use and unpin within one open file.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gupctl import abi, vmstat
from gupctl._libc import ffi, lib
from gupctl.device import Device
from gupctl.errors import DeviceError, PinRefused
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec


def start(device: Device, addr: int, size: int, *, write: bool, fast: bool) -> None:
    """PIN_LONGTERM_TEST_START of `size` bytes at `addr`."""
    arg = abi.ffi.new("struct pin_longterm_test *")
    arg.addr, arg.size = addr, size
    arg.flags = (abi.PIN_LONGTERM_TEST_FLAG_USE_WRITE if write else 0) | (
        abi.PIN_LONGTERM_TEST_FLAG_USE_FAST if fast else 0
    )
    device.ioctl(abi.PIN_LONGTERM_TEST_START, arg)


def stop(device: Device) -> None:
    """PIN_LONGTERM_TEST_STOP: unpin whatever START pinned (a no-op if nothing)."""
    device.ioctl(abi.PIN_LONGTERM_TEST_STOP)


def per_file(path: str) -> bool:
    """Whether `path` keeps longterm pins per open file: a probe, not a version
    check.  Two files each START one page; a global state refuses the second
    with EINVAL.  Both are stopped again before this returns."""
    with Mapping(MemorySpec(), PAGE_SIZE) as mapping, Device(path) as a, Device(path) as b:
        try:
            start(a, mapping.addr, PAGE_SIZE, write=True, fast=False)
        except DeviceError as e:
            if e.errno != errno.EINVAL:
                raise
            return False  # global pins another process holds: that is the answer too
        try:
            start(b, mapping.addr, PAGE_SIZE, write=True, fast=False)
        except DeviceError as e:
            if e.errno != errno.EINVAL:
                raise
            return False
        finally:
            stop(b)
            stop(a)
        return True


def read(device: Device, size: int) -> bytes:
    """PIN_LONGTERM_TEST_READ: the pinned pages' contents, `size` bytes of them."""
    buf = abi.ffi.new("char[]", size)
    read_into(device, buf)
    return bytes(abi.ffi.buffer(buf, size))


def read_into(device: Device, buf: Any) -> None:
    """PIN_LONGTERM_TEST_READ into `buf` (a cffi char array or pointer), which
    must hold every pinned byte: no copy of them in Python (a 1 GB pin)."""
    # The argument is a pointer to a u64 that holds the destination address.
    dest = abi.ffi.new("uint64_t *", int(abi.ffi.cast("uintptr_t", buf)))
    device.ioctl(abi.PIN_LONGTERM_TEST_READ, dest)


@dataclass(frozen=True)
class LongtermSpec:
    """A longterm pin of `size` bytes of `memory`: R/O unless `write`, gup-fast if `fast`."""

    size: int = 1 << 20
    write: bool = False
    fast: bool = False
    memory: MemorySpec = field(default_factory=MemorySpec)


@dataclass(frozen=True)
class Pinned:
    """The state while the pins are held: counter deltas since just before START."""

    scope: str
    nr_pages: int
    acquired: int
    outstanding: int


@dataclass(frozen=True)
class HoldResult:
    """What `gupctl longterm start` reports: the table and --json both come from this."""

    backing: str
    size: int
    write: bool
    fast: bool
    pinned_pages: int
    acquired_while_held: int
    held_seconds: float
    balance: vmstat.Balance


@dataclass(frozen=True)
class ReadResult:
    """What `gupctl longterm read` reports: pages whose pinned copy saw the later write."""

    backing: str
    size: int
    write: bool
    fast: bool
    nr_pages: int
    matched: int
    mismatched: int
    mismatched_pages: list[int]  # the first 16
    balance: vmstat.Balance

    @property
    def ok(self) -> bool:
        return self.mismatched == 0


def _start(device: Device, spec: LongtermSpec, mapping: Mapping) -> None:
    try:
        start(device, mapping.addr, spec.size, write=spec.write, fast=spec.fast)
    except DeviceError as e:
        raise PinRefused(e, spec.memory.describe(), spec.write) from None


def hold(device: Device, spec: LongtermSpec, wait: Callable[[Pinned], None]) -> HoldResult:
    """Pin, call `wait` while the pins are held, unpin; the balance covers it all."""
    node = spec.memory.numa_node
    nr_pages = spec.size // PAGE_SIZE
    with Mapping(spec.memory, spec.size) as mapping:
        before = vmstat.snapshot(node)
        _start(device, spec, mapping)
        try:
            during = vmstat.snapshot(node)
            acquired = during.nr_foll_pin_acquired - before.nr_foll_pin_acquired
            began = time.monotonic()
            wait(Pinned(during.scope, nr_pages, acquired, during.outstanding - before.outstanding))
            held = time.monotonic() - began
        finally:
            stop(device)
        after = vmstat.snapshot(node)
    return HoldResult(
        backing=spec.memory.describe(),
        size=spec.size,
        write=spec.write,
        fast=spec.fast,
        pinned_pages=nr_pages,
        acquired_while_held=acquired,
        held_seconds=round(held, 3),
        balance=vmstat.Balance.between(before, after, nr_pages),
    )


# The selftest's pattern bytes: 0x55 before the pin; after it each page gets
# 0x80 | (index % 127), never 0x55, so a stale copy can never look fresh.
BEFORE = 0x55


def _after(index: int) -> int:
    return 0x80 | (index % 127)


def read_check(device: Device, spec: LongtermSpec) -> ReadResult:
    """tools/testing/selftests/mm/cow.c's "Longterm R/O pin is reliable" check.

    Fill the memory, take the longterm pin, then write through the mapping: the
    pinned pages must show the write.  A R/O pin of a page that is shared (or
    could become so) has to unshare at pin time; if it did not, the process's
    write goes to a new copy and the pin keeps seeing the old contents.
    """
    node = spec.memory.numa_node
    nr_pages = spec.size // PAGE_SIZE
    with Mapping(spec.memory, spec.size) as mapping:
        lib.memset(_ptr(mapping.addr), BEFORE, spec.size)
        before = vmstat.snapshot(node)
        _start(device, spec, mapping)
        try:
            for i in range(nr_pages):
                lib.memset(_ptr(mapping.addr + i * PAGE_SIZE), _after(i), PAGE_SIZE)
            pinned = read(device, spec.size)
        finally:
            stop(device)
        after = vmstat.snapshot(node)
        bad = [
            i
            for i in range(nr_pages)
            if pinned[i * PAGE_SIZE : (i + 1) * PAGE_SIZE] != mapping.read(i * PAGE_SIZE, PAGE_SIZE)
        ]
    return ReadResult(
        backing=spec.memory.describe(),
        size=spec.size,
        write=spec.write,
        fast=spec.fast,
        nr_pages=nr_pages,
        matched=nr_pages - len(bad),
        mismatched=len(bad),
        mismatched_pages=bad[:16],
        balance=vmstat.Balance.between(before, after, nr_pages),
    )


def _ptr(addr: int) -> object:
    return ffi.cast("void *", addr)

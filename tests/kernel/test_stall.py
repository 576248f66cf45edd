"""Pins stretched by a fault that never ends (issue 22, findings 2 and 5).

A range that ends in a page whose fault nobody serves (a FUSE daemon that
never answers; here a userfaultfd, which stalls GUP the same way) keeps a
benchmark's earlier pins for as long as the caller likes.  The kmod charges
the whole length to the caller's RLIMIT_MEMLOCK before it pins, so the
stretch cannot hold more than the limit; and PIN_LONGTERM_TEST_READ copies
with no lock held, so a READ stalled in copy_to_user() lets STOP through.

Oracles: the kernel's own fault message on the uffd (GUP is waiting),
VmPin of the caller from /proc/PID/status, node 1's pin counters, and the
errno of a second pin tried meanwhile.
"""

from __future__ import annotations

import ctypes
import errno
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from procs import Forked, Peer, errno_of, outstanding_since, settles, vmpin_kb
from test_nonroot import device_for_the_group  # noqa: F401 (autouse: root:65534 0660)
from uffd import SYSCTL, Userfaultfd

from gupctl import abi, longterm
from gupctl.device import Device
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec

pytestmark = pytest.mark.kmod  # the charge and the unlocked READ are the kmod's

DEVICE = "/dev/gup_test"
PAGES = 48  # one stretched benchmark: under the limit
MEMLOCK = 64 * PAGE_SIZE  # and two of them are over it
MADV_DONTNEED = 4
STALL = 20.0  # seconds to wait for a fault the kernel should report at once


@pytest.fixture(autouse=True)
def unprivileged_userfaultfd() -> Iterator[None]:
    """Let uid 65534 take kernel-mode faults on a uffd, as a FUSE mount lets it."""
    before = SYSCTL.read_text()
    SYSCTL.write_text("1")
    try:
        yield
    finally:
        SYSCTL.write_text(before)


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[int]]:
    """call() in a thread; the list gets its errno (0: success) when it ends."""
    out: list[int] = []
    thread = threading.Thread(target=lambda: out.append(errno_of(call)), daemon=True)
    thread.start()
    return thread, out


def _pin_fast(dev: Device, addr: int, pages: int) -> Callable[[], None]:
    """PIN_FAST_BENCHMARK, one page a call: pin_user_pages_fast() falls back to the
    slow path unlocked (FOLL_UNLOCKABLE), the one way GUP may wait on a uffd.
    pin_user_pages() runs with the mmap lock held and no retry allowed, so
    handle_userfault() fails its fault at once instead (a FUSE page would stall
    it all the same: that wait is the page lock's)."""
    arg = abi.ffi.new("struct gup_test *")
    arg.addr, arg.size, arg.nr_pages_per_call = addr, pages * PAGE_SIZE, 1
    arg.gup_flags = abi.FOLL_WRITE
    return lambda: dev.ioctl(abi.PIN_FAST_BENCHMARK, arg)


def _stretched(node: int | None, peer: Peer) -> dict[str, int]:
    """In the group member: a PIN_FAST_BENCHMARK over PAGES pages whose last page
    stalls; while it does, the parent looks, and a second one is tried."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = PAGES * PAGE_SIZE
    memory = MemorySpec(numa_node=node, thp=False)
    with Device(DEVICE) as dev, Mapping(memory, size) as m, Mapping(memory, size) as other, \
            Userfaultfd() as uffd:  # fmt: skip
        last = m.addr + size - PAGE_SIZE
        uffd.register(last, PAGE_SIZE)
        assert libc.madvise(ctypes.c_void_p(last), PAGE_SIZE, MADV_DONTNEED) == 0
        thread, result = _in_thread(_pin_fast(dev, m.addr, PAGES))
        if uffd.fault(STALL) != last:
            return {"stalled": 0}
        peer.send("stalled")
        peer.recv()  # the parent has looked
        second = errno_of(_pin_fast(dev, other.addr, PAGES))
        uffd.serve(last, PAGE_SIZE)
        thread.join(STALL)
        return {"stalled": 1, "second": second, "first": result[0] if result else -1}


def test_a_stalled_benchmark_holds_no_more_than_memlock(node) -> None:
    """While the stall lasts, the caller's VmPin is the benchmark's whole length
    and within RLIMIT_MEMLOCK; a second benchmark that would pass the limit is
    refused with ENOMEM at once; serving the fault lets the first finish, and
    every pin and every charge comes back."""
    outstanding = outstanding_since(node)
    child = Forked(lambda peer: _stretched(node, peer), memlock=MEMLOCK)
    msg = child.peer.recv()
    assert msg == "stalled", f"GUP never reached the uffd page: {msg}"
    held_kb, pins = vmpin_kb(child.pid), outstanding()
    child.peer.send("looked")
    out = child.result()
    assert held_kb == PAGES * PAGE_SIZE // 1024, "the stretched benchmark is not charged whole"
    assert held_kb * 1024 <= MEMLOCK
    assert pins == PAGES - 1, f"{pins} pins held during the stall, not the {PAGES - 1} before it"
    assert errno.errorcode.get(out["second"]) == "ENOMEM", "a second stretch passed the limit"
    assert out["first"] == 0, f"the served benchmark failed: errno {out['first']}"
    assert settles(outstanding, 0) == 0, "pins left after the benchmark ended"


def _stalled_read(node: int | None, peer: Peer) -> dict[str, float | int]:
    """In the group member: START, then a READ into a buffer whose first page
    stalls; while it does, STOP from another thread of the same process."""
    size = 8 * PAGE_SIZE
    missing = MemorySpec(prefault=False, thp=False)
    with Device(DEVICE) as dev, Mapping(MemorySpec(numa_node=node), size) as m, \
            Mapping(missing, size) as dest, Userfaultfd() as uffd:  # fmt: skip
        longterm.start(dev, m.addr, size, write=True, fast=False)
        uffd.register(dest.addr, size)
        where = abi.ffi.new("uint64_t *", dest.addr)
        reader, result = _in_thread(lambda: dev.ioctl(abi.PIN_LONGTERM_TEST_READ, where))
        if uffd.fault(STALL) != dest.addr:
            longterm.stop(dev)
            return {"stalled": 0}
        began = time.monotonic()
        stopper, stopped = _in_thread(lambda: longterm.stop(dev))
        stopper.join(STALL)
        stop_s = time.monotonic() - began if stopped else -1.0
        uffd.serve(dest.addr, size)
        stopper.join()
        reader.join(STALL)
        peer.send("done")
        return {"stalled": 1, "stop_s": stop_s, "stop": stopped[0], "read": result[0]}


def test_a_stalled_read_lets_stop_through(node) -> None:
    """STOP returns while READ waits in copy_to_user() (the old kmod held both
    locks across the copy, so STOP waited for the fault); the READ then ends
    with EINVAL, and the pins are gone before the fault is served."""
    outstanding = outstanding_since(node)
    child = Forked(lambda peer: _stalled_read(node, peer), memlock=MEMLOCK)
    assert child.peer.recv() == "done"
    out = child.result()
    assert out["stalled"] == 1, "READ never reached the uffd page"
    assert out["stop_s"] >= 0, f"STOP waited {STALL} s for a READ stalled in a fault"
    assert out["stop"] == 0
    assert errno.errorcode.get(out["read"]) == "EINVAL", f"READ after STOP: {out['read']}"
    assert settles(outstanding, 0) == 0

"""Longterm pins of unprivileged processes: charged, limited, readable only by their owner.

The kmod charges PIN_LONGTERM_TEST_START's pins to the starting process's
mm->pinned_vm against RLIMIT_MEMLOCK (unless CAP_IPC_LOCK), as RDMA's
ib_umem_get() does, uncharges that same mm on STOP and on the last close,
and lets only that mm READ the pinned pages (see kmod/gupctl_longterm.c).  Oracles:
VmPin in /proc/PID/status (mm->pinned_vm, in kB), node 1's pin counters read
by root, and the errno the kernel gives.

The unprivileged side runs as uid and gid 65534 with no supplementary
groups, on /dev/gup_test made root:65534 0660 for the test (what a udev rule
giving a group access does).  Raw ioctls run in forked children that drop
privileges without exec; the CLI runs as `gupctl` itself, exec'd after the
same drop.  In the VM, /root (0700 on the host, and the home of this
interpreter) is made searchable while the tests run; the change stays in the
guest's memory.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from procs import NOBODY, Forked, Peer, deltas, group_device, run_as, vmpin_kb
from procs import drop as _drop
from procs import vmpin_or_none as _vmpin_or_none

from gupctl import longterm
from gupctl.device import Device
from gupctl.errors import DeviceError
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec

pytestmark = pytest.mark.kmod  # the charge and the owner check are the kmod's

DEVICE = "/dev/gup_test"
ROOT = Path(__file__).resolve().parents[2]
SIZE = 1 << 20
PAGES = SIZE // PAGE_SIZE
KB = PAGE_SIZE // 1024  # VmPin's unit per page
MEMLOCK = 2 * SIZE  # RLIMIT_MEMLOCK where the pins must fit


def _missing(reason: str) -> None:
    """Fail in CI and in the VM, where everything must be there; skip elsewhere."""
    if os.environ.get("CI") or os.environ.get("GUPCTL_IN_VM"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module", autouse=True)
def reachable_interpreter() -> Iterator[None]:
    """uid 65534 can run this interpreter and import gupctl (searchable directories)."""
    paths = {Path(p).resolve() for p in (sys.executable, sys.prefix, sys.base_prefix, ROOT)}
    changed: list[tuple[Path, int]] = []
    try:
        for path in sorted(paths):
            for d in reversed([path, *path.parents] if path.is_dir() else path.parents):
                mode = d.stat().st_mode
                if mode & stat.S_IXOTH:
                    continue
                if not os.environ.get("GUPCTL_IN_VM"):
                    _missing(f"{d} is not searchable by uid {NOBODY}: run in gupctl's VM")
                os.chmod(d, stat.S_IMODE(mode) | stat.S_IXOTH)
                changed.append((d, stat.S_IMODE(mode)))
        probe = subprocess.run([sys.executable, "-c", "import gupctl.cli"], capture_output=True,
                               text=True, preexec_fn=lambda: _drop(None, True))  # fmt: skip
        assert probe.returncode == 0, f"uid {NOBODY} cannot import gupctl: {probe.stderr}"
        yield
    finally:
        for d, mode in reversed(changed):
            os.chmod(d, mode)


@pytest.fixture(autouse=True)
def device_for_the_group(node) -> Iterator[None]:
    """/dev/gup_test as a udev rule for a group would leave it: root:65534 0660."""
    if node is None:
        pytest.fail("exact counts need a memory-only node: run in gupctl's VM")
    if not os.path.exists(DEVICE):
        pytest.fail(f"no {DEVICE}: is gupctl.ko loaded?")
    with group_device(DEVICE):
        yield


def start_errno(dev: Device, mapping: Mapping, size: int) -> int:
    """PIN_LONGTERM_TEST_START (a write pin) of `size` bytes: 0, or the errno."""
    try:
        longterm.start(dev, mapping.addr, size, write=True, fast=False)
    except DeviceError as e:
        return e.errno or -1
    return 0


def read_errno(dev: Device) -> int:
    """PIN_LONGTERM_TEST_READ of SIZE bytes: 0, or the errno."""
    try:
        longterm.read(dev, SIZE)
    except DeviceError as e:
        return e.errno or -1
    return 0


class Received(Device):
    """A gup_test file descriptor received with SCM_RIGHTS (the same open file)."""

    def __init__(self, fd: int) -> None:
        self.path, self.fd = DEVICE, fd


def test_unprivileged_pin_is_charged_to_vmpin(node) -> None:
    """Held pins show as VmPin, exactly; STOP and close without STOP give them back."""

    def body() -> dict[str, int]:
        seen = {"before": vmpin_kb()}
        with Mapping(MemorySpec(numa_node=node), SIZE) as m:
            dev = Device(DEVICE)
            longterm.start(dev, m.addr, SIZE, write=True, fast=False)
            seen["held"] = vmpin_kb()
            longterm.stop(dev)
            seen["stopped"] = vmpin_kb()
            longterm.start(dev, m.addr, SIZE, write=True, fast=True)
            seen["held_again"] = vmpin_kb()
            dev.close()
            seen["closed"] = vmpin_kb()
        return seen

    seen, acquired, released = deltas(node, lambda: run_as(body, memlock=MEMLOCK))
    assert seen == {"before": 0, "held": PAGES * KB, "stopped": 0,
                    "held_again": PAGES * KB, "closed": 0}  # fmt: skip
    assert acquired == released == 2 * PAGES


def test_cli_pin_shows_in_vmpin(node) -> None:
    """`gupctl longterm start` as uid 65534: VmPin while it holds, pins balanced after."""
    argv = [sys.executable, "-m", "gupctl", "longterm", "start", "--hold", "3",
            "--device", DEVICE, "--json"]  # fmt: skip

    def run() -> tuple[set[int], subprocess.CompletedProcess[str]]:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: _drop(MEMLOCK, True))  # fmt: skip
        seen: set[int] = set()
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            value = _vmpin_or_none(proc.pid)
            if value is not None:
                seen.add(value)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=300)
        return seen, subprocess.CompletedProcess(argv, proc.returncode, out, err)

    (seen, ran), acquired, released = deltas(node, run)
    assert ran.returncode == 0, ran.stderr
    assert seen == {0, PAGES * KB}  # before START and after STOP, and while held
    assert json.loads(ran.stdout)["pinned_pages"] == PAGES
    assert acquired == released == PAGES


@pytest.mark.parametrize("passed", [False, True], ids=["alone", "scm_rights"])
def test_kill_9_releases_pins_and_charge(node, passed: bool) -> None:
    """SIGKILL while pins are held: exit's close drops them.  With the fd passed to
    another process first (SCM_RIGHTS), that one cannot READ, is not charged, and
    its close after the kill is the last one: the pins go then, and the charge
    goes back to the dead starter's mm, not to the closer's."""

    def holder(peer: Peer, sock: socket.socket) -> None:
        with Mapping(MemorySpec(numa_node=node), SIZE) as m:
            dev = Device(DEVICE)
            longterm.start(dev, m.addr, SIZE, write=True, fast=False)
            if passed:
                socket.send_fds(sock, [b"x"], [dev.fd])
            peer.send({"held": vmpin_kb()})
            signal.pause()  # until killed

    def body() -> dict[str, Any]:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        child = Forked(lambda peer: holder(peer, theirs))
        seen: dict[str, Any] = {"reported": child.peer.recv()["held"],
                                "held": vmpin_kb(child.pid)}  # fmt: skip
        if passed:
            _, (fd,), _, _ = socket.recv_fds(mine, 1, 1)
            received = Received(fd)
            seen["read_errno"] = read_errno(received)
            seen["receiver"] = vmpin_kb()
        os.kill(child.pid, signal.SIGKILL)
        seen["status"] = child.wait()
        if passed:
            seen["receiver_after_kill"] = vmpin_kb()
            received.close()
            seen["receiver_after_close"] = vmpin_kb()
        return seen

    seen, acquired, released = deltas(node, lambda: run_as(body, memlock=MEMLOCK))
    assert seen["reported"] == seen["held"] == PAGES * KB
    assert seen["status"] == -signal.SIGKILL
    if passed:
        assert seen["read_errno"] == errno.EPERM
        assert seen["receiver"] == seen["receiver_after_kill"] == 0
        assert seen["receiver_after_close"] == 0
    assert acquired == released == PAGES


def test_memlock_limit_refuses_start(node) -> None:
    """RLIMIT_MEMLOCK of 16 pages: 16 pin, a 17th (on any fd) is ENOMEM and pins nothing."""
    limit_pages = 16

    def body() -> dict[str, Any]:
        with Mapping(MemorySpec(numa_node=node), SIZE) as m:
            a, b = Device(DEVICE), Device(DEVICE)
            seen: dict[str, Any] = {
                "at_limit": start_errno(a, m, limit_pages * PAGE_SIZE),
                "held": vmpin_kb(),
                "one_more": start_errno(b, m, PAGE_SIZE),
                "held_still": vmpin_kb(),
            }
            longterm.stop(a)
            seen["over_alone"] = start_errno(a, m, (limit_pages + 1) * PAGE_SIZE)
            seen["all"] = start_errno(b, m, SIZE)
            seen["after"] = vmpin_kb()
            a.close()
            b.close()
        return seen

    seen, acquired, released = deltas(node, lambda: run_as(body, memlock=limit_pages * PAGE_SIZE))
    assert seen == {"at_limit": 0, "held": limit_pages * KB, "one_more": errno.ENOMEM,
                    "held_still": limit_pages * KB, "over_alone": errno.ENOMEM,
                    "all": errno.ENOMEM, "after": 0}  # fmt: skip
    assert acquired == released == limit_pages


def test_cli_over_memlock_is_one_line(node) -> None:
    """`gupctl longterm start` over RLIMIT_MEMLOCK: exit 1, one line naming the limit
    and what to do, and not one pin taken."""
    argv = [sys.executable, "-m", "gupctl", "longterm", "start", "--hold", "0",
            "--device", DEVICE]  # fmt: skip

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=300,
                              preexec_fn=lambda: _drop(64 << 10, True))  # fmt: skip

    ran, acquired, released = deltas(node, run)
    assert ran.returncode == 1
    assert ran.stdout == ""
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert "RLIMIT_MEMLOCK (64 KiB)" in lines[0] and "ulimit -l" in lines[0], lines[0]
    assert acquired == released == 0


def test_root_is_not_limited(node) -> None:
    """CAP_IPC_LOCK: START works with RLIMIT_MEMLOCK 0, and is still charged."""

    def body() -> dict[str, int]:
        with Mapping(MemorySpec(numa_node=node), SIZE) as m, Device(DEVICE) as dev:
            seen = {"start": start_errno(dev, m, SIZE), "held": vmpin_kb()}
        seen["closed"] = vmpin_kb()
        return seen

    seen, acquired, released = deltas(node, lambda: run_as(body, memlock=0, user=False))
    assert seen == {"start": 0, "held": PAGES * KB, "closed": 0}
    assert acquired == released == PAGES

    argv = [sys.executable, "-m", "gupctl", "longterm", "start", "--hold", "0", "--json"]
    ran, acquired, released = deltas(node, lambda: subprocess.run(
        argv, capture_output=True, text=True, timeout=300, preexec_fn=lambda: _drop(0, False)
    ))  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["balance"]["exact"]
    assert acquired == released == PAGES


@pytest.mark.parametrize("last", ["close", "stop"])
def test_read_through_a_forked_fd_is_refused(node, last: str) -> None:
    """A child forked after START shares the file but not the mm: its READ is EPERM,
    the starter's READ works.  The child's close (the last) or STOP gives the pins
    back and uncharges the starter, never the child."""
    pattern = 0x5A

    def reader(dev: Device, peer: Peer) -> None:
        peer.send({"read_errno": read_errno(dev), "vmpin": vmpin_kb()})
        if peer.recv() == "stop":
            longterm.stop(dev)
        dev.close()
        peer.send({"vmpin": vmpin_kb()})

    def body() -> dict[str, Any]:
        with Mapping(MemorySpec(numa_node=node), SIZE) as m:
            dev = Device(DEVICE)
            m.fill(pattern)
            longterm.start(dev, m.addr, SIZE, write=True, fast=False)
            child = Forked(lambda peer: reader(dev, peer))
            seen: dict[str, Any] = {"child": child.peer.recv()}
            seen["read_ok"] = longterm.read(dev, SIZE) == bytes([pattern]) * SIZE
            if last == "close":
                dev.close()  # not the last reference: the child still has it
            seen["held"] = vmpin_kb()
            child.peer.send(last)
            seen["child_after"] = child.peer.recv()["vmpin"]
            seen["after"] = vmpin_kb()
            child.result()
            if last == "stop":
                seen["read_after_stop"] = read_errno(dev)
                dev.close()
        return seen

    seen, acquired, released = deltas(node, lambda: run_as(body, memlock=MEMLOCK))
    assert seen["child"] == {"read_errno": errno.EPERM, "vmpin": 0}
    assert seen["read_ok"]
    assert seen["held"] == PAGES * KB
    assert seen["child_after"] == 0 and seen["after"] == 0
    if last == "stop":
        assert seen["read_after_stop"] == errno.EINVAL  # nothing pinned any more
    assert acquired == released == PAGES

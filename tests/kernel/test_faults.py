"""Faults during longterm pins: kill -9, inherited fds, rmmod (test_load.py: OOM).

Each test ends with no pin outstanding on the memory-only node (the node's
acquired and released deltas equal, read by oracle_counters()) and a clean
kernel log (conftest's dmesg_stays_clean).  The kmod and the in-kernel
gup_test differ where the pinning process dies while another process still
holds its file (fork, SCM_RIGHTS): the kmod ends the pins with the mm that
took them (an mmu_notifier, kmod/gupctl_longterm.c), upstream keeps them until the
last close.  Both are asserted, each on its own implementation.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from procs import DEVICE, Forked, Peer, adopt, errno_of, settles, vmpin_kb

from gupctl import longterm
from gupctl.device import Device
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec
from gupctl.syscalls import number

SIZE = 1 << 20
PAGES = SIZE // PAGE_SIZE
KB = PAGE_SIZE // 1024
PATTERN = 0x5A
KMOD = os.path.exists("/sys/module/gupctl")


def _has_symbol(name: str) -> bool:
    with open("/proc/kallsyms") as f:
        return any(line.split()[2] == name for line in f)


#: The kmod ends longterm pins with their mm where the kernel has mmu notifiers
#: (every Debian kernel; a kernel built for gup_test alone may lack them).
ENDS_WITH_MM = KMOD and _has_symbol("mmu_notifier_register")
_libc = ctypes.CDLL(None, use_errno=True)


def pin_and_hold(node: int, peer: Peer, after: Callable[[Device], None]) -> None:
    """In a child: pin SIZE bytes (written PATTERN) of the node, report, after(dev)."""
    with Mapping(MemorySpec(numa_node=node), SIZE) as m:
        m.fill(PATTERN)
        dev = Device(DEVICE)
        longterm.start(dev, m.addr, SIZE, write=True, fast=False)
        after(dev)
        peer.send("held")
        signal.pause()  # until killed


def test_kill_9_gupctl_longterm_start(held) -> None:
    """`gupctl longterm start` (holding until a signal) killed with SIGKILL."""
    argv = [sys.executable, "-m", "gupctl", "longterm", "start", "--device", DEVICE]

    def pinned(proc: subprocess.Popen) -> str | None:
        line = proc.stderr.readline() if proc.stderr else ""
        return None if f"pinned {PAGES} pages" in line else line

    def holds(proc: subprocess.Popen) -> None:
        assert vmpin_kb(proc.pid) == (PAGES * KB if KMOD else 0)  # upstream charges nothing

    _kill_9_while_held(argv, pinned, holds, held, "gupctl longterm start")


RAW_CHILD = """
import fcntl, struct, sys, time
from gupctl import abi
from gupctl.memory import Mapping, MemorySpec
path, node, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with Mapping(MemorySpec(numa_node=node), size) as m, open(path, "rb+", buffering=0) as f:
    arg = struct.pack("QQI4x", m.addr, size, abi.PIN_LONGTERM_TEST_FLAG_USE_WRITE)
    fcntl.ioctl(f, abi.PIN_LONGTERM_TEST_START.number(), arg)
    print("held", flush=True)
    time.sleep(600)
"""


def test_kill_9_raw_fd(held, node) -> None:
    """A plain Python process pinning through fcntl.ioctl(), killed with SIGKILL."""
    argv = [sys.executable, "-c", RAW_CHILD, DEVICE, str(node), str(SIZE)]

    def pinned(proc: subprocess.Popen) -> str | None:
        line = proc.stdout.readline() if proc.stdout else ""
        return None if line == "held\n" else line

    _kill_9_while_held(argv, pinned, lambda proc: None, held, "the raw child")


def _kill_9_while_held(argv: list[str], pinned: Callable[[subprocess.Popen], str | None],
                       holds: Callable[[subprocess.Popen], None], held: Callable[[], int],
                       what: str) -> None:  # fmt: skip
    """Start `argv`; once pinned() says it pins (None, else the line it read)
    check the node holds PAGES and holds(proc), SIGKILL it, and see every pin go."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = pinned(proc)
        if line is not None:
            proc.kill()  # then its output ends: read it all
            pytest.fail(f"{what} did not pin: " + line + proc.communicate()[1])
        assert held() == PAGES
        holds(proc)
        proc.kill()
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert settles(held, 0) == 0


@contextmanager
def subreaper() -> Iterator[None]:
    """Orphans of this process's children become its children (so it can reap them)."""
    pr_set_child_subreaper = 36
    assert _libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        _libc.prctl(pr_set_child_subreaper, 0, 0, 0, 0)


def test_fork_heir_outlives_the_starter(held, node) -> None:
    """The starter forks an heir that inherits the fd, then exits.  The kmod ends
    the pins with the starter's mm; upstream keeps them until the heir closes."""

    def starter(peer: Peer) -> int:
        with Mapping(MemorySpec(numa_node=node), SIZE) as m:
            dev = Device(DEVICE)
            longterm.start(dev, m.addr, SIZE, write=True, fast=False)
            heir = os.fork()
            if heir == 0:
                try:
                    signal.pause()  # holds the inherited fd until killed
                finally:
                    os._exit(0)
            return heir

    with subreaper():
        heir = Forked(starter, user=False).result()  # the starter has exited
        try:
            assert os.waitpid(heir, os.WNOHANG) == (0, 0)  # the heir lives, fd open
            after_exit = settles(held, 0 if ENDS_WITH_MM else PAGES)
        finally:
            os.kill(heir, signal.SIGKILL)
            _, status = os.waitpid(heir, 0)
    assert after_exit == (0 if ENDS_WITH_MM else PAGES)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL
    assert settles(held, 0) == 0  # upstream: the heir's close released them


def test_execve_keeps_the_fd_not_the_old_mm(held, node) -> None:
    """The starter execs `sleep` with its fd kept open across the exec.  The kmod
    ends the pins with the old mm; upstream keeps them until the fd closes."""
    sleep = shutil.which("sleep")
    assert sleep, "no sleep(1) on PATH"

    def starter(peer: Peer) -> None:
        with Mapping(MemorySpec(numa_node=node), SIZE) as m:
            dev = Device(DEVICE)
            longterm.start(dev, m.addr, SIZE, write=True, fast=False)
            os.set_inheritable(dev.fd, True)
            peer.send(dev.fd)
            os.execv(sleep, ["sleep", "600"])

    child = Forked(starter, user=False)
    try:
        fd = child.peer.recv()
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child.pid}/comm").read_text().strip() != "sleep":
            assert time.monotonic() < deadline, "the starter did not exec"
            time.sleep(0.05)
        assert os.readlink(f"/proc/{child.pid}/fd/{fd}").endswith("gup_test")
        assert settles(held, 0 if ENDS_WITH_MM else PAGES) == (0 if ENDS_WITH_MM else PAGES)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        status = child.wait()
    assert status == -signal.SIGKILL
    assert settles(held, 0) == 0


def test_scm_rights_receiver_outlives_the_killed_starter(held, node) -> None:
    """The starter passes its fd to this process, then is killed.  The kmod: pins
    gone with the starter's mm, READ refused (EPERM), the file can START anew.
    Upstream: the dead process's pages stay pinned, readable, until our close."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def pass_fd(dev: Device) -> None:
        socket.send_fds(theirs, [b"x"], [dev.fd])

    child = Forked(lambda peer: pin_and_hold(node, peer, pass_fd), user=False)
    received, status = None, None
    try:
        assert child.peer.recv() == "held"
        _, (fd,), _, _ = socket.recv_fds(mine, 1, 1)
        received = adopt(fd)
        assert held() == PAGES
        os.kill(child.pid, signal.SIGKILL)
        status = child.wait()
        assert status == -signal.SIGKILL
        if ENDS_WITH_MM:
            assert settles(held, 0) == 0
            assert errno_of(lambda: longterm.read(received, SIZE)) == errno.EPERM
            with Mapping(MemorySpec(numa_node=node), SIZE) as m:
                longterm.start(received, m.addr, SIZE, write=True, fast=True)
                assert held() == PAGES and vmpin_kb() == PAGES * KB
                longterm.stop(received)
            assert held() == 0 and vmpin_kb() == 0
        else:
            time.sleep(0.5)
            assert held() == PAGES  # outlived their process
            if KMOD:  # its owner rule still holds
                assert errno_of(lambda: longterm.read(received, SIZE)) == errno.EPERM
            else:  # upstream lets anyone read a dead process's pinned pages
                assert longterm.read(received, SIZE) == bytes([PATTERN]) * SIZE
    finally:
        if received is not None:
            received.close()
        mine.close()
        theirs.close()
        if status is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    assert settles(held, 0) == 0


def _module_file() -> Path:
    """gupctl.ko as the VM loaded it (guest-init.sh: the run directory)."""
    for arg in Path("/proc/cmdline").read_text().split():
        if arg.startswith("gupctl_run="):
            return Path(arg.split("=", 1)[1]) / "gupctl.ko"
    pytest.skip("rmmod and insmod of the kmod run only in gupctl's VM")


def _delete_module(name: str) -> int:
    """delete_module(2) with O_NONBLOCK, as rmmod does: 0, or the errno."""
    ret = _libc.syscall(number("delete_module"), name.encode(), os.O_NONBLOCK)
    return 0 if ret == 0 else ctypes.get_errno()


def _finit_module(path: Path) -> int:
    nr = number("finit_module")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ret = _libc.syscall(nr, fd, b"", 0)
        return 0 if ret == 0 else ctypes.get_errno()
    finally:
        os.close(fd)


@pytest.mark.kmod
def test_rmmod_while_a_file_is_open(held, node) -> None:
    """rmmod with /dev/gup_test open and pinning: refused, pins intact; after the
    close it unloads (both files go), and loading it again brings them back."""
    ko = _module_file()
    assert ko.exists(), f"{ko} is missing"
    try:
        with Mapping(MemorySpec(numa_node=node), SIZE) as m, Device("/dev/gup_test") as dev:
            m.fill(PATTERN)
            longterm.start(dev, m.addr, SIZE, write=True, fast=False)
            refcnt = int(Path("/sys/module/gupctl/refcnt").read_text())
            # The kernel's answer for a module in use: EWOULDBLOCK (rmmod's
            # "in use" message comes from the refcount it reads first).
            assert _delete_module("gupctl") == errno.EWOULDBLOCK
            assert refcnt >= 1 and os.path.exists("/sys/module/gupctl")
            assert held() == PAGES
            assert longterm.read(dev, SIZE) == bytes([PATTERN]) * SIZE
        assert held() == 0
        assert _delete_module("gupctl") == 0
        assert not os.path.exists("/dev/gup_test")
        assert not os.path.exists("/sys/kernel/debug/gup_test")
    finally:
        if not os.path.exists("/sys/module/gupctl"):
            assert _finit_module(ko) == 0, "cannot load gupctl.ko again"
    assert os.path.exists("/dev/gup_test") and os.path.exists("/sys/kernel/debug/gup_test")
    with Mapping(MemorySpec(numa_node=node), SIZE) as m, Device("/dev/gup_test") as dev:
        longterm.start(dev, m.addr, SIZE, write=True, fast=False)
        assert held() == PAGES
    assert held() == 0

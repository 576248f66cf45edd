"""Processes for the kernel tests: forked children that talk back, and what
/proc says about a process's pins.

Shared by test_nonroot.py (unprivileged pins) and test_faults.py (kill -9,
inherited fds, load).  A forked child never returns into pytest's code.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import DEVICES, oracle_counters

from gupctl.device import Device
from gupctl.errors import DeviceError

NOBODY = 65534
#: The gup_test file the fault and load tests open.
DEVICE = next((d for d in DEVICES if os.path.exists(d)), DEVICES[0])


def drop(memlock: int | None, user: bool) -> None:
    """In a child: RLIMIT_MEMLOCK `memlock` bytes (soft and hard), then uid/gid 65534
    (a child of such a child is 65534 already)."""
    if memlock is not None:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock, memlock))
    if user and os.getuid() != NOBODY:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)


def vmpin_kb(pid: int | str = "self") -> int:
    """mm->pinned_vm of `pid`, in kB, as the kernel's /proc/PID/status shows it."""
    value = vmpin_or_none(pid)
    assert value is not None, f"no VmPin in /proc/{pid}/status (no mm: exited?)"
    return value


def vmpin_or_none(pid: int | str) -> int | None:
    """VmPin of `pid` in kB; None if it has no mm (gone, or a zombie)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return None
    return next((int(line.split()[1]) for line in lines if line.startswith("VmPin:")), None)


class Peer:
    """One end of a pair of pipes between two processes: JSON lines each way."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self._r = os.fdopen(rfd, "r")
        self._w = os.fdopen(wfd, "w")

    def send(self, obj: Any) -> None:
        self._w.write(json.dumps(obj) + "\n")
        self._w.flush()

    def recv(self) -> Any:
        """The next message; a child's {"error": traceback} is raised here."""
        line = self._r.readline()
        if not line:
            raise EOFError("the other process ended without answering")
        msg = json.loads(line)
        if isinstance(msg, dict) and "error" in msg:
            raise AssertionError(f"in the child:\n{msg['error']}")
        return msg


class Forked:
    """`body(peer)` in a forked child, as uid 65534 unless `user` is false, with
    RLIMIT_MEMLOCK `memlock` if given.  The child never returns into its parent's
    code: it ends with os._exit(), 0 if `body` returned, 1 with the traceback
    sent as {"error": ...} if it raised."""

    def __init__(self, body: Callable[[Peer], Any], *, memlock: int | None = None,
                 user: bool = True) -> None:  # fmt: skip
        from_parent, to_child = os.pipe()  # (read end, write end)
        from_child, to_parent = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                os.close(to_child)
                os.close(from_child)
                peer = Peer(from_parent, to_parent)
                try:
                    drop(memlock, user)
                    peer.send({"result": body(peer)})
                    code = 0
                except BaseException:
                    peer.send({"error": traceback.format_exc()})
            finally:
                os._exit(code)
        os.close(from_parent)
        os.close(to_parent)
        self.peer = Peer(from_child, to_child)

    def result(self) -> Any:
        """What `body` returned; fails with the child's traceback if it raised."""
        out = self.peer.recv()
        status = self.wait()
        assert status == 0, f"the child exited with {status}"
        return out["result"]

    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


def run_as(body: Callable[[], Any], *, memlock: int | None = None, user: bool = True) -> Any:
    """body() in a forked child (see Forked), and what it returned."""
    return Forked(lambda peer: body(), memlock=memlock, user=user).result()


def deltas(node: int, call: Callable[[], Any]) -> tuple[Any, int, int]:
    """call(), and node `node`'s acquired and released deltas around it (root reads them)."""
    before = oracle_counters(node)
    out = call()
    after = oracle_counters(node)
    return out, after[0] - before[0], after[1] - before[1]


def outstanding_since(node: int | None) -> Callable[[], int]:
    """A function giving the pins outstanding on the memory-only node `node` since
    this call: its acquired delta minus its released delta (oracle_counters())."""
    if node is None:
        pytest.fail("exact counts need a memory-only node: run in gupctl's VM")
    acquired0, released0 = oracle_counters(node)

    def outstanding() -> int:
        acquired, released = oracle_counters(node)
        return (acquired - acquired0) - (released - released0)

    return outstanding


def settles(outstanding: Callable[[], int], want: int, seconds: float = 10) -> int:
    """outstanding() once it is `want`, or its last value after `seconds`: an mm's
    last user may be a /proc reader that drops it a moment after the exit."""
    deadline = time.monotonic() + seconds
    while (value := outstanding()) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def adopt(fd: int) -> Device:
    """A Device for a gup_test fd this process received (the same open file)."""
    dev = Device.__new__(Device)
    dev.path, dev.fd = DEVICE, fd
    return dev


def errno_of(call: Callable[[], object]) -> int:
    """0 if call() succeeds, else the DeviceError's errno."""
    try:
        call()
    except DeviceError as e:
        return e.errno or -1
    return 0


@contextmanager
def group_device(path: str) -> Iterator[None]:
    """`path` as a udev rule giving a group access leaves it (root:65534 0660)
    while in the block, then as it was."""
    st = os.stat(path)
    os.chown(path, 0, NOBODY)
    os.chmod(path, 0o660)
    try:
        yield
    finally:
        os.chown(path, st.st_uid, st.st_gid)
        os.chmod(path, stat.S_IMODE(st.st_mode))

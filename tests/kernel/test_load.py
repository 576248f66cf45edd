"""Load on gup_test: a memory cgroup's OOM, 2 processes x 8 threads, exits racing STOP.

As in test_faults.py, each test ends with no pin outstanding on the
memory-only node and a clean kernel log; the memcg OOM report the first test
causes is expected (conftest's PROBLEM does not match it), a WARN or BUG is
not.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import oracle_counters
from procs import DEVICE, Forked, Peer, adopt, errno_of, settles

from gupctl import abi, longterm
from gupctl.device import Device
from gupctl.errors import DeviceError
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec

SIZE = 1 << 20
PAGES = SIZE // PAGE_SIZE
KMOD = os.path.exists("/sys/module/gupctl")


CGROUP = Path("/sys/fs/cgroup")
CGROUP_MAX = 16 << 20  # memory.max: Python's own pages fit, a 64 MiB hog does not


@contextmanager
def memory_cgroup() -> Iterator[Path]:
    """A fresh cgroup v2 child of the root with the memory controller, removed after
    (and the controller given back to the root's subtree_control if we enabled it)."""
    if "cgroup2" not in Path("/proc/filesystems").read_text():
        pytest.skip("this kernel has no cgroups (CONFIG_CGROUPS)")
    if not (CGROUP / "cgroup.controllers").exists():
        pytest.fail(f"no cgroup2 at {CGROUP}: guest-init.sh mounts it in gupctl's VM")
    if "memory" not in (CGROUP / "cgroup.controllers").read_text().split():
        pytest.skip("this kernel has no memory controller (CONFIG_MEMCG)")
    subtree = CGROUP / "cgroup.subtree_control"
    enabled = "memory" not in subtree.read_text().split()
    if enabled:
        subtree.write_text("+memory")
    path = CGROUP / f"gupctl-faults-{os.getpid()}"
    path.mkdir()
    try:
        yield path
    finally:
        for _ in range(100):  # rmdir is EBUSY until the killed process is gone
            try:
                path.rmdir()
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                time.sleep(0.05)
        if enabled:
            subtree.write_text("-memory")


def test_memory_max_oom_during_longterm_pins(held, node) -> None:
    """A process holding longterm pins in a cgroup with memory.max goes over it:
    the memcg OOM killer kills it, and its pins go with it."""

    def victim(cg: Path, peer: Peer) -> None:
        (cg / "cgroup.procs").write_text(str(os.getpid()))

        with Mapping(MemorySpec(numa_node=node), SIZE) as m, Device(DEVICE) as dev:
            longterm.start(dev, m.addr, SIZE, write=True, fast=False)
            peer.send("held")
            assert peer.recv() == "go"
            hog = []
            while True:  # touched pages, charged to the cgroup, no swap: OOM
                hog.append(b"\x01" * (1 << 20))

    with memory_cgroup() as cg:
        (cg / "memory.max").write_text(str(CGROUP_MAX))
        if (cg / "memory.swap.max").exists():
            (cg / "memory.swap.max").write_text("0")
        child = Forked(lambda peer: victim(cg, peer), user=False)
        try:
            assert child.peer.recv() == "held"
            assert held() == PAGES
            assert int((cg / "memory.current").read_text()) >= SIZE  # pinned and charged
            child.peer.send("go")
        except BaseException:
            os.kill(child.pid, signal.SIGKILL)
            raise
        finally:
            status = child.wait()
        events = dict(line.split() for line in (cg / "memory.events").read_text().splitlines())
    assert status == -signal.SIGKILL
    assert int(events["oom_kill"]) >= 1
    assert settles(held, 0) == 0


THREADS = 8
SECONDS = 3.0  # of load, under TCG: thousands of ioctls
LOAD_PAGES = 16
BENCHES = (abi.PIN_FAST_BENCHMARK, abi.GUP_FAST_BENCHMARK, abi.PIN_LONGTERM_BENCHMARK)
#: Commands whose every success pins (and unpins) LOAD_PAGES pages of the node.
PINNING = {"PIN_FAST_BENCHMARK", "PIN_LONGTERM_BENCHMARK", "PIN_LONGTERM_TEST_START"}
#: A START on a file that already holds pins: the kmod says EBUSY, upstream EINVAL.
BUSY = errno.EBUSY if KMOD else errno.EINVAL
#: What each command may answer under load: READ finds nothing pinned when
#: another thread's STOP came first (EINVAL in both).
ALLOWED = {**{c.name: {0} for c in BENCHES}, "PIN_LONGTERM_TEST_START": {0, BUSY},
           "PIN_LONGTERM_TEST_READ": {0, errno.EINVAL}, "PIN_LONGTERM_TEST_STOP": {0}}  # fmt: skip


def _hammer(node: int, shared: Device | None, deadline: float) -> Counter[str]:
    """One thread: the bench commands and START, READ, STOP, round and round until
    `deadline`, on `shared` or on a file of its own.  Counts "NAME errno"."""
    seen: Counter[str] = Counter()
    size = LOAD_PAGES * PAGE_SIZE
    dev = shared or Device(DEVICE)
    try:
        with Mapping(MemorySpec(numa_node=node), size) as m:
            gup = abi.ffi.new("struct gup_test *")
            pin = abi.ffi.new("struct pin_longterm_test *")
            pin.addr, pin.size, pin.flags = m.addr, size, abi.PIN_LONGTERM_TEST_FLAG_USE_WRITE
            buf = abi.ffi.new("char[]", size)  # every START pins `size`: READ fits
            dest = abi.ffi.new("uint64_t *", int(abi.ffi.cast("uintptr_t", buf)))
            steps = [(c, gup) for c in BENCHES] + [
                (abi.PIN_LONGTERM_TEST_START, pin), (abi.PIN_LONGTERM_TEST_READ, dest),
                (abi.PIN_LONGTERM_TEST_STOP, None)]  # fmt: skip
            while time.monotonic() < deadline:
                for command, arg in steps:
                    gup.addr, gup.size = m.addr, size  # the kernel writes size back
                    gup.nr_pages_per_call, gup.gup_flags = abi.ALL_PAGES, abi.FOLL_WRITE
                    try:
                        dev.ioctl(command, arg)
                        seen[f"{command.name} 0"] += 1
                    except DeviceError as e:
                        seen[f"{command.name} {e.errno}"] += 1
            if shared is None:
                longterm.stop(dev)
    finally:
        if shared is None:
            dev.close()
    return seen


def _process(node: int, shared_fd: bool, deadline: float) -> dict[str, int]:
    """THREADS threads of _hammer(), on one file or on a file each."""
    shared = Device(DEVICE) if shared_fd else None
    results: list[Counter[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(_hammer(node, shared, deadline))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if shared is not None:
        shared.close()
    if errors:
        raise errors[0]
    return dict(sum(results, Counter()))


def test_two_processes_eight_threads_each(held, node) -> None:
    """Process A's threads share one file, process B's have one each; all run the
    bench commands and START/READ/STOP at once.  Every answer is a success or
    an expected errno, and the node's pins are exactly LOAD_PAGES per pinning
    success, all released."""
    acquired0, _ = oracle_counters(node)
    deadline = time.monotonic() + 1.0 + SECONDS  # both processes start first
    children = [Forked(lambda peer, s=s: _process(node, s, deadline), user=False)
                for s in (True, False)]  # fmt: skip
    seen: Counter[str] = Counter()
    for child in children:
        seen.update(child.result())
    assert settles(held, 0) == 0
    acquired = oracle_counters(node)[0] - acquired0
    odd = {k: n for k, n in seen.items() if int(k.split()[1]) not in ALLOWED[k.split()[0]]}
    assert not odd, f"unexpected answers: {odd}"
    ok = {k.split()[0]: n for k, n in seen.items() if k.endswith(" 0")}
    assert set(ok) == set(ALLOWED), f"some command never succeeded: {dict(seen)}"
    assert acquired == LOAD_PAGES * sum(ok[name] for name in PINNING), dict(seen)
    print(f"{sum(seen.values())} ioctls in {SECONDS}s: {dict(sorted(seen.items()))}")


RACE_ROUNDS = 20


def _race_round(node: int, mine: Mapping) -> int:
    """One round: a starter pins and passes its fd, exits; we STOP, START, close.
    The errno of our START."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def starter(peer: Peer) -> None:
        with Mapping(MemorySpec(numa_node=node), mine.size) as m:
            dev = Device(DEVICE)
            longterm.start(dev, m.addr, m.size, write=True, fast=True)
            socket.send_fds(theirs, [b"x"], [dev.fd])
            peer.recv()
            os._exit(0)  # with the pins held: its mm's end races our STOP

    try:
        child = Forked(starter, user=False)
        _, (fd,), _, _ = socket.recv_fds(ours, 1, 1)
        with adopt(fd) as dev:
            child.peer.send("exit")
            longterm.stop(dev)
            started = errno_of(
                lambda: longterm.start(dev, mine.addr, mine.size, write=True, fast=False)
            )
        assert child.wait() == 0
    finally:
        ours.close()
        theirs.close()
    return started


def test_exit_races_stop_and_close(held, node) -> None:
    """The starter's exit (the kmod's .release) against STOP, START and close from
    the process it passed its fd to, RACE_ROUNDS times: each round's pins, the
    starter's and ours, are taken and given back exactly once."""
    acquired0, _ = oracle_counters(node)
    with Mapping(MemorySpec(numa_node=node), LOAD_PAGES * PAGE_SIZE) as mine:
        # STOP came first each time: nothing left for our START to be busy with.
        assert [_race_round(node, mine) for _ in range(RACE_ROUNDS)] == [0] * RACE_ROUNDS
    assert settles(held, 0) == 0
    assert oracle_counters(node)[0] - acquired0 == 2 * RACE_ROUNDS * LOAD_PAGES

"""gupctl bench --check-balance on a machine without a memory-only node.

There gupctl counts pins system-wide, between control windows that must
stand still (gupctl/balance.py, measure()).  The VM has background pinning
of its own (9p reads into user buffers pin them), and these tests add more.
Oracles: the counters sampled by this process every 0.1 s with stat_refresh
(conftest.oracle_counters), and the background pinner's own count.

tests/run.py runs this file in `gupctl vm --no-memory-only-node` on one
kernel; where $GUPCTL_NUMA_NODE names a memory-only node (gupctl's default
VM) gupctl counts there instead, and these tests are skipped.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import oracle_counters

from gupctl import balance, numa

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("GUPCTL_NUMA_NODE")),
    reason="a memory-only node counts these pins: run in `gupctl vm --no-memory-only-node`",
)

MIB = 1 << 20
SIZE = 32 * MIB
PAGES = SIZE // 4096
DEVICE = "/dev/gup_test"
NOBODY = 65534
ROOT = Path(__file__).resolve().parents[2]

#: One PIN_FAST_BENCHMARK of one page every 5 ms, on its own fd, until SIGTERM;
#: then how many pins it took and over how long.
PINNER = """
import signal, sys, time
from gupctl import abi
from gupctl.device import open_device
from gupctl.memory import PAGE_SIZE, Mapping, MemorySpec

stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
with open_device(None) as dev, Mapping(MemorySpec(), PAGE_SIZE) as m:
    arg = abi.ffi.new("struct gup_test *")
    pins, start = 0, time.monotonic()
    print("ready", flush=True)
    while not stop:
        arg.addr, arg.size, arg.nr_pages_per_call, arg.gup_flags = m.addr, PAGE_SIZE, 1, 1
        dev.ioctl(abi.PIN_FAST_BENCHMARK, arg)
        pins += 1
        time.sleep(0.005)
    print(pins, time.monotonic() - start, flush=True)
"""


class Sampler:
    """The counters every `period` s in a thread: (time, acquired, released).

    With `refresh`, conftest.oracle_counters(None); without, /proc/vmstat as
    the kernel has folded it (stat_refresh would fold the batches for a
    non-root gupctl too, and hide what it has to wait for).
    """

    def __init__(self, refresh: bool = True, period: float = 0.1) -> None:
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._read = (lambda: oracle_counters(None)) if refresh else _unrefreshed
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)

    def _run(self, period: float) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), *self._read()))
            self._stop.wait(period)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def held(self, counters: list[int]) -> float:
        """How long the oracle saw the counters at exactly `counters`, in seconds
        (from the first such sample to the last); -1 if never."""
        times = [t for t, a, r in self.samples if [a, r] == list(counters)]
        return times[-1] - times[0] if times else -1.0


def _unrefreshed() -> tuple[int, int]:
    values = dict(line.split() for line in Path("/proc/vmstat").read_text().splitlines())
    return int(values["nr_foll_pin_acquired"]), int(values["nr_foll_pin_released"])


def gupctl(*args: str, user: bool = False) -> subprocess.CompletedProcess[str]:
    """The real gupctl command line, as root or as uid 65534."""
    return subprocess.run([sys.executable, "-m", "gupctl", *args], capture_output=True, text=True,
                          timeout=600, preexec_fn=_drop if user else None)  # fmt: skip


def _drop() -> None:
    # What an admin gives the group (memlock in limits.conf): the kmod charges
    # a benchmark's pages to RLIMIT_MEMLOCK, and 32M is past the default 8M.
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 << 20, 64 << 20))
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)


class Pinner:
    """A background pinner (PINNER) in a child process, running until stop()."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", PINNER], stdout=subprocess.PIPE,
                                     text=True)  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> float:
        """Stop it; the pins it took per second."""
        self.proc.send_signal(signal.SIGTERM)
        stdout, _ = self.proc.communicate(timeout=60)
        pins, seconds = stdout.split()
        return int(pins) / float(seconds)


@pytest.fixture
def pinner() -> Iterator[Pinner]:
    p = Pinner()
    try:
        yield p
    finally:
        if p.proc.poll() is None:
            p.stop()


def test_machine_has_no_memory_only_node() -> None:
    nodes = numa.nodes()
    assert nodes and all(numa.node_has_cpus(n) for n in nodes), nodes


def _check_quiet_exact(runs: list[dict], sampler: Sampler) -> None:
    """Every run exact between quiet windows, as the oracle saw the counters too."""
    for run in runs:
        b = run["balance"]
        pins = PAGES if run["command"].startswith("pin") else 0
        assert b["scope"] == "system" and b["exact"], b
        assert (b["expected"], b["acquired"], b["released"]) == (pins, pins, pins)
        assert b["background_acquired"] == b["background_released"] == b["bound"] == 0
        assert b["window_seconds"] >= balance.WINDOW_MIN + b["settle_seconds"]
        # The counters gupctl read at the run's edges are the kernel's: the oracle
        # saw each, standing still for most of a window.
        assert [a - c for a, c in zip(b["after"], b["before"])] == [pins, pins]
        for edge in (b["before"], b["after"]):
            assert sampler.held(edge) >= 0.7 * (b["window_seconds"] - b["settle_seconds"]), (
                edge, sampler.samples)  # fmt: skip


def test_quiet_system_is_exact() -> None:
    with Sampler() as sampler:
        ran = gupctl("bench", "pin_fast_benchmark", "gup_fast_benchmark", "-s", "32M",
                     "--check-balance", "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    runs = json.loads(ran.stdout)
    _check_quiet_exact(runs, sampler)
    assert all(r["balance"]["refreshed"] for r in runs)
    assert "stood still in control windows" in ran.stderr
    # Over the whole command, every pin (gupctl's own file reads too) was released.
    (_, a0, r0), (_, a1, r1) = sampler.samples[0], sampler.samples[-1]
    assert a1 - a0 >= PAGES and a1 - r1 == a0 - r0


@pytest.fixture
def group_device() -> Iterator[None]:
    """/dev/gup_test as a udev rule for a group leaves it (root:65534 0660), and
    this interpreter reachable by uid 65534 (the changes stay in the guest)."""
    if not os.path.exists(DEVICE):
        pytest.fail(f"no {DEVICE}: is gupctl.ko loaded?")
    device = os.stat(DEVICE)
    changed: list[tuple[Path, int]] = []
    os.chown(DEVICE, 0, NOBODY)
    os.chmod(DEVICE, 0o660)
    try:
        for path in {Path(p).resolve() for p in (sys.executable, sys.prefix, ROOT)}:
            for d in [path, *path.parents] if path.is_dir() else path.parents:
                mode = d.stat().st_mode
                if not mode & stat.S_IXOTH:
                    if not os.environ.get("GUPCTL_IN_VM"):
                        pytest.fail(f"{d} is not searchable by uid {NOBODY}: run in the VM")
                    changed.append((d, stat.S_IMODE(mode)))
                    os.chmod(d, stat.S_IMODE(mode) | stat.S_IXOTH)
        yield
    finally:
        for d, mode in reversed(changed):
            os.chmod(d, mode)
        os.chown(DEVICE, device.st_uid, device.st_gid)
        os.chmod(DEVICE, stat.S_IMODE(device.st_mode))


@pytest.mark.kmod  # /dev/gup_test, which a group may be given
def test_not_root_is_exact_after_waiting_out_the_fold(group_device) -> None:
    """uid 65534 cannot write stat_refresh: gupctl waits for vmstat_update instead."""
    with Sampler(refresh=False) as sampler:
        ran = gupctl("bench", "pin_fast_benchmark", "-s", "32M", "--check-balance", "--json",
                     "--device", DEVICE, user=True)  # fmt: skip
    # Folded now by root: gupctl's last reading had nothing left to fold.
    final = oracle_counters(None)
    assert ran.returncode == 0, ran.stderr
    runs = json.loads(ran.stdout)
    _check_quiet_exact(runs, sampler)
    b = runs[0]["balance"]
    assert not b["refreshed"] and b["settle_seconds"] == balance.settle_seconds()
    assert list(final) == b["after"], (final, b)
    assert "not root" in ran.stderr and "vm.stat_interval" in ran.stderr


def test_background_pinner_is_never_exact_and_bounded(pinner: Pinner) -> None:
    ran = gupctl("bench", "pin_fast_benchmark", "-s", "32M", "--check-balance", "--json")
    rate = pinner.stop()
    assert ran.returncode == 1, ran.stderr
    (run,) = json.loads(ran.stdout)
    b = run["balance"]
    assert not b["exact"] and b["expected"] == PAGES, b
    # Retried, the ioctls included, and never quiet.
    assert b["attempts"] == balance.ATTEMPTS, b
    assert b["background_acquired"] > 0 and b["background_released"] > 0
    # The pinner's pins during the run are the error (gupctl's own are exactly
    # PAGES, as the quiet tests show); the bound holds them.
    for delta in (b["acquired"], b["released"]):
        assert 0 < delta - PAGES <= b["bound"], b
    assert b["window_seconds"] >= balance.WINDOW_MIN
    # The background gupctl measured is the pinner's (one pin and unpin each).
    assert 0.5 * rate <= b["background_per_second"] <= 2 * rate, (rate, b)
    assert "other pin users moved the counters" in ran.stderr
    assert "error:" in ran.stderr and "not exact" in ran.stderr

"""gupctl check -- CMD on real workloads: pins through paths other than gup_test.

The oracle is the memory-only node's counters read around the command by the
test itself, and what each workload must pin: O_DIRECT reads pin the user
buffer (through iov_iter_extract_pages() since v6.3; before it, they take
plain references and pin nothing), io_uring's registered buffers are pinned
FOLL_LONGTERM once, when registered.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import oracle_counters
from procs import settles

from gupctl import process
from gupctl.selftest.resources import scratch_ext4

pytestmark = pytest.mark.usefixtures("require_node")
FILE_MB = 4
BLOCK = 64 << 10
READS = (FILE_MB << 20) // BLOCK


@pytest.fixture
def require_node(node):
    if node is None:
        pytest.fail("gupctl check needs a memory-only node: run in gupctl's VM")


@pytest.fixture(scope="module")
def data_file() -> object:
    with scratch_ext4() as (mnt, why):
        assert mnt, why
        path = Path(mnt) / "data"
        path.write_bytes(os.urandom(FILE_MB << 20))
        yield path


def _checked(gupctl, node, *command: str) -> tuple[dict, int, int]:
    before = oracle_counters(node)
    ran = gupctl("check", "--json", "--", *command, check=False)
    after = oracle_counters(node)
    assert ran.returncode == 0, ran.stderr
    return ran.json(), after[0] - before[0], after[1] - before[1]


def _direct_pins() -> int:
    """Pins an O_DIRECT read of the whole file takes: a page of the buffer per
    page read, from v6.3 (found by iov_iter_extract_pages() in kallsyms); none
    before, where the block layer takes references instead."""
    with open("/proc/kallsyms") as f:
        new = any(line.rstrip().endswith(" iov_iter_extract_pages") for line in f)
    return (FILE_MB << 20) // 4096 if new else 0


def test_dd_iflag_direct(gupctl, node, data_file) -> None:
    data, acquired, released = _checked(gupctl, node, "dd", f"if={data_file}", "of=/dev/null",
                                        f"bs={BLOCK}", "iflag=direct")  # fmt: skip
    assert acquired == released == data["acquired"] == data["released"] == _direct_pins()
    assert data["outstanding"] == 0 and not data["leaked"]


def test_fio_o_direct(gupctl, node, data_file) -> None:
    data, acquired, released = _checked(
        gupctl, node, "fio", "--name=odirect", f"--filename={data_file}", "--rw=read",
        f"--bs={BLOCK}", f"--size={FILE_MB}M", "--direct=1", "--ioengine=psync")  # fmt: skip
    assert acquired == released == data["acquired"] == _direct_pins()
    assert not data["leaked"]


def test_fio_io_uring_fixedbufs(gupctl, node, data_file) -> None:
    """Registered buffers: iodepth x bs pinned longterm at registration, on
    every kernel (6.1's io_uring pins them too), and unpinned at teardown."""
    data, acquired, released = _checked(
        gupctl, node, "fio", "--name=uring", f"--filename={data_file}", "--rw=read",
        f"--bs={BLOCK}", f"--size={FILE_MB}M", "--direct=1", "--ioengine=io_uring",
        "--fixedbufs", "--iodepth=4")  # fmt: skip
    registered = 4 * BLOCK // 4096
    assert acquired == released == data["acquired"]
    assert acquired >= registered  # fio may round its buffers up
    assert not data["leaked"]


def test_leak_is_caught(gupctl, node, tmp_path) -> None:
    pidfile, pages = tmp_path / "survivor", 16
    leaker = str(Path(__file__).with_name("io_uring_leak.py"))
    before = oracle_counters(node)
    ran = gupctl("check", "--json", "--settle", "1", "--", sys.executable, leaker,
                 str(pidfile), str(pages), check=False)  # fmt: skip
    survivor = int(pidfile.read_text())
    try:
        assert ran.returncode == 1, ran.stderr
        data = ran.json()
        assert data["returncode"] == 0 and data["leaked"]
        assert data["outstanding"] == data["outstanding_at_exit"] == pages
        assert "still outstanding" in ran.stderr and "a leak" in ran.stderr
        acquired, released = (a - b for a, b in zip(oracle_counters(node), before))
        assert acquired - released == pages
    finally:
        os.kill(survivor, signal.SIGKILL)

    def outstanding() -> int:
        now = oracle_counters(node)
        return (now[0] - before[0]) - (now[1] - before[1])

    assert settles(outstanding, 0) == 0  # the survivor's ring took the pins with it


def test_others_releases_cannot_hide_a_leak(gupctl, node, tmp_path) -> None:
    """Issue 25's case: one leaker's survivor holds 256 pins on the node, and
    they are released while `gupctl check` runs a second leaker of 256.  The
    node's deltas balance; gupctl must call it a leak or refuse to judge
    (exit 3), never balanced.  Then both survivors go and the node balances."""
    leaker, pages = str(Path(__file__).with_name("io_uring_leak.py")), 256
    first, second = tmp_path / "first", tmp_path / "second"
    before = oracle_counters(node)
    held = gupctl("check", "--settle", "1", "--", sys.executable, leaker, str(first),
                  str(pages), check=False)  # fmt: skip
    survivors = [int(first.read_text())]
    try:
        assert held.returncode == 1, held.stderr  # the first leak, still held
        # The second leaker, then time for the first survivor's release to land.
        script = '"$@" && sleep 3'
        argv = [sys.executable, "-m", "gupctl", "check", "--json", "--settle", "1", "--", "sh",
                "-c", script, "sh", sys.executable, leaker, str(second), str(pages)]  # fmt: skip
        check = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not (second.exists() and second.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors.append(int(second.read_text()))
        os.kill(survivors.pop(0), signal.SIGKILL)  # the first one's pins go, during CMD
        out, err = check.communicate(timeout=120)
        data = json.loads(out)
        assert data["held_before"] == pages, data
        assert data["verdict"] in ("leak", "inconclusive"), data
        assert check.returncode == {"leak": 1, "inconclusive": 3}[data["verdict"]], err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        if data["verdict"] == "inconclusive":
            assert "no verdict" in err and "pins were" in err, err
    finally:
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)

    def outstanding() -> int:
        now = oracle_counters(node)
        return (now[0] - before[0]) - (now[1] - before[1])

    assert settles(outstanding, 0) == 0


def test_a_node_with_cpus_is_not_exact(gupctl) -> None:
    """Node 0 has the guest's CPUs: the verdict says the count is not exact, and why."""
    ran = gupctl("check", "--numa-node", "0", "--json", "--", "true", check=False)
    assert ran.returncode == 0, ran.stderr
    assert ran.json()["exact"] is False
    assert "node 0 has CPUs" in ran.stderr and "not exact" in ran.stderr
    memory_only = gupctl("check", "--json", "--", "true")
    assert memory_only.json()["exact"] is True


def test_a_missing_command_is_one_line(gupctl) -> None:
    ran = gupctl("check", "--", "/nonexistent/cmd", check=False)
    assert ran.returncode == 1 and ran.stderr.count("\n") == 1
    assert "cannot run /nonexistent/cmd" in ran.stderr


def test_a_signal_ends_what_cmd_started(tmp_path) -> None:
    """SIGTERM to `gupctl check` ends CMD and every process below it: a shell
    that ignores SIGTERM, and the `sleep` it started, which once outlived both."""
    pids = tmp_path / "pids"
    script = f"trap '' TERM; sleep 300 & echo $! > {pids}; wait"
    argv = [sys.executable, "-m", "gupctl", "check", "--", "sh", "-c", script]
    check = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    sleep = int(pids.read_text())
    check.send_signal(signal.SIGTERM)
    _, stderr = check.communicate(timeout=60)
    assert check.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr, stderr
    deadline = time.monotonic() + 10
    while process.running(sleep) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process.running(sleep), "CMD's sleep outlived gupctl check"

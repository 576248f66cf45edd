"""benchmarks/strace.py: start-up to the first gup_test ioctl, from strace's log."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

# By its path, as test_bench_stats.py loads stats.py (see there why).
_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "strace.py"
_spec = importlib.util.spec_from_file_location("benchmark_strace", _PATH)
assert _spec is not None and _spec.loader is not None
strace = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(strace)

LOG = """\
2840  100.000000 execve("/usr/bin/nope", ["nope"], 0x7ff /* 35 vars */) = -1 ENOENT (No such file)
2840  100.500000 execve("/v/bin/gupctl", ["gupctl", "bench"], 0x7ff /* 35 vars */) = 0
2840  100.600000 ioctl(3, TCGETS, 0x7ffff6b9b9e0) = -1 ENOTTY (Inappropriate ioctl for device)
2841  101.250000 ioctl(4, _IOC(_IOC_READ|_IOC_WRITE, 0x67, 0x2, 0x60) <unfinished ...>
2840  101.300000 ioctl(4, _IOC(_IOC_READ|_IOC_WRITE, 0x67, 0x2, 0x60), 0x7ff) = 0
2840  102.000000 +++ exited with 0 +++
"""


def test_span_runs_from_the_exec_that_succeeded_to_the_first_gup_ioctl() -> None:
    assert strace.span(LOG) == pytest.approx(0.75)


def test_span_of_a_command_without_gup_ioctls_ends_at_its_exit() -> None:
    log = "\n".join(line for line in LOG.splitlines() if "0x67" not in line)
    assert strace.span(log) == pytest.approx(1.5)


def test_without_gup_ioctls_only_the_exec_d_process_exit_ends_the_span() -> None:
    """A thread or child that exits first does not end it; a kill does."""
    log = "\n".join(line for line in LOG.splitlines() if "0x67" not in line)
    log = log.replace("2840  102.000000 +++ exited with 0 +++",
                      "2841  101.000000 +++ exited with 0 +++\n"
                      "2840  102.000000 +++ killed by SIGKILL +++")  # fmt: skip
    assert strace.span(log) == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("log", "says"),
    [("100.5 execve(...) = 0\n", "without PID and time"),
     ("2840  100.0 execve(...) = -1 ENOENT\n", "no successful execve"),
     ("2840  100.0 execve(...) = 0\n2841  101.0 +++ exited with 0 +++\n", "neither")],
)  # fmt: skip
def test_a_log_it_cannot_read_is_an_error_that_says_why(log: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        strace.span(log)


def test_an_ioctl_of_another_type_does_not_end_the_span() -> None:
    log = LOG.replace("0x67", "0x54")  # 'T', the tty ioctls
    assert strace.span(log) == pytest.approx(1.5)


def test_span_reads_real_strace_output(tmp_path: Path) -> None:
    """strace's real format: a 'g' ioctl that fails (ENOTTY on /dev/null)
    still ends the span, and it comes after the start-up it measures.
    strace is one of .ci/setup's packages."""
    log = tmp_path / "log"
    code = ("import fcntl, time; time.sleep(0.2)\n"
            "try: fcntl.ioctl(open('/dev/null'), 0xc0606702, bytearray(0x60))\n"
            "except OSError: pass\ntime.sleep(0.5)")  # fmt: skip
    subprocess.run([*strace.ARGV, "-o", str(log), sys.executable, "-c", code], check=True)
    assert 0.2 <= strace.span(log.read_text()) < 0.7

"""`gupctl vm` killed with SIGTERM: QEMU must not outlive it.

execute() is run in a child process on a plan whose "QEMU" is a sleep with a
unique argument; the test sends the child SIGTERM and looks for that sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

CHILD = textwrap.dedent("""
    import socket, sys
    from pathlib import Path
    from gupctl.cli import signals
    from gupctl.vm import runner
    from gupctl.vm.kernel import Kernel

    run_dir = Path(sys.argv[1])
    streams = [socket.socketpair(), socket.socketpair()]
    plan = runner.Plan(Kernel("0", Path("/nonexistent"), None), run_dir,
                       ["sleep", sys.argv[2]], "", "tcg", streams)
    print("booted", flush=True)
    try:
        with signals.unwinding():
            runner.execute(plan, timeout=600)
    except KeyboardInterrupt as e:
        sys.exit(signals.exit_status(e))
""")


def _sleepers(tag: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"^sleep {tag}$"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def test_sigterm_kills_qemu_and_exits_143(tmp_path: Path) -> None:
    tag = f"{600 + os.getpid() % 1000}.{time.monotonic_ns() % 997}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), tag],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdout is not None and child.stdout.readline() == "booted\n"
    deadline = time.monotonic() + 10
    while not _sleepers(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sleepers(tag), "the stand-in QEMU never started"
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == 128 + signal.SIGTERM
    assert _sleepers(tag) == []
    assert not tmp_path.exists(), "the interrupted run's directory was left behind"


def test_sigint_exits_130_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any command: SIGINT (KeyboardInterrupt) becomes the shell's 128 + 2, without
    click's "Aborted!" or a traceback."""
    from gupctl import abi_report
    from gupctl.cli import main

    def interrupted(machine: str | None = None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(abi_report, "report", interrupted)
    result = CliRunner().invoke(main, ["abi"])
    assert result.exit_code == 128 + signal.SIGINT
    assert result.stderr == "" and result.stdout == ""

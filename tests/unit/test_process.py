"""gupctl.process.kill_tree: a command and everything it started, gone."""

from __future__ import annotations

import subprocess
import time

from gupctl import process


def test_kill_tree_reaches_what_a_shell_ignoring_sigterm_started(tmp_path) -> None:
    pids = tmp_path / "pids"
    # A shell that ignores SIGTERM, a child of its own, and a grandchild.
    script = f"trap '' TERM; sleep 300 & echo $! >> {pids}; " \
             f"sh -c 'sleep 300 & echo $! >> {pids}; wait' & wait"  # fmt: skip
    shell = subprocess.Popen(["sh", "-c", script])
    deadline = time.monotonic() + 10
    while (not pids.exists() or len(pids.read_text().split()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    sleeps = [int(p) for p in pids.read_text().split()]
    assert len(sleeps) == 2 and all(map(process.running, sleeps))
    process.kill_tree(shell.pid)
    assert shell.wait(timeout=10) == -9
    deadline = time.monotonic() + 10
    while any(map(process.running, sleeps)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in sleeps if process.running(p)], "a sleep outlived its shell"

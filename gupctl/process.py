"""Processes gupctl starts and ends: fork() that a signal cannot catch
halfway, and kill_tree() that leaves nothing of a command behind.

gupctl's CLI turns SIGINT, SIGTERM and SIGHUP into exceptions
(gupctl/cli/signals.py).  Arriving during os.fork(), such a signal's Python
handler can run inside an at-fork hook (logging registers some), where an
exception is printed as "Exception ignored" and dropped, and in the child,
whose copy of the interpreter still has the parent's signal pending.
Blocked across the fork, the signals wait for ordinary code: the parent
handles them after os.fork() returns; the child starts with none pending.
"""

from __future__ import annotations

import contextlib
import os
import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def fork() -> int:
    """os.fork(); in the child, SIGINT, SIGTERM and SIGHUP are back to their
    defaults, so a signal kills it instead of unwinding its parent's stack copy."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:
            for sig in SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return pid


def _stat(pid: int | str) -> list[bytes] | None:
    """/proc/PID/stat's fields after "PID (COMM)" (COMM may hold spaces and
    parentheses): STATE, PPID, ...; None for a process that is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()


def running(pid: int) -> bool:
    """Whether `pid` runs: it exists and is not a zombie waiting for its parent."""
    fields = _stat(pid)
    return fields is not None and fields[0] != b"Z"


def _parents() -> dict[int, int]:
    """Every process's parent (from /proc: no CONFIG_PROC_CHILDREN needed)."""
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat(entry.name)) is not None:
            parents[int(entry.name)] = int(fields[1])
    return parents


def _tree(pid: int) -> list[int]:
    """`pid` and the processes below it, now."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and every process below it.  Each is stopped first, until a
    look finds none new, so that none forks a child that escapes to init
    between the look and the kill (a shell ignoring SIGTERM, its `sleep`)."""
    stopped: list[int] = []
    while new := [p for p in _tree(pid) if p not in stopped]:
        for p in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGSTOP)
            stopped.append(p)
    for p in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)

"""Measuring an operation's pin balance: on a memory-only node, or between
control windows in which the system-wide counters must stand still.

The result is a vmstat.Balance; README.md ("Exact pin balance") says what
each way claims.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from gupctl.vmstat import Balance, Reading, refresh, snapshot

STAT_INTERVAL = Path("/proc/sys/vm/stat_interval")


def stat_interval() -> float:
    """vm.stat_interval in seconds: how often vmstat_update folds per-CPU batches."""
    try:
        return float(STAT_INTERVAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 1.0  # the kernel's default, HZ jiffies


def settle_seconds(interval: float | None = None) -> float:
    """How long after a pin the counters surely show it without stat_refresh.

    mm/vmstat.c: a CPU's batches are folded by its vmstat_update, which either
    re-queued itself round_jiffies_relative(stat_interval) after its last fold,
    or is queued at once by vmstat_shepherd, which runs every
    round_jiffies_relative(stat_interval); the rounding to whole seconds adds
    up to 0.75 s.  A pin is so folded within one interval and 0.75 s, plus
    scheduling delay (1.4 s was the most measured in the VM, interval 1 s).
    gupctl waits two intervals and one second.
    """
    return 2 * (stat_interval() if interval is None else interval) + 1.0


@contextlib.contextmanager
def _cpus_awake(period: float = 0.02) -> Iterator[None]:
    """A thread on each CPU this process may use, waking every `period` s.

    vmstat_update and vmstat_shepherd are deferrable work: their timers fire
    only once their CPU is awake anyway.  Waking every CPU keeps them on time
    while gupctl waits for them.
    """
    stop = threading.Event()

    def keep(cpu: int) -> None:
        try:
            os.sched_setaffinity(0, {cpu})  # this thread only
        except OSError:
            return
        while not stop.wait(period):
            pass

    threads = [threading.Thread(target=keep, args=(cpu,), daemon=True)
               for cpu in sorted(os.sched_getaffinity(0))]  # fmt: skip
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join()


class Reader:
    """Reads one scope's counters folded: by stat_refresh where permitted (root),
    otherwise by waiting `settle` seconds after what must be counted."""

    def __init__(self, node: int | None) -> None:
        self.node = node
        self.refreshed = refresh()
        self.settle = 0.0 if self.refreshed else settle_seconds()

    def now(self) -> float:
        return time.monotonic()

    def read(self) -> Reading:
        start = self.now()
        counters = snapshot(self.node, do_refresh=self.refreshed)
        return Reading(counters, start, self.now())

    def wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.refreshed:
            time.sleep(seconds)
            return
        with _cpus_awake():
            time.sleep(seconds)


#: Each control window lasts at least this long, and at least as long as the run.
WINDOW_MIN = 1.0
#: Attempts at a quiet measurement, and the seconds they may take in all.
ATTEMPTS = 4
BUDGET = 60.0
T = TypeVar("T")


def measure(op: Callable[[], T], expected: Callable[[], int | None], node: int | None,
            windows: bool = True, reader: Reader | None = None) -> tuple[T, Balance]:  # fmt: skip
    """Run `op` and count the pins around it; `expected()` is asked after it.

    As root on a node (a memory-only one, holding nothing but the memory `op`
    pins) one reading before and one after are enough: the node's deltas are
    the run's own.  Without `windows` the same two readings are taken
    anywhere, for show only: such a balance is never exact (verdict 'approx').

    Elsewhere (system-wide, or without root) each attempt reads the counters
    at the start of a control window, when it ends and the run starts, when
    the run ends, and at the end of a control window after it.  Each window
    lasts at least WINDOW_MIN and as long as `op` took (the first attempt's
    window before the run: WINDOW_MIN), plus `settle` without root.  The
    balance is exact only if both windows saw no pin at all and the run's
    deltas equal the pins expected.  What that claims: the run's pins were
    counted exactly, unless some other pin user started and stopped inside the
    run, unseen for a window's length on either side, and pinned exactly as
    many pages as gupctl's pins went uncounted (others' pins only add to both
    counters, never subtract).

    An attempt that is not exact is repeated, `op` included (the last
    attempt's result is returned), while others' pins could explain it (the
    windows moved, or the deltas exceed the expectation), up to ATTEMPTS
    attempts and BUDGET seconds.  A deficit with quiet windows is reported at
    once: no other pin user causes one.  The last attempt's Balance then
    reports what the windows saw, and a bound (see Balance), never "exact".

    Without root the readings are not refreshed: before each reading that
    must include something, gupctl waits `settle` (settle_seconds()) for the
    kernel to fold the per-CPU batches.  A reading then holds every pin
    counted at least `settle` before it and maybe later ones, so each window
    is `settle` longer, and the run's span includes `settle`.
    """
    reader = reader or Reader(node)
    exact_node = reader.refreshed and node is not None
    if exact_node or not windows:
        before = reader.read()
        result = op()
        after = reader.read()
        balance = Balance.between(before.counters, after.counters, expected())
        return result, balance if exact_node else replace(balance, exact=False)
    start = reader.now()
    span, attempt = 0.0, 0
    while True:
        attempt += 1
        began = reader.now()
        result, balance, span = _attempt(op, expected, reader, span, attempt)
        took = reader.now() - began
        if (not _worth_retrying(balance) or attempt >= ATTEMPTS
                or reader.now() - start + took > BUDGET):  # fmt: skip
            return result, balance


def _attempt(op: Callable[[], T], expected: Callable[[], int | None], reader: Reader,
             span: float, attempt: int) -> tuple[T, Balance, float]:  # fmt: skip
    """One attempt; also how long `op` took (the next attempt's `span`)."""
    settle = reader.settle
    c0 = reader.read()
    reader.wait(settle + max(WINDOW_MIN, span))
    c1 = reader.read()
    result = op()
    span = reader.now() - c1.end
    reader.wait(settle)
    r1 = reader.read()
    reader.wait(settle + max(WINDOW_MIN, span))
    c2 = reader.read()
    return result, Balance.windowed([c0, c1, r1, c2], expected(), settle, attempt), span


def _worth_retrying(b: Balance) -> bool:
    """Whether other pin users could explain a balance that is not exact."""
    if b.exact or b.expected is None:
        return False
    surplus = b.acquired >= b.expected and b.released >= b.expected
    return surplus or not b.quiet

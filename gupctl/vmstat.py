"""Pin accounting: nr_foll_pin_acquired and nr_foll_pin_released.

The kernel counts FOLL_PIN pins per 4 KiB subpage, per NUMA node, batched per
CPU (mm/vmstat.c).  Writing /proc/sys/vm/stat_refresh (root) folds the per-CPU
batches first, so reads are exact; without root, gupctl waits for the kernel's
own folding instead (balance.settle_seconds()).  The counters are system-wide:
anything else that pins (io_uring, O_DIRECT, 9p/netfs reads into user
buffers...) moves them too.  gupctl/balance.py therefore counts on a NUMA node
that holds nothing but the test memory where there is one (gupctl's VM provides
one, see gupctl/vm/qemu.py), and elsewhere brackets the run with control windows
in which the counters must stand still.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gupctl import numa
from gupctl.errors import GupctlError

ACQUIRED = "nr_foll_pin_acquired"
RELEASED = "nr_foll_pin_released"
PROC_VMSTAT = Path("/proc/vmstat")
STAT_REFRESH = Path("/proc/sys/vm/stat_refresh")


def read(path: Path = PROC_VMSTAT) -> dict[str, int]:
    """All `name value` lines of a vmstat file."""
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[name] = int(value)
    return out


def refresh() -> bool:
    """Fold per-CPU counter batches into the global ones; False if not permitted."""
    try:
        STAT_REFRESH.write_text("1\n")
        return True
    except OSError:
        return False


def can_refresh() -> bool:
    """Whether refresh() would be permitted (without refreshing)."""
    return os.access(STAT_REFRESH, os.W_OK)


@dataclass(frozen=True)
class PinCounters:
    """One reading of the two counters; `scope` is 'system' or 'nodeN'."""

    scope: str
    nr_foll_pin_acquired: int
    nr_foll_pin_released: int
    outstanding: int
    refreshed: bool


def snapshot(node: int | None = None, do_refresh: bool = True) -> PinCounters:
    """Read the counters system-wide, or of one NUMA node."""
    refreshed = refresh() if do_refresh else False
    if node is None:
        scope, values = "system", read(PROC_VMSTAT)
    else:
        scope, values = f"node{node}", read(numa.NODE_ROOT / f"node{node}" / "vmstat")
    if ACQUIRED not in values:
        # Before v5.7 ("mm/gup: track FOLL_PIN pages") there is nothing to read.
        raise GupctlError(
            f"{ACQUIRED} is not in the {scope} vmstat: this kernel predates "
            "FOLL_PIN accounting (v5.7)"
        )
    acq, rel = values[ACQUIRED], values.get(RELEASED, 0)
    return PinCounters(scope, acq, rel, acq - rel, refreshed)


def snapshot_all() -> list[PinCounters]:
    """System-wide counters, then each node's (one refresh for all)."""
    refreshed = refresh()
    out = [snapshot(None, do_refresh=False)]
    out += [snapshot(n, do_refresh=False) for n in numa.nodes()]
    return [
        PinCounters(
            c.scope, c.nr_foll_pin_acquired, c.nr_foll_pin_released, c.outstanding, refreshed
        )
        for c in out
    ]


#: Headroom of Balance.bound over the background rate measured in the windows.
BOUND_FACTOR = 2.0


@dataclass(frozen=True)
class Balance:
    """Counter deltas around an operation, compared with the pins it should take.

    `expected` is None where gupctl could not tell how many pins to expect
    (pages that may be the shared zero page, and no CAP_SYS_ADMIN to look):
    such a balance is never exact.

    The fields after `exact` say how the deltas were read (balance.measure()).
    `refreshed`: each reading followed /proc/sys/vm/stat_refresh; otherwise
    gupctl waited `settle_seconds` for the kernel to fold the per-CPU batches.
    `window_seconds`: the shorter of the control windows before and after the
    run (0: none, on a node holding only the test memory, read as root).
    `background_*`: what the counters moved by in those windows, and the busier
    window's rate.  `run_seconds`: the span whose pins the run's deltas may
    include.  `bound`: the most pins of other users the deltas may hold,
    ceil(BOUND_FACTOR x rate x run_seconds): an estimate that holds while they
    pin no faster during the run than BOUND_FACTOR times their rate in the
    windows, not a proof.  `before`/`after`: the counters (acquired, released)
    read at the run's two edges.
    """

    scope: str
    expected: int | None
    acquired: int
    released: int
    outstanding_before: int
    outstanding_after: int
    exact: bool
    refreshed: bool = True
    settle_seconds: float = 0.0
    window_seconds: float = 0.0
    background_acquired: int = 0
    background_released: int = 0
    background_per_second: float = 0.0
    run_seconds: float = 0.0
    bound: int = 0
    attempts: int = 1
    before: tuple[int, int] | None = None
    after: tuple[int, int] | None = None

    @property
    def verdict(self) -> str:
        """'exact'; 'unknown' (no expectation); 'approx' (system-wide or not
        refreshed, and no control windows: no claim); 'bounded' (other users'
        pins were seen, and the deltas exceed the expectation by at most
        `bound`: never less, since others' pins only add); else 'MISMATCH'."""
        if self.exact:
            return "exact"
        if self.expected is None:
            return "unknown"
        if not self.window_seconds and (self.scope == "system" or not self.refreshed):
            return "approx"
        surplus = (self.acquired - self.expected, self.released - self.expected)
        if self.bound > 0 and all(0 <= s <= self.bound for s in surplus):
            return "bounded"
        return "MISMATCH"

    @property
    def quiet(self) -> bool:
        """Whether the control windows (if any) saw no pin at all."""
        return self.background_acquired == 0 and self.background_released == 0

    @classmethod
    def between(cls, before: PinCounters, after: PinCounters, expected: int | None) -> Balance:
        acquired = after.nr_foll_pin_acquired - before.nr_foll_pin_acquired
        released = after.nr_foll_pin_released - before.nr_foll_pin_released
        exact = (
            expected is not None
            and acquired == expected
            and released == expected
            and after.outstanding == before.outstanding
        )
        return cls(
            before.scope, expected, acquired, released, before.outstanding, after.outstanding,
            exact, refreshed=before.refreshed and after.refreshed,
            before=(before.nr_foll_pin_acquired, before.nr_foll_pin_released),
            after=(after.nr_foll_pin_acquired, after.nr_foll_pin_released),
        )  # fmt: skip

    @classmethod
    def windowed(cls, readings: Sequence[Reading], expected: int | None, settle: float,
                 attempts: int) -> Balance:  # fmt: skip
        """From balance.measure()'s four readings: the control window's start, the run's
        start and end, and the after window's end."""
        c0, c1, r1, c2 = readings
        balance = cls.between(c1.counters, r1.counters, expected)
        windows = [(_moved(c0, c1), c1.start - c0.end), (_moved(r1, c2), c2.start - r1.end)]
        rate = max(max(moved) / max(length, 1e-3) for moved, length in windows)
        run_seconds = r1.end - c1.start + settle
        return replace(
            balance,
            exact=balance.exact and not any(any(moved) for moved, _ in windows),
            settle_seconds=settle,
            window_seconds=round(min(length for _, length in windows), 3),
            background_acquired=sum(moved[0] for moved, _ in windows),
            background_released=sum(moved[1] for moved, _ in windows),
            background_per_second=round(rate, 3),
            run_seconds=round(run_seconds, 3),
            bound=math.ceil(BOUND_FACTOR * rate * run_seconds),
            attempts=attempts,
        )


@dataclass(frozen=True)
class Reading:
    """One reading of the counters, and when it began and ended (time.monotonic())."""

    counters: PinCounters
    start: float
    end: float


def _moved(a: Reading, b: Reading) -> tuple[int, int]:
    return (b.counters.nr_foll_pin_acquired - a.counters.nr_foll_pin_acquired,
            b.counters.nr_foll_pin_released - a.counters.nr_foll_pin_released)  # fmt: skip

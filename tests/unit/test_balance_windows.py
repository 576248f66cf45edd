"""balance.measure(): control windows, retries and bounds, on a simulated clock.

FakeReader plays the kernel: pins are events at simulated times; a reading
shows those at least `lag` seconds old (the per-CPU batches vmstat_update has
folded; 0 as root, where stat_refresh folds them); waiting advances the
clock, and a background pinner adds one pin and one unpin every 1/rate s.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import patch_ioctl

from gupctl import balance, vmstat
from gupctl.vmstat import Balance, PinCounters, Reading

PINS = 512


class FakeReader(balance.Reader):
    def __init__(
        self,
        settle: float = 0.0,
        lag: float = 0.0,
        node: int | None = None,
        rate: float = 0.0,
        background: tuple[float, float] = (0.0, 1e9),
    ) -> None:
        self.node, self.refreshed, self.settle = node, settle == 0, settle
        self.t, self.lag, self.rate, self.background = 0.0, lag, rate, background
        self.events: list[tuple[float, int, int]] = []
        self.reads = 0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        start, end = self.t, self.t + seconds
        if self.rate:
            k = int(start * self.rate) + 1
            while k / self.rate <= end:
                at = k / self.rate
                if self.background[0] <= at < self.background[1]:
                    self.events.append((at, 1, 1))
                k += 1
        self.t = end

    def wait(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))

    def read(self) -> Reading:
        self.reads += 1
        start = self.t
        seen = [e for e in self.events if e[0] <= self.t - self.lag]
        acq, rel = sum(e[1] for e in seen), sum(e[2] for e in seen)
        self.advance(0.001)
        return Reading(PinCounters("system" if self.node is None else f"node{self.node}",
                                   acq, rel, acq - rel, self.refreshed), start, self.t)  # fmt: skip


def pinning(reader: FakeReader, pins: int = PINS, seconds: float = 0.05):
    """An op that pins and unpins `pins` pages over `seconds`, counting its calls."""
    calls = []

    def op() -> str:
        calls.append(reader.t)
        reader.events.append((reader.t + seconds / 2, pins, pins))
        reader.advance(seconds)
        return f"run {len(calls)}"

    return op, calls


def test_quiet_system_is_exact_after_one_attempt() -> None:
    reader = FakeReader()
    op, calls = pinning(reader)
    result, b = balance.measure(op, lambda: PINS, None, reader=reader)
    assert result == "run 1" and len(calls) == 1 and reader.reads == 4
    assert b.exact and b.verdict == "exact" and b.quiet and b.bound == 0
    assert (b.acquired, b.released, b.attempts) == (PINS, PINS, 1)
    assert b.window_seconds >= balance.WINDOW_MIN and b.settle_seconds == 0
    assert b.before == (0, 0) and b.after == (PINS, PINS)


def test_steady_background_is_never_exact_and_bounded() -> None:
    reader = FakeReader(rate=40)
    op, calls = pinning(reader)
    result, b = balance.measure(op, lambda: PINS, None, reader=reader)
    assert len(calls) == balance.ATTEMPTS and result == f"run {balance.ATTEMPTS}"
    assert not b.exact and b.verdict == "bounded" and not b.quiet
    assert b.background_per_second == pytest.approx(40, rel=0.1)
    surplus = b.acquired - PINS
    assert 0 < surplus <= b.bound and b.released - PINS <= b.bound
    assert b.bound == pytest.approx(vmstat.BOUND_FACTOR * 40 * b.run_seconds, abs=4)


def test_background_that_stops_is_retried_until_quiet() -> None:
    reader = FakeReader(rate=40, background=(0.0, 1.5))
    op, calls = pinning(reader)
    _, b = balance.measure(op, lambda: PINS, None, reader=reader)
    assert len(calls) == 2 and b.exact and b.attempts == 2
    # The second attempt's windows last as long as the first run did, at least.
    assert b.window_seconds >= balance.WINDOW_MIN


def test_background_inside_the_run_only_is_a_mismatch_retried() -> None:
    """Quiet windows and a surplus: others' pins could explain it, so retried;
    the same surplus every time stays a MISMATCH (bound 0)."""
    reader = FakeReader()
    op, calls = pinning(reader, pins=PINS + 3)
    _, b = balance.measure(op, lambda: PINS, None, reader=reader)
    assert len(calls) == balance.ATTEMPTS
    assert b.quiet and b.bound == 0 and b.verdict == "MISMATCH"


def test_deficit_with_quiet_windows_is_reported_at_once() -> None:
    reader = FakeReader()
    op, calls = pinning(reader, pins=PINS - 12)
    _, b = balance.measure(op, lambda: PINS, None, reader=reader)
    assert len(calls) == 1 and b.verdict == "MISMATCH" and not b.exact


def test_deficit_under_background_is_a_mismatch_not_bounded() -> None:
    reader = FakeReader(rate=5)
    op, _ = pinning(reader, pins=PINS - 100)
    _, b = balance.measure(op, lambda: PINS, None, reader=reader)
    assert b.verdict == "MISMATCH"


def test_unknown_expectation_is_not_retried() -> None:
    reader = FakeReader(rate=40)
    op, calls = pinning(reader)
    _, b = balance.measure(op, lambda: None, None, reader=reader)
    assert len(calls) == 1 and b.verdict == "unknown" and not b.exact


def test_budget_stops_the_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(balance, "BUDGET", 3.0)
    reader = FakeReader(rate=40)
    op, calls = pinning(reader)
    balance.measure(op, lambda: PINS, None, reader=reader)
    assert len(calls) == 1  # one attempt takes 2 s: a second would pass 3 s


def test_root_on_a_node_reads_once_each_side() -> None:
    reader = FakeReader(node=1, rate=40)  # the rate is elsewhere: the node sees only ours
    reader.rate = 0
    op, calls = pinning(reader)
    _, b = balance.measure(op, lambda: PINS, 1, reader=reader)
    assert len(calls) == 1 and reader.reads == 2 and reader.t < 0.1
    assert b.exact and b.scope == "node1" and b.window_seconds == 0


def test_without_windows_system_wide_is_approximate() -> None:
    reader = FakeReader()
    op, _ = pinning(reader)
    _, b = balance.measure(op, lambda: PINS, None, windows=False, reader=reader)
    assert reader.reads == 2 and not b.exact and b.verdict == "approx"
    assert (b.acquired, b.released) == (PINS, PINS)


def test_not_root_waits_out_the_fold() -> None:
    """Pins show `lag` s late: each reading after the run waits `settle` > lag."""
    reader = FakeReader(settle=3.0, lag=1.4, node=1)
    op, calls = pinning(reader)
    _, b = balance.measure(op, lambda: PINS, 1, reader=reader)
    assert b.exact and not b.refreshed and b.settle_seconds == 3.0
    assert b.window_seconds >= 3.0 + balance.WINDOW_MIN - 0.01
    assert b.run_seconds >= 3.0


def test_not_root_with_too_short_a_wait_is_caught_by_the_window() -> None:
    """If the kernel folded later than `settle`, the run's reading misses pins,
    and they land in the after window: not exact, retried, never exact."""
    reader = FakeReader(settle=0.5, lag=1.4)
    reader.refreshed = False
    op, calls = pinning(reader)
    _, b = balance.measure(op, lambda: PINS, None, reader=reader)
    assert not b.exact and len(calls) == balance.ATTEMPTS


def test_settle_follows_stat_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    interval = tmp_path / "stat_interval"
    interval.write_text("2\n")
    monkeypatch.setattr(balance, "STAT_INTERVAL", interval)
    assert balance.stat_interval() == 2 and balance.settle_seconds() == 5
    monkeypatch.setattr(balance, "STAT_INTERVAL", tmp_path / "none")
    assert balance.settle_seconds() == 3  # the kernel's default interval, 1 s


def test_balance_json_round_trip_and_old_documents() -> None:
    reader = FakeReader(rate=40)
    op, _ = pinning(reader)
    _, b = balance.measure(op, lambda: PINS, None, reader=reader)
    again = Balance(**json.loads(json.dumps(asdict(b))))
    assert again.verdict == b.verdict and again.bound == b.bound
    old = {"scope": "node1", "expected": 1, "acquired": 1, "released": 1,
           "outstanding_before": 0, "outstanding_after": 0, "exact": True}  # fmt: skip
    assert Balance(**old).verdict == "exact" and Balance(**old).window_seconds == 0


def test_cli_reports_background_and_fails_check(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench --check-balance under background: the table's bound, a note, one error line."""
    from gupctl.cli import main

    fake = tmp_path / "gup_test"
    fake.write_bytes(b"")
    reader = FakeReader(rate=40)

    def ioctl(self, command, arg=None) -> None:
        reader.events.append((reader.t, 16, 16))  # 64K: 16 pages
        reader.advance(0.01)

    patch_ioctl(monkeypatch, ioctl)
    monkeypatch.setattr(balance, "Reader", lambda node: reader)
    result = cli.invoke(main, ["bench", "-s", "64K", "--device", str(fake), "--check-balance"])
    assert result.exit_code == 1
    assert "bounded" in result.stdout and "others' pins" in result.stdout
    assert "other pin users moved the counters" in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "not exact" in errors[0] and "--numa-node" in errors[0]

    reader.rate = 0
    result = cli.invoke(main, ["bench", "-s", "64K", "--device", str(fake), "--check-balance",
                               "--json"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (run,) = json.loads(result.stdout)
    assert run["balance"]["exact"] and run["balance"]["window_seconds"] >= 1
    assert "stood still in control windows" in result.stderr

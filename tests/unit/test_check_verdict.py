"""gupctl check's verdict: only CMD's pins may decide it.

The cases are the counts the kernel's node counters would give; the kernel
test (tests/kernel/test_check.py) makes them with real pinners."""

from __future__ import annotations

from gupctl.check import CheckResult


def _result(outstanding: int, held_before: int = 0, moved_before: int = 0,
            moved_after: int = 0) -> CheckResult:  # fmt: skip
    return CheckResult(command=["cmd"], returncode=0, scope="node1", seconds=1.0,
                       acquired=256, released=256 - outstanding,
                       outstanding_at_exit=outstanding, outstanding=outstanding,
                       settle_seconds=0.0, leaked=outstanding > 0, held_before=held_before,
                       moved_before=moved_before, moved_after=moved_after)  # fmt: skip


def test_still_windows_and_nothing_held_judge() -> None:
    assert (_result(0).verdict, _result(0).reason) == ("balanced", "")
    assert _result(16).verdict == "leak"


def test_pins_held_before_cannot_make_a_balance() -> None:
    """Another process held 256 pins when CMD started and released them while
    CMD leaked 256: the deltas balance, and the verdict must not."""
    r = _result(0, held_before=256)
    assert r.verdict == "inconclusive"
    assert r.reason.startswith("256 pins were held on node1 when CMD started")
    # Releases can only hide outstanding pins: what is left is a leak.
    assert _result(16, held_before=256).verdict == "leak"


def test_pins_moving_around_cmd_leave_no_verdict() -> None:
    for r in (_result(0, moved_before=3), _result(16, moved_after=1)):
        assert r.verdict == "inconclusive"
        assert "another process pins memory there" in r.reason
    assert "in the 1 s before CMD" in _result(0, moved_before=3).reason
    assert "after it settled" in _result(0, moved_after=1).reason

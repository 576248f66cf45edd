"""benchmarks/stats.py: the bootstrap intervals run.py reports."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

# By its path: the unit tests also run against an installed sdist (tests/
# packaging.py), where the checkout must not come first on sys.path.
_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "stats.py"
_spec = importlib.util.spec_from_file_location("benchmark_stats", _PATH)
assert _spec is not None and _spec.loader is not None
stats = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = stats  # dataclasses look their module up there
_spec.loader.exec_module(stats)


def _rounds(mean: float, n: int, rng: random.Random) -> list[list[float]]:
    return [[rng.gauss(mean, mean * 0.05) for _ in range(5)] for _ in range(n)]


def test_same_distribution_covers_one_and_a_shift_does_not() -> None:
    rng = random.Random(1)
    a, b = _rounds(100, 7, rng), _rounds(100, 7, rng)
    same = stats.ratio(a, b)
    assert same.low <= same.value <= same.high and same.contains(1.0)
    shifted = stats.ratio(a, _rounds(120, 7, rng))
    assert not shifted.contains(1.0) and 1.1 < shifted.value < 1.3
    assert same.within(stats.Ratio(1.0, 0.5, 1.5)) and not shifted.within(same)


def test_pairs_rounds_and_needs_two() -> None:
    # Round-level drift shared by both sides cancels in a paired bootstrap.
    a = [[10.0], [20.0], [30.0], [40.0]]
    b = [[11.0], [22.0], [33.0], [44.0]]
    r = stats.scalar_ratio([10, 20, 30, 40], [11, 22, 33, 44])
    assert stats.ratio(a, b) == r
    assert r.low == pytest.approx(1.1) and r.high == pytest.approx(1.1)
    for bad in (([[1.0]], [[1.0]]), ([[1.0], [2.0]], [[1.0]])):
        try:
            stats.ratio(*bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_unpaired_draws_each_side_on_its_own() -> None:
    # The same drift no longer cancels: unpaired, the interval widens around
    # the same point estimate.
    a = [[10.0], [20.0], [30.0], [40.0]]
    b = [[11.0], [22.0], [33.0], [44.0]]
    paired, unpaired = stats.ratio(a, b), stats.ratio(a, b, paired=False)
    assert unpaired.value == paired.value
    assert unpaired.low < 1.0 < 2.0 < unpaired.high
    rng = random.Random(2)
    assert stats.ratio(_rounds(100, 7, rng), _rounds(100, 5, rng), paired=False).contains(1.0)


def test_median_interval_covers_the_true_median_and_narrows_with_samples() -> None:
    rng = random.Random(2)
    few = stats.median_interval([rng.gauss(100, 10) for _ in range(10)])
    many = stats.median_interval([rng.gauss(100, 10) for _ in range(400)])
    assert few.contains(100) and many.contains(100)
    assert many.high - many.low < few.high - few.low
    with pytest.raises(ValueError):
        stats.median_interval([1.0])

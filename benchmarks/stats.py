"""Ratios with 95% confidence intervals, by a paired bootstrap over rounds.

A round is the unit that repeats independently: within one process the
samples share its memory, its THP luck and the guest's state at that moment,
so they are not independent draws.  Each bootstrap replicate therefore draws
whole rounds with replacement, the same rounds for both sides (the two sides
of a round ran back to back, under the same drift; unless the sides ran in
different boots), pools their samples, and takes the ratio of the medians.
The interval is the 2.5th to 97.5th percentile of the replicates (the
percentile bootstrap).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

REPLICATES = 2000
SEED = 20261206  # fixed: the same data give the same interval


@dataclass(frozen=True)
class Ratio:
    """B/A: the point estimate on all rounds, and its 95% interval."""

    value: float
    low: float
    high: float

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def within(self, band: Ratio) -> bool:
        """Whether this interval lies inside `band`'s."""
        return band.low <= self.low and self.high <= band.high

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def pooled_median(rounds: Sequence[Sequence[float]], picks: Sequence[int] | None = None) -> float:
    """The median of the samples of the rounds picked (default: all), pooled."""
    every = range(len(rounds)) if picks is None else picks
    return statistics.median([v for i in every for v in rounds[i]])


def ratio(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]],
          paired: bool = True) -> Ratio:  # fmt: skip
    """median(B) / median(A), each pooled over rounds; a[i] and b[i] are round i's
    samples of each side.  Unpaired (two kernels, two boots: round i of one has
    nothing in common with round i of the other), each side draws its rounds
    on its own."""
    if (paired and len(a) != len(b)) or min(len(a), len(b)) < 2:
        raise ValueError("a ratio needs at least 2 rounds a side, the same rounds if paired")
    value = pooled_median(b) / pooled_median(a)
    rng = random.Random(SEED)
    replicates = []
    for _ in range(REPLICATES):
        picks = [rng.randrange(len(a)) for _ in a]
        other = picks if paired else [rng.randrange(len(b)) for _ in b]
        replicates.append(pooled_median(b, other) / pooled_median(a, picks))
    replicates.sort()
    low = replicates[int(0.025 * REPLICATES)]
    high = replicates[int(0.975 * REPLICATES) - 1]
    return Ratio(value, low, high)


def scalar_ratio(a: Sequence[float], b: Sequence[float]) -> Ratio:
    """ratio() of one value per round a side."""
    return ratio([[v] for v in a], [[v] for v in b])


def median_interval(samples: Sequence[float]) -> Ratio:
    """The median of independent samples (one process start each), and its 95%
    interval by resampling the samples themselves."""
    if len(samples) < 2:
        raise ValueError("an interval needs at least 2 samples")
    rng = random.Random(SEED)
    replicates = sorted(
        statistics.median(rng.choices(samples, k=len(samples))) for _ in range(REPLICATES)
    )
    low, high = replicates[int(0.025 * REPLICATES)], replicates[int(0.975 * REPLICATES) - 1]
    return Ratio(statistics.median(samples), low, high)

"""Statistics over seeds that a reader can act on: mean, sample standard deviation, standard
error and a t-distribution confidence interval, and the paired per-seed difference of two
rows (the same seeds: the shared data order and initialisation cancel out of the difference).

With n values the interval is mean ± t_{1-(1-level)/2, n-1} · s / sqrt(n) (Student's t; the
quantile: scipy.special.stdtrit, what scipy.stats.t.ppf computes, without the
0.9 s import of scipy.stats).  With one value no interval exists: every spread is None and
the report says "one seed: no interval" rather than print ± 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from scipy import special

LEVEL = 0.95
ONE_SEED = "one seed: no interval"


@dataclass(frozen=True)
class Estimate:
    """The mean of n values and its uncertainty (None where n < 2)."""

    mean: float
    n: int
    std: float | None = None
    se: float | None = None
    low: float | None = None
    high: float | None = None

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies entirely on one side of 0 (a significant difference)."""
        return self.low is not None and (self.low > 0 or self.high < 0)


def t_quantile(n: int, level: float = LEVEL) -> float:
    """The two-sided t quantile for n values (n - 1 degrees of freedom), e.g. 4.303 for n = 3."""
    return float(special.stdtrit(n - 1, 1 - (1 - level) / 2))


def estimate(values: Sequence[float], level: float = LEVEL) -> Estimate | None:
    """Mean, std (ddof=1), se and the `level` t interval of `values` (NaNs left out; None if none)."""
    values = [float(v) for v in values if v is not None and not math.isnan(v)]
    n = len(values)
    if n == 0:
        return None
    mean = sum(values) / n
    if n == 1:
        return Estimate(mean, 1)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    se = std / math.sqrt(n)
    half = t_quantile(n, level) * se
    return Estimate(mean, n, std, se, mean - half, mean + half)


def paired_difference(values: Mapping[int, float], reference: Mapping[int, float],
                      level: float = LEVEL) -> Estimate | None:
    """The estimate of values[s] - reference[s] over the seeds s both have (None if none)."""
    seeds = sorted(set(values) & set(reference))
    return estimate([values[s] - reference[s] for s in seeds], level)

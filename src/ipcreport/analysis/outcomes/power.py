"""What a comparison could have detected, and its interval in words."""

from __future__ import annotations

import numpy as np
from scipy import stats

from .common import Z95, Estimate

Z80 = float(stats.norm.ppf(0.80))


def minimum_detectable_ratio(se: float, power: float = 0.80) -> float:
    """The smallest fall (as a rate ratio below 1) a two-sided 5% test detects with ``power``,
    given the standard error of the log rate ratio: exp(-(z_0.975 + z_power) x se)."""
    return float(np.exp(-(Z95 + stats.norm.ppf(power)) * se))


def interval_words(est: Estimate) -> str:
    """A ratio's 95% interval in words: 'consistent with anything from a 28% fall to a 2% rise'."""
    def change(r: float) -> str:
        pct = abs(r - 1) * 100
        if pct < 0.5:
            return "no change"
        return f"a {pct:.0f}% {'fall' if r < 1 else 'rise'}"
    return f"consistent with anything from {change(est.low)} to {change(est.high)}"

"""Small-number suppression for everything published.

NHS Digital practice (shared/domain.md): counts of people from 1 to 7 are suppressed and other
counts rounded to the nearest 5; a hidden cell must not be recoverable from a total, so when a
single cell of a set that is shown with its total is suppressed, the next smallest is too
(secondary suppression). Means, rates and shares are not shown for groups below the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SUPPRESSED = "[c]"  # the ONS/GSS symbol for a value held back for confidentiality


@dataclass(frozen=True)
class Policy:
    threshold: int = 7  # counts 1..threshold are suppressed
    rounding: int = 5  # other counts are rounded to a multiple of this

    def hidden(self, count: float) -> bool:
        return 0 < count <= self.threshold

    def publish_count(self, count: float) -> str:
        """One count as published: suppressed, or rounded."""
        if pd.isna(count):
            return ""
        if self.hidden(count):
            return SUPPRESSED
        return f"{int(self.rounding * round(count / self.rounding)):,}"


DEFAULT = Policy()


def suppression_mask(counts: pd.Series, policy: Policy = DEFAULT, with_total: bool = True) -> pd.Series:
    """Which cells of a set of counts must be hidden, primary and (if a total is shown) secondary."""
    hidden = counts.map(policy.hidden).astype(bool)
    if with_total and hidden.sum() == 1 and len(counts) > 1:
        # One hidden cell plus a total gives it away: also hide the smallest other non-zero cell.
        others = counts[~hidden & (counts > 0)]
        if not others.empty:
            hidden[others.idxmin()] = True
    return hidden


def publish_counts(counts: pd.Series, policy: Policy = DEFAULT, with_total: bool = True) -> pd.Series:
    """Counts as text ready to print, suppressed and rounded."""
    hidden = suppression_mask(counts, policy, with_total)
    return pd.Series(
        np.where(hidden, SUPPRESSED, counts.map(policy.publish_count)), index=counts.index, name=counts.name
    )


def publish_total(counts: pd.Series, policy: Policy = DEFAULT) -> str:
    return policy.publish_count(float(counts.sum()))


def safe_count(count: float, policy: Policy = DEFAULT) -> str:
    """A single count for a sentence: 'fewer than 8' rather than the number when it is small."""
    if policy.hidden(count):
        return f"fewer than {policy.threshold + 1}"
    return policy.publish_count(count)


def enough(count: float, policy: Policy = DEFAULT) -> bool:
    """Whether a mean, rate or share over ``count`` people may be shown."""
    return count > policy.threshold

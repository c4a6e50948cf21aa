"""Small-number suppression for everything published: the one place its rules live.

NHS Digital practice (shared/domain.md): counts of people from 1 to 7 are suppressed and other
counts rounded to the nearest 5. A hidden cell must not be recoverable from a total that is
shown with it (secondary suppression): when a set of counts is published with its total, the
hidden cells are at least two and add up to more than the threshold and to more than their
number (otherwise their sum, total minus the visible cells, would give them away). Means, rates and
shares are not shown for groups at or below the threshold.

Every table, chart label and sentence in a briefing that shows a count of people goes through
:func:`publish_counts`, :func:`publish_total` or :func:`safe_count`.
"""

from __future__ import annotations

import re
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

    def rounded(self, count: float) -> int:
        return int(self.rounding * np.floor(count / self.rounding + 0.5))  # halves round up, as people expect

    def publish_count(self, count: float) -> str:
        """One count as published: suppressed, or rounded."""
        if pd.isna(count):
            return ""
        if self.hidden(count):
            return SUPPRESSED
        return f"{self.rounded(count):,}"


DEFAULT = Policy()


def _exposed(values: pd.Series, hidden: pd.Series, policy: Policy) -> bool:
    """Whether someone holding the total could pin down a hidden cell: the total minus the
    visible cells gives the hidden cells' sum, so it must not be a single cell, a small count,
    or as small as the number of hidden cells (then every hidden cell would have to be 1)."""
    k, total = int(hidden.sum()), float(values[hidden].sum())
    return k > 0 and (k == 1 or total <= policy.threshold or total <= k)


def suppression_mask(counts: pd.Series, policy: Policy = DEFAULT, with_total: bool = True) -> pd.Series:
    """Which cells of a set of counts must be hidden: primary, and secondary if a total is shown.

    Secondary suppression hides the smallest visible non-zero cells until no hidden cell can be
    pinned down from the total. If no cell is left to hide, the total must be hidden too (see
    :func:`total_hidden`).
    """
    values = counts.fillna(0).astype(float)
    hidden = values.map(policy.hidden).astype(bool)
    if not with_total:
        return hidden
    while _exposed(values, hidden, policy):
        candidates = values[~hidden & (values > 0)]
        if candidates.empty:
            break
        hidden[candidates.idxmin()] = True
    return hidden


def total_hidden(counts: pd.Series, policy: Policy = DEFAULT) -> bool:
    """Whether the total of a set of counts must itself be hidden: when it is small, or when
    secondary suppression could not hide enough cells to protect the hidden ones."""
    values = counts.fillna(0).astype(float)
    if policy.hidden(values.sum()):
        return True
    return _exposed(values, suppression_mask(counts, policy), policy)


def publish_counts(counts: pd.Series, policy: Policy = DEFAULT, with_total: bool = True) -> pd.Series:
    """Counts as text ready to print, suppressed and rounded."""
    hidden = suppression_mask(counts, policy, with_total)
    return pd.Series(
        np.where(hidden, SUPPRESSED, counts.map(policy.publish_count)), index=counts.index, name=counts.name
    )


def publish_total(counts: pd.Series, policy: Policy = DEFAULT) -> str:
    return SUPPRESSED if total_hidden(counts, policy) else policy.publish_count(float(counts.sum()))


def safe_count(count: float, policy: Policy = DEFAULT) -> str:
    """A single count for a sentence: 'fewer than 8' rather than the number when it is small."""
    if policy.hidden(count):
        return f"fewer than {policy.threshold + 1}"
    return policy.publish_count(count)


def by_enough_people(values: pd.Series, people: pd.Series, policy: Policy = DEFAULT) -> pd.Series:
    """Values (a mean, a total, a month's spend) kept only where more than the threshold of
    people stand behind them; missing (withheld) elsewhere."""
    counts = people.reindex(values.index).fillna(0)
    return values.where(counts > policy.threshold)


def published_share(part: float, whole: float, policy: Policy = DEFAULT) -> float | None:
    """A share of people as it may be published: the rounded part over the rounded whole, so
    that the share times a published (rounded) denominator gives back the rounded count, never
    the exact one; None where the whole is too small to describe (or nothing to divide by).
    A hidden part (1 to 7 of them) makes the share None too: it would give the count back."""
    if pd.isna(part) or pd.isna(whole) or not enough(whole, policy) or policy.hidden(part):
        return None
    shown_whole = policy.rounded(whole)
    return policy.rounded(part) / shown_whole if shown_whole else None


def enough(count: float, policy: Policy = DEFAULT) -> bool:
    """Whether a mean, rate or share over ``count`` people may be shown."""
    return count > policy.threshold


# Counts of people written in words, as analyses word their results and their reasons:
# "from 1,591 people", "(7 budget holders, 199 comparison)", "fewest in any group and period: 4".
_PEOPLE_IN_WORDS = re.compile(
    r"(?<![\d.,])(\d[\d,]*)(?=\s+(?:people|persons?|budget\s+holders?|holders?|comparison|questionnaires?|"
    r"baseline questionnaires?)\b)")
_FEWEST = re.compile(r"fewest in any group and period: (\d[\d,]*)")
# ... and after the words, in brackets: "too few budget holders (1) for the model".
_PEOPLE_THEN_COUNT = re.compile(
    r"(\b(?:people|persons?|budget\s+holders?|holders?|questionnaires?|budgets?|periods?)\s*\\?\()(\d[\d,]*)(\\?\))")


def scrub(text: str, policy: Policy = DEFAULT) -> str:
    """A sentence made safe to publish: every count of people in it rounded, or said to be
    fewer than the threshold; the smallest event count behind a withheld estimate likewise."""
    def people(match: re.Match) -> str:
        return safe_count(int(match.group(1).replace(",", "")), policy)

    def fewest(match: re.Match) -> str:
        return f"fewest in any group and period: {safe_count(int(match.group(1).replace(',', '')), policy)}"

    def bracketed(match: re.Match) -> str:
        return f"{match.group(1)}{safe_count(int(match.group(2).replace(',', '')), policy)}{match.group(3)}"

    return _PEOPLE_THEN_COUNT.sub(bracketed, _FEWEST.sub(fewest, _PEOPLE_IN_WORDS.sub(people, text)))

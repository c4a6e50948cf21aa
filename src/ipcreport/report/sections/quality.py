"""Data quality: what the dataset holds for this site and what the checks said."""

from __future__ import annotations

import pandas as pd

from .. import disclosure
from ...data.validation import Breach
from ..present import pct
from .outcomes import Outcomes


def follow_up_table(o: Outcomes, policy: disclosure.Policy) -> pd.DataFrame:
    f = o.follow_up
    return pd.DataFrame({
        "Baseline questionnaires": disclosure.publish_counts(f["baseline"], policy, with_total=False),
        "With follow-up": disclosure.publish_counts(f["followed_up"], policy, with_total=False),
        # one minus the published share followed up: the rounded counts beside it then add up
        "Missing follow-up": [_share(None if (s := disclosure.published_share(n, b, policy)) is None else 1 - s)
                              for n, b in zip(f["followed_up"], f["baseline"])],
    }, index=f.index)


def follow_up_shares(o: Outcomes, policy: disclosure.Policy) -> pd.Series:
    """Shares followed up as published: from the rounded counts (so the share times the
    published number of questionnaires gives back only the rounded count); groups too small
    to describe left out."""
    f = o.follow_up
    shares = pd.Series([disclosure.published_share(n, b, policy) for n, b in zip(f["followed_up"], f["baseline"])],
                       index=f.index, dtype=float)
    return shares[f["baseline"].map(lambda n: disclosure.enough(n, policy)).astype(bool).to_numpy()]


def _share(share: float | None) -> str:
    return disclosure.SUPPRESSED if share is None else pct(share)


# Tables whose rows are not about people: their counts are printed as they are.
NOT_PEOPLE = ("sites", "contracts")


def rows_sentence(row_counts: pd.Series, policy: disclosure.Policy) -> str:
    """How much data the site has: rows of tables about people rounded like any other published
    count of people; sites and contracts counted exactly (suppression is for people)."""
    return ("The dataset passed every rule of the data contract. Rows used for this site (rows about people "
            "rounded): " + ", ".join(f"{name} {n:,}" if name in NOT_PEOPLE else f"{name} {policy.publish_count(n)}"
                                     for name, n in row_counts.items()) + ".")


def published_warnings(warnings: list[Breach], policy: disclosure.Policy) -> list[str]:
    """Warnings as a briefing may print them: the file, column and rule, and a rounded count
    of rows; no row numbers or values, which could point at a person."""
    return [f"{w.file}, column {w.column}: {w.rule} ({policy.publish_count(w.count) if w.count else 'whole column'}"
            f"{' rows' if w.count else ''})" for w in warnings]

"""Data quality: what the dataset holds for this site and what the checks said."""

from __future__ import annotations

import pandas as pd

from .. import disclosure
from ..present import pct
from .outcomes import Outcomes


def follow_up_table(o: Outcomes, policy: disclosure.Policy) -> pd.DataFrame:
    f = o.follow_up
    return pd.DataFrame({
        "Baseline questionnaires": disclosure.publish_counts(f["baseline"], policy, with_total=False),
        "With follow-up": disclosure.publish_counts(f["followed_up"], policy, with_total=False),
        "Missing follow-up": [pct(m / b) if disclosure.enough(b, policy) else disclosure.SUPPRESSED
                              for m, b in zip(f["missing_follow_up"], f["baseline"])],
    }, index=f.index)


def follow_up_shares(o: Outcomes, policy: disclosure.Policy) -> pd.Series:
    f = o.follow_up
    shown = f["baseline"].map(lambda n: disclosure.enough(n, policy)).astype(bool)
    return (f["followed_up"] / f["baseline"])[shown]

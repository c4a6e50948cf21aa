"""What every outcome module shares: the windows and thresholds, the outcome names, the
:class:`Estimate` every estimator returns, and the design-matrix helper."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from dataclasses import dataclass

DAYS_PER_YEAR = 365.25
WINDOW_DAYS = 365  # each DiD window; also the follow-up questionnaire's due day after index
MIN_PEOPLE_PER_GROUP = 20  # below this a model estimate is too unstable to print
MIN_EVENTS_PER_CELL = 10  # events needed in each group x window for a rate ratio
SMD_THRESHOLD = 0.1  # |standardised mean difference| above which groups count as imbalanced
PROPENSITY_CLIP = (0.01, 0.99)
Z95 = float(stats.norm.ppf(0.975))


# event outcomes: key -> (event_type, measure)
EVENT_OUTCOMES = {
    "admissions": ("emergency_admission", "count"),
    "bed_days": ("emergency_admission", "bed_days"),
    "ae_attendances": ("ae_attendance", "count"),
    "care_home_admissions": ("care_home_admission", "count"),
}
QOL_MEASURES = ("ascot", "eq5d", "ghq12")
OUTCOME_NAMES = {
    "admissions": "Emergency admissions",
    "bed_days": "Emergency bed days",
    "ae_attendances": "A&E attendances",
    "care_home_admissions": "Care-home admissions",
    "ascot": "Social-care quality of life (ASCOT)",
    "eq5d": "Health-related quality of life (EQ-5D)",
    "ghq12": "Psychological distress (GHQ-12, higher is worse)",
}


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval, or the reason there is none."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    reason: str | None = None
    se: float | None = None  # standard error on the model's scale (log for rate ratios)

    @property
    def available(self) -> bool:
        return self.value is not None


def _none(n: int, reason: str) -> Estimate:
    return Estimate(None, n=int(n), reason=reason)



def _design(frame: pd.DataFrame, covariates: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """Numeric covariate columns, dummy-coded where categorical, missing -> mean + indicator."""
    if not covariates:
        return np.empty((len(frame), 0)), []
    cols, names = [], []
    for c in covariates:
        x = frame[c]
        if not pd.api.types.is_numeric_dtype(x) or pd.api.types.is_bool_dtype(x):
            levels = sorted(x.dropna().unique())
            for level in levels[1:]:
                cols.append((x == level).fillna(False).to_numpy(dtype=float))
                names.append(f"{c}[{level}]")
            continue
        v = pd.to_numeric(x, errors="coerce").astype(float).to_numpy()
        miss = np.isnan(v)
        if miss.all():
            continue
        v = np.where(miss, np.nanmean(v), v)
        if np.nanstd(v) == 0:
            continue
        cols.append(v)
        names.append(c)
        if miss.any():
            cols.append(miss.astype(float))
            names.append(f"{c}_missing")
    if not cols:
        return np.empty((len(frame), 0)), []
    return np.column_stack(cols), names


def _group_sizes(frame: pd.DataFrame) -> tuple[int, int]:
    if "after" in frame.columns:  # a DiD panel: every person has a before row (its exposure is the full window)
        ids = frame[frame["after"].to_numpy() == 0]
    else:
        ids = frame.drop_duplicates("person_id") if "person_id" in frame.columns else frame
    n_ipc = int((ids["ipc"].to_numpy() == 1).sum())
    return n_ipc, int(len(ids) - n_ipc)

"""Do budget holders do better than the comparison group? First cut.

Emergency admissions and bed days: difference-in-differences over the 12 months before and
after each person's index date, as a Poisson GLM with the log of exposure as offset and
person-clustered robust errors. Quality of life: ANCOVA of follow-up on baseline and group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf

DAYS_PER_YEAR = 365.25
MIN_PEOPLE_PER_GROUP = 20  # below this a model estimate is too unstable to print


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval, or the reason there is none."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.value is not None


def before_after_panel(people: pd.DataFrame, events: pd.DataFrame, event_type: str,
                       extract_date: pd.Timestamp, measure: str = "count") -> pd.DataFrame:
    """Two rows per person: events (or bed days) and years at risk before and after index.

    Before: the 12 months up to the index date. After: from the index date for up to 12 months,
    cut short at exit_date or extract_date (the exposure offset accounts for that).
    """
    p = people[["person_id", "group", "cohort", "management", "index_date", "exit_date"]].copy()
    year = pd.DateOffset(years=1)
    p["before_start"] = p["index_date"] - year
    end = (p["index_date"] + year).clip(upper=extract_date)
    p["after_end"] = end.where(p["exit_date"].isna(), np.minimum(end, p["exit_date"]))
    ev = events[events["event_type"] == event_type].merge(
        p[["person_id", "index_date", "before_start", "after_end"]], on="person_id"
    )
    weight = ev["bed_days"].astype(float) if measure == "bed_days" else pd.Series(1.0, index=ev.index)
    before = (ev["event_date"] >= ev["before_start"]) & (ev["event_date"] < ev["index_date"])
    after = (ev["event_date"] >= ev["index_date"]) & (ev["event_date"] <= ev["after_end"])
    counts_before = weight[before].groupby(ev.loc[before, "person_id"]).sum()
    counts_after = weight[after].groupby(ev.loc[after, "person_id"]).sum()
    rows = []
    for period, counts, start, stop in (
        (0, counts_before, p["before_start"], p["index_date"]),
        (1, counts_after, p["index_date"], p["after_end"]),
    ):
        rows.append(
            p[["person_id", "group", "cohort", "management"]].assign(
                after=period,
                events=p["person_id"].map(counts).fillna(0.0).to_numpy(),
                years=((stop - start).dt.days / DAYS_PER_YEAR).to_numpy(),
            )
        )
    panel = pd.concat(rows, ignore_index=True)
    panel["ipc"] = (panel["group"] == "ipc").astype(int)
    return panel[panel["years"] > 0]


def did_rate_ratio(panel: pd.DataFrame) -> Estimate:
    """Incidence rate ratio of the ipc x after interaction, Poisson GLM, person-clustered errors."""
    n_ipc = panel.loc[panel["ipc"] == 1, "person_id"].nunique()
    n_comp = panel.loc[panel["ipc"] == 0, "person_id"].nunique()
    if min(n_ipc, n_comp) < MIN_PEOPLE_PER_GROUP:
        return Estimate(None, n=n_ipc + n_comp,
                        reason=f"too few people for a stable estimate ({n_ipc} budget holders, {n_comp} comparison)")
    if panel["events"].sum() == 0:
        return Estimate(None, n=n_ipc + n_comp, reason="no events in the window")
    groups = pd.factorize(panel["person_id"])[0]
    model = smf.glm(
        "events ~ ipc * after",
        data=panel,
        family=sm.families.Poisson(),
        offset=np.log(panel["years"]),
    ).fit(cov_type="cluster", cov_kwds={"groups": groups})
    low, high = model.conf_int().loc["ipc:after"]
    return Estimate(float(np.exp(model.params["ipc:after"])), float(np.exp(low)), float(np.exp(high)),
                    n=n_ipc + n_comp)


def quality_of_life_panel(people: pd.DataFrame, surveys: pd.DataFrame, measure: str) -> pd.DataFrame:
    """One row per person with both a baseline and a follow-up value of ``measure``."""
    wide = surveys.pivot_table(index="person_id", columns="timepoint", values=measure, aggfunc="first")
    wide = wide.reindex(columns=["baseline", "follow_up"]).dropna()
    out = wide.reset_index().merge(people[["person_id", "group", "cohort", "age", "need_score"]], on="person_id")
    out["ipc"] = (out["group"] == "ipc").astype(int)
    return out


def ancova_difference(panel: pd.DataFrame) -> Estimate:
    """Adjusted difference in follow-up (ipc minus comparison) given baseline, cohort, age, need.

    OLS with heteroskedasticity-robust (HC3) errors.
    """
    n_ipc, n_comp = int(panel["ipc"].sum()), int((1 - panel["ipc"]).sum())
    if min(n_ipc, n_comp) < MIN_PEOPLE_PER_GROUP:
        return Estimate(None, n=n_ipc + n_comp,
                        reason=f"too few paired questionnaires ({n_ipc} budget holders, {n_comp} comparison)")
    covariates = "baseline + ipc + age + need_score"
    if panel["cohort"].nunique() > 1:
        covariates += " + C(cohort)"
    fit = smf.ols(f"follow_up ~ {covariates}", data=panel).fit(cov_type="HC3")
    low, high = fit.conf_int().loc["ipc"]
    return Estimate(float(fit.params["ipc"]), float(low), float(high), n=n_ipc + n_comp)


def follow_up_completeness(people: pd.DataFrame, surveys: pd.DataFrame) -> pd.DataFrame:
    """Baseline questionnaires and how many have a follow-up, by group."""
    base = surveys[surveys["timepoint"] == "baseline"][["person_id"]]
    follow = set(surveys.loc[surveys["timepoint"] == "follow_up", "person_id"])
    base = base.merge(people[["person_id", "group"]], on="person_id")
    base["followed_up"] = base["person_id"].isin(follow)
    table = base.groupby("group").agg(baseline=("person_id", "size"), followed_up=("followed_up", "sum"))
    table["missing_follow_up"] = table["baseline"] - table["followed_up"]
    return table

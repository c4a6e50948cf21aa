"""Quality of life: ANCOVA, change score, follow-up completeness and its test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from ...data.frames import isin
from .balance import PropensityModel, _person_weights, _stacked_variance, chance_smd
from .common import (MIN_PEOPLE_PER_GROUP, QOL_MEASURES, SMD_THRESHOLD, WINDOW_DAYS, Z95, Estimate, _design,
                     _group_sizes, _none)


def survey_wide(surveys: pd.DataFrame, measure: str) -> pd.DataFrame:
    """``measure`` at baseline and follow-up, one row per person (index person_id); empty, with
    both columns, when there are no questionnaires or none answered the measure."""
    s = surveys.dropna(subset=[measure]) if measure in surveys.columns else surveys.iloc[0:0]
    if s.empty:
        return pd.DataFrame({"baseline": pd.Series(dtype=float), "follow_up": pd.Series(dtype=float)},
                            index=pd.Index([], name="person_id", dtype=object))
    s = s.drop_duplicates(["person_id", "timepoint"])  # the contract allows one of each; keep the first
    wide = s.set_index(["person_id", "timepoint"])[measure].astype(float).unstack("timepoint")
    wide.columns = wide.columns.astype(str)
    wide.columns.name = None
    return wide.reindex(columns=["baseline", "follow_up"])


def quality_of_life_panel(people: pd.DataFrame, surveys: pd.DataFrame, measure: str) -> pd.DataFrame:
    """One row per person with both a baseline and a follow-up value of ``measure``."""
    wide = survey_wide(surveys, measure).dropna()
    keep = [c for c in ("person_id", "group", "cohort", "management", "age", "need_score", "prior_service_cost",
                        "imd_decile") if c in people.columns]
    out = wide.reset_index().merge(people[keep], on="person_id")
    out.columns.name = None
    out["ipc"] = (out["group"] == "ipc").astype(int)
    return out


ANCOVA_COVARIATES = ["age", "need_score", "cohort"]


def ancova_difference(panel: pd.DataFrame, covariates: list[str] | None = None, adjust: bool = True,
                      weights: "pd.Series | PropensityModel | None" = None, min_people: int = MIN_PEOPLE_PER_GROUP) -> Estimate:
    """Adjusted difference in follow-up (ipc minus comparison) given baseline and covariates.

    OLS with HC3 errors; with ``weights`` (a :class:`PropensityModel` or a Series indexed by
    person_id) weighted least squares, errors as in :func:`did_rate_ratio`. ``adjust=False``
    gives the crude ANCOVA (baseline and group only); by default the covariates are age,
    need_score and cohort (those present in the panel).
    """
    n_ipc, n_comp = _group_sizes(panel)
    n = n_ipc + n_comp
    if min(n_ipc, n_comp) < min_people:
        return _none(n, f"too few paired questionnaires ({n_ipc} budget holders, {n_comp} comparison)")
    cov = [c for c in (covariates if covariates is not None else ANCOVA_COVARIATES) if c in panel.columns]
    extra, _ = _design(panel, cov if adjust else None)
    X = np.column_stack([np.ones(len(panel)), panel["ipc"].to_numpy(dtype=float),
                         panel["baseline"].to_numpy(dtype=float), extra])
    y = panel["follow_up"].to_numpy(dtype=float)
    if weights is None:
        fit = sm.OLS(y, X).fit(cov_type="HC3")
        b, se = float(fit.params[1]), float(fit.bse[1])
    else:
        w, person = _person_weights(panel, weights)
        fit = sm.WLS(y, X, weights=w).fit(cov_type="HC3")
        b, se = float(fit.params[1]), float(fit.bse[1])
        if person is not None:
            resid = y - X @ np.asarray(fit.params)
            se = float(np.sqrt(_stacked_variance(weights, person, X, w, resid, np.ones(len(y)))[1, 1]))
    if not np.isfinite(se):
        return _none(n, "the model did not give a finite estimate")
    return Estimate(b, b - Z95 * se, b + Z95 * se, n=n)


def change_score_difference(panel: pd.DataFrame, min_people: int = MIN_PEOPLE_PER_GROUP) -> Estimate:
    """Difference in mean change (follow-up minus baseline), budget holders minus comparison
    (OLS of the change on group, HC3 errors). Beside ANCOVA where the groups start apart: ANCOVA
    assumes a gap at the start would have shrunk toward the mean, the change score that it
    would have persisted; the truth usually lies between them (Lord's paradox)."""
    n_ipc, n_comp = _group_sizes(panel)
    if min(n_ipc, n_comp) < min_people:
        return _none(n_ipc + n_comp, f"too few paired questionnaires ({n_ipc} budget holders, {n_comp} comparison)")
    X = np.column_stack([np.ones(len(panel)), panel["ipc"].to_numpy(dtype=float)])
    fit = sm.OLS((panel["follow_up"] - panel["baseline"]).to_numpy(dtype=float), X).fit(cov_type="HC3")
    b, se = float(fit.params[1]), float(fit.bse[1])
    return Estimate(b, b - Z95 * se, b + Z95 * se, n=n_ipc + n_comp, se=se)


def quality_of_life_table(people: pd.DataFrame, surveys: pd.DataFrame, measures: tuple[str, ...] = QOL_MEASURES,
                          weights: "pd.Series | PropensityModel | None" = None) -> pd.DataFrame:
    """Per measure: mean baseline and follow-up by group, crude and adjusted ANCOVA differences,
    the change-score difference, and the baseline standardised difference with the largest
    that chance gives at that size (``baseline_apart``: beyond it)."""
    rows = []
    for m in measures:
        panel = quality_of_life_panel(people, surveys, m)
        adj = ancova_difference(panel, weights=weights)
        crude = ancova_difference(panel, adjust=False)
        change = change_score_difference(panel)
        g = panel.groupby("ipc")[["baseline", "follow_up"]].mean()
        smd, band = _baseline_gap(panel)
        rows.append({
            "measure": m,
            "baseline_ipc": g["baseline"].get(1), "follow_up_ipc": g["follow_up"].get(1),
            "baseline_comparison": g["baseline"].get(0), "follow_up_comparison": g["follow_up"].get(0),
            "diff": adj.value, "low": adj.low, "high": adj.high,
            "crude_diff": crude.value, "crude_low": crude.low, "crude_high": crude.high,
            "change_diff": change.value, "change_low": change.low, "change_high": change.high,
            "baseline_smd": smd, "chance_smd": band,
            "baseline_apart": bool(np.isfinite(smd) and abs(smd) > max(SMD_THRESHOLD, band)),
            "n": adj.n, "reason": adj.reason,
        })
    return pd.DataFrame(rows)


def _baseline_gap(panel: pd.DataFrame) -> tuple[float, float]:
    """(SMD of the baseline score, the chance band for one comparison) of a QoL panel."""
    a = panel.loc[panel["ipc"] == 1, "baseline"].to_numpy(dtype=float)
    b = panel.loc[panel["ipc"] == 0, "baseline"].to_numpy(dtype=float)
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("inf")
    sd = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return (float((a.mean() - b.mean()) / sd) if sd > 0 else 0.0), chance_smd(len(a), len(b))


def follow_up_completeness(people: pd.DataFrame, surveys: pd.DataFrame,
                           extract_date: pd.Timestamp | None = None,
                           follow_up_days: int = WINDOW_DAYS) -> pd.DataFrame:
    """Baseline questionnaires and how many have a follow-up, by group.

    Columns baseline, followed_up, missing_follow_up (= baseline - followed_up). With
    ``extract_date``, only baselines whose follow-up was due by then (index + follow_up_days <=
    extract_date) count, and two more columns say how many were left out as not yet due and how
    many of the counted people left (exit_date) before their follow-up was due.
    """
    base = surveys[surveys["timepoint"] == "baseline"][["person_id"]].drop_duplicates()
    follow = surveys.loc[surveys["timepoint"] == "follow_up", "person_id"]
    cols = ["person_id", "group"] + (["index_date", "exit_date"] if extract_date is not None else [])
    base = base.merge(people[cols], on="person_id")
    base["followed_up"] = isin(base["person_id"], follow)
    if extract_date is None:
        table = base.groupby("group").agg(baseline=("person_id", "size"), followed_up=("followed_up", "sum"))
        table["missing_follow_up"] = table["baseline"] - table["followed_up"]
        return table
    due_day = base["index_date"] + pd.Timedelta(days=follow_up_days)
    base["due"] = due_day <= pd.Timestamp(extract_date)
    base["exited_before_due"] = base["due"] & base["exit_date"].notna() & (base["exit_date"] < due_day)
    base["not_yet_due"] = ~base["due"]
    due = base[base["due"]]
    table = due.groupby("group").agg(baseline=("person_id", "size"), followed_up=("followed_up", "sum"),
                                     exited_before_due=("exited_before_due", "sum"))
    table["missing_follow_up"] = table["baseline"] - table["followed_up"]
    table["not_yet_due"] = base.groupby("group")["not_yet_due"].sum().reindex(table.index, fill_value=0)
    return table[["baseline", "followed_up", "missing_follow_up", "exited_before_due", "not_yet_due"]]


@dataclass(frozen=True)
class MissingnessTest:
    """Share of due follow-ups missing by group and a test that the shares differ."""

    missing_ipc: float | None
    missing_comparison: float | None
    difference: Estimate  # ipc minus comparison, share missing (Wald interval)
    p_value: float | None
    test: str | None
    reason: str | None = None


def missing_follow_up_test(completeness: pd.DataFrame) -> MissingnessTest:
    """Chi-square test (Fisher's exact when an expected count is under 5) of missing follow-up
    by group, from :func:`follow_up_completeness`'s table."""
    if not {"ipc", "comparison"} <= set(completeness.index):
        return MissingnessTest(None, None, _none(0, "questionnaires from only one group"), None, None,
                               "questionnaires from only one group")
    t = completeness.loc[["ipc", "comparison"], ["missing_follow_up", "followed_up"]].to_numpy(dtype=float)
    n = t.sum(axis=1)
    total = int(n.sum())
    if n.min() < MIN_PEOPLE_PER_GROUP:
        reason = f"too few baseline questionnaires ({int(n[0])} budget holders, {int(n[1])} comparison)"
        return MissingnessTest(None, None, _none(total, reason), None, None, reason)
    p = t[:, 0] / n
    diff = p[0] - p[1]
    se = float(np.sqrt(p[0] * (1 - p[0]) / n[0] + p[1] * (1 - p[1]) / n[1]))
    est = Estimate(float(diff), float(diff - Z95 * se), float(diff + Z95 * se), n=total)
    if t[:, 0].sum() == 0 or t[:, 1].sum() == 0:
        return MissingnessTest(float(p[0]), float(p[1]), est, 1.0, "none needed (no variation)")
    expected = np.outer(n, t.sum(axis=0)) / n.sum()
    if expected.min() < 5:
        pv, name = stats.fisher_exact(t.astype(int)).pvalue, "Fisher's exact test"
    else:
        pv, name = stats.chi2_contingency(t, correction=False).pvalue, "chi-square test"
    return MissingnessTest(float(p[0]), float(p[1]), est, float(pv), name)

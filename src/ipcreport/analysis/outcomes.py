"""Do budget holders do better than the comparison group?

Pure functions: frames in, frames or dataclasses out; no I/O and no plotting.

Hospital use (emergency admissions, emergency bed days, A&E attendances, care-home admissions)
---------------------------------------------------------------------------------------------
Difference in differences over two windows per person: *before* is the 365 days up to the
index date (``[index - 365 d, index)``, what the contract guarantees the events table covers),
*after* is the 365 days from the index date (``[index, index + 364 d]``, inclusive), cut short
at exit_date or extract_date (both inclusive: an event on the exit day counts). Each window's
exposure in years (days / 365.25) enters as a log offset, so people who leave early count for
the time they were observed.

The model is a **Poisson GLM** ``y ~ ipc + after + ipc:after`` with **person-clustered robust
(sandwich) errors**; exp(coefficient of ipc:after) is the incidence rate ratio (IRR). Why
Poisson and not negative binomial: the Poisson score equations only need the mean to be right
(a multiplicative rate model), so the estimate is consistent however overdispersed the outcome
is, bed days included (a sum of a random number of random lengths of stay), and the sandwich
errors clustered on the person give valid intervals for that overdispersion and for the
correlation between a person's two windows. With equal exposures it is exactly the ratio of
the two groups' after/before rate ratios (the estimand synthetic truth.json defines), which a
negative-binomial fit is not: NB re-weights people towards low counts, so with heterogeneous
effects it estimates a different quantity, and its model-based errors are wrong when the
variance function is (the lengths of stay here are far from NB). The validity study
(docs/validity.md) checks the coverage this gives.

Subgroups (by cohort; by how the budget is held, against the whole comparison group) use the
same model; a subgroup with fewer than :data:`MIN_PEOPLE_PER_GROUP` people in a group or fewer
than :data:`MIN_EVENTS_PER_CELL` events in any group x window gets a reason instead of a number.

Quality of life
---------------
ANCOVA: follow-up score on baseline score, group, age, need score and cohort, OLS with HC3
errors (ASCOT, EQ-5D, GHQ-12). Complete cases (baseline and follow-up both answered); missing
follow-ups are counted by group and the difference in missingness tested (chi-square, or
Fisher's exact test when an expected count is under 5).

Balance
-------
Standardised mean differences of baseline covariates (pooled SD = sqrt((var_ipc + var_comp)/2),
sample variances). Where any |SMD| > 0.1, an adjusted estimate is given beside the crude one:
inverse-probability-of-treatment weights for the treated (ATT: budget holders weight 1,
comparison people e/(1-e)) from a statsmodels logit propensity model; the same weights go into
the Poisson DiD and into the (covariate-adjusted, so doubly robust) ANCOVA. Their intervals come
from a stacked M-estimation sandwich (the logit's score equations beside the outcome model's),
so the propensity model's own uncertainty is counted: treating the weights as known made the
weighted admissions intervals about a quarter too wide in the validity study. Caveat for real
data: the propensity model includes the year-before admission rate, so weighting also equalises
the groups' "before" level; where the groups come from populations with different usual levels,
that can add regression to the mean to the DiD (Daw and Hatfield 2018), which is why the crude
DiD stays the headline and the weighted one sits beside it.

Validity against synthetic data with known effects: benchmarks/validity.py, docs/validity.md.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.tools.sm_exceptions import SpecificationWarning

from ..contract import COHORTS, MANAGEMENT
from ..frames import isin

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

    @property
    def available(self) -> bool:
        return self.value is not None


def _none(n: int, reason: str) -> Estimate:
    return Estimate(None, n=int(n), reason=reason)


# ---------------------------------------------------------------------------------------------
# hospital use: difference in differences


def _days(td: pd.Series) -> np.ndarray:
    return (td / pd.Timedelta(days=1)).to_numpy(dtype=float)


def before_after_panel(people: pd.DataFrame, events: pd.DataFrame, event_type: str,
                       extract_date: pd.Timestamp, measure: str = "count",
                       window_days: int = WINDOW_DAYS) -> pd.DataFrame:
    """Two rows per person (after = 0, 1): events (or bed days) and years at risk.

    Before: ``[index - window_days, index)``. After: ``[index, index + window_days - 1]`` cut at
    exit_date and extract_date, inclusive. Columns: person_id, group, cohort, management,
    after, events (the measure), episodes (events counted, for the too-few-events rule), years,
    ipc, and the baseline covariates age, need_score, prior_service_cost, imd_decile where
    people has them. Rows with no exposure are dropped.
    """
    if measure not in ("count", "bed_days"):
        raise ValueError(f"measure must be 'count' or 'bed_days', got {measure!r}")
    extract_date = pd.Timestamp(extract_date)
    keep = [c for c in ("person_id", "group", "cohort", "management", "index_date", "exit_date", "age",
                        "need_score", "prior_service_cost", "imd_decile") if c in people.columns]
    p = people[keep].copy()
    window = pd.Timedelta(days=window_days)
    p["before_start"] = p["index_date"] - window
    end = (p["index_date"] + window - pd.Timedelta(days=1)).clip(upper=extract_date)
    if "exit_date" in p.columns:
        end = end.where(p["exit_date"].isna(), np.minimum(end, p["exit_date"]))
    p["after_end"] = end
    ev = events.loc[events["event_type"] == event_type, ["person_id", "event_date", "bed_days"]].merge(
        p[["person_id", "index_date", "before_start", "after_end"]], on="person_id"
    )
    weight = ev["bed_days"].astype(float).fillna(0.0) if measure == "bed_days" else pd.Series(1.0, index=ev.index)
    before = (ev["event_date"] >= ev["before_start"]) & (ev["event_date"] < ev["index_date"])
    after = (ev["event_date"] >= ev["index_date"]) & (ev["event_date"] <= ev["after_end"])
    exposure = {
        0: np.full(len(p), float(window_days)),
        1: _days(p["after_end"] - p["index_date"]) + 1.0,
    }
    rows = []
    base_cols = [c for c in keep if c not in ("index_date", "exit_date")]
    for period, mask in ((0, before), (1, after)):
        ids = ev.loc[mask, "person_id"]
        rows.append(
            p[base_cols].assign(
                after=period,
                events=p["person_id"].map(weight[mask].groupby(ids).sum()).fillna(0.0).to_numpy(dtype=float),
                episodes=p["person_id"].map(ids.value_counts()).fillna(0).to_numpy(dtype=float),
                years=exposure[period] / DAYS_PER_YEAR,
            )
        )
    panel = pd.concat(rows, ignore_index=True)
    panel["ipc"] = (panel["group"] == "ipc").astype(int)
    return panel[panel["years"] > 0].reset_index(drop=True)


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
    ids = frame.drop_duplicates("person_id") if "person_id" in frame.columns else frame
    n_ipc = int((ids["ipc"] == 1).sum())
    return n_ipc, int(len(ids) - n_ipc)


def did_rate_ratio(panel: pd.DataFrame, weights: "pd.Series | PropensityModel | None" = None, covariates: list[str] | None = None,
                   min_people: int = MIN_PEOPLE_PER_GROUP, min_events: int = MIN_EVENTS_PER_CELL) -> Estimate:
    """Incidence rate ratio of the ipc x after interaction: Poisson GLM, log-exposure offset,
    person-clustered robust errors, Wald 95% interval on the log scale.

    ``weights``: optional person weights: a :class:`PropensityModel` (the interval then allows
    for the propensity model's estimation) or a Series indexed by person_id (taken as known).
    ``covariates``: optional panel columns entered with their
    interaction with ``after`` (regression adjustment for covariate-dependent trends).
    """
    n_ipc, n_comp = _group_sizes(panel)
    n = n_ipc + n_comp
    if min(n_ipc, n_comp) < min_people:
        return _none(n, f"too few people for a stable estimate ({n_ipc} budget holders, {n_comp} comparison)")
    count_col = "episodes" if "episodes" in panel.columns else "events"
    cells = panel.groupby(["ipc", "after"])[count_col].sum().reindex(
        pd.MultiIndex.from_product([[0, 1], [0, 1]]), fill_value=0)
    if cells.min() < min_events:
        return _none(n, f"too few events for a stable estimate (fewest in any group and period: "
                        f"{int(cells.min())}; at least {min_events} needed)")
    ipc = panel["ipc"].to_numpy(dtype=float)
    after = panel["after"].to_numpy(dtype=float)
    x = [np.ones(len(panel)), ipc, after, ipc * after]
    extra, _ = _design(panel, covariates)
    if extra.shape[1]:
        extra = (extra - extra.mean(axis=0)) / extra.std(axis=0)
        x += [extra, extra * after[:, None]]
    X = np.column_stack(x)
    kwargs, person = {}, None
    if weights is not None:
        w, person = _person_weights(panel, weights)
        kwargs["var_weights"] = w
    groups = pd.factorize(panel["person_id"])[0]
    try:
        with warnings.catch_warnings():
            # statsmodels warns that robust errors with var_weights are "not fully supported";
            # the cluster sandwich it computes is the correct weighted one (checked against a
            # hand-built sandwich in tests/test_outcomes.py).
            warnings.simplefilter("ignore", SpecificationWarning)
            fit = sm.GLM(panel["events"].to_numpy(dtype=float), X, family=sm.families.Poisson(),
                         offset=np.log(panel["years"].to_numpy(dtype=float)), **kwargs).fit(
                cov_type="cluster", cov_kwds={"groups": groups})
    except (np.linalg.LinAlgError, ValueError) as err:  # pragma: no cover - degenerate data
        return _none(n, f"the model could not be fitted ({err})")
    beta, se = float(fit.params[3]), float(fit.bse[3])
    if person is not None:
        mu = np.asarray(fit.mu, dtype=float)
        y = panel["events"].to_numpy(dtype=float)
        se = float(np.sqrt(_stacked_variance(weights, person, X, kwargs["var_weights"], y - mu, mu)[3, 3]))
    if not np.isfinite(beta) or not np.isfinite(se) or se == 0:
        return _none(n, "the model did not give a finite estimate")
    return Estimate(float(np.exp(beta)), float(np.exp(beta - Z95 * se)), float(np.exp(beta + Z95 * se)), n=n)


def ratio_of_rate_ratios(panel: pd.DataFrame) -> float:
    """(ipc after/before rate ratio) / (comparison after/before rate ratio), from pooled rates.

    What the Poisson DiD equals when every person has the same exposure in each window.
    """
    t = panel.groupby(["ipc", "after"])[["events", "years"]].sum()
    rate = t["events"] / t["years"]
    return float((rate[(1, 1)] / rate[(1, 0)]) / (rate[(0, 1)] / rate[(0, 0)]))


SUBGROUP_COLUMNS = ["outcome", "dimension", "subgroup", "irr", "low", "high", "n", "n_ipc", "n_comparison",
                    "events", "reason"]


def _subgroup_row(outcome: str, dimension: str, subgroup: str, panel: pd.DataFrame, **kw) -> dict:
    est = did_rate_ratio(panel, **kw)
    n_ipc, n_comp = _group_sizes(panel) if len(panel) else (0, 0)
    return {"outcome": outcome, "dimension": dimension, "subgroup": subgroup, "irr": est.value, "low": est.low,
            "high": est.high, "n": n_ipc + n_comp, "n_ipc": n_ipc, "n_comparison": n_comp,
            "events": int(panel["episodes"].sum()) if len(panel) else 0, "reason": est.reason}


def rate_ratio_subgroups(panel: pd.DataFrame, outcome: str = "admissions", **kw) -> pd.DataFrame:
    """Tidy frame for the forest plot: overall, by cohort, by how the budget is held.

    Columns: outcome, dimension (overall | cohort | management), subgroup (``all`` or the
    contract code), irr, low, high, n, n_ipc, n_comparison, events, reason (None when there is
    an estimate). A management subgroup is that mode's budget holders against the whole
    comparison group (comparison people hold no budget).
    """
    rows = [_subgroup_row(outcome, "overall", "all", panel, **kw)]
    present = [c for c in COHORTS if c in set(panel["cohort"])] + sorted(set(panel["cohort"]) - set(COHORTS))
    for cohort in present:
        rows.append(_subgroup_row(outcome, "cohort", cohort, panel[panel["cohort"] == cohort], **kw))
    comparison = panel[panel["ipc"] == 0]
    modes = set(panel.loc[panel["ipc"] == 1, "management"].dropna())
    for mode in [m for m in MANAGEMENT if m in modes] + sorted(modes - set(MANAGEMENT)):
        sub = pd.concat([panel[(panel["ipc"] == 1) & (panel["management"] == mode)], comparison])
        rows.append(_subgroup_row(outcome, "management", mode, sub, **kw))
    out = pd.DataFrame(rows, columns=SUBGROUP_COLUMNS)
    out["reason"] = out["reason"].astype(object).where(out["reason"].notna(), None)
    return out


def hospital_use_table(people: pd.DataFrame, events: pd.DataFrame, extract_date: pd.Timestamp,
                       outcomes: tuple[str, ...] = tuple(EVENT_OUTCOMES), weights: "pd.Series | PropensityModel | None" = None
                       ) -> pd.DataFrame:
    """:func:`rate_ratio_subgroups` for every event outcome, stacked (one tidy frame)."""
    frames = []
    for key in outcomes:
        event_type, measure = EVENT_OUTCOMES[key]
        panel = before_after_panel(people, events, event_type, extract_date, measure)
        frames.append(rate_ratio_subgroups(panel, key, weights=weights))
    return pd.concat(frames, ignore_index=True)


def rates_by_group(panel: pd.DataFrame) -> pd.DataFrame:
    """Crude rates per person-year by group and window (the numbers behind an IRR)."""
    t = panel.groupby(["group", "after"])[["events", "years"]].sum()
    t["rate"] = t["events"] / t["years"]
    out = t["rate"].unstack("after").rename(columns={0: "before", 1: "after"})
    out["ratio"] = out["after"] / out["before"]
    return out


# ---------------------------------------------------------------------------------------------
# quality of life: ANCOVA


def quality_of_life_panel(people: pd.DataFrame, surveys: pd.DataFrame, measure: str) -> pd.DataFrame:
    """One row per person with both a baseline and a follow-up value of ``measure``."""
    wide = surveys.pivot_table(index="person_id", columns="timepoint", values=measure, aggfunc="first")
    wide = wide.reindex(columns=["baseline", "follow_up"]).dropna()
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


def quality_of_life_table(people: pd.DataFrame, surveys: pd.DataFrame, measures: tuple[str, ...] = QOL_MEASURES,
                          weights: "pd.Series | PropensityModel | None" = None) -> pd.DataFrame:
    """Per measure: mean baseline and follow-up by group, crude and adjusted ANCOVA differences."""
    rows = []
    for m in measures:
        panel = quality_of_life_panel(people, surveys, m)
        adj = ancova_difference(panel, weights=weights)
        crude = ancova_difference(panel, adjust=False)
        g = panel.groupby("ipc")[["baseline", "follow_up"]].mean()
        rows.append({
            "measure": m,
            "baseline_ipc": g["baseline"].get(1), "follow_up_ipc": g["follow_up"].get(1),
            "baseline_comparison": g["baseline"].get(0), "follow_up_comparison": g["follow_up"].get(0),
            "diff": adj.value, "low": adj.low, "high": adj.high,
            "crude_diff": crude.value, "crude_low": crude.low, "crude_high": crude.high,
            "n": adj.n, "reason": adj.reason,
        })
    return pd.DataFrame(rows)


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


# ---------------------------------------------------------------------------------------------
# balance and propensity weights

BALANCE_LABELS = {
    "age": "Age", "need_score": "Need score", "prior_service_cost": "Prior service cost (GBP)",
    "imd_decile": "IMD decile", "baseline_admissions_rate": "Emergency admissions, year before",
    "baseline_ascot": "Baseline ASCOT", "baseline_eq5d": "Baseline EQ-5D",
}


def person_covariates(people: pd.DataFrame, events: pd.DataFrame, surveys: pd.DataFrame,
                      window_days: int = WINDOW_DAYS) -> pd.DataFrame:
    """One row per person: ipc, the baseline covariates the balance table shows, cohort shares.

    baseline_admissions_rate: emergency admissions per person-year in the ``window_days`` before
    index. Baseline ASCOT/EQ-5D are missing where the questionnaire item is.
    """
    p = people[["person_id", "group", "cohort", "index_date", "age", "need_score", "prior_service_cost",
                "imd_decile"]].copy()
    p["ipc"] = (p["group"] == "ipc").astype(int)
    ev = events.loc[events["event_type"] == "emergency_admission", ["person_id", "event_date"]].merge(
        p[["person_id", "index_date"]], on="person_id")
    pre = ev[(ev["event_date"] < ev["index_date"]) & (ev["event_date"] >= ev["index_date"] - pd.Timedelta(days=window_days))]
    p["baseline_admissions_rate"] = (p["person_id"].map(pre["person_id"].value_counts()).fillna(0).to_numpy(float)
                                     / (window_days / DAYS_PER_YEAR))
    base = surveys[surveys["timepoint"] == "baseline"].drop_duplicates("person_id").set_index("person_id")
    for m in ("ascot", "eq5d"):
        p[f"baseline_{m}"] = p["person_id"].map(base[m]).astype(float) if m in base.columns else np.nan
    for c in COHORTS:
        p[f"cohort_{c}"] = (p["cohort"] == c).astype(float)
    for c in ("age", "need_score", "prior_service_cost", "imd_decile"):
        p[c] = pd.to_numeric(p[c], errors="coerce").astype(float)
    return p.drop(columns=["index_date"]).reset_index(drop=True)


BALANCE_COVARIATES = ["age", "need_score", "prior_service_cost", "imd_decile", "baseline_admissions_rate",
                      "baseline_ascot", "baseline_eq5d"] + [f"cohort_{c}" for c in COHORTS]


def _weighted_mean_var(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted mean and (reliability-weighted, unbiased when weights are 1) variance."""
    sw = w.sum()
    m = float((w * x).sum() / sw)
    denom = sw - (w**2).sum() / sw
    v = float((w * (x - m) ** 2).sum() / denom) if denom > 0 else float("nan")
    return m, v


def standardised_differences(covariates: pd.DataFrame, weights: pd.Series | None = None,
                             columns: list[str] | None = None) -> pd.DataFrame:
    """Standardised mean difference (ipc minus comparison) of each covariate.

    SMD = (mean_ipc - mean_comp) / sqrt((var_ipc + var_comp) / 2) with sample variances
    (ddof = 1), on people with the covariate recorded. With ``weights`` (indexed like
    ``covariates`` rows, or by person_id), weighted means and variances, and the denominator
    stays the unweighted pooled SD so crude and weighted SMDs are on one scale.
    Columns: covariate, mean_ipc, mean_comparison, smd, [weighted_mean_comparison, weighted_smd].
    """
    cols = [c for c in (columns or BALANCE_COVARIATES) if c in covariates.columns]
    ipc = covariates["ipc"].to_numpy() == 1
    if weights is not None:
        w_all = (covariates["person_id"].map(weights) if "person_id" in covariates.columns
                 and weights.index.isin(covariates["person_id"]).any() else weights.reindex(covariates.index))
        w_all = w_all.to_numpy(dtype=float)
    rows = []
    for c in cols:
        x = covariates[c].to_numpy(dtype=float)
        ok = ~np.isnan(x)
        a, b = x[ok & ipc], x[ok & ~ipc]
        row = {"covariate": c, "mean_ipc": np.nan, "mean_comparison": np.nan, "smd": np.nan}
        if len(a) > 1 and len(b) > 1:
            sd = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
            row.update(mean_ipc=a.mean(), mean_comparison=b.mean(),
                       smd=(a.mean() - b.mean()) / sd if sd > 0 else 0.0)
            if weights is not None:
                wa, wb = w_all[ok & ipc], w_all[ok & ~ipc]
                ma, _ = _weighted_mean_var(a, wa)
                mb, _ = _weighted_mean_var(b, wb)
                row.update(weighted_mean_ipc=ma, weighted_mean_comparison=mb,
                           weighted_smd=(ma - mb) / sd if sd > 0 else 0.0)
        rows.append(row)
    return pd.DataFrame(rows)


PROPENSITY_COVARIATES = ["age", "log_need", "log_prior_cost", "imd_decile", "baseline_admissions_rate",
                         "baseline_ascot", "baseline_eq5d", "cohort"]


@dataclass(frozen=True)
class PropensityModel:
    """A fitted logit propensity model and the ATT weights it gives.

    Budget holders weigh 1, comparison people e/(1-e) (the odds of holding a budget), so the
    weighted comparison group resembles the budget holders on the model's covariates. Passed as
    ``weights`` to :func:`did_rate_ratio` or :func:`ancova_difference`, the interval also
    accounts for the propensity model having been estimated (a stacked M-estimation sandwich:
    the logit's score equations beside the outcome model's); a plain Series of weights is
    treated as known.
    """

    person_id: np.ndarray
    ipc: np.ndarray  # bool
    z: np.ndarray  # design, intercept first (standardised covariates)
    e_fit: np.ndarray  # fitted propensity (unclipped)
    clip: tuple[float, float]
    params: np.ndarray  # logit coefficients, for z

    @property
    def e(self) -> np.ndarray:
        return np.clip(self.e_fit, *self.clip)

    @property
    def weights(self) -> pd.Series:
        e = self.e
        return pd.Series(np.where(self.ipc, 1.0, e / (1 - e)), index=self.person_id, name="weight")

    def weight_gradient(self) -> np.ndarray:
        """d weight / d logit coefficients, one row per person (0 for budget holders and where
        the propensity was clipped)."""
        w = self.weights.to_numpy()
        active = ~self.ipc & (self.e_fit > self.clip[0]) & (self.e_fit < self.clip[1])
        return self.z * (w * active)[:, None]

    def scores(self) -> np.ndarray:
        return self.z * (self.ipc.astype(float) - self.e_fit)[:, None]

    def information(self) -> np.ndarray:
        v = self.e_fit * (1 - self.e_fit)
        return (self.z * v[:, None]).T @ self.z


def propensity_model(covariates: pd.DataFrame, clip: tuple[float, float] = PROPENSITY_CLIP
                     ) -> PropensityModel | None:
    """Logit of group on age, log need, log prior cost, IMD decile, baseline admissions rate,
    baseline ASCOT and EQ-5D (missing -> mean plus a missing indicator) and cohort, fitted with
    statsmodels on :func:`person_covariates`' frame. None when there are too few people or the
    model cannot be fitted (separation)."""
    c = covariates.reset_index(drop=True).copy()
    n_ipc, n_comp = int(c["ipc"].sum()), int((1 - c["ipc"]).sum())
    if min(n_ipc, n_comp) < MIN_PEOPLE_PER_GROUP:
        return None
    c["log_need"] = np.log1p(c["need_score"].astype(float))
    c["log_prior_cost"] = np.log1p(c["prior_service_cost"].astype(float))
    X, _ = _design(c, [v for v in PROPENSITY_COVARIATES if v in c.columns])
    sd = X.std(axis=0)
    X = (X[:, sd > 0] - X[:, sd > 0].mean(axis=0)) / sd[sd > 0]
    Z = np.column_stack([np.ones(len(c)), X])
    d = c["ipc"].to_numpy(dtype=float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.Logit(d, Z).fit(disp=0, maxiter=200, method="newton")
    except Exception:  # noqa: BLE001 - perfect separation, singular matrix: no model
        return None
    e = np.asarray(fit.predict(Z), dtype=float)
    if not np.isfinite(e).all():
        return None
    return PropensityModel(c["person_id"].to_numpy(), d == 1, Z, e, clip, np.asarray(fit.params, dtype=float))


def propensity_weights(covariates: pd.DataFrame, clip: tuple[float, float] = PROPENSITY_CLIP) -> pd.Series | None:
    """ATT weights indexed by person_id (see :class:`PropensityModel`), or None."""
    model = propensity_model(covariates, clip)
    return None if model is None else model.weights


def _stacked_variance(model: PropensityModel, person: np.ndarray, X: np.ndarray, w: np.ndarray,
                      resid: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Covariance of an inverse-probability-weighted GLM's coefficients that accounts for the
    estimated propensity model (Lunceford & Davidian 2004; Wooldridge 2010, 12.4).

    Per person i the estimating functions are U_i = sum_t w_i x_it r_it (outcome model, r the
    response residual) and S_i = z_i (d_i - e_i) (logit). With A = -E[d(U,S)/d(beta,gamma)]:
    A_bb = sum w slope x x' (slope = mu for Poisson, 1 for least squares), A_bg = -sum_i
    (sum_t x_it r_it) (dw_i/dgamma)', A_gg = the logit information, A_gb = 0; B = sum_i
    (U_i,S_i)(U_i,S_i)'. V = A^-1 B A^-T, with a G/(G-1) small-sample factor.
    """
    A, psi = _stacked_parts(model, person, X, w, resid, slope)
    A_inv = np.linalg.inv(A)
    V = A_inv @ (psi.T @ psi) @ A_inv.T
    n = len(psi)
    return V[: X.shape[1], : X.shape[1]] * n / (n - 1)


def _stacked_parts(model: PropensityModel, person: np.ndarray, X: np.ndarray, w: np.ndarray, resid: np.ndarray,
                   slope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, per-person estimating functions) of :func:`_stacked_variance`."""
    n, k = len(model.person_id), X.shape[1]
    q = model.z.shape[1]
    U = np.zeros((n, k))
    H = np.zeros((n, k))
    np.add.at(U, person, X * (w * resid)[:, None])
    np.add.at(H, person, X * resid[:, None])
    a_bb = (X * (w * slope)[:, None]).T @ X
    a_bg = -H.T @ model.weight_gradient()
    A = np.block([[a_bb, a_bg], [np.zeros((q, k)), model.information()]])
    return A, np.column_stack([U, model.scores()])


def _person_weights(panel: pd.DataFrame, weights) -> tuple[np.ndarray, np.ndarray | None]:
    """Row weights for a panel, and (with a PropensityModel) each row's position in the model."""
    if isinstance(weights, PropensityModel):
        pos = pd.Series(np.arange(len(weights.person_id)), index=weights.person_id)
        person = panel["person_id"].map(pos).to_numpy()
        if pd.isna(person).any():
            raise ValueError("the propensity model must cover every person in the panel")
        person = person.astype(int)
        return weights.weights.to_numpy()[person], person
    w = panel["person_id"].map(weights).to_numpy(dtype=float)
    if np.isnan(w).any():
        raise ValueError("weights must cover every person in the panel")
    return w, None


# ---------------------------------------------------------------------------------------------
# everything at once


HEADLINE = ("admissions", "bed_days", "ascot", "eq5d")


@dataclass
class OutcomeResults:
    """What :func:`analyse_outcomes` returns."""

    estimates: dict[str, Estimate]  # crude: DiD IRRs and covariate-adjusted ANCOVA differences
    adjusted: dict[str, Estimate]  # propensity-weighted, only where the groups were imbalanced
    balance: pd.DataFrame
    imbalanced: list[str]  # covariates with |SMD| > SMD_THRESHOLD
    hospital_use: pd.DataFrame  # tidy subgroup frame (all event outcomes)
    quality_of_life: pd.DataFrame
    completeness: pd.DataFrame
    missingness: MissingnessTest
    weights: "PropensityModel | None" = None
    notes: list[str] = field(default_factory=list)


def headline_estimates(people: pd.DataFrame, events: pd.DataFrame, surveys: pd.DataFrame,
                       extract_date: pd.Timestamp, weights: "pd.Series | PropensityModel | None" = None,
                       outcomes: tuple[str, ...] = HEADLINE, panels: dict | None = None) -> dict[str, Estimate]:
    """The headline estimates (what the briefing and metrics.json report, and what the validity
    study checks): DiD IRRs for event outcomes, ANCOVA differences for questionnaires.

    ``panels``: optional dict used as a cache of the per-outcome panels, so a second call (say,
    weighted) on the same data does not rebuild them.
    """
    panels = {} if panels is None else panels
    out = {}
    for key in outcomes:
        if key not in panels:
            if key in EVENT_OUTCOMES:
                event_type, measure = EVENT_OUTCOMES[key]
                panels[key] = before_after_panel(people, events, event_type, extract_date, measure)
            else:
                panels[key] = quality_of_life_panel(people, surveys, key)
        if key in EVENT_OUTCOMES:
            out[key] = did_rate_ratio(panels[key], weights=weights)
        else:
            out[key] = ancova_difference(panels[key], weights=weights)
    return out


def analyse_outcomes(people: pd.DataFrame, events: pd.DataFrame, surveys: pd.DataFrame,
                     extract_date: pd.Timestamp) -> OutcomeResults:
    """Every outcome analysis for one site (or a whole dataset)."""
    keys = tuple(EVENT_OUTCOMES) + QOL_MEASURES
    panels: dict = {}
    estimates = headline_estimates(people, events, surveys, extract_date, outcomes=keys, panels=panels)
    cov = person_covariates(people, events, surveys)
    balance = standardised_differences(cov)
    imbalanced = balance.loc[balance["smd"].abs() > SMD_THRESHOLD, "covariate"].tolist()
    adjusted, weights, notes = {}, None, []
    if imbalanced:
        weights = propensity_model(cov)
        if weights is None:
            notes.append("The groups differ at baseline but a propensity model could not be fitted, so no "
                         "adjusted estimates are shown.")
        else:
            balance = standardised_differences(cov, weights.weights)
            adjusted = headline_estimates(people, events, surveys, extract_date, weights=weights, outcomes=keys,
                                          panels=panels)
    completeness = follow_up_completeness(people, surveys, extract_date)
    return OutcomeResults(
        estimates=estimates,
        adjusted=adjusted,
        balance=balance,
        imbalanced=imbalanced,
        hospital_use=hospital_use_table(people, events, extract_date),
        quality_of_life=quality_of_life_table(people, surveys),
        completeness=completeness,
        missingness=missing_follow_up_test(completeness),
        weights=weights,
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------
# key messages


def _ci(est: Estimate, fmt: str) -> str:
    return f"{fmt.format(est.value)} (95% CI {fmt.format(est.low)} to {fmt.format(est.high)})"


def _ratio_words(est: Estimate) -> str:
    when = "in the year after the budget started"
    if est.high < 1:
        return f"fell more for budget holders than for the comparison group {when}"
    if est.low > 1:
        return f"rose more for budget holders than for the comparison group {when}"
    return f"changed no differently for budget holders than for the comparison group {when}, within the uncertainty"


def _diff_words(est: Estimate, higher_is_better: bool = True) -> str:
    if est.low > 0:
        return "higher among budget holders" + ("" if higher_is_better else " (worse)")
    if est.high < 0:
        return "lower among budget holders" + ("" if higher_is_better else " (better)")
    return "no different between the groups, within the uncertainty"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def key_messages(results: OutcomeResults, economics=None) -> list[str]:
    """Plain-words sentences generated from the numbers, ending with what the design cannot
    rule out. ``economics``: optional :class:`ipcreport.analysis.economics.CostEffectiveness`."""
    msgs = []
    e = results.estimates
    for key in ("admissions", "bed_days"):
        est = e.get(key)
        name = OUTCOME_NAMES[key]
        if est is None:
            continue
        if est.available:
            msgs.append(f"{name} {_ratio_words(est)}: rate ratio "
                        f"{_ci(est, '{:.2f}')}, from {est.n:,} people.")
        else:
            msgs.append(f"{name}: no estimate ({est.reason}).")
    for key, fmt in (("ascot", "{:+.3f}"), ("eq5d", "{:+.3f}"), ("ghq12", "{:+.1f}")):
        est = e.get(key)
        if est is None:
            continue
        name = OUTCOME_NAMES[key]
        if est.available:
            msgs.append(f"{name} a year on was {_diff_words(est, key != 'ghq12')}: adjusted difference "
                        f"{_ci(est, fmt)} points, from {est.n:,} people with both questionnaires.")
        else:
            msgs.append(f"{name}: no estimate ({est.reason}).")
    m = results.missingness
    if m.missing_ipc is not None:
        differ = m.p_value is not None and m.p_value < 0.05
        msgs.append(
            f"{m.missing_ipc:.0%} of budget holders and {m.missing_comparison:.0%} of the comparison group had no "
            f"follow-up questionnaire; " + (
                f"the difference is unlikely to be chance ({m.test}, p = {m.p_value:.3f}), so the quality-of-life "
                "results may be biased by who answered." if differ else
                f"the difference could be chance ({m.test}, p = {m.p_value:.2f}); results assume those who "
                "answered are like those who did not.")
        )
    if results.imbalanced:
        names = ", ".join(_lower_first(BALANCE_LABELS.get(c, c.replace("cohort_", "share in cohort ")
                                                           .replace("_", " "))) for c in results.imbalanced)
        sentence = f"The groups differed at baseline ({names}: standardised difference above {SMD_THRESHOLD})."
        adm, adm_w = e.get("admissions"), results.adjusted.get("admissions")
        if adm_w is not None and adm_w.available and adm is not None and adm.available:
            sentence += (f" Weighting the comparison group to look like budget holders gives an admissions rate "
                         f"ratio of {_ci(adm_w, '{:.2f}')} against {adm.value:.2f} unweighted.")
        msgs.append(sentence)
    else:
        msgs.append("The groups were similar at baseline on the measured characteristics (every standardised "
                    f"difference within {SMD_THRESHOLD}).")
    if economics is not None:
        msgs.extend(economics.messages(include_ascot=False))
    msgs.append("People chose to take a budget, so the groups may differ in ways the data do not measure "
                "(motivation, family support, how services treated them); the comparison adjusts only for "
                "measured differences and cannot rule these out.")
    return msgs

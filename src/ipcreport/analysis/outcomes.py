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

from ..data.contract import COHORTS, MANAGEMENT
from ..data.frames import isin

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
    if (few := _too_few(panel, min_people, min_events)) is not None:
        return few
    n = sum(_group_sizes(panel))
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
    return Estimate(float(np.exp(beta)), float(np.exp(beta - Z95 * se)), float(np.exp(beta + Z95 * se)), n=n, se=se)


def _person_pairs(panel: pd.DataFrame) -> pd.DataFrame:
    """One row per person with both windows: y0, y1 (the measure), t0, t1 (years), ipc."""
    cols = ["person_id", "events", "years"]
    before = panel.loc[panel["after"] == 0, cols + ["ipc"]].rename(columns={"events": "y0", "years": "t0"})
    after = panel.loc[panel["after"] == 1, cols].rename(columns={"events": "y1", "years": "t1"})
    out = before.merge(after, on="person_id")  # people with both windows
    out["ipc"] = out["ipc"].astype(float)
    return out[["person_id", "y0", "y1", "t0", "t1", "ipc"]].reset_index(drop=True)


def _too_few(panel: pd.DataFrame, min_people: int, min_events: int) -> Estimate | None:
    """The reason (as an empty Estimate) a panel is too small for a rate ratio, or None."""
    n_ipc, n_comp = _group_sizes(panel) if len(panel) else (0, 0)
    n = n_ipc + n_comp
    if min(n_ipc, n_comp) < min_people:
        return _none(n, f"too few people for a stable estimate ({n_ipc} budget holders, {n_comp} comparison)")
    count_col = "episodes" if "episodes" in panel.columns else "events"
    cells = panel.groupby(["ipc", "after"])[count_col].sum().reindex(
        pd.MultiIndex.from_product([[0, 1], [0, 1]]), fill_value=0)
    if cells.min() < min_events:
        return _none(n, f"too few events for a stable estimate (fewest in any group and period: "
                        f"{int(cells.min())}; at least {min_events} needed)")
    return None


def conditional_rate_ratio(panel: pd.DataFrame, weights: "pd.Series | PropensityModel | None" = None,
                           min_people: int = MIN_PEOPLE_PER_GROUP, min_events: int = MIN_EVENTS_PER_CELL) -> Estimate:
    """Difference-in-differences rate ratio from a conditional (person fixed-effect) Poisson model.

    Each person is compared with themselves: given their total over the two windows, the
    after-window count is binomial with log-odds log(t1/t0) + a + b * ipc (the person's own
    level cancels out), so exp(b) is the incidence rate ratio. This is exactly the conditional
    likelihood of a Poisson model with a fixed effect per person (statsmodels'
    ConditionalPoisson gives the same b); people with no events in either window carry no
    information. Who leaves early cannot shift it (frail people leaving changes the mix of a
    pooled model's after window, not a person's own ratio). Errors: robust sandwich (one row per
    person, so clustered on the person), valid when counts are overdispersed (bed days). With
    ``weights`` the person rows are weighted; a :class:`PropensityModel` adds its own
    estimation to the interval (stacked sandwich)."""
    if (few := _too_few(panel, min_people, min_events)) is not None:
        return few
    pairs = _person_pairs(panel)
    n = len(pairs)
    pairs = pairs[(pairs["y0"] + pairs["y1"]) > 0]
    X = np.column_stack([np.ones(len(pairs)), pairs["ipc"].to_numpy(dtype=float)])
    if len(pairs) < 3 or X[:, 1].min() == X[:, 1].max():
        return _none(n, "too few people with events in either window")
    y1, total = pairs["y1"].to_numpy(dtype=float), (pairs["y0"] + pairs["y1"]).to_numpy(dtype=float)
    offset = np.log(pairs["t1"].to_numpy(dtype=float) / pairs["t0"].to_numpy(dtype=float))
    w, person = np.ones(len(pairs)), None
    if weights is not None:
        w, person = _person_weights(pairs, weights)
    try:
        fit = sm.GLM(np.column_stack([y1, total - y1]), X, family=sm.families.Binomial(), offset=offset,
                     var_weights=w).fit()
    except (np.linalg.LinAlgError, ValueError) as err:  # pragma: no cover - degenerate data
        return _none(n, f"the model could not be fitted ({err})")
    p = np.asarray(fit.mu, dtype=float)
    resid, slope = y1 - total * p, total * p * (1 - p)  # score residual and its derivative
    if person is not None:
        V = _stacked_variance(weights, person, X, w, resid, slope)
    else:
        bread = np.linalg.inv((X * (w * slope)[:, None]).T @ X)
        meat = (X * (w * resid)[:, None]).T @ (X * (w * resid)[:, None])
        V = bread @ meat @ bread * len(pairs) / (len(pairs) - 1)
    beta, se = float(fit.params[1]), float(np.sqrt(V[1, 1]))
    if not np.isfinite(beta) or not np.isfinite(se) or se == 0:
        return _none(n, "the model did not give a finite estimate")
    return Estimate(float(np.exp(beta)), float(np.exp(beta - Z95 * se)), float(np.exp(beta + Z95 * se)), n=n, se=se)


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


def pre_trend(people: pd.DataFrame, events: pd.DataFrame, extract_date: pd.Timestamp,
              coverage_share: float = 0.5) -> Estimate:
    """Did the groups' emergency admissions already move differently before the budget started?

    The same conditional model on the second year before index against the first (index
    shifted back 365 days), where the data cover it: the events table must hold, for these
    people, at least ``coverage_share`` as many emergency admissions in year -2 as in year -1
    (the contract only guarantees 12 months before index). A ratio near 1 supports the DiD's
    parallel-trends assumption."""
    shifted = people.assign(index_date=people["index_date"] - pd.Timedelta(days=WINDOW_DAYS), exit_date=pd.NaT)
    panel = before_after_panel(shifted, events, "emergency_admission", extract_date)
    earlier, later = (panel.loc[panel["after"] == t, "episodes"].sum() for t in (0, 1))
    if later == 0 or earlier < coverage_share * later:
        return _none(len(people), "the data do not cover more than 12 months before each person's start")
    return conditional_rate_ratio(panel)


EXIT_COLUMNS = ["group", "people", "person_years", "exits", "died", "moved", "left_programme", "unknown_reason",
                "exit_rate", "death_rate"]


def exits_by_group(people: pd.DataFrame, extract_date: pd.Timestamp) -> tuple[pd.DataFrame, dict[str, Estimate]]:
    """Exits and deaths after index by group: counts by reason, rates per 100 person-years
    (index to exit or extract date), and rate ratios budget holders / comparison (Wald interval
    on the log scale, sqrt(1/a + 1/b)) for all exits and for deaths."""
    p = people.copy()
    end = p["exit_date"].fillna(pd.Timestamp(extract_date))
    p["years"] = ((end - p["index_date"]).dt.days + 1) / DAYS_PER_YEAR
    reason = p["exit_reason"] if "exit_reason" in p.columns else pd.Series(pd.NA, index=p.index)
    exited = p["exit_date"].notna()
    rows = []
    for group in ("ipc", "comparison"):
        g = p["group"] == group
        r = reason[g & exited]
        rows.append({"group": group, "people": int(g.sum()), "person_years": float(p.loc[g, "years"].sum()),
                     "exits": int((g & exited).sum()), "died": int((r == "died").sum()),
                     "moved": int((r == "moved").sum()), "left_programme": int((r == "left_programme").sum()),
                     "unknown_reason": int(r.isna().sum())})
    table = pd.DataFrame(rows, columns=EXIT_COLUMNS[:-2]).set_index("group")
    table["exit_rate"] = 100 * table["exits"] / table["person_years"]
    table["death_rate"] = 100 * table["died"] / table["person_years"]
    ratios = {}
    for key, col in (("exits", "exits"), ("deaths", "died")):
        a, b = table.loc["ipc", col], table.loc["comparison", col]
        n = int(table["people"].sum())
        if min(table["people"]) < MIN_PEOPLE_PER_GROUP or min(a, b) < 5:
            ratios[key] = _none(n, f"too few {key} for a rate ratio ({a} budget holders, {b} comparison)")
            continue
        ratio = (a / table.loc["ipc", "person_years"]) / (b / table.loc["comparison", "person_years"])
        se = float(np.sqrt(1 / a + 1 / b))
        ratios[key] = Estimate(float(ratio), float(ratio * np.exp(-Z95 * se)), float(ratio * np.exp(Z95 * se)), n=n,
                               se=se)
    return table.reset_index(), ratios


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
    est = conditional_rate_ratio(panel, **kw)
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


def chance_smd(n_ipc: int, n_comparison: int, comparisons: int = 1, alpha: float = 0.05) -> float:
    """The largest |standardised difference| chance gives between two random groups of these
    sizes: z x sqrt(1/n_ipc + 1/n_comparison) (the SMD's standard error under random
    allocation), with z for a two-sided ``alpha`` shared over ``comparisons`` covariates
    (Bonferroni), so that across the whole balance table a false alarm happens about
    ``alpha`` of the time. Infinite when a group is empty."""
    if min(n_ipc, n_comparison) < 1:
        return float("inf")
    z = stats.norm.ppf(1 - alpha / (2 * max(comparisons, 1)))
    return float(z * np.sqrt(1 / n_ipc + 1 / n_comparison))


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
        row = {"covariate": c, "mean_ipc": np.nan, "mean_comparison": np.nan, "smd": np.nan,
               "n_ipc": int(len(a)), "n_comparison": int(len(b))}
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
RATE_MODELS = {"conditional": lambda: conditional_rate_ratio, "pooled": lambda: did_rate_ratio}


@dataclass
class OutcomeResults:
    """What :func:`analyse_outcomes` returns."""

    estimates: dict[str, Estimate]  # the headline: conditional DiD IRRs and covariate-adjusted ANCOVA differences
    adjusted: dict[str, Estimate]  # propensity-weighted (conditional DiD, ANCOVA), where a propensity model fits
    balance: pd.DataFrame
    imbalanced: list[str]  # covariates whose |SMD| is beyond both 0.1 and what chance gives at this size
    hospital_use: pd.DataFrame  # tidy subgroup frame (all event outcomes)
    quality_of_life: pd.DataFrame
    completeness: pd.DataFrame
    missingness: MissingnessTest
    weights: "PropensityModel | None" = None
    notes: list[str] = field(default_factory=list)
    crude: dict[str, Estimate] = field(default_factory=dict)  # pooled Poisson DiD without person effects
    exits: pd.DataFrame = field(default_factory=pd.DataFrame)
    exit_ratios: dict[str, Estimate] = field(default_factory=dict)
    pre_trend: Estimate | None = None
    not_yet_due: int = 0  # people whose follow-up year was not yet over on the extract date

    def minimum_detectable(self, key: str = "admissions") -> float | None:
        """Smallest fall (rate ratio) the headline model detects with 80% power, or None."""
        est = self.estimates.get(key)
        return minimum_detectable_ratio(est.se) if est is not None and est.se else None


def headline_estimates(people: pd.DataFrame, events: pd.DataFrame, surveys: pd.DataFrame,
                       extract_date: pd.Timestamp, weights: "pd.Series | PropensityModel | None" = None,
                       outcomes: tuple[str, ...] = HEADLINE, panels: dict | None = None,
                       model: str = "conditional") -> dict[str, Estimate]:
    """The headline estimates (what the briefing and metrics.json report, and what the validity
    study checks): DiD IRRs for event outcomes (``model`` "conditional", the person
    fixed-effect model, or "pooled", the Poisson GLM without person effects), ANCOVA
    differences for questionnaires.

    ``panels``: optional dict used as a cache of the per-outcome panels, so a second call (say,
    weighted) on the same data does not rebuild them.
    """
    panels = {} if panels is None else panels
    rate_ratio = RATE_MODELS[model]()
    out = {}
    for key in outcomes:
        if key not in panels:
            if key in EVENT_OUTCOMES:
                event_type, measure = EVENT_OUTCOMES[key]
                panels[key] = before_after_panel(people, events, event_type, extract_date, measure)
            else:
                panels[key] = quality_of_life_panel(people, surveys, key)
        if key in EVENT_OUTCOMES:
            out[key] = rate_ratio(panels[key], weights=weights)
        else:
            out[key] = ancova_difference(panels[key], weights=weights)
    return out


def imbalanced_covariates(balance: pd.DataFrame) -> list[str]:
    """Covariates whose |SMD| exceeds both 0.1 and what chance gives between random groups of
    the sizes measured (:func:`chance_smd`, shared over the covariates in the table)."""
    k = int(balance["smd"].notna().sum())
    band = [chance_smd(a, b, k) for a, b in zip(balance["n_ipc"], balance["n_comparison"])]
    balance["chance_smd"] = band
    beyond = balance["smd"].abs() > np.maximum(SMD_THRESHOLD, band)
    return balance.loc[beyond.fillna(False), "covariate"].tolist()


def analyse_outcomes(people: pd.DataFrame, events: pd.DataFrame, surveys: pd.DataFrame,
                     extract_date: pd.Timestamp) -> OutcomeResults:
    """Every outcome analysis for one site (or a whole dataset)."""
    keys = tuple(EVENT_OUTCOMES) + QOL_MEASURES
    panels: dict = {}
    estimates = headline_estimates(people, events, surveys, extract_date, outcomes=keys, panels=panels)
    crude = headline_estimates(people, events, surveys, extract_date, outcomes=tuple(EVENT_OUTCOMES), panels=panels,
                               model="pooled")
    cov = person_covariates(people, events, surveys)
    balance = standardised_differences(cov)
    imbalanced = imbalanced_covariates(balance)
    adjusted, notes = {}, []
    weights = propensity_model(cov)
    if weights is None:
        notes.append("A propensity model could not be fitted (too few people, or the groups do not overlap), so no "
                     "weighted estimates are shown.")
    else:
        chance = balance["chance_smd"]
        balance = standardised_differences(cov, weights.weights)
        balance["chance_smd"] = chance.to_numpy()
        adjusted = headline_estimates(people, events, surveys, extract_date, weights=weights, outcomes=keys,
                                      panels=panels)
    completeness = follow_up_completeness(people, surveys, extract_date)
    exits, exit_ratios = exits_by_group(people, extract_date)
    due = people["index_date"] + pd.Timedelta(days=WINDOW_DAYS) <= pd.Timestamp(extract_date) + pd.Timedelta(days=1)
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
        crude=crude,
        exits=exits,
        exit_ratios=exit_ratios,
        pre_trend=pre_trend(people, events, extract_date),
        not_yet_due=int((~due).sum()),
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


def _disagree(a: Estimate | None, b: Estimate | None, se: float) -> bool:
    """Two ratios disagree when their logs differ by more than the headline's standard error."""
    return bool(a is not None and b is not None and a.available and b.available
                and abs(np.log(a.value) - np.log(b.value)) > se)


def worse_year_before(balance: pd.DataFrame) -> bool:
    """Did budget holders' emergency admissions in the year before differ from the comparison
    group's by more than chance gives at these sizes (one two-sided 5% comparison)? Then part of
    any fall after is regression to the mean, which only the weighted estimate allows for."""
    row = balance[balance["covariate"] == "baseline_admissions_rate"]
    if row.empty or pd.isna(row["smd"].iloc[0]):
        return False
    r = row.iloc[0]
    return bool(abs(r["smd"]) > chance_smd(int(r["n_ipc"]), int(r["n_comparison"])))


def preferred(main: Estimate | None, weighted: Estimate | None, balance: pd.DataFrame) -> str:
    """Which admissions estimate the briefing tells the reader to believe: "weighted" where the
    groups' year-before admissions differ beyond chance (:func:`worse_year_before`) or the
    weighted estimate differs from the headline by more than the headline's standard error (the
    groups differ at the start in ways that move the answer), else "conditional" (the headline,
    which who leaves cannot move)."""
    if main is None or not main.available or weighted is None or not weighted.available:
        return "conditional"
    return "weighted" if worse_year_before(balance) or _disagree(main, weighted, main.se) else "conditional"


def which_to_believe(results: OutcomeResults, key: str = "admissions") -> str:
    """The sentence on the headline and its sensitivity rows: which to believe when they
    disagree, and why (from the validity study, docs/validity.md)."""
    main, crude, weighted = results.estimates.get(key), results.crude.get(key), results.adjusted.get(key)
    if main is None or not main.available:
        return ""
    if worse_year_before(results.balance) and preferred(main, weighted, results.balance) == "weighted":
        return ("The groups' emergency admissions in the year before they started differed by more than chance "
                "gives, so part of any change after would have happened anyway (regression to the mean): believe "
                "the weighted estimate, which compares budget holders with people whose year before was alike.")
    if preferred(main, weighted, results.balance) == "weighted":
        return ("The weighted estimate differs from the headline by more than its uncertainty: the groups differed "
                "at the start in ways that move the answer, so believe the weighted estimate, which compares each "
                "person with themselves and budget holders with people like them at the start.")
    if not (_disagree(main, crude, main.se) or _disagree(main, weighted, main.se)):
        return ("The three estimates agree within the uncertainty, so neither who left early nor the groups' "
                "differences at the start changes the answer.")
    exits = results.exit_ratios.get("exits")
    uneven_exits = exits is not None and exits.available and (exits.low > 1 or exits.high < 1)
    if uneven_exits:
        return ("They disagree. The groups left at different rates, which changes who is left in a model without "
                "person effects: believe the headline (conditional) estimate, which compares each person with "
                "themselves and is not moved by who leaves.")
    return ("The estimate without person effects differs: it is moved by who leaves early, the headline "
            "(conditional) estimate is not, so believe the headline.")


def _admissions_messages(results: OutcomeResults) -> list[str]:
    out = []
    for key in ("admissions", "bed_days"):
        est = results.estimates.get(key)
        name = OUTCOME_NAMES[key]
        if est is None:
            continue
        if not est.available:
            out.append(f"{name}: no estimate ({est.reason}).")
            continue
        text = (f"{name} {_ratio_words(est)}: rate ratio {_ci(est, '{:.2f}')}, comparing each person with "
                f"themselves, from {est.n:,} people; {interval_words(est)}.")
        if key == "admissions":
            mde = minimum_detectable_ratio(est.se)
            text += (f" The smallest fall this comparison would reliably detect (80% power) is {1 - mde:.0%} "
                     f"(rate ratio {mde:.2f})")
            text += (", so 'no different' here does not mean budgets have no effect." if est.low <= 1 <= est.high
                     else ".")
            rows = [(label, results.crude.get(key) if kind == "crude" else results.adjusted.get(key))
                    for label, kind in (("without person effects", "crude"), ("weighted for differences at the start",
                                                                              "weighted"))]
            shown = [f"{label} {_ci(e, '{:.2f}')}" for label, e in rows if e is not None and e.available]
            if shown:
                text += " Sensitivity: " + "; ".join(shown) + ". " + which_to_believe(results, key)
        out.append(text)
    return out


def _exit_messages(results: OutcomeResults) -> list[str]:
    t = results.exits
    if t.empty:
        return []
    t = t.set_index("group")
    ratio = results.exit_ratios.get("exits")

    def rate(group: str, count: str, col: str) -> str:  # a rate from fewer than 10 events could reveal them
        return f"{t.loc[group, col]:.1f}" if t.loc[group, count] >= MIN_EVENTS_PER_CELL else "too few to show"

    text = (f"Leaving: {rate('ipc', 'exits', 'exit_rate')} per 100 person-years of budget holders left the programme, "
            f"moved or died, against {rate('comparison', 'exits', 'exit_rate')} in the comparison group (deaths "
            f"{rate('ipc', 'died', 'death_rate')} against {rate('comparison', 'died', 'death_rate')})")
    if ratio is not None and ratio.available:
        text += f"; exit rate ratio {_ci(ratio, '{:.2f}')}."
    else:
        text += "."
    return [text]


def _follow_up_messages(results: OutcomeResults) -> list[str]:
    msgs = []
    if results.not_yet_due:
        msgs.append(f"{results.not_yet_due:,} people started less than a year before the extract date: their "
                    "follow-up year is not over, so they are left out of the quality-of-life and cost comparisons "
                    "and count in hospital use for the time observed.")
    trend = results.pre_trend
    if trend is not None:
        if trend.available:
            msgs.append(f"Before the budgets started, emergency admissions of the two groups moved alike (second year "
                        f"before against the first: rate ratio {_ci(trend, '{:.2f}')})" if trend.low <= 1 <= trend.high
                        else f"Before the budgets started the groups' emergency admissions already moved differently "
                             f"(rate ratio {_ci(trend, '{:.2f}')}), so the difference in differences is in doubt.")
        else:
            msgs.append(f"No pre-trend check: {trend.reason}.")
    return msgs


def _qol_messages(results: OutcomeResults) -> list[str]:
    msgs = []
    qol = results.quality_of_life.set_index("measure") if not results.quality_of_life.empty else None
    for key, fmt in (("ascot", "{:+.3f}"), ("eq5d", "{:+.3f}"), ("ghq12", "{:+.1f}")):
        est = results.estimates.get(key)
        if est is None:
            continue
        name = OUTCOME_NAMES[key]
        if not est.available:
            msgs.append(f"{name}: no estimate ({est.reason}).")
            continue
        text = (f"{name} a year on was {_diff_words(est, key != 'ghq12')}: adjusted difference {_ci(est, fmt)} points, "
                f"from {est.n:,} people with both questionnaires.")
        if qol is not None and key in qol.index and qol.loc[key, "baseline_apart"] and pd.notna(qol.loc[key, "change_diff"]):
            r = qol.loc[key]
            text += (f" The groups started apart on this score (standardised difference {r['baseline_smd']:+.2f}), so "
                     f"the change score is shown too: {fmt.format(r['change_diff'])} ({fmt.format(r['change_low'])} to "
                     f"{fmt.format(r['change_high'])}). The first assumes the gap at the start would have narrowed, the "
                     "second that it would have stayed; the truth plausibly lies between them.")
        msgs.append(text)
    return msgs


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def key_messages(results: OutcomeResults, economics=None) -> list[str]:
    """Plain-words sentences generated from the numbers, ending with what the design cannot
    rule out. ``economics``: optional :class:`ipcreport.analysis.economics.CostEffectiveness`."""
    msgs = _admissions_messages(results) + _exit_messages(results) + _qol_messages(results)
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
    msgs += _follow_up_messages(results)
    if results.imbalanced:
        names = ", ".join(_lower_first(BALANCE_LABELS.get(c, c.replace("cohort_", "share in cohort ")
                                                           .replace("_", " "))) for c in results.imbalanced)
        msgs.append(f"The groups differed at the start by more than chance gives at this size ({names}); the weighted "
                    "estimates allow for these measured differences.")
    else:
        msgs.append("The groups were alike at the start on the measured characteristics: every standardised "
                    "difference is within what chance gives between random groups of this size.")
    if economics is not None:
        msgs.extend(economics.messages(include_ascot=False))
    msgs.append("People chose to take a budget, so the groups may differ in ways the data do not measure "
                "(motivation, family support, how services treated them); the comparison adjusts only for "
                "measured differences and cannot rule these out.")
    return msgs

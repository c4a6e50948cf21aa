"""Hospital use: difference in differences (conditional and pooled Poisson), subgroups, the
pre-trend check. See the package docstring for the method."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import SpecificationWarning

from ...data.contract import COHORTS, MANAGEMENT
from ...data.frames import positions
from .balance import PropensityModel, _person_weights, _stacked_variance
from .common import (DAYS_PER_YEAR, EVENT_OUTCOMES, MIN_EVENTS_PER_CELL, MIN_PEOPLE_PER_GROUP, WINDOW_DAYS, Z95,
                     Estimate, _design, _group_sizes, _none)


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
    # each event's person as a row of p (Arrow positions, not a merge on Arrow-text IDs)
    ev = events[events["event_type"] == event_type]
    pos = positions(ev["person_id"], p["person_id"])
    at, date = np.maximum(pos, 0), ev["event_date"].to_numpy()
    index, start, end = (p[c].to_numpy()[at] for c in ("index_date", "before_start", "after_end"))
    weight = (ev["bed_days"].to_numpy(dtype=float, na_value=0.0) if measure == "bed_days" else np.ones(len(ev)))
    before = (pos >= 0) & (date >= start) & (date < index)
    after = (pos >= 0) & (date >= index) & (date <= end)
    exposure = {
        0: np.full(len(p), float(window_days)),
        1: _days(p["after_end"] - p["index_date"]) + 1.0,
    }
    rows = []
    base_cols = [c for c in keep if c not in ("index_date", "exit_date")]
    for period, mask in ((0, before), (1, after)):
        rows.append(
            p[base_cols].assign(
                after=period,
                events=np.bincount(pos[mask], weights=weight[mask], minlength=len(p)).astype(float),
                episodes=np.bincount(pos[mask], minlength=len(p)).astype(float),
                years=exposure[period] / DAYS_PER_YEAR,
            )
        )
    panel = pd.concat(rows, ignore_index=True)
    panel["ipc"] = (panel["group"] == "ipc").astype(int)
    return panel[panel["years"] > 0].reset_index(drop=True)


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
    y, offset = panel["events"].to_numpy(dtype=float), np.log(panel["years"].to_numpy(dtype=float))
    try:
        params, cov, mu = _pooled_fit(y, X, offset, groups, kwargs)
    except (np.linalg.LinAlgError, ValueError) as err:  # pragma: no cover - degenerate data
        return _none(n, f"the model could not be fitted ({err})")
    beta, se = float(params[3]), float(np.sqrt(cov[3, 3]))
    if person is not None:
        se = float(np.sqrt(_stacked_variance(weights, person, X, kwargs["var_weights"], y - mu, mu)[3, 3]))
    if not np.isfinite(beta) or not np.isfinite(se) or se == 0:
        return _none(n, "the model did not give a finite estimate")
    return Estimate(float(np.exp(beta)), float(np.exp(beta - Z95 * se)), float(np.exp(beta + Z95 * se)), n=n, se=se)


def _pooled_fit(y: np.ndarray, X: np.ndarray, offset: np.ndarray, groups: np.ndarray,
                kwargs: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coefficients, person-clustered covariance, fitted means) of the pooled Poisson model:
    by Newton without weights (:func:`_poisson_cluster`), else (or where Newton does not
    settle) statsmodels' GLM."""
    if not kwargs and (fast := _poisson_cluster(y, X, offset, groups)) is not None:
        return fast
    with warnings.catch_warnings():
        # statsmodels warns that robust errors with var_weights are "not fully supported";
        # the cluster sandwich it computes is the correct weighted one (checked against a
        # hand-built sandwich in tests/test_outcomes.py).
        warnings.simplefilter("ignore", SpecificationWarning)
        fit = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset, **kwargs).fit(
            cov_type="cluster", cov_kwds={"groups": groups})
    return np.asarray(fit.params), np.asarray(fit.cov_params()), np.asarray(fit.mu, dtype=float)


def _poisson_cluster(y: np.ndarray, X: np.ndarray, offset: np.ndarray,
                     groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """What statsmodels' ``GLM(y, X, Poisson, offset).fit(cov_type="cluster")`` gives (its
    G/(G-1) x (N-1)/(N-K) correction included), by Newton from the intercept-only fit, with the
    per-person scores summed by bincount. None where Newton does not settle."""
    n, k = X.shape
    beta = np.zeros(k)
    beta[0] = np.log(y.sum() / np.exp(offset).sum())  # column 0 is the intercept
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(100):
            mu = np.exp(offset + X @ beta)
            step = np.linalg.solve((X * mu[:, None]).T @ X, X.T @ (y - mu))
            beta = beta + step
            if not np.isfinite(beta).all():
                return None
            if np.abs(step).max() < 1e-12 * max(1.0, np.abs(beta).max()):
                break
        else:
            return None
    mu = np.exp(offset + X @ beta)
    bread = np.linalg.inv((X * mu[:, None]).T @ X)
    g = int(groups.max()) + 1
    scores = np.column_stack([np.bincount(groups, weights=X[:, j] * (y - mu), minlength=g) for j in range(k)])
    cov = bread @ (scores.T @ scores) @ bread * g / (g - 1) * (n - 1) / (n - k)
    return beta, cov, mu


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
    if min(n_ipc, n_comp) < min_people:
        return _too_few_reason(n_ipc, n_comp, 0.0, min_people, min_events)
    count_col = "episodes" if "episodes" in panel.columns else "events"
    cells = panel.groupby(["ipc", "after"])[count_col].sum().reindex(
        pd.MultiIndex.from_product([[0, 1], [0, 1]]), fill_value=0)
    return _too_few_reason(n_ipc, n_comp, cells.min(), min_people, min_events)


def _too_few_reason(n_ipc: int, n_comp: int, fewest_events: float, min_people: int,
                    min_events: int) -> Estimate | None:
    """:func:`_too_few` from the group sizes and the fewest events in a group and window."""
    n = n_ipc + n_comp
    if min(n_ipc, n_comp) < min_people:
        return _none(n, f"too few people for a stable estimate ({n_ipc} budget holders, {n_comp} comparison)")
    if fewest_events < min_events:
        return _none(n, f"too few events for a stable estimate (fewest in any group and period: "
                        f"{int(fewest_events)}; at least {min_events} needed)")
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
    return _binomial_estimate(y1, total, X, offset, w, n, weights if person is not None else None, person)


def _binomial_fit(y1: np.ndarray, total: np.ndarray, X: np.ndarray, offset: np.ndarray,
                  w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients, fitted after-window probabilities) of the weighted binomial logit with
    offset. Newton on the sufficient statistics (for the canonical link it is statsmodels'
    IRLS, here without building a GLM per subgroup); statsmodels' GLM where Newton does not
    settle (separation, overflow), so degenerate data fail exactly as before."""
    beta = np.zeros(X.shape[1])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(50):
            p = 1.0 / (1.0 + np.exp(-(offset + X @ beta)))
            try:
                step = np.linalg.solve((X * (w * total * p * (1 - p))[:, None]).T @ X, X.T @ (w * (y1 - total * p)))
            except np.linalg.LinAlgError:
                break
            beta = beta + step
            if not np.isfinite(beta).all():
                break
            if np.abs(step).max() < 1e-12 * max(1.0, np.abs(beta).max()):
                return beta, 1.0 / (1.0 + np.exp(-(offset + X @ beta)))
    fit = sm.GLM(np.column_stack([y1, total - y1]), X, family=sm.families.Binomial(), offset=offset,
                 var_weights=w).fit()
    return np.asarray(fit.params, dtype=float), np.asarray(fit.mu, dtype=float)


def _binomial_estimate(y1: np.ndarray, total: np.ndarray, X: np.ndarray, offset: np.ndarray, w: np.ndarray,
                       n: int, model: "PropensityModel | None" = None, person: np.ndarray | None = None) -> Estimate:
    """The rate ratio of the conditional model from per-person arrays (see
    :func:`conditional_rate_ratio`): robust sandwich, or the stacked one with a propensity model."""
    try:
        params, p = _binomial_fit(y1, total, X, offset, w)
    except (np.linalg.LinAlgError, ValueError) as err:  # pragma: no cover - degenerate data
        return _none(n, f"the model could not be fitted ({err})")
    resid, slope = y1 - total * p, total * p * (1 - p)  # score residual and its derivative
    if model is not None:
        V = _stacked_variance(model, person, X, w, resid, slope)
    else:
        bread = np.linalg.inv((X * (w * slope)[:, None]).T @ X)
        meat = (X * (w * resid)[:, None]).T @ (X * (w * resid)[:, None])
        V = bread @ meat @ bread * len(y1) / (len(y1) - 1)
    beta, se = float(params[1]), float(np.sqrt(V[1, 1]))
    if not np.isfinite(beta) or not np.isfinite(se) or se == 0:
        return _none(n, "the model did not give a finite estimate")
    return Estimate(float(np.exp(beta)), float(np.exp(beta - Z95 * se)), float(np.exp(beta + Z95 * se)), n=n, se=se)



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
    if kw.get("weights") is None and "episodes" in panel.columns and len(panel):
        return _subgroups_by_person(panel, outcome, **{k: v for k, v in kw.items() if k != "weights"})
    rows = [_subgroup_row(outcome, "overall", "all", panel, **kw)]
    cohorts = set(panel["cohort"].dropna().unique())  # once: iterating a column per cohort is slow at 100k
    present = [c for c in COHORTS if c in cohorts] + sorted(cohorts - set(COHORTS))
    for cohort in present:
        rows.append(_subgroup_row(outcome, "cohort", cohort, panel[panel["cohort"] == cohort], **kw))
    comparison = panel[panel["ipc"] == 0]
    modes = set(panel.loc[panel["ipc"] == 1, "management"].dropna().unique())
    for mode in [m for m in MANAGEMENT if m in modes] + sorted(modes - set(MANAGEMENT)):
        sub = pd.concat([panel[(panel["ipc"] == 1) & (panel["management"] == mode)], comparison])
        rows.append(_subgroup_row(outcome, "management", mode, sub, **kw))
    out = pd.DataFrame(rows, columns=SUBGROUP_COLUMNS)
    out["reason"] = out["reason"].astype(object).where(out["reason"].notna(), None)
    return out


class _PersonWindows:
    """A panel as one row per person (its before row) with the after window beside it, as numpy
    arrays, so each subgroup is a boolean mask: no pandas filtering, merging or model object per
    subgroup (at 100k people those were most of the subgroup table's time)."""

    def __init__(self, panel: pd.DataFrame):
        before = panel[panel["after"].to_numpy() == 0]
        after = panel[panel["after"].to_numpy() == 1]
        pos = positions(after["person_id"], before["person_id"])
        self.ipc = before["ipc"].to_numpy() == 1
        self.cohort, self.management = before["cohort"], before["management"]
        self.y0, self.e0, self.t0 = (before[c].to_numpy(dtype=float) for c in ("events", "episodes", "years"))
        self.has_after = np.zeros(len(before), dtype=bool)
        self.y1, self.e1, self.t1 = np.zeros(len(before)), np.zeros(len(before)), np.ones(len(before))
        ok = pos >= 0  # an after row without a before row never happens in before_after_panel's panels
        self.has_after[pos[ok]] = True
        for name, col in (("y1", "events"), ("e1", "episodes"), ("t1", "years")):
            getattr(self, name)[pos[ok]] = after[col].to_numpy(dtype=float)[ok]

    def row(self, mask: np.ndarray, min_people: int, min_events: int) -> tuple[Estimate, int, int, int]:
        """(the conditional rate ratio, n_ipc, n_comparison, events) of the people in ``mask``."""
        ipc = self.ipc[mask]
        n_ipc, n_comp = int(ipc.sum()), int(len(ipc) - ipc.sum())
        both = mask & self.has_after
        e0, e1 = self.e0[mask], self.e1[both]
        events = int(e0.sum() + e1.sum())
        fewest = min(e0[ipc].sum(), e0[~ipc].sum(), e1[self.ipc[both]].sum(), e1[~self.ipc[both]].sum())
        if (few := _too_few_reason(n_ipc, n_comp, fewest, min_people, min_events)) is not None:
            return few, n_ipc, n_comp, events
        return self._estimate(both), n_ipc, n_comp, events

    def _estimate(self, both: np.ndarray) -> Estimate:
        """:func:`conditional_rate_ratio` (no weights) of the people in ``both``."""
        n = int(both.sum())
        use = both & ((self.y0 + self.y1) > 0)
        x = self.ipc[use].astype(float)
        if use.sum() < 3 or x.min() == x.max():
            return _none(n, "too few people with events in either window")
        y1, total = self.y1[use], self.y0[use] + self.y1[use]
        offset = np.log(self.t1[use] / self.t0[use])
        return _binomial_estimate(y1, total, np.column_stack([np.ones(len(x)), x]), offset, np.ones(len(x)), n)


def _subgroups_by_person(panel: pd.DataFrame, outcome: str, min_people: int = MIN_PEOPLE_PER_GROUP,
                         min_events: int = MIN_EVENTS_PER_CELL) -> pd.DataFrame:
    """:func:`rate_ratio_subgroups` without weights, on :class:`_PersonWindows`."""
    P = _PersonWindows(panel)
    groups = [("overall", "all", np.ones(len(P.ipc), dtype=bool))]
    cohort = P.cohort.to_numpy(dtype=object, na_value=None)
    cohorts = set(P.cohort.dropna().unique())
    for c in [c for c in COHORTS if c in cohorts] + sorted(cohorts - set(COHORTS)):
        groups.append(("cohort", c, cohort == c))
    management = P.management.to_numpy(dtype=object, na_value=None)
    modes = set(P.management[P.ipc].dropna().unique())
    for mode in [m for m in MANAGEMENT if m in modes] + sorted(modes - set(MANAGEMENT)):
        groups.append(("management", mode, (P.ipc & (management == mode)) | ~P.ipc))
    rows = []
    for dimension, subgroup, mask in groups:
        est, n_ipc, n_comp, events = P.row(mask, min_people, min_events)
        rows.append({"outcome": outcome, "dimension": dimension, "subgroup": subgroup, "irr": est.value,
                     "low": est.low, "high": est.high, "n": n_ipc + n_comp, "n_ipc": n_ipc,
                     "n_comparison": n_comp, "events": events, "reason": est.reason})
    out = pd.DataFrame(rows, columns=SUBGROUP_COLUMNS)
    out["reason"] = out["reason"].astype(object).where(out["reason"].notna(), None)
    return out


def hospital_use_table(people: pd.DataFrame, events: pd.DataFrame, extract_date: pd.Timestamp,
                       outcomes: tuple[str, ...] = tuple(EVENT_OUTCOMES), weights: "pd.Series | PropensityModel | None" = None,
                       panels: dict | None = None) -> pd.DataFrame:
    """:func:`rate_ratio_subgroups` for every event outcome, stacked (one tidy frame).
    ``panels``: optional cache of the outcomes' panels (as :func:`headline_estimates` keeps)."""
    panels = {} if panels is None else panels
    frames = []
    for key in outcomes:
        if key not in panels:
            event_type, measure = EVENT_OUTCOMES[key]
            panels[key] = before_after_panel(people, events, event_type, extract_date, measure)
        frames.append(rate_ratio_subgroups(panels[key], key, weights=weights))
    return pd.concat(frames, ignore_index=True)


def rates_by_group(panel: pd.DataFrame) -> pd.DataFrame:
    """Crude rates per person-year by group and window (the numbers behind an IRR)."""
    t = panel.groupby(["group", "after"])[["events", "years"]].sum()
    t["rate"] = t["events"] / t["years"]
    out = t["rate"].unstack("after").rename(columns={0: "before", 1: "after"})
    out["ratio"] = out["after"] / out["before"]
    return out

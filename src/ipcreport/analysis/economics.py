"""Cost and value: what budgets cost over a year and what that buys.

Pure functions: frames in, frames or dataclasses out; no I/O and no plotting.

Population: people whose follow-up year was due by the extract date (index + 365 days <= extract
date + 1 day), budget holders and comparison alike. Each person's follow-up year is
``[index, index + 364 d]``, cut short at exit_date (inclusive); costs are what accrued in the part
observed (not annualised: a person who died after 3 months costs 3 months).

Cost per person over the follow-up year
---------------------------------------
* **Budget**: by default the *agreed* budget prorated to the days of the follow-up year each
  budget period covers (agreed budget x overlap days / period days). That is the money
  committed, known for every period at once, where spend lags (monthly returns, refunds of
  unspent direct payments months later). ``basis="spend"`` uses net spend instead: spend rows
  whose month starts inside the follow-up year. Comparison people hold no budget: 0.
* **Hospital**: ``events.cost`` of every event in the follow-up year (all event types; a missing
  cost is replaced by the mean cost of that event type in the data, none where no event of the
  type is costed, e.g. care-home admissions, priced by councils, not at NHS reference cost).
* Optionally (``usual_care=True``) comparison people also carry their ``prior_service_cost``,
  prorated to the days observed, as the cost of the services they go on receiving, which the
  data do not otherwise show. Off by default: it assumes those services continue at the
  pre-index level, and it is the largest uncertainty of the cost comparison (see messages).

Incremental cost: budget holders' mean cost minus what the comparison group's cost would be for
people like them, by regression adjustment for the treated (ATT): least squares of cost on
hospital cost in the year before index and prior_service_cost fitted on the comparison group,
predicted at the budget holders' covariate means. The crude difference in means is given too.

QALYs: EQ-5D by area under the curve between the baseline (at index) and follow-up (365 days
later) questionnaires, joined by a straight line over the year: QALY = 1 year x (baseline +
follow-up) / 2. Complete cases (both answered); people who died before follow-up are therefore
not in the QALY comparison (a limitation: a death would count as 0 from the day of death).
Incremental QALY: regression-adjusted for baseline EQ-5D in the same ATT way (baseline utility
differences must not count as gains). The ASCOT gain is the same calculation on ASCOT
follow-up scores.

Uncertainty: a non-parametric bootstrap, resampling people with replacement within each group
(seeded; 1,000 resamples by default), vectorised: each resample is a row of multinomial counts
used as weights, and the weighted least-squares fits of all resamples are solved as one batch.
The resamples give percentile 95% intervals for incremental cost, QALYs, ASCOT gain and net
monetary benefit (NMB = WTP x dQALY - dCost, at GBP 20,000 and 30,000 per QALY), the
cost-effectiveness plane and the acceptability curve (share of resamples with NMB > 0 at each
willingness to pay).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .outcomes import MIN_PEOPLE_PER_GROUP, WINDOW_DAYS, Estimate

WTP_THRESHOLDS = (20_000, 30_000)  # GBP per QALY (NICE's usual range)
WTP_GRID = np.arange(0, 100_001, 1_000, dtype=float)
N_BOOT = 1_000
SEED = 2015
COST_COVARIATES = ("baseline_hospital_cost", "prior_service_cost")
_CHUNK = 250  # resamples solved per batch (bounds memory at about 250 x people floats)


# ---------------------------------------------------------------------------------------------
# costs and QALYs per person


def qaly_auc(baseline, follow_up, years: float = 1.0):
    """QALYs by area under a straight line from baseline to follow-up utility over ``years``."""
    return years * (np.asarray(baseline, dtype=float) + np.asarray(follow_up, dtype=float)) / 2.0


def net_monetary_benefit(d_qaly, d_cost, wtp):
    """NMB = willingness to pay x incremental QALYs - incremental cost (GBP)."""
    return np.asarray(wtp, dtype=float) * np.asarray(d_qaly, dtype=float) - np.asarray(d_cost, dtype=float)


def _event_costs(events: pd.DataFrame) -> pd.Series:
    """Event costs with missing ones replaced by their event type's mean (0 where none known)."""
    cost = events["cost"].astype(float)
    type_mean = cost.groupby(events["event_type"]).transform("mean")
    return cost.fillna(type_mean).fillna(0.0)


def follow_up_costs(people: pd.DataFrame, budgets: pd.DataFrame, events: pd.DataFrame,
                    extract_date: pd.Timestamp, basis: str = "agreed", spend: pd.DataFrame | None = None,
                    usual_care: bool = False, window_days: int = WINDOW_DAYS) -> pd.DataFrame:
    """One row per person whose follow-up year was due: costs over the follow-up year.

    Columns: person_id, group, ipc, cohort, management, days (observed in the follow-up year),
    budget_cost, hospital_cost, usual_care_cost, total_cost, baseline_hospital_cost (the
    ``window_days`` before index), prior_service_cost, need_score.
    """
    if basis not in ("agreed", "spend"):
        raise ValueError(f"basis must be 'agreed' or 'spend', got {basis!r}")
    if basis == "spend" and spend is None:
        raise ValueError("basis='spend' needs the spend table")
    extract_date = pd.Timestamp(extract_date)
    day = pd.Timedelta(days=1)
    p = people[["person_id", "group", "cohort", "management", "index_date", "exit_date", "prior_service_cost",
                "need_score"]].copy()
    p = p[p["index_date"] + window_days * day <= extract_date + day].reset_index(drop=True)
    if p.empty:
        return pd.DataFrame(columns=COST_COLUMNS)
    end = p["index_date"] + (window_days - 1) * day
    p["end"] = end.where(p["exit_date"].isna(), np.minimum(end, p["exit_date"]))
    p["days"] = (p["end"] - p["index_date"]) / day + 1
    p["ipc"] = (p["group"] == "ipc").astype(int)

    if basis == "agreed":
        b = budgets[["person_id", "period_start", "period_end", "agreed_budget"]].merge(
            p[["person_id", "index_date", "end"]], on="person_id")
        lo = np.maximum(b["period_start"], b["index_date"])
        hi = np.minimum(b["period_end"], b["end"])
        overlap = ((hi - lo) / day + 1).clip(lower=0)
        length = (b["period_end"] - b["period_start"]) / day + 1
        money = b["agreed_budget"].astype(float) * overlap / length
        budget = money.groupby(b["person_id"]).sum()
    else:
        s = spend[["person_id", "month", "amount"]].merge(p[["person_id", "index_date", "end"]], on="person_id")
        inside = (s["month"] >= s["index_date"]) & (s["month"] <= s["end"])
        budget = s.loc[inside, "amount"].astype(float).groupby(s.loc[inside, "person_id"]).sum()
    p["budget_cost"] = p["person_id"].map(budget).fillna(0.0).astype(float)

    ev = events[["person_id", "event_date", "event_type"]].assign(cost=_event_costs(events)).merge(
        p[["person_id", "index_date", "end"]], on="person_id")
    after = (ev["event_date"] >= ev["index_date"]) & (ev["event_date"] <= ev["end"])
    before = (ev["event_date"] < ev["index_date"]) & (ev["event_date"] >= ev["index_date"] - window_days * day)
    p["hospital_cost"] = p["person_id"].map(ev.loc[after].groupby("person_id")["cost"].sum()).fillna(0.0)
    p["baseline_hospital_cost"] = p["person_id"].map(ev.loc[before].groupby("person_id")["cost"].sum()).fillna(0.0)
    prior = p["prior_service_cost"].astype(float).fillna(0.0)
    p["usual_care_cost"] = np.where((p["ipc"] == 0) & usual_care, prior * p["days"] / 365.0, 0.0)
    p["total_cost"] = p["budget_cost"] + p["hospital_cost"] + p["usual_care_cost"]
    p["prior_service_cost"] = prior
    return p[COST_COLUMNS]


COST_COLUMNS = ["person_id", "group", "ipc", "cohort", "management", "days", "budget_cost", "hospital_cost",
                "usual_care_cost", "total_cost", "baseline_hospital_cost", "prior_service_cost", "need_score"]


def economic_panel(people: pd.DataFrame, budgets: pd.DataFrame, events: pd.DataFrame, surveys: pd.DataFrame,
                   extract_date: pd.Timestamp, **cost_options) -> pd.DataFrame:
    """:func:`follow_up_costs` plus EQ-5D and ASCOT at baseline and follow-up and the QALYs."""
    costs = follow_up_costs(people, budgets, events, extract_date, **cost_options)
    for m in ("eq5d", "ascot"):
        wide = surveys.pivot_table(index="person_id", columns="timepoint", values=m, aggfunc="first")
        wide = wide.reindex(columns=["baseline", "follow_up"])
        costs[f"{m}_baseline"] = costs["person_id"].map(wide["baseline"]).astype(float)
        costs[f"{m}_follow_up"] = costs["person_id"].map(wide["follow_up"]).astype(float)
    costs["qaly"] = qaly_auc(costs["eq5d_baseline"], costs["eq5d_follow_up"])
    return costs


# ---------------------------------------------------------------------------------------------
# vectorised bootstrap of regression-adjusted (ATT) differences


def _resample_counts(ipc: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """B x n matrix of resample counts: people resampled with replacement within each group."""
    W = np.zeros((n_boot, len(ipc)))
    for mask in (ipc, ~ipc):
        idx = np.flatnonzero(mask)
        W[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=n_boot)
    return W


def att_difference(y: np.ndarray, X: np.ndarray, ipc: np.ndarray, W: np.ndarray | None = None) -> np.ndarray:
    """Regression-adjusted difference for the treated, for each row of weights ``W`` (B x n).

    Budget holders' weighted mean of y minus the comparison group's weighted least-squares fit
    of y on X (X includes the intercept) evaluated at the budget holders' weighted mean of X.
    Rows with y missing (NaN) are left out. With X a column of ones this is the difference in
    means. ``W=None`` means every weight 1 (the point estimate); returns an array of length B.
    """
    y = np.asarray(y, dtype=float)
    ok = ~np.isnan(y)
    ipc = np.asarray(ipc, dtype=bool)
    if W is None:
        W = np.ones((1, len(y)))
    Wv = W * ok
    y0 = np.where(ok, y, 0.0)
    wi, wc = Wv[:, ipc], Wv[:, ~ipc]
    mean_y = wi @ y0[ipc] / wi.sum(axis=1)
    mean_x = wi @ X[ipc] / wi.sum(axis=1)[:, None]
    Xc, yc = X[~ipc], y0[~ipc]
    xtx = np.einsum("bi,ij,ik->bjk", wc, Xc, Xc)
    xty = wc @ (Xc * yc[:, None])
    try:
        beta = np.linalg.solve(xtx, xty[..., None])[..., 0]
    except np.linalg.LinAlgError:
        beta = np.einsum("bjk,bk->bj", np.linalg.pinv(xtx), xty)
    return mean_y - np.einsum("bj,bj->b", mean_x, beta)


def _design(panel: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    cols = [np.ones(len(panel))]
    for c in columns:
        v = panel[c].to_numpy(dtype=float)
        if np.nanstd(v) > 0:
            cols.append(np.where(np.isnan(v), np.nanmean(v), v))
    return np.column_stack(cols)


def acceptability_curve(draws: pd.DataFrame, wtp: np.ndarray = WTP_GRID) -> pd.DataFrame:
    """Probability that budgets are cost-effective (NMB > 0) at each willingness to pay."""
    wtp = np.asarray(wtp, dtype=float)
    nmb = wtp[None, :] * draws["d_qaly"].to_numpy()[:, None] - draws["d_cost"].to_numpy()[:, None]
    return pd.DataFrame({"wtp": wtp, "probability": (nmb > 0).mean(axis=0)})


def icer(d_cost: float, d_qaly: float) -> tuple[float | None, str]:
    """Incremental cost per QALY and the quadrant of the cost-effectiveness plane it sits in."""
    if d_qaly > 0 and d_cost <= 0:
        return None, "dominant (more QALYs for less money)"
    if d_qaly <= 0 and d_cost >= 0:
        return None, "dominated (no more QALYs, more money)"
    value = d_cost / d_qaly
    if d_qaly > 0:
        return value, "more QALYs for more money"
    return value, "fewer QALYs for less money (GBP saved per QALY lost)"


# ---------------------------------------------------------------------------------------------
# the whole analysis


def _gbp(x: float) -> str:
    sign = "-" if x < 0 else ""
    x = abs(x)
    return f"{sign}£{x / 1e6:,.1f}m" if x >= 1e6 else f"{sign}£{x:,.0f}"


def _chance(p: float) -> str:
    """A bootstrap probability in words: never '0%' or '100%'."""
    return "under 1%" if p < 0.01 else "over 99%" if p > 0.99 else f"{p:.0%}"


@dataclass
class CostEffectiveness:
    """What :func:`cost_effectiveness` returns. Estimates carry percentile bootstrap intervals."""

    n_ipc: int
    n_comparison: int
    n_qaly: int  # people with baseline and follow-up EQ-5D
    costs: pd.DataFrame  # mean cost components by group
    d_cost: Estimate  # adjusted (ATT) incremental cost, GBP per person over the year
    d_cost_crude: Estimate
    d_qaly: Estimate
    d_ascot: Estimate
    icer: float | None
    icer_quadrant: str | None
    nmb: dict[int, Estimate]
    p_cost_effective: dict[int, float]
    draws: pd.DataFrame  # d_cost, d_qaly, d_ascot per resample: the cost-effectiveness plane
    ceac: pd.DataFrame  # wtp, probability
    basis: str
    usual_care: bool
    n_boot: int
    seed: int
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self.reason is None

    def messages(self, include_ascot: bool = True) -> list[str]:
        """Plain-words sentences from the numbers (``include_ascot=False`` when the outcome
        messages already report ASCOT)."""
        if not self.available:
            return [f"Costs and value for money: not estimated ({self.reason})."]
        out = []
        dc = self.d_cost
        budget = "agreed budgets prorated to the year" if self.basis == "agreed" else "budget spend in the year"
        kept = (", and for the comparison group the cost of the services they had before, carried forward"
                if self.usual_care else "")
        direction = "more" if dc.value >= 0 else "less"
        out.append(
            f"Over the year after the budget started, budget holders cost {_gbp(abs(dc.value))} {direction} per person "
            f"than similar people in the comparison group (95% CI {_gbp(dc.low)} to {_gbp(dc.high)}). Costs count "
            f"{budget} and hospital care{kept}; the comparison allows for hospital and service costs in the year "
            "before."
        )
        if not self.usual_care:
            out.append("The comparison group's own social-care and community services are not in the data, so where "
                       "budgets replaced such services the extra cost is overstated.")
        if self.d_qaly.available:
            q = self.d_qaly
            out.append(f"Over the year, budget holders had {q.value:+.3f} QALYs per person against the comparison group "
                       f"(95% CI {q.low:+.3f} to {q.high:+.3f}), from EQ-5D at the start and a year on, adjusted for "
                       "the starting score.")
            for wtp in sorted(self.nmb):
                n = self.nmb[wtp]
                out.append(
                    f"Valuing a QALY at {_gbp(wtp)}, the net monetary benefit is {_gbp(n.value)} per person (95% CI "
                    f"{_gbp(n.low)} to {_gbp(n.high)}); the chance that budgets are cost-effective is "
                    f"{_chance(self.p_cost_effective[wtp])}.")
            if self.icer is not None and q.low > 0:
                out.append(f"That is {_gbp(self.icer)} per QALY gained ({self.icer_quadrant}).")
            elif self.icer is None:
                out.append(f"Budgets were {self.icer_quadrant} on the central estimates.")
            else:
                out.append("The QALY difference is too uncertain for a stable cost per QALY; the net monetary "
                           "benefit and the acceptability curve are the figures to read.")
        else:
            out.append(f"QALYs: not estimated ({self.d_qaly.reason}).")
        if include_ascot and self.d_ascot.available:
            a = self.d_ascot
            out.append(f"Social-care quality of life (ASCOT) a year on differed by {a.value:+.3f} points, budget "
                       f"holders minus comparison (95% CI {a.low:+.3f} to {a.high:+.3f}): a benefit QALYs from EQ-5D "
                       "do not capture.")
        return out


def _estimate(point: float, draws: np.ndarray, n: int) -> Estimate:
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return Estimate(float(point), float(lo), float(hi), n=int(n))


def cost_effectiveness(panel: pd.DataFrame, n_boot: int = N_BOOT, seed: int = SEED,
                       wtp_thresholds: tuple[int, ...] = WTP_THRESHOLDS, wtp_grid: np.ndarray = WTP_GRID,
                       adjust: bool = True, basis: str = "agreed", usual_care: bool = False) -> CostEffectiveness:
    """Incremental cost, QALYs, ASCOT gain, ICER, NMB and the acceptability curve from
    :func:`economic_panel`'s frame (``basis``/``usual_care`` only label the result: pass the
    same options to economic_panel)."""
    ipc = panel["ipc"].to_numpy() == 1
    n_ipc, n_comp = int(ipc.sum()), int((~ipc).sum())
    has_qaly = panel["qaly"].notna().to_numpy()
    n_qaly = int(has_qaly.sum())
    costs = panel.groupby("group")[["budget_cost", "hospital_cost", "usual_care_cost", "total_cost"]].mean()
    empty = pd.DataFrame(columns=["d_cost", "d_qaly", "d_ascot"])
    if min(n_ipc, n_comp) < MIN_PEOPLE_PER_GROUP:
        reason = (f"too few people with a completed follow-up year for a stable estimate ({n_ipc} budget holders, "
                  f"{n_comp} comparison)")
        na = Estimate(None, n=n_ipc + n_comp, reason=reason)
        return CostEffectiveness(n_ipc, n_comp, n_qaly, costs, na, na, na, na, None, None,
                                 {w: na for w in wtp_thresholds}, {}, empty, pd.DataFrame(columns=["wtp", "probability"]),
                                 basis, usual_care, n_boot, seed, reason)

    cost_x = _design(panel, COST_COVARIATES) if adjust else np.ones((len(panel), 1))
    qaly_x = _design(panel, ("eq5d_baseline",)) if adjust else np.ones((len(panel), 1))
    ascot = np.where(panel[["ascot_baseline", "ascot_follow_up"]].notna().all(axis=1),
                     panel["ascot_follow_up"], np.nan)
    ascot_x = _design(panel, ("ascot_baseline",)) if adjust else np.ones((len(panel), 1))
    y_cost = panel["total_cost"].to_numpy(dtype=float)
    y_qaly = panel["qaly"].to_numpy(dtype=float)
    outcomes = {"d_cost": (y_cost, cost_x), "d_qaly": (y_qaly, qaly_x), "d_ascot": (ascot, ascot_x)}
    n_with = {"d_cost": (n_ipc, n_comp), "d_qaly": (int((has_qaly & ipc).sum()), int((has_qaly & ~ipc).sum())),
              "d_ascot": (int((~np.isnan(ascot) & ipc).sum()), int((~np.isnan(ascot) & ~ipc).sum()))}
    enough = {k: min(v) >= MIN_PEOPLE_PER_GROUP for k, v in n_with.items()}

    rng = np.random.default_rng(seed)
    draws = {k: [] for k in outcomes}
    for start in range(0, n_boot, _CHUNK):
        W = _resample_counts(ipc, min(_CHUNK, n_boot - start), rng)
        for k, (y, X) in outcomes.items():
            if enough[k]:
                draws[k].append(att_difference(y, X, ipc, W))
    draws = {k: (np.concatenate(v) if v else np.full(n_boot, np.nan)) for k, v in draws.items()}
    points = {k: float(att_difference(y, X, ipc)[0]) if enough[k] else None for k, (y, X) in outcomes.items()}
    est = {}
    for k in outcomes:
        n = sum(n_with[k])
        if enough[k]:
            est[k] = _estimate(points[k], draws[k], n)
        else:
            est[k] = Estimate(None, n=n, reason=f"too few people with both questionnaires ({n_with[k][0]} budget "
                                                  f"holders, {n_with[k][1]} comparison)")
    crude_draws = att_difference(y_cost, np.ones((len(panel), 1)), ipc,
                                 _resample_counts(ipc, n_boot, np.random.default_rng(seed + 1)))
    d_cost_crude = _estimate(float(att_difference(y_cost, np.ones((len(panel), 1)), ipc)[0]), crude_draws,
                             n_ipc + n_comp)
    frame = pd.DataFrame(draws)
    nmb, p_ce, ceac = {}, {}, pd.DataFrame(columns=["wtp", "probability"])
    ratio, quadrant = None, None
    if enough["d_qaly"]:
        for wtp in wtp_thresholds:
            values = net_monetary_benefit(frame["d_qaly"], frame["d_cost"], wtp)
            nmb[wtp] = _estimate(float(net_monetary_benefit(points["d_qaly"], points["d_cost"], wtp)), values,
                                 sum(n_with["d_qaly"]))
            p_ce[wtp] = float((values > 0).mean())
        ceac = acceptability_curve(frame, wtp_grid)
        ratio, quadrant = icer(points["d_cost"], points["d_qaly"])
    else:
        nmb = {w: Estimate(None, n=sum(n_with["d_qaly"]), reason=est["d_qaly"].reason) for w in wtp_thresholds}
    return CostEffectiveness(n_ipc, n_comp, n_qaly, costs, est["d_cost"], d_cost_crude, est["d_qaly"],
                             est["d_ascot"], ratio, quadrant, nmb, p_ce, frame, ceac, basis, usual_care, n_boot, seed)


def analyse_economics(people: pd.DataFrame, budgets: pd.DataFrame, events: pd.DataFrame, surveys: pd.DataFrame,
                      extract_date: pd.Timestamp, basis: str = "agreed", spend: pd.DataFrame | None = None,
                      usual_care: bool = False, n_boot: int = N_BOOT, seed: int = SEED) -> CostEffectiveness:
    """:func:`economic_panel` then :func:`cost_effectiveness`, with the options passed to both."""
    panel = economic_panel(people, budgets, events, surveys, extract_date, basis=basis, spend=spend,
                           usual_care=usual_care)
    return cost_effectiveness(panel, n_boot=n_boot, seed=seed, basis=basis, usual_care=usual_care)

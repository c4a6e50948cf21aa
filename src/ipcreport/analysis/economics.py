"""Cost and value: what budgets cost over a year and what that buys (docs/outcomes.md).

Pure functions: frames in, frames or dataclasses out; no I/O and no plotting.

Perspective: the NHS and personal social services (social care), the money IPC blends.
Education's share (of budgets and of outside services) is reported apart, never in the totals.

Analysis population: everyone whose follow-up year was due by the extract date (index + 365
days <= extract date + 1 day), budget holders and comparison alike, for costs AND QALYs. Each
person's follow-up year is ``[index, index + 364 d]``, cut short at exit_date (inclusive);
costs are what accrued in the part observed (not annualised).

Cost per person over the follow-up year
---------------------------------------
* **Budget**: actual spend (``basis="spend"``, the default): net spend (refunds deducted) of
  spend rows whose month starts inside the follow-up year, less education's share (each
  person's funded_education / agreed_budget over their periods). ``basis="agreed"`` uses agreed
  budgets prorated to the days covered (money committed, not spent). Comparison people: 0.
* **Outside services** (the optional ``services`` table): cost of service months starting
  inside the follow-up year, for both groups, education-funded services apart. Without the
  table the comparison group's social care, community and continuing care are unknown, so the
  groups' costs are not comparable: no incremental cost, NMB or acceptability curve is
  printed, only the budget cost and the break-even.
* **Hospital**: ``events.cost`` of every event in the follow-up year (a missing cost takes the
  mean of its event type; none where no event of the type is costed).

Incremental cost: budget holders' mean cost minus what the comparison group's would be for
people like them, by regression adjustment for the treated (ATT): least squares of cost on the
year-before hospital cost, the year-before outside-service cost (when services are given) and
prior_service_cost, fitted on the comparison group, predicted at the budget holders' means.

QALYs (EQ-5D) and ASCOT-years, same population: area under a straight line from the baseline to
the follow-up score over the year. Deaths (exit_reason ``died`` before the follow-up was due)
count the baseline score up to the day of death and zero from then on. Missing follow-ups of
people alive (non-response, moved, left) are imputed from their group's least-squares line of
follow-up on baseline among those who answered (missing at random given group and baseline);
a missing baseline takes the group's mean. How many were imputed is reported. Incremental QALYs
are adjusted for baseline EQ-5D in the same ATT way. ASCOT is valued like a QALY at the same
willingness to pay, as the 2012 national PHB evaluation did.

Break-even: how far budget holders' emergency admissions would have to fall for budgets to pay
for themselves: the extra cost outside hospital (budget plus outside services, budget holders
minus comparison; without a services table, the whole budget spend) over budget holders'
emergency admission cost per person-year in the year before they started.

Uncertainty: a non-parametric bootstrap, resampling people with replacement within each group
(seeded; 1,000 resamples by default), vectorised: each resample is a row of multinomial counts
used as weights, and the weighted least-squares fits of all resamples are solved as one batch
(no Python loop over people or over resamples beyond fixed-size batches). Percentile 95%
intervals; NMB = WTP x dQALY - dCost at GBP 20,000 and 30,000 per QALY; the acceptability curve
is the share of resamples with NMB > 0. No ICER is printed where the QALY interval includes 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data.frames import positions
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


def _in_windows(frame: pd.DataFrame, window: pd.DataFrame, date: str, days_before: int = 365):
    """Each of ``frame``'s rows placed in its person's follow-up year (``window``: person_id,
    index_date, end, one row a person): (the person's row in ``window``, -1 for people not in it;
    ``date`` inside the year; ``date`` in the ``days_before`` before index). Arrays, not a merge:
    merging millions of rows on Arrow-text person IDs was most of this module's time."""
    pos = positions(frame["person_id"], window["person_id"])
    found = pos >= 0
    at = np.where(found, pos, 0)
    when = frame[date].to_numpy()
    start, end = window["index_date"].to_numpy()[at], window["end"].to_numpy()[at]
    after = found & (when >= start) & (when <= end)
    before = found & (when < start) & (when >= start - np.timedelta64(days_before, "D"))
    return pos, after, before


def _per_person(pos: np.ndarray, mask: np.ndarray, value: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``value`` over the rows in ``mask`` for each of n people (missing values count 0,
    as pandas' sum skips them)."""
    return np.bincount(pos[mask], weights=np.nan_to_num(value[mask], nan=0.0), minlength=n)[:n]


def _months_in(frame: pd.DataFrame, window: pd.DataFrame, column: str):
    """``frame``'s monthly rows in each person's follow-up year (:func:`_in_windows` on its
    month), with the values of ``column`` as floats."""
    pos, after, before = _in_windows(frame, window, "month")
    return pos, after, before, frame[column].to_numpy(dtype=float, na_value=np.nan)


def _education_share(budgets: pd.DataFrame) -> pd.Series:
    """Each person's education-funded share of their agreed budgets (0 where none)."""
    if "funded_education" not in budgets.columns or budgets.empty:
        return pd.Series(dtype=float)
    totals = budgets.groupby("person_id")[["funded_education", "agreed_budget"]].sum()
    return (totals["funded_education"] / totals["agreed_budget"].where(totals["agreed_budget"] > 0)).fillna(0.0)


def follow_up_costs(people: pd.DataFrame, budgets: pd.DataFrame, events: pd.DataFrame,
                    extract_date: pd.Timestamp, basis: str = "spend", spend: pd.DataFrame | None = None,
                    usual_care: bool = False, window_days: int = WINDOW_DAYS,
                    services: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per person whose follow-up year was due: costs over the follow-up year.

    Columns: person_id, group, ipc, cohort, management, days (observed in the follow-up year),
    died (died within it), budget_cost (NHS and social care share), services_cost, hospital_cost,
    emergency_cost, usual_care_cost, total_cost (NHS and social care), education_cost (apart),
    baseline_hospital_cost, baseline_emergency_cost, baseline_services_cost (the ``window_days``
    before index), prior_service_cost, need_score.
    """
    if basis not in ("agreed", "spend"):
        raise ValueError(f"basis must be 'agreed' or 'spend', got {basis!r}")
    if basis == "spend" and spend is None:
        raise ValueError("basis='spend' needs the spend table")
    extract_date = pd.Timestamp(extract_date)
    day = pd.Timedelta(days=1)
    cols = ["person_id", "group", "cohort", "management", "index_date", "exit_date", "prior_service_cost", "need_score"]
    p = people[cols + (["exit_reason"] if "exit_reason" in people.columns else [])].copy()
    p = p[p["index_date"] + window_days * day <= extract_date + day].reset_index(drop=True)
    if p.empty:
        return pd.DataFrame(columns=COST_COLUMNS)
    end = p["index_date"] + (window_days - 1) * day
    p["end"] = end.where(p["exit_date"].isna(), np.minimum(end, p["exit_date"]))
    p["days"] = (p["end"] - p["index_date"]) / day + 1
    p["ipc"] = (p["group"] == "ipc").astype(int)
    reason = p["exit_reason"] if "exit_reason" in p.columns else pd.Series(pd.NA, index=p.index)
    p["died"] = ((reason == "died") & p["exit_date"].notna() & (p["exit_date"] <= end)).fillna(False).astype(bool)

    if basis == "agreed":
        b = budgets[["person_id", "period_start", "period_end", "agreed_budget"]].merge(
            p[["person_id", "index_date", "end"]], on="person_id")
        lo = np.maximum(b["period_start"], b["index_date"])
        hi = np.minimum(b["period_end"], b["end"])
        overlap = ((hi - lo) / day + 1).clip(lower=0)
        length = (b["period_end"] - b["period_start"]) / day + 1
        money = b["agreed_budget"].astype(float) * overlap / length
        gross_budget = p["person_id"].map(money.groupby(b["person_id"]).sum()).fillna(0.0).astype(float)
    else:
        pos, after, _, value = _months_in(spend, p, "amount")
        gross_budget = pd.Series(_per_person(pos, after, value, len(p)), index=p.index)
    share = _education_share(budgets)
    at = positions(p["person_id"], pd.Series(share.index, dtype=p["person_id"].dtype))
    education = pd.Series(np.append(share.to_numpy(dtype=float), 0.0)[at], index=p.index)  # -1 (no budget): 0
    p["budget_cost"] = gross_budget * (1 - education)
    p["education_cost"] = gross_budget * education
    _services_costs(p, services)
    _hospital_costs(p, events, window_days)
    prior = p["prior_service_cost"].astype(float).fillna(0.0)
    p["usual_care_cost"] = np.where((p["ipc"] == 0) & usual_care, prior * p["days"] / 365.0, 0.0)
    p["total_cost"] = p["budget_cost"] + p["services_cost"] + p["hospital_cost"] + p["usual_care_cost"]
    p["prior_service_cost"] = prior
    return p[COST_COLUMNS]


def _services_costs(p: pd.DataFrame, services: pd.DataFrame | None) -> None:
    """Outside services in the follow-up year and the year before (education's apart), into ``p``."""
    p["services_cost"], p["baseline_services_cost"] = 0.0, 0.0
    if services is None or services.empty:
        return
    pos, after, before, value = _months_in(services, p, "cost")
    edu = (services["funder"] == "education").to_numpy(dtype=bool, na_value=False)
    p["services_cost"] = _per_person(pos, after & ~edu, value, len(p))
    p["education_cost"] += _per_person(pos, after & edu, value, len(p))
    p["baseline_services_cost"] = _per_person(pos, before & ~edu, value, len(p))


def _hospital_costs(p: pd.DataFrame, events: pd.DataFrame, window_days: int) -> None:
    """Hospital and emergency admission costs in the follow-up year and the ``window_days``
    before index, into ``p``."""
    pos, after, before = _in_windows(events, p, "event_date", window_days)
    cost = _event_costs(events).to_numpy(dtype=float)
    emergency = (events["event_type"] == "emergency_admission").to_numpy(dtype=bool, na_value=False)
    p["hospital_cost"], p["baseline_hospital_cost"] = (_per_person(pos, m, cost, len(p)) for m in (after, before))
    p["emergency_cost"], p["baseline_emergency_cost"] = (_per_person(pos, m & emergency, cost, len(p))
                                                         for m in (after, before))


COST_COLUMNS = ["person_id", "group", "ipc", "cohort", "management", "days", "died", "budget_cost", "services_cost",
                "hospital_cost", "emergency_cost", "usual_care_cost", "total_cost", "education_cost",
                "baseline_hospital_cost", "baseline_emergency_cost", "baseline_services_cost", "prior_service_cost",
                "need_score"]


def _impute_follow_up(baseline: pd.Series, follow_up: pd.Series, ipc: pd.Series) -> pd.Series:
    """Missing follow-ups from each group's least-squares line of follow-up on baseline among
    those with both (NaN where a group has fewer than MIN_PEOPLE_PER_GROUP of them)."""
    out = follow_up.copy()
    for g in (0, 1):
        grp = ipc == g
        both = grp & baseline.notna() & follow_up.notna()
        if both.sum() < MIN_PEOPLE_PER_GROUP:
            out[grp & follow_up.isna()] = np.nan
            continue
        slope, intercept = np.polyfit(baseline[both].to_numpy(float), follow_up[both].to_numpy(float), 1)
        fill = grp & follow_up.isna() & baseline.notna()
        out[fill] = intercept + slope * baseline[fill]
    return out


def _utility_years(costs: pd.DataFrame, surveys: pd.DataFrame, measure: str) -> tuple[pd.DataFrame, int]:
    """Baseline, follow-up (observed or imputed) and area under the curve of ``measure`` over
    the follow-up year for the whole analysis population; deaths count the baseline until death
    and zero after. Returns the columns and how many people had something imputed."""
    from .outcomes import survey_wide

    wide = survey_wide(surveys, measure)
    base = costs["person_id"].map(wide["baseline"]).astype(float)
    follow = costs["person_id"].map(wide["follow_up"]).astype(float)
    ipc = costs["ipc"]
    died = costs["died"].astype(bool)
    observed_both = base.notna() & follow.notna()
    enough = all((observed_both & (ipc == g)).sum() >= MIN_PEOPLE_PER_GROUP for g in (0, 1))
    out = pd.DataFrame({f"{measure}_baseline": base, f"{measure}_follow_up": follow}, index=costs.index)
    if not enough:
        out[f"{measure}_years"] = np.nan
        return out, 0
    base_filled = base.fillna(base.groupby(ipc).transform("mean"))
    follow_filled = _impute_follow_up(base_filled, follow.where(~died), ipc)
    alive_years = qaly_auc(base_filled, follow_filled)
    death_years = base_filled * costs["days"] / 365.0
    out[f"{measure}_baseline_filled"] = base_filled
    out[f"{measure}_years"] = np.where(died, death_years, alive_years)
    imputed = int((~died & ~observed_both).sum())
    return out, imputed


def economic_panel(people: pd.DataFrame, budgets: pd.DataFrame, events: pd.DataFrame, surveys: pd.DataFrame,
                   extract_date: pd.Timestamp, **cost_options) -> pd.DataFrame:
    """:func:`follow_up_costs` plus EQ-5D and ASCOT at baseline and follow-up, the QALYs
    (``qaly``) and ASCOT-years (``ascot_years``) of the same people; ``attrs["imputed"]`` says how
    many people's scores were imputed per measure."""
    costs = follow_up_costs(people, budgets, events, extract_date, **cost_options)
    imputed = {}
    for m in ("eq5d", "ascot"):
        cols, imputed[m] = _utility_years(costs, surveys, m)
        costs = pd.concat([costs, cols], axis=1)
    costs = costs.rename(columns={"eq5d_years": "qaly"})
    costs.attrs["imputed"] = imputed
    emergency = events.loc[events["event_type"] == "emergency_admission", "cost"]
    costs.attrs["cost_per_admission"] = float(emergency.mean()) if emergency.notna().any() else None
    costs.attrs["has_services"] = bool(cost_options.get("services") is not None and len(cost_options["services"]))
    return costs


# ---------------------------------------------------------------------------------------------
# vectorised bootstrap of regression-adjusted (ATT) differences


def _resample_split(ipc: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Resample counts per group: (B x budget holders, B x comparison people), people resampled
    with replacement within each group. Kept apart so no step copies columns out of a B x n
    matrix (at 100k people that copy was most of the bootstrap's time)."""
    parts = []
    for mask in (ipc, ~ipc):
        m = int(mask.sum())
        out = np.zeros((n_boot, m))
        # m draws with replacement per resample, counted per person (a multinomial per resample
        # is the same distribution, ~10x slower). One resample at a time draws the same stream as
        # a B x m block did, without B x m index arrays; int32 draws equal int64 ones (numpy
        # draws both 32 bits at a time). The loop is over resamples, never over people.
        for b in range(n_boot if m else 0):
            out[b] = np.bincount(rng.integers(0, m, size=m, dtype=np.int32), minlength=m)
        parts.append(out)
    return parts[0], parts[1]


def _resample_counts(ipc: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """B x n matrix of resample counts (:func:`_resample_split` put back in people's order)."""
    wi, wc = _resample_split(ipc, n_boot, rng)
    W = np.zeros((n_boot, len(ipc)))
    W[:, ipc], W[:, ~ipc] = wi, wc
    return W


def att_difference(y: np.ndarray, X: np.ndarray, ipc: np.ndarray, W: np.ndarray | None = None,
                   split: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Regression-adjusted difference for the treated, for each row of weights ``W`` (B x n).

    Budget holders' weighted mean of y minus the comparison group's weighted least-squares fit
    of y on X (X includes the intercept) evaluated at the budget holders' weighted mean of X.
    Rows with y missing (NaN) are left out. With X a column of ones this is the difference in
    means. ``W=None`` means every weight 1 (the point estimate); ``split`` gives the weights
    already split by group (:func:`_resample_split`) instead of ``W``. Returns an array of length B.
    """
    y = np.asarray(y, dtype=float)
    ok = ~np.isnan(y)
    ipc = np.asarray(ipc, dtype=bool)
    if split is None:
        W = np.ones((1, len(y))) if W is None else W
        split = W[:, ipc], W[:, ~ipc]
    wi, wc = split
    y0 = np.where(ok, y, 0.0)
    # zero the missing only where there are any: most outcomes have nothing missing, and every
    # copy of the weights costs a few hundred MB at 100k people x 250 resamples
    if not ok[ipc].all():
        wi = wi * ok[ipc]
    if not ok[~ipc].all():
        wc = wc * ok[~ipc]
    mean_y = wi @ y0[ipc] / wi.sum(axis=1)
    mean_x = wi @ X[ipc] / wi.sum(axis=1)[:, None]
    Xc, yc = X[~ipc], y0[~ipc]
    k = X.shape[1]
    outer = (Xc[:, :, None] * Xc[:, None, :]).reshape(len(Xc), k * k)  # x x' per person: one matmul for all
    xtx = (wc @ outer).reshape(len(wc), k, k)
    xty = wc @ (Xc * yc[:, None])
    try:
        beta = np.linalg.solve(xtx, xty[..., None])[..., 0]
    except np.linalg.LinAlgError:
        beta = np.einsum("bjk,bk->bj", np.linalg.pinv(xtx), xty)
    return mean_y - np.einsum("bj,bj->b", mean_x, beta)


def _design(panel: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """The intercept and each covariate that varies, missing values at the mean, standardised.

    Standardising leaves every adjusted difference as it was (the intercept absorbs the shift,
    the slopes the scale) but keeps the normal equations well conditioned: raw costs in pounds
    beside an intercept put squares of ten thousand pounds into X'X beside counts of people, so
    sums taken in another order (another number of BLAS threads) moved the result more."""
    cols = [np.ones(len(panel))]
    for c in columns:
        v = panel[c].to_numpy(dtype=float)
        mean, sd = np.nanmean(v), np.nanstd(v)
        if sd > 0:
            cols.append((np.where(np.isnan(v), mean, v) - mean) / sd)
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


PERSPECTIVE = ("the NHS and personal social services (council social care); education's share of budgets and "
               "services is reported apart")
NO_SERVICES = ("the dataset has no services table, so the comparison group's social care, community and continuing "
               "care are unknown and the groups' costs are not comparable")


@dataclass(frozen=True)
class BreakEven:
    """How far emergency admissions would have to fall for budgets to pay for themselves."""

    cost_to_recover: float  # GBP per budget holder a year: extra cost outside hospital (or the whole budget)
    emergency_cost: float  # budget holders' emergency admission cost per person-year, year before they started
    cost_per_admission: float | None
    net_of_services: bool  # cost_to_recover is budget + services minus the comparison group's (else gross budget)
    # 95% percentile interval of the fall, from the same bootstrap resamples as the costs (with a
    # services table; without one the cost to recover is the budget spend itself)
    low: float | None = None
    high: float | None = None

    @property
    def fall(self) -> float | None:
        """Fall in emergency admissions needed, as a share (above 1: even none would not pay)."""
        return self.cost_to_recover / self.emergency_cost if self.emergency_cost > 0 else None

    def interval_words(self) -> str:
        """The fall's interval in words a board reads: below zero is "none needed" (budgets may
        cost less than usual care outside hospital), above 100% is "over 100%" (more than all
        emergency admissions cost)."""
        low = "none needed" if self.low <= 0 else f"{self.low:.0%}"
        high = "none needed" if self.high <= 0 else "over 100%" if self.high > 1 else f"{self.high:.0%}"
        return f"{low} to {high}"

    @property
    def admissions(self) -> float | None:
        """The same as emergency admissions avoided per budget holder a year."""
        return self.cost_to_recover / self.cost_per_admission if self.cost_per_admission else None


@dataclass
class CostEffectiveness:
    """What :func:`cost_effectiveness` returns. Estimates carry percentile bootstrap intervals."""

    n_ipc: int
    n_comparison: int
    n_qaly: int  # people with a QALY (observed, imputed or from a death)
    costs: pd.DataFrame  # mean cost components by group
    d_cost: Estimate  # adjusted (ATT) incremental cost, GBP per person over the year
    d_cost_crude: Estimate
    d_qaly: Estimate
    d_ascot: Estimate  # ASCOT-years (AUC), the same population
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
    has_services: bool = False
    nmb_ascot: dict[int, Estimate] = field(default_factory=dict)
    break_even: BreakEven | None = None
    budget_cost: float | None = None  # mean budget spend per budget holder over the year (NHS and social care)
    education_cost: float | None = None  # mean education-funded money per budget holder (apart)
    imputed: dict[str, int] = field(default_factory=dict)
    deaths: int = 0

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def comparable(self) -> bool:
        """Costs of both groups are known (a services table): NMB and the CEAC can be shown."""
        return self.available and self.has_services

    def messages(self, include_ascot: bool = True) -> list[str]:
        """Plain-words sentences from the numbers (``include_ascot=False`` when the outcome
        messages already report the ASCOT follow-up difference)."""
        if not self.available:
            return [f"Costs and value for money: not estimated ({self.reason})."]
        out = [f"Value for money is from the perspective of {PERSPECTIVE}, over the year after each budget started, "
               f"on actual spend, for the same {self.n_ipc + self.n_comparison:,} people in costs and quality of "
               f"life ({self.deaths:,} people who died count zero quality of life from the day of death; "
               f"{self.imputed.get('eq5d', 0):,} questionnaires with a missing score were filled from the group's "
               "baseline-to-follow-up line)."]
        if self.budget_cost is not None:
            out.append(f"Budget spend averaged {_gbp(self.budget_cost)} per budget holder over the year"
                       + (f" (plus {_gbp(self.education_cost)} of education money, reported apart)."
                          if self.education_cost else "."))
        if not self.has_services:
            out.append(f"No net monetary benefit or acceptability curve is shown: {NO_SERVICES}.")
        else:
            dc = self.d_cost
            direction = "more" if dc.value >= 0 else "less"
            out.append(
                f"Counting budget spend, outside health and care services and hospital care, budget holders cost "
                f"{_gbp(abs(dc.value))} {direction} per person than similar people in the comparison group (95% CI "
                f"{_gbp(dc.low)} to {_gbp(dc.high)}), allowing for their hospital and service costs in the year before.")
            out += self._value_messages()
        be = self.break_even
        if be is not None and be.fall is not None:
            what = "the extra cost outside hospital" if be.net_of_services else "the whole budget spend"
            spread = f" (95% interval {be.interval_words()})" if be.low is not None else ""
            if be.fall > 1:
                out.append(f"Break-even: to pay for {what} ({_gbp(be.cost_to_recover)} a year) emergency admissions "
                           f"would have to fall by more than they cost ({be.fall:.0%}{spread} of "
                           f"{_gbp(be.emergency_cost)} a year per budget holder): hospital savings alone cannot pay "
                           "for budgets here.")
            elif be.cost_to_recover <= 0:
                out.append("Break-even: budgets cost no more than usual care outside hospital, so they pay for "
                           "themselves without any fall in emergency admissions.")
            else:
                per_person = f", {be.admissions:.2f} admissions per budget holder a year," if be.admissions else ""
                out.append(f"Break-even: emergency admissions would have to fall by {be.fall:.0%}{spread}{per_person} "
                           f"to pay for {what} ({_gbp(be.cost_to_recover)} a year).")
        return out

    def _value_messages(self) -> list[str]:
        out = []
        if not self.d_qaly.available:
            return [f"QALYs: not estimated ({self.d_qaly.reason})."]
        q = self.d_qaly
        out.append(f"Over the year, budget holders had {q.value:+.3f} QALYs per person against the comparison group "
                   f"(95% CI {q.low:+.3f} to {q.high:+.3f}), from EQ-5D, adjusted for the starting score.")
        for wtp in sorted(self.nmb):
            n, a = self.nmb[wtp], self.nmb_ascot.get(wtp)
            text = (f"Valuing a QALY at {_gbp(wtp)}, the net monetary benefit is {_gbp(n.value)} per person (95% CI "
                    f"{_gbp(n.low)} to {_gbp(n.high)}); the chance that budgets are cost-effective is "
                    f"{_chance(self.p_cost_effective[wtp])}.")
            if a is not None and a.available:
                text += (f" On social-care quality of life (ASCOT valued the same way, as the 2012 evaluation did) it is "
                         f"{_gbp(a.value)} (95% CI {_gbp(a.low)} to {_gbp(a.high)}).")
            out.append(text)
        if self.icer is not None and (q.low > 0 or q.high < 0):
            out.append(f"That is {_gbp(self.icer)} per QALY gained ({self.icer_quadrant}).")
        elif self.icer is None and self.icer_quadrant and (q.low > 0 or q.high < 0):
            out.append(f"Budgets were {self.icer_quadrant} on the central estimates.")
        else:
            out.append("The QALY difference cannot be told from zero, so no cost per QALY is given; the net monetary "
                       "benefit and the acceptability curve are the figures to read.")
        return out


def _estimate(point: float, draws: np.ndarray, n: int) -> Estimate:
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return Estimate(float(point), float(lo), float(hi), n=int(n))


def _outside_cost(panel: pd.DataFrame, adjust: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cost outside hospital (budget plus outside services) and its adjustment design."""
    outside = (panel["budget_cost"] + panel["services_cost"]).to_numpy(dtype=float)
    X = _design(panel, ("baseline_services_cost", "prior_service_cost")) if adjust else np.ones((len(panel), 1))
    return outside, X


def _per_year(panel: pd.DataFrame, ipc: np.ndarray) -> float:
    """Factor from cost over the follow-up to a year's worth per budget holder."""
    years = panel.loc[ipc, "days"].sum() / 365.0
    return len(panel.loc[ipc]) / years if years > 0 else 1.0


def _break_even_draws(panel: pd.DataFrame, ipc: np.ndarray, adjust: bool,
                      split: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The break-even fall in each resample (weights ``split`` by group, as from
    :func:`_resample_split`): cost to recover over the emergency cost, both from the resample."""
    outside, X = _outside_cost(panel, adjust)
    emergency = panel["baseline_emergency_cost"].to_numpy(dtype=float)[ipc]
    wi = split[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return att_difference(outside, X, ipc, split=split) * _per_year(panel, ipc) / (wi @ emergency / wi.sum(axis=1))


def _break_even(panel: pd.DataFrame, ipc: np.ndarray, has_services: bool, adjust: bool,
                draws: np.ndarray | None = None) -> BreakEven | None:
    """Break-even fall in emergency admissions (see the module docstring); with a services table
    its 95% percentile interval from ``draws`` (:func:`_break_even_draws` over the cost bootstrap)."""
    if not ipc.any():
        return None
    if has_services:
        outside, X = _outside_cost(panel, adjust)
        cost = float(att_difference(outside, X, ipc)[0])
    else:
        cost = float(panel.loc[ipc, "budget_cost"].mean())
    low = high = None
    if has_services and draws is not None and np.isfinite(draws).any():
        low, high = (float(v) for v in np.nanpercentile(draws[np.isfinite(draws)], [2.5, 97.5]))
    emergency = float(panel.loc[ipc, "baseline_emergency_cost"].mean())  # the 365 days before: a year
    return BreakEven(cost * _per_year(panel, ipc), emergency, panel.attrs.get("cost_per_admission"), has_services,
                     low, high)


def cost_effectiveness(panel: pd.DataFrame, n_boot: int = N_BOOT, seed: int = SEED,
                       wtp_thresholds: tuple[int, ...] = WTP_THRESHOLDS, wtp_grid: np.ndarray = WTP_GRID,
                       adjust: bool = True, basis: str = "spend", usual_care: bool = False,
                       has_services: bool | None = None) -> CostEffectiveness:
    """Incremental cost, QALYs, ASCOT-years, ICER, NMB (EQ-5D and ASCOT), the acceptability
    curve and the break-even from :func:`economic_panel`'s frame. Without a services table
    (``has_services`` False; by default read from the panel) the incremental cost, NMB and
    acceptability curve are computed but flagged not comparable (:attr:`comparable`)."""
    has_services = panel.attrs.get("has_services", False) if has_services is None else has_services
    ipc = panel["ipc"].to_numpy() == 1
    n_ipc, n_comp = int(ipc.sum()), int((~ipc).sum())
    has_qaly = panel["qaly"].notna().to_numpy()
    n_qaly = int(has_qaly.sum())
    costs = panel.groupby("group")[["budget_cost", "services_cost", "hospital_cost", "usual_care_cost", "total_cost",
                                    "education_cost"]].mean()
    empty = pd.DataFrame(columns=["d_cost", "d_qaly", "d_ascot"])
    common = dict(has_services=has_services, imputed=dict(panel.attrs.get("imputed", {})),
                  deaths=int(panel["died"].sum()) if "died" in panel.columns else 0)
    if min(n_ipc, n_comp) < MIN_PEOPLE_PER_GROUP:
        reason = (f"too few people with a completed follow-up year for a stable estimate ({n_ipc} budget holders, "
                  f"{n_comp} comparison)")
        na = Estimate(None, n=n_ipc + n_comp, reason=reason)
        return CostEffectiveness(n_ipc, n_comp, n_qaly, costs, na, na, na, na, None, None,
                                 {w: na for w in wtp_thresholds}, {}, empty, pd.DataFrame(columns=["wtp", "probability"]),
                                 basis, usual_care, n_boot, seed, reason, **common)

    cost_cov = COST_COVARIATES + (("baseline_services_cost",) if has_services else ())
    cost_x = _design(panel, cost_cov) if adjust else np.ones((len(panel), 1))
    qaly_x = _design(panel, ("eq5d_baseline_filled",)) if adjust and "eq5d_baseline_filled" in panel else np.ones((len(panel), 1))
    ascot_x = (_design(panel, ("ascot_baseline_filled",)) if adjust and "ascot_baseline_filled" in panel
               else np.ones((len(panel), 1)))
    y_cost = panel["total_cost"].to_numpy(dtype=float)
    y_qaly = panel["qaly"].to_numpy(dtype=float)
    y_ascot = panel["ascot_years"].to_numpy(dtype=float)
    outcomes = {"d_cost": (y_cost, cost_x), "d_qaly": (y_qaly, qaly_x), "d_ascot": (y_ascot, ascot_x)}
    n_with = {k: (int((~np.isnan(y) & ipc).sum()), int((~np.isnan(y) & ~ipc).sum())) for k, (y, _) in outcomes.items()}
    enough = {k: min(v) >= MIN_PEOPLE_PER_GROUP for k, v in n_with.items()}

    outcomes["crude"] = (y_cost, np.ones((len(panel), 1)))
    enough["crude"] = True
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in outcomes}
    break_even_draws = []
    for start in range(0, n_boot, _CHUNK):
        split = _resample_split(ipc, min(_CHUNK, n_boot - start), rng)
        for k, (y, X) in outcomes.items():
            if enough[k]:
                draws[k].append(att_difference(y, X, ipc, split=split))
        if has_services:
            break_even_draws.append(_break_even_draws(panel, ipc, adjust, split))
    draws = {k: (np.concatenate(v) if v else np.full(n_boot, np.nan)) for k, v in draws.items()}
    points = {k: float(att_difference(y, X, ipc)[0]) if enough[k] else None for k, (y, X) in outcomes.items()}
    d_cost_crude = _estimate(points.pop("crude"), draws.pop("crude"), n_ipc + n_comp)
    del outcomes["crude"]
    est = {}
    for k in outcomes:
        n = sum(n_with[k])
        if enough[k]:
            est[k] = _estimate(points[k], draws[k], n)
        else:
            est[k] = Estimate(None, n=n, reason=f"too few people with questionnaires ({n_with[k][0]} budget "
                                                  f"holders, {n_with[k][1]} comparison)")
    frame = pd.DataFrame(draws)
    nmb, nmb_ascot, p_ce, ceac = {}, {}, {}, pd.DataFrame(columns=["wtp", "probability"])
    ratio, quadrant = None, None
    for key, target in (("d_qaly", nmb), ("d_ascot", nmb_ascot)):
        for wtp in wtp_thresholds:
            if not enough[key]:
                target[wtp] = Estimate(None, n=sum(n_with[key]), reason=est[key].reason)
                continue
            values = net_monetary_benefit(frame[key], frame["d_cost"], wtp)
            target[wtp] = _estimate(float(net_monetary_benefit(points[key], points["d_cost"], wtp)), values,
                                    sum(n_with[key]))
            if key == "d_qaly":
                p_ce[wtp] = float((values > 0).mean())
    if enough["d_qaly"]:
        ceac = acceptability_curve(frame, wtp_grid)
        q = est["d_qaly"]
        if q.low > 0 or q.high < 0:  # no ICER where the QALY difference cannot be told from zero
            ratio, quadrant = icer(points["d_cost"], points["d_qaly"])
    be = _break_even(panel, ipc, has_services, adjust, np.concatenate(break_even_draws) if break_even_draws else None)
    budget = float(panel.loc[ipc, "budget_cost"].mean())
    education = float(panel.loc[ipc, "education_cost"].mean())
    return CostEffectiveness(n_ipc, n_comp, n_qaly, costs, est["d_cost"], d_cost_crude, est["d_qaly"],
                             est["d_ascot"], ratio, quadrant, nmb, p_ce, frame, ceac, basis, usual_care, n_boot, seed,
                             nmb_ascot=nmb_ascot, break_even=be, budget_cost=budget, education_cost=education, **common)


def analyse_economics(people: pd.DataFrame, budgets: pd.DataFrame, events: pd.DataFrame, surveys: pd.DataFrame,
                      extract_date: pd.Timestamp, basis: str = "spend", spend: pd.DataFrame | None = None,
                      usual_care: bool = False, n_boot: int = N_BOOT, seed: int = SEED,
                      services: pd.DataFrame | None = None) -> CostEffectiveness:
    """:func:`economic_panel` then :func:`cost_effectiveness`, with the options passed to both.
    ``basis="spend"`` (actual spend) needs ``spend``; without it agreed budgets are used and a
    note says so."""
    notes = []
    if basis == "spend" and spend is None:
        basis = "agreed"
        notes.append("No spend table was given, so budgets are costed at their agreed value, not actual spend.")
    panel = economic_panel(people, budgets, events, surveys, extract_date, basis=basis, spend=spend,
                           usual_care=usual_care, services=services)
    result = cost_effectiveness(panel, n_boot=n_boot, seed=seed, basis=basis, usual_care=usual_care)
    result.notes.extend(notes)
    return result

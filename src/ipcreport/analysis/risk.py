"""What could go wrong financially: double running, new need, overspend.

Pure functions; the assumptions come from the run's parameters (params/*.yaml), where each
default is documented with its source or reasoning. The methods are written out for readers in
docs/risk.md; in short:

Double running (domain.md, "Financial risk"): money follows people into budgets while the block
contracts for the services they leave must still be paid until they can be reduced.

* Only money that moves out of a contract's category **after** the extract date is counted:
  the growth, under the roll-out plan, of the category's monthly budget spend by people who had
  services before (new need displaces nothing). Money already in budgets is assumed released,
  unless a site says part of it never was (``unreleased_share``: shown apart, GBP a month).
* Money moving in month k is shared among the category's contracts by annual value; notice is
  served as it moves, so it is paid twice in months k .. k + notice - 1, never past the
  contract's end and never above the contract's monthly value. Only ``release_share`` of it can
  ever be released; the rest stays paid twice.

Overspend: next year's spend through budgets is simulated from what a finance team knows and
does not know: the live budgets of today's holders (known), how many leave (the site's exit
rate), how many start (the plan), new holders' budget sizes, how much of a budget is used, and
a price uplift on budgets agreed next year. It is compared with the pooled fund the run's
parameters give, never with a fund derived from the same simulation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.stats import gamma

from ..data.frames import isin
from . import money as M

MONTH_DAYS = 30.4375
Z90 = 1.6449  # 5th / 95th percentile of a normal


@dataclass(frozen=True)
class RiskAssumptions:
    """Defaults are documented in params/demo.yaml; a run's YAML may override any of them."""

    enrolment_growth: float = 0.10  # planned growth in budget holders over the next 12 months
    enrolment_growth_sd: float = 0.05  # uncertainty of that pace (a planning judgement)
    draws: int = 10_000
    seed: int = 2015
    horizon_months: int = 24
    fast_rollout_months: int = 6  # a fast roll-out reaches the 24-month enrolment within this
    price_uplift: float = 0.03  # rise in budgets agreed next year (renewals and new holders)
    price_uplift_sd: float = 0.01
    release_share: float = 1.0  # share of displaced money a block contract can actually release
    unreleased_share: float = 0.0  # share of money already in budgets never released from contracts


# ---------------------------------------------------------------------------------------------
# roll-out plans


def rollout_plan(growth_per_year: float, horizon_months: int, ramp_months: int) -> np.ndarray:
    """Budget holders relative to today, month by month (index 0 = first projected month).

    The plan reaches ``growth_per_year`` compounded over the horizon; a phased plan ramps
    linearly over the whole horizon (``ramp_months = horizon_months``), a fast plan gets there
    in ``ramp_months`` and then holds.
    """
    target = (1 + growth_per_year) ** (horizon_months / 12) - 1
    months = np.arange(1, horizon_months + 1)
    return 1 + target * np.minimum(months / ramp_months, 1.0)


def plans(assumptions: RiskAssumptions) -> dict[str, np.ndarray]:
    h = assumptions.horizon_months
    return {
        "phased": rollout_plan(assumptions.enrolment_growth, h, h),
        "fast": rollout_plan(assumptions.enrolment_growth, h, assumptions.fast_rollout_months),
    }


# ---------------------------------------------------------------------------------------------
# double running


def budget_spend_per_month(spend: pd.DataFrame, extract_date: pd.Timestamp, people: pd.DataFrame | None = None,
                           months: int = 3) -> pd.Series:
    """Monthly budget spend by category on the extract date: the average of the latest ``months``
    months, of people whose services cost something before (new need moves no money out of
    contracts)."""
    since = extract_date - pd.DateOffset(months=months)
    recent = spend[(spend["month"] > since) & (spend["month"] <= extract_date)]
    if people is not None:
        moved = people.loc[people["prior_service_cost"] > 0, "person_id"]
        recent = recent[isin(recent["person_id"], moved)]
    return (recent.groupby("category")["amount"].sum().clip(lower=0) / months).astype(float)


def _contract_base(contracts: pd.DataFrame, monthly_budget_spend: pd.Series) -> np.ndarray:
    """Each contract's part of its category's monthly budget spend, shared by annual value."""
    share = (contracts["annual_value"] / contracts.groupby("category")["annual_value"].transform("sum")).to_numpy(float)
    spend = contracts["category"].map(lambda cat: float(monthly_budget_spend.get(cat, 0.0))).to_numpy(float)
    return spend * share


def double_running_projection(contracts: pd.DataFrame, monthly_budget_spend: pd.Series, plan: np.ndarray,
                              extract_date: pd.Timestamp, notice_scale: float = 1.0,
                              release_share: float = 1.0) -> pd.DataFrame:
    """GBP paid twice per contract and month over the plan's horizon.

    Returns long form: contract_id, category, funder, month (1 = first month after the extract),
    moved (budget money moved out of the contract since the extract, GBP a month) and
    paid_twice. ``notice_scale`` multiplies every notice period (for sensitivity).
    """
    columns = ["contract_id", "category", "funder", "month", "moved", "paid_twice"]
    if contracts.empty:
        return pd.DataFrame(columns=columns)
    c = contracts.reset_index(drop=True)
    base = _contract_base(c, monthly_budget_spend)
    horizon = len(plan)
    months = np.arange(1, horizon + 1)
    level = np.concatenate([np.ones(1), plan])  # level[m], m = 0..horizon; level[0] = today
    # Money moved out of each contract by month m (GBP a month), and what notice has released:
    # money moved in month k is released from month k + notice.
    moved = base[:, None] * np.clip(level[None, 1:] - 1, 0, None)
    notice = np.rint(c["notice_months"].to_numpy(float) * notice_scale).astype(int)
    since = months[None, :] - notice[:, None]
    released = release_share * np.where(since >= 1, base[:, None] * np.clip(level[np.clip(since, 0, horizon)] - 1, 0, None), 0.0)
    monthly_value = c["annual_value"].to_numpy(float)[:, None] / 12
    paid_twice = np.clip(np.minimum(moved, monthly_value) - np.minimum(released, monthly_value), 0, None)
    months_to_end = ((c["end_date"] - extract_date).dt.days / MONTH_DAYS).to_numpy(float)
    paid_twice = np.where(months[None, :] <= months_to_end[:, None], paid_twice, 0.0)
    return pd.DataFrame({
        "contract_id": np.repeat(c["contract_id"].to_numpy(), horizon),
        "category": np.repeat(c["category"].to_numpy(), horizon),
        "funder": np.repeat(c["funder"].to_numpy(), horizon),
        "month": np.tile(months, len(c)),
        "moved": moved.ravel(),
        "paid_twice": paid_twice.ravel(),
    }, columns=columns)


def double_running_existing(contracts: pd.DataFrame, monthly_budget_spend: pd.Series, unreleased_share: float) -> float:
    """double_running_existing: GBP a month still paid twice on the extract date for money already
    in budgets that a site says was never released from its contracts (capped at each contract's
    monthly value)."""
    if contracts.empty or unreleased_share <= 0:
        return 0.0
    c = contracts.reset_index(drop=True)
    base = _contract_base(c, monthly_budget_spend) * unreleased_share
    return float(np.minimum(base, c["annual_value"].to_numpy(float) / 12).sum())


def double_running_by_month(projection: pd.DataFrame) -> pd.DataFrame:
    """Monthly and cumulative GBP paid twice (all contracts)."""
    monthly = projection.groupby("month")["paid_twice"].sum()
    return pd.DataFrame({"paid_twice": monthly, "cumulative": monthly.cumsum()})


def double_running_by_funder(projection: pd.DataFrame, months: int = 12) -> pd.Series:
    """GBP paid twice in the first ``months`` by the funder of the contract paying it."""
    first = projection[projection["month"] <= months]
    return first.groupby("funder")["paid_twice"].sum()


def double_running_by_contract(contracts: pd.DataFrame, projection: pd.DataFrame, first_months: int = 12) -> pd.DataFrame:
    """Per contract: GBP paid twice in the first ``first_months`` and over the whole horizon."""
    first = projection[projection["month"] <= first_months].groupby("contract_id")["paid_twice"].sum()
    whole = projection.groupby("contract_id")["paid_twice"].sum()
    out = contracts[["contract_id", "category", "funder", "annual_value", "notice_months", "end_date"]].copy()
    out["paid_twice_year"] = out["contract_id"].map(first).fillna(0.0)
    out["paid_twice_horizon"] = out["contract_id"].map(whole).fillna(0.0)
    return out.reset_index(drop=True)


def notice_calendar(contracts: pd.DataFrame, projection: pd.DataFrame, extract_date: pd.Timestamp,
                    first_months: int = 12) -> pd.DataFrame:
    """For each block contract: when notice must be served so that no money is paid twice under
    the plan behind ``projection``, and what each month of delay costs.

    Money first moves out of the contract in month ``first_move``; notice served by the start of
    month ``first_move - notice_months`` takes effect as it moves. A date on or before the
    extract date means notice is already late. Each month notice comes late keeps one more
    month of every tranche moved in the first year paid twice: the contract's part of the
    year's growth in monthly budget spend (capped at its monthly value). Contracts that end
    before money moves, or from which no money moves, need no notice (``serve_by`` missing).
    A late contract that ends before notice served now could take effect (``ends_first``)
    cannot be helped by notice: it is simply not renewed, and its delay costs nothing.
    Sorted by ``serve_by``, then by cost of delay.
    """
    rows = []
    for contract in contracts.itertuples(index=False):
        mine = projection[(projection["contract_id"] == contract.contract_id) & (projection["moved"] > 0)]
        months_to_end = (contract.end_date - extract_date).days / MONTH_DAYS
        first_move = int(mine["month"].min()) if not mine.empty else None
        needed = first_move is not None and first_move <= months_to_end
        due = (extract_date + pd.Timedelta(days=1) + pd.DateOffset(months=first_move - 1 - contract.notice_months)
               if needed else pd.NaT)
        year = mine[mine["month"] <= first_months]
        overdue = bool(needed and due <= extract_date)
        ends_first = overdue and contract.notice_months + 1 > months_to_end  # notice served now lands after the end
        delay_cost = (min(float(year["moved"].max()), contract.annual_value / 12)
                      if needed and not year.empty and not ends_first else 0.0)
        rows.append({"contract_id": contract.contract_id, "category": contract.category, "funder": contract.funder,
                     "notice_months": contract.notice_months, "end_date": contract.end_date,
                     "first_move_month": first_move, "serve_by": due, "overdue": overdue, "ends_first": ends_first,
                     "delay_cost_per_month": delay_cost})
    table = pd.DataFrame(rows, columns=["contract_id", "category", "funder", "notice_months", "end_date",
                                        "first_move_month", "serve_by", "overdue", "ends_first",
                                        "delay_cost_per_month"])
    return table.sort_values(["serve_by", "delay_cost_per_month"], ascending=[True, False],
                             na_position="last").reset_index(drop=True)


def notice_priority(calendar: pd.DataFrame) -> tuple[pd.Series | None, int]:
    """The contract whose notice matters most (the largest cost of each month's delay among
    those notice can still help) and how many others need notice; (None, 0) when none does."""
    helpable = calendar[calendar["serve_by"].notna() & ~calendar["ends_first"].astype(bool)
                        & (calendar["delay_cost_per_month"] > 0)]
    if helpable.empty:
        return None, 0
    top = helpable.sort_values("delay_cost_per_month", ascending=False, kind="stable")
    return top.iloc[0], len(top) - 1


def projection_year_cost(projection: pd.DataFrame, months: int = 12) -> float:
    """The contract key double_running_cost: GBP paid twice in the projection year."""
    return float(projection.loc[projection["month"] <= months, "paid_twice"].sum())


# ---------------------------------------------------------------------------------------------
# overspend

YEAR_DAYS = 365
MIN_HAZARD = 1e-4  # exit hazards below this behave as no exits (keeps the closed forms stable)


def exposure_moments(hazard: np.ndarray) -> dict[str, np.ndarray]:
    """Expected share of next year a person holds a budget, and its square, when exits arrive
    at a constant yearly ``hazard``: for today's holders (there from the start) and for new
    holders (arriving uniformly through the year). Closed forms of E[min(t, T)^k], T ~ Exp(h)."""
    h = np.maximum(np.asarray(hazard, float), MIN_HAZARD)
    e = np.exp(-h)
    return {
        "current": -np.expm1(-h) / h,
        "current_sq": 2 / h**2 * (1 - e * (1 + h)),
        "new": (h - 1 + e) / h**2,
        "new_sq": 2 / h**2 * (1 - (2 - 2 * e - h * e) / h),
    }


@dataclass(frozen=True)
class SpendInputs:
    """What a finance team knows about next year, from the site's own records (each estimate with
    the uncertainty the simulation draws it from)."""

    holders_now: int
    money_before_renewal: float  # today's holders: budget money next year before their periods renew
    money_after_renewal: float  # ... and after renewal, before the price uplift
    sum_sq_before: float  # sums over holders of squares and products, for the spread of a sum
    sum_cross: float
    sum_sq_after: float
    exits: int  # budget holders who left in the reporting year
    holder_years: float  # budget-holder years at risk in the reporting year
    utilisation: float  # spend / agreed over completed periods not cut short
    se_utilisation: float
    sd_person_utilisation: float
    new_budget_mean: float  # annual agreed budget of holders who started in the reporting year
    se_new_budget_mean: float
    sd_new_budget: float

    @classmethod
    def from_site(cls, people: pd.DataFrame, budgets: pd.DataFrame, per_period: pd.DataFrame,
                  extract_date: pd.Timestamp, window) -> "SpendInputs | None":
        rated = per_period.dropna(subset=["ratio"])
        holders = people[people["group"] == "ipc"]
        staying = holders.loc[holders["exit_date"].isna() | (holders["exit_date"] > extract_date), "person_id"]
        live = budgets[(budgets["period_start"] <= extract_date) & (budgets["period_end"] >= extract_date)
                       & isin(budgets["person_id"], staying)]
        if len(rated) < 2 or live.empty:
            return None
        daily = live["agreed_budget"].to_numpy(float) / M.period_days(live).to_numpy(float)
        remaining = np.minimum((live["period_end"] - extract_date).dt.days.to_numpy(float), YEAR_DAYS)
        before, after = daily * remaining, daily * (YEAR_DAYS - remaining)

        budget, spent = rated["agreed_budget"].to_numpy(float), rated["spent"].to_numpy(float)
        n = len(rated)
        util = spent.sum() / budget.sum()
        # Ratio-estimator standard error (delta method) of total spend / total budget.
        se_util = float(np.sqrt(np.sum((spent - util * budget) ** 2) / (n - 1) / n) / budget.mean())

        exits, years = exits_in_year(holders, window)
        new = _new_holders_budgets(holders, budgets, window)
        if len(new) < 20:  # too few recent starters to learn from: today's live budgets stand in
            new = daily * YEAR_DAYS
        return cls(int(len(live["person_id"].unique())), float(before.sum()), float(after.sum()),
                   float((before**2).sum()), float((before * after).sum()), float((after**2).sum()),
                   exits, years, float(util), se_util, float(rated["ratio"].std(ddof=1)),
                   float(np.mean(new)), float(np.std(new, ddof=1) / np.sqrt(len(new))), float(np.std(new, ddof=1)))


def exits_in_year(holders: pd.DataFrame, window) -> tuple[int, float]:
    """Budget holders who left in the reporting year, and budget-holder years at risk in it."""
    end = holders["exit_date"].fillna(window.end)
    days = M.days_inside(holders["index_date"], end, window)
    exits = holders["exit_date"].between(window.start, window.end)
    return int(exits.sum()), float(days.sum() / YEAR_DAYS)


def _new_holders_budgets(holders: pd.DataFrame, budgets: pd.DataFrame, window) -> np.ndarray:
    """Annual agreed budget of the first period of each holder who started in the reporting year."""
    starters = holders.loc[holders["index_date"].between(window.start, window.end), "person_id"]
    first = budgets[isin(budgets["person_id"], starters)].sort_values("period_start").drop_duplicates("person_id")
    return (first["agreed_budget"].to_numpy(float) * YEAR_DAYS / M.period_days(first).to_numpy(float))


@dataclass(frozen=True)
class Draws:
    """One value per simulated year for each uncertain input."""

    growth: np.ndarray
    hazard: np.ndarray
    utilisation: np.ndarray
    new_budget: np.ndarray
    uplift: np.ndarray

    @classmethod
    def sample(cls, inputs: SpendInputs, a: RiskAssumptions, rng: np.random.Generator) -> "Draws":
        n = a.draws
        return cls(
            growth=rng.normal(a.enrolment_growth, a.enrolment_growth_sd, n),
            # Exit rate: Gamma posterior of exits over holder-years (Jeffreys prior).
            hazard=rng.gamma(inputs.exits + 0.5, 1 / max(inputs.holder_years, 1e-9), n),
            utilisation=rng.normal(inputs.utilisation, inputs.se_utilisation, n),
            new_budget=rng.normal(inputs.new_budget_mean, inputs.se_new_budget_mean, n),
            uplift=rng.normal(a.price_uplift, a.price_uplift_sd, n),
        )

    @classmethod
    def central(cls, inputs: SpendInputs, a: RiskAssumptions) -> "Draws":
        return cls(*(np.array([v]) for v in (a.enrolment_growth, exit_hazard(inputs), inputs.utilisation,
                                             inputs.new_budget_mean, a.price_uplift)))


def exit_hazard(inputs: SpendInputs) -> float:
    """The site's exit rate per holder-year (the Gamma posterior's mean)."""
    return (inputs.exits + 0.5) / max(inputs.holder_years, 1e-9)


def expected_spend(inputs: SpendInputs, d: Draws) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of next year's spend given each draw's inputs.

    Today's holders spend their known budgets (renewals at the uplifted price) for as long as
    they stay; new holders start evenly through the year, as many as the plan's growth plus
    replacements for those who leave (Poisson), with budgets around recent starters'. Each
    person uses a share of their budget around the site's utilisation with its individual
    spread. Sums over people are normal by the central limit theorem.
    """
    x = exposure_moments(d.hazard)
    up = 1 + d.uplift
    u2 = d.utilisation**2 + inputs.sd_person_utilisation**2  # E[U^2] of one person's share used
    money = inputs.money_before_renewal + inputs.money_after_renewal * up
    money_sq = inputs.sum_sq_before + 2 * up * inputs.sum_cross + up**2 * inputs.sum_sq_after
    mean_now = money * d.utilisation * x["current"]
    var_now = money_sq * (u2 * x["current_sq"] - (d.utilisation * x["current"]) ** 2)

    starters = inputs.holders_now * np.clip(d.growth - np.expm1(-d.hazard), 0, None)  # growth + share leaving
    budget = d.new_budget * up
    budget_sq = budget**2 + (inputs.sd_new_budget * up) ** 2
    mean_new = starters * budget * d.utilisation * x["new"]
    var_new = starters * budget_sq * u2 * x["new_sq"]  # compound Poisson: N x E[(B U A)^2]
    return mean_now + mean_new, np.clip(var_now, 0, None) + var_new


@dataclass(frozen=True)
class OverspendResult:
    spend_draws: np.ndarray
    forecast: float  # median
    p05: float
    p95: float
    pooled_fund: float | None
    probability: float | None  # of spend above pooled_fund; None without a fund
    inputs: SpendInputs


def simulate_spend(inputs: SpendInputs, assumptions: RiskAssumptions, rng: np.random.Generator | None = None) -> np.ndarray:
    """Next year's total spend through budgets, one value per draw, vectorised over draws."""
    rng = rng or np.random.default_rng(assumptions.seed)
    mean, var = expected_spend(inputs, Draws.sample(inputs, assumptions, rng))
    return mean + rng.standard_normal(assumptions.draws) * np.sqrt(var)


def overspend(inputs: SpendInputs | None, assumptions: RiskAssumptions, pooled_fund: float | None) -> OverspendResult | None:
    """Next year's spend (median and 90% interval) and, when the run gives a pooled fund, the
    probability that spend exceeds it."""
    if inputs is None:
        return None
    draws = simulate_spend(inputs, assumptions)
    p05, forecast, p95 = np.quantile(draws, [0.05, 0.5, 0.95])
    probability = None if pooled_fund is None else float((draws > pooled_fund).mean())
    return OverspendResult(draws, float(forecast), float(p05), float(p95), pooled_fund, probability, inputs)


def forecast_outturn(spend: pd.DataFrame, extract_date: pd.Timestamp, next_year: np.ndarray) -> dict[str, float]:
    """This financial year's (April to March) spend: actual to the extract date plus the months
    left, taken as their share of next year's simulated spend. Median and 90% interval."""
    fy_start = pd.Timestamp(year=extract_date.year - (extract_date.month < 4), month=4, day=1)
    fy_end = fy_start + pd.DateOffset(years=1) - pd.Timedelta(days=1)
    to_date = float(spend.loc[(spend["month"] >= fy_start) & (spend["month"] <= extract_date), "amount"].sum())
    left = (fy_end - extract_date).days / YEAR_DAYS
    outturn = to_date + left * next_year
    p05, median, p95 = np.quantile(outturn, [0.05, 0.5, 0.95])
    return {"financial_year": f"{fy_start.year}/{str(fy_start.year + 1)[-2:]}", "spend_to_date": to_date,
            "months_left": round(left * 12), "outturn": float(median), "outturn_p05": float(p05),
            "outturn_p95": float(p95)}


TORNADO_INPUTS = {
    "growth": "Enrolment pace",
    "hazard": "Holders leaving",
    "utilisation": "Share of budget used",
    "new_budget": "New holders' budgets",
    "uplift": "Price uplift",
}


def tornado(result: OverspendResult, assumptions: RiskAssumptions) -> pd.DataFrame:
    """One-way sensitivities of expected spend minus the pooled fund (or minus the central
    forecast when no fund is given).

    Each input in turn is set to the 5th and 95th percentile of the same uncertainty the
    simulation draws it from (the plan's stated uncertainty for pace and uplift; the site's own
    records for exits, use and new budgets) while the others stay central. Widest first.
    """
    i = result.inputs
    central = Draws.central(i, assumptions)
    low_high = {
        "growth": [assumptions.enrolment_growth + z * assumptions.enrolment_growth_sd for z in (-Z90, Z90)],
        "hazard": list(gamma.ppf([0.05, 0.95], i.exits + 0.5, scale=1 / max(i.holder_years, 1e-9))),
        "utilisation": [i.utilisation + z * i.se_utilisation for z in (-Z90, Z90)],
        "new_budget": [i.new_budget_mean + z * i.se_new_budget_mean for z in (-Z90, Z90)],
        "uplift": [assumptions.price_uplift + z * assumptions.price_uplift_sd for z in (-Z90, Z90)],
    }
    reference = result.pooled_fund if result.pooled_fund is not None else float(expected_spend(i, central)[0][0])

    def gap(key: str, value: float) -> float:
        return float(expected_spend(i, replace(central, **{key: np.array([value])}))[0][0] - reference)

    rows = [{"input": name, "low_value": low_high[key][0], "high_value": low_high[key][1],
             "gap_low": gap(key, low_high[key][0]), "gap_high": gap(key, low_high[key][1])}
            for key, name in TORNADO_INPUTS.items()]
    table = pd.DataFrame(rows)
    table["gap_central"] = float(expected_spend(i, central)[0][0] - reference)
    table["width"] = (table["gap_high"] - table["gap_low"]).abs()
    return table.sort_values("width", ascending=False).reset_index(drop=True)

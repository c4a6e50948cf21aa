"""What could go wrong financially: double running, new need, overspend.

Pure functions; the assumptions come from the run's parameters (params/*.yaml), where each
default is documented with its source or reasoning.

Double running (domain.md, "Financial risk"): money follows people into budgets while the block
contracts for the services they leave must still be paid until they can be reduced. The model:

* budget spend per category starts at the site's average monthly spend over the last 12 months
  and grows with the number of budget holders under a roll-out plan;
* every pound of budget spend displaces a pound of block-contract activity in the same category
  (shared among that category's contracts by annual value); the commissioner serves notice to
  reduce a contract as soon as money moves (for money already in budgets: at the start of the
  projection), and the reduction takes effect ``notice_months`` later;
* until then, and never beyond the contract's end date or value, that money is paid twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MONTH_DAYS = 30.4375


@dataclass(frozen=True)
class RiskAssumptions:
    """Defaults are documented in params/demo.yaml; a run's YAML may override any of them."""

    enrolment_growth: float = 0.10  # planned growth in budget holders over the next 12 months
    enrolment_growth_sd: float = 0.05  # uncertainty of that pace (a planning judgement)
    draws: int = 10_000
    seed: int = 2015
    horizon_months: int = 24
    fast_rollout_months: int = 6  # a fast roll-out reaches the 24-month enrolment within this


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


def budget_spend_per_month(spend: pd.DataFrame, extract_date: pd.Timestamp) -> pd.Series:
    """Average monthly budget spend by category over the 12 months to the extract date."""
    year_ago = extract_date - pd.DateOffset(months=12)
    recent = spend[(spend["month"] > year_ago) & (spend["month"] <= extract_date)]
    return (recent.groupby("category")["amount"].sum().clip(lower=0) / 12).astype(float)


def double_running_projection(contracts: pd.DataFrame, monthly_budget_spend: pd.Series, plan: np.ndarray,
                              extract_date: pd.Timestamp, notice_scale: float = 1.0) -> pd.DataFrame:
    """GBP paid twice per contract and month over the plan's horizon.

    Returns long form: contract_id, category, month (1 = first month after the extract),
    budget_spend (displaced money attributed to the contract), paid_twice.
    ``notice_scale`` multiplies every notice period (for sensitivity).
    """
    if contracts.empty:
        return pd.DataFrame(columns=["contract_id", "category", "month", "budget_spend", "paid_twice"])
    c = contracts.reset_index(drop=True)
    share = (c["annual_value"] / c.groupby("category")["annual_value"].transform("sum")).to_numpy(float)
    base = c["category"].map(lambda cat: float(monthly_budget_spend.get(cat, 0.0))).to_numpy(float) * share
    horizon = len(plan)
    months = np.arange(1, horizon + 1)
    # Displaced money per contract and month: today's level (month 0) then the plan.
    level = np.concatenate([np.ones(1), plan])  # level[m] for m = 0..horizon
    displaced = base[:, None] * level[None, 1:]  # (contracts, months)
    notice = np.rint(c["notice_months"].to_numpy(float) * notice_scale).astype(int)
    # Money moving during month k (and today's money, as if moving in month 1) has notice served
    # at the start of that month; the reduction takes effect ``notice`` months later, so by month
    # m the money displaced up to month m - notice has been released.
    released_at = months[None, :] - notice[:, None]
    released = np.where(released_at >= 1, base[:, None] * level[np.clip(released_at, 0, horizon)], 0.0)
    monthly_value = c["annual_value"].to_numpy(float)[:, None] / 12
    paid_twice = np.minimum(displaced, monthly_value) - np.minimum(released, monthly_value)
    months_to_end = ((c["end_date"] - extract_date).dt.days / MONTH_DAYS).to_numpy(float)
    paid_twice = np.where(months[None, :] <= months_to_end[:, None], np.clip(paid_twice, 0, None), 0.0)
    return pd.DataFrame({
        "contract_id": np.repeat(c["contract_id"].to_numpy(), horizon),
        "category": np.repeat(c["category"].to_numpy(), horizon),
        "month": np.tile(months, len(c)),
        "budget_spend": displaced.ravel(),
        "paid_twice": paid_twice.ravel(),
    })


def double_running_by_month(projection: pd.DataFrame) -> pd.DataFrame:
    """Monthly and cumulative GBP paid twice (all contracts)."""
    monthly = projection.groupby("month")["paid_twice"].sum()
    return pd.DataFrame({"paid_twice": monthly, "cumulative": monthly.cumsum()})


def double_running_by_contract(contracts: pd.DataFrame, projection: pd.DataFrame, first_months: int = 12) -> pd.DataFrame:
    """Per contract: GBP paid twice in the first ``first_months`` and over the whole horizon."""
    first = projection[projection["month"] <= first_months].groupby("contract_id")["paid_twice"].sum()
    whole = projection.groupby("contract_id")["paid_twice"].sum()
    out = contracts[["contract_id", "category", "funder", "annual_value", "notice_months", "end_date"]].copy()
    out["paid_twice_year"] = out["contract_id"].map(first).fillna(0.0)
    out["paid_twice_horizon"] = out["contract_id"].map(whole).fillna(0.0)
    return out.reset_index(drop=True)


def projection_year_cost(projection: pd.DataFrame, months: int = 12) -> float:
    """The contract key double_running_cost: GBP paid twice in the projection year."""
    return float(projection.loc[projection["month"] <= months, "paid_twice"].sum())


# ---------------------------------------------------------------------------------------------
# overspend


@dataclass(frozen=True)
class SpendInputs:
    """What the simulation learns from the site's own completed budget periods."""

    holders_now: int
    mean_budget: float
    se_mean_budget: float
    utilisation: float
    se_utilisation: float
    sd_person_spend: float  # spread of one person's annual spend, for the sum over holders

    @classmethod
    def from_periods(cls, per_period: pd.DataFrame, holders_now: int) -> "SpendInputs | None":
        periods = per_period.dropna(subset=["ratio"])
        if len(periods) < 2 or holders_now == 0:
            return None
        budget = periods["agreed_budget"].to_numpy(float)
        spent = periods["spent"].to_numpy(float)
        n = len(periods)
        utilisation = spent.sum() / budget.sum()
        # Ratio-estimator standard error (delta method) of total spend / total budget.
        residual = spent - utilisation * budget
        se_util = float(np.sqrt(np.sum(residual**2) / (n - 1) / n) / budget.mean())
        return cls(holders_now, float(budget.mean()), float(budget.std(ddof=1) / np.sqrt(n)),
                   float(utilisation), se_util, float(spent.std(ddof=1)))


@dataclass(frozen=True)
class OverspendResult:
    pooled_budget: float
    spend_draws: np.ndarray
    probability: float
    median: float
    p95: float
    inputs: SpendInputs


def simulate_spend(inputs: SpendInputs, assumptions: RiskAssumptions, growth: np.ndarray | None = None,
                   mean_budget: np.ndarray | None = None, utilisation: np.ndarray | None = None,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Next year's total spend, one value per draw, vectorised over draws.

    Each draw takes an enrolment pace (normal around the plan), a mean budget and a
    utilisation (each normal around the site's estimate with its standard error), then adds
    the spread of a sum of that many individual spends (central limit theorem). Any input can
    be fixed by passing an array (used for one-way sensitivities).
    """
    rng = rng or np.random.default_rng(assumptions.seed)
    n = assumptions.draws
    if growth is None:
        growth = rng.normal(assumptions.enrolment_growth, assumptions.enrolment_growth_sd, n)
    if mean_budget is None:
        mean_budget = rng.normal(inputs.mean_budget, inputs.se_mean_budget, n)
    if utilisation is None:
        utilisation = rng.normal(inputs.utilisation, inputs.se_utilisation, n)
    holders = np.clip(inputs.holders_now * (1 + growth), 0, None)
    expected = holders * mean_budget * utilisation
    return expected + rng.standard_normal(n) * np.sqrt(holders) * inputs.sd_person_spend


def overspend(per_period: pd.DataFrame, holders_now: int, assumptions: RiskAssumptions) -> OverspendResult | None:
    """Probability that next year's spend exceeds the pooled budget.

    The pooled budget funds the planned number of holders at today's mean agreed budget.
    ``per_period`` is :func:`ipcreport.analysis.allocation.utilisation`'s output.
    """
    inputs = SpendInputs.from_periods(per_period, holders_now)
    if inputs is None:
        return None
    pooled = holders_now * (1 + assumptions.enrolment_growth) * inputs.mean_budget
    draws = simulate_spend(inputs, assumptions)
    return OverspendResult(float(pooled), draws, float((draws > pooled).mean()), float(np.median(draws)),
                           float(np.quantile(draws, 0.95)), inputs)


def tornado(result: OverspendResult, assumptions: RiskAssumptions) -> pd.DataFrame:
    """One-way sensitivities of expected spend minus the pooled budget.

    Each input in turn is set to the 5th and 95th percentile of its own uncertainty while the
    others stay at their central values. Sorted widest first, as a tornado chart is drawn.
    """
    i = result.inputs
    z = 1.6449  # 5th / 95th percentile of a normal
    central = {"growth": assumptions.enrolment_growth, "mean_budget": i.mean_budget, "utilisation": i.utilisation}
    spread = {"growth": assumptions.enrolment_growth_sd, "mean_budget": i.se_mean_budget,
              "utilisation": i.se_utilisation}
    names = {"growth": "Enrolment pace", "mean_budget": "Budget size", "utilisation": "Share of budget used"}

    def gap(values: dict) -> float:
        holders = i.holders_now * (1 + values["growth"])
        return holders * values["mean_budget"] * values["utilisation"] - result.pooled_budget

    rows = []
    for key in central:
        low = gap({**central, key: central[key] - z * spread[key]})
        high = gap({**central, key: central[key] + z * spread[key]})
        rows.append({"input": names[key], "low_value": central[key] - z * spread[key],
                     "high_value": central[key] + z * spread[key], "gap_low": low, "gap_high": high})
    table = pd.DataFrame(rows)
    table["gap_central"] = gap(central)
    table["width"] = (table["gap_high"] - table["gap_low"]).abs()
    return table.sort_values("width", ascending=False).reset_index(drop=True)

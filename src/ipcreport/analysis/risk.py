"""What could go wrong financially next year. First cut.

Double running: budget money buying a category while the block contract for the same category
cannot be reduced until its notice period has run. Overspend: a seeded, vectorised Monte
Carlo of next year's spend against the pooled budget. The assumptions come from the run's
parameters (params/*.yaml), documented there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RiskAssumptions:
    """Defaults are documented in params/demo.yaml; a run's YAML may override any of them."""

    enrolment_growth: float = 0.10  # planned growth in budget holders next year
    enrolment_growth_sd: float = 0.05  # uncertainty of that pace
    draws: int = 10_000
    seed: int = 2015


def double_running(contracts: pd.DataFrame, spend: pd.DataFrame, extract_date: pd.Timestamp,
                   growth: float = 0.0, horizon_months: int = 12) -> pd.DataFrame:
    """Per contract: GBP paid twice over the next ``horizon_months``.

    Budget spend in a category over the last 12 months (grown by ``growth``) is taken as money
    that would otherwise have been bought through the block contracts of that category, shared
    among them by annual value. Each contract keeps being paid in full during its notice period
    (and never beyond its end date), so the overlap in those months is paid twice.
    """
    year_ago = extract_date - pd.DateOffset(months=12)
    recent = spend[(spend["month"] > year_ago) & (spend["month"] <= extract_date)]
    budget_rate = recent.groupby("category")["amount"].sum().clip(lower=0) * (1 + growth)
    c = contracts.copy()
    share = c["annual_value"] / c.groupby("category")["annual_value"].transform("sum")
    rate = c["category"].map(lambda category: float(budget_rate.get(category, 0.0))).astype(float)
    c["budget_spend_per_month"] = rate * share / 12
    c["contract_per_month"] = c["annual_value"] / 12
    months_to_end = ((c["end_date"] - extract_date).dt.days / 30.4375).clip(lower=0)
    c["months_paid_twice"] = np.minimum(np.minimum(c["notice_months"], months_to_end), horizon_months)
    c["double_running_cost"] = (
        np.minimum(c["budget_spend_per_month"], c["contract_per_month"]) * c["months_paid_twice"]
    )
    return c[["contract_id", "category", "funder", "annual_value", "notice_months",
              "months_paid_twice", "double_running_cost"]]


@dataclass(frozen=True)
class OverspendResult:
    pooled_budget: float
    spend_draws: np.ndarray
    probability: float
    median: float
    p95: float


def overspend(per_period: pd.DataFrame, holders_now: int, assumptions: RiskAssumptions) -> OverspendResult | None:
    """Probability that next year's spend exceeds the pooled budget.

    The pooled budget funds today's holders grown at the planned pace, at today's mean budget.
    Each draw varies the enrolment pace (normal around the plan), the mean budget and the mean
    utilisation (each normal around the site's own completed periods with its standard error).
    ``per_period`` is :func:`ipcreport.analysis.allocation.utilisation`'s output.
    """
    periods = per_period.dropna(subset=["ratio"])
    if len(periods) < 2 or holders_now == 0:
        return None
    rng = np.random.default_rng(assumptions.seed)
    n = assumptions.draws
    budget = periods["agreed_budget"].to_numpy(float)
    ratio = periods["ratio"].to_numpy(float)
    mean_budget, se_budget = budget.mean(), budget.std(ddof=1) / np.sqrt(budget.size)
    mean_util = periods["spent"].sum() / budget.sum()
    se_util = ratio.std(ddof=1) / np.sqrt(ratio.size)
    pooled = holders_now * (1 + assumptions.enrolment_growth) * mean_budget
    holders = holders_now * (1 + rng.normal(assumptions.enrolment_growth, assumptions.enrolment_growth_sd, n))
    spend = holders * rng.normal(mean_budget, se_budget, n) * rng.normal(mean_util, se_util, n)
    return OverspendResult(float(pooled), spend, float((spend > pooled).mean()),
                           float(np.median(spend)), float(np.quantile(spend, 0.95)))

"""What could go wrong financially next year: double running, new need, overspend."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..analysis import allocation as A
from ..analysis import risk as R
from ..charts import label
from ..dataset import SiteData
from ..present import money, pct, probability
from ..results import Metrics
from .allocation import Allocation


@dataclass
class Risk:
    assumptions: R.RiskAssumptions
    budget_spend_per_month: pd.Series
    projections: dict[str, pd.DataFrame]  # plan name -> contract x month projection
    by_month: pd.DataFrame  # month x plan: GBP paid twice
    by_contract: pd.DataFrame  # under the phased plan
    notice_doubled: float  # projection-year cost with every notice period doubled (phased)
    overspend: R.OverspendResult | None
    tornado: pd.DataFrame | None
    new_need_total: float
    new_need_share: float | None


def compute(data: SiteData, allocation: Allocation, assumptions: R.RiskAssumptions, metrics: Metrics) -> Risk:
    contracts, extract = data["contracts"], data.extract_date
    monthly = R.budget_spend_per_month(data["spend"], extract)
    projections = {name: R.double_running_projection(contracts, monthly, plan, extract)
                   for name, plan in R.plans(assumptions).items()}
    by_month = pd.DataFrame({name: R.double_running_by_month(p)["paid_twice"] for name, p in projections.items()})
    phased_year = R.projection_year_cost(projections["phased"])
    metrics.record("double_running_cost", phased_year)
    metrics.update({"double_running_cost_fast": R.projection_year_cost(projections["fast"]),
                    "double_running_cost_24m": float(projections["phased"]["paid_twice"].sum())})
    doubled = R.double_running_projection(contracts, monthly, R.plans(assumptions)["phased"], extract, notice_scale=2)

    holders_now = int(A.budgets_in_window(data["budgets"], A.Window(extract, extract))["person_id"].nunique())
    sim = R.overspend(allocation.per_period, holders_now, assumptions)
    if sim is None:
        reason = "fewer than two completed budget periods to learn from"
        metrics.missing("overspend_probability", reason)
        metrics.missing("spend_p95", reason)
    else:
        metrics.update({"overspend_probability": sim.probability, "spend_p95": sim.p95, "spend_median": sim.median,
                        "pooled_budget": sim.pooled_budget})
    total = allocation.budget["budget_total"]
    new_need = float(allocation.new_need["agreed"].sum())
    return Risk(
        assumptions=assumptions,
        budget_spend_per_month=monthly,
        projections=projections,
        by_month=by_month,
        by_contract=R.double_running_by_contract(contracts, projections["phased"]),
        notice_doubled=R.projection_year_cost(doubled),
        overspend=sim,
        tornado=R.tornado(sim, assumptions) if sim is not None else None,
        new_need_total=new_need,
        new_need_share=new_need / total if total else None,
    )


def contract_table(r: Risk) -> pd.DataFrame:
    d = r.by_contract
    return pd.DataFrame({
        "Category": d["category"].map(label).to_numpy(),
        "Funder": d["funder"].map(label).to_numpy(),
        "Annual value": d["annual_value"].map(money).to_numpy(),
        "Notice (months)": d["notice_months"].to_numpy(),
        "Ends": d["end_date"].dt.strftime("%b %Y").to_numpy(),
        "Paid twice, year 1": d["paid_twice_year"].map(money).to_numpy(),
        f"Paid twice, {r.assumptions.horizon_months} months": d["paid_twice_horizon"].map(money).to_numpy(),
    }, index=d["contract_id"].to_numpy())


def rollout_table(r: Risk) -> pd.DataFrame:
    year = r.by_month.loc[r.by_month.index <= 12].sum()
    whole = r.by_month.sum()
    return pd.DataFrame({
        "Paid twice, year 1": year.map(money).to_numpy(),
        f"Paid twice, {r.assumptions.horizon_months} months": whole.map(money).to_numpy(),
    }, index=[f"{name.capitalize()} roll-out" for name in r.by_month.columns])


def tornado_table(r: Risk) -> pd.DataFrame:
    t = r.tornado
    fmt = {"Enrolment pace": "{:+.0%}".format, "Budget size": money, "Share of budget used": "{:.1%}".format}
    return pd.DataFrame({
        "Low value": [fmt[i](v) for i, v in zip(t["input"], t["low_value"])],
        "High value": [fmt[i](v) for i, v in zip(t["input"], t["high_value"])],
        "Spend minus budget, low": t["gap_low"].map(money).to_numpy(),
        "Spend minus budget, high": t["gap_high"].map(money).to_numpy(),
    }, index=t["input"].to_numpy())


def messages(r: Risk) -> list[str]:
    by_year = r.by_month.loc[r.by_month.index <= 12].sum()
    msgs = [
        f"Double running: block contracts paid while budgets already buy the same services could cost "
        f"{money(by_year['phased'])} in the next 12 months under a phased roll-out and "
        f"{money(by_year['fast'])} under a fast one (all growth within {r.assumptions.fast_rollout_months} months). "
        f"Doubling every notice period would raise the phased figure to {money(r.notice_doubled)}.",
    ]
    if r.new_need_total:
        msgs.append(f"{money(r.new_need_total)} ({pct(r.new_need_share)} of budget money) funds needs that no "
                    "service met before: new cost, not money moved from existing services.")
    o = r.overspend
    if o is None:
        msgs.append("Too few completed budget periods to simulate next year's spend.")
    else:
        widest = r.tornado.iloc[0]["input"].lower()
        msgs.append(f"Next year's spend has a {probability(o.probability)} chance of exceeding the pooled budget of "
                    f"{money(o.pooled_budget)} (median spend {money(o.median)}, 95th percentile {money(o.p95)}, "
                    f"{r.assumptions.draws:,} simulations); the result is most sensitive to {widest}.")
    return msgs

"""What could go wrong financially next year: double running, new need, overspend."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ...data import contract as C
from .. import disclosure
from ...analysis import risk as R
from ..charts import label
from ...data.dataset import SiteData
from ..present import current_policy, money, pct, probability
from ..results import Metrics
from .allocation import Allocation


@dataclass
class Risk:
    assumptions: R.RiskAssumptions
    budget_spend_per_month: pd.Series
    projections: dict[str, pd.DataFrame]  # plan name -> contract x month projection
    by_month: pd.DataFrame  # month x plan: GBP paid twice
    by_contract: pd.DataFrame  # under the phased plan
    by_funder: pd.DataFrame  # funder x plan: GBP paid twice in the first 12 months
    calendar: pd.DataFrame  # notice calendar under the phased plan
    notice_doubled: float  # projection-year cost with every notice period doubled (phased)
    existing_monthly: float  # double_running_existing, GBP a month
    overspend: R.OverspendResult | None
    outturn: dict | None  # this financial year's forecast outturn
    tornado: pd.DataFrame | None
    new_need_total: float
    new_need_share: float | None


def compute(data: SiteData, allocation: Allocation, assumptions: R.RiskAssumptions, metrics: Metrics,
            pooled_fund_next: dict | None = None) -> Risk:
    contracts, extract = data["contracts"], data.extract_date
    monthly = R.budget_spend_per_month(data["spend"], extract, data["people"])
    plans = R.plans(assumptions)
    projections = {name: R.double_running_projection(contracts, monthly, plan, extract,
                                                      release_share=assumptions.release_share)
                   for name, plan in plans.items()}
    by_month = pd.DataFrame({name: R.double_running_by_month(p)["paid_twice"] for name, p in projections.items()})
    existing = R.double_running_existing(contracts, monthly, assumptions.unreleased_share)
    metrics.record("double_running_cost", R.projection_year_cost(projections["phased"]))
    metrics.update({"double_running_cost_fast": R.projection_year_cost(projections["fast"]),
                    "double_running_cost_24m": float(projections["phased"]["paid_twice"].sum()),
                    "double_running_existing": existing})
    by_funder = pd.DataFrame({name: R.double_running_by_funder(p) for name, p in projections.items()})
    by_funder = by_funder.reindex(list(C.FUNDERS)).astype(float).fillna(0.0)
    metrics.update({f"double_running_cost_{f}": by_funder.loc[f, "phased"] for f in C.FUNDERS})
    doubled = R.double_running_projection(contracts, monthly, plans["phased"], extract, notice_scale=2,
                                          release_share=assumptions.release_share)

    inputs = R.SpendInputs.from_site(data["people"], data["budgets"], allocation.per_period, extract, allocation.window)
    if inputs is not None and not disclosure.enough(inputs.holders_now, current_policy()):
        inputs = None  # a forecast over a handful of holders is close to describing their budgets
    fund = None if pooled_fund_next is None else float(sum(pooled_fund_next.values()))
    sim = R.overspend(inputs, assumptions, fund)
    metrics.record("pooled_fund", fund)
    outturn = None
    if sim is None:
        reason = ("too few completed budget periods, or too few budgets live on the extract date, to forecast "
                  "without describing individuals")
        for key in ("spend_forecast", "spend_p05", "spend_p95", "overspend_probability"):
            metrics.missing(key, reason)
    else:
        metrics.update({"spend_forecast": sim.forecast, "spend_p05": sim.p05, "spend_p95": sim.p95,
                        "overspend_probability": sim.probability})
        if fund is None:
            metrics.note("overspend_probability: no pooled fund in the run's parameters; the forecast and its "
                         "interval are given instead")
        outturn = R.forecast_outturn(data["spend"], extract, sim.spend_draws)
        metrics.update({f"forecast_{k}": v for k, v in outturn.items()})
    new_need = float(allocation.new_need["agreed"].sum())
    total = allocation.budget["budget_total"]
    return Risk(
        assumptions=assumptions,
        budget_spend_per_month=monthly,
        projections=projections,
        by_month=by_month,
        by_contract=R.double_running_by_contract(contracts, projections["phased"]),
        by_funder=by_funder,
        calendar=R.notice_calendar(contracts, projections["phased"], extract),
        notice_doubled=R.projection_year_cost(doubled),
        existing_monthly=existing,
        overspend=sim,
        outturn=outturn,
        tornado=R.tornado(sim, assumptions) if sim is not None else None,
        new_need_total=new_need,
        new_need_share=new_need / total if total else None,
    )


NO_CONTRACTS = pd.DataFrame({"Note": ["No block contracts are recorded for this site"]}, index=["-"])


def contract_table(r: Risk) -> pd.DataFrame:
    d = r.by_contract
    if d.empty:
        return NO_CONTRACTS
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
    year = first_year(r)
    whole = r.by_month.sum().reindex(year.index, fill_value=0.0)
    return pd.DataFrame({
        "Paid twice, year 1": year.map(money).to_numpy(),
        f"Paid twice, {r.assumptions.horizon_months} months": whole.map(money).to_numpy(),
    }, index=[f"{name.capitalize()} roll-out" for name in year.index])


def funder_table(r: Risk) -> pd.DataFrame:
    """Double running in the first 12 months by the funder paying the contract, per plan."""
    if r.by_contract.empty:
        return NO_CONTRACTS
    f = r.by_funder.astype(float)
    return pd.DataFrame({f"{name.capitalize()} roll-out": f[name].map(money).to_numpy() for name in f.columns},
                        index=[label(x) for x in f.index])


def calendar_table(r: Risk) -> pd.DataFrame:
    """The notice calendar as published: contracts needing notice first."""
    c = r.calendar
    if c.empty:
        return NO_CONTRACTS
    serve = [("no notice needed" if pd.isna(due) else f"too late: ends before notice served now takes effect"
              if first else f"now (overdue since {due:%b %Y})" if late else f"{due:%d %b %Y}")
             for due, late, first in zip(c["serve_by"], c["overdue"], c["ends_first"])]
    return pd.DataFrame({
        "Category": c["category"].map(label).to_numpy(),
        "Funder": c["funder"].map(label).to_numpy(),
        "Notice (months)": c["notice_months"].to_numpy(),
        "Ends": c["end_date"].dt.strftime("%b %Y").to_numpy(),
        "Serve notice by": serve,
        "Cost of each month's delay": c["delay_cost_per_month"].map(money).to_numpy(),
    }, index=c["contract_id"].to_numpy())


TORNADO_FORMATS = {"Enrolment pace": "{:+.0%}".format, "Holders leaving": "{:.1%} a year".format,
                   "Share of budget used": "{:.1%}".format, "New holders' budgets": money,
                   "Price uplift": "{:+.1%}".format}
TORNADO_SOURCES = {"Enrolment pace": "the roll-out plan's stated uncertainty (parameters)",
                   "Holders leaving": "the site's exits in the reporting year",
                   "Share of budget used": "completed budget periods",
                   "New holders' budgets": "budgets of holders who started in the reporting year",
                   "Price uplift": "the run's stated uncertainty (parameters)"}


def forecast_table(r: Risk) -> pd.DataFrame:
    """Next year's spend and this financial year's outturn, with their 90% intervals."""
    o, t = r.overspend, r.outturn
    rows = {
        "Spend through budgets, next 12 months": (money(o.forecast), f"{money(o.p05)} to {money(o.p95)}"),
        f"Forecast outturn, financial year {t['financial_year']}": (
            money(t["outturn"]), f"{money(t['outturn_p05'])} to {money(t['outturn_p95'])}"),
        f"  of which spent to date ({t['months_left']} months left)": (money(t["spend_to_date"]), ""),
    }
    if o.pooled_fund is not None:
        rows["Pooled fund, next 12 months"] = (money(o.pooled_fund), "")
        rows["Chance spend exceeds the pooled fund"] = (probability(o.probability), "")
    return pd.DataFrame(rows, index=["Central", "90% interval"]).T


def tornado_table(r: Risk) -> pd.DataFrame:
    t = r.tornado
    fmt = TORNADO_FORMATS
    against = "fund" if r.overspend.pooled_fund is not None else "forecast"
    return pd.DataFrame({
        "Low value": [fmt[i](v) for i, v in zip(t["input"], t["low_value"])],
        "High value": [fmt[i](v) for i, v in zip(t["input"], t["high_value"])],
        f"Against {against}, low": t["gap_low"].map(money).to_numpy(),
        f"Against {against}, high": t["gap_high"].map(money).to_numpy(),
        "Range from": t["input"].map(TORNADO_SOURCES).to_numpy(),
    }, index=t["input"].to_numpy())


def first_year(r: Risk) -> pd.Series:
    """GBP paid twice in the 12 months after the extract, per plan (zero without contracts)."""
    return r.by_month.loc[r.by_month.index <= 12].sum().reindex(list(R.plans(r.assumptions)), fill_value=0.0)


def messages(r: Risk) -> list[str]:
    msgs = [double_running_message(r)]
    if r.existing_monthly:
        msgs.append(f"A further {money(r.existing_monthly)} a month is still paid twice for money already in budgets "
                    "that the site says was never taken out of its contracts.")
    if r.new_need_total:
        msgs.append(f"{money(r.new_need_total)} ({pct(r.new_need_share)} of budget money in the year) funds needs that "
                    "no service met before: new cost, not money moved from existing services.")
    msgs.append(overspend_message(r))
    return msgs


def double_running_message(r: Risk) -> str:
    if r.by_contract.empty:
        return ("No block contracts are recorded for this site, so double running is not estimated: add them to "
                "the contracts table to see what roll-out would cost while contracts are still paid.")
    by_year = first_year(r)
    text = (f"Double running: as budgets grow, block contracts still paid for services that budgets now buy could cost "
            f"{money(by_year['phased'])} in the next 12 months under the phased roll-out and "
            f"{money(by_year['fast'])} if the same growth comes within {r.assumptions.fast_rollout_months} months.")
    top, _ = R.notice_priority(r.calendar)
    if top is not None:
        when = "now" if top["overdue"] else f"by {top['serve_by']:%d %B %Y}"
        text += (f" Serve notice on {top['contract_id']} ({label(top['category']).lower()}) {when}: each month "
                 f"of delay costs about {money(top['delay_cost_per_month'])}.")
    return text


def overspend_message(r: Risk) -> str:
    o = r.overspend
    if o is None:
        return "Too few completed budget periods to forecast next year's spend."
    widest = r.tornado.iloc[0]["input"].lower()
    text = (f"Next year's spend through budgets is forecast at {money(o.forecast)} (90% interval {money(o.p05)} to "
            f"{money(o.p95)}); the forecast is most sensitive to {widest}.")
    if o.pooled_fund is None:
        return text + " No pooled fund was given for the site, so no chance of overspending is stated."
    verdict = ("plan for an overspend" if o.probability >= 0.5 else "hold a contingency" if o.probability >= 0.2
               else "the fund looks sufficient")
    return text + (f" The chance it exceeds the pooled fund of {money(o.pooled_fund)} is "
                   f"{probability(o.probability)}: {verdict}.")

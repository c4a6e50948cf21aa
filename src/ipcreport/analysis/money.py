"""Money in the reporting year: what budgets hold, what was spent, what is new, per funder.

A year of care runs from each person's own anniversary, so a continuing holder has two budget
periods touching any 12-month window. Counting both in full doubles the money; every figure
here pro-rates a period (and each funder's part of it) by its days inside the reporting year,
period ends inclusive (contract: "Headline results").

Pure functions: contract tables in, frames or numbers out. No I/O, no plotting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import contract as C
from ..data.frames import isin

YEAR_DAYS = 365  # prior_service_cost is a 12-month figure, taken as 365 days; a year of care is 365 days


def period_days(budgets: pd.DataFrame) -> pd.Series:
    """Days in each budget period, both ends inclusive."""
    return (budgets["period_end"] - budgets["period_start"]).dt.days + 1


def days_inside(start: pd.Series, end: pd.Series, window) -> pd.Series:
    """Days of [start, end] (inclusive) that fall inside the window (inclusive); 0 if none."""
    first = start.where(start > window.start, window.start)
    last = end.where(end < window.end, window.end)
    return ((last - first).dt.days + 1).clip(lower=0)


def in_year(budgets: pd.DataFrame, window) -> pd.DataFrame:
    """Budget periods overlapping the reporting year, with their money inside it.

    Adds ``days_in_year``, ``in_year_share`` (days inside over days in the period) and, for the
    agreed budget and each funder's part, an ``*_in_year`` column: the money times the share.
    """
    days = days_inside(budgets["period_start"], budgets["period_end"], window)
    out = budgets.loc[days > 0].copy()
    out["days_in_year"] = days[days > 0].astype(int)
    out["in_year_share"] = out["days_in_year"] / period_days(out)
    for column in ("agreed_budget", *C.FUNDING_COLUMNS):
        out[f"{column}_in_year"] = out[column].astype(float) * out["in_year_share"]
    return out


def budget_total(budgets: pd.DataFrame, window) -> float:
    """The contract's budget_total: agreed budget money in the reporting year (pro-rated)."""
    return float(in_year(budgets, window)["agreed_budget_in_year"].sum())


def committed_annual(budgets: pd.DataFrame, extract_date: pd.Timestamp) -> float:
    """budget_committed_annual: the annual value of the agreed budgets live on the extract date
    (each period's agreed budget scaled to 365 days, so a short period is not under-counted)."""
    live = budgets[(budgets["period_start"] <= extract_date) & (budgets["period_end"] >= extract_date)]
    return float((live["agreed_budget"].astype(float) * YEAR_DAYS / period_days(live)).sum())


def spend_in_year(spend: pd.DataFrame, window) -> pd.DataFrame:
    """Spend rows in the months of the reporting year (net of refunds when summed)."""
    return spend[(spend["month"] >= window.start) & (spend["month"] <= window.end)]


def match_spend_to_periods(spend: pd.DataFrame, periods: pd.DataFrame) -> pd.DataFrame:
    """Each spend row with the columns of the budget period containing its month.

    Rows whose month lies in none of ``periods`` are dropped (the contract guarantees every
    spend month lies in one of the person's periods; ``periods`` may be a subset).
    """
    if spend.empty or periods.empty:  # merge_asof cannot match keys of an empty text column
        return pd.concat([spend.iloc[0:0].reset_index(drop=True),
                          periods.drop(columns="person_id").iloc[0:0].reset_index(drop=True)], axis=1)
    rows = pd.merge_asof(
        spend.sort_values("month"), periods.sort_values("period_start"),
        left_on="month", right_on="period_start", by="person_id",
    )
    return rows[rows["period_end"].notna() & (rows["month"] <= rows["period_end"])]


def spend_by_funder(spend: pd.DataFrame, budgets: pd.DataFrame, window) -> pd.Series:
    """Spend in the reporting year split between funders by the shares of the period it came from."""
    rows = match_spend_to_periods(spend_in_year(spend, window)[["person_id", "month", "amount"]],
                                  budgets[["person_id", "period_start", "period_end", "agreed_budget",
                                           *C.FUNDING_COLUMNS]])
    agreed = rows["agreed_budget"].astype(float)
    out = {}
    for column in C.FUNDING_COLUMNS:
        # A period agreed at zero has no funder shares: its spend is split equally (rare; says so in docs).
        share = (rows[column].astype(float) / agreed.where(agreed > 0)).fillna(1 / len(C.FUNDING_COLUMNS))
        out[column.removeprefix("funded_")] = float((rows["amount"].astype(float) * share).sum())
    return pd.Series(out, name="spend")


def prior_cost_over_same_days(people: pd.DataFrame, periods: pd.DataFrame) -> pd.Series:
    """Each budget holder's prior service cost over the days their budgets cover in the year.

    prior_service_cost is a 12-month figure (taken as 365 days); ``periods`` is :func:`in_year`.
    """
    days = periods.groupby("person_id")["days_in_year"].sum()
    prior = people.set_index("person_id")["prior_service_cost"].astype(float).reindex(days.index).fillna(0.0)
    return prior * days / YEAR_DAYS


def net_new_money(people: pd.DataFrame, budgets: pd.DataFrame, window) -> float:
    """In-year budgets minus what the same people's services cost before, over the same days."""
    periods = in_year(budgets, window)
    return float(periods["agreed_budget_in_year"].sum() - prior_cost_over_same_days(people, periods).sum())


def direct_payment_unspent_in_year(people: pd.DataFrame, budgets: pd.DataFrame, spend: pd.DataFrame,
                                   window) -> pd.Series:
    """Direct-payment money agreed for the reporting year but not spent in it, by funder.

    Per budget period: in-year agreed money minus in-year spend, where positive (an overspent
    period does not offset another person's unspent money), split by the period's funder shares.
    """
    dp_people = people.loc[people["management"] == "direct_payment", "person_id"]
    periods = in_year(budgets[isin(budgets["person_id"], dp_people)], window)
    zero = pd.Series(0.0, index=list(C.FUNDERS))
    if periods.empty:
        return zero
    keys = ["person_id", "period_start"]
    rows = match_spend_to_periods(spend_in_year(spend, window)[["person_id", "month", "amount"]],
                                  periods[[*keys, "period_end"]])
    spent = rows.groupby(keys)["amount"].sum().rename("spent")
    periods = periods.merge(spent, left_on=keys, right_index=True, how="left")
    unspent = (periods["agreed_budget_in_year"] - periods["spent"].fillna(0.0)).clip(lower=0)
    agreed = periods["agreed_budget"].astype(float)
    return pd.Series({
        f.removeprefix("funded_"): float((unspent * periods[f].astype(float) / agreed.where(agreed > 0)).fillna(0).sum())
        for f in C.FUNDING_COLUMNS
    })


def money_bridge(people: pd.DataFrame, budgets: pd.DataFrame, spend: pd.DataFrame, window,
                 pooled_fund: dict[str, float] | None = None) -> pd.DataFrame:
    """From in-year agreed budgets to spend, unspent money and the pooled fund, per funder.

    Rows: nhs, social_care, education and total. Columns: agreed (in-year agreed budgets),
    spent (spend in the year), unspent (agreed minus spent), dp_recoverable (of which
    direct-payment money agreed but not spent), pooled_fund (the run's parameter, per funder;
    a funder it leaves out pays nothing in; NaN when no fund is given) and variance (pooled fund minus spend: positive is money left in the fund).
    """
    periods = in_year(budgets, window)
    agreed = pd.Series({f.removeprefix("funded_"): float(periods[f"{f}_in_year"].sum()) for f in C.FUNDING_COLUMNS})
    spent = spend_by_funder(spend, budgets, window)
    bridge = pd.DataFrame({"agreed": agreed, "spent": spent})
    bridge["unspent"] = bridge["agreed"] - bridge["spent"]
    bridge["dp_recoverable"] = direct_payment_unspent_in_year(people, budgets, spend, window)
    # A funder left out of a given pooled fund puts nothing into it; no fund at all is unknown.
    bridge["pooled_fund"] = (np.nan if pooled_fund is None
                             else pd.Series({f: float(pooled_fund.get(f, 0.0)) for f in C.FUNDERS}))
    bridge["variance"] = bridge["pooled_fund"] - bridge["spent"]
    bridge.loc["total"] = bridge.sum(numeric_only=True, min_count=1)
    return bridge

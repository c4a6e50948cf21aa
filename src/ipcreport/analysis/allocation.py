"""Who holds budgets, how, how big they are, who pays and how much is used.

Pure functions: contract tables in, frames or numbers out. No I/O, no plotting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import contract as C


@dataclass(frozen=True)
class Window:
    """The reporting year: the 12 months ending on extract_date unless the run says otherwise."""

    start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def ending(cls, end: pd.Timestamp, months: int = 12) -> "Window":
        end = pd.Timestamp(end)
        return cls(end - pd.DateOffset(months=months) + pd.Timedelta(days=1), end)


def ipc_people(people: pd.DataFrame) -> pd.DataFrame:
    return people[people["group"] == "ipc"]


def people_by(people: pd.DataFrame, column: str, categories: tuple[str, ...]) -> pd.Series:
    """Budget holders counted by one column, every category of the vocabulary present."""
    counts = ipc_people(people)[column].value_counts()
    return counts.reindex(list(categories), fill_value=0).rename("people")


def management_shares(people: pd.DataFrame) -> pd.Series:
    """Share of budget holders by how the budget is held (notional, third party, direct payment)."""
    counts = people_by(people, "management", C.MANAGEMENT)
    total = counts.sum()
    return counts / total if total else counts.astype(float) * np.nan


def budgets_in_window(budgets: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Budget periods that overlap the reporting year."""
    overlaps = (budgets["period_start"] <= window.end) & (budgets["period_end"] >= window.start)
    return budgets[overlaps]


def budget_summary(budgets: pd.DataFrame, window: Window) -> dict[str, float]:
    """Total, mean and median agreed budget over periods overlapping the reporting year."""
    agreed = budgets_in_window(budgets, window)["agreed_budget"]
    if agreed.empty:
        return {"budget_total": 0.0, "budget_mean": None, "budget_median": None, "budget_periods": 0}
    return {
        "budget_total": float(agreed.sum()),
        "budget_mean": float(agreed.mean()),
        "budget_median": float(agreed.median()),
        "budget_periods": int(agreed.size),
    }


def budget_distribution(budgets: pd.DataFrame, people: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Agreed budget per period by cohort: periods, median, quartiles and 90th percentile."""
    periods = budgets_in_window(budgets, window).merge(people[["person_id", "cohort"]], on="person_id")
    grouped = periods.groupby("cohort", observed=True)["agreed_budget"]
    table = pd.DataFrame(
        {
            "periods": grouped.size(),
            "median": grouped.median(),
            "q1": grouped.quantile(0.25),
            "q3": grouped.quantile(0.75),
            "p90": grouped.quantile(0.90),
            "total": grouped.sum(),
        }
    )
    return table.reindex([c for c in C.COHORTS if c in table.index])


def funding_shares(budgets: pd.DataFrame, window: Window) -> pd.Series:
    """Share of agreed budget money from each funder (NHS, social care, education)."""
    periods = budgets_in_window(budgets, window)
    money = periods[list(C.FUNDING_COLUMNS)].sum()
    total = money.sum()
    shares = money / total if total else money * np.nan
    return shares.rename(lambda c: c.removeprefix("funded_"))


def ras_agreed_ratio(budgets: pd.DataFrame) -> pd.Series:
    """Agreed over indicative budget per period (periods with an indicative budget above zero)."""
    valid = budgets[budgets["indicative_budget"] > 0]
    return valid["agreed_budget"] / valid["indicative_budget"]


def completed_periods(budgets: pd.DataFrame, extract_date: pd.Timestamp) -> pd.DataFrame:
    return budgets[budgets["period_end"] <= extract_date]


def utilisation(budgets: pd.DataFrame, spend: pd.DataFrame, extract_date: pd.Timestamp) -> pd.DataFrame:
    """Spend against agreed budget, per budget period completed by the extract date.

    Spend rows are matched to the period containing their month (the contract guarantees
    exactly one). Returns one row per completed period with agreed, spent and their ratio.
    """
    periods = completed_periods(budgets, extract_date)[["person_id", "period_start", "period_end", "agreed_budget"]]
    if periods.empty:
        return periods.assign(spent=pd.Series(dtype=float), ratio=pd.Series(dtype=float))
    rows = pd.merge_asof(
        spend[["person_id", "month", "amount"]].sort_values("month"),
        periods.sort_values("period_start"),
        left_on="month",
        right_on="period_start",
        by="person_id",
    )
    rows = rows[rows["period_end"].notna() & (rows["month"] <= rows["period_end"])]
    spent = rows.groupby(["person_id", "period_start"])["amount"].sum().rename("spent")
    out = periods.merge(spent, left_on=["person_id", "period_start"], right_index=True, how="left")
    out["spent"] = out["spent"].fillna(0.0)
    out["ratio"] = out["spent"] / out["agreed_budget"].where(out["agreed_budget"] > 0)
    return out.reset_index(drop=True)


def overall_utilisation(per_period: pd.DataFrame) -> float | None:
    """Total spend over total agreed budget for the completed periods (the contract's key)."""
    agreed = per_period["agreed_budget"].sum()
    return float(per_period["spent"].sum() / agreed) if agreed > 0 else None


def spend_by_category(spend: pd.DataFrame, window: Window) -> pd.Series:
    """Money spent through budgets in the reporting year, by category, largest first."""
    in_year = spend[(spend["month"] >= window.start) & (spend["month"] <= window.end)]
    return in_year.groupby("category")["amount"].sum().sort_values(ascending=False)


def monthly_series(people: pd.DataFrame, spend: pd.DataFrame) -> pd.DataFrame:
    """Monthly new budget holders and spend: series ready for control charts."""
    holders = ipc_people(people)
    enrolled = holders.groupby(holders["index_date"].dt.to_period("M")).size().rename("new_holders")
    spent = spend.groupby(spend["month"].dt.to_period("M"))["amount"].sum().rename("spend")
    frame = pd.concat([enrolled, spent], axis=1).fillna(0.0).sort_index()
    if not frame.empty:
        full = pd.period_range(frame.index.min(), frame.index.max(), freq="M")
        frame = frame.reindex(full, fill_value=0.0)
    frame.index = frame.index.to_timestamp()
    frame.index.name = "month"
    return frame


def new_need(people: pd.DataFrame, budgets: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Agreed budgets in the reporting year of people no service had met before, by cohort."""
    new = ipc_people(people).loc[lambda p: p["prior_service_cost"] == 0, ["person_id", "cohort"]]
    periods = budgets_in_window(budgets, window).merge(new, on="person_id")
    table = periods.groupby("cohort").agg(people=("person_id", "nunique"), agreed=("agreed_budget", "sum"))
    return table.reindex([c for c in C.COHORTS if c in table.index])

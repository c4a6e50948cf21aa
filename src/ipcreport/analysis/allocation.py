"""Who holds budgets, how, how big they are, who pays and how much is used.

Pure functions: contract tables in, frames or numbers out. No I/O, no plotting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.regression.linear_model import OLS
from statsmodels.tools.tools import add_constant

from ..data import contract as C
from . import money as M


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
    """Agreed budget money in the reporting year (pro-rated, :mod:`.money`), and the mean and
    median agreed budget per year of care over the periods overlapping the year."""
    agreed = budgets_in_window(budgets, window)["agreed_budget"]
    if agreed.empty:
        return {"budget_total": 0.0, "budget_mean": None, "budget_median": None, "budget_periods": 0}
    return {
        "budget_total": M.budget_total(budgets, window),
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
    """Share of agreed budget money in the reporting year from each funder (NHS, social care, education)."""
    periods = M.in_year(budgets, window)
    money = periods[[f"{f}_in_year" for f in C.FUNDING_COLUMNS]].sum().rename(lambda c: c.removesuffix("_in_year"))
    total = money.sum()
    shares = money / total if total else money * np.nan
    return shares.rename(lambda c: c.removeprefix("funded_"))


def ras_agreed_ratio(budgets: pd.DataFrame) -> pd.Series:
    """Agreed over indicative budget per period (periods with an indicative budget above zero)."""
    valid = budgets[budgets["indicative_budget"] > 0]
    return valid["agreed_budget"] / valid["indicative_budget"]


def completed_periods(budgets: pd.DataFrame, extract_date: pd.Timestamp) -> pd.DataFrame:
    return budgets[budgets["period_end"] <= extract_date]


def utilisation(budgets: pd.DataFrame, spend: pd.DataFrame, extract_date: pd.Timestamp,
                people: pd.DataFrame | None = None) -> pd.DataFrame:
    """Spend against agreed budget, per budget period completed by the extract date.

    Spend rows are matched to the period containing their month (the contract guarantees
    exactly one). Returns one row per completed period with agreed, spent, their ratio and
    ``cut_short``: the person left (died, moved, left the programme) before the period's end,
    so its spend says nothing about how well the budget was used. ``ratio`` is missing for
    periods cut short.
    """
    periods = completed_periods(budgets, extract_date)[["person_id", "period_start", "period_end", "agreed_budget"]]
    if periods.empty:
        return periods.assign(spent=pd.Series(dtype=float), ratio=pd.Series(dtype=float),
                              cut_short=pd.Series(dtype=bool))
    out = periods.assign(spent=M.spend_per_period(spend, periods))
    out["cut_short"] = False
    if people is not None and "exit_date" in people:
        exit_date = out["person_id"].map(people.set_index("person_id")["exit_date"])
        out["cut_short"] = (exit_date.notna() & (exit_date < out["period_end"])).astype(bool)
    out["ratio"] = (out["spent"] / out["agreed_budget"].where(out["agreed_budget"] > 0)).where(~out["cut_short"])
    return out.reset_index(drop=True)


def overall_utilisation(per_period: pd.DataFrame) -> float | None:
    """Total spend over total agreed budget for completed periods not cut short (the contract's key)."""
    full = per_period[~per_period["cut_short"]] if "cut_short" in per_period else per_period
    agreed = full["agreed_budget"].sum()
    return float(full["spent"].sum() / agreed) if agreed > 0 else None


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
    """Agreed budgets in the reporting year (pro-rated) of people no service had met before, by cohort."""
    new = ipc_people(people).loc[lambda p: p["prior_service_cost"] == 0, ["person_id", "cohort"]]
    periods = M.in_year(budgets, window).merge(new, on="person_id")
    table = periods.groupby("cohort").agg(people=("person_id", "nunique"), agreed=("agreed_budget_in_year", "sum"))
    return table.reindex([c for c in C.COHORTS if c in table.index])


# ---------------------------------------------------------------------------------------------
# money by group


def money_by(budgets: pd.DataFrame, people: pd.DataFrame, window: Window, column: str,
             categories: tuple[str, ...]) -> pd.DataFrame:
    """Budget holders and agreed budget money in the reporting year (pro-rated) by a people column."""
    periods = M.in_year(budgets, window).merge(people[["person_id", column]], on="person_id")
    table = periods.groupby(column).agg(people=("person_id", "nunique"), money=("agreed_budget_in_year", "sum"))
    table = table.reindex(list(categories), fill_value=0)
    total = table["money"].sum()
    table["share_of_money"] = table["money"] / total if total else np.nan
    return table


def money_by_funder_and_cohort(budgets: pd.DataFrame, people: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Agreed budget money in the reporting year (pro-rated) by cohort (rows) and funder (columns)."""
    periods = M.in_year(budgets, window).merge(people[["person_id", "cohort"]], on="person_id")
    table = periods.groupby("cohort")[[f"{f}_in_year" for f in C.FUNDING_COLUMNS]].sum()
    table.columns = [c.removeprefix("funded_").removesuffix("_in_year") for c in table.columns]
    return table.reindex([c for c in C.COHORTS if c in table.index])


# ---------------------------------------------------------------------------------------------
# resource allocation calibration and equity


@dataclass(frozen=True)
class Calibration:
    """How agreed budgets follow the indicative budgets of the resource allocation system."""

    periods: int
    median_ratio: float | None
    share_within_10pct: float | None
    slope: float | None  # elasticity of agreed to indicative budget (1 = proportional)
    slope_low: float | None
    slope_high: float | None
    bins: pd.DataFrame  # indicative-budget deciles: median indicative, median and quartiles of agreed


def ras_calibration(budgets: pd.DataFrame, min_periods: int = 20) -> Calibration:
    """Median agreed/indicative ratio, share within 10%, and a log-log regression of agreed on
    indicative budget (statsmodels OLS, HC3 errors): a slope of 1 means budgets scale with the
    RAS; below 1, large indicative budgets are cut back relative to small ones."""
    valid = budgets[(budgets["indicative_budget"] > 0) & (budgets["agreed_budget"] > 0)]
    if len(valid) < min_periods:
        empty = pd.DataFrame(columns=["indicative", "agreed_median", "agreed_q1", "agreed_q3", "periods"])
        ratio = ras_agreed_ratio(budgets)
        return Calibration(len(valid), float(ratio.median()) if len(ratio) else None, None, None, None, None, empty)
    ratio = valid["agreed_budget"] / valid["indicative_budget"]
    X = add_constant(np.log(valid["indicative_budget"]).rename("log_indicative"))
    fit = OLS(np.log(valid["agreed_budget"]), X).fit(cov_type="HC3")
    low, high = fit.conf_int().loc["log_indicative"]
    decile = pd.qcut(valid["indicative_budget"], q=min(10, len(valid) // 10 or 1), duplicates="drop")
    grouped = valid.groupby(decile, observed=True)
    bins = pd.DataFrame({
        "indicative": grouped["indicative_budget"].median(),
        "agreed_median": grouped["agreed_budget"].median(),
        "agreed_q1": grouped["agreed_budget"].quantile(0.25),
        "agreed_q3": grouped["agreed_budget"].quantile(0.75),
        "periods": grouped.size(),
    }).reset_index(drop=True)
    return Calibration(len(valid), float(ratio.median()), float(((ratio - 1).abs() <= 0.10).mean()),
                       float(fit.params["log_indicative"]), float(low), float(high), bins)


EQUITY_TERMS = {
    "cohort": "Cohort",
    "age_band": "Age band",
    "sex": "Sex",
    "deprivation": "Deprivation (IMD quintile)",
}
# Cohort differences are part of how a RAS sets budgets; these are the terms that should not
# matter once need is known.
FAIRNESS_TERMS = ("age_band", "sex", "deprivation")
MIN_LEVEL_PEOPLE = 20  # a level with fewer people is pooled: its own estimate would be noise
POOLED_LEVEL = "other (small groups)"


@dataclass(frozen=True)
class Equity:
    """Does anything other than need explain agreed budgets?"""

    people: int
    terms: pd.DataFrame  # term, level, reference, pct_difference, low, high, p_value (at equal need)
    fairness_p_value: float | None  # F-test that age, sex and deprivation terms are all zero
    need_elasticity: tuple[float, float, float] | None  # % more budget per 10% more need, with interval
    reason: str | None = None


def _pool_small_levels(values: pd.Series, reference: str) -> pd.Series:
    counts = values.value_counts()
    small = counts.index[counts < MIN_LEVEL_PEOPLE].difference([reference])
    pooled = values.where(~values.isin(small), POOLED_LEVEL)
    if (pooled == POOLED_LEVEL).sum() < MIN_LEVEL_PEOPLE:
        pooled = pooled.where(pooled != POOLED_LEVEL, reference)
    return pooled


def equity_frame(budgets: pd.DataFrame, people: pd.DataFrame, window: Window) -> pd.DataFrame:
    """One row per budget holder (latest period in the reporting year) with the model's terms."""
    periods = budgets_in_window(budgets, window).sort_values("period_start").drop_duplicates("person_id", keep="last")
    data = periods.merge(people, on="person_id")
    data = data[(data["agreed_budget"] > 0) & (data["need_score"] > 0)].copy()
    data["log_budget"] = np.log(data["agreed_budget"])
    data["log_need"] = np.log(data["need_score"])
    # Children's age is carried by their cohort (children_complex_needs means under 18), so
    # age bands are for adults; children sit in the reference band to avoid collinearity.
    data["age_band"] = pd.cut(data["age"], [-1, 17, 44, 64, 79, 200],
                              labels=["45-64", "18-44", "45-64", "65-79", "80+"], ordered=False).astype(str)
    quintile = (data["imd_decile"].astype("Float64") + 1) // 2
    data["deprivation"] = quintile.map(lambda q: "unknown" if pd.isna(q) else f"Q{int(q)}").astype(str)
    data["sex"] = data["sex"].astype(str)
    data["cohort"] = data["cohort"].astype(str)
    return data


def equity_model(budgets: pd.DataFrame, people: pd.DataFrame, window: Window, min_people: int = 50) -> Equity:
    """OLS of log agreed budget on log need, cohort, age band, sex and deprivation, HC3 errors.

    Non-need coefficients become % differences in budget at the same need, with 95%
    intervals; an F-test asks whether age, sex and deprivation are jointly irrelevant.
    """
    data = equity_frame(budgets, people, window)
    if len(data) < min_people:
        return Equity(len(data), pd.DataFrame(), None, None, reason=f"too few budget holders ({len(data)}) for the model")
    # Reference levels are each term's largest group (the 45-64 band for age): a small reference
    # (say the least deprived fifth in a deprived area) would make every comparison with it noisy.
    refs = {term: data[term].mode()[0] for term in EQUITY_TERMS} | {"age_band": "45-64"}
    design = [pd.Series(1.0, index=data.index, name="const"), data["log_need"]]
    dummies = {}  # column name -> (term, level)
    for term in EQUITY_TERMS:
        levels = _pool_small_levels(data[term], refs[term])
        for level in sorted(set(levels.unique()) - {refs[term]}):  # not set(levels): a Python loop over every row
            name = f"{term}={level}"
            dummies[name] = (term, level)
            design.append((levels == level).astype(float).rename(name))
    X = pd.concat(design, axis=1)
    fit = OLS(data["log_budget"], X).fit(cov_type="HC3")
    ci = fit.conf_int()
    table = pd.DataFrame([
        {"term": EQUITY_TERMS[term], "level": level, "reference": refs[term],
         "pct_difference": np.expm1(fit.params[name]), "low": np.expm1(ci.loc[name, 0]),
         "high": np.expm1(ci.loc[name, 1]), "p_value": fit.pvalues[name]}
        for name, (term, level) in dummies.items()
    ])
    fairness = [name for name, (term, _) in dummies.items() if term in FAIRNESS_TERMS]
    joint = None
    if fairness:
        restriction = np.zeros((len(fairness), X.shape[1]))
        for row, name in enumerate(fairness):
            restriction[row, X.columns.get_loc(name)] = 1.0
        joint = float(fit.f_test(restriction).pvalue)
    b, (lo, hi) = fit.params["log_need"], ci.loc["log_need"]
    elasticity = tuple(float(np.expm1(x * np.log(1.1))) for x in (b, lo, hi))
    return Equity(len(data), table, joint, elasticity)


# ---------------------------------------------------------------------------------------------
# use of budgets


@dataclass(frozen=True)
class Use:
    periods: int  # completed periods not cut short by an exit: what use is measured on
    cut_short: int  # completed periods the holder left before they ended (left out of use)
    utilisation: float | None
    median_person: float | None
    share_under_70: float | None
    share_over_100: float | None
    direct_payment_unspent: float  # agreed minus net spend, completed direct-payment periods, where positive
    distribution: pd.Series  # per-period ratio counts in bands


USE_BANDS = [-np.inf, 0.5, 0.7, 0.9, 1.0, 1.1, np.inf]
USE_BAND_LABELS = ["under 50%", "50-70%", "70-90%", "90-100%", "100-110%", "over 110%"]


def budget_use(per_period: pd.DataFrame, people: pd.DataFrame) -> Use:
    """Spend over agreed budget for completed periods, its spread, and recoverable DP money.

    ``per_period`` is :func:`utilisation`'s output. Use is measured on periods not cut short by
    an exit. Unspent direct-payment money is what was agreed but not spent (net of refunds
    already recovered) in completed direct-payment periods, cut short or not: money left in the
    account of someone who died or moved is recoverable too.
    """
    rated = per_period.dropna(subset=["ratio"])
    cut_short = int(per_period["cut_short"].sum()) if "cut_short" in per_period else 0
    if rated.empty:
        return Use(0, cut_short, None, None, None, None, 0.0, pd.Series(0, index=USE_BAND_LABELS, name="periods"))
    dp = per_period.merge(people[["person_id", "management"]], on="person_id")
    dp = dp[dp["management"] == "direct_payment"]
    unspent = (dp["agreed_budget"] - dp["spent"]).clip(lower=0).sum()
    bands = pd.cut(rated["ratio"], USE_BANDS, labels=USE_BAND_LABELS, right=False).value_counts()
    return Use(
        periods=len(rated),
        cut_short=cut_short,
        utilisation=overall_utilisation(rated),
        median_person=float(rated["ratio"].median()),
        share_under_70=float((rated["ratio"] < 0.7).mean()),
        share_over_100=float((rated["ratio"] > 1.0).mean()),
        direct_payment_unspent=float(unspent),
        distribution=bands.reindex(USE_BAND_LABELS, fill_value=0).rename("periods"),
    )


def spend_mix_by_cohort(spend: pd.DataFrame, people: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Share of each cohort's spend in the reporting year by category (rows cohorts)."""
    in_year = spend[(spend["month"] >= window.start) & (spend["month"] <= window.end)]
    table = in_year.merge(people[["person_id", "cohort"]], on="person_id").pivot_table(
        index="cohort", columns="category", values="amount", aggfunc="sum", fill_value=0.0)
    shares = table.div(table.sum(axis=1).where(lambda s: s != 0), axis=0)
    return shares.reindex([c for c in C.COHORTS if c in shares.index])


def spend_mix_over_time(spend: pd.DataFrame, freq: str = "Q") -> pd.DataFrame:
    """Spend by category per quarter (columns categories)."""
    table = spend.pivot_table(index=spend["month"].dt.to_period(freq), columns="category", values="amount",
                              aggfunc="sum", fill_value=0.0)
    table.index = table.index.astype(str)
    return table

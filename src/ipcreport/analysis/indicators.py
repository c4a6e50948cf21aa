"""Headline indicators as numerators and denominators, one set per site, so that sites can be
compared with England (all sites pooled), with their peers, and on funnel plots.

Each indicator says what kind of figure it is (a proportion, or a rate per unit of exposure),
its polarity (whether higher is better, worse, or neither) and its multiplier for display.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from ..data.frames import isin
from . import allocation as A

DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class Indicator:
    key: str
    name: str
    kind: str  # "proportion" or "rate"
    polarity: str  # "higher_is_better", "lower_is_better" or "neutral"
    multiplier: float = 1.0
    unit: str = ""


INDICATORS = {
    i.key: i for i in (
        Indicator("holders_per_10k", "Budget holders per 10,000 residents", "rate", "neutral", 10_000, "per 10,000"),
        Indicator("direct_payment_share", "Budgets held as direct payments", "proportion", "neutral", 100, "%"),
        Indicator("new_need_share", "Budget holders new to services", "proportion", "neutral", 100, "%"),
        Indicator("under_70_share", "Budget holders whose last completed budget was less than 70% used", "proportion",
                  "lower_is_better", 100, "%"),
        Indicator("follow_up_share", "Quality-of-life questionnaires followed up", "proportion", "higher_is_better", 100, "%"),
        Indicator("emergency_rate", "Emergency admissions of budget holders per person-year", "rate",
                  "lower_is_better", 1, "per person-year"),
    )
}


def site_indicators(tables: dict[str, pd.DataFrame], extract_date: pd.Timestamp, months: int = 12) -> pd.DataFrame:
    """One row per indicator for one site: numerator and denominator over the reporting year."""
    people, budgets, spend = tables["people"], tables["budgets"], tables["spend"]
    site = tables["sites"].iloc[0]
    window = A.Window.ending(extract_date, months)
    holders = A.ipc_people(people)
    # One completed period per person (their latest): a person's periods share one way of using
    # a budget, so counting periods would treat them as independent and overstate precision.
    per_period = A.utilisation(budgets, spend, extract_date, people).dropna(subset=["ratio"])  # not cut short
    per_period = per_period.sort_values("period_start").drop_duplicates("person_id", keep="last")
    surveys = tables["surveys"]
    baseline = surveys.loc[surveys["timepoint"] == "baseline", "person_id"]
    followed = surveys.loc[surveys["timepoint"] == "follow_up", "person_id"]

    # Budget holders' person-years and emergency admissions in the reporting year, after enrolment.
    start = holders["index_date"].clip(lower=window.start)
    end = holders["exit_date"].fillna(window.end).clip(upper=window.end)
    years = ((end - start).dt.days.clip(lower=0) / DAYS_PER_YEAR).sum()
    events = tables["events"]
    admissions = events[(events["event_type"] == "emergency_admission") & isin(events["person_id"], holders["person_id"])
                        & (events["event_date"] >= window.start) & (events["event_date"] <= window.end)]
    admissions = admissions.merge(holders[["person_id", "index_date"]], on="person_id")
    admissions = admissions[admissions["event_date"] >= admissions["index_date"]]

    counts = {
        "holders_per_10k": (len(holders), float(site["population"])),
        "direct_payment_share": ((holders["management"] == "direct_payment").sum(), len(holders)),
        "new_need_share": ((holders["prior_service_cost"] == 0).sum(), len(holders)),
        "under_70_share": ((per_period["ratio"] < 0.7).sum(), len(per_period)),
        "follow_up_share": (isin(baseline, followed).sum(), len(baseline)),
        "emergency_rate": (len(admissions), years),
    }
    return pd.DataFrame([
        {"site_code": site["site_code"], "indicator": key, "numerator": float(num), "denominator": float(den)}
        for key, (num, den) in counts.items()
    ])


def site_context(tables: dict[str, pd.DataFrame]) -> dict:
    """What peer groups are formed on: the site's name, region, population and deprivation."""
    site = tables["sites"].iloc[0]
    return {"site_code": site["site_code"], "site_name": site["site_name"], "region": site["region"],
            "population": int(site["population"]), "imd_score": site["imd_score"]}


def site_summary(tables: dict[str, pd.DataFrame], extract_date: pd.Timestamp,
                 months: int = 12) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One site's rows of the national table (its indicators with the context peer groups need
    and its headline admissions estimate, for the pool) and its rows of the national model
    (:func:`ipcreport.analysis.meta.model_rows`, with a ``site`` column)."""
    from .meta import site_part  # each site's admissions estimate, so a briefing can quote the pooled one

    context = site_context(tables)
    part = site_part(tables, extract_date)
    indicators = site_indicators(tables, extract_date, months).assign(
        **{k: v for k, v in context.items() if k != "site_code"}, **part.columns())
    return indicators, part.rows.assign(site=context["site_code"])


def national_table(site_tables: Iterable[dict[str, pd.DataFrame]], extract_date: pd.Timestamp, months: int = 12,
                   model_rows: list[pd.DataFrame] | None = None) -> pd.DataFrame:
    """Every site's indicators with the context peer groups need: long form, one row per
    site and indicator (site_code, site_name, region, population, imd_score, indicator,
    numerator, denominator), and each site's headline admissions estimate for the pool.

    ``site_tables`` is read one site at a time (a generator keeps one site in memory);
    ``model_rows``, when given, receives each site's rows of the national model."""
    return from_summaries((site_summary(tables, extract_date, months) for tables in site_tables), model_rows)


def from_summaries(summaries: Iterable[tuple[pd.DataFrame, pd.DataFrame]],
                   model_rows: list[pd.DataFrame] | None = None) -> pd.DataFrame:
    """The national table from each site's :func:`site_summary` (made anywhere: a build makes
    them in its workers), in the order given; ``model_rows`` receives the model rows."""
    frames = []
    for indicators, rows in summaries:
        frames.append(indicators)
        if model_rows is not None:
            model_rows.append(rows)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def sites_of(national: pd.DataFrame) -> pd.DataFrame:
    """One row per site of a national table: what peer groups are formed on."""
    return national.drop_duplicates("site_code")[["site_code", "site_name", "region", "population", "imd_score"]]

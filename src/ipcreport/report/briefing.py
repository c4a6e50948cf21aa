"""Everything a site briefing shows, computed in one call from the site's data.

The site notebook calls :func:`analyse_site` once and then presents its sections
(:mod:`ipcreport.report.sections`), so the numbers can be tested without a kernel and the notebook
stays thin. Every headline figure is recorded in the run's :class:`~ipcreport.report.results.Metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import disclosure
from ..analysis import allocation as A
from ..analysis import risk as R
from ..analysis import indicators as I
from ..data.dataset import SITE_META_FILE, SiteData, load_dataset, site_tables
from .present import money, pct, probability
from .results import Metrics
from .sections import allocation, compare, outcomes, quality, risk


@dataclass(frozen=True)
class Settings:
    """Run settings a site notebook receives as papermill parameters."""

    reporting_months: int = 12
    risk: R.RiskAssumptions = field(default_factory=R.RiskAssumptions)
    comparisons: compare.CompareSettings = field(default_factory=compare.CompareSettings)
    # The site's pooled fund for budgets, GBP a year by funder (nhs, social_care, education), as
    # in its section 75 agreement: this year's, and next year's (None: the same as this year's).
    pooled_fund: dict | None = None
    pooled_fund_next: dict | None = None

    @property
    def fund_next_year(self) -> dict | None:
        return self.pooled_fund_next if self.pooled_fund_next is not None else self.pooled_fund


@dataclass
class SiteResults:
    site: pd.Series
    window: A.Window
    allocation: allocation.Allocation
    outcomes: outcomes.Outcomes
    risk: risk.Risk
    compare: compare.Compare
    row_counts: pd.Series
    warnings: list[str]
    metrics: Metrics


def analyse_site(data: SiteData, settings: Settings = Settings(), national: pd.DataFrame | None = None) -> SiteResults:
    """Every section of one site's briefing. ``national`` is every site's indicator table
    (:func:`load_national`); without it the site is not compared with others."""
    extract = data.extract_date
    window = A.Window.ending(extract, settings.reporting_months)
    metrics = Metrics(data.site_code, data.dataset, extract.date().isoformat(), data.data_sha256)
    site = data.site
    metrics.update({"site_name": site["site_name"], "region": site["region"], "population": int(site["population"]),
                    "synthetic": data.synthetic})
    alloc = allocation.compute(data, window, metrics, settings.pooled_fund)
    outs = outcomes.compute(data, metrics)
    risks = risk.compute(data, alloc, settings.risk, metrics, settings.fund_next_year)
    compared = compare.compute(data, alloc, national, metrics, settings=settings.comparisons)
    for warning in quality.published_warnings(data.warnings, disclosure.DEFAULT):
        metrics.note(f"data warning: {warning}")
    return SiteResults(
        site=site, window=window, allocation=alloc, outcomes=outs, risk=risks, compare=compared,
        row_counts=pd.Series({name: len(frame) for name, frame in data.tables.items()}, name="rows"),
        warnings=list(data.warnings), metrics=metrics,
    )


def load_national(national_path: str | Path | None, data_path: str | Path, months: int = 12) -> pd.DataFrame | None:
    """Every site's indicators: the table a build wrote (``national_path``), or computed from
    the dataset when a notebook is run by hand on a whole dataset folder; None for a lone
    site partition."""
    if national_path:
        return pd.read_csv(national_path, dtype={"site_code": str})
    if (Path(data_path) / SITE_META_FILE).exists():
        return None
    dataset = load_dataset(data_path)
    return I.national_table([site_tables(dataset, c) for c in dataset.site_codes], dataset.meta.extract_date, months)


def headline_table(r: SiteResults, policy: disclosure.Policy = disclosure.DEFAULT) -> pd.DataFrame:
    m = r.metrics.values
    if not disclosure.enough(m["people_ipc"] or 0, policy):  # a median of a few is a person's budget
        return pd.DataFrame({"Value": {"Budget figures": f"withheld: fewer than {policy.threshold + 1} budget holders"}})
    rows = {
        "Agreed budgets in the reporting year (pro-rated to its days)": money(m["budget_total"]),
        "Spent through budgets in the reporting year": money(m["spend_in_year"]),
        "Committed a year to budgets live on the extract date": money(m["budget_committed_annual"]),
        "Median budget per year of care": money(m["budget_median"]),
        "Utilisation of completed budgets": pct(m["utilisation"]),
        "Agreed budget against the allocation system's figure (median ratio; 1 = equal)":
            "not available" if m["ras_agreed_ratio_median"] is None else f"{m['ras_agreed_ratio_median']:.2f}",
        "Budgets for needs no service met before": money(m["new_need_cost"]),
        "Net new money (budgets minus the same people's prior service cost)": money(m["net_new_money"]),
        "Double running, next 12 months (phased roll-out)": money(m["double_running_cost"]),
        "Double running, next 12 months (fast roll-out)": money(m.get("double_running_cost_fast")),
        "Spend forecast, next 12 months": "not available" if m["spend_forecast"] is None
        else f"{money(m['spend_forecast'])} ({money(m['spend_p05'])} to {money(m['spend_p95'])})",
        "Chance of spend exceeding the pooled fund": "no pooled fund given" if m["pooled_fund"] is None
        else probability(m["overspend_probability"]),
    }
    return pd.DataFrame({"Value": rows})


def provenance_table(r: SiteResults, data: SiteData, params_file: str | None, run_date: str) -> pd.DataFrame:
    return pd.DataFrame({"Value": {
        "Site": f"{r.site['site_name']} ({data.site_code})",
        "Dataset": data.dataset,
        "Extract date": f"{data.extract_date:%Y-%m-%d}",
        "Synthetic data": "yes" if data.synthetic else "no",
        "Data hash (SHA-256, first 12)": data.data_sha256[:12],
        "Package version": r.metrics.values["package_version"],
        "Parameters file": Path(params_file).name if params_file else "defaults (no parameters file)",
        "Run date": run_date,
    }})


def definitions(settings: Settings, policy: disclosure.Policy) -> dict[str, str]:
    """Every term and method the briefing uses: its methods section and its downloads' sheet."""
    k = settings.risk
    return {
        "Reporting year": f"The {settings.reporting_months} months ending on the dataset's extract date.",
        "Budget holder": "A person with a personal (IPC) budget; the comparison group are similar people without one.",
        "Money in the year": "A year of care runs from each holder's own start date, so two of a continuing holder's "
                             "periods touch any 12-month window. Each period's agreed budget, and each funder's "
                             "part of it, counts for its days inside the reporting year over its days in all "
                             "(both end days included): a period of 365 days with 100 inside the year counts "
                             "100/365 of its budget. Shares by funder, cohort and holding mode use the same money.",
        "Committed a year": "The agreed budgets of the periods live on the extract date, each scaled to 365 days.",
        "Spent in the year": "Budget spend net of refunds in the months of the reporting year; split between funders "
                             "by the funder shares of the budget period it was spent from.",
        "Money bridge": "Per funder: agreed budgets in the year, spend in the year, unspent (agreed minus spent), of "
                        "which direct-payment money agreed for the year but not spent in it (per period, where "
                        "positive), the pooled fund from the run's parameters, and the pooled fund minus spend.",
        "Net new money": "Agreed budgets in the year minus what the same people's services cost in the 12 months "
                         "before they started, over the same days (their prior service cost per day x the days their "
                         "budgets cover in the year).",
        "Indicative budget": "The budget the resource allocation system (RAS) gives for the assessed need.",
        "Utilisation": "Spend, net of refunds, over agreed budget for budget periods completed by the extract date, "
                       "leaving out periods cut short because the holder left (died, moved or left the programme).",
        "Calibration": "Log agreed budget regressed on log indicative budget (least squares, robust HC3 errors); "
                       "an elasticity of 1 means agreed budgets scale with the RAS.",
        "Fairness": "Each holder's log agreed budget regressed on log need score, cohort, age band, sex and "
                    "deprivation quintile (robust errors); groups of fewer than 20 people are pooled; a joint "
                    "F-test asks whether age, sex and deprivation matter at equal need. Cohort differences are "
                    "part of how the RAS sets budgets.",
        **outcomes.definitions(),  # rate ratio, exits, quality of life, balance, value for money
        "New need": "Agreed budgets in the year of people whose health and care services cost nothing in the 12 "
                    "months before they started: new cost, not moved cost.",
        "Double running": "Only money that moves into budgets after the extract date is counted: the growth under "
                          "the roll-out plan in each category's monthly budget spend (average of the latest three "
                          "months, people with a prior service cost only: new need displaces nothing), shared among "
                          "that category's block contracts by annual value. Notice is served as money moves; money "
                          "moving in month k is paid twice in months k to k + notice - 1, never past the contract's "
                          f"end nor above its monthly value; {k.release_share:.0%} of moved money can be released. "
                          f"Budget holders grow {k.enrolment_growth:.0%} a year: phased evenly over "
                          f"{k.horizon_months} months, or fast within {k.fast_rollout_months}. Money already in "
                          "budgets on the extract date is assumed released"
                          + (f", except {k.unreleased_share:.0%} of it, shown apart." if k.unreleased_share else "."),
        "Notice calendar": "For each contract, the date by which notice must be served for the reduction to take "
                           "effect as money first moves under the phased plan; each month of delay keeps one more "
                           "month of the year's moved money paid twice.",
        "Spend forecast": f"{k.draws:,} simulated years (seed {k.seed}). Today's holders spend their live budgets "
                          f"(renewed at a price uplift of {k.price_uplift:.1%}, standard deviation "
                          f"{k.price_uplift_sd:.1%}) until they leave, at the site's exit rate in the reporting year "
                          "(its uncertainty from the number of exits); new holders start evenly through the year, "
                          f"enough for {k.enrolment_growth:.0%} growth (standard deviation "
                          f"{k.enrolment_growth_sd:.0%}) plus those who leave, with budgets like the reporting year's "
                          "starters; each person uses a share of their budget around the site's utilisation, with its "
                          "spread between people. The interval is the 5th to 95th percentile.",
        "Pooled fund": ("The site's pooled fund for budgets from the run's parameters (GBP a year, by funder); the "
                        "chance of overspending is the share of simulated years above it."
                        if settings.fund_next_year else
                        "None was given for this site, so no chance of overspending is stated: a fund derived from "
                        "the same data would only restate the forecast."),
        "Forecast outturn": "This financial year (April to March): spend to the extract date plus the months left as "
                            "their share of next year's simulated spend.",
        "Evidence tags": "On the decision page: robust (from complete records, or an interval that rules out "
                         "chance), indicative (a projection from stated assumptions, or a signal that could still be "
                         "chance), data gap (the figure needs data or a setting the site has not supplied).",
        "Glossary": "ASCOT: the Adult Social Care Outcomes Toolkit, a social-care quality-of-life score (0 to 1). "
                    "EQ-5D: a health-related quality-of-life score (1 is full health). GHQ-12: a psychological "
                    "distress score. QALY: a quality-adjusted life year, a year in full health. RAS: the resource "
                    "allocation system that sets indicative budgets. Difference in differences: the change among "
                    "budget holders over the change among similar people. SPC: statistical process control (control "
                    "charts). Section 75: the NHS Act 2006 power under which NHS and councils pool funds.",
        "Disclosure control": f"Counts of people from 1 to {policy.threshold} are hidden ({disclosure.SUPPRESSED}) "
                              f"and others rounded to the nearest {policy.rounding}; where a hidden count could be "
                              "worked out from a total, more cells are hidden; means, rates and shares of groups "
                              "that small are not shown.",
        **compare.definitions(),
    }

"""Everything a site briefing shows, computed in one call from the site's data.

The site notebook calls :func:`analyse_site` once and then presents its sections
(:mod:`ipcreport.sections`), so the numbers can be tested without a kernel and the notebook
stays thin. Every headline figure is recorded in the run's :class:`~ipcreport.results.Metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import disclosure
from .analysis import allocation as A
from .analysis import risk as R
from .analysis import indicators as I
from .dataset import SITE_META_FILE, SiteData, load_dataset, site_tables
from .present import money, pct, probability
from .results import Metrics
from .sections import allocation, compare, outcomes, quality, risk


@dataclass(frozen=True)
class Settings:
    """Run settings a site notebook receives as papermill parameters."""

    reporting_months: int = 12
    risk: R.RiskAssumptions = field(default_factory=R.RiskAssumptions)


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
    alloc = allocation.compute(data, window, metrics)
    outs = outcomes.compute(data, metrics)
    risks = risk.compute(data, alloc, settings.risk, metrics)
    compared = compare.compute(data, alloc, national, metrics)
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


def key_messages(r: SiteResults) -> list[str]:
    """The briefing's opening: the first message of each section, in plain words."""
    a = r.allocation
    msgs = allocation.holders_messages(a)[:1]
    msgs += allocation.use_messages(a)[:1]
    msgs += outcomes.messages(r.outcomes)
    msgs += risk.messages(r.risk)[::2]  # double running and overspend
    return msgs


def headline_table(r: SiteResults, policy: disclosure.Policy = disclosure.DEFAULT) -> pd.DataFrame:
    m = r.metrics.values
    if not disclosure.enough(m["people_ipc"] or 0, policy):  # a median of a few is a person's budget
        return pd.DataFrame({"Value": {"Budget figures": f"withheld: fewer than {policy.threshold + 1} budget holders"}})
    rows = {
        "Agreed budgets in the reporting year": money(m["budget_total"]),
        "Median budget per year of care": money(m["budget_median"]),
        "Utilisation of completed budgets": pct(m["utilisation"]),
        "Median agreed / indicative budget": "not available" if m["ras_agreed_ratio_median"] is None
        else f"{m['ras_agreed_ratio_median']:.2f}",
        "Budgets for needs no service met before": money(m["new_need_cost"]),
        "Double running, next 12 months (phased roll-out)": money(m["double_running_cost"]),
        "Chance of overspending next year": probability(m["overspend_probability"]),
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
        "Budgets": "Agreed budgets of budget periods (years of care) overlapping the reporting year.",
        "Indicative budget": "The budget the resource allocation system (RAS) gives for the assessed need.",
        "Utilisation": "Spend, net of refunds, over agreed budget for budget periods completed by the extract date.",
        "Calibration": "Log agreed budget regressed on log indicative budget (least squares, robust HC3 errors); "
                       "an elasticity of 1 means agreed budgets scale with the RAS.",
        "Fairness": "Each holder's log agreed budget regressed on log need score, cohort, age band, sex and "
                    "deprivation quintile (robust errors); groups of fewer than 20 people are pooled; a joint "
                    "F-test asks whether age, sex and deprivation matter at equal need. Cohort differences are "
                    "part of how the RAS sets budgets.",
        "Rate ratio": "From a Poisson model of events with person-years at risk as exposure and person-clustered "
                      "robust errors: the budget holders' change from the 12 months before to the 12 months after "
                      "their start, over the comparison group's change (difference in differences).",
        "Quality-of-life difference": "Follow-up score regressed on baseline score, group, cohort, age and need "
                                      "score (robust HC3 errors): the adjusted difference, budget holders minus "
                                      "comparison.",
        "New need": "Agreed budgets of people whose health and care services cost nothing in the 12 months "
                    "before they started: new cost, not moved cost.",
        "Double running": "Budget spend in a category displaces block-contract spend in the same category; notice "
                          "to reduce a contract is served as money moves and takes effect after the contract's "
                          "notice period; until then, and never past the contract's end, the money is paid twice. "
                          f"Budget holders grow {k.enrolment_growth:.0%} a year: phased over {k.horizon_months} "
                          f"months, or fast within {k.fast_rollout_months}.",
        "Overspend": f"{k.draws:,} simulated years (seed {k.seed}): enrolment pace around the plan (standard "
                     f"deviation {k.enrolment_growth_sd:.0%}), mean budget and utilisation around the site's "
                     "completed periods with their standard errors, plus the spread of a sum of individual spends. "
                     "The pooled budget funds the planned number of holders at today's mean budget.",
        "Disclosure control": f"Counts of people from 1 to {policy.threshold} are hidden ({disclosure.SUPPRESSED}) "
                              f"and others rounded to the nearest {policy.rounding}; where a hidden count could be "
                              "worked out from a total, more cells are hidden; means, rates and shares of groups "
                              "that small are not shown.",
    }

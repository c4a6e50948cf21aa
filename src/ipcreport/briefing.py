"""Everything a site briefing shows, computed in one call from the site's data.

The site notebook calls :func:`analyse_site` once and then presents its sections
(:mod:`ipcreport.sections`), so the numbers can be tested without a kernel and the notebook
stays thin. Every headline figure is recorded in the run's :class:`~ipcreport.results.Metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .analysis import allocation as A
from .analysis import risk as R
from .dataset import SiteData
from .present import money, pct, probability
from .results import Metrics
from .sections import allocation, outcomes, risk


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
    row_counts: pd.Series
    warnings: list[str]
    metrics: Metrics


def analyse_site(data: SiteData, settings: Settings = Settings()) -> SiteResults:
    extract = data.extract_date
    window = A.Window.ending(extract, settings.reporting_months)
    metrics = Metrics(data.site_code, data.dataset, extract.date().isoformat(), data.data_sha256)
    site = data.site
    metrics.update({"site_name": site["site_name"], "region": site["region"], "population": int(site["population"]),
                    "synthetic": data.synthetic})
    alloc = allocation.compute(data, window, metrics)
    outs = outcomes.compute(data, metrics)
    risks = risk.compute(data, alloc, settings.risk, metrics)
    for warning in data.warnings:
        metrics.note(f"data warning: {warning}")
    return SiteResults(
        site=site, window=window, allocation=alloc, outcomes=outs, risk=risks,
        row_counts=pd.Series({name: len(frame) for name, frame in data.tables.items()}, name="rows"),
        warnings=list(data.warnings), metrics=metrics,
    )


def key_messages(r: SiteResults) -> list[str]:
    """The briefing's opening: the first message of each section, in plain words."""
    a = r.allocation
    msgs = allocation.holders_messages(a)[:1]
    msgs += allocation.use_messages(a)[:1]
    msgs += outcomes.messages(r.outcomes)
    msgs += risk.messages(r.risk)[::2]  # double running and overspend
    return msgs


def headline_table(r: SiteResults) -> pd.DataFrame:
    m = r.metrics.values
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


def provenance_table(r: SiteResults, data: SiteData) -> pd.DataFrame:
    return pd.DataFrame({"Value": {
        "Site": f"{r.site['site_name']} ({data.site_code})",
        "Dataset": data.dataset,
        "Extract date": f"{data.extract_date:%Y-%m-%d}",
        "Synthetic data": "yes" if data.synthetic else "no",
        "Data hash (SHA-256, first 12)": data.data_sha256[:12],
        "Package version": r.metrics.values["package_version"],
    }})

"""Gather every site's headline results for the national overview."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .analysis import funnel as F
from .analysis import indicators as I
from .briefing import Settings, analyse_site
from .dataset import site_data, load_dataset
from .results import METRICS_FILE, read_metrics


def metrics_from_runs(metrics_dir: str | Path, sites: list[str] | None = None) -> pd.DataFrame:
    """One row per site from ``<metrics_dir>/<site>/metrics.json`` (what a build wrote)."""
    rows = []
    for path in sorted(Path(metrics_dir).glob(f"*/{METRICS_FILE}")):
        if sites is None or path.parent.name in sites:
            rows.append(read_metrics(path))
    return pd.DataFrame(rows)


def metrics_from_dataset(data_path: str | Path, settings: Settings = Settings()) -> pd.DataFrame:
    """The same table computed directly from a dataset (an analyst's run without a build)."""
    dataset = load_dataset(data_path)
    rows = []
    for code in dataset.site_codes:
        rows.append(analyse_site(site_data(dataset, code), settings).metrics.values)
    return pd.DataFrame(rows)


FUNNEL_INDICATORS = ("direct_payment_share", "under_70_share", "follow_up_share", "emergency_rate")


def funnels(national: pd.DataFrame) -> dict[str, F.Funnel]:
    """Funnel plots (95% and 99.8% exact limits around the pooled value) of the key proportions
    and rates, one per indicator, every site a point."""
    out = {}
    for key in FUNNEL_INDICATORS:
        table = national[(national["indicator"] == key) & (national["denominator"] > 0)]
        if len(table) >= 2:
            out[key] = F.funnel(table.assign(unit=table["site_name"]), I.INDICATORS[key].kind, unit="unit",
                                numerator="numerator", denominator="denominator")
    return out


def flagged(funnels_by_key: dict[str, F.Funnel]) -> pd.DataFrame:
    """Sites outside a funnel's 95% limits: which indicator, how far, which side."""
    rows = []
    for key, result in funnels_by_key.items():
        ind = I.INDICATORS[key]
        for unit in result.units[result.units["flag"] != "within"].itertuples():
            value = unit.value * ind.multiplier
            rows.append({"Site": unit.unit, "Indicator": ind.name,
                         "Value": f"{value:.1f}%" if ind.unit == "%" else f"{value:.2f}",
                         "England": f"{result.target * ind.multiplier:.1f}%" if ind.unit == "%"
                         else f"{result.target * ind.multiplier:.2f}",
                         "Outside": unit.flag.replace("_", " ")})
    return pd.DataFrame(rows, columns=["Site", "Indicator", "Value", "England", "Outside"])


MONEY_COLUMNS = {
    "budget_total": "Agreed budgets in the year",
    "spend_in_year": "Spent in the year",
    "budget_committed_annual": "Committed a year",
    "net_new_money": "Net new money",
    "double_running_cost": "Double running, phased",
    "double_running_cost_fast": "Double running, fast",
    "spend_forecast": "Spend forecast, next year",
    "pooled_fund": "Pooled fund, next year",
}


def money_by_site(m: pd.DataFrame) -> pd.DataFrame:
    """Every site's money figures (GBP, the same definitions as the site briefings) and their sum.

    A column's total is left missing when any site lacks the figure, so a total never silently
    leaves a site out.
    """
    table = m.set_index("site_name")[[c for c in MONEY_COLUMNS if c in m]].astype(float)
    total = table.sum(min_count=1).where(table.notna().all())
    table.loc["All sites"] = total
    return table.rename(columns=MONEY_COLUMNS)

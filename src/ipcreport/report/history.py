"""Since last quarter: every published run's headline figures, kept to compare extracts.

A Parquet table (``reports/history.parquet``) with one row per run, site, dataset extract date
and figure: its value and, where the figure has one, its 95% (or 90%, for forecasts) interval.
Only headline figures go in: money, rates, ratios and shares, never a count of people, so the
table is as publishable as the briefings it comes from. A build appends its sites after
publishing; a briefing whose site has an earlier extract shows what changed since.

Whether a change is beyond chance is asked only of figures estimated with an interval: the two
estimates' difference against its standard error, taken from each interval as if the extracts
were independent (they share people, so this errs towards "could be chance"). Money counted
from records changes for real; it carries no test.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ["run", "site_code", "extract_date"]
COLUMNS = [*KEYS, "figure", "value", "low", "high"]
Z95 = 1.959964
# figure -> (label, metrics keys of value, low, high, interval z, kind); kind: money, ratio, share, diff, probability.
FIGURES = {
    "budget_total": ("Agreed budgets in the year", ("budget_total", None, None), None, "money"),
    "spend_in_year": ("Spent in the year", ("spend_in_year", None, None), None, "money"),
    "budget_committed_annual": ("Committed a year", ("budget_committed_annual", None, None), None, "money"),
    "net_new_money": ("Net new money", ("net_new_money", None, None), None, "money"),
    "utilisation": ("Utilisation of completed budgets", ("utilisation", None, None), None, "share"),
    "double_running_cost": ("Double running, next 12 months (phased)", ("double_running_cost", None, None), None, "money"),
    "spend_forecast": ("Spend forecast, next 12 months", ("spend_forecast", "spend_p05", "spend_p95"), 1.644854, "money"),
    "overspend_probability": ("Chance of exceeding the pooled fund", ("overspend_probability", None, None), None,
                              "probability"),
    "admissions_irr": ("Emergency admissions, rate ratio",
                       ("admissions_irr", "admissions_irr_low", "admissions_irr_high"), Z95, "ratio"),
    "bed_days_irr": ("Emergency bed days, rate ratio", ("bed_days_irr", "bed_days_irr_low", "bed_days_irr_high"),
                     Z95, "ratio"),
    "ascot_diff": ("Social-care quality of life, difference", ("ascot_diff", "ascot_diff_low", "ascot_diff_high"),
                   Z95, "diff"),
    "eq5d_diff": ("Health-related quality of life, difference", ("eq5d_diff", "eq5d_diff_low", "eq5d_diff_high"),
                  Z95, "diff"),
}


def rows_from_metrics(run: str, metrics: list[dict]) -> pd.DataFrame:
    """The history rows of one run: each site's headline figures from its metrics.json."""
    rows = []
    for m in metrics:
        if not (m.get("site_code") and m.get("extract_date")):  # not a site's record: nothing to compare
            continue
        for figure, (_, (value, low, high), _, _) in FIGURES.items():
            if m.get(value) is None:
                continue
            rows.append({"run": run, "site_code": m["site_code"], "extract_date": m["extract_date"], "figure": figure,
                         "value": float(m[value]), "low": _float(m.get(low)), "high": _float(m.get(high))})
    return pd.DataFrame(rows, columns=COLUMNS)


def _float(value) -> float:
    return np.nan if value is None else float(value)


def read(path: str | Path | None) -> pd.DataFrame:
    """The history table, or an empty one when none has been written (or no path is given)."""
    if path is None or not Path(path).exists():
        return pd.DataFrame(columns=COLUMNS)
    return pd.read_parquet(Path(path))


def append(path: str | Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Add a run's rows, replacing any earlier rows of the same run, site and extract (a rebuild
    of the same extract), and write the table atomically."""
    path = Path(path)
    old = read(path)
    if not rows.empty and not old.empty:
        replaced = old.set_index(KEYS).index.isin(rows.set_index(KEYS).index)
        old = old[~replaced]
    frames = [t for t in (old, rows) if not t.empty]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    table = table.sort_values(KEYS + ["figure"]).reset_index(drop=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    table.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return table


def previous(history: pd.DataFrame, site_code: str, extract_date: str) -> pd.DataFrame:
    """The site's figures from its latest extract before ``extract_date`` (any run)."""
    mine = history[(history["site_code"] == site_code) & (history["extract_date"] < extract_date)]
    if mine.empty:
        return mine
    latest = mine["extract_date"].max()
    mine = mine[mine["extract_date"] == latest]
    return mine[mine["run"] == mine["run"].iloc[-1]]


def previous_by_site(history: pd.DataFrame, extract_date: str) -> dict[str, pd.DataFrame]:
    """:func:`previous` of every site that has one, in one pass over the history (a build plans
    153 sites; one filter of the whole history per site was a third of a no-change rebuild)."""
    before = history[history["extract_date"] < extract_date]
    before = before[before["extract_date"] == before.groupby("site_code")["extract_date"].transform("max")]
    before = before[before["run"] == before.groupby("site_code")["run"].transform("last")]
    return {code: rows for code, rows in before.groupby("site_code", sort=False)}


def _se(row: pd.Series, z: float | None, kind: str) -> float:
    """Standard error from an interval (on the log scale for ratios)."""
    if z is None or pd.isna(row["low"]) or pd.isna(row["high"]):
        return np.nan
    if kind == "ratio":
        return (np.log(row["high"]) - np.log(row["low"])) / (2 * z)
    return (row["high"] - row["low"]) / (2 * z)


def changes(history: pd.DataFrame, current: pd.DataFrame, site_code: str, extract_date: str) -> pd.DataFrame:
    """What changed since the site's previous extract: one row per figure, with value then, now,
    the change, and for estimated figures whether the change is beyond chance (|z| > 1.96).

    ``current`` holds this run's rows (:func:`rows_from_metrics`). Empty when there is no
    earlier extract.
    """
    before = previous(history, site_code, extract_date)
    now = current[current["site_code"] == site_code]
    if before.empty or now.empty:
        return pd.DataFrame(columns=["figure", "label", "kind", "then", "now", "change", "beyond_chance", "then_extract"])
    merged = before.merge(now, on="figure", suffixes=("_then", "_now"))
    out = []
    for row in merged.itertuples(index=False):
        label, _, z, kind = FIGURES[row.figure]
        then = pd.Series({"low": row.low_then, "high": row.high_then})
        this = pd.Series({"low": row.low_now, "high": row.high_now})
        se = np.hypot(_se(then, z, kind), _se(this, z, kind))
        if kind == "ratio":
            diff, change = np.log(row.value_now) - np.log(row.value_then), row.value_now / row.value_then - 1
        else:
            diff = change = row.value_now - row.value_then
        beyond = None if np.isnan(se) or se == 0 else bool(abs(diff / se) > Z95)
        out.append({"figure": row.figure, "label": label, "kind": kind, "then": row.value_then, "now": row.value_now,
                    "change": change, "beyond_chance": beyond, "then_extract": row.extract_date_then})
    order = list(FIGURES)
    return pd.DataFrame(out).sort_values("figure", key=lambda s: s.map(order.index)).reset_index(drop=True)

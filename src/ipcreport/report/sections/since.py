"""Since the last extract: what changed in the headline figures, as the briefing shows it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import history as H
from ..present import money, pct, probability


def _show(value: float, kind: str) -> str:
    if pd.isna(value):
        return "not available"
    return {"money": money, "share": pct, "probability": probability}.get(kind, "{:.2f}".format)(value) \
        if kind != "diff" else f"{value:+.3f}"


def _change(row) -> str:
    """The change as the table prints it; "no change" where the printed values are the same
    (a "+0 points" beside two equal figures reads as an error)."""
    if _show(row.then, row.kind) == _show(row.now, row.kind):
        return "no change"
    if row.kind == "money":
        return ("+" if row.change >= 0 else "-") + money(abs(row.change))
    if row.kind in ("share", "probability"):
        return f"{100 * row.change:+.0f} points"
    if row.kind == "ratio":
        return f"{row.change:+.0%}"
    return f"{row.change:+.3f}"


# Figures that are projections from stated assumptions: not counted, and not tested against chance.
PROJECTIONS = ("double_running_cost", "overspend_probability")


def _verdict(figure: str, beyond: bool | None) -> str:
    if beyond is not None:
        return "yes" if beyond else "no"
    return "not tested (a projection)" if figure in PROJECTIONS else "not tested (counted, not estimated)"


def table(changes: pd.DataFrame) -> pd.DataFrame:
    """The published table: each figure then, now, the change and whether chance could explain it."""
    return pd.DataFrame({
        "Then": [_show(v, k) for v, k in zip(changes["then"], changes["kind"])],
        "Now": [_show(v, k) for v, k in zip(changes["now"], changes["kind"])],
        "Change": [_change(row) for row in changes.itertuples()],
        "Beyond chance": [_verdict(f, None if b is None or pd.isna(b) else bool(b))
                          for f, b in zip(changes["figure"], changes["beyond_chance"])],
    }, index=changes["label"].to_numpy())


def site_changes(history_path: str | Path | None, metrics: dict) -> pd.DataFrame:
    """This site's changes since its previous extract in the history (empty without one)."""
    if not history_path:
        return pd.DataFrame()
    current = H.rows_from_metrics("current", [metrics])
    return H.changes(H.read(history_path), current, metrics["site_code"], metrics["extract_date"])


def sentence(changes: pd.DataFrame) -> str:
    """What changed, in words: estimates beyond chance, and a projected risk that moved a lot."""
    then = pd.Timestamp(changes["then_extract"].iloc[0])
    beyond = changes[changes["beyond_chance"].fillna(False).astype(bool)]
    named = ", ".join(beyond["label"].str.lower())
    text = (f"Compared with the extract of {then:%d %B %Y}: " +
            (f"{named} changed by more than chance alone would give" if named else
             "no estimated figure changed by more than chance alone would give; money figures are counted, "
             "so their changes are real"))
    risk = changes[(changes["figure"] == "overspend_probability") & ((changes["now"] - changes["then"]).abs() >= 0.1)]
    for row in risk.itertuples():
        text += (f". The projected chance of exceeding the pooled fund went from {_show(row.then, row.kind)} to "
                 f"{_show(row.now, row.kind)}")
    return text + ".\n"


OVERVIEW_FIGURES = ("budget_total", "spend_in_year", "double_running_cost", "admissions_irr")


def overview_table(history_path: str | Path | None, metrics: pd.DataFrame) -> pd.DataFrame:
    """Across sites: the main figures since each site's previous extract, one row per site and
    one column per figure ("then to now (change)"), so the table fits a page; sites without an
    earlier extract are left out."""
    rows = {}
    for m in metrics.to_dict("records"):
        changes = site_changes(history_path, m)
        changes = changes[changes["figure"].isin(OVERVIEW_FIGURES)] if not changes.empty else changes
        if changes.empty:  # no history, or no earlier extract of this site
            continue
        shown = table(changes)
        cells = {}
        for label, row, beyond in zip(shown.index, shown.itertuples(), changes["beyond_chance"]):
            cells[label] = f"{row.Then} to {row.Now} ({row.Change})" + (" beyond chance" if beyond is True else "")
        rows[m["site_name"]] = cells
    return pd.DataFrame.from_dict(rows, orient="index") if rows else pd.DataFrame()

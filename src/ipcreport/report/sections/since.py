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
    if row.kind == "money":
        return ("+" if row.change >= 0 else "-") + money(abs(row.change))
    if row.kind in ("share", "probability"):
        return f"{100 * row.change:+.0f} points"
    if row.kind == "ratio":
        return f"{row.change:+.0%}"
    return f"{row.change:+.3f}"


VERDICT = {True: "yes", False: "no", None: "not tested (counted, not estimated)"}


def table(changes: pd.DataFrame) -> pd.DataFrame:
    """The published table: each figure then, now, the change and whether chance could explain it."""
    return pd.DataFrame({
        "Then": [_show(v, k) for v, k in zip(changes["then"], changes["kind"])],
        "Now": [_show(v, k) for v, k in zip(changes["now"], changes["kind"])],
        "Change": [_change(row) for row in changes.itertuples()],
        "Beyond chance": [VERDICT[b if b is None else bool(b)] for b in changes["beyond_chance"]],
    }, index=changes["label"].to_numpy())


def site_changes(history_path: str | Path | None, metrics: dict) -> pd.DataFrame:
    """This site's changes since its previous extract in the history (empty without one)."""
    if not history_path:
        return pd.DataFrame()
    current = H.rows_from_metrics("current", [metrics])
    return H.changes(H.read(history_path), current, metrics["site_code"], metrics["extract_date"])


def sentence(changes: pd.DataFrame) -> str:
    then = pd.Timestamp(changes["then_extract"].iloc[0])
    beyond = changes[changes["beyond_chance"].fillna(False).astype(bool)]
    named = ", ".join(beyond["label"].str.lower())
    return (f"Compared with the extract of {then:%d %B %Y}: " +
            (f"{named} changed by more than chance alone would give." if named else
             "no estimated figure changed by more than chance alone would give; money figures are counted, "
             "so their changes are real.") + "\n")


OVERVIEW_FIGURES = ("budget_total", "spend_in_year", "double_running_cost", "admissions_irr")


def overview_table(history_path: str | Path | None, metrics: pd.DataFrame) -> pd.DataFrame:
    """Across sites: the main figures since each site's previous extract (sites without one left out)."""
    frames = []
    for m in metrics.to_dict("records"):
        changes = site_changes(history_path, m)
        if changes.empty:  # no history, or no earlier extract of this site
            continue
        changes = changes[changes["figure"].isin(OVERVIEW_FIGURES)]
        if not changes.empty:
            shown = table(changes).reset_index(names="Figure")
            frames.append(shown.assign(Site=m["site_name"]).set_index(["Site", "Figure"]))
    return pd.concat(frames) if frames else pd.DataFrame()

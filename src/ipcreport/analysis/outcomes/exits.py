"""Exits and deaths after index by group: an outcome in its own right."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import DAYS_PER_YEAR, MIN_PEOPLE_PER_GROUP, Z95, Estimate, _none


EXIT_COLUMNS = ["group", "people", "person_years", "exits", "died", "moved", "left_programme", "unknown_reason",
                "exit_rate", "death_rate"]


def exits_by_group(people: pd.DataFrame, extract_date: pd.Timestamp) -> tuple[pd.DataFrame, dict[str, Estimate]]:
    """Exits and deaths after index by group: counts by reason, rates per 100 person-years
    (index to exit or extract date), and rate ratios budget holders / comparison (Wald interval
    on the log scale, sqrt(1/a + 1/b)) for all exits and for deaths."""
    p = people.copy()
    end = p["exit_date"].fillna(pd.Timestamp(extract_date))
    p["years"] = ((end - p["index_date"]).dt.days + 1) / DAYS_PER_YEAR
    reason = p["exit_reason"] if "exit_reason" in p.columns else pd.Series(pd.NA, index=p.index)
    exited = p["exit_date"].notna()
    rows = []
    for group in ("ipc", "comparison"):
        g = p["group"] == group
        r = reason[g & exited]
        rows.append({"group": group, "people": int(g.sum()), "person_years": float(p.loc[g, "years"].sum()),
                     "exits": int((g & exited).sum()), "died": int((r == "died").sum()),
                     "moved": int((r == "moved").sum()), "left_programme": int((r == "left_programme").sum()),
                     "unknown_reason": int(r.isna().sum())})
    table = pd.DataFrame(rows, columns=EXIT_COLUMNS[:-2]).set_index("group")
    table["exit_rate"] = 100 * table["exits"] / table["person_years"]
    table["death_rate"] = 100 * table["died"] / table["person_years"]
    ratios = {}
    for key, col in (("exits", "exits"), ("deaths", "died")):
        a, b = table.loc["ipc", col], table.loc["comparison", col]
        n = int(table["people"].sum())
        if min(table["people"]) < MIN_PEOPLE_PER_GROUP or min(a, b) < 5:
            ratios[key] = _none(n, f"too few {key} for a rate ratio ({a} budget holders, {b} comparison)")
            continue
        ratio = (a / table.loc["ipc", "person_years"]) / (b / table.loc["comparison", "person_years"])
        se = float(np.sqrt(1 / a + 1 / b))
        ratios[key] = Estimate(float(ratio), float(ratio * np.exp(-Z95 * se)), float(ratio * np.exp(Z95 * se)), n=n,
                               se=se)
    return table.reset_index(), ratios

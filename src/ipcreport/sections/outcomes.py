"""Do budget holders do better than the comparison group?"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import disclosure
from ..analysis import outcomes as O
from ..dataset import SiteData
from ..present import interval
from ..results import Metrics

LABELS = {
    "admissions": "Emergency admissions (rate ratio)",
    "bed_days": "Emergency bed days (rate ratio)",
    "ascot": "ASCOT social-care quality of life (difference)",
    "eq5d": "EQ-5D health-related quality of life (difference)",
}


@dataclass
class Outcomes:
    estimates: dict[str, O.Estimate]
    follow_up: pd.DataFrame


def compute(data: SiteData, metrics: Metrics) -> Outcomes:
    people, events, surveys = data["people"], data["events"], data["surveys"]
    estimates = {}
    for key, measure in (("admissions", "count"), ("bed_days", "bed_days")):
        panel = O.before_after_panel(people, events, "emergency_admission", data.extract_date, measure)
        estimates[key] = O.did_rate_ratio(panel)
        _record(metrics, f"{key}_irr", estimates[key])
    for key in ("ascot", "eq5d"):
        estimates[key] = O.ancova_difference(O.quality_of_life_panel(people, surveys, key))
        _record(metrics, f"{key}_diff", estimates[key])
    return Outcomes(estimates, O.follow_up_completeness(people, surveys))


def _record(metrics: Metrics, key: str, est: O.Estimate) -> None:
    if not est.available:
        for suffix in ("", "_low", "_high"):
            metrics.missing(key + suffix, est.reason or "not estimable")
        return
    metrics.update({key: est.value, f"{key}_low": est.low, f"{key}_high": est.high})


def estimates_table(o: Outcomes, policy: disclosure.Policy) -> pd.DataFrame:
    """One row per outcome: estimate and interval, or why there is none."""
    rows = {}
    for key, est in o.estimates.items():
        rows[LABELS[key]] = {
            "Estimate": f"{est.value:.3f}" if est.available else "not shown",
            "95% interval": f"{est.low:.3f} to {est.high:.3f}" if est.available else (est.reason or ""),
            "People in model": policy.publish_count(est.n),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def rate_ratio_rows(o: Outcomes) -> pd.DataFrame:
    names = {"admissions": "Emergency admissions", "bed_days": "Bed days"}
    rows = {names[k]: {"value": e.value, "low": e.low, "high": e.high}
            for k, e in o.estimates.items() if k in names and e.available}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["value", "low", "high"])


def messages(o: Outcomes) -> list[str]:
    msgs = []
    adm = o.estimates["admissions"]
    if adm.available:
        if adm.high < 1:
            finding = "fell more for budget holders than for the comparison group"
        elif adm.low > 1:
            finding = "rose more for budget holders than for the comparison group"
        else:
            finding = "changed no differently for budget holders than for the comparison group, within the uncertainty"
        msgs.append(f"Emergency admissions {finding}: rate ratio {interval(adm.value, adm.low, adm.high)}.")
    else:
        msgs.append(f"Emergency admissions: no estimate ({adm.reason}).")
    asc = o.estimates["ascot"]
    if asc.available:
        msgs.append(f"Social-care quality of life (ASCOT) at follow-up differed by "
                    f"{interval(asc.value, asc.low, asc.high, '{:+.3f}')} points, adjusting for baseline.")
    msgs.append("People chose to take a budget, so differences between the groups other than the budget "
                "cannot be ruled out.")
    return msgs

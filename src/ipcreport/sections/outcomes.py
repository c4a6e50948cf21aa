"""Do budget holders do better than the comparison group, and at what cost?

Emergency admissions and bed days by difference in differences (overall, by cohort, by how the
budget is held), A&E and care-home admissions where the data allow; quality of life by ANCOVA;
baseline balance with a propensity-weighted estimate beside the crude one where groups differ;
cost, QALYs and net monetary benefit with bootstrap intervals. The analyses are in
:mod:`ipcreport.analysis.outcomes` and :mod:`ipcreport.analysis.economics`; their validity
is shown in docs/validity.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import disclosure
from ..analysis import economics as E
from ..analysis import outcomes as O
from ..charts import label
from ..dataset import SiteData
from ..present import money, probability
from ..results import Metrics

LABELS = {
    "admissions": "Emergency admissions (rate ratio)",
    "bed_days": "Emergency bed days (rate ratio)",
    "ascot": "ASCOT social-care quality of life (difference)",
    "eq5d": "EQ-5D health-related quality of life (difference)",
}


@dataclass
class Outcomes:
    results: O.OutcomeResults
    economics: E.CostEffectiveness

    @property
    def estimates(self) -> dict[str, O.Estimate]:
        return {key: self.results.estimates[key] for key in LABELS}

    @property
    def follow_up(self) -> pd.DataFrame:
        return self.results.completeness


def compute(data: SiteData, metrics: Metrics) -> Outcomes:
    people, events, surveys = data["people"], data["events"], data["surveys"]
    results = O.analyse_outcomes(people, events, surveys, data.extract_date)
    economics = E.analyse_economics(people, data["budgets"], events, surveys, data.extract_date)
    for key, suffix in (("admissions", "_irr"), ("bed_days", "_irr"), ("ascot", "_diff"), ("eq5d", "_diff")):
        _record(metrics, key + suffix, results.estimates[key])
        if key in results.adjusted:
            _record(metrics, key + suffix + "_weighted", results.adjusted[key])
    metrics.record("imbalanced_covariates", results.imbalanced)
    if economics.available:
        _record(metrics, "cost_difference", economics.d_cost)
        _record(metrics, "qaly_difference", economics.d_qaly)
        for wtp, nmb in economics.nmb.items():
            _record(metrics, f"nmb_{wtp // 1000}k", nmb)
            metrics.record(f"p_cost_effective_{wtp // 1000}k", economics.p_cost_effective[wtp])
        metrics.record("icer", economics.icer)
    else:
        metrics.note(f"cost_difference: {economics.reason}")
    return Outcomes(results, economics)


def _record(metrics: Metrics, key: str, est: O.Estimate) -> None:
    if not est.available:
        for suffix in ("", "_low", "_high"):
            metrics.missing(key + suffix, est.reason or "not estimable")
        return
    metrics.update({key: est.value, f"{key}_low": est.low, f"{key}_high": est.high})


# ---------------------------------------------------------------------------------------------
# publishable tables: people counted only as rounded, suppressed counts


def estimates_table(o: Outcomes, policy: disclosure.Policy) -> pd.DataFrame:
    """One row per headline outcome: crude estimate and interval, the weighted one where the
    groups differed at baseline, or why there is none."""
    rows = {}
    for key, est in o.estimates.items():
        weighted = o.results.adjusted.get(key)
        rows[LABELS[key]] = {
            "Estimate": f"{est.value:.3f}" if est.available else "not shown",
            "95% interval": f"{est.low:.3f} to {est.high:.3f}" if est.available else (est.reason or ""),
            "Weighted for baseline differences": (f"{weighted.value:.3f} ({weighted.low:.3f} to {weighted.high:.3f})"
                                                  if weighted is not None and weighted.available else "not needed"
                                                  if not o.results.imbalanced else "not estimated"),
            "People in model": policy.publish_count(est.n),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def subgroup_rows(o: Outcomes, outcome: str = "admissions") -> pd.DataFrame:
    """The forest plot's rows for one outcome (counts are not drawn, only ratios)."""
    table = o.results.hospital_use
    return table[table["outcome"] == outcome].reset_index(drop=True)


def subgroup_table(o: Outcomes, policy: disclosure.Policy, outcome: str = "admissions") -> pd.DataFrame:
    t = subgroup_rows(o, outcome)
    shown = [f"{irr:.2f} ({lo:.2f} to {hi:.2f})" if pd.notna(irr) else f"not shown: {reason}"
             for irr, lo, hi, reason in zip(t["irr"], t["low"], t["high"], t["reason"])]
    return pd.DataFrame({
        "Breakdown": [O_DIMENSIONS.get(d, d) for d in t["dimension"]],
        "Rate ratio (95% CI)": shown,
        "Budget holders": disclosure.publish_counts(t["n_ipc"], policy, with_total=False).to_numpy(),
        "Comparison": disclosure.publish_counts(t["n_comparison"], policy, with_total=False).to_numpy(),
    }, index=["All people" if s == "all" else label(s) for s in t["subgroup"]])


O_DIMENSIONS = {"overall": "All", "cohort": "Cohort", "management": "Held as"}


def other_events_table(o: Outcomes) -> pd.DataFrame:
    """A&E attendances and care-home admissions, overall, where the data allow."""
    t = o.results.hospital_use
    t = t[(t["dimension"] == "overall") & t["outcome"].isin(["ae_attendances", "care_home_admissions"])]
    names = {"ae_attendances": "A&E attendances", "care_home_admissions": "Care-home admissions"}
    return pd.DataFrame({
        "Rate ratio (95% CI)": [f"{irr:.2f} ({lo:.2f} to {hi:.2f})" if pd.notna(irr) else f"not shown: {reason}"
                                for irr, lo, hi, reason in zip(t["irr"], t["low"], t["high"], t["reason"])],
    }, index=[names.get(k, label(k)) for k in t["outcome"]])


def quality_of_life_table(o: Outcomes, policy: disclosure.Policy) -> pd.DataFrame:
    t = o.results.quality_of_life
    names = {"ascot": "ASCOT (higher is better)", "eq5d": "EQ-5D (higher is better)",
             "ghq12": "GHQ-12 (higher is worse)"}
    fmt = lambda v: f"{v:.3f}" if pd.notna(v) else ""  # noqa: E731
    return pd.DataFrame({
        "Budget holders: start, a year on": [f"{fmt(a)}, {fmt(b)}" for a, b in zip(t["baseline_ipc"], t["follow_up_ipc"])],
        "Comparison: start, a year on": [f"{fmt(a)}, {fmt(b)}" for a, b in zip(t["baseline_comparison"],
                                                                               t["follow_up_comparison"])],
        "Adjusted difference (95% CI)": [f"{d:+.3f} ({lo:+.3f} to {hi:+.3f})" if pd.notna(d) else f"not shown: {r}"
                                         for d, lo, hi, r in zip(t["diff"], t["low"], t["high"], t["reason"])],
        "People": [policy.publish_count(n) for n in t["n"]],
    }, index=[names.get(m, m) for m in t["measure"]])


def balance_table(o: Outcomes) -> pd.DataFrame:
    b = o.results.balance
    names = getattr(O, "BALANCE_LABELS", {})
    return pd.DataFrame({
        "Budget holders": [f"{v:,.2f}" for v in b["mean_ipc"]],
        "Comparison": [f"{v:,.2f}" for v in b["mean_comparison"]],
        "Standardised difference": [f"{v:+.2f}" for v in b["smd"]],
    }, index=[names.get(c, label(c)) for c in b["covariate"]])


def value_table(o: Outcomes) -> pd.DataFrame:
    e = o.economics
    if not e.available:
        return pd.DataFrame({"Value": [e.reason]}, index=["Cost-effectiveness"])
    ci = lambda est, f: f"{f(est.value)} ({f(est.low)} to {f(est.high)})" if est.available else f"not shown: {est.reason}"  # noqa: E731
    rows = {"Extra cost per budget holder over the year": ci(e.d_cost, money),
            "QALYs gained per budget holder": ci(e.d_qaly, "{:+.3f}".format),
            "ASCOT gain": ci(e.d_ascot, "{:+.3f}".format)}
    for wtp, nmb in sorted(e.nmb.items()):
        rows[f"Net monetary benefit at {money(wtp)} per QALY"] = ci(nmb, money)
        rows[f"Chance cost-effective at {money(wtp)} per QALY"] = probability(e.p_cost_effective[wtp])
    return pd.DataFrame({"Value (95% CI)": rows})


def messages(o: Outcomes) -> list[str]:
    return O.key_messages(o.results, o.economics)

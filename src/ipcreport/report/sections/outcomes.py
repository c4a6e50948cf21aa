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
from ...analysis import economics as E
from ...analysis import outcomes as O
from ..charts import label
from ...data.dataset import SiteData
from ..present import current_policy, money, probability
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
        """The estimate the briefing headlines for each outcome: for hospital use the
        conditional DiD, propensity-weighted wherever the propensity model fits
        (:func:`ipcreport.analysis.outcomes.preferred`); for quality of life the ANCOVA."""
        return {key: headline(self.results, key) for key in LABELS}

    @property
    def follow_up(self) -> pd.DataFrame:
        return self.results.completeness


def headline(results: O.OutcomeResults, key: str) -> O.Estimate:
    """The estimate the briefing (its sentences, tables, metrics and the national pool) uses."""
    return O.headline_admissions(results, key)[1] if key in O.EVENT_OUTCOMES else results.estimates[key]


def compute(data: SiteData, metrics: Metrics) -> Outcomes:
    people, events, surveys = data["people"], data["events"], data["surveys"]
    results = O.analyse_outcomes(people, events, surveys, data.extract_date)
    services = data.tables.get("services")
    economics = E.analyse_economics(people, data["budgets"], events, surveys, data.extract_date, spend=data["spend"],
                                    services=services)
    for key, suffix in (("admissions", "_irr"), ("bed_days", "_irr"), ("ascot", "_diff"), ("eq5d", "_diff")):
        _record(metrics, key + suffix, headline(results, key))  # what the briefing headlines
        if key in O.EVENT_OUTCOMES:  # each person against themselves, unweighted
            _record(metrics, key + suffix + "_conditional", results.estimates[key])
        if key in results.adjusted:
            _record(metrics, key + suffix + "_weighted", results.adjusted[key])
        if key in results.crude:
            _record(metrics, key + suffix + "_crude", results.crude[key])
    adm = headline(results, "admissions")
    metrics.record("admissions_irr_log_se", adm.se)  # for pooling sites (national overview)
    metrics.record("admissions_mde_irr", O.minimum_detectable_ratio(adm.se) if adm.se else None)
    metrics.record("admissions_estimate_to_believe",  # the one the briefing's sentence points to
                   O.preferred(adm, results.adjusted.get("admissions"), results.balance))
    if results.pre_trend is not None:
        _record(metrics, "admissions_pre_trend_irr", results.pre_trend)
    _record_exits(metrics, results)
    metrics.record("imbalanced_covariates", results.imbalanced)
    metrics.record("people_follow_up_not_due", results.not_yet_due)
    _record_economics(metrics, economics)
    return Outcomes(results, economics)


def _record_exits(metrics: Metrics, results: O.OutcomeResults) -> None:
    t = results.exits.set_index("group") if not results.exits.empty else None
    if t is not None:
        for group in ("ipc", "comparison"):
            metrics.update({f"exit_rate_{group}": float(t.loc[group, "exit_rate"]),
                            f"death_rate_{group}": float(t.loc[group, "death_rate"])})
    for key, est in results.exit_ratios.items():
        _record(metrics, f"{key}_irr", est)


def _record_economics(metrics: Metrics, economics: E.CostEffectiveness) -> None:
    if not economics.available:
        metrics.note(f"cost_difference: {economics.reason}")
        return
    metrics.record("budget_cost_per_holder", economics.budget_cost)
    be = economics.break_even
    metrics.record("break_even_admissions_fall", be.fall if be is not None else None)
    metrics.update({"break_even_admissions_fall_low": be.low if be is not None else None,
                    "break_even_admissions_fall_high": be.high if be is not None else None})
    if not economics.comparable:
        metrics.note(f"cost_difference, nmb: not estimated: {E.NO_SERVICES}")
        return
    _record(metrics, "cost_difference", economics.d_cost)
    _record(metrics, "qaly_difference", economics.d_qaly)
    for wtp, nmb in economics.nmb.items():
        _record(metrics, f"nmb_{wtp // 1000}k", nmb)
        _record(metrics, f"nmb_ascot_{wtp // 1000}k", economics.nmb_ascot[wtp])
        if wtp in economics.p_cost_effective:
            metrics.record(f"p_cost_effective_{wtp // 1000}k", economics.p_cost_effective[wtp])
    metrics.record("icer", economics.icer)


def _record(metrics: Metrics, key: str, est: O.Estimate) -> None:
    if not est.available:
        for suffix in ("", "_low", "_high"):
            metrics.missing(key + suffix, est.reason or "not estimable")
        return
    metrics.update({key: est.value, f"{key}_low": est.low, f"{key}_high": est.high})


# ---------------------------------------------------------------------------------------------
# publishable tables: people counted only as rounded, suppressed counts


def _ci(est: O.Estimate | None, fmt="{:.3f}") -> str:
    """An estimate and its interval, or why there is none; ``fmt`` a format string or function."""
    if est is None:
        return "not estimated"
    if not est.available:
        return f"not shown: {est.reason}"
    f = fmt.format if isinstance(fmt, str) else fmt
    return f"{f(est.value)} ({f(est.low)} to {f(est.high)})"


def estimates_table(o: Outcomes, policy: disclosure.Policy) -> pd.DataFrame:
    """One row per headline outcome: the estimate the briefing headlines (:attr:`Outcomes.estimates`)
    with its interval and the people behind it. The sensitivity rows are in the appendix
    (:func:`sensitivity_table`)."""
    return pd.DataFrame.from_dict({
        LABELS[key]: {"Estimate (95% CI)": _ci(est), "People in model": policy.publish_count(est.n)}
        for key, est in o.estimates.items()}, orient="index")


def sensitivity_table(o: Outcomes) -> pd.DataFrame:
    """The headline estimates beside their sensitivity rows, for the appendix: for hospital use
    each person against themselves without weights and a model without person effects; for
    quality of life the propensity-weighted ANCOVA."""
    r = o.results
    return pd.DataFrame.from_dict({
        LABELS[key]: {
            "Headline (95% CI)": _ci(est),
            "Each person against themselves, unweighted": _ci(r.estimates[key]) if key in O.EVENT_OUTCOMES else "",
            "Without person effects": _ci(r.crude.get(key)) if key in O.EVENT_OUTCOMES else "",
            "Weighted for differences at the start": _ci(r.adjusted.get(key)),
        } for key, est in o.estimates.items()}, orient="index")


def exits_table(o: Outcomes, policy: disclosure.Policy) -> pd.DataFrame:
    """Exits and deaths after the start by group: counts (rounded, small ones hidden) and rates
    per 100 person-years (not shown where the count is hidden)."""
    t = o.results.exits
    if t.empty:
        return pd.DataFrame()
    t = t.set_index("group")
    out = {}
    for group, name in (("ipc", "Budget holders"), ("comparison", "Comparison")):
        r = t.loc[group]
        rate = lambda count, value: f"{value:.1f}" if count > policy.threshold else "not shown"  # noqa: E731
        out[name] = {
            "People": policy.publish_count(r["people"]),
            "Left, moved or died": policy.publish_count(r["exits"]),
            "Died": policy.publish_count(r["died"]),
            "Moved": policy.publish_count(r["moved"]),
            "Left the programme": policy.publish_count(r["left_programme"]),
            "Exits per 100 person-years": rate(r["exits"], r["exit_rate"]),
            "Deaths per 100 person-years": rate(r["died"], r["death_rate"]),
        }
    table = pd.DataFrame.from_dict(out, orient="index")
    ratios = {"exits": ("Rate ratio, all exits", "exits"), "deaths": ("Rate ratio, deaths", "died")}
    # a ratio beside a hidden rate would give that rate back (the other group's is printed)
    ratio_cell = lambda key, count: (_ci(o.results.exit_ratios.get(key), "{:.2f}")  # noqa: E731
                                     if (t[count] > policy.threshold).all() else "not shown: too few to compare")
    extra = pd.DataFrame({col: [ratio_cell(k, count), "(reference)"] for k, (col, count) in ratios.items()},
                         index=table.index)
    return pd.concat([table, extra], axis=1)


def subgroup_rows(o: Outcomes, outcome: str = "admissions") -> pd.DataFrame:
    """The forest plot's rows for one outcome (counts are not drawn, only ratios)."""
    table = o.results.hospital_use
    return table[table["outcome"] == outcome].reset_index(drop=True)


def subgroup_table(o: Outcomes, policy: disclosure.Policy, outcome: str = "admissions") -> pd.DataFrame:
    """The breakdown by cohort and holding mode: each person against themselves, unweighted (the
    weighted model, the headline, is fitted for all people only), so its first row is labelled
    as the unweighted estimate: beside the headline it would otherwise read as a contradiction."""
    t = subgroup_rows(o, outcome)
    shown = [f"{irr:.2f} ({lo:.2f} to {hi:.2f})" if pd.notna(irr) else f"not shown: {reason}"
             for irr, lo, hi, reason in zip(t["irr"], t["low"], t["high"], t["reason"])]
    return pd.DataFrame({
        "Breakdown": [O_DIMENSIONS.get(d, d) for d in t["dimension"]],
        "Rate ratio (95% CI)": shown,
        "Budget holders": disclosure.publish_counts(t["n_ipc"], policy, with_total=False).to_numpy(),
        "Comparison": disclosure.publish_counts(t["n_comparison"], policy, with_total=False).to_numpy(),
    }, index=["All people (unweighted)" if s == "all" else label(s) for s in t["subgroup"]])


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
    """Mean scores by group, the adjusted (ANCOVA) difference and, beside it, the change-score
    difference (shown where the groups started apart: the two bracket the effect)."""
    t = o.results.quality_of_life
    names = {"ascot": "ASCOT (higher is better)", "eq5d": "EQ-5D (higher is better)",
             "ghq12": "GHQ-12 (higher is worse)"}
    fmt = lambda v: f"{v:.3f}" if pd.notna(v) else ""  # noqa: E731
    change = [f"{d:+.3f} ({lo:+.3f} to {hi:+.3f})" if apart and pd.notna(d) else "not needed (groups alike at start)"
              if pd.notna(d) else "" for d, lo, hi, apart in zip(t["change_diff"], t["change_low"], t["change_high"],
                                                                 t["baseline_apart"])]
    return pd.DataFrame({
        "Budget holders: start, a year on": [f"{fmt(a)}, {fmt(b)}" for a, b in zip(t["baseline_ipc"], t["follow_up_ipc"])],
        "Comparison: start, a year on": [f"{fmt(a)}, {fmt(b)}" for a, b in zip(t["baseline_comparison"],
                                                                               t["follow_up_comparison"])],
        "Adjusted difference (95% CI)": [f"{d:+.3f} ({lo:+.3f} to {hi:+.3f})" if pd.notna(d) else f"not shown: {r}"
                                         for d, lo, hi, r in zip(t["diff"], t["low"], t["high"], t["reason"])],
        "Change-score difference (95% CI)": change,
        "People": [policy.publish_count(n) for n in t["n"]],
    }, index=[names.get(m, m) for m in t["measure"]])


def balance_table(o: Outcomes) -> pd.DataFrame:
    b = o.results.balance
    names = getattr(O, "BALANCE_LABELS", {})
    chance = b["chance_smd"] if "chance_smd" in b.columns else pd.Series(float("nan"), index=b.index)
    return pd.DataFrame({
        "Budget holders": [f"{v:,.2f}" for v in b["mean_ipc"]],
        "Comparison": [f"{v:,.2f}" for v in b["mean_comparison"]],
        "Standardised difference": [f"{v:+.2f}" for v in b["smd"]],
        "Largest chance gives": [f"{v:.2f}" if pd.notna(v) and v < 10 else "" for v in chance],
        "Differ beyond chance": ["yes" if c in o.results.imbalanced else "no" for c in b["covariate"]],
    }, index=[names.get(c, label(c)) for c in b["covariate"]])


def value_table(o: Outcomes) -> pd.DataFrame:
    """Costs and value per budget holder over the follow-up year (NMB and chance cost-effective
    only where a services table makes the groups' costs comparable)."""
    e = o.economics
    if not e.available:
        return pd.DataFrame({"Value (95% CI)": [e.reason]}, index=["Cost-effectiveness"])
    rows = {"Budget spend per budget holder (NHS and social care)": money(e.budget_cost),
            "Education money per budget holder (apart)": money(e.education_cost)}
    if e.comparable:
        rows["Extra cost per budget holder over the year"] = _ci(e.d_cost, money)
        rows["QALYs gained per budget holder"] = _ci(e.d_qaly, "{:+.3f}".format)
        rows["ASCOT-years gained per budget holder"] = _ci(e.d_ascot, "{:+.3f}".format)
        for wtp, nmb in sorted(e.nmb.items()):
            rows[f"Net monetary benefit at {money(wtp)} per QALY (EQ-5D)"] = _ci(nmb, money)
            rows[f"Net monetary benefit at {money(wtp)} (ASCOT)"] = _ci(e.nmb_ascot.get(wtp), money)
            if wtp in e.p_cost_effective:
                rows[f"Chance cost-effective at {money(wtp)} per QALY"] = probability(e.p_cost_effective[wtp])
    else:
        rows["Extra cost, net monetary benefit"] = f"not shown: {E.NO_SERVICES}"
    be = e.break_even
    if be is not None and be.fall is not None:
        rows["Fall in emergency admissions to break even"] = f"{be.fall:.0%}" + (
            f" ({be.interval_words()})" if be.low is not None else "")
    return pd.DataFrame({"Value (95% CI)": rows})


def definitions() -> dict[str, str]:
    """The outcome and value-for-money terms for the briefing's methods section
    (docs/outcomes.md has the sources)."""
    return {
        "Rate ratio": "Difference in differences for the 12 months before and after each person's start: a "
                      "conditional Poisson model (a fixed effect per person, so each person is compared with "
                      "themselves and who leaves early cannot move it), with each window's time at risk as exposure "
                      "and robust errors. Below 1: budget holders' use fell more (or rose less) than the comparison "
                      "group's. Beside it: the same without person effects, and weighted so the comparison group "
                      "looks like budget holders at the start (propensity weights).",
        "Smallest detectable fall": "The fall in emergency admissions this comparison would detect 8 times in 10 "
                                    "(80% power, 5% two-sided): exp(-(1.96 + 0.84) x standard error of the log "
                                    "rate ratio).",
        "Exits": "People who left the programme, moved or died after their start, per 100 person-years from start to "
                 "exit or the extract date, by group; the rate ratio is budget holders over comparison.",
        "Quality-of-life difference": "Follow-up score regressed on baseline score, group, cohort, age and need "
                                      "score (robust HC3 errors): the adjusted difference, budget holders minus "
                                      "comparison. Where the groups started apart, the difference in change scores "
                                      "is shown beside it: the truth usually lies between the two.",
        "Alike at the start": "A standardised difference (difference in means over the pooled standard deviation) "
                              "counts as a real difference only beyond 0.1 and beyond what chance gives between "
                              "random groups of this size: z x sqrt(1/n1 + 1/n2), z shared over the characteristics "
                              "(Bonferroni, 5%).",
        "Value for money": f"Perspective: {E.PERSPECTIVE}. The year after each start, for everyone whose year was "
                           "over: budget spend (net of refunds), services outside the budget (services table) and "
                           "hospital care at reference cost; QALYs from EQ-5D and ASCOT-years by area under the "
                           "curve, deaths counting zero from the day of death, missing follow-ups filled from the "
                           "group's baseline-to-follow-up line. Net monetary benefit = value of a QALY x QALYs gained - "
                           "extra cost, with 1,000 bootstrap resamples; not shown without a services table.",
        "Break-even": "How far budget holders' emergency admissions would have to fall for the savings to pay the "
                      "extra cost outside hospital (budget and services, budget holders minus comparison; without a "
                      "services table, the whole budget spend): that cost over their emergency admission cost in "
                      "the year before they started.",
    }


def messages(o: Outcomes) -> list[str]:
    publish = lambda part, whole: disclosure.published_share(part, whole, current_policy())  # noqa: E731
    return O.key_messages(o.results, o.economics, share=publish)

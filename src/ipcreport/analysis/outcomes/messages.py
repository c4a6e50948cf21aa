"""Key messages: plain-words sentences generated from the numbers, and which admissions
estimate the briefing tells the reader to believe."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .balance import BALANCE_LABELS, chance_smd
from .common import MIN_EVENTS_PER_CELL, OUTCOME_NAMES, Estimate
from .power import interval_words, minimum_detectable_ratio
from .site import OutcomeResults


def _ci(est: Estimate, fmt: str) -> str:
    return f"{fmt.format(est.value)} (95% CI {fmt.format(est.low)} to {fmt.format(est.high)})"


def _ratio_words(est: Estimate) -> str:
    when = "in the year after the budget started"
    if est.high < 1:
        return f"fell more for budget holders than for the comparison group {when}"
    if est.low > 1:
        return f"rose more for budget holders than for the comparison group {when}"
    return f"changed no differently for budget holders than for the comparison group {when}, within the uncertainty"


def _diff_words(est: Estimate, higher_is_better: bool = True) -> str:
    if est.low > 0:
        return "higher among budget holders" + ("" if higher_is_better else " (worse)")
    if est.high < 0:
        return "lower among budget holders" + ("" if higher_is_better else " (better)")
    return "no different between the groups, within the uncertainty"


def _disagree(a: Estimate | None, b: Estimate | None, se: float) -> bool:
    """Two ratios disagree when their logs differ by more than the headline's standard error."""
    return bool(a is not None and b is not None and a.available and b.available
                and abs(np.log(a.value) - np.log(b.value)) > se)


def worse_year_before(balance: pd.DataFrame) -> bool:
    """Did budget holders' emergency admissions in the year before differ from the comparison
    group's by more than chance gives at these sizes (one two-sided 5% comparison)? Then part of
    any fall after is regression to the mean, which only the weighted estimate allows for."""
    row = balance[balance["covariate"] == "baseline_admissions_rate"]
    if row.empty or pd.isna(row["smd"].iloc[0]):
        return False
    r = row.iloc[0]
    return bool(abs(r["smd"]) > chance_smd(int(r["n_ipc"]), int(r["n_comparison"])))


def preferred(main: Estimate | None, weighted: Estimate | None, balance: pd.DataFrame | None = None) -> str:
    """Which admissions estimate the briefing headlines: "weighted" (the conditional model with
    propensity weights) whenever it could be fitted, else "conditional" (unweighted).

    Why always the weighted one: in the validity study (docs/validity.md) it meets the bias and
    coverage targets in every scenario, including enrolment after a bad year (regression to the
    mean) and need changing the trend, where the unweighted conditional and the pooled model are
    biased by 10-15%; and where the groups are alike it costs nothing (its interval is no wider).
    A rule that switched to it only when the groups' year-before admissions differed beyond
    chance caught those scenarios in only about 40% of datasets and left the headline biased.
    ``balance`` is not used any more; it stays so callers need not change."""
    del balance
    return "weighted" if weighted is not None and weighted.available else "conditional"


def headline_admissions(results: OutcomeResults, key: str = "admissions") -> tuple[str, Estimate | None]:
    """(which, estimate) the briefing headlines for an event outcome (see :func:`preferred`)."""
    main, weighted = results.estimates.get(key), results.adjusted.get(key)
    which = preferred(main, weighted, results.balance)
    return which, (weighted if which == "weighted" else main)


def which_to_believe(results: OutcomeResults, key: str = "admissions") -> str:
    """The sentence on the headline and its sensitivity rows: which to believe when they
    disagree, and why (from the validity study, docs/validity.md)."""
    main, crude = results.estimates.get(key), results.crude.get(key)
    which, head = headline_admissions(results, key)
    if head is None or not head.available:
        return ""
    if which == "conditional":
        return ("No weighted estimate could be fitted, so the headline compares each person with themselves "
                "without allowing for the groups' differences at the start.")
    if not (_disagree(head, main, head.se) or _disagree(head, crude, head.se)):
        return ("The three estimates agree within the uncertainty, so neither who left early nor the groups' "
                "differences at the start changes the answer.")
    if worse_year_before(results.balance):
        return ("They disagree. The groups' emergency admissions in the year before they started differed by more "
                "than chance gives, so part of any change after would have happened anyway (regression to the "
                "mean): the headline allows for it by comparing budget holders with people whose year before was "
                "alike; believe it.")
    exits = results.exit_ratios.get("exits")
    uneven_exits = exits is not None and exits.available and (exits.low > 1 or exits.high < 1)
    if _disagree(head, main, head.se):
        return ("They disagree: the groups differed at the start in ways that move the answer, which only the "
                "headline allows for (it compares each person with themselves and budget holders with people like "
                "them at the start), so believe the headline.")
    if uneven_exits:
        return ("They disagree. The groups left at different rates, which changes who is left in a model without "
                "person effects: believe the headline, which compares each person with themselves and is not moved "
                "by who leaves.")
    return ("The estimate without person effects differs: it is moved by who leaves early, the headline is not, so "
            "believe the headline.")


def _admissions_messages(results: OutcomeResults) -> list[str]:
    out = []
    for key in ("admissions", "bed_days"):
        which, est = headline_admissions(results, key)
        name = OUTCOME_NAMES[key]
        if est is None:
            continue
        if not est.available:
            out.append(f"{name}: no estimate ({est.reason}).")
            continue
        how = ("comparing each person with themselves and budget holders with people like them at the start "
               "(weighted)" if which == "weighted" else "comparing each person with themselves")
        text = f"{name} {_ratio_words(est)}: rate ratio {_ci(est, '{:.2f}')}, {how}, from {est.n:,} people; "
        text += f"{interval_words(est)}."
        if key == "admissions":
            mde = minimum_detectable_ratio(est.se)
            text += (f" The smallest fall this comparison would reliably detect (80% power) is {1 - mde:.0%} "
                     f"(rate ratio {mde:.2f})")
            text += (", so 'no different' here does not mean budgets have no effect." if est.low <= 1 <= est.high
                     else ".")
            rows = [("not weighted", results.estimates.get(key))] if which == "weighted" else []
            rows.append(("without person effects", results.crude.get(key)))
            shown = [f"{label} {_ci(e, '{:.2f}')}" for label, e in rows if e is not None and e.available]
            if shown:
                text += " Sensitivity: " + "; ".join(shown) + ". " + which_to_believe(results, key)
        out.append(text)
    return out


def _exit_messages(results: OutcomeResults) -> list[str]:
    t = results.exits
    if t.empty:
        return []
    t = t.set_index("group")
    ratio = results.exit_ratios.get("exits")

    def rate(group: str, count: str, col: str) -> str:  # a rate from fewer than 10 events could reveal them
        return f"{t.loc[group, col]:.1f}" if t.loc[group, count] >= MIN_EVENTS_PER_CELL else "too few to show"

    text = (f"Leaving the programme, moving or dying, per 100 person-years: budget holders "
            f"{rate('ipc', 'exits', 'exit_rate')}, the comparison group {rate('comparison', 'exits', 'exit_rate')}; "
            f"deaths alone: {rate('ipc', 'died', 'death_rate')} and {rate('comparison', 'died', 'death_rate')}")
    shown = min(t.loc["ipc", "exits"], t.loc["comparison", "exits"]) >= MIN_EVENTS_PER_CELL
    if ratio is not None and ratio.available and shown:  # a ratio beside one hidden rate would give it back
        text += f"; exit rate ratio {_ci(ratio, '{:.2f}')}."
    else:
        text += "."
    return [text]


def _follow_up_messages(results: OutcomeResults) -> list[str]:
    msgs = []
    if results.not_yet_due:
        msgs.append(f"{results.not_yet_due:,} people started less than a year before the extract date: their "
                    "follow-up year is not over, so they are left out of the quality-of-life and cost comparisons "
                    "and count in hospital use for the time observed.")
    trend = results.pre_trend
    if trend is not None:
        if trend.available:
            msgs.append(f"Before the budgets started, emergency admissions of the two groups moved alike (second year "
                        f"before against the first: rate ratio {_ci(trend, '{:.2f}')})" if trend.low <= 1 <= trend.high
                        else f"Before the budgets started the groups' emergency admissions already moved differently "
                             f"(rate ratio {_ci(trend, '{:.2f}')}), so the difference in differences is in doubt.")
        else:
            msgs.append(f"No pre-trend check: {trend.reason}.")
    return msgs


def _qol_messages(results: OutcomeResults) -> list[str]:
    msgs = []
    qol = results.quality_of_life.set_index("measure") if not results.quality_of_life.empty else None
    for key, fmt in (("ascot", "{:+.3f}"), ("eq5d", "{:+.3f}"), ("ghq12", "{:+.1f}")):
        est = results.estimates.get(key)
        if est is None:
            continue
        name = OUTCOME_NAMES[key]
        if not est.available:
            msgs.append(f"{name}: no estimate ({est.reason}).")
            continue
        text = (f"{name} a year on was {_diff_words(est, key != 'ghq12')}: adjusted difference {_ci(est, fmt)} points, "
                f"from {est.n:,} people with both questionnaires.")
        if qol is not None and key in qol.index and qol.loc[key, "baseline_apart"] and pd.notna(qol.loc[key, "change_diff"]):
            r = qol.loc[key]
            text += (f" The groups started apart on this score (standardised difference {r['baseline_smd']:+.2f}), so "
                     f"the change score is shown too: {fmt.format(r['change_diff'])} ({fmt.format(r['change_low'])} to "
                     f"{fmt.format(r['change_high'])}). The first assumes the gap at the start would have narrowed, the "
                     "second that it would have stayed; the truth plausibly lies between them.")
        msgs.append(text)
    return msgs


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _missing_words(row, share) -> str:
    """A group's share of baseline questionnaires without a follow-up, as published."""
    if share is None:
        return f"{row.missing_follow_up / row.baseline:.0%}"
    shown = share(row.followed_up, row.baseline)
    return "a share too small to show" if shown is None else f"{1 - shown:.0%}"


def key_messages(results: OutcomeResults, economics=None, share=None) -> list[str]:
    """Plain-words sentences generated from the numbers, ending with what the design cannot
    rule out. ``economics``: optional :class:`ipcreport.analysis.economics.CostEffectiveness`.
    ``share(part, whole)``: how a share of people is published (the report passes its
    disclosure rule, so the sentence and the tables give the same figure); exact by default."""
    msgs = _admissions_messages(results) + _exit_messages(results) + _qol_messages(results)
    m = results.missingness
    if m.missing_ipc is not None:
        differ = m.p_value is not None and m.p_value < 0.05
        missing = {group: _missing_words(row, share) for group, row in results.completeness.iterrows()}
        msgs.append(
            f"{missing['ipc']} of budget holders and {missing['comparison']} of the comparison group had no "
            f"follow-up questionnaire; " + (
                f"the difference is unlikely to be chance ({m.test}, p = {m.p_value:.3f}), so the quality-of-life "
                "results may be biased by who answered." if differ else
                f"the difference could be chance ({m.test}, p = {m.p_value:.2f}); results assume those who "
                "answered are like those who did not.")
        )
    msgs += _follow_up_messages(results)
    if results.imbalanced:
        names = ", ".join(_lower_first(BALANCE_LABELS.get(c, c.replace("cohort_", "share in cohort ")
                                                           .replace("_", " "))) for c in results.imbalanced)
        msgs.append(f"The groups differed at the start by more than chance gives at this size ({names}); the weighted "
                    "estimates allow for these measured differences.")
    else:
        msgs.append("The groups were alike at the start on the measured characteristics: every standardised "
                    "difference is within what chance gives between random groups of this size.")
    if economics is not None:
        msgs.extend(economics.messages(include_ascot=False))
    msgs.append("People chose to take a budget, so the groups may differ in ways the data do not measure "
                "(motivation, family support, how services treated them); the comparison adjusts only for "
                "measured differences and cannot rule these out.")
    return msgs

"""The decision page: the three to five things a board should act on, first.

Each decision comes from the site's own figures and flags (money, forecasts, comparisons, control
charts, data gaps), carries the money at stake where there is one, an evidence tag, and the
action it points to. Money decisions rank by money at stake; signals without a price follow,
strongest evidence first. Plain English only: no instrument acronyms or model names (the
methods section's glossary has them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from ...analysis.risk import notice_priority
from ..charts import label
from ..present import Markup, bold, compose, current_policy, italic, money, pct, probability
from .compare import published_value

if TYPE_CHECKING:
    from ..briefing import SiteResults

ROBUST, INDICATIVE, DATA_GAP = "robust", "indicative", "data gap"
EVIDENCE = {
    ROBUST: "from complete records, or an interval that rules out chance",
    INDICATIVE: "a projection from stated assumptions, or a signal that could still be chance",
    DATA_GAP: "the figure needs data or a setting the site has not supplied",
}
MAX_DECISIONS = 5
# Words a board member should not meet on the decision page (the glossary explains them).
JARGON = ("ASCOT", "EQ-5D", "GHQ", "QALY", "IRR", "ANCOVA", "DiD", "RAS", "SPC", "Poisson", "SMD", "CI ", "IMD", "imd")


@dataclass(frozen=True)
class Decision:
    title: str  # the finding, with its figure
    action: str | None  # what it points to doing
    evidence: str  # ROBUST, INDICATIVE or DATA_GAP
    at_stake: float = 0.0  # GBP, for ranking; 0 for signals without a price

    def markdown(self) -> Markup:
        """The finding in bold, its evidence tag, then the decision; text from the data escaped."""
        parts = [bold(self.title), " ", italic(f"Evidence: {self.evidence}.")]
        if self.action:
            parts += [" ", bold("Decision:"), " ", self.action]
        return compose(*parts)


def double_running(r: "SiteResults") -> Decision | None:
    k = r.risk
    if k.by_contract.empty:
        return Decision("Double running cannot be estimated: no block contracts are recorded.",
                        "Add the site's block contracts to the data so that the cost of roll-out can be planned.",
                        DATA_GAP)
    phased, fast = (r.metrics.values[key] for key in ("double_running_cost", "double_running_cost_fast"))
    if not phased and not fast:
        return None
    title = (f"Double running: {money(phased)} paid twice next year under the phased roll-out, {money(fast)} "
             f"if the same growth comes within {k.assumptions.fast_rollout_months} months.")
    top, others = notice_priority(k.calendar)
    if top is not None:  # the contract where a month's delay costs most, among those notice can still help
        when = "now" if top["overdue"] else f"by {top['serve_by']:%d %B %Y}"
        action = (f"serve notice on block contract {top['contract_id']} ({label(top['category']).lower()}) {when}; "
                  f"each month of delay costs about {money(top['delay_cost_per_month'])}"
                  + (f" ({others} more contract{'s' if others > 1 else ''} in the notice calendar)." if others else ".")
                  + " Keep to the phased roll-out.")
    else:
        lapsing = k.calendar[k.calendar["ends_first"].astype(bool)]
        action = ("do not renew " + ", ".join(f"{c} when it ends ({d:%B %Y})" for c, d in
                                             zip(lapsing["contract_id"], lapsing["end_date"]))
                  + ": notice served now would take effect only after that. Keep to the phased roll-out."
                  if not lapsing.empty else "keep to the phased roll-out.")
    return Decision(title, action, INDICATIVE, phased)


def recoverable(r: "SiteResults") -> Decision | None:
    dp = float(r.allocation.bridge.loc["total", "dp_recoverable"])
    if dp <= 0:
        return None
    return Decision(f"{money(dp)} of direct-payment money agreed for the reporting year was not spent in it.",
                    f"review those direct-payment accounts and recover up to {money(dp)} that is not needed.",
                    ROBUST, dp)


def overspend(r: "SiteResults") -> Decision | None:
    o = r.risk.overspend
    if o is None:
        return Decision("Next year's spend cannot be forecast: too few completed budgets to learn from.", None,
                        DATA_GAP)
    spread = f"{money(o.forecast)} (90% range {money(o.p05)} to {money(o.p95)})"
    if o.pooled_fund is None:
        return Decision(f"Spend through budgets next year is forecast at {spread}; no pooled fund is set for it.",
                        "enter next year's pooled fund in the run's settings so the briefing can say how likely "
                        "an overspend is.", DATA_GAP)
    gap = o.p95 - o.pooled_fund
    title = (f"Next year: spend forecast {spread} against a pooled fund of {money(o.pooled_fund)}; the chance of "
             f"overspending is {probability(o.probability)}"
             + (f", by up to {money(gap)} (the 95th percentile over the fund)." if gap > 0 else "."))
    if o.probability >= 0.5:
        action = (f"plan now for an overspend of up to {money(max(gap, 0))} (the 95th percentile over the fund), "
                  "or slow enrolment.")
    elif o.probability >= 0.2:
        action = f"hold a contingency of about {money(max(gap, 0))} (the gap to the 95th percentile)."
    else:
        action = (f"none now: the fund covers next year's spend in {probability(1 - o.probability)} of simulations; "
                  "look again at the next extract.")
    return Decision(title, action, INDICATIVE, max(gap, 0.0))


def new_money(r: "SiteResults") -> Decision | None:
    net = r.allocation.net_new_money
    if net <= 0:
        return None
    share = net / r.allocation.budget["budget_total"] if r.allocation.budget["budget_total"] else None
    return Decision(f"{money(net)} ({pct(share)}) of this year's budget money is new money: more than the same "
                    "people's services cost before.",
                    "agree with each funder how this new cost is met in the pooled fund.", ROBUST, net)


def _fewer(ratio: float) -> str:
    return f"{abs(1 - ratio):.0%} {'fewer' if ratio < 1 else 'more'}"


def admissions(r: "SiteResults") -> Decision | None:
    m = r.metrics.values
    irr, low, high = m.get("admissions_irr"), m.get("admissions_irr_low"), m.get("admissions_irr_high")
    if irr is None:
        return None
    if high < 1 or low > 1:
        return Decision(f"Budget holders had {_fewer(irr)} emergency admissions than similar people without a budget "
                        f"(range {_fewer(high)} to {_fewer(low)}).", None, ROBUST)
    return Decision(f"Emergency admissions: no clear difference yet between budget holders and similar people "
                    f"(anything from {_fewer(low)} to {_fewer(high)} is consistent with the data).",
                    None, INDICATIVE)


def flags(r: "SiteResults") -> list[Decision]:
    """The site's own warning signs: indicators worse than comparators, control-chart concerns,
    budgets that differ by more than need explains."""
    out = []
    c = r.compare
    if not c.comparisons.empty:
        worse = c.comparisons[c.comparisons["vs_england"] == "Worse"]
        for row in worse.itertuples():
            shown = published_value(row, current_policy(), c.level)  # as the tables publish it
            if shown is None:  # a small count: the table hides it, so does this page
                continue
            here, there = (f"{v:.1f}%" if row.unit == "%" else f"{v:,.2f}" for v in (shown[0], row.england))
            where = "in England" if row.comparator == "England" else "across all sites in this dataset"
            out.append(Decision(f"{row.indicator}: {here} here against {there} {where}, "
                                "worse by more than chance alone would give.",
                                "find out why this site differs on this measure.", INDICATIVE))
    for key, (_, summary) in c.control.items():
        if summary.variation.startswith("concern"):
            out.append(Decision(f"The latest months of the control chart of {key.replace('_', ' ')} are unusual "
                                "in the wrong direction.", "find out what changed in those months.", INDICATIVE))
    e = r.allocation.equity
    if e.fairness_p_value is not None and e.fairness_p_value < 0.05:
        t = e.terms
        clear = t[(t["term"] != "Cohort") & ((t["low"] > 0) | (t["high"] < 0))]
        groups = ", ".join(f"{row.term.split(' (')[0].lower()} {label(row.level)}"  # no "(IMD quintile)"
                           for row in clear.itertuples()) or "some groups"
        out.append(Decision(f"At the same assessed need, budgets differ by age, sex or deprivation ({groups}).",
                            "look at how care plans are agreed for these groups.", INDICATIVE))
    return out


def rank(candidates: list[Decision], warnings: list[Decision]) -> list[Decision]:
    """Up to three priced decisions by money at stake, then up to two of the site's own warning
    flags (so a flag always reaches the page), then the rest: priced, flags, then unpriced
    candidates, strongest evidence first."""
    priced = sorted((d for d in candidates if d.at_stake > 0), key=lambda d: -d.at_stake)
    order = {ROBUST: 0, INDICATIVE: 1, DATA_GAP: 2}
    rest = sorted((d for d in candidates if d.at_stake <= 0), key=lambda d: order[d.evidence])
    chosen = priced[:3] + warnings[:2]
    return (chosen + priced[3:] + warnings[2:] + rest)[:MAX_DECISIONS]


def decisions(r: "SiteResults") -> list[Decision]:
    """The site's ranked decision list (none priced for a site too small to publish its money)."""
    from .allocation import too_few_holders

    if too_few_holders(r.allocation):
        return [Decision("Too few budget holders to publish this site's money figures.",
                         "brief this site together with a larger one until it has more holders.", DATA_GAP)]
    candidates = [d for d in (double_running(r), recoverable(r), overspend(r), new_money(r), admissions(r)) if d]
    return rank(candidates, flags(r))


def lines(r: "SiteResults") -> list[Markup]:
    """The decision page's items as Markdown, in rank order (the notebook prints them as a list)."""
    return [d.markdown() for d in decisions(r)]


def frame(r: "SiteResults") -> pd.DataFrame:
    """The decisions as a table, for the downloads."""
    items = decisions(r)
    return pd.DataFrame([{"Finding": d.title, "Decision": d.action or "", "Evidence": d.evidence,
                          "Money at stake (GBP)": round(d.at_stake, 2)} for d in items],
                        index=range(1, len(items) + 1))

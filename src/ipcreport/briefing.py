"""Everything a site briefing shows, computed in one call from the site's data.

The site notebook calls :func:`analyse_site` once and then only presents what it returns, so
the numbers can be tested without a kernel and the notebook stays thin. Every headline figure
is recorded in the run's :class:`~ipcreport.results.Metrics` as it is computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from . import contract as C
from . import disclosure
from .analysis import allocation as A
from .analysis import outcomes as O
from .analysis import risk as R
from .dataset import SiteData
from .charts import label
from .present import interval, money, pct, probability
from .results import Metrics


@dataclass(frozen=True)
class Settings:
    """Run settings a site notebook receives as papermill parameters."""

    reporting_months: int = 12
    risk: R.RiskAssumptions = field(default_factory=R.RiskAssumptions)


@dataclass
class SiteResults:
    site: pd.Series
    window: A.Window
    people_by_group: pd.Series
    people_by_cohort: pd.Series
    people_by_management: pd.Series
    funding_shares: pd.Series
    budget: dict
    budget_by_cohort: pd.DataFrame
    ras_ratio: pd.Series
    per_period: pd.DataFrame
    utilisation: float | None
    spend_by_category: pd.Series
    monthly: pd.DataFrame
    outcomes: dict[str, O.Estimate]
    follow_up: pd.DataFrame
    double_running: pd.DataFrame
    overspend: R.OverspendResult | None
    new_need: pd.DataFrame
    row_counts: pd.Series
    warnings: list[str]
    metrics: Metrics


OUTCOME_LABELS = {
    "admissions": "Emergency admissions (rate ratio)",
    "bed_days": "Emergency bed days (rate ratio)",
    "ascot": "ASCOT social-care quality of life (difference)",
    "eq5d": "EQ-5D health-related quality of life (difference)",
}


def analyse_site(data: SiteData, settings: Settings = Settings()) -> SiteResults:
    t = data.tables
    people, budgets, spend = t["people"], t["budgets"], t["spend"]
    extract = data.extract_date
    window = A.Window.ending(extract, settings.reporting_months)
    metrics = Metrics(data.site_code, data.dataset, extract.date().isoformat(), data.data_sha256)
    site = data.site
    metrics.update({"site_name": site["site_name"], "region": site["region"], "population": int(site["population"]),
                    "synthetic": data.synthetic})

    by_group = people["group"].value_counts().reindex(list(C.GROUPS), fill_value=0)
    metrics.update({"people_ipc": int(by_group["ipc"]), "people_comparison": int(by_group["comparison"])})
    by_management = A.people_by(people, "management", C.MANAGEMENT)
    shares = A.management_shares(people)
    metrics.update({f"share_{m}": shares[m] for m in C.MANAGEMENT})

    budget = A.budget_summary(budgets, window)
    metrics.update({k: budget[k] for k in ("budget_total", "budget_mean", "budget_median")})
    funding = A.funding_shares(budgets, window)
    metrics.update({f"share_funded_{f}": funding[f] for f in C.FUNDERS})
    ras = A.ras_agreed_ratio(budgets)
    metrics.record("ras_agreed_ratio_median", ras.median() if len(ras) else None)

    per_period = A.utilisation(budgets, spend, extract)
    util = A.overall_utilisation(per_period)
    if util is None:
        metrics.missing("utilisation", "no budget period has completed by the extract date")
    metrics.record("utilisation", util)

    outcomes = _outcomes(people, t["events"], t["surveys"], extract, metrics)

    double = R.double_running(t["contracts"], spend, extract, growth=settings.risk.enrolment_growth)
    metrics.record("double_running_cost", double["double_running_cost"].sum())
    holders_now = int(A.budgets_in_window(budgets, A.Window(extract, extract))["person_id"].nunique())
    sim = R.overspend(per_period, holders_now, settings.risk)
    if sim is None:
        metrics.missing("overspend_probability", "fewer than two completed budget periods to learn from")
        metrics.missing("spend_p95", "fewer than two completed budget periods to learn from")
    else:
        metrics.update({"overspend_probability": sim.probability, "spend_p95": sim.p95})
    new_need = A.new_need(people, budgets, window)
    metrics.record("new_need_cost", float(new_need["agreed"].sum()))
    for w in data.warnings:
        metrics.note(f"data warning: {w}")

    return SiteResults(
        site=data.site,
        window=window,
        people_by_group=by_group,
        people_by_cohort=A.people_by(people, "cohort", C.COHORTS),
        people_by_management=by_management,
        funding_shares=funding,
        budget=budget,
        budget_by_cohort=A.budget_distribution(budgets, people, window),
        ras_ratio=ras,
        per_period=per_period,
        utilisation=util,
        spend_by_category=A.spend_by_category(spend, window),
        monthly=A.monthly_series(people, spend),
        outcomes=outcomes,
        follow_up=O.follow_up_completeness(people, t["surveys"]),
        double_running=double,
        overspend=sim,
        new_need=new_need,
        row_counts=pd.Series({name: len(frame) for name, frame in t.items()}, name="rows"),
        warnings=list(data.warnings),
        metrics=metrics,
    )


def _outcomes(people, events, surveys, extract, metrics: Metrics) -> dict[str, O.Estimate]:
    out = {}
    for key, measure in (("admissions", "count"), ("bed_days", "bed_days")):
        panel = O.before_after_panel(people, events, "emergency_admission", extract, measure)
        est = out[key] = O.did_rate_ratio(panel)
        _record_estimate(metrics, f"{key}_irr", est)
    for key in ("ascot", "eq5d"):
        est = out[key] = O.ancova_difference(O.quality_of_life_panel(people, surveys, key))
        _record_estimate(metrics, f"{key}_diff", est)
    return out


def _record_estimate(metrics: Metrics, key: str, est: O.Estimate) -> None:
    if not est.available:
        for suffix in ("", "_low", "_high"):
            metrics.missing(key + suffix, est.reason or "not estimable")
        return
    metrics.update({key: est.value, f"{key}_low": est.low, f"{key}_high": est.high})


def outcome_table(results: SiteResults) -> pd.DataFrame:
    """One row per outcome: estimate and interval, or why there is none."""
    rows = {}
    for key, est in results.outcomes.items():
        rows[OUTCOME_LABELS[key]] = {
            "Estimate": f"{est.value:.3f}" if est.available else "not shown",
            "95% interval": f"{est.low:.3f} to {est.high:.3f}" if est.available else (est.reason or ""),
            "People in model": f"{est.n:,}",
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def key_messages(r: SiteResults) -> list[str]:
    """Plain-words headline sentences generated from the numbers."""
    if r.budget["budget_periods"] == 0:
        msgs = [f"No agreed budgets were live in the reporting year ({r.window.start:%d %B %Y} to "
                f"{r.window.end:%d %B %Y}): budget figures follow once budgets are agreed."]
    else:
        msgs = [
            f"{money(r.budget['budget_total'])} of agreed budgets were live in the reporting year "
            f"({r.window.start:%d %B %Y} to {r.window.end:%d %B %Y}); the median budget was "
            f"{money(r.budget['budget_median'])} a year.",
            f"{pct(r.funding_shares.get('nhs'))} of the money came from the NHS, "
            f"{pct(r.funding_shares.get('social_care'))} from social care and "
            f"{pct(r.funding_shares.get('education'))} from education.",
        ]
    if r.utilisation is not None:
        msgs.append(f"Budget holders spent {pct(r.utilisation)} of their agreed budgets in periods "
                    "completed by the extract date.")
    adm = r.outcomes["admissions"]
    if adm.available:
        if adm.high < 1:
            finding = "fell more for budget holders than for the comparison group"
        elif adm.low > 1:
            finding = "rose more for budget holders than for the comparison group"
        else:
            finding = "changed no differently for budget holders than for the comparison group, within the uncertainty"
        msgs.append(
            f"Emergency admissions {finding}: rate ratio {interval(adm.value, adm.low, adm.high)}. People chose "
            "budgets, so differences between the groups other than the budget cannot be ruled out."
        )
    asc = r.outcomes["ascot"]
    if asc.available:
        msgs.append(f"Social-care quality of life (ASCOT) at follow-up differed by "
                    f"{interval(asc.value, asc.low, asc.high, '{:+.3f}')} points, adjusting for baseline.")
    if r.overspend is not None:
        msgs.append(f"Next year's spend has a {probability(r.overspend.probability)} chance of exceeding the pooled "
                    f"budget of {money(r.overspend.pooled_budget)} (95th percentile of spend "
                    f"{money(r.overspend.p95)}).")
    msgs.append(f"Paying both budgets and block contracts during notice periods could cost "
                f"{money(r.double_running['double_running_cost'].sum())} over the next 12 months.")
    return msgs


def headline_table(r: SiteResults) -> pd.DataFrame:
    m = r.metrics.values
    rows = {
        "Agreed budgets in the reporting year": money(m["budget_total"]),
        "Median budget per year of care": money(m["budget_median"]),
        "Utilisation of completed budgets": pct(m["utilisation"]),
        "Median agreed / indicative budget": "not available" if m["ras_agreed_ratio_median"] is None
        else f"{m['ras_agreed_ratio_median']:.2f}",
        "Budgets for needs no service met before": money(m["new_need_cost"]),
        "Double running, next 12 months": money(m["double_running_cost"]),
        "Chance of overspending next year": probability(m["overspend_probability"]),
    }
    return pd.DataFrame({"Value": rows})


# ---------------------------------------------------------------------------------------------
# publishable tables: disclosure control applied, numbers formatted


def budget_size_table(r: SiteResults, policy: disclosure.Policy) -> pd.DataFrame:
    t = r.budget_by_cohort
    out = pd.DataFrame({
        "Budgets": disclosure.publish_counts(t["periods"], policy, with_total=False),
        "Median": t["median"].map(money),
        "Inter-quartile range": [f"{money(a)} to {money(b)}" for a, b in zip(t["q1"], t["q3"])],
        "90th percentile": t["p90"].map(money),
    }, index=t.index)
    # Summaries of a handful of budgets come close to describing one person's: hide them.
    out.loc[~t["periods"].map(lambda n: disclosure.enough(n, policy)), ["Median", "Inter-quartile range",
                                                                         "90th percentile"]] = disclosure.SUPPRESSED
    return out


def follow_up_table(r: SiteResults, policy: disclosure.Policy) -> pd.DataFrame:
    f = r.follow_up
    return pd.DataFrame({
        "Baseline questionnaires": disclosure.publish_counts(f["baseline"], policy, with_total=False),
        "With follow-up": disclosure.publish_counts(f["followed_up"], policy, with_total=False),
        "Missing follow-up": [pct(m / b) if disclosure.enough(b, policy) else disclosure.SUPPRESSED
                              for m, b in zip(f["missing_follow_up"], f["baseline"])],
    }, index=f.index)


def double_running_table(r: SiteResults) -> pd.DataFrame:
    d = r.double_running
    return pd.DataFrame({
        "Category": d["category"].map(label).to_numpy(),
        "Funder": d["funder"].map(label).to_numpy(),
        "Annual value": d["annual_value"].map(money).to_numpy(),
        "Notice (months)": d["notice_months"].to_numpy(),
        "Months paid twice": d["months_paid_twice"].map("{:.1f}".format).to_numpy(),
        "Paid twice": d["double_running_cost"].map(money).to_numpy(),
    }, index=d["contract_id"].to_numpy())

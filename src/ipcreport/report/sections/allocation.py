"""Who holds budgets and how, what budgets buy, whether they follow need and are used."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ...data import contract as C
from .. import disclosure
from ...analysis import allocation as A
from ...analysis import money as M
from ..charts import label
from ...data.dataset import SiteData
from ..present import current_policy, money, pct
from ..results import Metrics


@dataclass
class Allocation:
    window: A.Window
    people_by_group: pd.Series
    people_by_cohort: pd.Series
    people_by_management: pd.Series
    money_by_cohort: pd.DataFrame
    money_by_management: pd.DataFrame
    funding_shares: pd.Series
    funding_by_cohort: pd.DataFrame
    budget: dict
    budget_by_cohort: pd.DataFrame
    calibration: A.Calibration
    equity: A.Equity
    per_period: pd.DataFrame
    use: A.Use
    spend_by_category: pd.Series
    spend_mix: pd.DataFrame
    spend_by_quarter: pd.DataFrame
    monthly: pd.DataFrame
    new_need: pd.DataFrame
    bridge: pd.DataFrame  # funder x (agreed, spent, unspent, dp_recoverable, pooled_fund, variance)
    committed_annual: float
    net_new_money: float


def compute(data: SiteData, window: A.Window, metrics: Metrics, pooled_fund: dict | None = None) -> Allocation:
    people, budgets, spend = data["people"], data["budgets"], data["spend"]
    by_group = people["group"].value_counts().reindex(list(C.GROUPS), fill_value=0)
    metrics.update({"people_ipc": int(by_group["ipc"]), "people_comparison": int(by_group["comparison"])})
    shares = A.management_shares(people)
    metrics.update({f"share_{m}": shares[m] for m in C.MANAGEMENT})

    budget = A.budget_summary(budgets, window)
    metrics.update({k: budget[k] for k in ("budget_total", "budget_mean", "budget_median")})
    bridge = M.money_bridge(people, budgets, spend, window, pooled_fund)
    committed = M.committed_annual(budgets, data.extract_date)
    net_new = M.net_new_money(people, budgets, window)
    metrics.update({"budget_committed_annual": committed, "spend_in_year": bridge.loc["total", "spent"],
                    "net_new_money": net_new, "unspent_in_year": bridge.loc["total", "unspent"],
                    "direct_payment_unspent_in_year": bridge.loc["total", "dp_recoverable"]})
    metrics.update({f"spend_in_year_{f}": bridge.loc[f, "spent"] for f in C.FUNDERS})
    funding = A.funding_shares(budgets, window)
    metrics.update({f"share_funded_{f}": funding[f] for f in C.FUNDERS})

    calibration = A.ras_calibration(budgets)
    metrics.record("ras_agreed_ratio_median", calibration.median_ratio)
    metrics.update({"ras_share_within_10pct": calibration.share_within_10pct, "ras_slope": calibration.slope,
                    "ras_slope_low": calibration.slope_low, "ras_slope_high": calibration.slope_high})
    equity = A.equity_model(budgets, people, window)
    metrics.record("equity_fairness_p_value", equity.fairness_p_value)

    per_period = A.utilisation(budgets, spend, data.extract_date, people)
    use = A.budget_use(per_period, people)
    if use.utilisation is None:
        metrics.missing("utilisation", "no budget period has completed by the extract date without an exit")
    metrics.update({"utilisation_periods": use.periods, "utilisation_periods_cut_short": use.cut_short})
    metrics.update({"utilisation": use.utilisation, "utilisation_median_person": use.median_person,
                    "share_periods_under_70pct": use.share_under_70, "share_periods_over_100pct": use.share_over_100,
                    "direct_payment_unspent": use.direct_payment_unspent})

    new_need = A.new_need(people, budgets, window)
    metrics.record("new_need_cost", float(new_need["agreed"].sum()))
    return Allocation(
        window=window,
        people_by_group=by_group,
        people_by_cohort=A.people_by(people, "cohort", C.COHORTS),
        people_by_management=A.people_by(people, "management", C.MANAGEMENT),
        money_by_cohort=A.money_by(budgets, people, window, "cohort", C.COHORTS),
        money_by_management=A.money_by(budgets, people, window, "management", C.MANAGEMENT),
        funding_shares=funding,
        funding_by_cohort=A.money_by_funder_and_cohort(budgets, people, window),
        budget=budget,
        budget_by_cohort=A.budget_distribution(budgets, people, window),
        calibration=calibration,
        equity=equity,
        per_period=per_period,
        use=use,
        spend_by_category=A.spend_by_category(spend, window),
        spend_mix=A.spend_mix_by_cohort(spend, people, window),
        spend_by_quarter=A.spend_mix_over_time(spend),
        monthly=A.monthly_series(people, spend),
        new_need=new_need,
        bridge=bridge,
        committed_annual=committed,
        net_new_money=net_new,
    )


# ---------------------------------------------------------------------------------------------
# publishable tables: disclosure control applied, numbers formatted


def money_table(money_by: pd.DataFrame, policy: disclosure.Policy) -> pd.DataFrame:
    """Budget holders and money by group; money of a suppressed group is hidden with it."""
    hidden = disclosure.suppression_mask(money_by["people"], policy)
    out = pd.DataFrame({
        "Budget holders": disclosure.publish_counts(money_by["people"], policy),
        "Agreed budgets": money_by["money"].map(money),
        "Share of money": money_by["share_of_money"].map(pct),
    }, index=money_by.index)
    out.loc[hidden.to_numpy(), ["Agreed budgets", "Share of money"]] = disclosure.SUPPRESSED
    total = money_by["money"].sum()
    out.loc["total"] = [disclosure.publish_total(money_by["people"], policy), money(total), pct(1.0 if total else None)]
    return out


BRIDGE_COLUMNS = {  # short headers: a PDF column this narrow breaks long words
    "agreed": "Agreed",
    "spent": "Spent",
    "unspent": "Unspent",
    "dp_recoverable": "Direct payments to recover",
    "pooled_fund": "Pooled fund",
    "variance": "Fund minus spend",
}


def too_few_holders(a: Allocation) -> bool:
    """A site's money totals over a handful of holders come close to one person's budget."""
    return not disclosure.enough(int(a.people_by_group["ipc"]), current_policy())


WITHHELD = pd.DataFrame({"Money": ["withheld: too few budget holders to publish money figures"]}, index=["-"])


def bridge_table(a: Allocation) -> pd.DataFrame:
    """The money bridge per funder, as published (funders with no money left out)."""
    if too_few_holders(a):
        return WITHHELD
    b = a.bridge
    shown = b[(b[["agreed", "spent"]].abs().sum(axis=1) > 0) | (b.index == "total")]
    if shown["pooled_fund"].isna().all():
        shown = shown.drop(columns=["pooled_fund", "variance"])
    return pd.DataFrame({BRIDGE_COLUMNS[col]: shown[col].map(money).to_numpy() for col in shown.columns},
                        index=[label(f) for f in shown.index])


def bridge_messages(a: Allocation) -> list[str]:
    """What the bridge says, in words a finance director reads first."""
    t = a.bridge.loc["total"]
    if t["agreed"] == 0 or too_few_holders(a):
        return []
    msgs = [f"Budgets held {money(t['agreed'])} of agreed money in the reporting year (each year of care "
            f"counted for its days in the year) and {money(t['spent'])} was spent through them "
            f"({pct(t['spent'] / t['agreed'])}); {money(a.committed_annual)} a year is committed to the budgets "
            "live on the extract date."]
    if t["dp_recoverable"] > 0:
        msgs.append(f"{money(t['dp_recoverable'])} of direct-payment money agreed for the year was not spent in it: "
                    "review those accounts and recover what is not needed.")
    if pd.notna(t["pooled_fund"]):
        left = (f"leaving {money(t['variance'])} in the fund" if t["variance"] >= 0
                else f"{money(-t['variance'])} more than the fund")
        msgs.append(f"Against the pooled fund of {money(t['pooled_fund'])}, spend in the year was "
                    f"{money(t['pooled_fund'] - t['variance'])}, {left}.")
    return msgs


def funding_table(a: Allocation) -> pd.DataFrame:
    f = a.funding_by_cohort
    shares = f.div(f.sum(axis=1).where(lambda s: s != 0), axis=0)
    return pd.DataFrame({label(funder): shares[funder].map(pct) for funder in f.columns}, index=f.index)


def budget_size_table(a: Allocation, policy: disclosure.Policy) -> pd.DataFrame:
    t = a.budget_by_cohort
    out = pd.DataFrame({
        "Budgets": disclosure.publish_counts(t["periods"], policy, with_total=False),
        "Median": t["median"].map(money),
        "Inter-quartile range": [f"{money(lo)} to {money(hi)}" for lo, hi in zip(t["q1"], t["q3"])],
        "90th percentile": t["p90"].map(money),
    }, index=t.index)
    # Summaries of a handful of budgets come close to describing one person's: hide them.
    small = ~t["periods"].map(lambda n: disclosure.enough(n, policy)).astype(bool)
    out.loc[small.to_numpy(), ["Median", "Inter-quartile range", "90th percentile"]] = disclosure.SUPPRESSED
    return out


def calibration_table(a: Allocation) -> pd.DataFrame:
    c = a.calibration
    slope = ("not estimated" if c.slope is None
             else f"{c.slope:.2f} (95% CI {c.slope_low:.2f} to {c.slope_high:.2f})")
    return pd.DataFrame({"Value": {
        "Median agreed / indicative budget": "not available" if c.median_ratio is None else f"{c.median_ratio:.2f}",
        "Budgets agreed within 10% of the indicative budget": pct(c.share_within_10pct),
        "Elasticity of agreed to indicative budget": slope,
    }})


def calibration_download(a: Allocation, policy: disclosure.Policy) -> pd.DataFrame:
    """What the calibration chart draws: each decile of indicative budget, its median indicative
    budget and the median and quartiles of agreed budgets, at the briefing's money precision;
    budget periods rounded, and a decile of 7 or fewer budgets hidden."""
    b = a.calibration.bins
    hidden = ~b["periods"].map(lambda n: disclosure.enough(n, policy)).astype(bool)
    shown = lambda v, h: disclosure.SUPPRESSED if h else money(v)  # noqa: E731
    return pd.DataFrame({
        "Budget periods": disclosure.publish_counts(b["periods"], policy, with_total=False).to_numpy(),
        "Median indicative budget (GBP)": [shown(v, h) for v, h in zip(b["indicative"], hidden)],
        "Median agreed budget (GBP)": [shown(v, h) for v, h in zip(b["agreed_median"], hidden)],
        "Lower quartile of agreed budgets (GBP)": [shown(v, h) for v, h in zip(b["agreed_q1"], hidden)],
        "Upper quartile of agreed budgets (GBP)": [shown(v, h) for v, h in zip(b["agreed_q3"], hidden)],
    }, index=pd.Index(range(1, len(b) + 1), name="Decile"))


def equity_table(a: Allocation) -> pd.DataFrame:
    t = a.equity.terms
    if t.empty:
        return pd.DataFrame({"Difference at equal need": [a.equity.reason or "not estimated"]}, index=["Model"])
    return pd.DataFrame({
        "Compared with": t["reference"].map(label).to_numpy(),
        "Difference at equal need": [f"{d:+.1%}" for d in t["pct_difference"]],
        "95% interval": [f"{lo:+.1%} to {hi:+.1%}" for lo, hi in zip(t["low"], t["high"])],
    }, index=[f"{term}: {label(level)}" for term, level in zip(t["term"], t["level"])])


def use_table(a: Allocation, policy: disclosure.Policy) -> pd.DataFrame:
    d = a.use.distribution
    return pd.DataFrame({"Budget periods": disclosure.publish_counts(d, policy)}, index=d.index)


def spend_over_time_table(a: Allocation, quarters: int = 8) -> pd.DataFrame:
    """Spend by category in each of the latest quarters (columns quarters, rows categories)."""
    recent = a.spend_by_quarter.tail(quarters)
    return recent.T.map(money)


def spend_mix_table(a: Allocation) -> pd.DataFrame:
    mix = a.spend_mix
    return pd.DataFrame({label(cat): mix[cat].map(pct) for cat in mix.columns}, index=mix.index).T


def new_need_table(a: Allocation, policy: disclosure.Policy) -> pd.DataFrame:
    """People with no prior service cost and their agreed budgets by cohort, with a total row
    (secondary suppression keeps a hidden cohort from being worked out from it): where every
    cohort is small, the total still says how much new need there is."""
    n = a.new_need
    hidden = disclosure.suppression_mask(n["people"], policy, with_total=True)
    out = pd.DataFrame({"People": disclosure.publish_counts(n["people"], policy, with_total=True),
                        "Agreed budgets": n["agreed"].map(money)}, index=n.index)
    out.loc[hidden.to_numpy(), "Agreed budgets"] = disclosure.SUPPRESSED
    total_hidden = disclosure.total_hidden(n["people"], policy)
    out.loc["total"] = [disclosure.publish_total(n["people"], policy),
                        disclosure.SUPPRESSED if total_hidden else money(n["agreed"].sum())]
    return out


# ---------------------------------------------------------------------------------------------
# key messages


def holders_messages(a: Allocation) -> list[str]:
    if a.budget["budget_periods"] == 0:
        return [f"No agreed budgets were live in the reporting year ({a.window.start:%d %B %Y} to "
                f"{a.window.end:%d %B %Y}): budget figures follow once budgets are agreed."]
    if too_few_holders(a):
        return ["Budget money is not published for a site with this few budget holders: it would come close "
                "to one person's budget."]
    largest = a.money_by_cohort["money"].idxmax()
    return [
        f"{money(a.budget['budget_total'])} of agreed budgets were live in the reporting year "
        f"({a.window.start:%d %B %Y} to {a.window.end:%d %B %Y}); the median budget was "
        f"{money(a.budget['budget_median'])} a year.",
        f"{label(largest)} took the largest share of the money "
        f"({pct(a.money_by_cohort.loc[largest, 'share_of_money'])}).",
        f"{pct(a.funding_shares.get('nhs'))} of the money came from the NHS, "
        f"{pct(a.funding_shares.get('social_care'))} from social care and "
        f"{pct(a.funding_shares.get('education'))} from education.",
    ]


def need_messages(a: Allocation) -> list[str]:
    msgs = []
    c = a.calibration
    if c.slope is not None:
        follows = ("in proportion to" if c.slope_low <= 1 <= c.slope_high
                   else "less than in proportion to" if c.slope_high < 1 else "more than in proportion to")
        msgs.append(f"Agreed budgets follow the resource allocation system {follows} the indicative budget "
                    f"(elasticity {c.slope:.2f}, 95% CI {c.slope_low:.2f} to {c.slope_high:.2f}); "
                    f"{pct(c.share_within_10pct)} were agreed within 10% of it.")
    e = a.equity
    if e.fairness_p_value is not None:
        t = e.terms
        fair = t[t["term"] != "Cohort"]
        clear = fair[(fair["low"] > 0) | (fair["high"] < 0)]
        if e.fairness_p_value >= 0.05:
            msgs.append(f"At the same assessed need, age, sex and deprivation together do not explain budgets "
                        f"(joint test p = {e.fairness_p_value:.2f}); budgets follow need.")
        else:
            detail = "; ".join(f"{row.term.lower()} {label(row.level)}: {row.pct_difference:+.0%} "
                               f"(95% CI {row.low:+.0%} to {row.high:+.0%})" for row in clear.itertuples())
            msgs.append(f"At the same assessed need, budgets differ by more than chance by age, sex or deprivation "
                        f"(joint test p = {e.fairness_p_value:.3f}): {detail or 'no single group stands out'}. "
                        "Worth a look at how plans are agreed.")
    elif e.reason:
        msgs.append(f"The fairness model was not run: {e.reason}.")
    return msgs


def use_messages(a: Allocation) -> list[str]:
    u = a.use
    dp_in_year = float(a.bridge.loc["total", "dp_recoverable"])
    if u.utilisation is None:
        return ["No budget period has completed yet, so use of budgets cannot be measured."]
    # shares of periods as the tables publish them: from rounded counts (exact ones give counts back)
    shown = {key: disclosure.published_share(round(share * u.periods), u.periods, current_policy())
             if share is not None else None for key, share in (("under_70", u.share_under_70), ("over_100", u.share_over_100))}
    return [
        f"Budget holders spent {pct(u.utilisation)} of the money agreed in periods completed by the extract date; "
        f"{pct(shown['under_70'])} of completed budget periods were less than 70% used and "
        f"{pct(shown['over_100'])} overspent"
        + (f" ({pct(u.cut_short / (u.cut_short + u.periods))} of completed periods ended early because the holder "
           "left, and are left out: a death is not under-use)." if u.cut_short else "."),
        f"{money(u.direct_payment_unspent)} of direct-payment money was agreed but not spent in the budget periods "
        f"completed since the programme began, {money(dp_in_year)} of it agreed for the reporting year (the figure "
        "the decision page asks to recover: older money may have been recovered already).",
    ]

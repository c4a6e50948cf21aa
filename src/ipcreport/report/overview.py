"""Gather every site's headline results for the national overview."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import disclosure
from .formats import gbp
from ..analysis import funnel as F
from ..analysis import meta
from ..analysis import indicators as I
from ..analysis import peers as P
from .briefing import Settings, analyse_site
from ..data.dataset import site_data, load_dataset
from .results import METRICS_FILE, read_metrics
from .sections.compare import METHOD, PEOPLE_COUNTS, CompareSettings, chance_sentence


def metrics_from_runs(metrics_dir: str | Path, sites: list[str] | None = None) -> pd.DataFrame:
    """One row per site from ``<metrics_dir>/<site>/metrics.json`` (what a build wrote)."""
    rows = []
    for path in sorted(Path(metrics_dir).glob(f"*/{METRICS_FILE}")):
        if sites is None or path.parent.name in sites:
            rows.append(read_metrics(path))
    return pd.DataFrame(rows)


def metrics_from_dataset(data_path: str | Path, settings: Settings = Settings()) -> pd.DataFrame:
    """The same table computed directly from a dataset (an analyst's run without a build)."""
    dataset = load_dataset(data_path)
    rows = []
    for code in dataset.site_codes:
        rows.append(analyse_site(site_data(dataset, code), settings).metrics.values)
    return pd.DataFrame(rows)


def national_model(data_path: str | Path, sites: list[str] | None = None, rows_path: str | Path | None = None):
    """The national model with site effects (:func:`ipcreport.analysis.meta.national_model`) on
    every site's people, or the named sites': from the rows a build wrote (``rows_path``, a few
    numbers per person, so the overview never holds the nation's records), else computed from
    the dataset one site at a time."""
    if rows_path:
        rows = pd.read_parquet(rows_path)
        return meta.national_model(rows if sites is None else rows[rows["site"].isin(sites)])
    dataset = load_dataset(data_path)
    codes = [c for c in dataset.site_codes if sites is None or c in sites]
    return meta.national_model_of_sites((site_data(dataset, c).tables for c in codes),
                                        pd.Timestamp(dataset.meta.extract_date))


FUNNEL_INDICATORS = ("direct_payment_share", "under_70_share", "follow_up_share", "emergency_rate")


def as_published(table: pd.DataFrame, key: str, policy: disclosure.Policy = disclosure.DEFAULT) -> pd.DataFrame:
    """An indicator's sites with the counts of people rounded as the tables publish them, and
    sites whose count of people is 1 to 7 (or whose denominator of people is too small) left
    out: a share plotted or printed from exact counts would give back the count a table rounds."""
    people_num, people_den = PEOPLE_COUNTS.get(key, (False, False))
    keep = pd.Series(True, index=table.index)
    if people_num:
        keep &= ~table["numerator"].map(policy.hidden).astype(bool)
    if people_den:
        keep &= table["denominator"].map(lambda n: disclosure.enough(n, policy)).astype(bool)
    table = table[keep].copy()
    for column, is_people in (("numerator", people_num), ("denominator", people_den)):
        if is_people:
            table[column] = table[column].map(policy.rounded).astype(float)
    return table[table["denominator"] > 0]


def funnels(national: pd.DataFrame, settings: CompareSettings | None = None,
            policy: disclosure.Policy = disclosure.DEFAULT) -> dict[str, F.Funnel]:
    """Funnel plots of the key proportions and rates, one per indicator, every site a point:
    95% and 99.8% limits around England's value where given, else the pooled value of all
    sites, widened for between-site variation (Spiegelhalter's additive random effects).
    Counts of people enter rounded (:func:`as_published`)."""
    settings = settings or CompareSettings()
    out = {}
    for key in FUNNEL_INDICATORS:
        table = as_published(national[(national["indicator"] == key) & (national["denominator"] > 0)], key, policy)
        ind = I.INDICATORS[key]
        england = settings.national.get(key)
        if len(table) >= 2:
            out[key] = F.funnel(table.assign(unit=table["site_name"]), ind.kind, unit="unit",
                                numerator="numerator", denominator="denominator", overdispersion=METHOD,
                                target=None if england is None else england / ind.multiplier)
    return out


def funnel_chart(funnels_by_key: dict[str, F.Funnel], key: str, settings: CompareSettings, xlabel: str, ylabel: str):
    """The overview's funnel plot of one indicator: points coloured by its polarity, the
    centre line named for what it is (England, or all sites in this dataset)."""
    from . import charts  # the charts only where a chart is drawn

    ind, result = I.INDICATORS[key], funnels_by_key.get(key)
    if result is None:
        return charts.funnel_plot([], None, ind.name, xlabel, ylabel)
    return charts.funnel_plot(result.units, result.grid, ind.name, xlabel, ylabel, percent=ind.unit == "%",
                              polarity=ind.polarity,
                              target_label="England" if key in settings.national else "All sites in this dataset (pooled)")


def funnel_download(funnels_by_key: dict[str, F.Funnel], key: str) -> pd.DataFrame:
    """What a funnel plot draws: each site's value (from the published counts), its rounded
    numerator and denominator, the comparator, the 95% and 99.8% limits at its size and whether
    it lies outside them."""
    result = funnels_by_key.get(key)
    if result is None:
        return pd.DataFrame()
    u, ind = result.units, I.INDICATORS[key]
    fmt = (lambda v: f"{v * ind.multiplier:.1f}%") if ind.unit == "%" else (lambda v: f"{v * ind.multiplier:.3f}")
    return pd.DataFrame({
        "Value": [fmt(v / result.multiplier) for v in u["value"]],
        "Numerator": [f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}" for v in u["numerator"]],
        "Denominator": [f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}" for v in u["denominator"]],
        "Comparator": [fmt(t / result.multiplier) for t in u["target"]],
        "Lower 95% limit": [fmt(v / result.multiplier) for v in u["lower_95"]],
        "Upper 95% limit": [fmt(v / result.multiplier) for v in u["upper_95"]],
        "Lower 99.8% limit": [fmt(v / result.multiplier) for v in u["lower_998"]],
        "Upper 99.8% limit": [fmt(v / result.multiplier) for v in u["upper_998"]],
        "Outside": u["flag"].str.replace("_", " ").to_numpy(),
        "Verdict": [verdict(key, f) for f in u["flag"]],
    }, index=pd.Index(u["unit"].to_numpy(), name="Site"))


def verdict(key: str, flag: str) -> str:
    """A funnel flag as the reader's verdict: better / worse where the indicator has a
    polarity, higher / lower where it does not, within the limits otherwise."""
    direction = None if flag == "within" else "Higher" if flag.startswith("above") else "Lower"
    return P.polarised(direction, I.INDICATORS[key].polarity)


def flagged(funnels_by_key: dict[str, F.Funnel], settings: CompareSettings | None = None) -> pd.DataFrame:
    """Sites outside a funnel's 95% limits: which indicator, which side, better or worse."""
    settings = settings or CompareSettings()
    rows = []
    for key, result in funnels_by_key.items():
        ind = I.INDICATORS[key]
        for unit in result.units[result.units["flag"] != "within"].itertuples():
            value = unit.value * ind.multiplier
            rows.append({"Site": unit.unit, "Indicator": ind.name,
                         "Value": f"{value:.1f}%" if ind.unit == "%" else f"{value:.2f}",
                         "Comparator": ("England " if key in settings.national else "All sites ")
                         + (f"{result.target * ind.multiplier:.1f}%" if ind.unit == "%"
                            else f"{result.target * ind.multiplier:.2f}"),
                         "Outside": unit.flag.replace("_", " "), "Verdict": verdict(key, unit.flag)})
    return pd.DataFrame(rows, columns=["Site", "Indicator", "Value", "Comparator", "Outside", "Verdict"])


def funnel_messages(funnels_by_key: dict[str, F.Funnel], settings: CompareSettings | None = None) -> list[str]:
    """The overview's key messages about the comparisons: who is worse or better, how many
    flags chance alone would give, and how much sites vary beyond chance."""
    settings = settings or CompareSettings()
    if not funnels_by_key:
        return ["Too few sites to compare."]
    table = flagged(funnels_by_key, settings)
    units = sum(len(f.units) for f in funnels_by_key.values())
    msgs = []
    for word in ("Worse", "Better", "Higher", "Lower"):
        rows = table[table["Verdict"] == word]
        if len(rows):
            msgs.append(f"{word} than the comparator: " + "; ".join(
                f"{r.Site} ({r.Indicator.lower()}, {r.Value})" for r in rows.itertuples()) + ".")
    if table.empty:
        msgs.append("No site lies outside the 95% limits of any funnel plot.")
    msgs.append(f"{len(table)} of {units} site comparisons lie outside the 95% limits. "
                + chance_sentence(units, 0.95))
    widened = [I.INDICATORS[k].name.lower() for k, f in funnels_by_key.items() if f.overdispersion and f.tau2 > 0]
    if widened:
        msgs.append("Sites vary more than chance alone explains for " + ", ".join(widened)
                    + ", so those limits are widened for it.")
    england = [I.INDICATORS[k].name.lower() for k in funnels_by_key if k in settings.national]
    if england:
        msgs.append(f"Compared with England for {', '.join(england)} (source: {settings.source}); with all sites "
                    "in this dataset pooled otherwise.")
    else:
        msgs.append("Compared with all sites in this dataset pooled; no national figures were supplied, so this "
                    "is not England.")
    return msgs


MONEY_COLUMNS = {
    "budget_total": "Agreed budgets in the year",
    "spend_in_year": "Spent in the year",
    "budget_committed_annual": "Committed a year",
    "net_new_money": "Net new money",
    "double_running_cost": "Double running, phased",
    "double_running_cost_fast": "Double running, fast",
    "spend_forecast": "Spend forecast, next year",
    "pooled_fund": "Pooled fund, next year",
}


def money_by_site(m: pd.DataFrame, policy=None) -> pd.DataFrame:
    """Every site's money figures (GBP, the same definitions as the site briefings) and their sum.

    A column's total is left missing when any site lacks the figure, so a total never silently
    leaves a site out.
    """
    table = m.set_index("site_name")[[c for c in MONEY_COLUMNS if c in m]].astype(float)
    if policy is not None:  # a site of a handful of holders: its money is near one person's budget
        few = ~m["people_ipc"].fillna(0).map(lambda n: disclosure.enough(n, policy)).to_numpy(bool)
        table.loc[few] = float("nan")  # and with it every total (a total would give it back)
    total = table.sum(min_count=1).where(table.notna().all())
    table.loc["All sites"] = total
    return table.rename(columns=MONEY_COLUMNS)


def _largest(m: pd.DataFrame, column: str, top: int = 3) -> str:
    """'Birmingham £1.1m, Surrey £896k and Hertfordshire £691k': the sites with most of a money figure."""
    rows = m.dropna(subset=[column]).sort_values(column, ascending=False).head(top)
    items = [f"{name} {gbp(value)}" for name, value in zip(rows["site_name"], rows[column])]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def programme_decisions(m: pd.DataFrame, likely: float = 0.2) -> list[str]:
    """The overview's key messages for a programme board, largest money at stake first: sites
    likely to overspend their pooled fund (a chance of ``likely`` or more), new money across
    sites, and double running; each with what it points to doing."""
    if m.empty:
        return []
    items: list[tuple[float, str]] = []
    risky = m[m["overspend_probability"].fillna(0) >= likely].sort_values("overspend_probability", ascending=False)
    if not risky.empty:
        gaps = (risky["spend_p95"] - risky["pooled_fund"]).clip(lower=0)
        named = "; ".join(f"{n} {p:.0%}" + (f" (up to {gbp(g)} over its fund)" if g > 0 else "")
                          for n, p, g in zip(risky["site_name"], risky["overspend_probability"], gaps))
        items.append((float(gaps.sum()), f"Overspend risk next year: {named}. Decision: agree a contingency or a "
                                         "slower enrolment plan with these sites' funders before the next extract."))
    new = float(m["net_new_money"].clip(lower=0).sum())
    if new > 0:
        items.append((new, f"New money: {gbp(new)} of this year's budgets across the sites is more than the same "
                           f"people's services cost before (most: {_largest(m, 'net_new_money')}). Decision: agree "
                           "with funders how it is met in each pooled fund."))
    phased, fast = float(m["double_running_cost"].sum()), float(m["double_running_cost_fast"].sum())
    if phased > 0:
        items.append((phased, f"Double running: {gbp(phased)} paid twice next year across the sites under the phased "
                              f"roll-outs, {gbp(fast)} if growth comes faster (most: "
                              f"{_largest(m, 'double_running_cost')}). Decision: hold sites to their phased plans "
                              "and their notice calendars."))
    return [text for _, text in sorted(items, key=lambda item: -item[0])]


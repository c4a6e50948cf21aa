"""Is it changing, is it unusual, how does it compare? Control charts of the site's monthly
series (NHS England's Making Data Count) and its indicators against England and its peers
(PHE Fingertips style)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import disclosure
from ..analysis import indicators as I
from ..analysis import peers as P
from ..analysis import spc as S
from ..cache import sha256_json
from ..dataset import SiteData
from ..results import Metrics

if TYPE_CHECKING:  # only a type here: a build's prepare step uses compare_all without the charts
    from .allocation import Allocation

# Spend and admissions are charted per active budget holder: a programme that is growing would
# otherwise show nothing but its own growth as special cause.
SERIES = {  # key -> (title, y label, money, improvement direction)
    "new_holders": ("New budget holders each month", "People", False, "neutral"),
    "spend": ("Spend per active budget holder each month", "GBP", True, "neutral"),
    "emergency_admissions": ("Emergency admissions per 100 active budget holders each month", "Admissions per 100",
                             False, "decrease"),
}
MIN_POINTS = 6  # fewer monthly points make no chart worth reading
MONTHS_SHOWN = 24  # the latest two years: past a site's first roll-out ramp


@dataclass
class Compare:
    control: dict[str, tuple[pd.DataFrame, S.SpcSummary]]
    comparisons: pd.DataFrame  # one row per indicator: the site against England and its peers
    spine: pd.DataFrame
    peers: list[str]
    level: float


def active_holders(data: SiteData, months: pd.PeriodIndex) -> pd.Series:
    """Budget holders enrolled by the end of each month and not left before it began."""
    holders = data["people"][data["people"]["group"] == "ipc"]
    starts = holders["index_date"].dt.to_period("M").to_numpy()
    exits = holders["exit_date"].dt.to_period("M")
    counts = [int(((starts <= m) & ~(exits < m).fillna(False).to_numpy()).sum()) for m in months]
    return pd.Series(counts, index=months, dtype=float)


def monthly_admissions(data: SiteData) -> pd.Series:
    """Emergency admissions of budget holders after their start, per month."""
    people, events = data["people"], data["events"]
    holders = people.loc[people["group"] == "ipc", ["person_id", "index_date"]]
    ev = events[events["event_type"] == "emergency_admission"].merge(holders, on="person_id")
    ev = ev[ev["event_date"] >= ev["index_date"]]
    return ev.groupby(ev["event_date"].dt.to_period("M")).size()


def complete_months(series: pd.Series, first: pd.Period, extract_date: pd.Timestamp) -> pd.Series:
    """The series over every month from ``first`` to the last month complete by the extract date."""
    last = extract_date.to_period("M")
    if extract_date != last.end_time.normalize():
        last -= 1
    months = pd.period_range(first, last, freq="M")
    return series.reindex(months, fill_value=0).astype(float)


def control_charts(data: SiteData, allocation: Allocation) -> dict[str, tuple[pd.DataFrame, S.SpcSummary]]:
    monthly = allocation.monthly
    if monthly.empty:
        return {}
    first = monthly.index.min().to_period("M")
    raw = {
        "new_holders": monthly["new_holders"].set_axis(monthly.index.to_period("M")),
        "spend": monthly["spend"].set_axis(monthly.index.to_period("M")),
        "emergency_admissions": monthly_admissions(data),
    }
    months = complete_months(raw["new_holders"], first, data.extract_date).index[-MONTHS_SHOWN:]
    active = active_holders(data, months)
    per_holder = {"new_holders": 1.0, "spend": 1.0, "emergency_admissions": 100.0}
    charts = {}
    for key, series in raw.items():
        values = complete_months(series, first, data.extract_date).reindex(months)
        if key != "new_holders":
            values = (values / active.where(active > 0) * per_holder[key]).dropna()
        if len(values) >= MIN_POINTS:
            charts[key] = S.spc(values, improvement_direction=SERIES[key][3])
    return charts


@dataclass
class SiteComparison:
    rows: pd.DataFrame  # one row per indicator: value, interval, England, peers, verdicts
    spine: pd.DataFrame
    peers: list[str]


def compare_all(national: pd.DataFrame, level: float = 0.95, codes: list[str] | None = None) -> dict[str, SiteComparison]:
    """Every site (or those in ``codes``) against England and its peers, from the national
    indicator table."""
    sites = I.sites_of(national)
    neighbours = P.nearest_neighbours(sites, P.read_areas(), k=min(5, len(sites) - 1)) if len(sites) > 1 else None
    groups = P.peer_groups(neighbours) if neighbours is not None else {}
    compared = {}
    for key, ind in I.INDICATORS.items():
        table = national[(national["indicator"] == key) & (national["denominator"] > 0)]
        if not table.empty:
            compared[key] = P.compare_sites(table, ind.kind, ind.polarity, level=level, neighbours=neighbours,
                                            multiplier=ind.multiplier)
            # the counts behind each value: the published value is worked from them once rounded
            compared[key] = compared[key].merge(table[["site_code", "numerator", "denominator"]], on="site_code")
    out = {}
    for code in sites["site_code"] if codes is None else codes:
        rows, by_name = [], {}
        for key, result in compared.items():
            mine = result[result["site_code"] == code]
            if mine.empty:
                continue
            ind = I.INDICATORS[key]
            rows.append({"key": key, "indicator": ind.name, "unit": ind.unit, **mine.iloc[0].drop("site_code").to_dict()})
            by_name[ind.name] = result
        out[code] = SiteComparison(pd.DataFrame(rows), P.spine_rows(by_name, code), groups.get(code, []))
    return out


def fingerprint(comparison: SiteComparison | None) -> str:
    """What a site's briefing shows of other sites, at the precision it prints: a change
    elsewhere that leaves this unchanged does not make this site's briefing stale."""
    if comparison is None or comparison.rows.empty:
        return sha256_json(None)
    numbers = ["value", "low", "high", "england", "peer_value"]
    rows = comparison.rows[["key", "vs_england", "vs_peers", *numbers]].copy()
    rows[numbers] = rows[numbers].map(lambda v: None if pd.isna(v) else float(f"{v:.3g}"))
    spine = comparison.spine.drop(columns=["indicator"]).map(lambda v: float(f"{v:.3g}") if isinstance(v, float) else v)
    return sha256_json({"rows": rows.to_dict("records"), "spine": spine.to_dict("records"), "peers": comparison.peers})


def compute(data: SiteData, allocation: Allocation, national: pd.DataFrame | None, metrics: Metrics,
            level: float = 0.95) -> Compare:
    control = control_charts(data, allocation)
    for key, (frame, summary) in control.items():
        metrics.update({f"spc_{key}_variation": summary.variation,
                        f"spc_{key}_special_cause_points": int((frame["point_class"] != "common_cause").sum())})
    empty = pd.DataFrame()
    if national is None or national.empty or data.site_code not in set(national["site_code"]):
        return Compare(control, empty, empty, [], level)
    mine = compare_all(national, level, codes=[data.site_code])[data.site_code]
    for row in mine.rows.itertuples():
        metrics.update({f"vs_england_{row.key}": row.vs_england, f"vs_peers_{row.key}": row.vs_peers})
    return Compare(control, mine.rows, mine.spine, mine.peers, level)


# Indicators whose numerator or denominator counts people (the rest count events over person-years).
PEOPLE_COUNTS = {"holders_per_10k": (True, False), "direct_payment_share": (True, True),
                 "new_need_share": (True, True), "under_70_share": (True, True), "follow_up_share": (True, True),
                 "emergency_rate": (False, False)}


def published_value(row, policy: disclosure.Policy = disclosure.DEFAULT, level: float = 0.95) -> tuple | None:
    """An indicator as published, (value, low, high): worked from its counts of people once
    rounded, so neither the value nor its interval multiplied back by the denominator gives an
    exact count; None where a count is small (hidden)."""
    people_num, people_den = PEOPLE_COUNTS.get(row.key, (False, False))
    num, den = float(row.numerator), float(row.denominator)
    if (people_num and policy.hidden(num)) or (people_den and not disclosure.enough(den, policy)):
        return None
    num = float(policy.rounded(num)) if people_num else num
    den = float(policy.rounded(den)) if people_den else den
    if not den:
        return None
    ind = I.INDICATORS[row.key]
    interval = P.proportion_interval if ind.kind == "proportion" else P.rate_interval
    low, high = (float(np.asarray(b).ravel()[0]) for b in interval(np.array([num]), np.array([den]), level))
    return num / den * ind.multiplier, low * ind.multiplier, high * ind.multiplier


def comparison_table(c: Compare, policy: disclosure.Policy = disclosure.DEFAULT) -> pd.DataFrame:
    t = c.comparisons

    def fmt(v, unit):
        return f"{v:.1f}%" if unit == "%" else f"{v:,.2f}"

    shown = [published_value(row, policy, c.level) for row in t.itertuples()]
    return pd.DataFrame({
        "This site": [disclosure.SUPPRESSED if v is None else fmt(v[0], u) for v, u in zip(shown, t["unit"])],
        f"{c.level:.0%} interval": [disclosure.SUPPRESSED if v is None else f"{fmt(v[1], u)} to {fmt(v[2], u)}"
                                    for v, u in zip(shown, t["unit"])],
        "England": [fmt(v, u) for v, u in zip(t["england"], t["unit"])],
        "Against England": t["vs_england"].to_numpy(),
        "Peers": [fmt(v, u) if pd.notna(v) else "" for v, u in zip(t["peer_value"], t["unit"])],
        "Against peers": t["vs_peers"].to_numpy(),
    }, index=t["indicator"].to_numpy())


def messages(c: Compare, site_names: dict[str, str] | None = None) -> list[str]:
    msgs = []
    for key, (frame, summary) in c.control.items():
        special = int((frame["point_class"] != "common_cause").sum())
        title = SERIES[key][0].lower()
        if special:
            latest = "; the latest month is itself unusual" if not summary.variation.startswith("common") else ""
            msgs.append(f"{SERIES[key][0]}: {special} of {summary.points} months show special-cause variation "
                        f"({summary.variation_label.lower()} at the latest point{latest}).")
        else:
            msgs.append(f"{SERIES[key][0]}: only common-cause variation over {summary.points} months.")
        if summary.trial:
            msgs[-1] += f" Limits for {title} are trial limits (fewer than 12 months)."
    if not c.comparisons.empty:
        notable = c.comparisons[~c.comparisons["vs_england"].isin(["Similar", "Not compared"])]
        if notable.empty:
            msgs.append(f"Every indicator is similar to England at {c.level:.0%} confidence.")
        else:
            msgs.append("Against England (" + f"{c.level:.0%} confidence): " + "; ".join(
                f"{row.indicator.lower()}: {row.vs_england.lower()}" for row in notable.itertuples()) + ".")
        if c.peers:
            names = [site_names.get(p, p) if site_names else p for p in c.peers]
            msgs.append("Peers (nearest on population, deprivation and age): " + ", ".join(names) + ".")
    return msgs

"""Is it changing, is it unusual, how does it compare? Control charts of the site's monthly
series (NHS England's Making Data Count) and its indicators against England and its peers
(PHE Fingertips style)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...analysis import funnel as F
from .. import disclosure
from ...analysis import indicators as I
from ...analysis import peers as P
from ...analysis import spc as S
from ...data.files import sha256_json
from ...data.dataset import SiteData
from ..formats import gbp
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
POOLED_NAME = "all sites in this dataset"
METHOD = "additive"  # Spiegelhalter's random-effects allowance for between-site variation


class SettingsError(ValueError):
    """A comparison setting (national values, rebase dates) that cannot be used."""


@dataclass(frozen=True)
class CompareSettings:
    """What the comparisons take from the run parameters.

    ``national``: England values by indicator key, on the scale the briefing prints (a
    percentage for shares, per 10,000 residents, per person-year), and ``source``, where they
    come from. Without them the comparator is all sites in this dataset, pooled.
    ``rebase``: series key -> dates at which a control chart's limits start again (a change
    in how the service works); a date given for "all" applies to every series.
    """

    national: dict[str, float] = field(default_factory=dict)
    source: str = ""
    rebase: dict[str, tuple[pd.Timestamp, ...]] = field(default_factory=dict)

    @classmethod
    def from_parameters(cls, national_values: dict | None = None, spc_rebase: dict | list | None = None) -> CompareSettings:
        """From the notebook parameters ``national_values`` and ``spc_rebase`` (see
        params/demo.yaml); a clear error naming the setting when one is unusable."""
        values = dict(national_values or {})
        source = str(values.pop("source", "") or "").strip()
        unknown = sorted(set(values) - set(I.INDICATORS))
        if unknown:
            raise SettingsError(f"compare.national_values: unknown indicator(s) {', '.join(unknown)} "
                                f"(known: {', '.join(I.INDICATORS)})")
        bad = [k for k, v in values.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0]
        if bad:
            raise SettingsError(f"compare.national_values: {', '.join(bad)} must be numbers not below zero")
        if values and not source:
            raise SettingsError("compare.national_values: say where the England values come from (source: ...)")
        return cls({k: float(v) for k, v in values.items()}, source, _rebase_dates(spc_rebase))

    def comparator(self, key: str) -> str:
        """'England' where a national value is given for the indicator, else the pooled sites."""
        return "England" if key in self.national else POOLED_NAME


def _rebase_dates(spc_rebase: dict | list | None) -> dict[str, tuple[pd.Timestamp, ...]]:
    by_series = spc_rebase if isinstance(spc_rebase, dict) else {"all": spc_rebase or []}
    unknown = sorted(set(by_series) - set(SERIES) - {"all"})
    if unknown:
        raise SettingsError(f"compare.spc_rebase: unknown series {', '.join(unknown)} (known: all, {', '.join(SERIES)})")
    out = {}
    for key, dates in by_series.items():
        dates = [dates] if isinstance(dates, str) or not isinstance(dates, (list, tuple)) else dates
        try:
            out[key] = tuple(sorted(pd.Timestamp(d) for d in dates))
        except (ValueError, TypeError) as err:
            raise SettingsError(f"compare.spc_rebase.{key}: dates must be ISO dates like 2025-04-01 ({err})") from err
    return out


def rebase_for(settings: CompareSettings, key: str) -> tuple[pd.Timestamp, ...]:
    return tuple(sorted({*settings.rebase.get("all", ()), *settings.rebase.get(key, ())}))


@dataclass
class Compare:
    control: dict[str, tuple[pd.DataFrame, S.SpcSummary]]
    comparisons: pd.DataFrame  # one row per indicator: the site against the comparator and its peers
    spine: pd.DataFrame
    peers: list[str]
    level: float
    settings: CompareSettings = field(default_factory=CompareSettings)
    peer_reasons: pd.DataFrame = field(default_factory=pd.DataFrame)  # why each peer was chosen


def active_holders(data: SiteData, months: pd.PeriodIndex) -> pd.Series:
    """Budget holders enrolled by the end of each month and not left before it began."""
    people = data["people"]
    holders = people[(people["group"] == "ipc") & people["index_date"].notna()]
    # months as integers: enrolled by month m is start <= m; of those, gone before m began is
    # m >= max(start, exit + 1). Two sorted searches instead of a pass over people per month.
    start = holders["index_date"].dt.to_period("M").array.asi8
    exit_ = holders["exit_date"].dt.to_period("M").array
    gone = np.maximum(start, exit_.asi8 + 1)[~exit_.isna()]
    m = months.asi8
    counts = np.searchsorted(np.sort(start), m, side="right") - np.searchsorted(np.sort(gone), m, side="right")
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


def control_charts(data: SiteData, allocation: Allocation,
                   settings: CompareSettings | None = None) -> dict[str, tuple[pd.DataFrame, S.SpcSummary]]:
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
            charts[key] = S.spc(values, improvement_direction=SERIES[key][3],
                                rebase=rebase_for(settings or CompareSettings(), key))
    return charts


@dataclass
class SiteComparison:
    rows: pd.DataFrame  # one row per indicator: value, interval, comparator, peers, verdicts
    spine: pd.DataFrame
    peers: list[str]
    reasons: pd.DataFrame = field(default_factory=pd.DataFrame)


def control_download(c: "Compare", key: str, people: float,
                     policy: disclosure.Policy = disclosure.DEFAULT) -> pd.DataFrame:
    """What a control chart draws, as a table may publish it: each month's value (new holders
    rounded to 5 or hidden; money and rates at the precision the chart's axis reads), the mean,
    the process limits and the point's class. A site of ``people`` budget holders at or below
    the threshold publishes no monthly values: each would describe a handful of people."""
    frame = c.control.get(key, (None,))[0]
    columns = ["Value", "Mean", "Lower process limit", "Upper process limit", "Point"]
    if frame is None or frame.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="Month"))
    if key == "new_holders":
        fmt = policy.publish_count
    elif SERIES[key][2]:
        fmt = gbp
    else:
        fmt = lambda v: f"{v:.1f}"  # noqa: E731
    few = not disclosure.enough(people, policy)
    shown = pd.DataFrame({
        "Value": [disclosure.SUPPRESSED if few else fmt(v) for v in frame["value"]],
        "Mean": [disclosure.SUPPRESSED if few else fmt(v) for v in frame["mean"]],
        "Lower process limit": [disclosure.SUPPRESSED if few else fmt(max(v, 0)) for v in frame["lcl"]],
        "Upper process limit": [disclosure.SUPPRESSED if few else fmt(v) for v in frame["ucl"]],
        "Point": frame["point_class"].astype(str).str.replace("_", " ").to_numpy(),
    }, index=pd.to_datetime(frame["date"].astype(str)).dt.strftime("%Y-%m").to_numpy())
    return shown


def compare_all(national: pd.DataFrame, level: float = 0.95, codes: list[str] | None = None,
                settings: CompareSettings | None = None) -> dict[str, SiteComparison]:
    """Every site (or those in ``codes``) against the comparator (England where national
    values are given, else all sites pooled) and its peers, from the national indicator table."""
    settings = settings or CompareSettings()
    sites = I.sites_of(national)
    areas = P.read_areas()
    neighbours = P.nearest_neighbours(sites, areas, k=P.peer_count(len(sites))) if len(sites) > 1 else None
    groups = P.peer_groups(neighbours) if neighbours is not None else {}
    compared = {}
    for key, ind in I.INDICATORS.items():
        table = national[(national["indicator"] == key) & (national["denominator"] > 0)]
        if not table.empty:
            compared[key] = P.compare_sites(table, ind.kind, ind.polarity, level=level, neighbours=neighbours,
                                            multiplier=ind.multiplier, england=settings.national.get(key),
                                            overdispersion=METHOD)
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
            rows.append({"key": key, "indicator": ind.name, "unit": ind.unit, "comparator": settings.comparator(key),
                         **mine.iloc[0].drop("site_code").to_dict()})
            by_name[ind.name] = result
        peers = groups.get(code, [])
        out[code] = SiteComparison(pd.DataFrame(rows), P.spine_rows(by_name, code), peers,
                                   P.peer_reasons(sites, areas, code, peers))
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
            level: float = 0.95, settings: CompareSettings | None = None) -> Compare:
    settings = settings or CompareSettings()
    control = control_charts(data, allocation, settings)
    for key, (frame, summary) in control.items():
        metrics.update({f"spc_{key}_variation": summary.variation,
                        f"spc_{key}_special_cause_points": int((frame["point_class"] != "common_cause").sum())})
    empty = pd.DataFrame()
    if national is None or national.empty or data.site_code not in set(national["site_code"]):
        return Compare(control, empty, empty, [], level, settings)
    mine = compare_all(national, level, codes=[data.site_code], settings=settings)[data.site_code]
    for row in mine.rows.itertuples():
        metrics.update({f"vs_england_{row.key}": row.vs_england, f"vs_peers_{row.key}": row.vs_peers})
    return Compare(control, mine.rows, mine.spine, mine.peers, level, settings, mine.reasons)


def comparator_label(c: Compare) -> str:
    """What the site is compared with, as a column heading."""
    names = set(c.comparisons["comparator"]) if "comparator" in c.comparisons else set()
    if names == {"England"}:
        return "England"
    return "All sites" if names <= {POOLED_NAME} else "England or all sites"


def comparator_sentence(c: Compare) -> str:
    """The comparator in words, with the England values' source where there is one."""
    if not c.settings.national:
        return "all sites in this dataset pooled (no national figures were supplied, so this is not England)"
    given = [I.INDICATORS[k].name.lower() for k in c.settings.national if k in I.INDICATORS]
    return f"England for {', '.join(given)} (source: {c.settings.source}); all sites in this dataset pooled otherwise"


def definitions(level: float = 0.95) -> dict[str, str]:
    """The comparison terms for the methods section, in words a finance director can sign."""
    return {
        "Comparator": "What a site is compared with: England where the run's parameters supply a national value "
                      "with its source; otherwise all sites in this dataset pooled (their total count over their "
                      "total denominator), which is not England.",
        "Better / Worse": f"The site lies outside {level:.0%} limits around the comparator drawn for a site of its "
                          "size (funnel-plot limits), widened for the variation between sites that chance does not "
                          "explain (Spiegelhalter's additive random-effects method, estimated from all sites when "
                          "there are 8 or more). Higher / Lower where neither direction is better. Chance alone puts "
                          f"about {1 - level:.0%} of comparisons outside the limits.",
        "Peers": "The sites in this dataset most alike on deprivation (IMD 2019 score, counted double), age structure "
                 "(share aged 66 and over) and size (log of residents, counted half): 5, or the nearer half of the "
                 "other sites; the peers table says why each was chosen.",
        "Control chart": "Monthly values with their mean and process limits (mean ± 2.66 × the average month-to-"
                         "month change, NHS England's Making Data Count). The variation icon says whether the latest "
                         "month is special cause (orange: concern, blue: improvement, purple: neither; H high, L low) "
                         "or common cause (grey); the assurance icon, where there is a target, whether the process "
                         "will consistently pass (P) or fail (F) it, or hit and miss (?). Limits start again at change "
                         "dates set in the run's parameters.",
    }


def _fmt(v: float, unit: str) -> str:
    return f"{v:.1f}%" if unit == "%" else f"{v:,.2f}"


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
    name = comparator_label(c)
    comparator = [_fmt(v, u) + (" (England)" if name == "England or all sites" and k == "England" else "")
                  for v, u, k in zip(t["england"], t["unit"], t["comparator"])]
    shown = [published_value(row, policy, c.level) for row in t.itertuples()]
    return pd.DataFrame({
        "This site": [disclosure.SUPPRESSED if v is None else _fmt(v[0], u) for v, u in zip(shown, t["unit"])],
        f"{c.level:.0%} interval": [disclosure.SUPPRESSED if v is None else f"{_fmt(v[1], u)} to {_fmt(v[2], u)}"
                                    for v, u in zip(shown, t["unit"])],
        name: comparator,
        f"Against {name if name.startswith('England') else name.lower()}": t["vs_england"].to_numpy(),
        "Peers": [_fmt(v, u) if pd.notna(v) else "" for v, u in zip(t["peer_value"], t["unit"])],
        "Against peers": t["vs_peers"].to_numpy(),
    }, index=t["indicator"].to_numpy())


def published_spine(c: Compare, policy: disclosure.Policy = disclosure.DEFAULT) -> pd.DataFrame:
    """The spine chart's rows with this site's value as the tables publish it
    (:func:`published_value`: worked from rounded counts of people; missing where hidden), so
    the chart's labels and the tables agree."""
    shown = {row.indicator: published_value(row, policy, c.level) for row in c.comparisons.itertuples()}

    def value(name: str, drawn: float) -> float:
        if name not in shown:  # not a compared indicator: drawn as it is
            return drawn
        return np.nan if shown[name] is None else shown[name][0]

    return c.spine.assign(value=[value(n, v) for n, v in zip(c.spine["indicator"], c.spine["value"])])


def comparison_counts(c: Compare, policy: disclosure.Policy = disclosure.DEFAULT) -> pd.DataFrame:
    """The numerator and denominator behind each indicator of :func:`comparison_table`, as the
    downloads publish them: counts of people rounded (hidden where 1 to 7, or where the value
    is), events and person-years as counted. Indexed by the indicator's name."""
    t = c.comparisons
    rows = []
    for row in t.itertuples():
        people_num, people_den = PEOPLE_COUNTS.get(row.key, (False, False))
        if published_value(row, policy, c.level) is None:
            rows.append((np.nan, np.nan))
            continue
        rows.append((float(policy.rounded(row.numerator)) if people_num else round(float(row.numerator), 1),
                     float(policy.rounded(row.denominator)) if people_den else round(float(row.denominator), 1)))
    return pd.DataFrame(rows, columns=["numerator", "denominator"], index=t["indicator"].to_numpy())


def peer_table(c: Compare, site_names: dict[str, str] | None = None) -> pd.DataFrame:
    """The site and its peers on the three variables peers are chosen on, and why each was."""
    r = c.peer_reasons
    if r.empty:
        return pd.DataFrame()
    names = site_names or {}
    return pd.DataFrame({
        "Deprivation (IMD 2019 score)": [f"{v:.1f}" for v in r["imd_score"]],
        "Aged 66 and over": [f"{v:.0%}" for v in r["share_age_66_plus"]],
        "Residents": [f"{v / 1e6:.2f}m" if v >= 1e6 else f"{v / 1e3:,.0f}k" for v in r["population"]],
        "Why chosen": r["why"].to_numpy(),
    }, index=[names.get(code, code) for code in r["site_code"]])


def chance_sentence(comparisons: int, level: float) -> str:
    expected, any_flag = F.chance_flags(comparisons, level)
    return (f"Chance alone would put about {expected:.1f} of {comparisons} comparisons outside {level:.0%} limits "
            f"(at least one {any_flag:.0%} of the time), so a single flag is a prompt to look, not a finding.")


def _control_messages(c: Compare) -> list[str]:
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
        if summary.segments > 1:
            starts = frame.groupby("segment")["date"].min().iloc[1:]
            msgs[-1] += " Limits start again from " + ", ".join(f"{d:%B %Y}" for d in starts) + " (a change date)."
        if summary.trial:
            msgs[-1] += f" Limits for {title} are trial limits (fewer than 12 months)."
    return msgs


def messages(c: Compare, site_names: dict[str, str] | None = None) -> list[str]:
    msgs = _control_messages(c)
    if c.comparisons.empty:
        return msgs
    t = c.comparisons
    against = {"England": "England", "All sites": POOLED_NAME}.get(comparator_label(c), "England or all sites")
    limits = f"{c.level:.0%} limits that allow for the usual variation between sites"
    notable = t[~t["vs_england"].isin(["Similar", "Not compared"])]
    if notable.empty:
        msgs.append(f"Every indicator is similar to {against} (within {limits}).")
    else:
        msgs.append(f"Against {against} ({limits}): " + "; ".join(
            f"{row.indicator.lower()}: {row.vs_england.lower()}" for row in notable.itertuples()) + ".")
    compared = int((t["vs_england"] != "Not compared").sum() + (t["vs_peers"] != "Not compared").sum())
    if compared:
        msgs.append(chance_sentence(compared, c.level))
    if c.peers:
        names = [site_names.get(p, p) if site_names else p for p in c.peers]
        msgs.append("Peers, the sites in this dataset most alike on deprivation, age structure and size: "
                    + ", ".join(names) + " (the peers table says why each was chosen).")
    return msgs

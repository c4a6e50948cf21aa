"""Alt text: what each chart shows, not only its type.

Each function returns one or two sentences with a chart's main values, for screen-reader
users and anyone reading the page without the image; the notebook's ``fig-alt`` (the chart's
type and layout) follows them (:func:`ipcreport.report.present.figure`). Counts of people are
never put here (the text is scrubbed as any published text is, but a share or a money figure
says what matters).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .charts import label
from .formats import gbp


def _pct(v: float, signed: bool = False) -> str:
    return f"{v:+.0%}" if signed else f"{v:.0%}"



def _names(names: list[str]) -> str:
    names = [str(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def funnel(units: pd.DataFrame, indicator: str) -> str:
    """'Funnel plot of X: 2 of 9 sites above the upper 95% limit: A and B; none below.'"""
    if units is None or len(units) == 0:
        return f"Funnel plot of {indicator}: too few sites to draw."
    flags = units["flag"].astype(str)
    parts = []
    for side, word in (("above", "above the upper"), ("below", "below the lower")):
        outside = units.loc[flags.str.startswith(side), "unit"].tolist()
        parts.append(f"{len(outside)} of {len(units)} sites {word} 95% limit" + (f": {_names(outside)}" if outside else ""))
    return f"Funnel plot of {indicator}: " + "; ".join(parts) + "."


def bar(values: pd.Series, what: str, money: bool = False, percent: bool = False, top: int = 3) -> str:
    """'Bar chart of X: largest A (45%), B (30%) and C (25%).'"""
    shown = values.dropna()
    if shown.empty:
        return f"Bar chart of {what}: no values to show."
    fmt = gbp if money else (lambda v: f"{v:.0%}") if percent else (lambda v: f"{v:,.0f}")
    largest = shown.sort_values(ascending=False).head(top)
    items = [f"{label(i)} ({fmt(v)})" for i, v in largest.items()]
    smallest = shown.idxmin()
    tail = f"; smallest {label(smallest)} ({fmt(shown[smallest])})" if len(shown) > top else ""
    return f"Bar chart of {what}: largest {_names(items)}{tail}."


def xmr(spc_frame: pd.DataFrame, what: str, money: bool = False) -> str:
    """'Control chart of X over 24 months, mean 41: 2 special-cause points (concern), latest 45.'"""
    if spc_frame is None or len(spc_frame) == 0:
        return f"Control chart of {what}: too few months to draw."
    fmt = gbp if money else (lambda v: f"{v:,.1f}")
    classes = spc_frame["point_class"].astype(str)
    special = classes[classes != "common_cause"].str.removeprefix("special_cause_").value_counts()
    signals = ("no special-cause points" if special.empty else
               ", ".join(f"{n} special-cause point{'s' if n > 1 else ''} ({kind})" for kind, n in special.items()))
    last = spc_frame.iloc[-1]
    return (f"Control chart of {what} over {len(spc_frame)} months: latest mean {fmt(last['mean'])}, "
            f"process limits {fmt(max(last['lcl'], 0))} to {fmt(last['ucl'])}; {signals}.")


def forest(rows: pd.DataFrame, what: str) -> str:
    """'Forest plot of X: all people 0.86 (0.72 to 1.02), interval includes 1 (no clear difference).'"""
    if rows is None or len(rows) == 0:
        return f"Forest plot of {what}: no estimates."
    overall = rows[rows["dimension"] == "overall"] if "dimension" in rows else rows.iloc[:0]
    if overall.empty or pd.isna(overall["irr"].iloc[0]):
        return f"Forest plot of {what}: no overall estimate."
    r = overall.iloc[0]
    verdict = ("below 1: fewer" if r["high"] < 1 else "above 1: more" if r["low"] > 1
               else "includes 1: no clear difference")
    return f"Forest plot of {what}: all people {r['irr']:.2f} ({r['low']:.2f} to {r['high']:.2f}), interval {verdict}."


def stacked_shares(shares: pd.DataFrame, what: str) -> str:
    """'Stacked bars of X: long term conditions mostly community health (21%); ...' (each row's
    largest part)."""
    if shares is None or shares.empty:
        return f"Stacked bars of {what}: nothing to show."
    parts = [f"{label(row)} mostly {label(values.idxmax())} ({_pct(values.max())})"
             for row, values in shares.fillna(0).iterrows() if values.max() > 0]
    return f"Stacked bars of {what}: " + "; ".join(parts) + "."


def line(values: pd.Series, what: str, money: bool = False) -> str:
    """'Line chart of X over 44 months: latest £95k (2026-09), highest £101k (2026-06).'"""
    shown = values.dropna() if values is not None else pd.Series(dtype=float)
    shown = shown[pd.to_numeric(shown, errors="coerce").notna()].astype(float)
    if shown.empty:
        return f"Line chart of {what}: nothing to show."
    fmt = gbp if money else (lambda v: f"{v:,.0f}")
    when = lambda i: f"{i:%Y-%m}" if hasattr(i, "strftime") else str(i)  # noqa: E731
    return (f"Line chart of {what} over {len(shown)} months: latest {fmt(shown.iloc[-1])} ({when(shown.index[-1])}), "
            f"highest {fmt(shown.max())} ({when(shown.idxmax())}).")


def medians(frame: pd.DataFrame, what: str, column: str = "median", money: bool = True) -> str:
    """'Chart of X by cohort: medians from £3k (mental health) to £21k (learning disability).'"""
    if frame is None or frame.empty or frame[column].dropna().empty:
        return f"Chart of {what}: nothing to show."
    m = frame[column].dropna()
    fmt = gbp if money else (lambda v: f"{v:,.2f}")
    return (f"Chart of {what}: medians from {fmt(m.min())} ({label(m.idxmin())}) to {fmt(m.max())} "
            f"({label(m.idxmax())}).")


def calibration(bins: pd.DataFrame) -> str:
    """'Agreed against indicative budgets: median agreed / indicative from 0.98 to 1.12 across 10 deciles.'"""
    if bins is None or bins.empty:
        return "Chart of agreed against indicative budgets: too few budgets to draw."
    ratio = (bins["agreed_median"] / bins["indicative"]).replace([np.inf, -np.inf], np.nan).dropna()
    return (f"Chart of agreed against indicative budgets: in the {len(bins)} tenths of indicative budget the median "
            f"agreed budget is {ratio.min():.2f} to {ratio.max():.2f} times the indicative one (1 means equal).")


def intervals(rows: pd.DataFrame, what: str, value: str = "value", low: str = "low", high: str = "high",
              percent: bool = False, digits: int = 3) -> str:
    """'Chart of X: 2 of 5 intervals exclude 0: A +45% (+28% to +63%), B -13% (...); the others include it.'
    Rows are labelled by the index."""
    shown = rows.dropna(subset=[value, low, high]) if rows is not None and len(rows) else pd.DataFrame()
    if shown.empty:
        return f"Chart of {what}: no estimates."
    fmt = (lambda v: f"{v:+.0%}") if percent else (lambda v: f"{v:+.{digits}f}")
    clear = shown[(shown[low] > 0) | (shown[high] < 0)]
    named = [f"{label(i)} {fmt(r[value])} ({fmt(r[low])} to {fmt(r[high])})" for i, r in clear.iterrows()]
    head = f"Chart of {what}: {len(clear)} of {len(shown)} intervals exclude zero"
    return head + (": " + "; ".join(named) + "; the others include it." if named else ".")


def ce_plane(draws: pd.DataFrame, point: tuple[float, float] | None) -> str:
    """Where the bootstrap cloud lies on the cost-effectiveness plane."""
    if draws is None or len(draws) == 0 or point is None:
        return "Cost-effectiveness plane: not drawn (the groups' costs are not comparable without a services table)."
    qaly, cost = point
    dearer = float((draws["d_cost"] > 0).mean())
    better = float((draws["d_qaly"] > 0).mean())
    return (f"Cost-effectiveness plane: central estimate {qaly:+.3f} QALYs at {gbp(cost)} extra cost per budget "
            f"holder; {_pct(dearer)} of resamples cost more and {_pct(better)} gain QALYs.")


def acceptability(ceac: pd.DataFrame, thresholds: tuple[int, ...] = (20_000, 30_000)) -> str:
    """'Acceptability curve: chance cost-effective 15% at £20k per QALY and 15% at £30k.'"""
    if ceac is None or len(ceac) == 0:
        return "Acceptability curve: not drawn (the groups' costs are not comparable without a services table)."
    at = ceac.set_index("wtp")["probability"]
    parts = [f"{_pct(float(at.loc[w]))} at {gbp(w)} per QALY" for w in thresholds if w in at.index]
    return "Acceptability curve: the chance that budgets are cost-effective is " + " and ".join(parts) + "."


def spine(rows: pd.DataFrame, comparator: str) -> str:
    """'Spine chart of 8 indicators against X: worse on A; better on B; 6 similar.'"""
    if rows is None or rows.empty:
        return "Spine chart: no indicators to compare."
    verdict = rows["comparison"].astype(str)
    parts = [f"{len(rows)} indicators against {comparator}"]
    for word in ("Worse", "Better", "Higher", "Lower"):
        named = rows.loc[verdict == word, "indicator"].tolist()
        if named:
            parts.append(f"{word.lower()}: {'; '.join(named)}")
    others = int((~verdict.isin(["Worse", "Better", "Higher", "Lower"])).sum())
    return "Spine chart of " + ", ".join(parts[:1]) + (": " + ". ".join(parts[1:]) if parts[1:] else "") + \
        f". {others} similar."


def plans(by_month: pd.DataFrame, what: str) -> str:
    """'X over 24 months: £120k in total with a phased roll-out, £310k with a fast one.'"""
    if by_month is None or by_month.empty:
        return f"Line charts of {what}: nothing to show."
    totals = by_month.sum()
    words = "; ".join(f"{gbp(v)} in total with a {label(k).lower()} roll-out" for k, v in totals.items())
    return f"Line charts of {what} over {len(by_month)} months: {words}."


def simulation(draws, forecast: float | None, low: float | None, high: float | None,
               fund: float | None, probability: float | None) -> str:
    """'Histogram of simulated spend: central £1.7m, 90% of simulations £1.6m to £1.8m; pooled fund £1.8m, exceeded in 15%.'"""
    if draws is None or len(draws) == 0 or forecast is None:
        return "Histogram of simulated spend next year: not simulated."
    text = (f"Histogram of simulated spend next year: central forecast {gbp(forecast)}, 90% of simulations between "
            f"{gbp(low)} and {gbp(high)}")
    if fund is not None and probability is not None:
        text += f"; the pooled fund of {gbp(fund)} is exceeded in {_pct(probability)} of simulations"
    return text + "."


def tornado(rows: pd.DataFrame, against: str) -> str:
    """'Tornado chart: next year's spend moves most with A (£137k between its 5th and 95th percentiles), then B (£109k).'"""
    if rows is None or len(rows) == 0:
        return "Tornado chart: no sensitivities."
    top = rows.sort_values("width", ascending=False).head(2)
    items = [f"{r['input'].lower()} ({gbp(r['width'])} between its 5th and 95th percentiles)" for _, r in top.iterrows()]
    return f"Tornado chart of spend minus the {against}: it moves most with " + ", then ".join(items) + "."


def balance(rows: pd.DataFrame, threshold: float = 0.1) -> str:
    """'Dot chart of standardised differences: largest imd decile +0.27; 2 of 11 beyond 0.1.'"""
    if rows is None or rows.empty or rows["smd"].dropna().empty:
        return "Dot chart of standardised differences: no characteristics to compare."
    smd = rows.set_index("covariate")["smd"].dropna()
    big = smd.abs().idxmax()
    beyond = int((smd.abs() > threshold).sum())
    return (f"Dot chart of standardised differences between the groups at the start: largest {label(big)} "
            f"{smd[big]:+.2f}; {beyond} of {len(smd)} beyond {threshold}.")

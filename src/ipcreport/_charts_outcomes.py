"""Charts for outcomes and value for money, in the house style of :mod:`ipcreport.charts`.

To be folded into charts.py. Every function returns a matplotlib Figure (alt text and captions
belong to the notebook cell). Inputs are the frames that :mod:`ipcreport.analysis.outcomes` and
:mod:`ipcreport.analysis.economics` return, so the numbers in a chart are the numbers in the
table beside it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from .charts import FIG_WIDTH, NHS_BLUE, PALETTE, apply_house_style, gbp, label

GREY = "#425563"
DIMENSION_TITLES = {"overall": "All people", "cohort": "By cohort", "management": "By how the budget is held"}


def _new(height: float) -> tuple[plt.Figure, plt.Axes]:
    apply_house_style()
    return plt.subplots(figsize=(FIG_WIDTH, height), layout="constrained")


def _empty(title: str, message: str = "No data for this chart yet") -> plt.Figure:
    fig, ax = _new(1.6)
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.4, message, ha="center", va="center", color=GREY)
    return fig


def forest_plot(rows: pd.DataFrame, title: str,
                xlabel: str = "Rate ratio, budget holders vs comparison (log scale; below 1 = fewer)") -> plt.Figure:
    """Rate ratios with 95% intervals by subgroup, from :func:`outcomes.rate_ratio_subgroups`.

    One outcome's rows (columns dimension, subgroup, irr, low, high, n, reason). Subgroups
    without an estimate are listed with their reason in place of a point, never a number.
    """
    if len(rows) == 0:
        return _empty(title)
    rows = rows.reset_index(drop=True)
    names = ["All people" if r.dimension == "overall" else f"  {label(r.subgroup)}" for r in rows.itertuples()]
    fig, ax = _new(1.0 + 0.36 * len(rows))
    y = np.arange(len(rows))[::-1]
    ok = rows["irr"].notna().to_numpy()
    values = rows["irr"].to_numpy(dtype=float)
    colours = [NHS_BLUE if d == "overall" else PALETTE[1] if d == "cohort" else PALETTE[2] for d in rows["dimension"]]
    for i in np.flatnonzero(ok):
        ax.errorbar(values[i], y[i], xerr=[[values[i] - rows.at[i, "low"]], [rows.at[i, "high"] - values[i]]],
                    fmt="s" if rows.at[i, "dimension"] == "overall" else "o", color=colours[i], capsize=3,
                    markersize=7 if rows.at[i, "dimension"] == "overall" else 5)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    finite = np.concatenate([rows.loc[ok, "low"].to_numpy(float), rows.loc[ok, "high"].to_numpy(float), [0.8, 1.25]])
    lo, hi = max(finite.min() * 0.9, 0.05), min(finite.max() * 1.1, 20)
    ax.set_xlim(lo, hi)
    ticks = [t for t in (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 4, 10) if lo <= t <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    for i in np.flatnonzero(~ok):
        reason = str(rows.at[i, "reason"] or "not estimable")
        ax.text(lo * 1.03, y[i], f"not shown: {reason.split(' (')[0]}", va="center", fontsize="small", color=GREY,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5})
    ax.set_yticks(y, names)
    for tick, dim in zip(ax.get_yticklabels(), rows["dimension"]):
        if dim == "overall":
            tick.set_fontweight("bold")
    # dimension separators
    change = np.flatnonzero(rows["dimension"].to_numpy()[1:] != rows["dimension"].to_numpy()[:-1])
    for c in change:
        ax.axhline(y[c] - 0.5, color="#D8DDE0", linewidth=0.8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="y", visible=False)
    return fig


def balance_plot(balance: pd.DataFrame, title: str, threshold: float = 0.1) -> plt.Figure:
    """Standardised mean differences of baseline covariates (a 'love plot'), before and, where
    present, after propensity weighting, from :func:`outcomes.standardised_differences`."""
    b = balance[balance["smd"].notna()].reset_index(drop=True)
    if len(b) == 0:
        return _empty(title)
    from .analysis.outcomes import BALANCE_LABELS

    names = [BALANCE_LABELS.get(c, label(c.removeprefix("cohort_")) + " (share)" if c.startswith("cohort_") else c)
             for c in b["covariate"]]
    fig, ax = _new(1.0 + 0.33 * len(b))
    y = np.arange(len(b))[::-1]
    ax.axvspan(-threshold, threshold, color="#E8EDEE", zorder=0)
    ax.axvline(0, color="grey", linewidth=1)
    ax.scatter(b["smd"], y, color=PALETTE[5], marker="o", zorder=3, label="Unweighted")
    if "weighted_smd" in b.columns:
        ax.scatter(b["weighted_smd"], y, color=NHS_BLUE, marker="D", zorder=3, label="Propensity-weighted")
        for yi, a, w in zip(y, b["smd"], b["weighted_smd"]):
            ax.plot([a, w], [yi, yi], color="#AEB7BD", linewidth=1, zorder=2)
    ax.set_yticks(y, names)
    limit = max(0.25, float(np.nanmax(np.abs(b[[c for c in ("smd", "weighted_smd") if c in b]].to_numpy()))) * 1.15)
    ax.set_xlim(-limit, limit)
    ax.set_xlabel(f"Standardised difference, budget holders minus comparison\n(shaded: within ±{threshold:g})")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small", framealpha=0.9)
    ax.grid(axis="y", visible=False)
    return fig


def quality_of_life_plot(table: pd.DataFrame, title: str) -> plt.Figure:
    """Adjusted differences in follow-up quality of life with 95% intervals, one panel per
    measure (their scales differ), from :func:`outcomes.quality_of_life_table`."""
    if len(table) == 0:
        return _empty(title)
    names = {"ascot": "ASCOT (social-care QoL)", "eq5d": "EQ-5D (health-related QoL)",
             "ghq12": "GHQ-12 (distress; lower is better)"}
    apply_house_style()
    fig, axes = plt.subplots(len(table), 1, figsize=(FIG_WIDTH, 0.9 + 0.75 * len(table)), layout="constrained",
                             squeeze=False)
    for ax, r in zip(axes[:, 0], table.itertuples()):
        ax.axvline(0, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks([0], [names.get(r.measure, r.measure)])
        ax.grid(axis="y", visible=False)
        if r.diff is None or pd.isna(r.diff):
            ax.text(0, 0, f"not shown: {r.reason}", ha="center", va="center", fontsize="small", color=GREY)
            ax.set_xlim(-1, 1)
            ax.set_xticks([])
            continue
        ax.errorbar(r.diff, 0, xerr=[[r.diff - r.low], [r.high - r.diff]], fmt="o", color=NHS_BLUE, capsize=4)
        span = max(abs(r.low), abs(r.high)) * 1.3
        ax.set_xlim(-span, span)
    axes[-1, 0].set_xlabel("Adjusted difference at follow-up (budget holders minus comparison)")
    axes[0, 0].set_title(title)
    return fig


def cost_effectiveness_plane(draws: pd.DataFrame, title: str, point: tuple[float, float] | None = None,
                             wtp: tuple[float, ...] = (20_000, 30_000)) -> plt.Figure:
    """Bootstrap draws of (incremental QALYs, incremental cost) with willingness-to-pay lines;
    below a line means cost-effective at that value of a QALY. ``point``: (d_qaly, d_cost)."""
    d = draws.dropna(subset=["d_qaly", "d_cost"]) if len(draws) else draws
    if len(d) == 0:
        return _empty(title)
    fig, ax = _new(4.4)
    ax.scatter(d["d_qaly"], d["d_cost"], s=6, alpha=0.35, color=NHS_BLUE, linewidths=0, label="Bootstrap resamples")
    if point is not None:
        ax.scatter([point[0]], [point[1]], color="black", s=40, zorder=3, label="Estimate")
    xmax = float(np.abs(d["d_qaly"]).max()) * 1.1 or 0.01
    ymax = float(np.abs(d["d_cost"]).max()) * 1.1 or 1.0
    xs = np.array([-xmax, xmax])
    for i, w in enumerate(wtp):
        ax.plot(xs, w * xs, color=PALETTE[5 if i == 0 else 1], linewidth=1.2, linestyle="-" if i == 0 else "--",
                label=f"{gbp(w)} per QALY")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlim(-xmax, xmax)
    ax.set_ylim(-ymax, ymax)
    ax.yaxis.set_major_formatter(FuncFormatter(gbp))
    ax.set_xlabel("Incremental QALYs per person (budget holders minus comparison)")
    ax.set_ylabel("Incremental cost per person")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small", frameon=False)
    return fig


def acceptability_curve(ceac: pd.DataFrame, title: str, marks: tuple[float, ...] = (20_000, 30_000)) -> plt.Figure:
    """Probability that budgets are cost-effective by willingness to pay per QALY."""
    if len(ceac) == 0:
        return _empty(title)
    fig, ax = _new(3.2)
    ax.plot(ceac["wtp"], ceac["probability"], color=NHS_BLUE, linewidth=2)
    for w in marks:
        ax.axvline(w, color="grey", linestyle=":", linewidth=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(ceac["wtp"].min(), ceac["wtp"].max())
    ax.xaxis.set_major_formatter(FuncFormatter(gbp))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel("Willingness to pay per QALY")
    ax.set_ylabel("Probability cost-effective")
    ax.set_title(title)
    return fig


def cost_components(costs: pd.DataFrame, title: str) -> plt.Figure:
    """Mean cost per person over the follow-up year by group, stacked by component
    (:attr:`economics.CostEffectiveness.costs`)."""
    if len(costs) == 0:
        return _empty(title)
    parts = [("budget_cost", "Budget"), ("hospital_cost", "Hospital"), ("usual_care_cost", "Usual care (assumed)")]
    parts = [(c, n) for c, n in parts if c in costs.columns and costs[c].abs().sum() > 0]
    order = [g for g in ("ipc", "comparison") if g in costs.index]
    fig, ax = _new(0.9 + 0.6 * len(order))
    left = np.zeros(len(order))
    for i, (col, name) in enumerate(parts):
        v = costs.loc[order, col].to_numpy(dtype=float)
        ax.barh([label(g) for g in order], v, left=left, color=PALETTE[i], label=name)
        left += v
    ax.xaxis.set_major_formatter(FuncFormatter(gbp))
    ax.set_xlabel("Mean cost per person over the follow-up year")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small", frameon=False)
    return fig

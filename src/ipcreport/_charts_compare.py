"""Charts that compare: XmR (statistical process control), funnel and spine charts.

To be folded into ``charts.py``; until then the house style comes from there. As there, each
function returns a matplotlib figure and its alt text is the notebook cell's ``fig-alt``.

Colours are colour-blind safe (Okabe-Ito with NHS blue) and never the only cue: special-cause
points also differ in shape, the icons are spelt out in words and the spine chart's verdicts
are in the legend. Making Data Count conventions: grey for common cause, blue for improvement,
orange for concern, purple for special cause with no improvement direction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from .analysis import peers as P
from .analysis import spc as S
from .charts import FIG_WIDTH, NHS_BLUE, PALETTE, apply_house_style, gbp, label

GREY = "#768692"  # NHS mid grey
DARK = "#231F20"
ORANGE = PALETTE[1]
PURPLE = PALETTE[3]
VERMILLION = PALETTE[5]

# point class -> (colour, marker, size, legend text)
POINT_STYLE = {
    "common_cause": (GREY, "o", 16, "Common cause"),
    "special_cause_improvement": (NHS_BLUE, "s", 34, "Special cause: improvement"),
    "special_cause_concern": (ORANGE, "D", 30, "Special cause: concern"),
    "special_cause_neutral": (PURPLE, "P", 40, "Special cause: neither"),
}
VARIATION_COLOUR = {"common": GREY, "improvement": NHS_BLUE, "concern": ORANGE, "neutral": PURPLE}
ASSURANCE_COLOUR = {"consistent_pass": NHS_BLUE, "consistent_fail": ORANGE, "hit_and_miss": GREY}
FLAG_STYLE = {
    "within": (NHS_BLUE, "o", "Within 95% limits"),
    "outside_95": (ORANGE, "s", "Outside 95% limits"),
    "outside_998": (VERMILLION, "D", "Outside 99.8% limits"),
}
COMPARISON_STYLE = {  # Fingertips verdicts, colour-blind safe
    "Better": (NHS_BLUE, "o"),
    "Similar": ("#FFFFFF", "o"),
    "Worse": (ORANGE, "o"),
    "Higher": ("#003087", "o"),
    "Lower": ("#56B4E9", "o"),
    "Not compared": ("#D9D9D9", "o"),
}


def _new(height: float = 3.6) -> tuple[plt.Figure, plt.Axes]:
    apply_house_style()
    return plt.subplots(figsize=(FIG_WIDTH, height), layout="constrained")


def _placeholder_when_empty(draw: Callable[..., plt.Figure]) -> Callable[..., plt.Figure]:
    """As charts.py: a chart of nothing says so instead of failing."""

    @functools.wraps(draw)
    def wrapper(data, *args, **kwargs) -> plt.Figure:
        if len(data) == 0:
            title = kwargs.get("title", args[0] if args and isinstance(args[0], str) else
                               next((a for a in args if isinstance(a, str)), ""))
            fig, ax = _new(1.6)
            ax.set_axis_off()
            ax.set_title(title)
            ax.text(0.5, 0.4, "No data for this chart yet", ha="center", va="center", color="#425563")
            return fig
        return draw(data, *args, **kwargs)

    return wrapper


def _badge(ax: plt.Axes, y: float, text: str, colour: str) -> None:
    ax.text(0.99, y, text, transform=ax.transAxes, ha="right", va="top", fontsize="small",
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": colour, "linewidth": 1.5},
            zorder=5)


@_placeholder_when_empty
def xmr_chart(spc_frame: pd.DataFrame, title: str, ylabel: str, money: bool = False) -> plt.Figure:
    """An XmR chart from :func:`ipcreport.analysis.spc.xmr`: points coloured by class, mean
    and process limits per segment (trial limits dashed), target, and the variation and
    assurance icons as labelled badges in the top right corner."""
    frame = spc_frame
    fig, ax = _new(3.8)
    x = frame["date"]
    ax.plot(x, frame["value"], color=GREY, linewidth=1, zorder=1)
    for _, seg in frame.groupby("segment", sort=True):
        style = "--" if bool(seg["trial"].iloc[0]) else "-"
        ax.plot(seg["date"], seg["mean"], color=DARK, linewidth=1.2, zorder=2)
        ax.plot(seg["date"], seg["ucl"], color=GREY, linewidth=1, linestyle=style, zorder=2)
        ax.plot(seg["date"], seg["lcl"], color=GREY, linewidth=1, linestyle=style, zorder=2)
    handles = [Line2D([], [], color=DARK, linewidth=1.2, label="Mean")]
    if (~frame["trial"]).any():
        handles.append(Line2D([], [], color=GREY, linewidth=1, label="Process limits"))
    if frame["trial"].any():
        handles.append(Line2D([], [], color=GREY, linewidth=1, linestyle="--", label="Trial limits (under 12 points)"))
    if frame["target"].notna().any():
        ax.plot(x, frame["target"], color="black", linestyle=":", linewidth=1.2, zorder=2)
        handles.append(Line2D([], [], color="black", linestyle=":", label="Target"))
    for cls, (colour, marker, size, text) in POINT_STYLE.items():
        points = frame[frame["point_class"] == cls]
        if len(points):
            ax.scatter(points["date"], points["value"], color=colour, marker=marker, s=size,
                       edgecolors=DARK if cls != "common_cause" else "none", linewidths=0.5, zorder=3)
            handles.append(Line2D([], [], color=colour, marker=marker, linestyle="none", label=text,
                                  markeredgecolor=DARK if cls != "common_cause" else colour))

    summary = S.summarise(frame)
    low = np.nanmin(frame[["value", "lcl", "target"]].to_numpy(dtype=float))
    high = np.nanmax(frame[["value", "ucl", "target"]].to_numpy(dtype=float))
    span = (high - low) or max(abs(high), 1.0)
    ax.set_ylim(low - 0.08 * span, high + 0.35 * span)  # headroom for the badges
    variation = summary.variation_label + (" (trial limits)" if summary.trial else "")
    _badge(ax, 0.98, "Variation: " + variation, VARIATION_COLOUR[summary.variation.split("_")[0]])
    if summary.assurance:
        _badge(ax, 0.86, "Assurance: " + summary.assurance_label, ASSURANCE_COLOUR[summary.assurance])

    if pd.api.types.is_datetime64_any_dtype(x):
        locator = mdates.AutoDateLocator(maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if money:
        ax.yaxis.set_major_formatter(FuncFormatter(gbp))
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), frameon=False,
               fontsize="small")
    return fig


@_placeholder_when_empty
def funnel_plot(funnel_frame: pd.DataFrame, limits_grid: pd.DataFrame, title: str, xlabel: str, ylabel: str,
                percent: bool = False, max_labels: int = 12) -> plt.Figure:
    """A funnel plot from :func:`ipcreport.analysis.funnel.funnel`: the target, 95% (dashed)
    and 99.8% (solid) limits, and each unit, named when outside the 95% limits (the
    ``max_labels`` furthest out, by z-score, when more are outside)."""
    units, grid = funnel_frame, limits_grid
    fig, ax = _new(4.0)
    ax.plot(grid["denominator"], grid["target"], color=DARK, linewidth=1.2)
    for column, style in (("lower_95", "--"), ("upper_95", "--"), ("lower_998", "-"), ("upper_998", "-")):
        ax.plot(grid["denominator"], grid[column], color=GREY, linewidth=1, linestyle=style)
    handles = [Line2D([], [], color=DARK, linewidth=1.2, label="Target (pooled)"),
               Line2D([], [], color=GREY, linestyle="--", label="95% limits"),
               Line2D([], [], color=GREY, linestyle="-", label="99.8% limits")]
    group = np.where(units["flag"].str.contains("99.8"), "outside_998",
                     np.where(units["flag"] == "within", "within", "outside_95"))
    for key, (colour, marker, text) in FLAG_STYLE.items():
        points = units[group == key]
        if len(points):
            ax.scatter(points["denominator"], points["value"], color=colour, marker=marker, s=30,
                       edgecolors=DARK, linewidths=0.5, zorder=3)
            handles.append(Line2D([], [], color=colour, marker=marker, linestyle="none", label=text,
                                  markeredgecolor=DARK))
    outside = units[group != "within"]
    if "z" in outside and len(outside) > max_labels:
        outside = outside.loc[outside["z"].abs().sort_values(ascending=False).index[:max_labels]]
    for row in outside.itertuples(index=False):
        ax.annotate(str(row.unit), (row.denominator, row.value), xytext=(4, 4), textcoords="offset points",
                    fontsize="x-small", color=DARK)
    values = np.concatenate([units["value"].to_numpy(dtype=float), grid[["lower_998", "upper_998"]].to_numpy().ravel()])
    finite = values[np.isfinite(values)]
    span = finite.max() - finite.min() if finite.size else 1.0
    ax.set_ylim(max(finite.min() - 0.05 * span, 0) if finite.min() >= 0 else finite.min() - 0.05 * span,
                finite.max() + 0.05 * span)
    ax.set_xlim(0, grid["denominator"].max())
    if percent:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False, fontsize="small")
    return fig


@_placeholder_when_empty
def spine_chart(rows: pd.DataFrame, title: str) -> plt.Figure:
    """A Fingertips-style spine chart from :func:`ipcreport.analysis.peers.spine_rows`: each
    indicator a row, the range of all sites (light grey) and their inter-quartile range (dark
    grey) scaled so England is the centre line, worst (or lowest) on the left; the site's value
    a marker coloured by its comparison with England."""
    positions = P.spine_positions(rows)
    fig, ax = _new(1.3 + 0.45 * len(rows))
    y = np.arange(len(rows))[::-1]
    ax.barh(y, positions["right"] - positions["left"], left=positions["left"], height=0.5,
            color="#D9D9D9", zorder=1)
    ax.barh(y, positions["iqr_right"] - positions["iqr_left"], left=positions["iqr_left"], height=0.5,
            color="#8A8A8A", zorder=2)
    ax.axvline(0.5, color=DARK, linewidth=1.5, zorder=3)
    present = []
    for verdict, (colour, marker) in COMPARISON_STYLE.items():
        mask = (rows["comparison"] == verdict).to_numpy()
        if mask.any():
            ax.scatter(positions["value"].to_numpy()[mask], y[mask], color=colour, marker=marker, s=70,
                       edgecolors=DARK, linewidths=0.8, zorder=4)
            present.append(Line2D([], [], color=colour, marker=marker, linestyle="none", markersize=8,
                                  markeredgecolor=DARK, label=verdict))
    for yi, value in zip(y, rows["value"]):
        ax.text(1.02, yi, f"{value:,.3g}", transform=ax.get_yaxis_transform(), va="center", fontsize="small")
    ax.set_yticks(y, [label(i) for i in rows["indicator"]])
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xticks([0, 0.5, 1], ["Worst / lowest", "England", "Best / highest"])
    ax.grid(False)
    ax.set_title(title)
    level = rows["level"].iloc[0] if "level" in rows else 0.95
    present.append(Line2D([], [], color="#8A8A8A", linewidth=6, label="Middle half of sites"))
    fig.legend(handles=present, loc="outside lower center", ncols=min(len(present), 4), frameon=False,
               fontsize="small", title=f"Compared with England at {level:.1%} confidence".replace(".0%", "%"),
               title_fontsize="small")
    return fig

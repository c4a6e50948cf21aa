"""One function per chart type, in one house style.

Every function returns a matplotlib figure; its alt text and caption are the notebook cell's
``fig-alt`` and ``fig-cap`` options (static, so Quarto and the built-in renderer agree), with the
numbers in a table beside each chart. Colours are the
Okabe-Ito colour-blind-safe palette, led by NHS blue (#005EB8), which keeps 4.5:1 contrast on
white; a chart with more categories than its 8 colours takes Paul Tol's colour-blind-safe
"muted" scheme (:func:`palette`), so no two categories share a colour. Money axes use
:class:`MoneyFormatter`, whose ticks always read differently. :func:`overlapping_texts` finds
text boxes that overlap once a chart is laid out (the tests hold every chart to none).
"""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Callable

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Circle
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, Formatter, FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from ..analysis import peers as P
from .formats import gbp
from ..analysis import spc as S

NHS_BLUE = "#005EB8"
PALETTE = [NHS_BLUE, "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
# Paul Tol's "muted" qualitative scheme (personal.sron.nl/~pault), colour-blind safe, 10 colours
TOL_MUTED = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499",
             "#DDDDDD"]


def palette(n: int) -> list[str]:
    """``n`` different colour-blind-safe colours: the house palette, or Tol's muted scheme
    when there are more than 8 categories. More than 10 categories need a table, not colours."""
    for scheme in (PALETTE, TOL_MUTED):
        if n <= len(scheme):
            return scheme[:n]
    raise ValueError(f"{n} categories are too many to tell apart by colour (at most {len(TOL_MUTED)})")
FIG_WIDTH = 7.0  # inches: fits A4 text width at 100%


def apply_house_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.titleweight": "bold",
                         "axes.spines.top": False, "axes.spines.right": False,
                         # site names and labels come from the data: '$x$' prints as written, never as maths
                         "text.parse_math": False})


LABELS = {"ipc": "Budget holders", "comparison": "Comparison group", "nhs": "NHS", "total": "Total"}


def label(code: object) -> str:
    """A contract code as words ('long_term_conditions' -> 'Long term conditions'); text that
    is already words ('EQ-5D health ...') is left as it is."""
    text = str(code)
    if text in LABELS:
        return LABELS[text]
    if text.islower() and " " not in text:
        return text.replace("_", " ").capitalize()
    return text


def money_style(values) -> tuple[float, str, int]:
    """(scale, suffix, decimals) for a money axis: one unit for every tick (£, £k from
    £10,000, £m from £1m, by the largest tick) and the fewest decimals that write each tick
    exactly, or failing that differently (at most 3)."""
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    top = np.abs(finite).max() if finite.size else 0.0
    scale, suffix = (1e6, "m") if top >= 1e6 else (1e3, "k") if top >= 1e4 else (1.0, "")
    scaled = finite / scale
    for digits in range(4):
        if np.allclose(scaled, np.round(scaled, digits), rtol=0, atol=1e-6 * max(1.0, float(np.abs(scaled).max(initial=0)))):
            return scale, suffix, digits
    for digits in range(4):
        if len(set(np.round(scaled, digits))) == len(set(scaled)):
            return scale, suffix, digits
    return scale, suffix, 3


class MoneyFormatter(Formatter):
    """Money tick labels that never repeat: £1,025 ... £1,175 rather than £1k five times,
    £1.20m, £1.25m, £1.30m rather than £1.2m twice (see :func:`money_style`)."""

    def format_ticks(self, values) -> list[str]:
        style = money_style(values)
        return [self._money(v, *style) for v in values]

    def __call__(self, x, pos=None) -> str:
        return self._money(x, *money_style([x]))

    @staticmethod
    def _money(x: float, scale: float, suffix: str, digits: int) -> str:
        if x == 0:
            return "£0"
        return f"{'-' if x < 0 else ''}£{abs(x) / scale:,.{digits}f}{suffix}"


def money_axis(axis) -> None:
    axis.set_major_formatter(MoneyFormatter())


def _empty(title: str, message: str = "No data for this chart yet") -> plt.Figure:
    fig, ax = _new(1.6)
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.4, message, ha="center", va="center", color="#425563")
    return fig


def _placeholder_when_empty(draw: Callable[..., plt.Figure]) -> Callable[..., plt.Figure]:
    """A chart of nothing says so, instead of failing (a site early in its roll-out)."""

    @functools.wraps(draw)
    def wrapper(data, *args, **kwargs) -> plt.Figure:
        if len(data) == 0:
            title = kwargs.get("title", args[0] if args and isinstance(args[0], str) else
                               next((a for a in args if isinstance(a, str)), ""))
            return _empty(title)
        return draw(data, *args, **kwargs)

    return wrapper


def _log_money_axis(axis) -> None:
    """A log-scale money axis with readable ticks (1, 2, 5 per decade), no scientific labels."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(gbp))
    axis.set_minor_formatter(NullFormatter())


def _new(height: float = 3.6) -> tuple[plt.Figure, plt.Axes]:
    apply_house_style()
    return plt.subplots(figsize=(FIG_WIDTH, height), layout="constrained")


BAND = re.compile(r"^(under |over |up to |at least )?[£]?\d[\d,.]*[%k]?( ?(-|to) ?[£]?\d[\d,.]*[%k]?)?( years)?$")


def is_ordinal(index: pd.Index) -> bool:
    """Categories with an order of their own: an ordered categorical, or numeric bands
    ('under 50%', '50-70%', ..., 'over 110%'; '18-44')."""
    if isinstance(index, pd.CategoricalIndex):
        return bool(index.ordered)
    return len(index) > 1 and all(BAND.match(str(i)) for i in index)


@_placeholder_when_empty
def bar(values: pd.Series, title: str, xlabel: str, money: bool = False, percent: bool = False,
        ordinal: bool | None = None) -> plt.Figure:
    """Horizontal bars, one per category, largest at the top; ordinal bands (``ordinal``, by
    default recognised by :func:`is_ordinal`) keep their order, the first given at the bottom."""
    fig, ax = _new(0.8 + 0.4 * len(values))
    ordered = values if (is_ordinal(values.index) if ordinal is None else ordinal) else values.sort_values()
    ax.barh([label(i) for i in ordered.index], ordered.to_numpy(), color=NHS_BLUE)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if money:
        money_axis(ax.xaxis)
    if percent:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    return fig


@_placeholder_when_empty
def budget_distribution(table: pd.DataFrame, title: str) -> plt.Figure:
    """Median, inter-quartile range and 90th percentile of budgets by cohort, log scale.

    Drawn from summary statistics only, so no single person's budget is plotted.
    """
    fig, ax = _new(0.9 + 0.55 * len(table))
    y = np.arange(len(table))
    ax.hlines(y, table["q1"], table["q3"], color=NHS_BLUE, linewidth=8, alpha=0.6, label="Inter-quartile range")
    ax.scatter(table["median"], y, color="black", zorder=3, label="Median")
    ax.scatter(table["p90"], y, color=PALETTE[5], marker="|", s=200, zorder=3, label="90th percentile")
    ax.set_yticks(y, [label(c) for c in table.index])
    ax.set_xscale("log")
    _log_money_axis(ax.xaxis)
    ax.set_xlabel("Agreed budget per year of care (log scale)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small", frameon=False)
    return fig


@_placeholder_when_empty
def monthly_lines(frame: pd.DataFrame, title: str, column: str, ylabel: str, money: bool = False) -> plt.Figure:
    fig, ax = _new(3.2)
    ax.plot(frame.index, frame[column], color=NHS_BLUE, marker="o", markersize=3)
    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if money:
        money_axis(ax.yaxis)
    return fig


@_placeholder_when_empty
def interval_plot(rows: pd.DataFrame, title: str, xlabel: str, null: float, log: bool = False,
                  percent: bool = False) -> plt.Figure:
    """Point estimates with 95% intervals (a forest plot); ``rows`` has value, low, high."""
    fig, ax = _new(0.9 + 0.5 * len(rows))
    y = np.arange(len(rows))[::-1]
    ax.errorbar(rows["value"], y, xerr=[rows["value"] - rows["low"], rows["high"] - rows["value"]],
                fmt="o", color=NHS_BLUE, capsize=4)
    ax.axvline(null, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y, list(rows.index))
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([0.25, 0.5, 0.75, 1, 1.5, 2, 4]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    if percent:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+.0%}"))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


@_placeholder_when_empty
def histogram(values: np.ndarray, title: str, xlabel: str, marker: float, marker_label: str) -> plt.Figure:
    fig, ax = _new(3.2)
    ax.hist(values, bins=60, color=NHS_BLUE, alpha=0.8)
    ax.axvline(marker, color=PALETTE[5], linewidth=2, label=marker_label)
    money_axis(ax.xaxis)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Simulations")
    ax.legend(frameon=False)
    return fig


@_placeholder_when_empty
def calibration(bins: pd.DataFrame, title: str) -> plt.Figure:
    """Agreed against indicative budget by decile of indicative budget (medians and quartiles),
    log-log, with the line of agreement. Binned, so no single budget is plotted."""
    fig, ax = _new(3.8)
    ax.errorbar(bins["indicative"], bins["agreed_median"],
                yerr=[bins["agreed_median"] - bins["agreed_q1"], bins["agreed_q3"] - bins["agreed_median"]],
                fmt="o", color=NHS_BLUE, capsize=3, label="Agreed budget: median and quartiles")
    low = min(bins["indicative"].min(), bins["agreed_q1"].min()) * 0.8
    high = max(bins["indicative"].max(), bins["agreed_q3"].max()) * 1.25
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="Agreed = indicative")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        _log_money_axis(axis)
    ax.set_xlabel("Indicative budget from the RAS (decile median, log scale)")
    ax.set_ylabel("Agreed budget")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize="small", loc="upper left")
    return fig


@_placeholder_when_empty
def stacked_shares(shares: pd.DataFrame, title: str, xlabel: str) -> plt.Figure:
    """One horizontal bar per row, split into the shares of each column."""
    fig, ax = _new(1.2 + 0.5 * len(shares))
    left = np.zeros(len(shares))
    rows = [label(i) for i in shares.index]
    for colour, column in zip(palette(len(shares.columns)), shares.columns):
        values = shares[column].fillna(0).to_numpy()
        ax.barh(rows, values, left=left, color=colour, label=label(column), edgecolor="white")
        left += values
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.invert_yaxis()
    fig.legend(*ax.get_legend_handles_labels(), ncols=3, fontsize="x-small", frameon=False, loc="outside lower center")
    return fig


@_placeholder_when_empty
def plan_lines(by_month: pd.DataFrame, title: str, ylabel: str) -> plt.Figure:
    """Monthly and cumulative money per plan (columns), months after the extract on the x axis."""
    apply_house_style()
    fig, (monthly, cumulative) = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.2), layout="constrained")
    for colour, style, plan in zip(palette(len(by_month.columns)), ("-", "--", ":", "-."), by_month.columns):
        monthly.plot(by_month.index, by_month[plan], color=colour, linestyle=style, label=f"{label(plan)} roll-out")
        cumulative.plot(by_month.index, by_month[plan].cumsum(), color=colour, linestyle=style)
    for ax, name in ((monthly, "Each month"), (cumulative, "Cumulative")):
        money_axis(ax.yaxis)
        ax.set_xlabel("Months after the extract date")
        ax.set_title(name, fontsize="medium")
    monthly.set_ylabel(ylabel)
    monthly.legend(frameon=False, fontsize="small")
    fig.suptitle(title, fontweight="bold")
    return fig


@_placeholder_when_empty
def tornado(table: pd.DataFrame, title: str, xlabel: str, reference: str = "Spend equals the pooled fund") -> plt.Figure:
    """One-way sensitivities: a bar per input from its low to its high result, widest at the top,
    around the central result (``gap_central``)."""
    fig, ax = _new(1.0 + 0.55 * len(table))
    central = float(table["gap_central"].iloc[0])
    y = np.arange(len(table))[::-1]
    for row, (_, r) in zip(y, table.iterrows()):
        ax.barh(row, r["gap_low"] - central, left=central, color=PALETTE[4], label="Input at its 5th percentile" if row == y[0] else None)
        ax.barh(row, r["gap_high"] - central, left=central, color=NHS_BLUE, label="Input at its 95th percentile" if row == y[0] else None)
    ax.axvline(central, color="black", linewidth=1)
    ax.axvline(0, color=PALETTE[5], linestyle="--", linewidth=1, label=reference)
    ax.set_yticks(y, table["input"])
    money_axis(ax.xaxis)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(frameon=False, fontsize="x-small", loc="lower right")
    return fig


# ---------------------------------------------------------------------------------------------
# readable charts: no text box on another


def _drawn_tick_labels(axis) -> list[Text]:
    low, high = sorted(axis.get_view_interval())
    return [label for tick in axis.get_major_ticks(len(axis.get_majorticklocs()))
            if low - 1e-9 * max(1.0, abs(high)) <= tick.get_loc() <= high + 1e-9 * max(1.0, abs(high))
            for label in (tick.label1, tick.label2) if label.get_visible()]


def _axes_texts(ax: plt.Axes) -> list[Text]:
    if not ax.get_visible():
        return []
    texts = [ax.title, ax._left_title, ax._right_title, *ax.texts]  # no public handle for the side titles
    if ax.axison:
        texts += [ax.xaxis.label, ax.yaxis.label, *_drawn_tick_labels(ax.xaxis), *_drawn_tick_labels(ax.yaxis)]
    if ax.get_legend() is not None:
        texts += [ax.get_legend().get_title(), *ax.get_legend().get_texts()]
    for child in ax.child_axes:
        texts += _axes_texts(child)
    return texts


def text_boxes(fig: plt.Figure) -> list[tuple[str, object]]:
    """Every visible text of a figure with its box in display pixels, after the figure is
    laid out as it is saved (constrained layout run, long titles wrapped)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = list(fig.texts)
    for legend in fig.legends:
        texts += [legend.get_title(), *legend.get_texts()]
    for ax in fig.axes:
        texts += _axes_texts(ax)
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text().strip()]


def overlapping_texts(fig: plt.Figure, tolerance: float = 0.5) -> list[tuple[str, str]]:
    """Pairs of texts whose boxes overlap by more than ``tolerance`` pixels each way."""
    boxes = text_boxes(fig)
    pairs = []
    for i, (text_a, a) in enumerate(boxes):
        for text_b, b in boxes[i + 1:]:
            width = min(a.x1, b.x1) - max(a.x0, b.x0)
            height = min(a.y1, b.y1) - max(a.y0, b.y0)
            if width > tolerance and height > tolerance:
                pairs.append((text_a, text_b))
    return pairs


# ---------------------------------------------------------------------------------------------
# comparing: control charts, funnel plots, spine charts (Making Data Count and Fingertips styles)

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
VERDICT_COLOUR = {"Better": NHS_BLUE, "Worse": VERMILLION, "Higher": PURPLE, "Lower": PURPLE,
                  "Similar": "#D9D9D9"}
VERDICT_TEXT = {"Better": "Better", "Worse": "Worse", "Higher": "Higher (neither better nor worse)",
                "Lower": "Lower (neither better nor worse)", "Similar": "Within the 95% limits"}
FLAG_MARKER = {"within": ("o", "Within 95% limits"), "outside_95": ("s", "Outside 95% limits"),
               "outside_998": ("D", "Outside 99.8% limits")}
COMPARISON_STYLE = {  # Fingertips verdicts, colour-blind safe
    "Better": (NHS_BLUE, "o"),
    "Similar": ("#FFFFFF", "o"),
    "Worse": (ORANGE, "o"),
    "Higher": ("#003087", "o"),
    "Lower": ("#56B4E9", "o"),
    "Not compared": ("#D9D9D9", "o"),
}


# --- Making Data Count icons, drawn ----------------------------------------------------------

ICON_LETTER = {"high": "H", "low": "L", "consistent_pass": "P", "consistent_fail": "F", "hit_and_miss": "?"}


def _icon_axes(ax: plt.Axes, slot: int) -> plt.Axes:
    """A small square axes in the top-right corner of ``ax`` (slot 0 rightmost) for an icon."""
    icon = ax.inset_axes([0.89 - 0.12 * slot, 0.77, 0.11, 0.22])
    icon.set_xlim(-1.15, 1.15)
    icon.set_ylim(-1.15, 1.15)
    icon.set_aspect("equal", adjustable="box")
    icon.set_axis_off()
    return icon


def variation_icon(ax: plt.Axes, icon: str, slot: int = 1) -> plt.Axes:
    """MDC's variation icon: a circle in the signal's colour (grey common cause, blue
    improvement, orange concern, purple neither) around a run of dots whose last points rise
    (H) or fall (L) in that colour; common cause is a flat grey run."""
    kind, _, side = icon.partition("_") if icon != "common_cause" else ("common", "", "")
    colour = VARIATION_COLOUR[kind]
    box = _icon_axes(ax, slot)
    box.add_patch(Circle((0, 0), 1, facecolor="white", edgecolor=colour, linewidth=2.2))
    x = np.linspace(-0.6, 0.6, 7)
    y = np.array([0.0, 0.12, -0.08, 0.1, -0.05, 0.05, -0.02]) - 0.1
    if side:
        y[-2:] = (0.3, 0.45) if side == "high" else (-0.45, -0.6)
    box.plot(x, y, color=GREY, linewidth=1, zorder=2)
    box.scatter(x[:-2], y[:-2], s=7, color=GREY, zorder=3)
    box.scatter(x[-2:], y[-2:], s=9, color=colour if side else GREY, zorder=3)
    if side:
        box.text(0, 0.58 if side == "high" else -0.62, ICON_LETTER[side], ha="center", va="center",
                 fontsize=7, fontweight="bold", color=colour)
    return box


def assurance_icon(ax: plt.Axes, assurance: str, slot: int = 0) -> plt.Axes:
    """MDC's assurance icon: a circle (blue: consistently passing, orange: consistently
    failing, grey: hit and miss) with the target as a dashed line and P, F or ?."""
    colour = ASSURANCE_COLOUR[assurance]
    box = _icon_axes(ax, slot)
    box.add_patch(Circle((0, 0), 1, facecolor="white", edgecolor=colour, linewidth=2.2))
    box.plot([-0.7, 0.7], [-0.35, -0.35], color=colour, linewidth=1.2, linestyle="--")
    box.text(0, 0.2, ICON_LETTER[assurance], ha="center", va="center", fontsize=9, fontweight="bold", color=colour)
    return box


@_placeholder_when_empty
def xmr_chart(spc_frame: pd.DataFrame, title: str, ylabel: str, money: bool = False) -> plt.Figure:
    """An XmR chart from :func:`ipcreport.analysis.spc.xmr`: points coloured by class, mean
    and process limits per segment (trial limits dashed; a rebase starts a new segment, marked
    by a vertical line), target, and Making Data Count's variation and assurance icons drawn
    in the top right corner."""
    frame = spc_frame
    if (frame["value"].dropna() >= 0).all():  # counts, rates and money cannot fall below zero: nor can a limit
        frame = frame.assign(lcl=frame["lcl"].clip(lower=0))
    fig, ax = _new(3.8)
    x = frame["date"]
    ax.plot(x, frame["value"], color=GREY, linewidth=1, zorder=1)
    for number, seg in frame.groupby("segment", sort=True):
        style = "--" if bool(seg["trial"].iloc[0]) else "-"
        ax.plot(seg["date"], seg["mean"], color=DARK, linewidth=1.2, zorder=2)
        ax.plot(seg["date"], seg["ucl"], color=GREY, linewidth=1, linestyle=style, zorder=2)
        ax.plot(seg["date"], seg["lcl"], color=GREY, linewidth=1, linestyle=style, zorder=2)
        if number > 1:
            ax.axvline(seg["date"].iloc[0], color=DARK, linewidth=0.8, linestyle=":", zorder=1)
    handles = [Line2D([], [], color=DARK, linewidth=1.2, label="Mean")]
    if (~frame["trial"]).any():
        handles.append(Line2D([], [], color=GREY, linewidth=1, label="Process limits"))
    if frame["trial"].any():
        handles.append(Line2D([], [], color=GREY, linewidth=1, linestyle="--", label="Trial limits (under 12 points)"))
    if frame["segment"].nunique() > 1:
        handles.append(Line2D([], [], color=DARK, linewidth=0.8, linestyle=":", label="Limits start again (change date)"))
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
    ax.set_ylim(low - 0.08 * span, high + 0.35 * span)  # headroom for the icons
    variation_icon(ax, summary.variation, slot=1 if summary.assurance else 0)
    if summary.assurance:
        assurance_icon(ax, summary.assurance, slot=0)

    if pd.api.types.is_datetime64_any_dtype(x):
        locator = mdates.AutoDateLocator(maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if money:
        money_axis(ax.yaxis)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), frameon=False,
               fontsize="small")
    return fig


def _label_positions(points: pd.DataFrame, ax: plt.Axes) -> list[tuple[float, float]]:
    """Offsets (points) for unit names that keep clear of each other: alternately above and
    below, pushed further out when two named points sit close together."""
    shown = ax.transData.transform(np.column_stack([points["denominator"], points["value"]]))
    offsets = []
    for i, (x, y) in enumerate(shown):
        near = sum(np.hypot(*(shown[j] - (x, y))) < 60 for j in range(i))
        sign = 1 if i % 2 == 0 else -1
        offsets.append((4, sign * (4 + 10 * near) - (8 if sign < 0 else 0)))
    return offsets


@_placeholder_when_empty
def funnel_plot(funnel_frame: pd.DataFrame, limits_grid: pd.DataFrame, title: str, xlabel: str, ylabel: str,
                percent: bool = False, max_labels: int = 12, polarity: str = "neutral",
                target_label: str = "All sites in this dataset (pooled)") -> plt.Figure:
    """A funnel plot from :func:`ipcreport.analysis.funnel.funnel`: the target, 95% (dashed)
    and 99.8% (solid) limits, and each unit coloured by what being outside means (blue better,
    vermillion worse, purple higher or lower where neither is better) with its shape saying
    how far out; units outside the 95% limits are named (the ``max_labels`` furthest out, by
    z-score, when more are outside)."""
    units, grid = funnel_frame, limits_grid
    fig, ax = _new(4.0)
    ax.plot(grid["denominator"], grid["target"], color=DARK, linewidth=1.2)
    for column, style in (("lower_95", "--"), ("upper_95", "--"), ("lower_998", "-"), ("upper_998", "-")):
        ax.plot(grid["denominator"], grid[column], color=GREY, linewidth=1, linestyle=style)
    handles = [Line2D([], [], color=DARK, linewidth=1.2, label=target_label),
               Line2D([], [], color=GREY, linestyle="--", label="95% limits"),
               Line2D([], [], color=GREY, linestyle="-", label="99.8% limits")]
    group = np.where(units["flag"].str.contains("99.8"), "outside_998",
                     np.where(units["flag"] == "within", "within", "outside_95"))
    direction = [None if f == "within" else "Higher" if f.startswith("above") else "Lower" for f in units["flag"]]
    verdicts = np.array([P.polarised(d, polarity) for d in direction])
    for key, (marker, text) in FLAG_MARKER.items():
        for verdict, colour in VERDICT_COLOUR.items():
            points = units[(group == key) & (verdicts == verdict)]
            if len(points):
                ax.scatter(points["denominator"], points["value"], color=colour, marker=marker, s=34,
                           edgecolors=DARK, linewidths=0.5, zorder=3)
    for verdict in dict.fromkeys(verdicts):
        handles.append(Line2D([], [], color=VERDICT_COLOUR[verdict], marker="o", linestyle="none",
                              markeredgecolor=DARK, label=VERDICT_TEXT[verdict]))
    for key in dict.fromkeys(group):
        if key != "within":
            handles.append(Line2D([], [], color="white", marker=FLAG_MARKER[key][0], linestyle="none",
                                  markeredgecolor=DARK, label=FLAG_MARKER[key][1]))
    values = np.concatenate([units["value"].to_numpy(dtype=float), grid[["lower_998", "upper_998"]].to_numpy().ravel()])
    finite = values[np.isfinite(values)]
    span = finite.max() - finite.min() if finite.size else 1.0
    ax.set_ylim(max(finite.min() - 0.05 * span, 0) if finite.min() >= 0 else finite.min() - 0.05 * span,
                finite.max() + 0.05 * span)
    ax.set_xlim(0, grid["denominator"].max())
    outside = units[group != "within"]
    if "z" in outside and len(outside) > max_labels:
        outside = outside.loc[outside["z"].abs().sort_values(ascending=False).index[:max_labels]]
    outside = outside.sort_values("denominator")
    for row, offset in zip(outside.itertuples(index=False), _label_positions(outside, ax)):
        ax.annotate(str(row.unit), (row.denominator, row.value), xytext=offset, textcoords="offset points",
                    fontsize="x-small", color=DARK)
    if percent:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False, fontsize="small")
    return fig


@_placeholder_when_empty
def spine_chart(rows: pd.DataFrame, title: str, comparator: str = "England") -> plt.Figure:
    """A Fingertips-style spine chart from :func:`ipcreport.analysis.peers.spine_rows`: each
    indicator a row, the range of all sites (light grey) and their inter-quartile range (dark
    grey) scaled so the comparator is the centre line, worst (or lowest) on the left; the
    site's value a marker coloured by its comparison with the comparator, and written at the
    right."""
    positions = P.spine_positions(rows)
    fig, ax = _new(1.5 + 0.55 * len(rows))
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
    # the site's values in a column of their own right of the axes, headed, clear of the ticks
    value_axis = ax.secondary_yaxis("right")
    value_axis.set_yticks(y, [f"{value:,.3g}" for value in rows["value"]])
    value_axis.tick_params(length=0)
    value_axis.set_ylabel("This site")
    ax.set_yticks(y, [textwrap.fill(label(i), 34) for i in rows["indicator"]])  # leave the bars room
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xticks([0, 0.5, 1], ["Worst / lowest", textwrap.fill(comparator, 12), "Best / highest"])
    for tick, align in zip(ax.get_xticklabels(), ("left", "center", "right")):
        tick.set_horizontalalignment(align)
    ax.grid(False)
    ax.set_title(title)
    level = rows["level"].iloc[0] if "level" in rows else 0.95
    present.append(Line2D([], [], color="#8A8A8A", linewidth=6, label="Middle half of sites"))
    fig.legend(handles=present, loc="outside lower center", ncols=min(len(present), 4), frameon=False,
               fontsize="small", title=f"Compared with {comparator if comparator.startswith('England') else comparator.lower()} "
               f"at {level:.1%}".replace(".0%", "%"),
               title_fontsize="small")
    return fig


# ---------------------------------------------------------------------------------------------
# outcomes and value for money

DIMENSION_TITLES = {"overall": "All people (unweighted)", "cohort": "By cohort", "management": "By how the budget is held"}


def forest_plot(rows: pd.DataFrame, title: str,
                xlabel: str = "Rate ratio, budget holders vs comparison (log scale; below 1 = fewer)") -> plt.Figure:
    """Rate ratios with 95% intervals by subgroup, from :func:`outcomes.rate_ratio_subgroups`.

    One outcome's rows (columns dimension, subgroup, irr, low, high, n, reason). Subgroups
    without an estimate are listed with their reason in place of a point, never a number.
    """
    if len(rows) == 0:
        return _empty(title)
    rows = rows.reset_index(drop=True)
    names = ["All people (unweighted)" if r.dimension == "overall" else f"  {label(r.subgroup)}"
             for r in rows.itertuples()]
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
        ax.text(lo * 1.03, y[i], f"not shown: {reason.split(' (')[0]}", va="center", fontsize="small", color="#425563",
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
    from ..analysis.outcomes import BALANCE_LABELS

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
            ax.text(0, 0, f"not shown: {r.reason}", ha="center", va="center", fontsize="small", color="#425563")
            ax.set_xlim(-1, 1)
            ax.set_xticks([])
            continue
        ax.errorbar(r.diff, 0, xerr=[[r.diff - r.low], [r.high - r.diff]], fmt="o", color=NHS_BLUE, capsize=4)
        span = max(abs(r.low), abs(r.high)) * 1.3
        ax.set_xlim(-span, span)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, symmetric=True))  # labels of a short axis stay apart
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
    money_axis(ax.yaxis)
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
    money_axis(ax.xaxis)
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
    for colour, (col, name) in zip(palette(len(parts)), parts):
        v = costs.loc[order, col].to_numpy(dtype=float)
        ax.barh([label(g) for g in order], v, left=left, color=colour, label=name)
        left += v
    money_axis(ax.xaxis)
    ax.set_xlabel("Mean cost per person over the follow-up year")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small", frameon=False)
    return fig


def pooled_forest_plot(pooled, title: str,
                       xlabel: str = "Emergency admissions rate ratio (log scale; below 1 = fewer)") -> plt.Figure:
    """Each site's rate ratio with its 95% interval (marker size by random-effects weight), the
    pooled estimate as a diamond and its 95% prediction interval as a line beneath
    (:class:`ipcreport.analysis.meta.Pooled`)."""
    if pooled is None or pooled.k == 0:
        return _empty(title)
    s = pooled.sites.reset_index(drop=True)
    n = len(s)
    fig, ax = _new(1.3 + 0.36 * (n + 2))
    y = np.arange(n)[::-1] + 2
    for i, r in s.iterrows():
        ax.errorbar(r["irr"], y[i], xerr=[[r["irr"] - r["low"]], [r["high"] - r["irr"]]], fmt="s", color=NHS_BLUE,
                    capsize=3, markersize=4 + 10 * float(r["weight"]))
    diamond_x = [pooled.low, pooled.value, pooled.high, pooled.value]
    ax.fill(diamond_x, [1, 1.25, 1, 0.75], color=PALETTE[1], zorder=3)
    if pooled.prediction_low is not None:
        ax.plot([pooled.prediction_low, pooled.prediction_high], [0.35, 0.35], color=PALETTE[1], linewidth=2)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    bounds = [s["low"].min(), s["high"].max(), pooled.low, pooled.high, 0.8, 1.25]
    if pooled.prediction_low is not None:
        bounds += [pooled.prediction_low, pooled.prediction_high]
    lo, hi = max(min(bounds) * 0.9, 0.05), min(max(bounds) * 1.1, 20)
    ax.set_xlim(lo, hi)
    ticks = [t for t in (0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 2, 4) if lo <= t <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    names = list(s["site"]) + ["Pooled (random effects)", "Prediction interval"]
    ax.set_yticks(list(y) + [1, 0.35], names)
    ax.set_ylim(0, n + 2.6)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig

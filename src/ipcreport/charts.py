"""One function per chart type, in one house style.

Every function returns a matplotlib figure; its alt text and caption are the notebook cell's
``fig-alt`` and ``fig-cap`` options (static, so Quarto and the built-in renderer agree), with the
numbers in a table beside each chart. Colours are the
Okabe-Ito colour-blind-safe palette, led by NHS blue (#005EB8), which keeps 4.5:1 contrast on
white.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

NHS_BLUE = "#005EB8"
PALETTE = [NHS_BLUE, "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
FIG_WIDTH = 7.0  # inches: fits A4 text width at 100%


def apply_house_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.titleweight": "bold",
                         "axes.spines.top": False, "axes.spines.right": False})


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


def gbp(value: float, _pos=None) -> str:
    """Money as a briefing prints it: £9.7m, £12k, £850, -£415k."""
    sign, size = ("-" if value < 0 else ""), abs(value)
    if size >= 1e6:
        return f"{sign}£{size / 1e6:,.1f}m"
    if size >= 1e3:
        return f"{sign}£{size / 1e3:,.0f}k"
    return f"{sign}£{size:,.0f}"


def _placeholder_when_empty(draw: Callable[..., plt.Figure]) -> Callable[..., plt.Figure]:
    """A chart of nothing says so, instead of failing (a site early in its roll-out)."""

    @functools.wraps(draw)
    def wrapper(data, title: str, *args, **kwargs) -> plt.Figure:
        if len(data) == 0:
            fig, ax = _new(1.6)
            ax.set_axis_off()
            ax.set_title(title)
            ax.text(0.5, 0.4, "No data for this chart yet", ha="center", va="center", color="#425563")
            return fig
        return draw(data, title, *args, **kwargs)

    return wrapper


def _log_money_axis(axis) -> None:
    """A log-scale money axis with readable ticks (1, 2, 5 per decade), no scientific labels."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(gbp))
    axis.set_minor_formatter(NullFormatter())


def _new(height: float = 3.6) -> tuple[plt.Figure, plt.Axes]:
    apply_house_style()
    return plt.subplots(figsize=(FIG_WIDTH, height), layout="constrained")


@_placeholder_when_empty
def bar(values: pd.Series, title: str, xlabel: str, money: bool = False, percent: bool = False) -> plt.Figure:
    """Horizontal bars, one per category, largest at the top."""
    fig, ax = _new(0.8 + 0.4 * len(values))
    ordered = values.sort_values()
    ax.barh([label(i) for i in ordered.index], ordered.to_numpy(), color=NHS_BLUE)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if money:
        ax.xaxis.set_major_formatter(FuncFormatter(gbp))
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
        ax.yaxis.set_major_formatter(FuncFormatter(gbp))
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
    ax.xaxis.set_major_formatter(FuncFormatter(gbp))
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
    for colour, column in zip(PALETTE * 2, shares.columns):
        values = shares[column].fillna(0).to_numpy()
        ax.barh(rows, values, left=left, color=colour, label=label(column), edgecolor="white")
        left += values
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.invert_yaxis()
    ax.legend(ncol=3, fontsize="x-small", frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return fig


@_placeholder_when_empty
def plan_lines(by_month: pd.DataFrame, title: str, ylabel: str) -> plt.Figure:
    """Monthly and cumulative money per plan (columns), months after the extract on the x axis."""
    apply_house_style()
    fig, (monthly, cumulative) = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.2), layout="constrained")
    for colour, style, plan in zip(PALETTE, ("-", "--", ":"), by_month.columns):
        monthly.plot(by_month.index, by_month[plan], color=colour, linestyle=style, label=f"{label(plan)} roll-out")
        cumulative.plot(by_month.index, by_month[plan].cumsum(), color=colour, linestyle=style)
    for ax, name in ((monthly, "Each month"), (cumulative, "Cumulative")):
        ax.yaxis.set_major_formatter(FuncFormatter(gbp))
        ax.set_xlabel("Months after the extract date")
        ax.set_title(name, fontsize="medium")
    monthly.set_ylabel(ylabel)
    monthly.legend(frameon=False, fontsize="small")
    fig.suptitle(title, fontweight="bold")
    return fig


@_placeholder_when_empty
def tornado(table: pd.DataFrame, title: str, xlabel: str) -> plt.Figure:
    """One-way sensitivities: a bar per input from its low to its high result, widest at the top,
    around the central result (``gap_central``)."""
    fig, ax = _new(1.0 + 0.55 * len(table))
    central = float(table["gap_central"].iloc[0])
    y = np.arange(len(table))[::-1]
    for row, (_, r) in zip(y, table.iterrows()):
        ax.barh(row, r["gap_low"] - central, left=central, color=PALETTE[4], label="Input at its 5th percentile" if row == y[0] else None)
        ax.barh(row, r["gap_high"] - central, left=central, color=NHS_BLUE, label="Input at its 95th percentile" if row == y[0] else None)
    ax.axvline(central, color="black", linewidth=1)
    ax.axvline(0, color=PALETTE[5], linestyle="--", linewidth=1, label="Spend equals budget")
    ax.set_yticks(y, table["input"])
    ax.xaxis.set_major_formatter(FuncFormatter(gbp))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(frameon=False, fontsize="x-small", loc="lower right")
    return fig

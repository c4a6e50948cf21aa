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
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

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
    if abs(value) >= 1e6:
        return f"£{value / 1e6:,.1f}m"
    if abs(value) >= 1e3:
        return f"£{value / 1e3:,.0f}k"
    return f"£{value:,.0f}"


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
    ax.xaxis.set_major_formatter(FuncFormatter(gbp))
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
def interval_plot(rows: pd.DataFrame, title: str, xlabel: str, null: float, log: bool = False) -> plt.Figure:
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

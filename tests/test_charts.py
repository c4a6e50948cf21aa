"""Charts people can read: money ticks that differ at every scale, ordinal bands in band order,
a colour per category, and no text box of any chart the briefing or the overview draws on
another (measured with the renderer's window extents after layout)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ipcreport.report import charts
from ipcreport.analysis import spc as S
from ipcreport.analysis.allocation import USE_BAND_LABELS

matplotlib.use("Agg")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def drawn_labels(axis) -> list[tuple[float, str]]:
    axis.figure.canvas.draw()
    low, high = sorted(axis.get_view_interval())
    return [(loc, text.get_text()) for loc, text in zip(axis.get_majorticklocs(), axis.get_ticklabels())
            if low <= loc <= high]


def pounds(text: str) -> float:
    """'£1.25m' -> 1250000, '-£415k' -> -415000, '£1,025' -> 1025."""
    match = re.fullmatch(r"(-?)£([\d,.]+)([km]?)", text)
    assert match, text
    sign, number, suffix = match.groups()
    value = float(number.replace(",", "")) * {"": 1, "k": 1e3, "m": 1e6}[suffix]
    return -value if sign else value


@pytest.mark.parametrize(("low", "high"), [
    (1_019, 1_184),  # Figure 16: every tick read "£1k"
    (1_190_000, 1_310_000),  # "£1.2m" for 1.25m
    (0, 25_000_000), (-415_000, 120_000), (12, 19), (9_800, 10_400), (0.2, 0.9), (99_000, 101_000),
])
def test_money_ticks_differ_and_say_their_value_at_every_scale(low, high):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [low, high])
    charts.money_axis(ax.yaxis)
    ticks = drawn_labels(ax.yaxis)
    plt.close(fig)
    labels = [text for _, text in ticks]
    assert len(ticks) >= 3 and len(set(labels)) == len(labels), labels
    for loc, text in ticks:  # each label is its tick's value, exactly as written
        assert pounds(text) == pytest.approx(loc, abs=1e-9 * max(1.0, abs(high))), (loc, text)


def test_money_style_by_hand():
    assert charts.money_style([1_000, 1_025, 1_050]) == (1.0, "", 0)  # £1,000 £1,025 £1,050
    assert charts.money_style([1.2e6, 1.25e6, 1.3e6]) == (1e6, "m", 2)  # £1.20m £1.25m £1.30m
    assert charts.money_style([0, 20_000, 40_000]) == (1e3, "k", 0)  # £0 £20k £40k
    assert charts.money_style([0, 2.5e6, 5e6]) == (1e6, "m", 1)


def test_the_spend_control_chart_of_figure_16_has_distinct_money_ticks():
    values = pd.Series(np.linspace(1_019, 1_184, 24), index=pd.period_range("2024-10", periods=24, freq="M"))
    frame = S.xmr(values)
    fig = charts.xmr_chart(frame, "Spend per active budget holder each month", "GBP", money=True)
    labels = [text for _, text in drawn_labels(fig.axes[0].yaxis)]
    plt.close(fig)
    assert len(set(labels)) == len(labels) >= 3 and "£1k" not in labels


def test_palette_has_as_many_colours_as_categories():
    for n in (1, 3, 8, 9, 10):
        colours = charts.palette(n)
        assert len(set(colours)) == n
    with pytest.raises(ValueError, match="too many"):
        charts.palette(11)
    shares = pd.DataFrame(np.full((2, 9), 1 / 9), index=["a", "b"], columns=[f"category_{i}" for i in range(9)])
    fig = charts.stacked_shares(shares, "Nine categories", "Share")
    faces = {matplotlib.colors.to_hex(p.get_facecolor()) for p in fig.axes[0].patches}
    plt.close(fig)
    assert len(faces) == 9  # one colour per category, none shared (the spend mix has 9)


def test_ordinal_bands_are_drawn_in_band_order():
    counts = pd.Series([48, 107, 567, 458, 153, 18], index=USE_BAND_LABELS)  # sorting would reorder
    assert charts.is_ordinal(counts.index)
    assert not charts.is_ordinal(pd.Index(["home_care", "therapies"]))
    fig = charts.bar(counts[::-1], "Budget periods by share spent", "Periods")  # as the briefing passes them
    ax = fig.axes[0]
    top_to_bottom = [t.get_text() for t in sorted(ax.get_yticklabels(), key=lambda t: -t.get_position()[1])]
    plt.close(fig)
    assert top_to_bottom == USE_BAND_LABELS
    fig = charts.bar(pd.Series([3, 1, 2], index=["b", "a", "c"]), "Categories", "n")
    largest_on_top = [t.get_text() for t in sorted(fig.axes[0].get_yticklabels(), key=lambda t: -t.get_position()[1])]
    plt.close(fig)
    assert largest_on_top == ["B", "C", "A"]


def test_overlapping_texts_finds_an_overlap():
    fig, ax = plt.subplots()
    ax.text(0.5, 0.5, "one label here")
    ax.text(0.52, 0.5, "another label")
    ax.text(0.1, 0.1, "far away")
    assert charts.overlapping_texts(fig) == [("one label here", "another label")]
    plt.close(fig)


# --- every chart a briefing draws ------------------------------------------------------------


def notebook_figures(notebook: Path, parameters: dict) -> dict[str, list[tuple[str, str]]]:
    """Run a notebook's code in this process, as its kernel would, with ``figure`` replaced
    by a check: each chart's overlapping texts by its cell's label."""
    from ipcreport.report.present import _prose

    found: dict[str, list[tuple[str, str]]] = {}
    namespace: dict = {"__name__": "__main__"}
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        label = next((line.split(":", 1)[1].strip() for line in source.splitlines() if line.startswith("#| label:")),
                     f"cell {cell['id']}")

        def check(fig, *data, dpi=150, label=label, **download):  # the chart's data and alt text aside
            for text in _prose(fig):  # wrapped as the briefing saves it
                text.set_wrap(True)
            found[label] = charts.overlapping_texts(fig)
            plt.close(fig)

        if "figure" in namespace:  # imported by the set-up cell; replaced for every cell after it
            namespace["figure"] = check
        exec(compile(source, f"{notebook.name}:{label}", "exec"), namespace)
        if "parameters" in cell["metadata"].get("tags", []):
            namespace.update(parameters)
    return found


@pytest.mark.slow
def test_no_text_overlaps_in_any_chart_the_briefing_draws(small_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(NOTEBOOKS)
    found = notebook_figures(NOTEBOOKS / "site_briefing.ipynb", {
        "data_path": str(small_dataset), "output_dir": str(tmp_path / "site"), "simulation_draws": 500,
        "spc_rebase": {"spend": ["2026-01-01"]}})
    assert len(found) >= 15 and "fig-spine" in found and "fig-spc-spend" in found
    assert {label: pairs for label, pairs in found.items() if pairs} == {}


@pytest.mark.slow
def test_no_text_overlaps_in_any_chart_the_overview_draws(small_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(NOTEBOOKS)
    found = notebook_figures(NOTEBOOKS / "national_overview.ipynb", {
        "data_path": str(small_dataset), "output_dir": str(tmp_path / "overview")})
    assert len(found) >= 5 and "fig-funnel-emergency-rate" in found
    assert {label: pairs for label, pairs in found.items() if pairs} == {}


def test_text_from_the_data_is_printed_never_read_as_maths():
    """A site name such as '$\\frac{' would crash a chart, and '$x^2$' would print as maths."""
    import io

    charts.apply_house_style()
    fig = charts.bar(pd.Series({"Borough $\\frac{": 2.0, "Other": 1.0}), "Site $x^2$", "GBP")
    fig.savefig(io.BytesIO(), format="png")  # mathtext would raise on the unclosed fraction
    texts = [t.get_text() for ax in fig.axes for t in (ax.title, *ax.get_yticklabels())]
    assert "Site $x^2$" in texts and "Borough $\\frac{" in texts

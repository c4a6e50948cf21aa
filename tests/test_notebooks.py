"""Each notebook executed for real by papermill on a small dataset, with a real kernel."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
from PIL import Image

from ipcreport.pipeline.build import OVERVIEW_NOTEBOOK, SITE_NOTEBOOK
from ipcreport.pipeline.jobs import KERNEL
from ipcreport.data.contract import METRIC_KEYS

from conftest import edit_csv

pytestmark = pytest.mark.slow


def test_notebooks_are_committed_without_outputs():
    for path in (SITE_NOTEBOOK, OVERVIEW_NOTEBOOK):
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata.kernelspec.name == KERNEL
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path
        assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1, path


@pytest.fixture(scope="module")
def site_run(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("site_nb")
    site = pd.read_csv(small_dataset / "sites.csv", dtype=str)["site_code"].iloc[1]
    papermill.execute_notebook(
        str(SITE_NOTEBOOK), str(out / "executed.ipynb"), kernel_name=KERNEL, progress_bar=False,
        cwd=str(SITE_NOTEBOOK.parent),
        parameters={"site_code": site, "data_path": str(small_dataset), "output_dir": str(out / "metrics" / site)},
    )
    return out, site


def test_site_notebook_records_every_contract_key(site_run, small_dataset):
    out, site = site_run
    metrics = json.loads((out / "metrics" / site / "metrics.json").read_text())
    assert set(METRIC_KEYS) <= set(metrics)
    truth = json.loads((small_dataset / "truth.json").read_text())
    people = pd.read_csv(small_dataset / "people.csv", dtype=str)
    mine = people[people["site_code"] == site]
    # Counts are exact; shares are shares of those counts.
    assert metrics["people_ipc"] == (mine["group"] == "ipc").sum()
    assert metrics["people_comparison"] == (mine["group"] == "comparison").sum()
    holders = mine[mine["group"] == "ipc"]
    assert metrics["share_direct_payment"] == pytest.approx((holders["management"] == "direct_payment").mean())
    assert metrics["site_code"] == site and metrics["data_sha256"]
    assert truth  # the dataset carries its truth; the notebook never reads it
    for key in METRIC_KEYS:
        if metrics[key] is None:
            assert any(n.startswith(f"{key}:") for n in metrics["notes"]), f"{key} is null without a note"


def test_site_notebook_shows_every_section_with_a_chart_and_no_errors(site_run):
    out, _ = site_run
    nb = nbformat.read(out / "executed.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines() if line.startswith("## ")]
    assert headings == ["## Decisions for the board", "## Money in the reporting year", "## Who holds budgets and how", "## What budgets buy",
                        "## Outcomes against the comparison group", "## Compared with other sites and over time",
                        "## Financial risk", "## Data quality",
                        "## Methods and definitions", "## Appendix: technical detail"]
    # technical detail (balance, sensitivity rows, model terms) only after the appendix heading
    appendix = next(i for i, c in enumerate(nb.cells) if c.source.startswith("## Appendix"))
    for detail in ("balance_table", "balance_plot", "sensitivity_table", "tornado", "equity_table", "equity.terms"):
        where = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and detail in c.source]
        assert where and min(where) > appendix, f"{detail} is in the body"
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    assert images >= 6


def ink_on_edges(png: bytes, ring: int = 2) -> int:
    """Pixels darker than the white background in the image's outermost ``ring`` pixels: a
    chart laid out inside its figure has none; a cut-off title or label has some."""
    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    edges = np.concatenate([grey[:ring].ravel(), grey[-ring:].ravel(), grey[:, :ring].ravel(), grey[:, -ring:].ravel()])
    return int((edges < 250).sum())


def charts_cut_at_the_edges(notebook: Path) -> list[str]:
    nb = nbformat.read(notebook, as_version=4)
    return [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if "image/png" in o.get("data", {}) and ink_on_edges(base64.b64decode(o["data"]["image/png"]))]


def test_no_chart_is_cut_off_at_its_edges(site_run):
    """Charts are saved at their set size (not trimmed to what is drawn), so every title and
    label must fit: long ones wrap."""
    out, _ = site_run
    assert charts_cut_at_the_edges(out / "executed.ipynb") == []


def test_overview_notebook_over_site_metrics(site_run, small_dataset, tmp_path):
    out, site = site_run
    papermill.execute_notebook(
        str(OVERVIEW_NOTEBOOK), str(tmp_path / "overview.ipynb"), kernel_name=KERNEL, progress_bar=False,
        cwd=str(OVERVIEW_NOTEBOOK.parent),
        parameters={"metrics_dir": str(out / "metrics"), "data_path": str(small_dataset), "output_dir": str(tmp_path)},
    )
    nb = nbformat.read(tmp_path / "overview.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("data", {}).get("text/markdown", "") + o.get("text", "") for o in outputs)
    assert f"({site})" in text and "1 sites" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 6  # 2 charts + 4 funnel plots
    assert charts_cut_at_the_edges(tmp_path / "overview.ipynb") == []


def test_a_site_with_no_budgets_yet_still_gets_a_briefing(dataset_copy, tmp_path):
    for table in ("budgets", "spend", "contracts"):
        edit_csv(dataset_copy, table, lambda f: f.iloc[0:0])
    papermill.execute_notebook(
        str(SITE_NOTEBOOK), str(tmp_path / "executed.ipynb"), kernel_name=KERNEL, progress_bar=False,
        cwd=str(SITE_NOTEBOOK.parent), parameters={"data_path": str(dataset_copy), "output_dir": str(tmp_path)},
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["budget_total"] == 0 and metrics["utilisation"] is None
    assert any(n.startswith("utilisation: no budget period has completed") for n in metrics["notes"])
    nb = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "No agreed budgets were live in the reporting year" in text

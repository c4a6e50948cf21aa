"""nbval checks both notebooks: each runs top to bottom in a real kernel (as an analyst runs it
in JupyterLab) on a small dataset, and every cell whose outputs are text (the messages, tables
and sentences with numbers in them) must print exactly what a reference run printed. Charts are
not compared (PNG bytes are not a stable thing to compare); that they are drawn is checked in
test_notebooks.py. The site notebook is checked as a copy with one number changed: nbval
reports each cell, so exactly that cell must fail (the comparison is real) and every other
cell must pass (the run is reproducible): one run proves both."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pandas as pd
import pytest

from ipcreport.pipeline.jobs import KERNEL
from ipcreport.resources import OVERVIEW_NOTEBOOK, SITE_NOTEBOOK

pytestmark = pytest.mark.slow

TEXT_OUTPUTS = {"text/plain", "text/markdown"}


def text_only(cell) -> bool:
    """A code cell whose outputs are all text: what nbval compares."""
    outputs = cell.get("outputs", [])
    return bool(outputs) and all(
        o.output_type == "stream" or (o.output_type in ("display_data", "execute_result")
                                      and set(o.data) <= TEXT_OUTPUTS)
        for o in outputs)


def reference_run(notebook: Path, out: Path, parameters: dict) -> Path:
    """The notebook with its parameters set and run once by papermill; text cells tagged for
    nbval to compare, the rest (charts) left unchecked."""
    papermill.execute_notebook(str(notebook), str(out), kernel_name=KERNEL, progress_bar=False,
                               cwd=str(notebook.parent), parameters=parameters)
    nb = nbformat.read(out, as_version=4)
    checked = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and text_only(cell):
            cell.metadata.setdefault("tags", []).append("nbval-check-output")
            checked += 1
    assert checked >= 3, f"{notebook.name}: only {checked} text cells to compare"
    nbformat.write(nb, out)
    return out


def tampered(notebook: Path) -> Path:
    """A copy whose first compared number is changed: nbval must report it."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if "nbval-check-output" in cell.metadata.get("tags", []):
            for out in cell.outputs:
                text = out.get("text") or out.get("data", {}).get("text/markdown", "")
                digit = next((ch for ch in text if ch.isdigit()), None)
                if digit:
                    changed = text.replace(digit, str((int(digit) + 1) % 10), 1)
                    if "text" in out:
                        out["text"] = changed
                    else:
                        out["data"]["text/markdown"] = changed
                    path = notebook.with_name("tampered_" + notebook.name)
                    nbformat.write(nb, path)
                    return path
    raise AssertionError("no number to change")


def test_notebooks_pass_nbval_except_for_a_changed_number(small_dataset, tmp_path):
    site = pd.read_csv(small_dataset / "sites.csv", dtype=str)["site_code"].iloc[0]
    site_nb = reference_run(SITE_NOTEBOOK, tmp_path / "site_briefing.ipynb", {
        "site_code": site, "data_path": str(small_dataset), "output_dir": str(tmp_path / "metrics" / site),
        "simulation_draws": 2000, "run_date": "2026-10-01"})
    overview_nb = reference_run(OVERVIEW_NOTEBOOK, tmp_path / "national_overview.ipynb", {  # from the site's metrics
        "metrics_dir": str(tmp_path / "metrics"), "sites": [site], "data_path": str(small_dataset),
        "output_dir": str(tmp_path / "overview"), "run_date": "2026-10-01"})
    bad = tampered(site_nb)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "nbval", "--nbval-lax", "--nbval-kernel-name", KERNEL,
         "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "-rf", "--rootdir", str(tmp_path),
         str(overview_nb), str(bad)],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    report = done.stdout + done.stderr
    failed = [line for line in report.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and bad.name in failed[0], report[-4000:]  # the changed cell, no other
    assert " passed" in report and "error" not in report.splitlines()[-1], report[-2000:]

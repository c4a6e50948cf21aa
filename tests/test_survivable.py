"""Data the contract allows must not crash a briefing: no questionnaires, baselines only, no
contracts, no events, a site with no budget holders. Each runs the real site notebook (real
papermill, real kernel) on the small dataset so changed; the briefing must be written, say
what is missing, and print no 'nan'.
"""

from __future__ import annotations

import json
import re

import nbformat
import pandas as pd
import papermill
import pytest

from ipcreport.pipeline.build import SITE_NOTEBOOK
from ipcreport.pipeline.jobs import KERNEL

from conftest import edit_csv

pytestmark = pytest.mark.slow


def no_surveys(d):
    edit_csv(d, "surveys", lambda f: f.iloc[0:0])


def baselines_only(d):
    edit_csv(d, "surveys", lambda f: f[f["timepoint"] == "baseline"])


def no_contracts(d):
    edit_csv(d, "contracts", lambda f: f.iloc[0:0])


def no_events(d):
    edit_csv(d, "events", lambda f: f.iloc[0:0])


def no_budget_holders(d):
    """The first site's budget holders all become comparison people (no budgets, no spend)."""
    people = pd.read_csv(d / "people.csv", dtype=str, keep_default_na=False)
    site = pd.read_csv(d / "sites.csv", dtype=str)["site_code"].iloc[0]
    gone = set(people.loc[(people["site_code"] == site) & (people["group"] == "ipc"), "person_id"])

    def demote(frame):
        rows = frame["person_id"].isin(gone)
        frame.loc[rows, "group"], frame.loc[rows, "management"] = "comparison", ""
        return frame

    edit_csv(d, "people", demote)
    for table in ("budgets", "spend"):
        edit_csv(d, table, lambda f: f[~f["person_id"].isin(gone)])


CASES = [
    pytest.param(no_surveys, "questionnaire", id="no-questionnaires"),
    pytest.param(baselines_only, "follow-up", id="baselines-only"),
    pytest.param(no_contracts, "contract", id="no-contracts"),
    pytest.param(no_events, "admission", id="no-events"),
    pytest.param(no_budget_holders, "budget", id="no-budget-holders"),
]


@pytest.mark.parametrize("change, missing", CASES)
def test_the_briefing_survives_and_says_what_is_missing(dataset_copy, tmp_path, change, missing):
    change(dataset_copy)
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(SITE_NOTEBOOK), str(executed), kernel_name=KERNEL, progress_bar=False, cwd=str(SITE_NOTEBOOK.parent),
        parameters={"data_path": str(dataset_copy), "output_dir": str(tmp_path), "simulation_draws": 500},
    )
    assert json.loads((tmp_path / "metrics.json").read_text())["site_code"]
    nb = nbformat.read(executed, as_version=4)
    text = "".join(o.get("data", {}).get("text/markdown", "") + o.get("text", "")
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert missing in text.lower()
    assert not re.search(r"\bnan\b", text, re.I), re.findall(r".{0,60}\bnan\b.{0,60}", text, re.I)[:5]

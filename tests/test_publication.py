"""What is published may be published: a site with a cohort of four budget holders shows no
count of people from 1 to 7 anywhere in its published folder, no file there names a person,
and working files stay out of it."""

from __future__ import annotations

import re
from pathlib import Path

import docx
import openpyxl
import pandas as pd
import pypdfium2 as pdfium
import pytest

from conftest import RENDERERS, edit_csv, need_renderer, run_cli

pytestmark = pytest.mark.slow

SMALL_COHORT = 4
# Column headers of published tables that hold counts of people (or of their budgets/questionnaires).
COUNT_HEADERS = re.compile(r"people|budget holders|^budgets$|budget periods|questionnaires|with follow-up", re.I)
# A count of people written in a sentence.
COUNT_IN_WORDS = re.compile(r"\b([1-7])\s+(?:people|persons?|budget holders?|holders?)\b", re.I)


def published_text(path: Path) -> str:
    """Everything a reader can see in a published file, as text."""
    if path.suffix in (".html", ".csv", ".json"):
        return path.read_text(encoding="utf-8")
    if path.suffix == ".pdf":
        pdf = pdfium.PdfDocument(path)
        return "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    if path.suffix == ".docx":
        document = docx.Document(path)
        cells = [c.text for t in document.tables for row in t.rows for c in row.cells]
        return "\n".join([p.text for p in document.paragraphs] + cells)
    if path.suffix == ".xlsx":
        book = openpyxl.load_workbook(path, read_only=True)
        return "\n".join(str(v) for ws in book for row in ws.iter_rows(values_only=True) for v in row if v is not None)
    raise AssertionError(f"unexpected file in the published folder: {path}")


_BUILDS: dict[str, tuple] = {}  # one build per renderer, however pytest orders the tests


@pytest.fixture(scope="module", params=RENDERERS)
def small_cohort_build(request, small_dataset, tmp_path_factory):
    """The small dataset with one site's learning-disability budget holders cut to four, built
    by each renderer."""
    need_renderer(request.param)
    if request.param not in _BUILDS:
        _BUILDS[request.param] = build_small_cohort(small_dataset, tmp_path_factory, request.param)
    return _BUILDS[request.param]


def build_small_cohort(small_dataset, tmp_path_factory, renderer: str):
    root = tmp_path_factory.mktemp(f"small_cohort_{renderer}")
    dataset = root / "dataset"
    import shutil

    shutil.copytree(small_dataset, dataset)
    people = pd.read_csv(dataset / "people.csv", dtype=str, keep_default_na=False)
    site = people["site_code"].iloc[0]
    holders = people.index[(people["site_code"] == site) & (people["group"] == "ipc")
                           & (people["cohort"] == "learning_disability")]
    assert len(holders) > SMALL_COHORT

    def shrink(frame):  # the others become adults with long-term conditions
        frame.loc[holders[SMALL_COHORT:], "cohort"] = "long_term_conditions"
        return frame

    edit_csv(dataset, "people", shrink)
    done = run_cli("build", dataset, "--reports", root / "reports", "--work", root / "work", cwd=root,
                   renderer=renderer)
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "reports" / "dataset", site, set(people["person_id"])


def test_the_cohort_of_four_is_hidden_everywhere(small_cohort_build):
    report, site, _ = small_cohort_build
    folder = report / "sites" / site
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".html", ".pdf", ".docx", ".csv", ".xlsx"}
    cohort_rows = {}
    for csv in folder.rglob("*.csv"):
        # tidy downloads: one row per figure, the table's column in `measure`, the number in `value`
        table = pd.read_csv(csv, dtype={"measure": str}, keep_default_na=False)
        if "measure" not in table.columns:
            continue
        counts = table[table["measure"].str.contains(COUNT_HEADERS)]
        small = pd.to_numeric(counts["value"], errors="coerce").isin(range(1, 8))
        assert not small.any(), f"{csv.name}: {counts[small].to_dict('records')}"
        if "Cohort" in table.columns:
            rows = table[(table["Cohort"] == "Learning disability") & (table["measure"] == "People")]
            if len(rows):
                cohort_rows[csv.name] = [("[c]" if str(r.suppressed) == "True" else r.value) for r in rows.itertuples()]
    assert cohort_rows, "no published table of people by cohort"
    for name, values in cohort_rows.items():
        assert values in ([], ["[c]"]), f"{name}: learning disability shows {values}"
    assert any(values == ["[c]"] for values in cohort_rows.values())
    for path in files:
        found = COUNT_IN_WORDS.findall(published_text(path))
        assert not found, f"{path.name} writes a small count of people: {found}"


def test_no_published_file_names_a_person(small_cohort_build):
    report, _, person_ids = small_cohort_build
    files = [p for p in report.rglob("*") if p.is_file()]
    assert len(files) > 20
    for path in files:
        text = published_text(path)
        tokens = set(re.findall(r"\bP\d{5,}\b", text))
        assert not tokens & person_ids, f"{path} names people: {sorted(tokens & person_ids)[:5]}"
        assert not re.search(r"\b\d{10}\b", text), f"{path} holds a 10-digit number (NHS-number-like)"


def test_working_files_stay_out_of_the_published_folder(small_cohort_build):
    report, _, _ = small_cohort_build
    kinds = {p.suffix for p in report.rglob("*") if p.is_file()}
    assert kinds <= {".html", ".pdf", ".docx", ".csv", ".xlsx", ".json"}, kinds
    assert not list(report.rglob("metrics.json")) and not list(report.rglob("*.ipynb"))
    assert (report.parent.parent / "work" / "dataset").is_dir()

"""`ipcreport build` end to end on a small dataset: real kernels, real renders, real PDFs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import docx
import pandas as pd
import pypdfium2 as pdfium
import pytest
import yaml

from ipcreport.pipeline.build import SYNTHETIC_MARK
from ipcreport.data.contract import METRIC_KEYS

from conftest import ARTIFACTS, edit_csv, run_cli
from test_contract import corrupt_three_tables

pytestmark = pytest.mark.slow


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])


def test_index_links_every_format_of_every_site_and_the_overview(built, small_dataset):
    _, report = built
    parser = Links()
    parser.feed((report / "index.html").read_text())
    sites = pd.read_csv(small_dataset / "sites.csv", dtype=str)["site_code"]
    expected = {f"sites/{s}/briefing.{ext}" for s in sites for ext in ("html", "pdf", "docx")}
    expected |= {f"overview/overview.{ext}" for ext in ("html", "pdf", "docx")}
    assert expected <= set(parser.hrefs)
    for href in expected:
        assert (report / href).stat().st_size > 5_000, href


def test_overview_links_each_site_name_to_its_briefing(built, small_dataset):
    # the site table's names are links, not Markdown printed as text (pandas 3 once dropped the
    # link's type, so the brackets were escaped and showed on the page)
    _, report = built
    page = (report / "overview" / "overview.html").read_text()
    parser = Links()
    parser.feed(page)
    sites = pd.read_csv(small_dataset / "sites.csv", dtype=str)["site_code"]
    assert {f"../sites/{s}/briefing.html" for s in sites} <= set(parser.hrefs)
    assert "](../sites/" not in page


def test_no_text_prints_over_other_text_in_any_pdf(built_by):
    # table headers squeezed below the width of their words once printed over each other
    from reader import overprinted

    renderer, _, report = built_by
    for pdf in sorted(report.glob("**/*.pdf")):
        assert overprinted(pdf) == [], (renderer, pdf.relative_to(report))


def test_the_decision_page_fits_one_page_and_names_a_sum(built_by):
    # the decisions and the note on how they are ranked end on the page where they begin
    renderer, _, report = built_by
    for path in sorted((report / "sites").glob("*/briefing.pdf")):
        pages = [page.get_textpage().get_text_range() for page in pdfium.PdfDocument(path)]
        first = next(i for i, text in enumerate(pages) if i > 0 and "Decisions for the board" in text)  # not contents
        page = " ".join(pages[first].split())
        assert "largest sums at stake first" in page, (renderer, path.parent.name)
        decisions = page.split("Decisions for the board", 1)[1].split("largest sums at stake first")[0]
        assert "Decision:" in decisions and "£" in decisions, (renderer, path.parent.name, decisions)


def test_manifest_and_metrics(built):
    root, report = built
    manifest = json.loads((report / "manifest.json").read_text())
    assert manifest["ok"] and manifest["dataset"]["synthetic"] is True
    assert str(root) not in json.dumps(manifest), "paths are relative to the run's work folder"
    assert len(manifest["sites"]) == 2
    for site in manifest["sites"]:
        # the shared build is made once, fresh, and never rebuilt in place (test_pipeline rebuilds a copy)
        assert site["status"] == "ok" and not site["cached"] and site["timings"]["execute_seconds"] > 0
        metrics = json.loads((root / "work" / "test" / site["metrics"]).read_text())
        assert set(METRIC_KEYS) <= set(metrics)
        assert metrics["package_version"] == manifest["package_version"]


def test_html_briefing_is_self_contained_marked_synthetic_and_shows_no_code(built):
    _, report = built
    page = next((report / "sites").glob("*/briefing.html")).read_text()
    words = " ".join(page.split())  # pandoc wraps long lines
    assert SYNTHETIC_MARK in words
    for section in ("Decisions for the board", "Money in the reporting year", "Who holds budgets and how", "What budgets buy",
                    "Outcomes against the comparison group", "Financial risk", "Data quality",
                    "Methods and definitions"):
        assert f"{section}</h2>" in words
    for code in ("import ", "analyse_site", "def ", "site_code = "):
        assert code not in page, code
    assert not re.search(r'src="(?!data:)', page), "every image is embedded"
    assert page.count("<img") >= 6


def test_pdf_pages_are_not_blank_and_each_says_synthetic(built):
    _, report = built
    pdf_path = next((report / "sites").glob("*/briefing.pdf"))
    pdf = pdfium.PdfDocument(pdf_path)
    assert len(pdf) >= 3
    out = ARTIFACTS / "build"
    out.mkdir(parents=True, exist_ok=True)
    for number in range(len(pdf)):
        page = pdf[number]
        assert "SYNTHETIC" in page.get_textpage().get_text_range()
        width, height = page.get_size()
        assert (round(width), round(height)) == (595, 842), "A4 in points"
        for obj in page.get_objects():
            left, bottom, right, top = obj.get_bounds()
            assert left >= 0 and bottom >= 0 and right <= width and top <= height, (
                f"page {number + 1}: an object overflows the page ({left:.0f}, {bottom:.0f}, {right:.0f}, {top:.0f})")
        image = page.render(scale=1).to_pil().convert("L")
        image.save(out / f"briefing-page-{number + 1}.png")
        histogram = image.histogram()
        ink = sum(histogram[:200]) / sum(histogram)
        assert ink > 0.01, f"page {number + 1} looks blank ({ink:.3%} ink)"


def test_word_briefing_has_headings_and_figures(built):
    _, report = built
    document = docx.Document(next((report / "sites").glob("*/briefing.docx")))
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert "Financial risk" in headings and "Decisions for the board" in headings
    assert len(document.inline_shapes) >= 6
    assert any("SYNTHETIC" in p.text for s in document.sections for p in s.header.paragraphs)


def test_invalid_dataset_writes_nothing(dataset_copy, tmp_path):
    corrupt_three_tables(dataset_copy)
    done = run_cli("build", dataset_copy, "--reports", tmp_path / "reports", "--work", tmp_path / "work", cwd=tmp_path)
    assert done.returncode == 2
    assert "budgets.csv, row 10, column agreed_budget" in done.stderr
    assert not (tmp_path / "reports").exists() and not (tmp_path / "work").exists()


def test_a_failing_site_does_not_stop_the_others(small_dataset, tmp_path):
    """The real command, with a site notebook that raises for one site: exit 1 (sites failed),
    the other site published, the failure's message and section on the index, no traceback."""
    from test_faults import site_notebook

    from ipcreport.resources import OVERVIEW_NOTEBOOK

    sites = pd.read_csv(small_dataset / "sites.csv", dtype=str)["site_code"].tolist()
    mine = tmp_path / "mine"  # an analyst's own notebooks (--notebooks): a site notebook that raises
    mine.mkdir()
    site_notebook(mine / "site_briefing.ipynb", {sites[0]: "raise"})
    shutil.copy(OVERVIEW_NOTEBOOK, mine / OVERVIEW_NOTEBOOK.name)
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"run": "r", "formats": ["html"]}))
    done = run_cli("build", small_dataset, "--params", params, "--notebooks", mine, "--reports", tmp_path / "reports",
                   "--work", tmp_path / "work", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and f"FAILED {sites[0]}: ValueError: budgets do not add up" in done.stderr
    report = tmp_path / "reports" / "r"
    assert (report / "sites" / sites[1] / "briefing.html").exists()
    assert not (report / "sites" / sites[0]).exists()
    index = (report / "index.html").read_text()
    assert "Failed: ValueError: budgets do not add up at data.csv (in section &#x27;Money&#x27;)" in index
    assert "/srv/secret" not in index and str(tmp_path) not in index
    manifest = json.loads((report / "manifest.json").read_text())
    statuses = {s["key"]: s["status"] for s in manifest["sites"]}
    assert statuses == {sites[0]: "failed", sites[1]: "ok"}
    assert (tmp_path / "work" / "r" / "sites" / sites[0] / "error.txt").exists()


def test_two_extracts_a_quarter_apart_show_what_changed(small_dataset, tmp_path):
    """Build last quarter's extract, then this quarter's: the second briefing's table gives each
    figure then (the first build's metrics) and now, and the history holds both extracts."""
    params = tmp_path / "q.yaml"
    params.write_text("run: quarterly\nformats: [html]\nrisk: {simulation_draws: 1000}\n")
    earlier = tmp_path / "earlier"
    assert run_cli("snapshot", small_dataset, earlier, "--months-before", 3, cwd=tmp_path).returncode == 0
    common = ("--params", params, "--jobs", 2, "--reports", tmp_path / "reports", "--work", tmp_path / "work")
    for dataset, run in ((earlier, "q1"), (small_dataset, "q2")):
        done = run_cli("build", dataset, *common, "--run", run, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    history = pd.read_parquet(tmp_path / "reports" / "history.parquet")
    assert history.groupby("run")["extract_date"].nunique().to_dict() == {"q1": 1, "q2": 1}
    site = pd.read_csv(small_dataset / "sites.csv", dtype=str)["site_code"].iloc[0]
    then = json.loads((tmp_path / "work" / "q1" / "sites" / site / "metrics.json").read_text())
    now = json.loads((tmp_path / "work" / "q2" / "sites" / site / "metrics.json").read_text())
    page = " ".join((tmp_path / "reports" / "q2" / "sites" / site / "briefing.html").read_text().split())
    assert "Since the last extract" in page
    row = re.search(r"Agreed budgets in the year</td>\s*<td[^>]*>([^<]+)</td>\s*<td[^>]*>([^<]+)</td>", page)
    from ipcreport.report.present import money

    assert row and (row.group(1), row.group(2)) == (money(then["budget_total"]), money(now["budget_total"]))
    # The earlier extract's own briefing has no earlier extract to compare with.
    assert "Since the last extract" not in (tmp_path / "reports" / "q1" / "sites" / site / "briefing.html").read_text()
def test_impossible_parameters_are_refused_before_any_site_runs(small_dataset, tmp_path):
    sites = pd.read_csv(small_dataset / "sites.csv", dtype=str)["site_code"].tolist()
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"run": "r", "sites": {sites[0]: {"risk": {"simulation_draws": -1}}}}))
    done = run_cli("build", small_dataset, "--params", params, "--reports", tmp_path / "reports",
                   "--work", tmp_path / "work", cwd=tmp_path)
    assert done.returncode == 2 and f"sites.{sites[0]}.risk.simulation_draws must be between" in done.stderr
    assert not (tmp_path / "reports").exists() and not (tmp_path / "work").exists()

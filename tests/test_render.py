"""The built-in renderer on a real notebook: executed by a real kernel, rendered by real
pandoc and Typst. PDF pages are saved under test-artifacts/render/ for a person to look at."""

from __future__ import annotations

import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from ipcreport.pipeline.render import (
    TEMPLATES,
    PandocTypstRenderer,
    QuartoRenderer,
    RenderError,
    RenderRequest,
    cell_options,
    RENDERER_ENV,
    default_renderer,
    label_table_captions,
    quarto_typst_variables,
)

pytestmark = pytest.mark.xdist_group("render")  # one worker executes and renders once

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "render"
WATERMARK = "SYNTHETIC DATA - not real people"
FIG_ALT = "Line chart of monthly spend rising from 10 to 40 thousand pounds"
FIG_CAP = "Monthly spend at the test site"
SECRET = "SECRET-INCLUDE-FALSE-7781"


def briefing_notebook() -> nbformat.NotebookNode:
    cells = [
        new_raw_cell("---\ntitle: Front matter title\nexecute:\n  echo: false\n"
                     "  warning: false\n---"),
        new_code_cell('site = "PARAM-SITE-DEFAULT"\nsite', metadata={"tags": ["parameters"]}),
        new_code_cell("#| output: asis\nprint('## Spending summary')\nprint()\n"
                      "print(f'Total agreed budgets were {12345 * 2:,} pounds.')"),
        new_code_cell(
            "from IPython.display import Markdown\n"
            "Markdown('| Site | People | Spend |\\n|:--|--:|--:|\\n| Alpha | 120 | 1,234,567 |\\n"
            "| Beta | 85 | 987,654 |\\n\\n: Budgets by site {#tbl-sites}')"
        ),
        new_code_cell(
            f"#| label: fig-test\n#| fig-cap: {FIG_CAP}\n#| fig-alt: {FIG_ALT}\n"
            "import matplotlib.pyplot as plt\n"
            "fig, ax = plt.subplots(figsize=(6.4, 3.6))\n"
            "ax.plot(range(1, 13), [10 + 30 * i / 11 for i in range(12)], color='#005eb8', lw=2.5)\n"
            "ax.fill_between(range(1, 13), 0, [10 + 30 * i / 11 for i in range(12)], alpha=0.25)\n"
            "ax.set_xlabel('Month'); ax.set_ylabel('Spend (£k)')\n"
            "plt.show()"
        ),
        new_code_cell(f"#| include: false\nprint('{SECRET}')"),
        new_code_cell(  # an object with HTML and plain-text reprs, like a pandas DataFrame
            "class Both:\n"
            "    def _repr_html_(self): return '<p class=\"raw\">RAW-HTML-OK</p>'\n"
            "    def __repr__(self): return 'PLAIN-FALLBACK-OK'\n"
            "Both()"
        ),
        new_markdown_cell("## Method\n\nThe echoed calculation below is shown on purpose."),
        new_code_cell("#| echo: true\nanswer = 6 * 7\nprint(answer)"),
        # Enough text to run onto further pages, so "every page" is really tested.
        new_markdown_cell("## Notes\n\n" + "\n\n".join(
            f"Note {n}: personal health budgets give people choice and control over the money "
            "spent on their care, planned with their local NHS team and reviewed each year."
            for n in range(1, 40))),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "ipcreport", "display_name": "Python (ipcreport)",
                                 "language": "python"}
    return nb


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    from nbclient import NotebookClient

    work = tmp_path_factory.mktemp("render")
    nb = briefing_notebook()
    client = NotebookClient(nb, kernel_name="ipcreport", timeout=120,
                            resources={"metadata": {"path": str(work)}})
    client.execute()
    notebook = work / "briefing.ipynb"
    nbformat.write(nb, notebook)

    renderer = PandocTypstRenderer()
    timings = {}
    outputs = {}
    for fmt in ("html", "pdf", "docx"):
        request = RenderRequest(notebook, work / "out", "briefing", "Test briefing",
                                subtitle="Quarter 2, 2025/26", watermark=WATERMARK, formats=(fmt,))
        started = time.perf_counter()
        outputs.update(renderer.render(request))
        timings[fmt] = time.perf_counter() - started
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # no stale pages from an earlier run
    ARTIFACTS.mkdir(parents=True)
    for path in outputs.values():
        shutil.copy(path, ARTIFACTS / path.name)
    (ARTIFACTS / "timings.txt").write_text("".join(f"{k}: {v:.2f} s\n" for k, v in timings.items()))
    return outputs


class _Page(HTMLParser):
    """The <img> attributes and the visible text (no <style>) of an HTML page."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[dict] = []
        self.chunks: list[str] = []
        self._in_style = False
        self.feed(text)
        self.text = "".join(self.chunks)

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        if tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if not self._in_style:
            self.chunks.append(data)


def test_cell_options_are_stripped():
    options, code = cell_options("#| label: fig-x\n#| fig-cap: A caption\nx = 1\n")
    assert options == {"label": "fig-x", "fig-cap": "A caption"}
    assert code == "x = 1"


def test_default_renderer_without_quarto(monkeypatch):
    monkeypatch.delenv(RENDERER_ENV, raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert default_renderer().name == "pandoc+typst"
    monkeypatch.setattr(shutil, "which", lambda name: "/opt/quarto/bin/quarto")
    assert isinstance(default_renderer(), QuartoRenderer)


@pytest.mark.slow
def test_html(rendered):
    raw = rendered["html"].read_text(encoding="utf-8")
    page = _Page(raw)
    text = page.text
    assert 'lang="en-GB"' in raw
    assert "Spending summary" in text and "24,690" in text
    assert "Budgets by site" in text and "1,234,567" in text
    assert SECRET not in raw
    assert "PARAM-SITE-DEFAULT" not in raw  # papermill parameter cells never appear
    assert "import matplotlib" not in text and "Markdown(" not in text  # echo: false
    assert "answer = 6 * 7" in text and "#|" not in text  # echo: true, options stripped
    assert "Test briefing" in text and "Front matter title" not in raw  # request wins
    assert 'id="TOC"' in raw
    assert '<p class="raw">RAW-HTML-OK</p>' in raw and "PLAIN-FALLBACK-OK" not in raw
    assert f'class="ipc-watermark" role="note">{WATERMARK}<' in raw
    assert [img["alt"] for img in page.images] == [FIG_ALT]
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images)
    assert f"<figcaption>{FIG_CAP}</figcaption>" in raw
    assert 'id="fig-test"' in raw
    assert 'src="http' not in raw and 'href="http' not in raw and "@import" not in raw


@pytest.mark.slow
def test_pdf(rendered):
    import numpy as np
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(rendered["pdf"])
    assert len(pdf) >= 1
    ink_shares = []
    all_text = ""
    for number, page in enumerate(pdf, start=1):
        text = page.get_textpage().get_text_range()
        all_text += text
        assert WATERMARK in text, f"page {number} lacks the watermark"
        assert f"Page {number} of {len(pdf)}" in text
        image = page.render(scale=1.5).to_pil()
        image.save(ARTIFACTS / f"briefing-page{number}.png")
        # "Ink": pixels clearly darker than white (the diagonal watermark is lighter).
        ink_shares.append(float((np.asarray(image.convert("L")) < 235).mean()))
    assert min(ink_shares) > 0.005, ink_shares  # no blank pages
    assert max(ink_shares) > 0.05, ink_shares  # the figure's filled area shows
    assert "Spending summary" in all_text and "24,690" in all_text
    assert FIG_CAP in all_text and "1,234,567" in all_text
    assert SECRET not in all_text and "import matplotlib" not in all_text
    assert "PLAIN-FALLBACK-OK" in all_text and "RAW-HTML-OK" not in all_text


@pytest.mark.slow
def test_docx(rendered):
    from docx import Document

    doc = Document(str(rendered["docx"]))
    headings = [p for p in doc.paragraphs if p.style.name.startswith("Heading")]
    assert any(p.text == "Spending summary" for p in headings)
    assert len(doc.inline_shapes) >= 1
    assert f'descr="{FIG_ALT}"' in doc.inline_shapes[0]._inline.xml  # alt text, not caption
    assert WATERMARK in "\n".join(p.text for p in doc.sections[0].header.paragraphs)
    body = "\n".join(p.text for p in doc.paragraphs)
    assert SECRET not in body and "24,690" in body and "PLAIN-FALLBACK-OK" in body


def test_error_output_raises_and_writes_nothing(tmp_path):
    nb = new_notebook(cells=[new_code_cell("1 / 0", outputs=[
        new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[]),
    ])])
    notebook = tmp_path / "broken.ipynb"
    nbformat.write(nb, notebook)
    out = tmp_path / "out"
    with pytest.raises(RenderError, match="broken.ipynb"):
        PandocTypstRenderer().render(RenderRequest(notebook, out, "briefing", "Broken"))
    assert not out.exists() or not any(out.iterdir())


def test_failed_format_leaves_no_partial_file(tmp_path, monkeypatch):
    nb = new_notebook(cells=[new_markdown_cell("## Hello")])
    notebook = tmp_path / "plain.ipynb"
    nbformat.write(nb, notebook)
    out = tmp_path / "out"
    renderer = PandocTypstRenderer()

    def broken_pdf(request, source, target, work):
        target.write_bytes(b"%PDF-half")
        raise RenderError("typst failed to write pdf for notebook plain.ipynb")

    monkeypatch.setattr(renderer, "_pdf", broken_pdf)
    with pytest.raises(RenderError, match="pdf"):
        renderer.render(RenderRequest(notebook, out, "briefing", "Hello", formats=("html", "pdf")))
    assert sorted(p.name for p in out.iterdir()) == ["briefing.html"]
    assert (out / "briefing.html").stat().st_mode & 0o044  # readable, not mkstemp's 0600


# --- The Quarto path without Quarto: what we hand it (test_renderers.py runs the real one) ---

FAKE_QUARTO = """\
import json, os, pathlib, sys
# Stand-in for `quarto render NB --to FMT[,FMT...]`: writes NB.<ext> holding what it was given.
_, command, notebook, _, to = sys.argv
if os.environ.get("FAKE_QUARTO_FAIL") in to.split(","):
    sys.exit("ERROR: typst compile failed (fake)")
nb = json.loads(pathlib.Path(notebook).read_text())
sources = ["".join(c["source"]) for c in nb["cells"]]  # .ipynb stores lists of lines
outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
report = {"front": sources[0], "cells": sources[1:], "outputs": outputs, "files": sorted(os.listdir(".")),
          "calls": 1 + len(list(pathlib.Path(".").glob("*.calls")))}
pathlib.Path(f"call{report['calls']}.calls").write_text(to)
for fmt in to.split(","):
    ext = {"html": "html", "typst": "pdf", "docx": "docx"}[fmt]
    pathlib.Path(notebook).with_suffix("." + ext).write_text(json.dumps(report))
"""

TABLE_OUTPUT = "| A | B |\n|:--|--:|\n| x | 1 |\n\n: First table\n"


@pytest.fixture
def fake_quarto(tmp_path):
    import sys

    script = tmp_path / "quarto"
    script.write_text(f"#!{sys.executable}\n{FAKE_QUARTO}")
    script.chmod(0o755)
    nb = new_notebook(cells=[
        new_raw_cell("---\ntitle: Front matter title\nexecute:\n  echo: true\n---"),
        new_code_cell('site = "PARAM-SITE-DEFAULT"', metadata={"tags": ["injected-parameters"]}),
        new_code_cell("#| output: asis\nprint('## Summary')"),
        new_code_cell("show_tables()", outputs=[
            new_output("display_data", data={"text/markdown": TABLE_OUTPUT}),
            new_output("stream", name="stdout", text=TABLE_OUTPUT.replace("First", "Second")),
        ]),
    ])
    notebook = tmp_path / "briefing.ipynb"
    nbformat.write(nb, notebook)
    return QuartoRenderer(str(script)), notebook


def test_quarto_gets_front_matter_and_files_in_one_call(fake_quarto, tmp_path):
    import json

    import yaml

    renderer, notebook = fake_quarto
    out = renderer.render(RenderRequest(notebook, tmp_path / "out", "q3", "Test briefing",
                                        subtitle="Q3", watermark=WATERMARK))
    assert sorted(out) == ["docx", "html", "pdf"] and out["pdf"].name == "q3.pdf"
    report = json.loads(out["html"].read_text())
    assert report["calls"] == 1  # one quarto call wrote all three formats
    front = yaml.safe_load(report["front"].strip().strip("-"))
    assert front["title"] == "Test briefing" and front["subtitle"] == "Q3"
    assert front["execute"] == {"echo": True, "warning": False}  # notebook's choice kept
    html_format, typst_format = front["format"]["html"], front["format"]["typst"]
    assert html_format["embed-resources"] is True and html_format["minimal"] is True
    assert html_format["format-links"] is False and html_format["css"] == "ipcreport.css"
    assert html_format["include-before-body"] == "watermark.html"
    assert typst_format["template-partials"] == ["typst-template.typ", "page.typ"]
    assert front["format"]["docx"]["reference-doc"] == "reference.docx"
    assert front["format"]["docx"]["filters"] == [{"path": "ipcreport-quarto.lua", "at": "post-render"}]
    assert not any("PARAM-SITE-DEFAULT" in cell for cell in report["cells"])
    support = ("ipcreport.css", "ipcreport.typ", "reference.docx", "ipcreport-vars.typ", "typst-template.typ",
               "page.typ", "ipcreport-quarto.lua", "watermark.html", "favicon.html")
    assert set(support) <= set(report["files"])
    texts = ["".join(o.get("data", {}).get("text/markdown") or o.get("text") or "") for o in report["outputs"]]
    captions = [line for text in texts for line in text.splitlines() if line.startswith(": ")]
    assert captions == [": First table {#tbl-1}", ": Second table {#tbl-2}"]


def test_quarto_failure_names_notebook_and_formats_and_writes_nothing(fake_quarto, tmp_path, monkeypatch):
    renderer, notebook = fake_quarto
    monkeypatch.setenv("FAKE_QUARTO_FAIL", "docx")
    out = tmp_path / "out"
    with pytest.raises(RenderError, match=r"(?s)html, pdf, docx.*briefing.ipynb.*typst compile failed"):
        renderer.render(RenderRequest(notebook, out, "q3", "Test briefing"))
    assert not out.exists() or not any(out.iterdir())  # all formats or none


@pytest.mark.parametrize("markdown, expected", [
    ("| a |\n|--|\n| 1 |\n\n: Spend by site\n", "| a |\n|--|\n| 1 |\n\n: Spend by site {#tbl-7}\n"),
    ("| a |\n|--|\n| 1 |\n\n: Labelled {#tbl-x}\n", "| a |\n|--|\n| 1 |\n\n: Labelled {#tbl-x}\n"),
    ("Term\n\n: a definition, not a table caption\n", "Term\n\n: a definition, not a table caption\n"),
    ("| a |\n|--|\n| 1 |\n", "| a |\n|--|\n| 1 |\n"),  # no caption: left alone
])
def test_table_captions_get_labels(markdown, expected):
    assert label_table_captions(markdown, iter([7, 8])) == expected


def test_renderer_chosen_by_environment(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: "/opt/quarto/bin/quarto")
    monkeypatch.setenv(RENDERER_ENV, "builtin")
    assert default_renderer().name == "pandoc+typst"
    monkeypatch.setenv(RENDERER_ENV, "quarto")
    assert default_renderer().name == "quarto"
    monkeypatch.setenv(RENDERER_ENV, "latex")
    with pytest.raises(RenderError, match="IPCREPORT_RENDERER='latex'"):
        default_renderer()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv(RENDERER_ENV, "quarto")
    with pytest.raises(RenderError, match="not on PATH"):
        default_renderer()


def test_quarto_typst_partials_give_the_built_in_page(tmp_path):
    """Quarto's Typst template with our partials, laid out as Quarto lays it out (template.typ:
    definitions, typst-template, header-includes, page, typst-show, body): a title page with
    the notice and the contents, then the running header, watermark and "Page N of M" on
    every page."""
    import pypdfium2 as pdfium
    import typst

    for name in ("ipcreport.typ", "quarto/typst-template.typ", "quarto/page.typ"):
        shutil.copy(TEMPLATES / name, tmp_path / Path(name).name)
    request = RenderRequest(Path("x.ipynb"), tmp_path, "x", 'A "quoted" title', watermark=WATERMARK)
    (tmp_path / "ipcreport-vars.typ").write_text(quarto_typst_variables(request))
    quarto_like = "\n".join([
        (tmp_path / "typst-template.typ").read_text(), (tmp_path / "page.typ").read_text(),
        "#show: doc => article(title: [Site briefing], subtitle: [Q3], lang: \"en\", font: (\"Arial\",),"
        " toc: true, toc_title: [Contents], toc_depth: 1, doc)",
        "= Key messages\n" + "Some words of body text. " * 400, "= Money\n== Detail\nMore words.",
    ])
    (tmp_path / "x.typ").write_text(quarto_like)
    typst.compile(str(tmp_path / "x.typ"), output=str(tmp_path / "x.pdf"), root=str(tmp_path),
                  ignore_system_fonts=True)
    pdf = pdfium.PdfDocument(tmp_path / "x.pdf")
    texts = [page.get_textpage().get_text_range() for page in pdf]
    assert len(pdf) >= 3
    assert "Site briefing" in texts[0] and "Contents" in texts[0] and "Key messages" in texts[0]
    assert "Detail" not in texts[0]  # contents list sections only, as the built-in one does
    assert "Some words" not in texts[0]  # the briefing starts on the next page
    for number, text in enumerate(texts, start=1):
        assert WATERMARK in text and 'A "quoted" title' in text
        assert f"Page {number} of {len(pdf)}" in text
    width, height = pdf[0].get_size()
    assert (round(width), round(height)) == (595, 842)  # A4, not Quarto's default US letter


def test_pipe_table_columns_get_their_words_and_links_count_by_their_text():
    # pandoc sizes a wide pipe table's columns by the separator's dashes: a column gets at least
    # its longest word (+2), a link counts by its text, not its target, and the rest of the
    # 100-character line goes to the columns that would wrap
    import pandas as pd

    from ipcreport.report.present import _with_column_widths

    cells = pd.DataFrame({"Site": ["[Blackpool \\(E06000009\\)](../sites/E06000009/briefing.html)"],
                          "Chance of exceeding": ["under 1%"]})
    text = cells.to_markdown(index=False, colalign=["left", "right"])
    separator = _with_column_widths(text, cells, ["left", "right"]).split("\n")[1]
    site, chance = (len(part) for part in separator.strip("|").split("|"))
    # floors: longest words "(E06000009)" 11 and "exceeding" 9, plus 2 for padding: 13 and 11;
    # wants: the longest texts "Blackpool (E06000009)" 21 and "Chance of exceeding" 19, plus 2,
    # minus the floors: 10 and 10; the spare 100 - 24 = 76 is shared 38 and 38
    assert (site, chance) == (13 + 38, 11 + 38)

"""One executed briefing, rendered by both renderers, reads the same.

The built-in renderer (pandoc + Typst) and Quarto render the same executed site notebook (from
a real build); what a reader gets from each format is compared: headings, figures with their
captions and alt text, tables with their captions, the synthetic-data notice on every page,
page size, and no code. Skipped, saying why, where Quarto is not on PATH. Render times are
written to test-artifacts/renderers/timings.txt (no timed assertion here; see benchmarks/)."""

from __future__ import annotations

import shutil
import time

import pytest

from conftest import ARTIFACTS, NO_QUARTO
from ipcreport.pipeline.publish import SYNTHETIC_MARK
from ipcreport.pipeline.render import PandocTypstRenderer, QuartoRenderer, RenderRequest
from reader import A4_POINTS, docx_view, html_view, pdf_view

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("quarto") is None, reason=NO_QUARTO)]

OUT = ARTIFACTS / "renderers"
VIEWS = {"html": html_view, "pdf": pdf_view, "docx": docx_view}


@pytest.fixture(scope="module")
def views(built):
    """Reader views of one site's briefing from each renderer: {renderer: {format: view}}."""
    root, _ = built
    notebook = next((root / "work" / "test" / "sites").glob("*/site_briefing.ipynb"))
    shutil.rmtree(OUT, ignore_errors=True)
    timings, result = [], {}
    for renderer in (PandocTypstRenderer(), QuartoRenderer()):
        out = OUT / renderer.name.replace("+", "-")
        request = RenderRequest(notebook, out, "briefing", "Test site: personal budgets briefing",
                                subtitle="Quarterly briefing", watermark=SYNTHETIC_MARK)
        started = time.perf_counter()
        files = renderer.render(request)
        timings.append(f"{renderer.name}: {time.perf_counter() - started:.1f} s for html, pdf and docx\n")
        result[renderer.name] = {fmt: VIEWS[fmt](path, SYNTHETIC_MARK) for fmt, path in files.items()}
    (OUT / "timings.txt").write_text("".join(timings))
    return result["pandoc+typst"], result["quarto"]


@pytest.mark.parametrize("fmt", ["html", "pdf", "docx"])
def test_both_renderers_give_a_reader_the_same_briefing(views, fmt):
    builtin, quarto = views[0][fmt], views[1][fmt]
    assert len(builtin.headings) >= 10 and quarto.headings == builtin.headings
    assert len(builtin.tables) >= 10 and quarto.tables == builtin.tables
    assert len(builtin.figures) >= 10 and quarto.figures == builtin.figures
    assert quarto.code == builtin.code == []
    assert quarto.pages_with_notice[0] == quarto.pages_with_notice[1] >= 1  # on every page
    assert builtin.pages_with_notice[0] == builtin.pages_with_notice[1] >= 1
    assert quarto.page_size == builtin.page_size


def test_every_figure_has_alt_text_where_the_format_carries_it(views):
    for renderer in views:
        for fmt in ("html", "docx"):
            figures = renderer[fmt].figures
            assert figures and all(alt and alt != caption for caption, alt in figures), (fmt, figures[:3])
        assert renderer["docx"].layout_tables == 0  # figures are plain figures, not one-cell tables


def test_pages_are_a4(views):
    for renderer in views:
        assert renderer["pdf"].page_size == A4_POINTS
        assert renderer["docx"].page_size == (21.0, 29.7)

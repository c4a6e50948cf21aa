"""Turn an executed notebook into the briefing's HTML, PDF and Word files.

The executed notebook is the single source of a briefing. Two renderers read it:

* :class:`QuartoRenderer` hands it to ``quarto render`` (when Quarto is installed);
* :class:`PandocTypstRenderer` (the built-in one) converts it to Markdown that Quarto would
  also accept, then runs pandoc (HTML, Word) and pandoc + Typst (PDF).

Both honour the same subset of Quarto: YAML front matter in a first raw cell, ``#|`` cell
options (echo, include, output, label, fig-cap, fig-alt, warning) and papermill's
parameter cells, and both use the stylesheet and Typst styling in ``templates/``.
"""

from __future__ import annotations

import base64
import copy
import html
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import yaml

from ..resources import TEMPLATES
from ..report.escape import markdown

log = logging.getLogger(__name__)

FORMATS = ("html", "pdf", "docx")
# Briefings hide code and warnings unless a notebook or a cell asks otherwise.
BRIEFING_EXECUTE = {"echo": False, "warning": False}
SKIP_TAGS = {"parameters", "injected-parameters"}
LANG = "en-GB"
# A self-contained page names its own (empty) icon, so browsers do not ask the server for one.
EMPTY_FAVICON = '<link rel="icon" href="data:,">'
_UMASK = os.umask(0o022)  # read the process umask once (the call sets it, so restore it)
os.umask(_UMASK)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?---[ \t]*\Z", re.DOTALL)


class RenderError(RuntimeError):
    """A briefing could not be rendered; the message names the notebook and the format."""


@dataclass(frozen=True)
class RenderRequest:
    notebook: Path  # an executed .ipynb
    out_dir: Path  # where <stem>.html/.pdf/.docx go
    stem: str  # e.g. "briefing"
    title: str
    subtitle: str | None = None
    watermark: str | None = None  # shown on every page of every format
    formats: tuple[str, ...] = FORMATS

    def __post_init__(self) -> None:
        unknown = sorted(set(self.formats) - set(FORMATS))
        if unknown:
            raise ValueError(f"unknown format(s) {unknown}; choose from {FORMATS}")


class Renderer(Protocol):
    name: str

    def render(self, request: RenderRequest) -> dict[str, Path]: ...


RENDERER_ENV = "IPCREPORT_RENDERER"  # "quarto", "builtin" or "auto" (the default)


def default_renderer() -> Renderer:
    """Quarto when it is on PATH, else the built-in pandoc + Typst renderer; the environment
    variable IPCREPORT_RENDERER=quarto|builtin chooses one explicitly."""
    choice = os.environ.get(RENDERER_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "quarto", "builtin"):
        raise RenderError(f"{RENDERER_ENV}={choice!r}: choose quarto, builtin or auto")
    if choice == "quarto" and not shutil.which("quarto"):
        raise RenderError(f"{RENDERER_ENV}=quarto, but quarto is not on PATH")
    if choice == "quarto" or (choice == "auto" and shutil.which("quarto")):
        return QuartoRenderer()
    return PandocTypstRenderer()


# --------------------------------------------------------------------------------------
# Reading the notebook


def read_notebook(path: Path) -> "nbformat.NotebookNode":
    """Read an executed notebook, refusing one whose run ended in an error."""
    import nbformat  # imported when rendering: it is slow to import (its JSON-schema checks)

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types
        raise RenderError(f"cannot read notebook {path}: {exc}") from exc
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                raise RenderError(
                    f"notebook {path} has an error output in cell {index} "
                    f"({out.get('ename')}: {out.get('evalue')}); only notebooks that ran "
                    "without error are rendered"
                )
    return nb


def split_front_matter(nb: "nbformat.NotebookNode") -> tuple[dict[str, Any], list]:
    """Return (front matter, remaining cells): Quarto reads YAML from a first raw cell."""
    cells = list(nb.cells)
    if cells and cells[0].cell_type == "raw":
        match = _FRONT_MATTER.match(cells[0].source.strip())
        if match:
            try:
                meta = yaml.safe_load(match.group(1) or "") or {}
            except yaml.YAMLError as exc:
                raise RenderError(f"front matter is not valid YAML: {exc}") from exc
            if not isinstance(meta, dict):
                raise RenderError("front matter in the first raw cell is not a YAML mapping")
            return meta, cells[1:]
    return {}, cells


def cell_options(source: str) -> tuple[dict[str, Any], str]:
    """Split Quarto ``#|`` option lines off the top of a code cell: (options, code)."""
    lines = source.splitlines()
    n = 0
    while n < len(lines) and lines[n].startswith("#|"):
        n += 1
    try:
        options = yaml.safe_load("\n".join(line[2:] for line in lines[:n])) if n else {}
    except yaml.YAMLError as exc:
        raise RenderError(f"cell options are not valid YAML: {lines[:n]}: {exc}") from exc
    if options is not None and not isinstance(options, dict):
        raise RenderError(f"cell options are not a YAML mapping: {lines[:n]}")
    return options or {}, "\n".join(lines[n:]).strip("\n")


# --------------------------------------------------------------------------------------
# Notebook -> Markdown (Quarto-compatible)


@dataclass(frozen=True)
class _Either:
    """A piece of Markdown that differs between HTML and the other formats."""

    html: str
    other: str


def _fence(text: str, lang: str = "") -> str:
    # The fence must be longer than any backtick run inside the text.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def _attr(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _merged_streams(outputs: list) -> Iterator[dict]:
    """Outputs with adjacent stream outputs of the same name joined (print() may split)."""
    pending: dict | None = None
    for out in outputs:
        if out.get("output_type") == "stream":
            if pending is not None and pending["name"] == out.get("name"):
                pending["text"] += _text(out.get("text", ""))
                continue
            if pending is not None:
                yield pending
            pending = {"output_type": "stream", "name": out.get("name"),
                       "text": _text(out.get("text", ""))}
            continue
        if pending is not None:
            yield pending
            pending = None
        yield out
    if pending is not None:
        yield pending


class _Converter:
    """Walks the cells once, writing figures to ``assets`` and collecting Markdown pieces."""

    def __init__(self, assets: Path, assets_ref: str, execute: dict[str, Any]):
        self.assets = assets
        self.assets_ref = assets_ref  # how the Markdown refers to the assets folder
        self.execute = execute
        self.pieces: list[str | _Either] = []
        self.cell_figures = 0  # image outputs seen so far in the current cell

    def cells(self, cells: list) -> None:
        for index, cell in enumerate(cells):
            if SKIP_TAGS & set(cell.get("metadata", {}).get("tags", [])):
                continue
            if cell.cell_type == "markdown":
                self.pieces.append(cell.source)
            elif cell.cell_type == "raw":
                self._raw(cell)
            elif cell.cell_type == "code":
                self._code(cell, index)

    def _raw(self, cell) -> None:
        # Quarto passes raw cells through: Markdown by default, HTML only into HTML.
        mime = cell.metadata.get("raw_mimetype") or cell.metadata.get("format") or "text/markdown"
        if mime in ("text/markdown", "text/x-markdown"):
            self.pieces.append(cell.source)
        elif mime == "text/html":
            self.pieces.append(_Either(_fence(cell.source, "{=html}"), ""))

    def _code(self, cell, index: int) -> None:
        try:
            options, code = cell_options(cell.source)
        except RenderError as exc:
            raise RenderError(f"cell {index}: {exc}") from exc
        self.cell_figures = 0
        opts = {**self.execute, **options}
        if opts.get("include") is False:
            return
        if opts.get("echo") and code.strip():
            self.pieces.append(_fence(code, "python"))
        output = opts.get("output", True)
        if output is False:
            return
        asis = output == "asis"
        for out in _merged_streams(cell.get("outputs", [])):
            kind = out.get("output_type")
            if kind == "stream":
                text = out["text"]
                if out["name"] == "stdout":
                    self.pieces.append(text if asis else _fence(text))
                elif opts.get("warning") and text.strip():  # stderr carries warnings
                    self.pieces.append(_fence(text))
            elif kind in ("display_data", "execute_result"):
                piece = self._rich(out.get("data", {}), {**opts, "fig-alt": figure_alt(out, opts)}, asis, index)
                if piece is not None:
                    self.pieces.append(piece)

    def _rich(self, data: dict, opts: dict, asis: bool, index: int) -> str | _Either | None:
        if "text/markdown" in data:
            return _text(data["text/markdown"])
        if "image/png" in data:
            payload = base64.b64decode(_text(data["image/png"]))
            return self._figure(payload, "png", opts, index)
        if "image/svg+xml" in data:
            return self._figure(_text(data["image/svg+xml"]).encode(), "svg", opts, index)
        plain = _text(data.get("text/plain", ""))
        other = (plain if asis else _fence(plain)) if plain.strip() else ""
        if "text/html" in data:
            return _Either(_fence(_text(data["text/html"]), "{=html}"), other)
        return other or None

    def _figure(self, payload: bytes, ext: str, opts: dict, index: int) -> str:
        # One figure per image output; a second image in the same cell gets label-2, ...
        nth = self.cell_figures
        self.cell_figures += 1
        label = opts.get("label")
        if label and nth:
            label = f"{label}-{nth + 1}"
        name = f"{label or f'cell{index}-figure{nth + 1}'}.{ext}"
        self.assets.mkdir(parents=True, exist_ok=True)
        (self.assets / name).write_bytes(payload)
        caption = opts.get("fig-cap") or ""
        if isinstance(caption, list):  # Quarto: one caption per figure of the cell
            caption = caption[nth] if nth < len(caption) else ""
        attrs = []
        if label:
            attrs.append(f"#{label}")
        if opts.get("fig-alt"):
            attrs.append(f"fig-alt={_attr(opts['fig-alt'])}")
        attr = "{" + " ".join(attrs) + "}" if attrs else ""
        return f"![{caption}]({self.assets_ref}/{name}){attr}"


def figure_alt(output: dict, opts: dict) -> str | None:
    """A figure's alt text: what the chart shows (written by the notebook into the image
    output's metadata, present.figure), then the cell's fig-alt (what kind of chart it is)."""
    shown = (output.get("metadata") or {}).get("ipcreport", {}).get("alt")
    kind = opts.get("fig-alt")
    if shown and kind:
        return f"{shown} {kind}"
    return shown or kind


def with_output_alt(cells: list) -> list:
    """Cells whose fig-alt option also says what the chart shows (see :func:`figure_alt`), for
    Quarto, which reads the option from the cell's source."""
    cells = copy.deepcopy(cells)
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if not images:
            continue
        options, _ = cell_options(cell.source)
        alt = figure_alt(images[0], options)
        if not alt or alt == options.get("fig-alt"):
            continue
        line = "#| fig-alt: " + json.dumps(alt, ensure_ascii=False)
        lines = [ln for ln in cell.source.split("\n") if not re.match(r"#\|\s*fig-alt\s*:", ln)]
        cell.source = "\n".join([line, *lines])
    return cells


def notebook_markdown(
    nb: "nbformat.NotebookNode", assets: Path, assets_ref: str
) -> tuple[dict[str, Any], list[str | _Either]]:
    """Front matter and the Markdown pieces of a notebook; figures are written to assets."""
    front, cells = split_front_matter(nb)
    execute = {**BRIEFING_EXECUTE, **(front.get("execute") or {})}
    converter = _Converter(assets, assets_ref, execute)
    converter.cells(cells)
    return front, converter.pieces


def join_markdown(meta: dict[str, Any], pieces: list[str | _Either], *, for_html: bool) -> str:
    body = []
    for piece in pieces:
        if isinstance(piece, _Either):
            piece = piece.html if for_html else piece.other
        if piece.strip():
            body.append(piece.strip("\n"))
    head = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False)
    return f"---\n{head}---\n\n" + "\n\n".join(body) + "\n"


def document_metadata(front: dict[str, Any], request: RenderRequest) -> dict[str, Any]:
    """Pandoc metadata: the front matter less Quarto-only keys; the request's titles win."""
    meta = {k: v for k, v in front.items() if k not in ("execute", "format", "jupyter")}
    meta["title"] = str(markdown(request.title))  # pandoc reads metadata as Markdown: a site name is text
    if request.subtitle:
        meta["subtitle"] = str(markdown(request.subtitle))
    meta.setdefault("lang", LANG)
    meta.setdefault("toc-title", "Contents")
    return meta


# --------------------------------------------------------------------------------------
# Writing files


@contextmanager
def _atomic(final: Path) -> Iterator[Path]:
    """Yield a temp path beside ``final``; move it into place only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o666 & ~_UMASK)  # mkstemp makes 0600; published files are readable as usual
    try:
        yield tmp
        if not tmp.stat().st_size:
            raise RenderError(f"{final.name} came out empty")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _typst_string(text: str) -> str:
    """A Typst string literal (quotes included) that prints ``text`` exactly."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + " ".join(escaped.split()) + '"'


def reference_docx(path: Path, watermark: str | None, pandoc: str) -> Path:
    """pandoc's default reference.docx, set to A4 with the watermark in the page header
    and "Page N of M" in the footer (pandoc keeps a reference document's header/footer)."""
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt, RGBColor

    result = subprocess.run(
        [pandoc, "--print-default-data-file", "reference.docx"], capture_output=True, check=False
    )
    if result.returncode:
        raise RenderError(f"pandoc could not print its reference.docx: {result.stderr.decode()}")
    path.write_bytes(result.stdout)
    doc = Document(str(path))
    for section in doc.sections:
        section.page_width, section.page_height = Cm(21.0), Cm(29.7)
        section.left_margin = section.right_margin = Cm(2.2)
        section.top_margin, section.bottom_margin = Cm(2.5), Cm(2.2)
        if watermark:
            header = section.header.paragraphs[0]
            header.alignment = WD_ALIGN_PARAGRAPH.RIGHT
            run = header.add_run(watermark)
            run.bold, run.font.size, run.font.color.rgb = True, Pt(9), RGBColor(0xA4, 0x26, 0x2C)
        footer = section.footer.paragraphs[0]
        footer.alignment = WD_ALIGN_PARAGRAPH.CENTER
        for piece in ("Page ", "PAGE", " of ", "NUMPAGES"):
            if piece.isupper():  # a field Word fills in: PAGE or NUMPAGES
                field = OxmlElement("w:fldSimple")
                field.set(qn("w:instr"), piece)
                run = OxmlElement("w:r")
                text = OxmlElement("w:t")
                text.text = "1"
                run.append(text)
                field.append(run)
                footer._p.append(field)
            else:
                footer.add_run(piece)
    doc.save(str(path))
    return path


def _pandoc_path() -> str:
    import pypandoc

    return pypandoc.get_pandoc_path()


class PandocTypstRenderer:
    """Built-in renderer: notebook -> Markdown -> pandoc (HTML, docx) and Typst (PDF)."""

    name = "pandoc+typst"

    def __init__(self, pandoc: str | None = None):
        self.pandoc = pandoc or _pandoc_path()

    def render(self, request: RenderRequest) -> dict[str, Path]:
        nb = read_notebook(request.notebook)
        written: dict[str, Path] = {}
        with tempfile.TemporaryDirectory(prefix="ipcreport-render-") as tmp:
            work = Path(tmp)
            assets = f"{request.stem}_files"
            try:
                front, pieces = notebook_markdown(nb, work / assets, assets)
            except RenderError as exc:
                raise RenderError(f"cannot convert notebook {request.notebook}: {exc}") from exc
            meta = document_metadata(front, request)
            for fmt in request.formats:
                source = work / f"{request.stem}.{fmt}.md"
                markdown = join_markdown(meta, pieces, for_html=fmt == "html")
                source.write_text(markdown, encoding="utf-8")
                final = request.out_dir / f"{request.stem}.{fmt}"
                started = time.perf_counter()
                with _atomic(final) as target:
                    getattr(self, f"_{fmt}")(request, source, target, work)
                log.info("rendered %s in %.2f s", final, time.perf_counter() - started)
                written[fmt] = final
        return written

    def _run_pandoc(self, request: RenderRequest, fmt: str, args: list[str], work: Path) -> None:
        cmd = [self.pandoc, "--lua-filter", str(TEMPLATES / "ipcreport.lua"), *args]
        result = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
        if result.returncode:
            raise RenderError(
                f"pandoc failed to write {fmt} for notebook {request.notebook} "
                f"(exit {result.returncode}):\n{result.stderr.strip()}"
            )
        if result.stderr.strip():
            log.warning("pandoc (%s, %s): %s", request.notebook, fmt, result.stderr.strip())

    def _html(self, request: RenderRequest, source: Path, target: Path, work: Path) -> None:
        banner = work / "watermark.html"
        banner.write_text(_banner_html(request.watermark), encoding="utf-8")
        head = work / "head.html"
        head.write_text(EMPTY_FAVICON + "\n", encoding="utf-8")
        self._run_pandoc(request, "html", [
            str(source), "--from", "markdown", "--to", "html5", "--standalone",
            "--embed-resources", "--toc", "--toc-depth=3",
            "--css", str(TEMPLATES / "ipcreport.css"),
            "--include-in-header", str(head),
            "--include-before-body", str(banner),
            "--output", str(target),
        ], work)

    def _pdf(self, request: RenderRequest, source: Path, target: Path, work: Path) -> None:
        import typst

        shutil.copy(TEMPLATES / "ipcreport.typ", work / "ipcreport.typ")
        typ = work / f"{request.stem}.typ"
        variables = ["-V", f"running-title={_typst_string(request.title)}"]
        if request.watermark:
            variables += ["-V", f"watermark={_typst_string(request.watermark)}"]
        self._run_pandoc(request, "pdf", [
            str(source), "--from", "markdown", "--to", "typst", "--standalone",
            "--template", str(TEMPLATES / "briefing.typst"), *variables,
            "--toc", "--toc-depth=2",  # contents on the title page
            "--output", str(typ),
        ], work)
        stamp = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible PDFs when set
        try:
            _, warnings = typst.compile_with_warnings(
                str(typ), output=str(target), format="pdf", root=str(work),
                ignore_system_fonts=True,  # only Typst's embedded fonts: same PDF everywhere
                timestamp=int(stamp) if stamp else None,
            )
        except typst.TypstError as exc:
            raise RenderError(
                f"typst failed to write pdf for notebook {request.notebook}:\n{exc}"
            ) from exc
        for warning in warnings:
            log.warning("typst (%s): %s", request.notebook, warning)

    def _docx(self, request: RenderRequest, source: Path, target: Path, work: Path) -> None:
        reference = work / "reference.docx"
        reference.write_bytes(_reference_docx_bytes(request.watermark, self.pandoc))
        self._run_pandoc(request, "docx", [
            str(source), "--from", "markdown", "--to", "docx",
            "--reference-doc", str(reference), "--output", str(target),
        ], work)


def _banner_html(watermark: str | None) -> str:
    if not watermark:
        return ""
    return f'<div class="ipc-watermark" role="note">{html.escape(watermark)}</div>\n'


# --------------------------------------------------------------------------------------
# Quarto

_TABLE_CAPTION = re.compile(r"(?m)^([|+].*\n[ \t]*\n:[ \t]+)(?P<caption>(?:(?!\{#).)+?)[ \t]*$")


def label_table_captions(markdown: str, numbers: Iterator[int]) -> str:
    """Give every unlabelled pipe-table caption a ``{#tbl-N}`` label. Quarto's Typst output
    drops the captions of unlabelled tables (quarto-dev/quarto-cli#11733); labelled ones
    become numbered, centred table figures, as the built-in renderer's are."""
    return _TABLE_CAPTION.sub(lambda m: f"{m.group(1)}{m.group('caption')} {{#tbl-{next(numbers)}}}", markdown)


def _label_cell_tables(cells: list) -> list:
    """Copies of the cells with a label on each table caption in their Markdown outputs."""
    numbers = iter(range(1, 10**6))
    labelled = []
    for cell in cells:
        cell = copy.deepcopy(cell)
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {})
            if "text/markdown" in data:
                data["text/markdown"] = label_table_captions(_text(data["text/markdown"]), numbers)
            elif out.get("output_type") == "stream" and out.get("name") == "stdout":
                out["text"] = label_table_captions(_text(out["text"]), numbers)
        labelled.append(cell)
    return labelled


def quarto_typst_variables(request: RenderRequest) -> str:
    """The request's running title and watermark as Typst definitions, imported by the
    Typst template partials in templates/quarto/ (pandoc variables would arrive as markup)."""
    watermark = _typst_string(request.watermark) if request.watermark else "none"
    return f"#let running-title = {_typst_string(request.title)}\n#let watermark = {watermark}\n"


@lru_cache(maxsize=4)
def _reference_docx_bytes(watermark: str | None, pandoc: str | None = None) -> bytes:
    """reference.docx for one watermark, made once per process (every site shares it)."""
    with tempfile.TemporaryDirectory(prefix="ipcreport-ref-") as tmp:
        return reference_docx(Path(tmp) / "reference.docx", watermark, pandoc or _pandoc_path()).read_bytes()


class QuartoRenderer:
    """Renders with ``quarto render`` (Quarto >= 1.4 for the typst format): one call per
    briefing for all its formats.

    Quarto does not execute an .ipynb unless asked, so it renders the outputs papermill
    stored. We copy the notebook into a scratch folder with front matter that asks for the
    same briefing as the built-in renderer (templates/quarto/: Typst partials for the title
    page, contents and page furniture; a Lua filter for Word's figures and alt text), render
    and move each output into place. Either every requested format is written or none is.
    """

    name = "quarto"
    _TO = {"html": "html", "pdf": "typst", "docx": "docx"}

    def __init__(self, quarto: str | None = None):
        self.quarto = quarto or shutil.which("quarto") or "quarto"

    def render(self, request: RenderRequest) -> dict[str, Path]:
        nb = read_notebook(request.notebook)
        with tempfile.TemporaryDirectory(prefix="ipcreport-quarto-") as tmp:
            work = Path(tmp)
            self._prepare(nb, request, work)
            started = time.perf_counter()
            targets = ",".join(self._TO[fmt] for fmt in request.formats)
            cmd = [self.quarto, "render", f"{request.stem}.ipynb", "--to", targets]
            result = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
            missing = [fmt for fmt in request.formats if not (work / f"{request.stem}.{fmt}").exists()]
            if result.returncode or missing:
                raise RenderError(
                    f"quarto failed to write {', '.join(missing or request.formats)} for notebook "
                    f"{request.notebook} (exit {result.returncode}):\n{result.stderr.strip()[-4000:]}"
                )
            written = {}
            for fmt in request.formats:
                final = request.out_dir / f"{request.stem}.{fmt}"
                with _atomic(final) as target:
                    shutil.copyfile(work / f"{request.stem}.{fmt}", target)
                written[fmt] = final
            log.info("quarto rendered %s (%s) in %.2f s", request.notebook, targets, time.perf_counter() - started)
        return written

    def _prepare(self, nb: "nbformat.NotebookNode", request: RenderRequest, work: Path) -> None:
        try:
            front, cells = split_front_matter(nb)
        except RenderError as exc:
            raise RenderError(f"cannot convert notebook {request.notebook}: {exc}") from exc
        # Drop papermill's parameter cells outright, as the built-in renderer does.
        cells = [c for c in cells if not SKIP_TAGS & set(c.get("metadata", {}).get("tags", []))]
        meta = {k: v for k, v in front.items() if k != "format"}
        meta["title"] = str(markdown(request.title))
        if request.subtitle:
            meta["subtitle"] = str(markdown(request.subtitle))
        meta["execute"] = {**BRIEFING_EXECUTE, **(front.get("execute") or {})}
        meta.setdefault("lang", LANG)
        meta.setdefault("toc-title", "Contents")
        (work / "watermark.html").write_text(_banner_html(request.watermark), encoding="utf-8")
        (work / "favicon.html").write_text(EMPTY_FAVICON + "\n", encoding="utf-8")
        shutil.copy(TEMPLATES / "ipcreport.css", work / "ipcreport.css")
        shutil.copy(TEMPLATES / "ipcreport.typ", work / "ipcreport.typ")
        for partial in (TEMPLATES / "quarto").iterdir():
            shutil.copy(partial, work / partial.name)
        (work / "ipcreport-vars.typ").write_text(quarto_typst_variables(request), encoding="utf-8")
        (work / "reference.docx").write_bytes(_reference_docx_bytes(request.watermark))
        meta["format"] = {
            "html": {
                # No Bootstrap theme: the built-in renderer's stylesheet, width and contents.
                "minimal": True, "embed-resources": True, "toc": True, "toc-depth": 3,
                "css": "ipcreport.css", "format-links": False,
                "include-in-header": "favicon.html", "include-before-body": "watermark.html",
            },
            "typst": {
                # Quarto shifts ## to Typst's top level, so depth 1 lists what the built-in
                # renderer's depth 2 does: the sections, not their subsections.
                "papersize": "a4", "toc": True, "toc-depth": 1, "shift-heading-level-by": -1,
                "template-partials": ["typst-template.typ", "page.typ"],
            },
            "docx": {
                "reference-doc": "reference.docx",
                "filters": [{"path": "ipcreport-quarto.lua", "at": "post-render"}],
            },
        }
        import nbformat

        out = copy.deepcopy(nb)
        head = "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---"
        out.cells = [nbformat.v4.new_raw_cell(head), *_label_cell_tables(with_output_alt(cells))]
        nbformat.write(out, work / f"{request.stem}.ipynb")

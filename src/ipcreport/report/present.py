"""How a notebook puts text and tables into a briefing.

Everything is emitted as Markdown (IPython ``display(Markdown(...))``, or printed in cells with
``#| output: asis``), which JupyterLab shows formatted and which both Quarto and the built-in
renderer take as Markdown in every format. Every piece of text published here is first made
safe to publish twice over: escaped
(:mod:`ipcreport.report.escape`), then counts of people scrubbed (:func:`disclosure.scrub`), so a name
from the data prints as its characters and never as markup.
Package markup (bold, italics, its own links) is built with :func:`escape.compose` and friends.
Numbers in text are formatted here so every briefing words them the same way.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.text import Text
from IPython.display import Image, Markdown, display

from . import disclosure, downloads
from .charts import label
from .formats import gbp
from .escape import Markup, bold, compose, italic, link, markdown, spreadsheet_cell  # noqa: F401 - re-exported


# The key of an image output's metadata that carries its alt text to the renderers.
ALT_METADATA = "ipcreport"

# The run's disclosure policy: every sentence and table cell published through this module is
# scrubbed with it (counts of people written in words are rounded or hidden).
_policy = disclosure.DEFAULT


def set_policy(policy: disclosure.Policy) -> None:
    global _policy
    _policy = policy


def current_policy() -> disclosure.Policy:
    """The policy every published sentence and table is held to in this run."""
    return _policy


def safe(text: object) -> Markup:
    """Text as it may be published: escaped (unless it is package Markup), then counts of
    people in it scrubbed (once: scrubbing twice would round 'fewer than 8' up to 10)."""
    return Markup(disclosure.scrub(markdown(text), _policy))


def link_index(labels: list[object], targets: list[str], name: str | None = None) -> pd.Index:
    """Row labels that are links (:func:`link`), as an index :func:`table` prints as links.

    An object index: pandas 3 stores a list of strings as its string dtype, which drops the
    link's Markup type, so the brackets would be escaped and printed as text."""
    return pd.Index([link(text, target) for text, target in zip(labels, targets)], dtype=object, name=name)


def md(text: object) -> None:
    display(Markdown(safe(text)))


def say(*parts: object) -> None:
    """A paragraph on stdout, for cells with ``#| output: asis``: ``parts`` are joined, each
    escaped unless it is package Markup."""
    print(safe(compose(*parts)) + "\n")


def bullets(lines: list[object]) -> None:
    """A Markdown bullet list on stdout, for cells with ``#| output: asis``."""
    print("\n".join(f"- {safe(line)}" for line in lines) + "\n")


def figure(fig: plt.Figure, data: pd.DataFrame, caption: str, index_label: str | None = None,
           alt: str | None = None, counts: tuple[str, pd.DataFrame] | None = None, dpi: int = 150) -> None:
    """Show a figure once as a PNG at print resolution (the cell's fig-cap and fig-alt options
    caption it) and free it; ``data``, what the chart draws (disclosure-controlled, as a table
    would publish it), becomes the figure's download under the figure's number. ``alt``, what
    the chart shows (its main values; report.describe), is put before the cell's fig-alt (its
    type) by both renderers: it travels as the image output's metadata.

    Saved at its set size, its layout engine keeping everything inside: titles and axis labels
    too long for the width wrap onto another line instead of being cut. (Trimming the image to
    what is drawn, ``bbox_inches="tight"``, would draw every chart twice.)
    """
    download(data, caption, index_label, kind="figure")
    PUBLISHED[-1].counts = counts
    for text in _prose(fig):
        text.set_wrap(True)
    buffer = io.BytesIO()
    # the fastest zlib level: a build writes hundreds of charts, and the files are 7% larger
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    metadata = {ALT_METADATA: {"alt": disclosure.scrub(str(alt), _policy)}} if alt else None
    display(Image(data=buffer.getvalue(), format="png"), metadata=metadata)


def _prose(fig: plt.Figure) -> list[Text]:
    """The texts of a figure that are phrases (titles and axis labels), not ticks."""
    texts = [fig._suptitle] if fig._suptitle is not None else []  # matplotlib keeps no public handle
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
    return [t for t in texts if t.get_text()]


def pct(share: float | None, digits: int = 0) -> str:
    return "not available" if share is None or pd.isna(share) else f"{share:.{digits}%}"


def probability(p: float | None) -> str:
    """A simulated probability in words a board reads correctly: no '0%' or '100%' chance."""
    if p is None or pd.isna(p):
        return "not available"
    if p < 0.01:
        return "under 1%"
    if p > 0.99:
        return "over 99%"
    return f"{p:.0%}"


def money(value: float | None) -> str:
    return "not available" if value is None or pd.isna(value) else gbp(value)


@dataclass
class Published:
    """A table or chart as published, for the downloads: ``kind`` is "table" or "figure" (numbered
    as the briefing numbers them) or "data" (unnumbered, e.g. the decision page's messages)."""
    kind: str
    number: int | None
    caption: str
    frame: pd.DataFrame  # readable labels, scrubbed text; display strings until tidied
    counts: tuple[str, pd.DataFrame] | None = None  # (measure, numerator and denominator by row label)


# Every table and chart this notebook run has published, in the briefing's order.
PUBLISHED: list[Published] = []


def _next_number(kind: str) -> int:
    return 1 + sum(p.kind == kind for p in PUBLISHED)


# A number formatted from a missing value ('nan', '+nan', '£nan', 'nan%'): never printed as such.
_FORMATTED_NAN = re.compile(r"(?<![A-Za-z])[-+−£]?(?:nan|inf)(?![A-Za-z])")


def _scrubbed(value: object) -> object:
    if isinstance(value, Markup):
        return Markup(disclosure.scrub(value, _policy))
    if isinstance(value, str) and _FORMATTED_NAN.search(value):
        return "not available"
    return disclosure.scrub(value, _policy) if isinstance(value, str) else value


def _readable(frame: pd.DataFrame, index_label: str | None) -> pd.DataFrame:
    """Readable labels and scrubbed text; still plain text (escaped only for its output).

    Columns holding package Markup (a link) are kept as Python objects: pandas 3 infers a
    string dtype for ``map`` and ``reset_index`` results, which would turn a link back into
    text that is then escaped and printed as raw Markdown."""
    shown = frame.map(_scrubbed)
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, Markup)).any():
            shown[column] = pd.Series([_scrubbed(v) for v in frame[column]], index=frame.index, dtype=object)
    shown.columns = [label(c) for c in shown.columns]
    if index_label is not None:
        labels = [i if isinstance(i, Markup) else label(i) for i in shown.index]
        shown = shown.reset_index(drop=True)
        shown.insert(0, index_label, pd.Series(labels, dtype=object))
    return shown


def download(frame: pd.DataFrame, caption: str, index_label: str | None = None, kind: str = "data") -> pd.DataFrame:
    """Register a table for the downloads without showing it (e.g. the decision page's messages).
    Only what may be published goes here: counts already disclosure-controlled."""
    shown = _readable(frame, index_label)
    PUBLISHED.append(Published(kind, _next_number(kind) if kind != "data" else None, caption, shown))
    return shown


def table(frame: pd.DataFrame, caption: str, index_label: str | None = None,
          counts: tuple[str, pd.DataFrame] | None = None) -> None:
    """A pipe table with a caption, also offered as a download (named with the table's number in
    the briefing); the index becomes the first column with readable labels. ``counts``, a
    measure and the published numerator and denominator behind it by row, fills those columns
    of the download."""
    shown = download(frame, caption, index_label, kind="table")
    PUBLISHED[-1].counts = counts
    # Words left-aligned, figures right-aligned (a figure column is one whose cells start with a
    # digit, sign, currency or the suppression mark).
    figure_like = shown.astype(str).apply(lambda col: col.str.match(r"^(?:[-+−£]?\d|\[c\]|$)").all())
    align = ["right" if is_figure else "left" for is_figure in figure_like]
    cells = shown.map(lambda v: markdown(v) if isinstance(v, str) else v)
    cells.columns = [markdown(c) for c in shown.columns]
    text = cells.to_markdown(index=False, disable_numparse=True, colalign=align)
    display(Markdown(_with_column_widths(text, cells, align) + f"\n\n: {safe(caption)}\n"))


# The width of a page's text in characters of table type (A4, the briefing's margins, 9.5 pt).
_LINE_CHARACTERS = 100


_LINK = re.compile(r"\[((?:[^\]\\]|\\.)*)\]\([^)]*\)")


def _visible(markdown_text: object) -> str:
    """What a reader sees of a Markdown cell: a link's text, not its target; no escapes."""
    return _LINK.sub(r"\1", str(markdown_text)).replace("\\", "")


def _with_column_widths(text: str, cells: pd.DataFrame, align: list[str]) -> str:
    """The pipe table with its separator line's dashes set to the widths the columns need.

    Pandoc (and so Quarto) sizes the columns of a wide pipe table in proportion to those dashes;
    tabulate pads each column to its longest cell, so one long sentence squeezed the columns
    beside it below the width of their header words, which then printed over each other in
    the PDF. Here every column first gets its longest word (plus cell padding), and what is
    left of the line goes to the columns whose text would wrap, in proportion to how much
    longer their longest cell is."""
    lines = text.split("\n")
    floor, want = [], []
    for column in range(cells.shape[1]):
        texts = [_visible(cells.columns[column])] + [_visible(v) for v in cells.iloc[:, column]]
        floor.append(max((len(w) for t in texts for w in t.split()), default=1) + 2)
        want.append(max(max(len(t) for t in texts) + 2 - floor[-1], 0))
    spare = max(_LINE_CHARACTERS - sum(floor), 0)
    widths = [f + (round(spare * w / sum(want)) if sum(want) else 0) for f, w in zip(floor, want)]
    dashes = [(":" + "-" * (w - 1)) if a == "left" else ("-" * (w - 1) + ":") for w, a in zip(widths, align)]
    lines[1] = "|" + "|".join(dashes) + "|"
    return "\n".join(lines)


def count_table(counts: pd.Series, caption: str, index_label: str, share_label: str = "Share",
                policy: disclosure.Policy = disclosure.DEFAULT) -> None:
    """Counts of people by category with shares and a total, after disclosure control."""
    hidden = disclosure.suppression_mask(counts, policy)
    total = counts.sum()
    frame = pd.DataFrame({
        "People": disclosure.publish_counts(counts, policy),
        # shares of the published (rounded) total from the published counts: nothing recoverable
        share_label: [disclosure.SUPPRESSED if h else pct(_rounded_share(c, total, policy))
                      for c, h in zip(counts, hidden)],
    }, index=counts.index)
    frame.loc["total"] = [disclosure.publish_total(counts, policy), pct(1.0 if total else None)]
    table(frame, caption, index_label)


def _rounded_share(count: float, total: float, policy: disclosure.Policy) -> float | None:
    shown_total = policy.rounded(total)
    return policy.rounded(count) / shown_total if total and shown_total else None


def _no_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A table whose text cells and headers no spreadsheet would run as formulas."""
    safe_frame = frame.map(spreadsheet_cell)
    safe_frame.columns = [spreadsheet_cell(str(c)) for c in frame.columns]
    return safe_frame


# XlsxWriter writes the workbook (in about half openpyxl's time, a third of a second a site);
# told to keep every string a string: none becomes a formula, a link or a number.
XLSX_AS_TEXT = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}


def write_downloads(folder: str | Path, definitions: dict[str, str], title: str,
                    synthetic: bool = False) -> list[Path]:
    """Every published table and chart as a tidy CSV named by its number in the briefing
    (:mod:`ipcreport.report.downloads`), and one Excel workbook: a contents sheet, a sheet per
    file and a sheet of definitions. Returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.csv"), *folder.glob("*.xlsx")]:  # an earlier run's tables
        old.unlink()
    notice = downloads.SYNTHETIC_NOTICE if synthetic else downloads.REAL_NOTICE
    written, contents, frames = [], [], []
    for item in PUBLISHED:
        path = folder / downloads.file_name(item.kind, item.number, item.caption)
        frame = downloads.tidy(item.frame, notice)
        if item.counts is not None and "measure" in frame:
            measure, counts = item.counts
            counts = counts.set_axis([label(i) for i in counts.index])  # as the table labels its rows
            frame = downloads.with_counts(frame, counts["numerator"], counts["denominator"], measure)
        frame = _no_formulas(frame)
        frame.to_csv(path, index=False, encoding="utf-8")
        written.append(path)
        sheet = f"{item.kind[0].upper()}{item.number:02d}" if item.number is not None else f"D{len(frames) + 1}"
        shown = f"{item.kind.capitalize()} {item.number}: {item.caption}" if item.number else item.caption
        contents.append({"Sheet": sheet, "Table": shown, "CSV file": path.name})
        frames.append(frame)
    workbook = folder / "tables.xlsx"
    with pd.ExcelWriter(workbook, engine="xlsxwriter", engine_kwargs={"options": XLSX_AS_TEXT}) as excel:
        _no_formulas(pd.DataFrame([{"Sheet": "", "Table": title, "CSV file": ""},
                                   {"Sheet": "", "Table": notice, "CSV file": ""}] + contents)).to_excel(
            excel, sheet_name="Contents", index=False)
        for row, frame in zip(contents, frames):
            # Row 1 holds the caption; the table's header row follows (sheet names are short codes
            # because Excel allows 31 characters).
            pd.DataFrame([[row["Table"]]]).to_excel(excel, sheet_name=row["Sheet"], index=False, header=False)
            frame.to_excel(excel, sheet_name=row["Sheet"], index=False, startrow=2)
        pd.DataFrame({"Term": list(definitions), "Definition": list(definitions.values())}).to_excel(
            excel, sheet_name="Definitions", index=False)
    return written + [workbook]

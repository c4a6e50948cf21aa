"""What a reader gets from a rendered briefing, format by format, as plain data: headings,
figures (caption, alt text), table captions, the notice on every page, page size, code.
Used to compare the two renderers' output of one executed notebook."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

# "Table 3: " / "Figure 12: " numbering that one renderer adds and another may not.
NUMBERING = re.compile(r"^(?:Table|Figure)\s+\d+\s*[:.]\s*")
A4_POINTS = (595.3, 841.9)


def plain(text: str) -> str:
    """Text as a reader compares it: numbering dropped, typography and spaces evened out."""
    text = NUMBERING.sub("", " ".join(text.split()))
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')


@dataclass
class ReaderView:
    headings: list[str] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, alt text)
    tables: list[str] = field(default_factory=list)  # captions
    pages_with_notice: tuple[int, int] = (0, 0)  # (pages carrying the notice, pages)
    page_size: tuple[float, float] | None = None  # points (PDF) or centimetres (Word)
    code: list[str] = field(default_factory=list)  # code blocks shown
    layout_tables: int = 0  # Word tables that are not captioned data tables


class _Html(HTMLParser):
    """Headings (not the title, not the contents), figures, table captions and code blocks.
    Quarto writes a table's caption as the figcaption of a table float: counted as a table."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.view = ReaderView()
        self.open: list[tuple[str, dict]] = []  # elements whose text is being collected
        self.buffer: list[str] = []
        self.figure_kind = ""  # class of the <figure> we are in
        self.figure_alt = ""  # alt text of the image in that figure
        self.nav_depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.nav_depth += tag == "nav"
        if tag == "figure":
            self.figure_kind, self.figure_alt = attrs.get("class", ""), ""
        elif tag == "img":
            self.figure_alt = attrs.get("alt", "")
        if tag in ("h1", "h2", "h3", "h4", "figcaption", "caption", "pre") and not self.nav_depth:
            self.buffer = []
            self.open.append((tag, attrs))

    def handle_endtag(self, tag):
        self.nav_depth -= tag == "nav"
        if not self.open or self.open[-1][0] != tag:
            return
        _, attrs = self.open.pop()
        text = plain("".join(self.buffer))
        if tag == "caption" or (tag == "figcaption" and "quarto-float-tbl" in self.figure_kind):
            self.view.tables.append(text)
        elif tag == "figcaption":
            self.view.figures.append((text, self.figure_alt))
        elif tag == "pre":
            self.view.code.append(text)
        elif "title" not in attrs.get("class", ""):
            self.view.headings.append(text)

    def handle_data(self, data):
        if self.open:
            self.buffer.append(data)


def html_view(path: Path, notice: str) -> ReaderView:
    raw = path.read_text(encoding="utf-8")
    parser = _Html()
    parser.feed(raw)
    view = parser.view
    view.pages_with_notice = (int(f">{notice}<" in raw), 1)
    return view


def pdf_view(path: Path, notice: str) -> ReaderView:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    view = ReaderView()
    texts = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    view.pages_with_notice = (sum(notice in t for t in texts), len(pdf))
    width, height = pdf[0].get_size()
    view.page_size = (round(width, 1), round(height, 1))
    view.headings = [plain(item.get_title()) for item in pdf.get_toc()]
    body = "\n".join(texts)
    view.tables = [plain(m) for m in re.findall(r"(?m)^Table \d+:.*$", body)]
    view.figures = [(plain(m), "") for m in re.findall(r"(?m)^Figure \d+:.*$", body)]
    view.code = re.findall(r"(?m)^\s*(?:import |from \w+ import |def |print\()", body)
    return view


def docx_view(path: Path, notice: str) -> ReaderView:
    import docx

    document = docx.Document(str(path))
    view = ReaderView()
    for para in document.paragraphs:
        style = para.style.name
        if style.startswith("Heading"):
            view.headings.append(plain(para.text))
        elif style == "Table Caption":
            view.tables.append(plain(para.text))
        elif style == "Image Caption":
            view.figures.append((plain(para.text), ""))
        elif style == "Source Code":
            view.code.append(para.text)
    alts = re.findall(r'<wp:docPr [^>]*descr="([^"]*)"', document.element.xml)
    view.figures = [(caption, alt) for (caption, _), alt in zip(view.figures, alts)] + \
        [("", alt) for alt in alts[len(view.figures):]]
    headers = [" ".join(p.text for p in s.header.paragraphs) for s in document.sections]
    view.pages_with_notice = (sum(notice in h for h in headers), len(headers))
    section = document.sections[0]
    view.page_size = (round(section.page_width.cm, 1), round(section.page_height.cm, 1))
    view.layout_tables = len(document.tables) - len(view.tables)
    return view


def overprinted(pdf_path: Path) -> list[tuple[int, str]]:
    """Places in a PDF where text prints over other text (a table header squeezed into a
    column narrower than its words, a row run into the footer): pairs of characters whose boxes
    overlap by more than 30% each way, that are not neighbours in the text (ligatures and
    kerning overlap their neighbours) and are not rotated (the diagonal watermark crosses
    everything). Returns (page, the text around the first character) per pair."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    found = []
    pdf = pdfium.PdfDocument(pdf_path)
    for number in range(len(pdf)):
        text = pdf[number].get_textpage()
        boxes = []
        for i in range(text.count_chars()):
            if raw.FPDFText_GetUnicode(text, i) <= 32 or abs(raw.FPDFText_GetCharAngle(text, i)) > 0.01:
                continue
            left, bottom, right, top = text.get_charbox(i)
            if right > left and top > bottom:
                boxes.append((left, bottom, right, top, i))
        boxes.sort()
        for a, (l1, b1, r1, t1, i1) in enumerate(boxes):
            for l2, b2, r2, t2, i2 in boxes[a + 1:]:
                if l2 >= r1:
                    break
                wide, high = min(r1, r2) - max(l1, l2), min(t1, t2) - max(b1, b2)
                if abs(i1 - i2) > 2 and wide > 0.3 * min(r1 - l1, r2 - l2) and high > 0.3 * min(t1 - b1, t2 - b2):
                    found.append((number + 1, text.get_text_range(max(i1 - 8, 0), 16)))
    return found

"""Text from the data made safe for every output: the one place it happens.

Briefings are Markdown that pandoc or Quarto turn into HTML, Typst (PDF) and Word; downloads are
CSV and Excel. A site name, region, contract id or dataset name is data, and data must print as
the characters it holds, never become markup: no raw HTML, no links, no Typst or TeX, no
formulas. Everything :mod:`ipcreport.report.present` publishes is escaped here unless it is
:class:`Markup` the package wrote itself, so no new table or sentence can forget it. Links are
made only by :func:`link`, to relative paths inside the report.

Markdown: pandoc and CommonMark (JupyterLab) both read a backslash before any ASCII punctuation
as that character, so every punctuation character that could start markup is escaped; line
breaks and control characters become spaces (a line break could start a heading, a list or a
fenced block). Pandoc then escapes the literal text for each writer (``&lt;`` in HTML, Typst's
own escapes in the PDF, plain runs in Word).
"""

from __future__ import annotations

import re
from urllib.parse import quote

# Punctuation that can start or end inline Markdown, HTML, entities, math, attributes, citations or
# Quarto shortcodes, anywhere in a line. Other punctuation ('.', '-', '(', ':' ...) only means
# something at the start of a block, so it is escaped there (_BLOCK_START) and left readable elsewhere.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~^$@&])")
_BLOCK_START = re.compile(r"^(\s*)(\d*)([-+:.)=])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
# A spreadsheet treats a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_FIGURE = re.compile(r"^[-+−]?£?\d[\d,]*(\.\d+)?[%km]?$")  # a number the package formatted: not a formula


class Markup(str):
    """Markdown the package wrote itself (emphasis, a link it made): published as it is."""


def plain(text: object) -> str:
    """One line of text: control characters and line breaks as spaces."""
    return _CONTROL.sub(" ", str(text))


def markdown(text: object) -> Markup:
    """Text (from the data or anywhere) as Markdown that prints exactly that text."""
    if isinstance(text, Markup):
        return text
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", plain(text))
    return Markup(_BLOCK_START.sub(r"\1\2\\\3", escaped))  # '- x', '1. x', ': x' start no list


def compose(*parts: object) -> Markup:
    """Markdown made of package markup (:class:`Markup`) and escaped text (anything else)."""
    return Markup("".join(markdown(part) for part in parts))


def bold(text: object) -> Markup:
    return Markup(f"**{markdown(text)}**")


def italic(text: object) -> Markup:
    return Markup(f"*{markdown(text)}*")


def link(label: object, target: str) -> Markup:
    """A link the package makes: only to a relative path (no scheme, not from the root)."""
    if re.match(r"^([a-zA-Z][a-zA-Z0-9+.\-]*:|/|\\)", target):
        raise ValueError(f"links go to relative paths inside the report, not {target!r}")
    return Markup(f"[{markdown(label)}]({quote(target)})")


def spreadsheet_cell(value: object) -> object:
    """A cell for CSV or Excel: text that a spreadsheet would run as a formula gets a leading
    apostrophe (shown as text); numbers and figures the package formatted are left alone."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START) or _FIGURE.match(value):
        return value
    return "'" + value

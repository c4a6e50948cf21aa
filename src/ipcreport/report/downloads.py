"""The data behind every table and chart as tidy, numeric CSV files (docs/downloads.md).

A briefing's tables are printed as text ("£23.4m", "0.86 (0.72 to 1.02)", "12%", "[c]"); a
download gives the same figures as numbers a spreadsheet or pandas reads without cleaning: one
row per figure, the label columns that identify it, then ``measure`` (the table's column),
``value``, ``lower``, ``upper``, ``numerator``, ``denominator``, ``unit`` and ``suppressed``
(True where the briefing prints [c]). Columns of words (verdicts such as "Better", dates) stay
label columns. Every file ends with a ``data_notice`` column that says, on every row, whether
the figures come from synthetic data: a comment line would need ``comment=`` or ``skiprows=``
in pandas and shows as a stray row in a spreadsheet, a column needs neither.

Parsing the printed text (rather than the numbers before printing) keeps the download exactly
as disclosure-controlled as the table: a count the table rounds is rounded here too.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .disclosure import SUPPRESSED

TIDY_COLUMNS = ["measure", "value", "lower", "upper", "numerator", "denominator", "unit", "suppressed", "note"]
NOTICE_COLUMN = "data_notice"
SYNTHETIC_NOTICE = "SYNTHETIC DATA: generated people, not real budget holders; not findings"
REAL_NOTICE = "Counts of people rounded to 5; 1 to 7 hidden ([c])"

# What a table prints where it has no figure: blank, a dash, or words saying so.
_NOTHING = {"", "-", "—", "–", "not available", "n/a", "na", "none", "no estimate", "not estimated"}
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "bn": 1e9}
_NUMBER = r"[-+−]?£?[-+−]?\d[\d,]*(?:\.\d+)?(?:k|m|bn)?%?"
_ESTIMATE = re.compile(rf"^(?P<value>{_NUMBER})\s*\((?P<lower>{_NUMBER}) to (?P<upper>{_NUMBER})\)$")
_RANGE = re.compile(rf"^(?P<lower>{_NUMBER}) to (?P<upper>{_NUMBER})$")
_SINGLE = re.compile(rf"^(?P<value>{_NUMBER})$")
# Headers that name counts of people or things, for the unit when the cell has no £ or %.
_PEOPLE = re.compile(r"\b(people|holders?|persons?|questionnaires?|follow-ups?|left|moved|died)\b", re.I)
_COUNTS = re.compile(r"\b(periods?|budgets|contracts|sites|count|number of)\b", re.I)


def number(text: str) -> tuple[float, str]:
    """A printed figure as (value, unit): '£23.4m' -> (23400000.0, 'GBP'), '-£415k' ->
    (-415000.0, 'GBP'), '12.5%' -> (12.5, 'percent'), '1,234' -> (1234.0, '')."""
    t = text.strip().replace("−", "-")
    sign = -1.0 if t.startswith("-") else 1.0
    t = t.lstrip("+-")
    unit = ""
    if t.startswith("£"):
        unit, t = "GBP", t[1:].lstrip("+-")
    if t.endswith("%"):
        unit, t = "percent", t[:-1]
    suffix = re.search(r"(k|m|bn)$", t)
    scale = _SCALE[suffix.group(1)] if suffix else 1.0
    t = t[: suffix.start()] if suffix else t
    return sign * float(t.replace(",", "")) * scale, unit


def parse_cell(cell: object) -> dict | None:
    """One printed cell as numbers (value, lower, upper, unit, suppressed), or None when it
    is words."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return {"value": np.nan, "lower": np.nan, "upper": np.nan, "unit": "", "suppressed": False, "note": ""}
    if isinstance(cell, (int, float, np.integer, np.floating)) and not isinstance(cell, bool):
        return {"value": float(cell), "lower": np.nan, "upper": np.nan, "unit": "", "suppressed": False, "note": ""}
    text = str(cell).strip()
    if text == SUPPRESSED:
        return {"value": np.nan, "lower": np.nan, "upper": np.nan, "unit": "", "suppressed": True, "note": ""}
    if text.lower() in _NOTHING:
        return {"value": np.nan, "lower": np.nan, "upper": np.nan, "unit": "", "suppressed": False, "note": ""}
    note = ""
    bound = re.match(r"^(under|over|fewer than|more than) (.+)$", text)
    if bound:  # 'under 1%' (a probability the briefing will not print as 0%): the bound, and a note
        note, text = bound.group(1), bound.group(2)
    points = re.match(r"^(.+) points?$", text)
    if points:  # '+5 points': a change in percentage points
        text = points.group(1)
    for pattern in (_ESTIMATE, _RANGE, _SINGLE):
        match = pattern.match(text)
        if match:
            parts = {k: number(v) for k, v in match.groupdict().items()}
            units = {u for _, u in parts.values() if u}
            return {"value": parts["value"][0] if "value" in parts else np.nan,
                    "lower": parts["lower"][0] if "lower" in parts else np.nan,
                    "upper": parts["upper"][0] if "upper" in parts else np.nan,
                    "unit": "percentage points" if points else units.pop() if len(units) == 1 else "",
                    "suppressed": False, "note": note}
    return None


def _cell_unit(header: str, cell: dict, cells: list[dict]) -> str:
    """A figure's unit: what its printed cell says (£, %); for a cell with no figure or a bare
    number, the column's one printed unit if it has one (a column of shares with a [c]), else
    what the header says ('People', 'GBP'). Tables with a row per figure mix units by row."""
    if cell["unit"]:
        return cell["unit"]
    printed = {c["unit"] for c in cells if c["unit"]}
    if len(printed) == 1 and np.isnan(cell["value"]):
        return printed.pop()
    unit = _header_unit(header)
    if unit in ("people", "count") and np.isfinite(cell["value"]) and not float(cell["value"]).is_integer():
        return ""  # a mean under a group's name (the balance table's 'Budget holders'), not a count
    return unit


def _header_unit(header: str) -> str:
    if "ratio" in header.lower():
        return "ratio"
    if "GBP" in header or "£" in header:
        return "GBP"
    if "%" in header and "interval" not in header.lower() and "CI" not in header:
        return "percent"
    if re.search(r"\bper\b", header, re.I):  # 'Exits per 100 person-years': a rate, not people
        return "rate"
    if _PEOPLE.search(header):
        return "people"
    if _COUNTS.search(header):
        return "count"
    return ""


def _numeric_columns(frame: pd.DataFrame) -> dict[str, list[dict]]:
    """The columns that hold figures, parsed: any column but the first with at least one cell
    that is a figure (or [c]). A cell of words among figures ('not tested') becomes a missing
    value with the words in ``note``; columns of words only label the rows."""
    parsed = {}
    for column in frame.columns[1:]:
        cells = [parse_cell(v) for v in frame[column]]
        if any(c is not None and (c["suppressed"] or not np.isnan(c["value"]) or not np.isnan(c["lower"]))
               for c in cells):
            parsed[column] = [c if c is not None else {"value": np.nan, "lower": np.nan, "upper": np.nan, "unit": "",
                                                       "suppressed": False, "note": str(v)}
                              for c, v in zip(cells, frame[column])]
    return parsed


def _tidy_float(value: float) -> float:
    """£8.3m read back is 8300000.000000001 in binary: written as 8300000.0."""
    return float(np.round(value, 6)) if np.isfinite(value) else value


def _is_interval(column: str, cells: list[dict]) -> bool:
    """A column that only holds 'a to b' intervals: it belongs to the figure before it."""
    return "interval" in column.lower() and all(np.isnan(c["value"]) for c in cells)


def tidy(frame: pd.DataFrame, notice: str) -> pd.DataFrame:
    """A printed table (first column the row labels) as one row per figure with numeric
    columns; see the module's docstring."""
    if frame.empty:  # a chart drawn empty (its analysis could not run): a file that says so
        frame = pd.DataFrame({"note": ["No figures: this analysis did not run for this site (see the briefing)"]})
    parsed = _numeric_columns(frame)
    labels = [c for c in frame.columns if c not in parsed]
    rows = []
    measures = list(parsed)
    for i in range(len(frame)):
        label = {c: frame[c].iloc[i] for c in labels}
        for j, column in enumerate(measures):
            cell = parsed[column][i]
            if _is_interval(column, parsed[column]) and j > 0:
                continue  # merged into the figure before it
            nxt = measures[j + 1] if j + 1 < len(measures) else None
            lower, upper = cell["lower"], cell["upper"]
            suppressed = cell["suppressed"]
            if nxt is not None and _is_interval(nxt, parsed[nxt]):
                lower, upper = parsed[nxt][i]["lower"], parsed[nxt][i]["upper"]
                suppressed = suppressed or parsed[nxt][i]["suppressed"]
            rows.append({**label, "measure": column, "value": _tidy_float(cell["value"]), "lower": _tidy_float(lower),
                         "upper": _tidy_float(upper), "numerator": np.nan, "denominator": np.nan,
                         "unit": _cell_unit(str(column), cell, parsed[column]), "suppressed": suppressed, "note": cell["note"]})
    if not measures:  # a table of words only (provenance, peers' reasons): kept as it is
        out = frame.copy()
    else:
        out = pd.DataFrame(rows, columns=labels + TIDY_COLUMNS)
    out[NOTICE_COLUMN] = notice
    return out


def with_counts(frame: pd.DataFrame, numerator: pd.Series, denominator: pd.Series, measure: str) -> pd.DataFrame:
    """Fill ``numerator`` and ``denominator`` on the rows of ``measure`` (aligned on the first
    column's labels) with the published, already rounded counts behind a rate or share."""
    rows = frame["measure"] == measure
    key = frame.loc[rows, frame.columns[0]]
    frame.loc[rows, "numerator"] = key.map(numerator).to_numpy()
    frame.loc[rows, "denominator"] = key.map(denominator).to_numpy()
    return frame


def file_name(kind: str, number: int | None, caption: str, limit: int = 90) -> str:
    """'table-03-money-bridge-by-funder-reporting-year.csv': kind and number as the briefing
    prints them, then the caption's words, cut at a word, never mid-word."""
    words = re.findall(r"[a-z0-9]+", caption.lower().replace("£", "gbp "))
    slug = ""
    for word in words:
        if len(slug) + len(word) + 1 > limit:
            break
        slug = f"{slug}-{word}" if slug else word
    if number is None:  # unnumbered (the decision page's messages): the caption's words alone
        return f"{slug or kind}.csv"
    return f"{kind}-{number:02d}-{slug}.csv" if slug else f"{kind}-{number:02d}.csv"


def link_text(name: str) -> str:
    """How the briefing names a download in its list of links: 'Table 3', 'Figure 5'."""
    match = re.match(r"(table|figure)-(\d+)", name)
    if match:
        return f"{match.group(1).capitalize()} {int(match.group(2))}"
    return re.sub(r"\.csv$", "", name).replace("-", " ").capitalize()

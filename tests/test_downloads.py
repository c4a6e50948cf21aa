"""Downloads: tidy numeric columns, numbered as the briefing numbers its tables and figures,
one for every table and chart, each carrying the data notice (docs/downloads.md); shares that
give back no hidden or unrounded count; PDF table headers never broken mid-word; alt text that
says what a chart shows."""

from __future__ import annotations

import re

import nbformat
import numpy as np
import pandas as pd
import pypdfium2 as pdfium
import pytest

from ipcreport.pipeline.render import figure_alt, with_output_alt
from ipcreport.report import charts, describe, downloads
from ipcreport.report.disclosure import Policy, published_share
from ipcreport.report.overview import as_published

POLICY = Policy()


# --- tidy columns -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value, unit", [
    ("£23.4m", 23_400_000.0, "GBP"), ("-£415k", -415_000.0, "GBP"), ("−£850", -850.0, "GBP"),
    ("12.5%", 12.5, "percent"), ("1,234", 1234.0, ""), ("+0.3", 0.3, ""),
])
def test_a_printed_figure_reads_back_as_its_number(text, value, unit):
    assert downloads.number(text) == (pytest.approx(value), unit)


def test_a_table_of_display_strings_becomes_tidy_numbers():
    printed = pd.DataFrame({
        "Outcome": ["Admissions", "Bed days"],
        "Rate ratio (95% CI)": ["0.86 (0.72 to 1.02)", "not available"],
        "People": ["1,230", "[c]"],
        "Against England": ["Better", "Similar"],
        "Spend": ["£23.4m", "-£415k"],
    })
    tidy = downloads.tidy(printed, downloads.SYNTHETIC_NOTICE).set_index(["Outcome", "measure"])
    assert list(tidy.columns) == ["Against England", *downloads.TIDY_COLUMNS[1:], downloads.NOTICE_COLUMN]
    ratio = tidy.loc[("Admissions", "Rate ratio (95% CI)")]
    assert (ratio["value"], ratio["lower"], ratio["upper"], ratio["unit"]) == (0.86, 0.72, 1.02, "ratio")
    assert tidy.loc[("Bed days", "People"), "suppressed"] and np.isnan(tidy.loc[("Bed days", "People"), "value"])
    assert tidy.loc[("Admissions", "People"), ["value", "unit"]].tolist() == [1230.0, "people"]
    assert tidy.loc[("Bed days", "Spend"), ["value", "unit"]].tolist() == [-415_000.0, "GBP"]
    assert (tidy[downloads.NOTICE_COLUMN] == downloads.SYNTHETIC_NOTICE).all()


def test_an_interval_column_joins_the_figure_before_it():
    printed = pd.DataFrame({"Indicator": ["a"], "This site": ["48.7%"], "95% interval": ["40.1% to 50.2%"]})
    tidy = downloads.tidy(printed, "n")
    assert len(tidy) == 1 and tidy.iloc[0][["value", "lower", "upper", "unit"]].tolist() == [48.7, 40.1, 50.2, "percent"]


def test_file_names_carry_kind_number_and_whole_words():
    name = downloads.file_name("table", 3, "Money bridge by funder, reporting year: budgets agreed (each year of "
                                          "care counted for its days in the year), spent and unspent")
    assert name.startswith("table-03-money-bridge-by-funder-reporting-year-") and name.endswith(".csv")
    assert name[len("table-03-"):-4].split("-")[-1] in "money bridge by funder reporting year budgets agreed each of " \
        "care counted for its days in the spent and unspent".split()  # cut at a word
    assert downloads.file_name("data", None, "Decisions for the board") == "decisions-for-the-board.csv"
    assert downloads.link_text("figure-05-x.csv") == "Figure 5"


# --- the built briefing: a download for every numbered table and figure ------------------------

def pdf_text(path) -> str:
    pdf = pdfium.PdfDocument(path)
    return "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))


def test_every_table_and_figure_has_its_numbered_tidy_download(built):
    _, report = built
    for site in sorted(p for p in (report / "sites").iterdir() if p.is_dir()):
        text = pdf_text(site / "briefing.pdf")
        files = {p.name for p in (site / "downloads").glob("*.csv")}
        for kind in ("Table", "Figure"):
            numbers = sorted({int(n) for n in re.findall(rf"\b{kind} (\d+): ", text)})
            assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 10, (site.name, kind, numbers)
            for n in numbers:
                assert any(f.startswith(f"{kind.lower()}-{n:02d}-") for f in files), f"{site.name}: no download for {kind} {n}"
            assert not any(f.startswith(f"{kind.lower()}-{len(numbers) + 1:02d}-") for f in files), \
                f"{site.name}: a {kind.lower()} download the briefing does not number"
        for path in (site / "downloads").glob("*.csv"):
            frame = pd.read_csv(path)
            assert (frame[downloads.NOTICE_COLUMN] == downloads.SYNTHETIC_NOTICE).all(), path.name
            if "measure" in frame:
                for column in ("value", "lower", "upper", "numerator", "denominator"):
                    assert pd.api.types.is_numeric_dtype(frame[column]), f"{path.name}: {column} {frame[column].head(3).tolist()}"
                assert frame["suppressed"].isin([True, False]).all(), path.name


def test_pdf_table_headers_are_never_broken_mid_word(built):
    """Every header word of every table (the downloads' `measure` names) is whole in the PDF:
    no line ends with a piece of one whose rest starts the next line."""
    _, report = built
    site = sorted(p for p in (report / "sites").iterdir() if p.is_dir())[0]
    headers = set()
    for path in (site / "downloads").glob("table-*.csv"):
        frame = pd.read_csv(path)
        headers |= set(frame["measure"].dropna().astype(str)) if "measure" in frame else set()
        headers |= {c for c in frame.columns if c not in downloads.TIDY_COLUMNS + [downloads.NOTICE_COLUMN]}
    words = {w.lower() for h in headers for w in re.findall(r"[A-Za-z]{5,}", h)}
    lines = [ln.strip() for ln in pdf_text(site / "briefing.pdf").splitlines() if ln.strip()]
    broken = broken_words(lines, words)
    assert words and not broken, broken


def broken_words(lines: list[str], words: set[str]) -> list[str]:
    """Pairs of lines where one ends with the start of one of ``words`` (hyphenated or not)
    and the next begins with its rest."""
    lines = [ln for ln in lines if ln.strip("-\u00ad \r")]  # pdfium puts a soft hyphen on a line of its own
    broken = []
    for before, after in zip(lines, lines[1:]):
        head, tail = re.search(r"([A-Za-z]+)[-\u00ad]?$", before), re.match(r"^[-\u00ad]?([a-z]+)", after)
        if head and tail and (head.group(1) + tail.group(1)).lower() in words and head.group(1).lower() not in words:
            broken.append(f"{before!r} / {after!r}")
    return broken


def test_the_header_check_finds_a_word_broken_across_lines():
    words = {"characteristic", "questionnaires"}
    assert broken_words(["Group Charac-", "teristic Value"], words) and broken_words(["Question", "naires"], words)
    assert broken_words(["Group Charac", "\u00ad", "teristic Value"], words)
    assert not broken_words(["Characteristic", "Value"], words)


def test_a_workbook_sheet_holds_its_csv_cell_for_cell_and_text_stays_inert(tmp_path):
    """The Excel sheet of a table is its CSV under the caption, cell for cell: numbers as numbers,
    missing values blank; text that looks like a formula or a web address stays plain text."""
    import csv

    import openpyxl

    from ipcreport.report import present

    present.PUBLISHED.clear()
    frame = pd.DataFrame({"Provider": ['=HYPERLINK("http://x")', "https://example.org", "Care Ltd"],
                          "Budget": ["£1.2m", "£3k", "[c]"]}, index=pd.Index(["a", "b", "c"], name="Row"))
    present.download(frame, "Budgets by provider", "Row", kind="table")
    try:
        files = present.write_downloads(tmp_path, {"Budget": "Money agreed"}, "Test site", synthetic=True)
    finally:
        present.PUBLISHED.clear()
    with files[0].open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    sheet = openpyxl.load_workbook(files[-1])["T01"]
    assert sheet["A1"].value == "Table 1: Budgets by provider"
    cells = list(sheet.iter_rows(min_row=3))
    assert len(cells) == len(rows) == 4  # the header and a row per provider
    for csv_row, row in zip(rows, cells):
        for text, cell in zip(csv_row, row, strict=True):
            assert cell.data_type != "f" and cell.hyperlink is None, cell.coordinate
            if isinstance(cell.value, bool):
                assert text == str(cell.value)
            elif isinstance(cell.value, (int, float)):
                assert float(text) == cell.value
            else:
                assert (cell.value or "") == text, cell.coordinate
    assert [c.value for c in cells[1]][:4] == ["A", '\'=HYPERLINK("http://x")', "Budget", 1_200_000]


# --- nothing recoverable --------------------------------------------------------------------------

def test_a_published_share_gives_back_only_rounded_counts():
    """The attacker multiplies every share of people a site could publish by its published
    (rounded) denominator: the result is the rounded count, never an exact count that differs
    from it, and nothing for counts of 1 to 7."""
    for whole in range(1, 400):
        for part in range(0, whole + 1):
            share = published_share(part, whole, POLICY)
            if POLICY.hidden(part) or whole <= POLICY.threshold:
                assert share is None
                continue
            recovered = share * POLICY.rounded(whole)
            assert recovered == pytest.approx(POLICY.rounded(part)), (part, whole)


def test_funnel_points_use_the_published_counts_of_people():
    sites = pd.DataFrame({"site_name": ["A", "B", "C"], "numerator": [73, 5, 40], "denominator": [138, 60, 81]})
    shown = as_published(sites, "direct_payment_share", POLICY)
    assert shown["site_name"].tolist() == ["A", "C"]  # B's 5 people would be given back
    assert shown["numerator"].tolist() == [75, 40] and shown["denominator"].tolist() == [140, 80]
    rates = pd.DataFrame({"site_name": ["A"], "numerator": [3.0], "denominator": [123.4]})
    assert as_published(rates, "emergency_rate", POLICY)["numerator"].tolist() == [3.0]  # events, not people


# --- alt text -------------------------------------------------------------------------------------

def test_funnel_alt_text_names_the_sites_outside_the_limits():
    units = pd.DataFrame({"unit": list("ABCDEFGHI"),
                          "flag": ["above 95%", "within", "above 99.8%", "within", "within", "within",
                                   "below 95%", "within", "within"]})
    assert describe.funnel(units, "budgets held as direct payments") == (
        "Funnel plot of budgets held as direct payments: 2 of 9 sites above the upper 95% limit: A and C; "
        "1 of 9 sites below the lower 95% limit: G.")


def test_bar_alt_text_gives_the_largest_values():
    shares = pd.Series({"a": 0.5, "b": 0.3, "c": 0.15, "d": 0.05})
    assert describe.bar(shares, "money by funder", percent=True) == (
        "Bar chart of money by funder: largest A (50%), B (30%) and C (15%); smallest D (5%).")


def test_interval_alt_text_names_the_intervals_that_exclude_zero():
    rows = pd.DataFrame({"value": [0.45, -0.05, -0.13], "low": [0.28, -0.14, -0.22], "high": [0.63, 0.04, -0.02]},
                        index=["learning_disability", "18-44", "mental_health"])
    assert describe.intervals(rows, "budget differences at equal need", percent=True) == (
        "Chart of budget differences at equal need: 2 of 3 intervals exclude zero: Learning disability +45% "
        "(+28% to +63%); Mental health -13% (-22% to -2%); the others include it.")


def test_risk_alt_texts_give_the_money_at_stake():
    assert describe.simulation([1.0], 1_668_000, 1_550_000, 1_806_000, 1_800_000, 0.15) == (
        "Histogram of simulated spend next year: central forecast £1.7m, 90% of simulations between £1.6m and "
        "£1.8m; the pooled fund of £1.8m is exceeded in 15% of simulations.")
    months = pd.DataFrame({"phased": [400.0, 800.0, 1200.0], "fast": [1600.0, 3200.0, 4800.0]})
    assert describe.plans(months, "money paid twice") == (
        "Line charts of money paid twice over 3 months: £2k in total with a phased roll-out; £10k in total with a "
        "fast roll-out.")
    sens = pd.DataFrame({"input": ["Price uplift", "Enrolment pace"], "width": [27_000.0, 137_000.0]})
    assert describe.tornado(sens, "central forecast") == (
        "Tornado chart of spend minus the central forecast: it moves most with enrolment pace (£137k between its "
        "5th and 95th percentiles), then price uplift (£27k between its 5th and 95th percentiles).")


def test_the_renderers_put_what_the_chart_shows_before_its_type():
    cell = nbformat.v4.new_code_cell('#| label: fig-x\n#| fig-alt: "Funnel plot."\nfigure(...)')
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="},
                                           metadata={"ipcreport": {"alt": "2 of 9 sites above: A and C."}})]
    assert figure_alt(cell.outputs[0], {"fig-alt": "Funnel plot."}) == "2 of 9 sites above: A and C. Funnel plot."
    quarto_cell = with_output_alt([cell])[0]
    assert quarto_cell.source.splitlines()[0] == '#| fig-alt: "2 of 9 sites above: A and C. Funnel plot."'
    assert "Funnel plot.\"" not in quarto_cell.source.splitlines()[1:] and cell.source.count("fig-alt") == 1


def test_words_among_figures_become_notes_not_label_columns():
    printed = pd.DataFrame({"Figure": ["Chance of overspending", "Agreed budgets", "Utilisation"],
                            "Then": ["under 1%", "£8.9m", "not tested"], "Change": ["+5 points", "+£955k", "-2 points"]})
    tidy = downloads.tidy(printed, "n").set_index(["Figure", "measure"])
    assert list(tidy.index.get_level_values("measure").unique()) == ["Then", "Change"]  # no display strings left as labels
    assert tidy.loc[("Chance of overspending", "Then"), ["value", "unit", "note"]].tolist() == [1.0, "percent", "under"]
    assert tidy.loc[("Chance of overspending", "Change"), ["value", "unit"]].tolist() == [5.0, "percentage points"]
    assert tidy.loc[("Agreed budgets", "Then"), "value"] == 8_900_000.0  # not 8900000.000000001
    assert np.isnan(tidy.loc[("Utilisation", "Then"), "value"]) and tidy.loc[("Utilisation", "Then"), "note"] == "not tested"
    assert tidy.loc[("Agreed budgets", "Then"), "unit"] == "GBP"  # rows of a headline table mix units


def test_the_counts_behind_a_published_indicator_are_the_rounded_ones():
    """Blackpool's case from issue 14: 121 holders in 138,381 residents. The download's
    numerator is 120, as the tables round it, and the published rate times the population gives
    back 120, not 121."""
    from types import SimpleNamespace

    from ipcreport.report.sections import compare

    t = pd.DataFrame({"key": ["holders_per_10k", "direct_payment_share", "emergency_rate", "direct_payment_share"],
                      "indicator": ["Holders", "Direct payments", "Admissions", "Few"],
                      "numerator": [121, 73, 40.0, 5], "denominator": [138_381, 138, 55.3, 90]})
    counts = compare.comparison_counts(SimpleNamespace(comparisons=t, level=0.95), POLICY)
    assert counts.loc["Holders"].tolist() == [120.0, 138_381.0]
    assert counts.loc["Direct payments"].tolist() == [75.0, 140.0]
    assert counts.loc["Admissions"].tolist() == [40.0, 55.3]  # events and person-years, not people
    assert counts.loc["Few"].isna().all()
    rate = compare.published_value(next(t.itertuples()), POLICY)[0]
    assert float(f"{rate:.2f}") * 138_381 / 10_000 == pytest.approx(120, abs=0.1)

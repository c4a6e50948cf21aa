"""Hostile data: text from the data must print as text in every published format.

One real build of a dataset whose free-text fields attack every output: a site name holding a
script, an image with an onerror handler, a javascript: link, a formula, TeX and a citation; a
contract id that starts a formula; a dataset name that is a link. The other site sees the
first through its peer comparisons. The briefings are opened in the real browser (nothing may
run, no link from the data may exist), the PDF's text and the Word document are read back, and
every CSV and Excel cell is checked for live formulas.
"""

from __future__ import annotations

import csv
import re
import functools
import shutil
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docx
import openpyxl
import pypdfium2 as pdfium
import pytest
import pandas as pd
import yaml

from ipcreport.report.escape import compose, italic, link, markdown, spreadsheet_cell

from conftest import edit_csv, run_cli

# Each attack, and the text that must appear literally (as characters) in the briefing.
SITE_NAME = ('Evil<script>window.__pwned="script"</script><img src=x onerror="window.__pwned=\'img\'">'
             '[click](javascript:window.__pwned="link") $x^2$ @smith {{< pagebreak >}}')
REGION = "=HYPERLINK(\"http://evil.example\",\"r\") <b>bold</b>"
CONTRACT = "=2+3<img src=x onerror=window.__pwned='contract'>"
DATASET = "[Dataset](javascript:window.__pwned='dataset') <iframe src=x></iframe>"


def test_markdown_escape_keeps_every_character_and_no_markup():
    attack = 'a<b>&amp;[l](javascript:x) `c` $m$ @k {=html} *e* _u_ | #\n# heading\r\n:::'
    escaped = markdown(attack)
    for char in "<>[]`$@{}*_|#&":
        assert f"\\{char}" in escaped
    assert "\n" not in escaped and "\r" not in escaped
    assert escaped.replace("\\", "") == attack.replace("\r\n", " ").replace("\n", " ")
    assert compose(italic("x*y"), " <b>") == "*x\\*y* \\<b\\>"


def test_links_only_to_relative_paths_the_package_makes():
    assert link("T01 [x]", "downloads/01-a b.csv") == "[T01 \\[x\\]](downloads/01-a%20b.csv)"
    for target in ("javascript:alert(1)", "JavaScript:x", "data:text/html,x", "http://x", "/etc/passwd", "\\\\host\\x"):
        with pytest.raises(ValueError):
            link("x", target)


@pytest.mark.parametrize("value, expected", [
    ("=1+2", "'=1+2"), ("+1+2", "'+1+2"), ("-x", "'-x"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"),
    ("-£3,000", "-£3,000"), ("-3.5%", "-3.5%"), ("−12", "−12"), ("Birmingham", "Birmingham"), (3, 3),
])
def test_spreadsheet_cells_never_start_a_formula(value, expected):
    assert spreadsheet_cell(value) == expected


# ---------------------------------------------------------------------------------------------
# one real build of hostile data


@pytest.fixture(scope="module")
def hostile_build(small_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data = root / "dataset"
    shutil.copytree(small_dataset, data)
    sites = edit_csv(data, "sites", lambda f: f.assign(
        site_name=[SITE_NAME, *f["site_name"][1:]], region=[REGION, *f["region"][1:]]))
    first = sites["site_code"][0]

    def hostile_contract(frame):
        frame.loc[frame.index[frame["site_code"] == first][0], "contract_id"] = CONTRACT
        return frame

    edit_csv(data, "contracts", hostile_contract)
    meta = yaml.safe_load((data / "dataset.yaml").read_text())
    (data / "dataset.yaml").write_text(yaml.safe_dump({**meta, "name": DATASET}))
    params = root / "p.yaml"
    params.write_text("run: hostile\nrisk: {simulation_draws: 500}\n")
    done = run_cli("build", data, "--params", params, "--jobs", 2, "--reports", root / "reports",
                   "--work", root / "work", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "reports" / "hostile", first, sites["site_code"][1]




def straight(text: str) -> str:
    """Text with pandoc's smart quotes made straight again."""
    return text.translate(str.maketrans("“”‘’", "\"\"''"))


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def served(folder: Path):
    handler = functools.partial(Quiet, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.slow
def test_nothing_from_the_data_runs_or_links_in_the_browser(hostile_build):
    from test_browser import CHROMIUM, CHROMIUM_ARGS

    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    report, first, second = hostile_build
    server = served(report)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    pages = ["index.html", f"sites/{first}/briefing.html", f"sites/{second}/briefing.html",
             "overview/overview.html", f"sites/{first}/downloads/index.html"]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            dialogs = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            for path in pages:
                page.goto(base + path)
                page.wait_for_load_state("load")
                assert page.evaluate("window.__pwned") is None, path
                hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
                assert not [h for h in hrefs if ":" in h.split("/")[0] and not h.startswith("#")], (path, hrefs)
                assert page.eval_on_selector_all("iframe, img[onerror], b", "els => els.length") == 0, path
                assert page.eval_on_selector_all("script", "els => els.filter(e => e.textContent.includes('pwned')).length") == 0
            page.goto(base + f"sites/{first}/briefing.html")
            text = straight(page.inner_text("body"))
            assert "Evil<script>" in text and "[click](javascript:" in text and "$x^2$ @smith {{< pagebreak >}}" in text
            assert "<b>bold</b>" in text and DATASET in text
            browser.close()
    finally:
        server.shutdown()
    assert dialogs == []


@pytest.mark.slow
def test_pdf_and_word_print_the_data_as_text_without_links(hostile_build):
    report, first, _ = hostile_build
    pdf = pdfium.PdfDocument(report / "sites" / first / "briefing.pdf")
    text = "".join(pdf[n].get_textpage().get_text_range() for n in range(len(pdf))).replace("\r\n", "\n")
    flat = " ".join(text.split())
    assert "Evil<script>" in flat and "onerror=" in flat and "$x^2$" in flat, flat[:2000]
    assert "\\<" not in flat and "\\[" not in flat  # escapes never show
    for number in range(len(pdf)):
        for link_ in pdf[number].get_links() if hasattr(pdf[number], "get_links") else []:
            assert "javascript" not in str(link_)

    path = report / "sites" / first / "briefing.docx"
    words = "\n".join(p.text for p in docx.Document(path).paragraphs)
    words = straight(words)
    assert "Evil<script>" in words and "[click](javascript:" in words and DATASET in words
    with zipfile.ZipFile(path) as package:
        rels = package.read("word/_rels/document.xml.rels").decode()
    targets = re.findall(r'relationships/hyperlink" Id="\w+" Target="([^"]*)"', rels)
    assert targets and all(t.startswith("downloads/") for t in targets), targets  # only the package's links


@pytest.mark.slow
def test_downloads_hold_no_live_formula(hostile_build):
    report, first, _ = hostile_build
    downloads = report / "sites" / first / "downloads"
    seen_contract = False
    for path in downloads.glob("*.csv"):
        with path.open(encoding="utf-8") as handle:
            for row in csv.reader(handle):
                for cell in row:
                    assert not cell.startswith(("=", "@", "\t")), (path.name, cell)
                    if cell.startswith(("+", "-")):  # only a signed figure: +2%, -£3k
                        assert re.fullmatch(r"[-+]£?[\d,.]+[%km]?", cell), (path.name, cell)
                    seen_contract |= cell == "'" + CONTRACT
    assert seen_contract, "the contract id is published, prefixed"
    workbook = openpyxl.load_workbook(downloads / "tables.xlsx")
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)


# ---------------------------------------------------------------------------------------------
# silent nonsense: refused by both engines alike


def _long_name(d):
    edit_csv(d, "sites", lambda f: f.assign(site_name=["x" * 100_000, *f["site_name"][1:]]))


def _infinite_money(d):
    edit_csv(d, "budgets", lambda f: f.assign(agreed_budget=["inf", "-inf", *f["agreed_budget"][2:]]))
    edit_csv(d, "contracts", lambda f: f.assign(annual_value=["Infinity", *f["annual_value"][1:]]))


def _absurd_budget(d):
    def huge(f):
        f.loc[f.index[3], ["agreed_budget", "funded_nhs"]] = ["1000000000000", "1000000000000"]
        return f
    edit_csv(d, "budgets", huge)


def _duplicated_header(d):
    lines = (d / "spend.csv").read_text().splitlines()
    (d / "spend.csv").write_text("\n".join([lines[0] + ",amount"] + [line + ",0" for line in lines[1:]]) + "\n")


@pytest.mark.parametrize("corrupt, column, rule", [
    (_long_name, "site_name", "implausible: longer than 200 characters"),
    (_infinite_money, "agreed_budget", "type: must be a number"),
    (_absurd_budget, "agreed_budget", "implausible: over GBP 10,000,000 for one budget period"),
    (_duplicated_header, "amount", "the header names this column more than once"),
], ids=["long-name", "infinite-money", "absurd-budget", "duplicated-header"])
def test_silent_nonsense_is_refused_alike_by_both_engines(dataset_copy, corrupt, column, rule):
    from ipcreport.data.scale import check_dataset_duckdb
    from ipcreport.data.dataset import validate_dataset

    corrupt(dataset_copy)
    found = validate_dataset(dataset_copy)
    assert [b for b in found if b.column == column and b.rule.startswith(rule) and b.severity == "error"], found
    assert check_dataset_duckdb(dataset_copy) == found


def test_a_number_formatted_from_a_missing_value_is_never_printed():
    from ipcreport.report import present

    present.PUBLISHED.clear()
    shown = present.download(pd.DataFrame({"Mean": ["nan", "12.5", "+nan", "£nan"], "Name": ["Nantwich", "x", "y", "z"]},
                                          index=["a", "b", "c", "d"]), "t", "Row")
    assert shown["Mean"].tolist() == ["not available", "12.5", "not available", "not available"]
    assert shown["Name"].tolist() == ["Nantwich", "x", "y", "z"]
    present.PUBLISHED.clear()

"""The published report in a real browser: Debian's Chromium driven by Playwright.

For each renderer (the built-in one, and Quarto where it is on PATH), serves a real build over
HTTP on 127.0.0.1, opens the index page and a briefing, follows every
link (HTML, PDF, Word, CSV, Excel), fails on any console error, checks accessibility with
axe-core (no serious or critical violations) and saves screenshots under test-artifacts/browser.
"""

from __future__ import annotations

import functools
import json
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin

import pytest

from conftest import ARTIFACTS, REPO

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
OUT = ARTIFACTS / "browser"
# Flags this machine's closed network needs (env notes): no background calls out.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAGIC = {".pdf": b"%PDF", ".docx": b"PK", ".xlsx": b"PK"}

if CHROMIUM is None:
    pytest.skip("chromium is not installed (make test installs it where apt can)", allow_module_level=True)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def site(built_by):
    """The built report served on a free loopback port."""
    _, _, report = built_by
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(report)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    """A page at ``url`` with every console error and page error collected."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{url}: HTTP {response and response.status}"
    return page, errors


def links(page) -> list[str]:
    return page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")


def check_download(page, url: str) -> None:
    response = page.request.get(url)
    assert response.ok, f"{url}: HTTP {response.status}"
    body = response.body()
    suffix = Path(url).suffix
    if suffix in MAGIC:
        assert len(body) > 1_000 and body.startswith(MAGIC[suffix]), f"{url} is not a {suffix} file"
    if suffix == ".csv":
        lines = body.splitlines()
        assert len(lines) >= 2 and b"," in lines[0], f"{url} has no CSV header and rows"


def crawl(browser, start: str, seen: set[str], shots: str) -> None:
    """Open an HTML page, then every link on it: HTML pages recursively (within the report),
    files by download. Any console error or broken link fails the test."""
    page, errors = open_page(browser, start)
    page.screenshot(path=str(OUT / f"{shots}.png"), full_page=False)
    for href in links(page):
        if href.startswith("#"):
            continue
        url = urljoin(start, href)
        if url in seen or not url.startswith(start.split("/")[0] + "//" + start.split("/")[2]):
            continue
        seen.add(url)
        if url.endswith(".html") or url.endswith("/"):
            crawl(browser, url, seen, shots + "-" + Path(href).parent.name.replace("/", "_") + Path(href).stem)
        else:
            check_download(page, url)
    assert not errors, f"console errors on {start}: {errors}"
    page.close()


def test_every_link_works_without_console_errors(browser, site, built_by):
    OUT.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    crawl(browser, site + "index.html", seen, f"{built_by[0]}-index")
    kinds = {Path(u).suffix for u in seen}
    assert {".html", ".pdf", ".docx", ".xlsx", ".csv"} <= kinds, kinds
    assert any("/briefing.html" in u for u in seen) and any("/overview.html" in u for u in seen)


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (make test runs npm ci)")
@pytest.mark.parametrize("path", ["index.html", "briefing", "overview/overview.html"])
def test_no_serious_or_critical_accessibility_violations(browser, site, built_by, path):
    renderer, _, report = built_by
    if path == "briefing":
        path = next(report.glob("sites/*/briefing.html")).relative_to(report).as_posix()
    page, errors = open_page(browser, site + path)
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"{renderer}-" + path.replace("/", "_")
    (OUT / f"axe-{name}.json").write_text(json.dumps(result["violations"], indent=2))
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    serious = [(v["id"], v["impact"], len(v["nodes"]), v["help"]) for v in result["violations"]
               if v["impact"] in ("serious", "critical")]
    assert not serious, f"{path}: {serious}"
    assert not errors


def test_briefing_in_the_house_style_with_charts_at_full_width(browser, site, built_by):
    """Either renderer's briefing: the house stylesheet (no Bootstrap), a column of 50rem with
    charts across it (not at half size), no links to other formats inside the page."""
    renderer, _, report = built_by
    path = next(report.glob("sites/*/briefing.html")).relative_to(report).as_posix()
    page, errors = open_page(browser, site + path)
    style = page.evaluate("""() => ({
        accent: getComputedStyle(document.documentElement).getPropertyValue('--accent').trim(),
        column: getComputedStyle(document.body).maxWidth,
        images: [...document.querySelectorAll('figure img')].map(i => i.getBoundingClientRect().width),
        bootstrap: [...document.styleSheets].some(s => { try { return [...s.cssRules].some(
            r => (r.selectorText || '').includes('.navbar')) } catch (e) { return false } }),
    })""")
    hrefs = links(page)
    page.close()
    assert style["accent"] == "#005eb8" and not style["bootstrap"], (renderer, style)
    assert style["column"] == "800px", style["column"]  # the house style's 50rem text column
    assert style["images"] and min(style["images"]) >= 600, style["images"]
    assert not [h for h in hrefs if h.endswith((".pdf", ".docx", ".typ"))], hrefs
    assert not errors

"""Assemble what may be published into ``reports/<run>``: briefings, downloads, index, manifest.

Only files meant for readers go there (rendered briefings, disclosure-controlled downloads,
the index and the manifest); executed notebooks, metrics.json and logs stay in ``work/``.
The folder is assembled beside the old one and swapped in by renames, so readers see the old
report or the new one, never half of either.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .. import __version__
from .jobs import RENDERED, StageResult
from .render import EMPTY_FAVICON
from ..data.files import replace_folder
from ..report.formats import gbp
from ..report.results import METRICS_FILE

SYNTHETIC_MARK = "SYNTHETIC DATA: not real people"
FORMAT_LABELS = {"html": "HTML", "pdf": "PDF", "docx": "Word"}


def _link_or_copy(source: str | Path, target: str | Path) -> None:
    """``target``'s folder exists (made once per folder: a national report has 9,000 files)."""
    try:
        os.link(source, target)  # same file system: instant, and the work copy stays as it was
    except OSError:
        shutil.copy2(source, target)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _page(title: str, body: str, style: str = "") -> str:
    return (f'<!DOCTYPE html>\n<html lang="en-GB">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n{EMPTY_FAVICON}\n'
            f"<title>{html.escape(title)}</title>\n{style}</head>\n<body>\n{body}\n</body>\n</html>\n")


def place(result: StageResult, publish: Path, prefix: str) -> dict[str, Any]:
    """Put one finished notebook's briefing and downloads under ``publish/prefix``; returns
    the links (relative to the report) for the index and manifest."""
    work, target = Path(result.last_good_dir or result.work_dir), publish / prefix
    links = {}
    target.mkdir(parents=True, exist_ok=True)
    for fmt, name in result.outputs.items():
        _link_or_copy(work / RENDERED / name, target / name)
        links[fmt] = f"{prefix}/{name}"
    # names, not Paths: pathlib's cost was most of a no-change rebuild's publishing at 153 sites
    source = work / "downloads"
    downloads = sorted(e.name for e in os.scandir(source) if e.name.endswith((".csv", ".xlsx"))) \
        if source.is_dir() else []
    if downloads:
        (target / "downloads").mkdir()
        for name in downloads:
            _link_or_copy(f"{source}/{name}", f"{target}/downloads/{name}")
        items = "\n".join(f'<li><a href="{html.escape(n)}">{html.escape(n)}</a></li>' for n in downloads)
        _write(target / "downloads" / "index.html", _page(f"Downloads: {result.title}", (
            f"<main>\n<h1>Downloads: {html.escape(result.title)}</h1>\n<p>The data behind every table and chart "
            "of the briefing. Counts of people are rounded and small counts hidden, as in the briefing.</p>\n"
            f"<ul>\n{items}\n</ul>\n</main>")))
        links["xlsx"] = f"{prefix}/downloads/tables.xlsx"
        links["csv"] = f"{prefix}/downloads/index.html"
    return links


STYLE = """<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Arial, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #212b32; line-height: 1.5; }
h1 { color: #005eb8; }
.synthetic { position: sticky; top: 0; background: #ffeb3b; color: #212b32; padding: .5rem 1rem; border: 2px solid #212b32; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d8dde0; vertical-align: top; }
thead th { background: #005eb8; color: #fff; }
td.ok { color: #007f3b; font-weight: bold; }
td.failed, p.failed { color: #d5281b; font-weight: bold; }
tr.failed { background: #fde8e6; }
a { color: #005eb8; }
</style>
"""
LINK_LABELS = {**FORMAT_LABELS, "xlsx": "Excel", "csv": "CSV"}


def _links(links: dict[str, str]) -> str:
    return " · ".join(f'<a href="{html.escape(path)}">{LINK_LABELS[kind]}</a>' for kind, path in links.items())


def index_page(inputs: dict[str, Any], sites: list[StageResult], site_links: dict[str, dict], overview: StageResult,
               overview_links: dict[str, str]) -> str:
    """reports/<run>/index.html: every site, its status, links to each format."""
    names = {s["site_code"]: s for s in inputs["sites"]}
    rows = []
    for r in sites:
        site = names[r.key]
        metrics = Path(r.last_good_dir or r.work_dir) / METRICS_FILE
        budget = json.loads(metrics.read_text()).get("budget_total") if (r.ok or r.last_good_dir) and metrics.exists() else None
        reason = html.escape(((r.error or "").splitlines() or [""])[0][:300])
        if r.ok:
            status = '<td class="ok">Built' + (" (unchanged)" if r.cached else "") + "</td>"
        elif r.last_good_dir:
            status = (f'<td class="failed">Stale: this run failed ({reason}); the briefing shown was built '
                      f"{html.escape((r.last_good or '')[:10])}</td>")
        else:
            status = f'<td class="failed">Failed: {reason}</td>'
        rows.append(
            f'<tr class="{r.status}"><th scope="row">{html.escape(site["site_name"])}<br>'
            f'<small>{html.escape(r.key)}</small></th><td>{html.escape(site["region"])}</td>{status}'
            f"<td>{gbp(budget) if budget is not None else ''}</td>"
            f"<td>{_links(site_links.get(r.key, {}))}</td></tr>"
        )
    banner = (f'<p class="synthetic" role="note"><strong>{SYNTHETIC_MARK}.</strong> These briefings are built '
              "from a generated dataset to show the reports; they are not findings.</p>" if inputs["synthetic"] else "")
    overview_line = (f"<p>National overview: {_links(overview_links)}</p>" if overview.ok else
                     f'<p class="failed">National overview failed: {html.escape(overview.error or "")}</p>')
    built = sum(r.ok for r in sites)
    failed = len(sites) - built
    body = f"""{banner}
<main>
<h1>Personal budgets briefings</h1>
<p>Dataset <strong>{html.escape(inputs["name"])}</strong>, extracted {html.escape(inputs["extract_date_words"])}.
{built} of {len(sites)} site briefings built{f"; {failed} failed" if failed else ""}.</p>
{overview_line}
<table>
<caption>Site briefings, their status and formats</caption>
<thead><tr><th scope="col">Site</th><th scope="col">NHS region</th><th scope="col">Status</th>
<th scope="col">Agreed budgets, reporting year</th><th scope="col">Briefing</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
<p><small>ipcreport {__version__}; data SHA-256 {inputs["dataset_sha256"][:12]}; see manifest.json for inputs,
parameters and timings.</small></p>
</main>"""
    return _page(f"Personal budgets briefings: {inputs['name']}", body, STYLE)


def assemble(publish: Path, inputs: dict[str, Any], sites: list[StageResult], overview: StageResult,
             manifest: dict[str, Any]) -> None:
    """Fill ``publish`` (a fresh folder) with every finished briefing, the index and the manifest."""
    if publish.exists():
        shutil.rmtree(publish)
    publish.mkdir(parents=True)
    site_links = {r.key: place(r, publish, f"sites/{r.key}") for r in sites if r.ok or r.last_good_dir}
    overview_links = place(overview, publish, "overview") if overview.ok else {}
    for entry in manifest["sites"]:
        entry["links"] = site_links.get(entry["key"], {})
    manifest["overview"]["links"] = overview_links
    _write(publish / "index.html", index_page(inputs, sites, site_links, overview, overview_links))
    _write(publish / "manifest.json", json.dumps(manifest, indent=2, default=str))


def swap_into_place(staged: Path, target: Path) -> None:
    """Put the staged report at ``target`` by a rename. On another file system (a rename cannot
    cross one) it is first copied to a folder beside the target, then renamed there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if staged.stat().st_dev != target.parent.stat().st_dev:
        incoming = target.with_name(f".{target.name}.incoming")
        shutil.rmtree(incoming, ignore_errors=True)
        try:
            shutil.copytree(staged, incoming)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)  # a full disk leaves no half-copied folder
            raise
        shutil.rmtree(staged)
        staged = incoming
    replace_folder(staged, target)

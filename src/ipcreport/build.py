"""The build: one dataset in, every site's briefing out.

    validate -> partition by site -> per site, in parallel: papermill, then render
             -> national overview -> index.html + manifest.json -> publish

Working files (site partitions, executed notebooks, metrics.json, logs) live in
``work/<run>/``; what may be published (briefings, index, manifest) is assembled in
``work/<run>/publish`` and only then moved to ``reports/<run>``, so a failed or interrupted
build never leaves a half-written report, and an invalid dataset writes nothing at all.
One failing site never stops the others: it gets its error and log and a red row on the index.
"""

from __future__ import annotations

import html
import json
import multiprocessing
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .analysis.indicators import national_table
from .dataset import Dataset, load_dataset, partition_by_site, site_tables
from .params import RunParams
from .render import EMPTY_FAVICON, RenderRequest, default_renderer
from .results import METRICS_FILE, read_metrics, write_json_atomic

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = PACKAGE_ROOT / "notebooks"
SITE_NOTEBOOK = NOTEBOOKS / "site_briefing.ipynb"
OVERVIEW_NOTEBOOK = NOTEBOOKS / "national_overview.ipynb"
KERNEL = "ipcreport"
SYNTHETIC_MARK = "SYNTHETIC DATA: not real people"


@dataclass
class StageResult:
    """One notebook's journey: executed, rendered, where its outputs went, how long it took."""

    key: str  # site code, or "overview"
    title: str
    status: str = "pending"  # ok | failed
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # format -> path relative to the report
    downloads: list[str] = field(default_factory=list)  # CSV and Excel files, relative to the report
    work_dir: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class BuildResult:
    report_dir: Path
    sites: list[StageResult]
    overview: StageResult
    seconds: float

    @property
    def ok(self) -> bool:
        return self.overview.ok and all(s.ok for s in self.sites)

    @property
    def failed(self) -> list[StageResult]:
        return [s for s in [*self.sites, self.overview] if not s.ok]


@dataclass(frozen=True)
class NotebookJob:
    """Everything a worker process needs to execute and render one notebook."""

    key: str
    title: str
    notebook: str
    parameters: dict[str, Any]
    work_dir: str
    publish_dir: str
    publish_prefix: str  # the outputs' folder relative to the report root
    stem: str
    subtitle: str
    formats: tuple[str, ...]
    watermark: str | None
    cell_timeout: int


@contextmanager
def _stderr_into(stream) -> Iterator[None]:
    """Point file descriptor 2 at ``stream`` so a kernel started inside inherits it: kernel
    warnings and crashes land in the site's own log instead of the build's console."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(stream.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def run_notebook_job(job: NotebookJob) -> StageResult:
    """Execute with papermill, then render; never raises (a failure is a result)."""
    import papermill  # imported in the worker: keeps the parent light and start-up fast

    result = StageResult(job.key, job.title, work_dir=job.work_dir)
    work = Path(job.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    executed = work / Path(job.notebook).name
    log = work / "execution.log"
    started = time.perf_counter()
    try:
        with log.open("w", encoding="utf-8") as stream, _stderr_into(stream):
            papermill.execute_notebook(
                job.notebook, executed, parameters=job.parameters, kernel_name=KERNEL,
                cwd=str(Path(job.notebook).parent), progress_bar=False, log_output=True,
                stdout_file=stream, stderr_file=stream, execution_timeout=job.cell_timeout,
            )
        result.timings["execute_seconds"] = round(time.perf_counter() - started, 2)
        rendered_at = time.perf_counter()
        request = RenderRequest(executed, Path(job.publish_dir), job.stem, job.title, subtitle=job.subtitle,
                                watermark=job.watermark, formats=job.formats)
        outputs = default_renderer().render(request)
        result.timings["render_seconds"] = round(time.perf_counter() - rendered_at, 2)
        result.outputs = {fmt: f"{job.publish_prefix}/{path.name}" for fmt, path in outputs.items()}
        result.downloads = publish_downloads(work / "downloads", Path(job.publish_dir) / "downloads",
                                             job.publish_prefix, job.title)
        result.status = "ok"
    except Exception as err:  # noqa: BLE001 - any failure of one site is reported, not raised
        result.status = "failed"
        result.error = f"{type(err).__name__}: {err}".strip()[:4000]
        (work / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
    return result


def publish_downloads(source: Path, target: Path, prefix: str, title: str) -> list[str]:
    """Copy a notebook's downloads (already disclosure-controlled) into the published folder,
    with a small page listing them; returns their paths relative to the report."""
    if not source.is_dir():
        return []
    shutil.copytree(source, target, dirs_exist_ok=True)
    files = sorted(p.name for p in target.iterdir() if p.suffix in (".csv", ".xlsx"))
    items = "\n".join(f'<li><a href="{html.escape(name)}">{html.escape(name)}</a></li>' for name in files)
    page = (f'<!DOCTYPE html>\n<html lang="en-GB">\n<head><meta charset="utf-8">{EMPTY_FAVICON}<title>Downloads: '
            f'{html.escape(title)}</title></head>\n<body><main>\n<h1>Downloads: {html.escape(title)}</h1>\n'
            f"<p>The data behind every table and chart of the briefing. Counts of people are rounded and "
            f"small counts hidden, as in the briefing.</p>\n<ul>\n{items}\n</ul>\n</main></body>\n</html>\n")
    (target / "index.html").write_text(page, encoding="utf-8")
    return [f"{prefix}/downloads/{name}" for name in files]


def plan_site_jobs(dataset: Dataset, params: RunParams, partitions: dict[str, Path], work: Path,
                   publish: Path, run_date: str) -> list[NotebookJob]:
    sites = dataset.tables["sites"].set_index("site_code")
    subtitle = f"Quarterly briefing on data to {dataset.meta.extract_date:%d %B %Y}"
    jobs = []
    for code, folder in partitions.items():
        name = sites.loc[code, "site_name"]
        jobs.append(NotebookJob(
            key=code,
            title=f"{name}: personal budgets briefing",
            notebook=str(SITE_NOTEBOOK),
            parameters={"site_code": code, "data_path": str(folder), "output_dir": str(work / "sites"),
                        "national_path": str(work / "national.csv"),
                        "params_file": params.source, "run_date": run_date, **params.for_site(code)},
            work_dir=str(work / "sites" / code),
            publish_dir=str(publish / "sites" / code),
            publish_prefix=f"sites/{code}",
            stem="briefing",
            subtitle=subtitle,
            formats=params.formats,
            watermark=SYNTHETIC_MARK if dataset.meta.synthetic else None,
            cell_timeout=params.cell_timeout_seconds,
        ))
    return jobs


def build(dataset_path: str | Path, params: RunParams, *, jobs: int | None = None,
          reports_root: str | Path = "reports", work_root: str | Path = "work",
          progress=print) -> BuildResult:
    """Validate, execute, render and publish every site of a dataset.

    Raises :class:`~ipcreport.validation.DatasetInvalid` before writing anything when the
    dataset breaks the contract.
    """
    started = time.perf_counter()
    dataset = load_dataset(dataset_path)  # all-or-nothing: nothing is written before this passes
    work = Path(work_root).resolve() / params.run
    if work.exists():
        shutil.rmtree(work)
    publish = work / "publish"
    publish.mkdir(parents=True)
    partitions = partition_by_site(dataset, work / "data")
    national = work / "national.csv"  # every site's indicators, for comparisons and funnel plots
    national_table([site_tables(dataset, code) for code in dataset.site_codes], dataset.meta.extract_date,
                   params.settings["reporting_months"]).to_csv(national, index=False)

    run_date = datetime.now(timezone.utc).date().isoformat()
    site_jobs = plan_site_jobs(dataset, params, partitions, work, publish, run_date)
    workers = max(1, min(jobs or os.cpu_count() or 1, len(site_jobs)))
    progress(f"Building {len(site_jobs)} site(s) with {workers} worker(s) from {dataset.path}")
    results: list[StageResult] = []
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for result in pool.map(run_notebook_job, site_jobs):
            results.append(result)
            progress(f"  {result.key}: {result.status}"
                     + (f" ({result.error.splitlines()[0][:200]})" if result.error else ""))

    overview = run_notebook_job(NotebookJob(
        key="overview", title="Personal budgets: national overview", notebook=str(OVERVIEW_NOTEBOOK),
        parameters={"metrics_dir": str(work / "sites"), "sites": [r.key for r in results if r.ok],
                    "output_dir": str(work / "overview"), "params_file": params.source, "run_date": run_date,
                    "link_sites": True, "national_path": str(work / "national.csv"),
                    "suppress_threshold": params.settings["suppress_threshold"],
                    "rounding": params.settings["rounding"]},
        work_dir=str(work / "overview"), publish_dir=str(publish / "overview"), publish_prefix="overview",
        stem="overview", subtitle=f"All sites, data to {dataset.meta.extract_date:%d %B %Y}", formats=params.formats,
        watermark=SYNTHETIC_MARK if dataset.meta.synthetic else None, cell_timeout=params.cell_timeout_seconds,
    ))
    progress(f"  overview: {overview.status}")

    report_dir = Path(reports_root).resolve() / params.run
    result = BuildResult(report_dir, results, overview, 0.0)
    write_index(publish, dataset, result, work)
    result.seconds = round(time.perf_counter() - started, 2)
    write_json_atomic(publish / "manifest.json", manifest(dataset, params, result, work))
    _swap_into_place(publish, report_dir)
    return result


def _swap_into_place(staged: Path, target: Path) -> None:
    """Replace ``target`` with ``staged`` by renames, so readers see the old or the new, never half."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    shutil.move(str(staged), str(target))
    if old.exists():
        shutil.rmtree(old)


def manifest(dataset: Dataset, params: RunParams, result: BuildResult, work: Path) -> dict[str, Any]:
    def stage(r: StageResult) -> dict[str, Any]:
        entry = asdict(r)
        metrics = Path(r.work_dir) / METRICS_FILE
        entry["metrics"] = str(metrics) if metrics.exists() else None
        return entry

    return {
        "run": params.run,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ok": result.ok,
        "seconds": result.seconds,
        "package_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "renderer": default_renderer().name,
        "dataset": {
            "name": dataset.meta.name,
            "path": str(Path(dataset.path).resolve()),
            "extract_date": dataset.meta.extract_date.date().isoformat(),
            "synthetic": dataset.meta.synthetic,
            "sha256": dataset.sha256,
            "files": dataset.files,
            "warnings": [str(w) for w in dataset.warnings],
        },
        "parameters": {"file": params.source, "settings": params.settings, "site_overrides": params.site_overrides,
                       "formats": list(params.formats)},
        "work_dir": str(work),
        "sites": [stage(r) for r in result.sites],
        "overview": stage(result.overview),
    }


FORMAT_LABELS = {"html": "HTML", "pdf": "PDF", "docx": "Word"}


def write_index(publish: Path, dataset: Dataset, result: BuildResult, work: Path) -> None:
    """reports/<run>/index.html: every site, its status, links to each format."""
    sites = dataset.tables["sites"].set_index("site_code")

    def links(r: StageResult) -> str:
        formats = [f'<a href="{html.escape(path)}">{FORMAT_LABELS[fmt]}</a>' for fmt, path in r.outputs.items()]
        if r.downloads:
            folder = r.downloads[0].rsplit("/", 1)[0]
            formats += [f'<a href="{html.escape(folder)}/tables.xlsx">Excel</a>',
                        f'<a href="{html.escape(folder)}/index.html">CSV</a>']
        return " · ".join(formats)

    rows = []
    for r in result.sites:
        name = sites.loc[r.key, "site_name"]
        region = sites.loc[r.key, "region"]
        metrics = Path(r.work_dir) / METRICS_FILE
        budget = read_metrics(metrics).get("budget_total") if metrics.exists() else None
        status = ('<td class="ok">Built</td>' if r.ok else
                  f'<td class="failed">Failed: {html.escape((r.error or "").splitlines()[0][:300])}'
                  f'<br><small>log: {html.escape(str(Path(r.work_dir) / "execution.log"))}</small></td>')
        rows.append(
            f'<tr class="{r.status}"><th scope="row">{html.escape(str(name))}<br><small>{html.escape(r.key)}</small></th>'
            f"<td>{html.escape(str(region))}</td>{status}"
            f"<td>{'£{:,.0f}'.format(budget) if budget is not None else ''}</td><td>{links(r)}</td></tr>"
        )
    banner = (f'<p class="synthetic" role="note"><strong>{SYNTHETIC_MARK}.</strong> These briefings are built '
              "from a generated dataset to show the reports; they are not findings.</p>"
              if dataset.meta.synthetic else "")
    overview = (f"<p>National overview: {links(result.overview)}</p>" if result.overview.ok
                else f'<p class="failed">National overview failed: {html.escape(result.overview.error or "")}</p>')
    failed = len(result.failed)
    summary = f"{len(result.sites) - sum(not s.ok for s in result.sites)} of {len(result.sites)} site briefings built"
    page = f"""<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{EMPTY_FAVICON}
<title>Personal budgets briefings: {html.escape(dataset.meta.name)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Arial, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #212b32; line-height: 1.5; }}
h1 {{ color: #005eb8; }}
.synthetic {{ position: sticky; top: 0; background: #ffeb3b; color: #212b32; padding: .5rem 1rem; border: 2px solid #212b32; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d8dde0; vertical-align: top; }}
thead th {{ background: #005eb8; color: #fff; }}
td.ok {{ color: #007f3b; font-weight: bold; }}
td.failed, p.failed {{ color: #d5281b; font-weight: bold; }}
tr.failed {{ background: #fde8e6; }}
a {{ color: #005eb8; }}
</style>
</head>
<body>
{banner}
<main>
<h1>Personal budgets briefings</h1>
<p>Dataset <strong>{html.escape(dataset.meta.name)}</strong>, extracted {dataset.meta.extract_date:%d %B %Y}.
{summary}{f"; {failed} failed" if failed else ""}.</p>
{overview}
<table>
<caption>Site briefings, their status and formats</caption>
<thead><tr><th scope="col">Site</th><th scope="col">NHS region</th><th scope="col">Status</th>
<th scope="col">Agreed budgets, reporting year</th><th scope="col">Briefing</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
<p><small>ipcreport {__version__}; data SHA-256 {dataset.sha256[:12]}; see manifest.json for inputs, parameters and timings.</small></p>
</main>
</body>
</html>
"""
    tmp = publish / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, publish / "index.html")

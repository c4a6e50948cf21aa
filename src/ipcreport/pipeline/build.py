"""The build: one dataset in, every site's briefing out, doing only the work that changed.

    prepare  validate and partition the dataset (skipped when its bytes are unchanged)
    plan     each site's cache key: notebook, package code, its data, its parameters, and what
             its briefing shows of other sites; a site whose key matches its last finished
             run is reused
    run      stale sites in parallel (a process pool, or a Dask cluster), each in a private
             folder moved into place when finished; then the national overview
    publish  briefings, downloads, index.html and manifest.json into reports/<run>, swapped in

Working files live in ``work/<run>/``; an invalid dataset writes nothing at all (exit 2); a
failing site gets its error, log and a red row on the index while the others carry on (exit
1); Ctrl-C or SIGTERM keeps every finished site, and the next build carries on from there.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import __version__, return_free_memory
from ..data.files import read_json, sha256_bytes, sha256_files, sha256_json, write_json_atomic
from .cache import key_of, notebook_fingerprint, package_fingerprint, read_key, stale_reasons
from .jobs import (KEY_FILE, RENDERED, BuildInterrupted, DaskExecutor, LocalExecutor, NotebookJob, StageResult,
                   reuse)
from .params import RunParams
from .publish import SYNTHETIC_MARK, assemble, swap_into_place
from ..resources import OVERVIEW_NOTEBOOK, SITE_NOTEBOOK
from ..report.results import METRICS_FILE, read_metrics

HISTORY_FILE = "history.parquet"  # under the reports folder, beside every run's folder (ipcreport.report.history)

INPUTS_FILE = "inputs.json"
log = logging.getLogger("ipcreport.pipeline.build")


@dataclass
class BuildResult:
    report_dir: Path
    sites: list[StageResult]
    overview: StageResult
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.overview.ok and all(s.ok for s in self.sites)

    @property
    def failed(self) -> list[StageResult]:
        return [s for s in [*self.sites, self.overview] if not s.ok]


# ---------------------------------------------------------------------------------------------
# prepare


def dataset_files(folder: Path) -> list[Path]:
    """The files a dataset is made of (what its identity hash covers)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and (
        p.name == "dataset.yaml" or p.suffix in (".csv", ".parquet", ".xlsx")) and not p.name.startswith("~$"))


DUCKDB_THRESHOLD_BYTES = 256 * 1024**2  # above this, tables are checked and split by DuckDB, not pandas


def choose_engine(dataset_path: Path, engine: str = "auto") -> str:
    """pandas for site-sized datasets; DuckDB over the files for national-sized ones, so no
    national table is ever loaded into memory whole (see :mod:`ipcreport.data.scale`)."""
    if engine != "auto":
        return engine
    size = sum(p.stat().st_size for p in dataset_files(dataset_path) if p.suffix != ".xlsx")
    return "duckdb" if size > DUCKDB_THRESHOLD_BYTES else "pandas"


def prepare(dataset_path: Path, params: RunParams, work: Path, write: bool = True, engine: str = "auto",
            on_work: Callable[[], None] = lambda: None, map_sites: Callable = map) -> dict[str, Any]:
    """Validate, partition and summarise the dataset, or reuse what the last build made of the
    same bytes. Raises DatasetInvalid (before writing anything) when the contract is broken.
    ``on_work`` is called when there is work to do (a build starts its workers then);
    ``map_sites``, like ``map``, summarises the partitions of a national-scale dataset (a build
    passes its executor's, so its workers summarise the sites while the build waits).

    Returns the inputs record: dataset identity, sites, partitions with their hashes, the
    national indicator table and each site's comparison fingerprint.
    """
    months = params.settings["reporting_months"]
    cached = read_json(work / "data" / INPUTS_FILE)
    files = dataset_files(dataset_path) if dataset_path.is_dir() else []
    # Hashing a national dataset's bytes takes seconds (1.3 GB at 5M people), so files whose
    # names, sizes and modification times are those the last build hashed keep its hash, as make
    # and rsync judge files; a file rewritten in place to the same size within the file
    # system's time resolution would be missed (--force rebuilds everything).
    stamp = sha256_json([[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files])
    identity = cached["dataset_sha256"] if cached and cached.get("dataset_stamp") == stamp else (
        sha256_files(files) if files else "")
    if cached and cached["dataset_sha256"] == identity and cached["reporting_months"] == months \
            and all(Path(p["folder"]).is_dir() for p in cached["partitions"].values()) \
            and Path(cached.get("national_model_rows", "")).is_file():
        params.check_sites([site["site_code"] for site in cached["sites"]])
        return cached  # the same bytes were validated and partitioned before
    on_work()

    import pandas as pd

    from ..analysis.indicators import from_summaries
    from ..report.disclosure import Policy
    from ..report.sections.compare import compare_all, fingerprint
    from ..report.sections.quality import published_warnings

    if choose_engine(dataset_path, engine) == "duckdb":
        dataset, partitions, summaries, scratch = _partition_with_duckdb(dataset_path, work, write, params, map_sites)
    else:
        dataset, partitions, summaries, scratch = _partition_with_pandas(dataset_path, work, write, params)
    meta = dataset.meta
    model_rows: list = []  # each site's rows of the national model, for the overview
    national = from_summaries(summaries, model_rows)
    model_rows = pd.concat(model_rows, ignore_index=True)
    rows_sha256 = sha256_bytes(pd.util.hash_pandas_object(model_rows, index=False).to_numpy().tobytes())
    comparisons = compare_all(national)
    sites = dataset.tables["sites"]
    inputs = {
        "dataset_sha256": identity,
        "dataset_stamp": stamp,
        "dataset_path": str(dataset_path.resolve()),
        "name": meta.name,
        "extract_date": meta.extract_date.date().isoformat(),
        "extract_date_words": f"{meta.extract_date:%d %B %Y}",
        "synthetic": meta.synthetic,
        "files": dataset.files,
        "warnings": [str(w) for w in dataset.warnings],
        "warnings_published": published_warnings(dataset.warnings, Policy(params.settings["suppress_threshold"],
                                                                         params.settings["rounding"])),
        "reporting_months": months,
        "sites": [{"site_code": c, "site_name": str(n), "region": str(r)}
                  for c, n, r in zip(sites["site_code"], sites["site_name"], sites["region"])],
        "partitions": partitions,
        "national_csv": str(work / "data" / "national.csv"),
        "national_sha256": sha256_json([national.round(9).to_dict("records"), rows_sha256]),
        "national_model_rows": str(work / "data" / "national_model.parquet"),
        "fingerprints": {code: fingerprint(comparisons.get(code)) for code in dataset.site_codes},
    }
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    if write:
        national.to_csv(inputs["national_csv"], index=False)
        model_rows.to_parquet(inputs["national_model_rows"], index=False)
        write_json_atomic(work / "data" / INPUTS_FILE, inputs)  # last: marks the inputs complete
    return inputs


def _partition_with_pandas(dataset_path: Path, work: Path, write: bool, params: RunParams):
    """The in-memory path: the dataset is loaded, checked and split here; each site's summary
    is made here too, one site at a time (a generator), as the dataset is already in memory."""
    from ..analysis.indicators import site_summary
    from ..data.dataset import load_dataset, site_partition, site_tables, write_partition

    dataset = load_dataset(dataset_path)  # all-or-nothing: nothing is written before this passes
    params.check_sites(dataset.site_codes)  # and per-site overrides name real sites
    partitions = {}
    for code in dataset.site_codes:
        files, site_meta = site_partition(dataset, code)
        folder = work / "data" / f"site={code}"
        partitions[code] = {"folder": str(folder), "sha256": site_meta["data_sha256"]}
        if write:
            write_partition(folder, files, site_meta)
    months, extract_date = params.settings["reporting_months"], dataset.meta.extract_date
    summaries = (site_summary(site_tables(dataset, code), extract_date, months) for code in dataset.site_codes)
    return dataset, partitions, summaries, None


def _partition_with_duckdb(dataset_path: Path, work: Path, write: bool, params: RunParams, map_sites: Callable):
    """The national-scale path: DuckDB checks the files and writes each site's partition; each
    site's summary is then made from its partition by ``map_sites`` (a worker holds one site)."""
    from ..data.dataset import SITE_META_FILE
    from ..data.scale import DuckDataset

    scratch = None if write else Path(tempfile.mkdtemp(prefix="ipcreport-status-"))
    out = work / "data" if write else scratch
    with DuckDataset(dataset_path) as data:
        dataset = data.to_dataset()  # raises DatasetInvalid before anything is written
        params.check_sites(dataset.site_codes)
        folders = data.partition(out, check=False)
    partitions = {code: {"folder": str(work / "data" / f"site={code}"),
                         "sha256": read_json(Path(folder) / SITE_META_FILE)["data_sha256"]}
                  for code, folder in folders.items()}
    codes = dataset.site_codes
    summarise = partial(summarise_partition, extract_date=dataset.meta.extract_date,
                        months=params.settings["reporting_months"])
    return dataset, partitions, map_sites(summarise, [str(folders[code]) for code in codes], codes), scratch


def summarise_partition(folder: str, code: str, extract_date, months: int):
    """One site's summary (:func:`ipcreport.analysis.indicators.site_summary`) from its partition:
    run in a build's worker processes or on its Dask workers."""
    from ..analysis.indicators import site_summary
    from ..data.dataset import load_site

    summary = site_summary(load_site(folder, code).tables, extract_date, months)
    return_free_memory()  # a worker runs briefings next: it need not hold the partition's memory
    return summary


# ---------------------------------------------------------------------------------------------
# plan


@dataclass
class Plan:
    inputs: dict[str, Any]
    sites: list[NotebookJob]
    run_date: str

    def stale(self) -> list[NotebookJob]:
        return [job for job in self.sites if job.reasons]


def _outputs_present(folder: Path, record: dict | None) -> bool:
    return bool(record) and all((folder / RENDERED / name).exists() for name in record.get("outputs", {}).values())


def plan_sites(inputs: dict[str, Any], params: RunParams, work: Path, site_notebook: Path = SITE_NOTEBOOK,
               force: bool = False, history_path: Path | None = None) -> Plan:
    """Each site's job, cache key, and why it must run (no reasons: reuse the last result)."""
    shared = {"notebook": notebook_fingerprint(site_notebook), "package": package_fingerprint(),
              "dataset": sha256_json([inputs["name"], inputs["extract_date"], inputs["synthetic"]])}
    run_date = datetime.now(timezone.utc).date().isoformat()
    from ..report import history as H  # pandas: imported only when sites are planned

    earlier = H.previous_by_site(H.read(history_path), inputs["extract_date"])
    subtitle = f"Quarterly briefing on data to {inputs['extract_date_words']}"
    jobs = []
    for site in inputs["sites"]:
        code = site["site_code"]
        settings = params.for_site(code)
        components = {**shared, "data": inputs["partitions"][code]["sha256"],
                      "parameters": sha256_json([settings, list(params.formats), params.source]),  # a name, not a path
                      "comparisons": inputs["fingerprints"][code],
                      # what the briefing shows of this site's earlier extracts
                      "history": sha256_json(earlier[code].to_dict("records") if code in earlier else [])}
        key = key_of(components)
        folder = work / "sites" / code
        previous = read_key(folder)
        reasons = ["rebuild forced (--force)"] if force else stale_reasons(
            components, previous, _outputs_present(folder, previous))
        jobs.append(NotebookJob(
            key=code, title=f"{site['site_name']}: personal budgets briefing", subtitle=subtitle,
            notebook=str(site_notebook),
            parameters={"site_code": code, "data_path": inputs["partitions"][code]["folder"],
                        "output_dir": str(folder.parent / f".{code}.partial"),
                        "national_path": inputs["national_csv"], "params_file": params.source,
                        "history_path": str(history_path) if history_path else None,
                        "run_date": run_date, **settings},
            work_dir=str(folder), stem="briefing", formats=params.formats,
            watermark=SYNTHETIC_MARK if inputs["synthetic"] else None, cell_timeout=params.cell_timeout_seconds,
            components=components, cache_key=key, reasons=tuple(reasons),
        ))
    return Plan(inputs, jobs, run_date)


def overview_job(plan: Plan, results: list[StageResult], params: RunParams, work: Path, force: bool,
                 overview_notebook: Path = OVERVIEW_NOTEBOOK, history_path: Path | None = None) -> NotebookJob:
    ok = [r for r in results if r.ok]
    site_keys = {r.key: (read_key(Path(r.work_dir)) or {}).get("key") for r in ok}
    components = {"notebook": notebook_fingerprint(overview_notebook), "package": package_fingerprint(),
                  "sites": sha256_json(site_keys), "national": plan.inputs["national_sha256"],
                  "parameters": sha256_json([params.settings["suppress_threshold"], params.settings["rounding"],
                                             params.settings["national_values"], list(params.formats), params.source])}
    folder = work / "overview"
    previous = read_key(folder)
    reasons = ["rebuild forced (--force)"] if force else stale_reasons(
        components, previous, _outputs_present(folder, previous))
    return NotebookJob(
        key="overview", title="Personal budgets: national overview",
        subtitle=f"All sites, data to {plan.inputs['extract_date_words']}", notebook=str(overview_notebook),
        parameters={"metrics_dir": str(work / "sites"), "sites": [r.key for r in ok],
                    "output_dir": str(work / ".overview.partial"), "params_file": params.source,
                    "run_date": plan.run_date, "link_sites": True, "national_path": plan.inputs["national_csv"],
                    "national_model_path": plan.inputs["national_model_rows"],
                    "history_path": str(history_path) if history_path else None,
                    "suppress_threshold": params.settings["suppress_threshold"], "rounding": params.settings["rounding"],
                    "national_values": params.settings["national_values"], "synthetic": plan.inputs["synthetic"]},
        work_dir=str(folder), stem="overview", formats=params.formats,
        watermark=SYNTHETIC_MARK if plan.inputs["synthetic"] else None, cell_timeout=params.cell_timeout_seconds,
        components=components, cache_key=key_of(components), reasons=tuple(reasons),
    )


# ---------------------------------------------------------------------------------------------
# run and publish


class Progress:
    """Sites done, failed and time left, on one line per site (and in the run's log file)."""

    def __init__(self, total: int, say: Callable[[str], None]):
        self.total, self.say, self.done, self.failed = total, say, 0, 0
        self.started = time.perf_counter()

    def __call__(self, result: StageResult) -> None:
        self.done += 1
        self.failed += not result.ok
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.total - self.done)
        detail = f"failed: {(result.error or '').splitlines()[0][:160]}" if not result.ok else "ok"
        self.say(f"[{self.done}/{self.total}] {result.key} {detail} ({result.timings.get('execute_seconds', 0):.0f} s "
                 f"run, {result.timings.get('render_seconds', 0):.0f} s render); {self.failed} failed, "
                 f"about {left:.0f} s left")


def _on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise BuildInterrupted(f"stopped by signal {signum}")


def build(dataset_path: str | Path, params: RunParams, *, jobs: int | None = None,
          reports_root: str | Path = "reports", work_root: str | Path = "work", force: bool = False,
          executor: str = "local", scheduler: str | None = None, site_notebook: Path = SITE_NOTEBOOK,
          overview_notebook: Path = OVERVIEW_NOTEBOOK, engine: str = "auto",
          progress: Callable[[str], None] = print) -> BuildResult:
    """Validate, execute what changed, render and publish every site of a dataset.

    Raises DatasetInvalid before writing anything when the dataset breaks the contract, and
    BuildInterrupted on Ctrl-C or SIGTERM (finished sites are kept; nothing is published).
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    dataset_path, work = Path(dataset_path), Path(work_root).resolve() / params.run
    check_request(dataset_path, executor, scheduler, {"--work": work.parent, "--reports": Path(reports_root).resolve()})
    with run_lock(work, progress):
        return _build(dataset_path, params, work, started, timings, jobs=jobs, reports_root=reports_root,
                      force=force, executor=executor, scheduler=scheduler, site_notebook=site_notebook,
                      overview_notebook=overview_notebook, engine=engine, progress=progress)


class UsageError(ValueError):
    """A mistake in how a build was asked for (a missing folder, a missing option): exit 2."""


MIN_FREE_BYTES = 100 * 1024**2  # a build of a few sites writes tens of megabytes


def check_request(dataset_path: Path, executor: str, scheduler: str | None, folders: dict[str, Path] = {}) -> None:  # noqa: B006 - read only
    """Mistakes a build can see before it starts: no dataset, no scheduler, output folders it
    cannot write to (read-only, not permitted, or nearly full)."""
    if not dataset_path.is_dir():
        raise UsageError(f"{dataset_path}: no such dataset folder")
    if executor == "dask" and not scheduler:
        raise UsageError("--executor dask needs --scheduler ADDRESS (a running Dask scheduler)")
    for option, folder in folders.items():
        existing = next(p for p in [folder, *folder.parents] if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {folder}: cannot write there ({existing} is read-only, not a folder or "
                             "not yours); choose another folder")
        free = shutil.disk_usage(existing).free
        if free < MIN_FREE_BYTES:
            raise UsageError(f"{option} {folder}: only {free / 1024**2:.1f} MB free there (a build needs about "
                             f"{MIN_FREE_BYTES // 1024**2} MB); free some space or choose another folder")


@contextmanager
def run_lock(work: Path, progress: Callable[[str], None]) -> Iterator[None]:
    """One build of a run at a time: a second one waits for the first, saying so. The lock is
    a file in the system's temporary folder named after the work folder (nothing is written
    under work/ before the data pass validation), released by the kernel if the build dies."""
    path = Path(tempfile.gettempdir()) / f"ipcreport-{sha256_json(str(work))[:16]}.lock"
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            progress(f"another build of run '{work.name}' is running ({handle.read().strip() or 'pid unknown'}); "
                     "waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(dataset_path: Path, params: RunParams, work: Path, started: float, timings: dict[str, float], *,
           jobs, reports_root, force, executor, scheduler, site_notebook, overview_notebook, engine,
           progress) -> BuildResult:
    say = None  # the run's log starts once the data have passed validation (nothing is written before)
    runner = DaskExecutor(scheduler) if executor == "dask" else LocalExecutor(max(1, jobs or os.cpu_count() or 1))
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with runner:
            # the workers start their kernels while the data are validated and partitioned
            inputs = prepare(dataset_path, params, work, engine=engine, on_work=runner.start, map_sites=runner.map)
            return_free_memory()  # the dataset's, held through every site otherwise
            timings["prepare_seconds"] = round(time.perf_counter() - started, 2)
            say = _run_log(work, progress)
            if params.override_reason:
                say(f"DISCLOSURE OVERRIDE: suppress_threshold {params.settings['suppress_threshold']}, rounding "
                    f"{params.settings['rounding']} (below the documented 7 and 5): {params.override_reason}")
            history_path = Path(reports_root).resolve() / HISTORY_FILE
            plan = plan_sites(inputs, params, work, site_notebook, force, history_path)
            stale = plan.stale()
            say(f"{len(plan.sites)} site(s) in {inputs['name']}: {len(stale)} to build, "
                f"{len(plan.sites) - len(stale)} unchanged (work in {work})")
            for job in stale:
                say(f"  {job.key}: {'; '.join(job.reasons)}")
            ran_at = time.perf_counter()
            ran = {r.key: r for r in runner.run(stale, Progress(len(stale), say))} if stale else {}
            sites = [ran.get(job.key) or reuse(job, read_key(Path(job.work_dir))) for job in plan.sites]
            timings["sites_seconds"] = round(time.perf_counter() - ran_at, 2)

            overview_at = time.perf_counter()
            job = overview_job(plan, sites, params, work, force, overview_notebook, history_path)
            if job.reasons:
                overview = runner.run([job], lambda result: None)[0]
                say(f"overview: {overview.status}" + (f" ({overview.error})" if overview.error else ""))
            else:
                overview = reuse(job, read_key(Path(job.work_dir)))
            timings["overview_seconds"] = round(time.perf_counter() - overview_at, 2)
    except KeyboardInterrupt as stop:
        finished = sum((Path(j.work_dir) / KEY_FILE).exists() for j in plan.sites) if "plan" in locals() else 0
        (say or progress)(f"interrupted: {finished} site(s) finished and kept in {work}; nothing was published. "
                          "Run the same command again to carry on.")
        raise BuildInterrupted(str(stop)) from None
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous_handler)

    publish_at = time.perf_counter()
    report_dir = Path(reports_root).resolve() / params.run
    result = BuildResult(report_dir, sites, overview, 0.0, timings)
    staged = work / "publish"
    timings["publish_seconds"] = 0.0
    assemble(staged, inputs, sites, overview, manifest(inputs, params, result, work))
    swap_into_place(staged, report_dir)
    record_history(history_path, params.run, sites)
    timings["publish_seconds"] = round(time.perf_counter() - publish_at, 2)
    result.seconds = round(time.perf_counter() - started, 2)
    say(f"published {report_dir / 'index.html'} in {result.seconds:.1f} s")
    return result


def record_history(history_path: Path, run: str, sites: list[StageResult]) -> None:
    """Add the published sites' headline figures to the history, for next quarter's briefings."""
    from ..report import history as H

    published = [read_metrics(Path(s.work_dir) / METRICS_FILE) for s in sites if s.ok]
    H.append(history_path, H.rows_from_metrics(run, published))


def _run_log(work: Path, progress: Callable[[str], None]) -> Callable[[str], None]:
    """Say something to the user and to this run's log file, work/<run>/logs/build-<time>.log."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"build-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    for old in [h for h in log.handlers if isinstance(h, logging.FileHandler)]:
        log.removeHandler(old)
        old.close()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    def say(message: str) -> None:
        log.info(message)
        progress(message)

    return say


def manifest(inputs: dict[str, Any], params: RunParams, result: BuildResult, work: Path) -> dict[str, Any]:
    from .render import default_renderer
    from ..report.results import METRICS_FILE

    def stage(r: StageResult) -> dict[str, Any]:
        """One site's record, with paths relative to the run's work folder (no machine path)."""
        entry = asdict(r)
        for name in ("work_dir", "last_good_dir"):
            if entry[name]:
                entry[name] = Path(entry[name]).relative_to(work).as_posix()
        folder = Path(r.last_good_dir or r.work_dir)
        entry["metrics"] = (folder / METRICS_FILE).relative_to(work).as_posix() \
            if (r.ok or r.last_good_dir) and (folder / METRICS_FILE).exists() else None
        return entry

    return {
        "run": params.run,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ok": result.ok,
        "timings": result.timings,
        "package_version": __version__,
        "python": sys.version.split()[0],
        "renderer": default_renderer().name,
        "dataset": {k: inputs[k] for k in ("name", "extract_date", "synthetic", "files")}
        | {"warnings": inputs.get("warnings_published", []), "folder": Path(inputs["dataset_path"]).name, "sha256": inputs["dataset_sha256"]},
        "parameters": {"file": params.source, "sha256": params.content_sha256, "settings": params.settings,
                       "site_overrides": params.site_overrides, "formats": list(params.formats),
                       "disclosure_override": params.override_reason},
        "work_dir": f"{params.run} (under the build's --work folder; paths below are relative to it)",
        "sites": [stage(r) for r in result.sites],
        "overview": stage(result.overview),
    }


def status(dataset_path: str | Path, params: RunParams, work_root: str | Path = "work", engine: str = "auto",
           site_notebook: Path = SITE_NOTEBOOK, reports_root: str | Path = "reports") -> Plan:
    """What a build would do now, and why; writes nothing under work/ or reports/."""
    work = Path(work_root).resolve() / params.run
    check_request(Path(dataset_path), "local", None)
    return plan_sites(prepare(Path(dataset_path), params, work, write=False, engine=engine), params, work,
                      site_notebook, history_path=Path(reports_root).resolve() / HISTORY_FILE)



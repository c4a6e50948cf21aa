"""One notebook's work (execute with papermill, render, keep), and the executors that run many.

A job never raises: a failure (an exception in a cell, a cell past its timeout, a kernel that
dies) is a result with its error, log and traceback, so one failing site never stops the others.
Each job works in a private folder and moves it into place only when it is finished, so an
interrupted build leaves every finished site intact and nothing half-written.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .cache import KEY_FILE, read_key
from ..data.files import replace_folder

KERNEL = "ipcreport"
RENDERED = "rendered"


@dataclass
class StageResult:
    """One notebook's journey: executed (or reused), rendered, where its files are, how long."""

    key: str  # site code, or "overview"
    title: str
    status: str = "pending"  # ok | failed
    error: str | None = None
    cached: bool = False  # reused from an earlier build: nothing it depends on changed
    reasons: list[str] = field(default_factory=list)  # why it ran again
    work_dir: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # format -> file in work_dir/rendered
    timings: dict[str, float] = field(default_factory=dict)
    # A failed run of a site that built before: its last good folder (published, marked stale)
    # and when that was built; the failed run's files are in work_dir then.
    last_good_dir: str | None = None
    last_good: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class NotebookJob:
    """Everything a worker needs to execute, render and keep one notebook."""

    key: str
    title: str
    subtitle: str
    notebook: str
    parameters: dict[str, Any]
    work_dir: str  # the finished folder: <work>/<run>/sites/<code> or <work>/<run>/overview
    stem: str
    formats: tuple[str, ...]
    watermark: str | None
    cell_timeout: int
    components: dict[str, str]  # what the result depends on (cache.key_of gives the key)
    cache_key: str
    reasons: tuple[str, ...] = ()

    @property
    def partial_dir(self) -> Path:
        """Where the job works until it is finished (a sibling, so the final move is a rename)."""
        final = Path(self.work_dir)
        return final.parent / f".{final.name}.partial"


@contextmanager
def stderr_into(stream) -> Iterator[None]:
    """Point file descriptor 2 at ``stream`` so a kernel started inside inherits it: kernel
    warnings and crashes land in the job's own log instead of the build's console."""
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
    """Execute with papermill, render every format, then move the finished folder into place
    with its key. Never raises."""
    import papermill  # imported in the worker: keeps the parent light and its start-up fast

    from .render import RenderRequest, default_renderer
    from .warm import ENGINE, kernel_output

    result = StageResult(job.key, job.title, work_dir=job.work_dir, reasons=list(job.reasons))
    work = job.partial_dir
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    executed = work / Path(job.notebook).name
    started = time.perf_counter()
    try:
        with (work / "execution.log").open("w", encoding="utf-8") as log, stderr_into(log):
            kernel_output()  # what the kernel wrote before this job is not this job's
            try:
                papermill.execute_notebook(
                    job.notebook, executed, parameters=job.parameters, kernel_name=KERNEL,
                    cwd=str(Path(job.notebook).parent), progress_bar=False, log_output=True,
                    stdout_file=log, stderr_file=log, execution_timeout=job.cell_timeout, engine_name=ENGINE,
                    request_save_on_cell_execute=False,  # write the notebook once, at the end
                )
            finally:
                log.write(kernel_output())  # the kernel's own stderr: warnings, a crash's last words
        result.timings["execute_seconds"] = round(time.perf_counter() - started, 2)
        rendered_at = time.perf_counter()
        request = RenderRequest(executed, work / RENDERED, job.stem, job.title, subtitle=job.subtitle,
                                watermark=job.watermark, formats=job.formats)
        outputs = default_renderer().render(request)
        result.timings["render_seconds"] = round(time.perf_counter() - rendered_at, 2)
        result.outputs = {fmt: path.name for fmt, path in outputs.items()}
        result.status = "ok"
        record = {"key": job.cache_key, "components": job.components, "outputs": result.outputs,
                  "timings": result.timings, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (work / KEY_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")  # last: marks it complete
    except Exception as err:  # noqa: BLE001 - any failure of one notebook is reported, not raised
        result.status = "failed"
        result.error = failure_message(err, executed)
        (work / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
    final = Path(job.work_dir)
    previous = read_key(final) if not result.ok else None
    if previous and all((final / RENDERED / name).exists() for name in previous.get("outputs", {}).values()):
        # keep the last good briefing where it is; the failed run goes beside it
        failed = final.with_name(f".{final.name}.failed")
        replace_folder(work, failed)
        result.work_dir, result.last_good_dir = str(failed), str(final)
        result.last_good, result.outputs = previous.get("finished", ""), previous["outputs"]
    else:
        replace_folder(work, final)
    return result


_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:)?(?:[\\/][^\s\\/'\"]+)+[\\/]?")


def without_paths(text: str) -> str:
    """Text with every absolute path cut to its last part (published messages name no machine)."""
    return _PATH.sub(lambda m: m.group(0).rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or "/", text)


def failure_message(err: BaseException, executed: Path) -> str:
    """Why a notebook failed, for the index page and the console: the exception's message and
    the briefing section of the failing cell; no traceback, no machine path."""
    ename, evalue = type(err).__name__, str(err)
    where = ""
    if hasattr(err, "ename") and hasattr(err, "cell_index"):  # papermill: an exception in a cell
        ename, evalue = err.ename, err.evalue
        where = f" (in section '{section_of(executed, err.cell_index)}')"
    message = " ".join(f"{ename}: {evalue}".split())
    return without_paths(message)[:500] + where


def section_of(notebook: Path, cell_index: int) -> str:
    """The heading the cell falls under in the notebook (the briefing's section)."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return "unknown"
    for cell in reversed(cells[: cell_index + 1]):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return "set-up"


def reuse(job: NotebookJob, record: dict[str, Any]) -> StageResult:
    """The result of a job whose key matches an earlier, finished run: nothing to do."""
    return StageResult(job.key, job.title, status="ok", cached=True, work_dir=job.work_dir,
                       outputs=record["outputs"], timings={"reused_from": record.get("finished", "")})


# ---------------------------------------------------------------------------------------------
# executors


class BuildInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a build: finished sites are kept, nothing is published."""


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process the moment ``parent`` dies, even by SIGKILL (Linux), so
    no worker carries on and moves a site into place after its build is gone. Its kernel then
    exits too: ipykernel polls for its parent (the worker) and exits when it is gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the build died before the line above
        os._exit(1)


def _start_worker(parent: int) -> None:
    die_with_parent(parent)
    # Each worker leads its own process group, so stopping a build can stop the worker and the
    # kernel it started together (os.killpg), leaving no orphaned kernels.
    os.setsid()
    from .warm import ONE_THREAD, prewarm

    os.environ.update(ONE_THREAD)  # before numpy loads: the sites it summarises come out as on Dask

    prewarm(KERNEL)


def _collect(futures: dict, wait_next: Callable, on_result: Callable[[StageResult], None], who: str) -> dict[str, StageResult]:
    """Each job's result as its future finishes; a future that failed (a lost worker) fails only
    its own job."""
    results: dict[str, StageResult] = {}
    for future in wait_next(futures):
        job = futures[future]
        try:
            result = future.result()
        except Exception as err:  # noqa: BLE001 - see the docstring
            result = StageResult(job.key, job.title, status="failed", work_dir=job.work_dir,
                                 error=f"{who} failed: {type(err).__name__}: {err}")
        results[job.key] = result
        on_result(result)
    return results


class LocalExecutor:
    """A process pool on this machine, one warm kernel per worker.

    :meth:`start` launches the workers at once; each starts its kernel and imports the package
    while the build is still validating the data. Used as a context manager: leaving it on an
    error or an interrupt stops every worker and its kernel.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self.used = False

    def start(self, jobs: int | None = None) -> None:
        """Start the workers (no more than ``jobs`` of them, when that is known)."""
        if self.pool is None:
            workers = min(self.workers, jobs or self.workers)
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_start_worker, initargs=(os.getpid(),))
            for _ in range(workers):  # the pool starts a worker per waiting task: start them all now
                self.pool.submit(int)

    def map(self, fn: Callable, *iterables) -> list:
        """``fn`` over the items, in the workers; results in order (one item per task)."""
        self.start()
        return list(self.pool.map(fn, *iterables))

    def run(self, jobs: list[NotebookJob], on_result: Callable[[StageResult], None]) -> list[StageResult]:
        """Every job; results in job order."""
        self.start(len(jobs))
        self.used = True
        futures = {self.pool.submit(run_notebook_job, job): job for job in jobs}
        results = _collect(futures, as_completed, on_result, "worker process")
        return [results[job.key] for job in jobs]

    def stop(self) -> None:
        """Stop every worker and its kernel now (their process groups), finished or not."""
        if self.pool is None:
            return
        for pid in list(getattr(self.pool, "_processes", {}) or {}):  # the pool's live workers
            for kill in (os.killpg, os.kill):  # a worker not yet leading its group is killed alone
                try:
                    kill(pid, signal.SIGTERM)
                    break
                except (ProcessLookupError, PermissionError):
                    continue
        self.pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self.pool is None:
            return
        if kind is not None or not self.used:  # an error, an interrupt, or workers never needed
            self.stop()
        else:
            self.pool.shutdown()


class DaskExecutor:
    """The same jobs on a Dask distributed cluster (its workers must see the same files)."""

    def __init__(self, scheduler: str):
        self.scheduler = scheduler

    def start(self, jobs: int | None = None) -> None:
        """Nothing to warm here: the cluster's workers are already running."""

    def map(self, fn: Callable, *iterables) -> list:
        """``fn`` over the items, on the cluster; results in order."""
        from distributed import Client

        with Client(self.scheduler) as client:
            return client.gather(client.map(fn, *iterables, pure=False))

    def run(self, jobs: list[NotebookJob], on_result: Callable[[StageResult], None]) -> list[StageResult]:
        from distributed import Client
        from distributed import as_completed as dask_completed

        with Client(self.scheduler) as client:
            futures = {client.submit(run_notebook_job, job, key=f"ipcreport-{job.key}-{job.cache_key[:12]}",
                                     pure=False): job for job in jobs}
            results = _collect(futures, dask_completed, on_result, "dask worker")
        return [results[job.key] for job in jobs]

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, kind, error, trace) -> None:
        return None

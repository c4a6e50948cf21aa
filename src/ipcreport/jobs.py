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
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .cache import KEY_FILE
from .results import replace_folder

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
    from .warm import ENGINE

    result = StageResult(job.key, job.title, work_dir=job.work_dir, reasons=list(job.reasons))
    work = job.partial_dir
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    executed = work / Path(job.notebook).name
    started = time.perf_counter()
    try:
        with (work / "execution.log").open("w", encoding="utf-8") as log, stderr_into(log):
            papermill.execute_notebook(
                job.notebook, executed, parameters=job.parameters, kernel_name=KERNEL,
                cwd=str(Path(job.notebook).parent), progress_bar=False, log_output=True,
                stdout_file=log, stderr_file=log, execution_timeout=job.cell_timeout, engine_name=ENGINE,
                request_save_on_cell_execute=False,  # write the notebook once, at the end
            )
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
        result.error = f"{type(err).__name__}: {err}".strip()[:4000]
        (work / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
    replace_folder(work, Path(job.work_dir))
    return result


def reuse(job: NotebookJob, record: dict[str, Any]) -> StageResult:
    """The result of a job whose key matches an earlier, finished run: nothing to do."""
    return StageResult(job.key, job.title, status="ok", cached=True, work_dir=job.work_dir,
                       outputs=record["outputs"], timings={"reused_from": record.get("finished", "")})


# ---------------------------------------------------------------------------------------------
# executors


class BuildInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a build: finished sites are kept, nothing is published."""


def _own_process_group() -> None:
    # Each worker leads its own process group, so stopping a build can stop the worker and the
    # kernel it started together (os.killpg), leaving no orphaned kernels.
    os.setsid()


def run_local(jobs: list[NotebookJob], workers: int, on_result: Callable[[StageResult], None]) -> list[StageResult]:
    """A process pool on this machine; results in job order."""
    results: dict[str, StageResult] = {}
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_own_process_group)
    try:
        pending = {pool.submit(run_notebook_job, job): job for job in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    result = future.result()
                except Exception as err:  # noqa: BLE001 - a worker that died takes only its own job
                    result = StageResult(job.key, job.title, status="failed", work_dir=job.work_dir,
                                         error=f"worker process failed: {type(err).__name__}: {err}")
                results[job.key] = result
                on_result(result)
    except BaseException:
        for pid in list(getattr(pool, "_processes", {}) or {}):  # the pool's live workers
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [results[job.key] for job in jobs]


def run_dask(jobs: list[NotebookJob], scheduler: str, on_result: Callable[[StageResult], None]) -> list[StageResult]:
    """The same jobs on a Dask distributed cluster (workers must see the same files)."""
    from distributed import Client, as_completed

    with Client(scheduler) as client:
        futures = {client.submit(run_notebook_job, job, key=f"ipcreport-{job.key}-{job.cache_key[:12]}",
                                 pure=False): job for job in jobs}
        results = {}
        for future in as_completed(futures):
            job = futures[future]
            try:
                result = future.result()
            except Exception as err:  # noqa: BLE001 - a lost worker fails its job, not the build
                result = StageResult(job.key, job.title, status="failed", work_dir=job.work_dir,
                                     error=f"dask worker failed: {type(err).__name__}: {err}")
            results[job.key] = result
            on_result(result)
    return [results[job.key] for job in jobs]


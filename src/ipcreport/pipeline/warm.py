"""A papermill engine that keeps one warm kernel per worker process.

Starting a kernel and importing pandas, statsmodels and matplotlib costs seconds per site
before any analysis. This engine starts the kernel once per worker and runs each site's
notebook in it, after a reset: the user namespace is cleared (``%reset -f``), the working
directory set, figures closed and the package's per-run state (the published-tables registry)
emptied. Every cell still runs top to bottom with the site's injected parameters, exactly as
papermill runs it; only imported modules carry over. A kernel that failed a notebook (an
error, a timeout, or death) is discarded, so the next site starts fresh.

Registered with papermill as ``ipcreport-warm``; ``ipcreport.pipeline.jobs`` selects it.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import weakref

from jupyter_client import AsyncKernelManager
from nbclient.util import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines

ENGINE = "ipcreport-warm"
RESET = """\
get_ipython().run_line_magic("reset", "-f")
import os as _os
_os.chdir({cwd!r})
import matplotlib.pyplot as _plt
_plt.close("all")
from ipcreport.report import present as _present
_present.PUBLISHED.clear()
del _os, _plt, _present
"""
log = logging.getLogger("papermill")
# The asynchronous manager is the one nbclient is written for: its cell timeouts and its checks
# that the kernel is still alive rely on it (a blocking manager can wait forever on a dead kernel).
_warm: dict[str, AsyncKernelManager] = {}  # kernel name -> the running kernel of this process
_warmed_up: weakref.WeakSet[AsyncKernelManager] = weakref.WeakSet()  # the kernels that have run WARM_UP
# One BLAS thread per kernel: a build already runs one kernel per core, and a threaded BLAS sums
# in an order that depends on its thread count, so the same site's bootstrap figures would differ
# in their last digits between a process pool and a Dask worker (which sets these to 1 itself).
ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
# Not passed on to kernels: a Dask nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its worker, so the
# worker gives memory back to the system. Set at all, it also fixes the C library's mmap threshold
# at 128 kB: every larger array came from fresh pages, and a 100,000-person site's notebook
# used 33 s of CPU instead of 20 s (8.5 s of it page faults).
NOT_FOR_KERNELS = ("MALLOC_TRIM_THRESHOLD_",)
# What the package's notebooks import, and a first drawing (it loads the fonts): done once per
# kernel, before its first notebook. Modules are all that carries over (RESET clears the rest).
# Freezing them takes their few hundred thousand objects out of the garbage collector's full
# passes, which otherwise walk them again and again in every notebook (0.4 s a site).
WARM_UP = """\
import gc
import io
import matplotlib.pyplot as plt
from ipcreport.report import briefing, charts, disclosure, overview, present
from ipcreport.data import dataset
from ipcreport.report.sections import allocation, compare, outcomes, quality, risk
figure, axes = plt.subplots()
axes.set_title("warm-up")
figure.savefig(io.BytesIO(), format="png")
plt.close(figure)
del figure, axes
gc.collect()
gc.freeze()
"""


class _KernelStderr:
    """Where this process's kernels write their stderr (warnings, a dying kernel's last words).

    A kernel outlives the job that started it, so its stderr cannot point at one job's log;
    each job instead takes what the kernel wrote while it ran (:func:`kernel_output`).
    """

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="ipcreport-kernel-")
        self.path = os.path.join(self.folder, "stderr.log")
        open(self.path, "wb").close()
        self.reader = open(self.path, "rb")  # its own file offset: kernels append through theirs

    def new_text(self) -> str:
        return self.reader.read().decode("utf-8", errors="replace")

    def close(self) -> None:
        self.reader.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_stderr: _KernelStderr | None = None


def kernel_output() -> str:
    """What this process's kernels wrote to stderr since the last call."""
    return _stderr.new_text() if _stderr is not None else ""


def _kernel(name: str) -> AsyncKernelManager:
    global _stderr
    km = _warm.get(name)
    if km is None or not run_sync(km.is_alive)():
        _stderr = _stderr or _KernelStderr()
        km = AsyncKernelManager(kernel_name=name)
        with open(_stderr.path, "ab") as stderr:
            env = {k: v for k, v in os.environ.items() if k not in NOT_FOR_KERNELS}
            run_sync(km.start_kernel)(stderr=stderr, env={**env, **ONE_THREAD})
        _warm[name] = km
    return km


def prewarm(name: str, timeout: float = 120) -> None:
    """Start this process's kernel and import the package into it ahead of the first notebook
    (pool workers do this while the build is still validating the data). Never raises: a kernel
    that cannot start fails the first job instead, with the error in that job's log."""
    try:
        km = _kernel(name)
        client = km.client()
        client.start_channels()
        try:
            run_sync(client.wait_for_ready)(timeout=timeout)
            reply = run_sync(client.execute_interactive)(WARM_UP, timeout=timeout, output_hook=lambda msg: None)
            if reply["content"]["status"] != "ok":
                log.warning("warming up kernel %s failed: %s", name, reply["content"].get("evalue"))
            else:
                _warmed_up.add(km)
        finally:
            client.stop_channels()
    except Exception:  # noqa: BLE001 - see the docstring
        log.warning("could not warm up kernel %s", name, exc_info=True)


def discard(name: str) -> None:
    km = _warm.pop(name, None)
    if km is not None:
        try:
            run_sync(km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 - a kernel already gone is what we wanted
            pass


@atexit.register
def _shutdown_all() -> None:
    for name in list(_warm):
        discard(name)
    if _stderr is not None:
        _stderr.close()


class WarmEngine(NBClientEngine):
    """papermill's nbclient engine, with the kernel kept between notebooks."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, **kwargs):
        cwd = os.getcwd()  # papermill has moved into the notebook's folder
        client = None
        try:
            km = _kernel(kernel_name)
            client = PapermillNotebookClient(
                nb_man, km=km, timeout=execution_timeout, startup_timeout=start_timeout,
                kernel_name=kernel_name, log=log, log_output=log_output, stdout_file=stdout_file,
                stderr_file=stderr_file)

            async def reset(notebook) -> None:  # noqa: ARG001 - nbclient's hook signature
                # through the notebook's own client once it is connected: no second connection.
                # A kernel nobody warmed up (a Dask worker's, or one replacing a discarded kernel)
                # is warmed up here: without WARM_UP's freeze, every site's garbage collections
                # walk all the imported modules' objects again.
                code = RESET.format(cwd=cwd)
                if km not in _warmed_up:
                    code = WARM_UP + code
                reply = await client.kc.execute_interactive(code, timeout=start_timeout, output_hook=lambda msg: None)
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"resetting the warm kernel failed: {reply['content'].get('evalue')}")
                _warmed_up.add(km)

            client.on_notebook_start = reset
            result = client.execute()
        except BaseException:
            discard(kernel_name)
            raise
        finally:
            if client is not None and client.kc is not None:
                client.kc.stop_channels()
        if any(c.get("outputs") and any(o.get("output_type") == "error" for o in c["outputs"])
               for c in nb_man.nb.cells if c.get("cell_type") == "code"):
            discard(kernel_name)  # its state is unknown after an error: start the next site fresh
        return result


papermill_engines.register(ENGINE, WarmEngine)

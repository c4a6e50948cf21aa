"""A papermill engine that keeps one warm kernel per worker process.

Starting a kernel and importing pandas, statsmodels and matplotlib costs seconds per site
before any analysis. This engine starts the kernel once per worker and runs each site's
notebook in it, after a reset: the user namespace is cleared (``%reset -f``), the working
directory set, figures closed and the package's per-run state (the published-tables registry)
emptied. Every cell still runs top to bottom with the site's injected parameters, exactly as
papermill runs it; only imported modules carry over. A kernel that failed a notebook (an
error, a timeout, or death) is discarded, so the next site starts fresh.

Registered with papermill as ``ipcreport-warm``; ``ipcreport.jobs`` selects it.
"""

from __future__ import annotations

import atexit
import logging
import os

from jupyter_client import AsyncKernelManager, BlockingKernelClient
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
from ipcreport import present as _present
_present.PUBLISHED.clear()
del _os, _plt, _present
"""
log = logging.getLogger("papermill")
# The asynchronous manager is the one nbclient is written for: its cell timeouts and its checks
# that the kernel is still alive rely on it (a blocking manager can wait forever on a dead kernel).
_warm: dict[str, AsyncKernelManager] = {}  # kernel name -> the running kernel of this process


def _kernel(name: str) -> AsyncKernelManager:
    km = _warm.get(name)
    if km is None or not run_sync(km.is_alive)():
        km = AsyncKernelManager(kernel_name=name)
        run_sync(km.start_kernel)()
        _warm[name] = km
    return km


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


def _reset(km: AsyncKernelManager, cwd: str, timeout: float) -> None:
    client = BlockingKernelClient()
    client.load_connection_info(km.get_connection_info())
    client.start_channels()
    try:
        client.wait_for_ready(timeout=timeout)
        reply = client.execute_interactive(RESET.format(cwd=cwd), timeout=timeout, output_hook=lambda msg: None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"resetting the warm kernel failed: {reply['content'].get('evalue')}")
    finally:
        client.stop_channels()


class WarmEngine(NBClientEngine):
    """papermill's nbclient engine, with the kernel kept between notebooks."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, **kwargs):
        km = _kernel(kernel_name)
        client = None
        try:
            _reset(km, os.getcwd(), start_timeout)  # papermill has moved into the notebook's cwd
            client = PapermillNotebookClient(
                nb_man, km=km, timeout=execution_timeout, startup_timeout=start_timeout, kernel_name=kernel_name,
                log=log, log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
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

"""ipcreport: reproducible quarterly briefings for personal health budget and IPC sites."""

import ctypes
import os
from importlib.metadata import PackageNotFoundError, version

import numpy
import pyarrow

try:
    __version__ = version("ipcreport")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"


def _reuse_memory() -> None:
    """Make fresh memory rare and cheap: a site's analysis makes and drops large columns
    thousands of times, and on a virtual machine each new page costs a fault (docs/performance.md,
    "memory reused, not asked for afresh"). On a 100,000-person site this was over a third of the
    notebook.

    - Arrow's own allocator (mimalloc) gives freed memory back to the system within milliseconds,
      so every column came back as new pages; the C library's allocator keeps and reuses it.
    - numpy asks the kernel for huge pages on large arrays; where the kernel then compacts memory
      to find them (transparent huge pages with ``defrag`` on request), touching a new 120 MB
      array took 0.7 to 1.2 s instead of 0.07 s. numpy documents the switch for this case
      (``NUMPY_MADVISE_HUGEPAGE``); a value set in the environment still wins.
    """
    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    if "NUMPY_MADVISE_HUGEPAGE" not in os.environ:
        numpy._core.multiarray._set_madvise_hugepage(False)


_reuse_memory()


def return_free_memory() -> None:
    """Give the memory the C library keeps for reuse back to the system, between pieces of work.

    The price of :func:`_reuse_memory`: a process that has finished a large piece of work (a
    dataset's validation and partitioning, a site's summary) keeps its freed memory, and held it
    through every briefing after. glibc's ``malloc_trim`` returns it; elsewhere (another C
    library) this does nothing. Not called in the kernels between sites: each site would then
    fault its memory in afresh (the demo's nine notebooks took 86.4 s with it, 82.8 s without),
    and the kernels' peak did not fall.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass

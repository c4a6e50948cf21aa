"""ipcreport: reproducible quarterly briefings for personal health budget and IPC sites."""

from importlib.metadata import PackageNotFoundError, version

import pyarrow

try:
    __version__ = version("ipcreport")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

# Arrow's own allocator (mimalloc) gives freed memory back to the system within milliseconds.
# A site's analysis makes and drops large Arrow columns thousands of times, so each came back as
# fresh page faults: a third of a 100,000-person site's notebook was system time (11 s of 33 s).
# The C library's allocator keeps and reuses it (docs/performance.md, "Arrow's allocator").
pyarrow.set_memory_pool(pyarrow.system_memory_pool())

"""ipcreport: reproducible quarterly briefings for personal health budget and IPC sites."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ipcreport")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

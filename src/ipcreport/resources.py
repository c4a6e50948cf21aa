"""The files ipcreport ships beside its code: the notebooks, the renderers' templates and the
reference table of English areas.

They are found through importlib.resources, so the same names work from a checkout (an
editable install) and from an installed wheel; ``pip install`` puts them inside the package
(pyproject.toml maps notebooks/ and data/reference/ of a checkout into the package as
ipcreport.notebooks and ipcreport.reference). They must be real files: papermill, pandoc and Typst open them
by path, so a zipped install is refused with a clear message.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _folder(package: str) -> Path:
    folder = files(package)
    if not isinstance(folder, Path):
        raise RuntimeError(f"{package} is installed as {folder!r}; ipcreport needs its files on disk (no zip install)")
    return folder


TEMPLATES = _folder("ipcreport") / "templates"
NOTEBOOKS = _folder("ipcreport.notebooks")  # notebooks/ in a checkout
AREAS_CSV = _folder("ipcreport.reference") / "areas.csv"  # data/reference/ in a checkout
SITE_NOTEBOOK_NAME = "site_briefing.ipynb"
OVERVIEW_NOTEBOOK_NAME = "national_overview.ipynb"
SITE_NOTEBOOK = NOTEBOOKS / SITE_NOTEBOOK_NAME
OVERVIEW_NOTEBOOK = NOTEBOOKS / OVERVIEW_NOTEBOOK_NAME

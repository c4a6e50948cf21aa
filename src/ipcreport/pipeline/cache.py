"""What a site's briefing depends on, as hashes: the build's cache keys.

A site's work is a pure function of the notebook, the package's code, the site's own data
partition, its parameters, and what its briefing shows of other sites (its comparisons with
England and its peers, at the precision printed). The key is a hash of those components; the
components are kept beside each result so that ``ipcreport status`` can say which changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data.files import read_json, sha256_files, sha256_json

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/ipcreport: every layer's code
KEY_FILE = "key.json"


def package_fingerprint() -> str:
    """The package's own code and templates: a change to any of them re-runs every site
    (the version number alone would miss a change made during development)."""
    files = [p for p in PACKAGE_DIR.rglob("*") if p.is_file() and p.suffix in (".py", ".typ", ".typst", ".css", ".lua")
             and "__pycache__" not in p.parts]
    return sha256_files(files, PACKAGE_DIR)


def notebook_fingerprint(notebook: Path) -> str:
    """A notebook's cells (its outputs and execution counts do not matter)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    cells = [{"type": c.get("cell_type"), "source": "".join(c.get("source", [])), "tags": c.get("metadata", {}).get("tags")}
             for c in nb.get("cells", [])]
    return sha256_json(cells)


def key_of(components: dict[str, str]) -> str:
    return sha256_json(components)


def read_key(folder: Path) -> dict[str, Any] | None:
    """The record of a finished run in ``folder``; None (run it again) if missing or unreadable."""
    return read_json(folder / KEY_FILE)


REASONS = {
    "notebook": "the notebook changed",
    "package": "the package's code changed",
    "data": "its data changed",
    "parameters": "its parameters changed",
    "comparisons": "other sites' figures it is compared with changed",
    "dataset": "the dataset's name or extract date changed",
    "sites": "the sites' results changed",
}


def stale_reasons(components: dict[str, str], previous: dict[str, Any] | None, outputs_present: bool) -> list[str]:
    """Why a result must be made again; empty when the previous one is still good."""
    if previous is None:
        return ["never built (or failed last time)"]
    old = previous.get("components", {})
    reasons = [REASONS.get(name, f"{name} changed") for name, value in components.items() if old.get(name) != value]
    if not reasons and not outputs_present:
        reasons.append("its outputs are missing")
    return reasons

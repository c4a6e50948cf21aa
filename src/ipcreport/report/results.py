"""Headline results a site run records: metrics.json with every contract key.

A notebook creates one :class:`Metrics`, records figures as it computes them, and writes the
file at the end. Keys the run could not compute stay null with a note saying why, so a reader
of metrics.json never has to guess whether a missing number is zero.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .. import __version__
from ..data.files import read_json, write_json_atomic
from ..data.contract import METRIC_KEYS

METRICS_FILE = "metrics.json"


def _plain(value: Any) -> Any:
    """numpy and pandas scalars as JSON numbers; NaN as null."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Metrics:
    """Collects headline figures; unknown keys are kept too (extra keys are allowed)."""

    def __init__(self, site_code: str, dataset: str, extract_date: str, data_sha256: str):
        self.values: dict[str, Any] = {key: None for key in METRIC_KEYS}
        self.values.update(site_code=site_code, dataset=dataset, extract_date=extract_date,
                           package_version=__version__, data_sha256=data_sha256, notes=[])

    def record(self, key: str, value: Any) -> Any:
        self.values[key] = _plain(value)
        return value

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self.record(key, value)

    def missing(self, key: str, reason: str) -> None:
        """Record that ``key`` could not be computed, and why."""
        self.values[key] = None
        self.note(f"{key}: {reason}")

    def note(self, text: str) -> None:
        self.values["notes"].append(text)

    def write(self, folder: str | Path) -> Path:
        for key in METRIC_KEYS:
            if self.values[key] is None and key != "notes" and not any(
                n.startswith(f"{key}:") for n in self.values["notes"]
            ):
                self.note(f"{key}: not computed in this run")
        path = Path(folder) / METRICS_FILE
        write_json_atomic(path, self.values)
        return path


def read_metrics(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))

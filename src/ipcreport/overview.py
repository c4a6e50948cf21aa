"""Gather every site's headline results for the national overview."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .briefing import Settings, analyse_site
from .dataset import site_data, load_dataset
from .results import METRICS_FILE, read_metrics


def metrics_from_runs(metrics_dir: str | Path, sites: list[str] | None = None) -> pd.DataFrame:
    """One row per site from ``<metrics_dir>/<site>/metrics.json`` (what a build wrote)."""
    rows = []
    for path in sorted(Path(metrics_dir).glob(f"*/{METRICS_FILE}")):
        if sites is None or path.parent.name in sites:
            rows.append(read_metrics(path))
    return pd.DataFrame(rows)


def metrics_from_dataset(data_path: str | Path, settings: Settings = Settings()) -> pd.DataFrame:
    """The same table computed directly from a dataset (an analyst's run without a build)."""
    dataset = load_dataset(data_path)
    rows = []
    for code in dataset.site_codes:
        rows.append(analyse_site(site_data(dataset, code), settings).metrics.values)
    return pd.DataFrame(rows)

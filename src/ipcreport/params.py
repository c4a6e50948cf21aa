"""Run parameters (params/<run>.yaml): what a build passes to every site notebook.

The file is small on purpose: a run name, the analysis settings, disclosure settings, the
formats to render, and per-site overrides of any setting. Unknown keys are errors (a typo
must not silently fall back to a default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .render import FORMATS

# Notebook parameter -> (section in the YAML, key, default). Defaults match the notebook's
# parameters cell and are documented in params/demo.yaml.
NOTEBOOK_PARAMETERS: dict[str, tuple[str | None, str, Any]] = {
    "reporting_months": (None, "reporting_months", 12),
    "enrolment_growth": ("risk", "enrolment_growth", 0.10),
    "enrolment_growth_sd": ("risk", "enrolment_growth_sd", 0.05),
    "simulation_draws": ("risk", "simulation_draws", 10_000),
    "seed": ("risk", "seed", 2015),
    "horizon_months": ("risk", "horizon_months", 24),
    "fast_rollout_months": ("risk", "fast_rollout_months", 6),
    "price_uplift": ("risk", "price_uplift", 0.03),
    "price_uplift_sd": ("risk", "price_uplift_sd", 0.01),
    "release_share": ("risk", "release_share", 1.0),
    "unreleased_share": ("risk", "unreleased_share", 0.0),
    "pooled_fund": ("finance", "pooled_fund", None),
    "pooled_fund_next": ("finance", "pooled_fund_next", None),
    "suppress_threshold": ("disclosure", "suppress_threshold", 7),
    "rounding": ("disclosure", "rounding", 5),
    "national_values": ("compare", "national_values", {}),
    "spc_rebase": ("compare", "spc_rebase", {}),
}
TOP_LEVEL = {"run", "formats", "sites", "cell_timeout_seconds"} | {
    section or key for section, key, _ in NOTEBOOK_PARAMETERS.values()
}


class ParamsError(ValueError):
    pass


@dataclass(frozen=True)
class RunParams:
    run: str = "demo"
    formats: tuple[str, ...] = FORMATS
    cell_timeout_seconds: int = 600
    settings: dict[str, Any] = field(default_factory=lambda: {k: v[2] for k, v in NOTEBOOK_PARAMETERS.items()})
    site_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str | None = None  # the YAML file, for the manifest

    def for_site(self, site_code: str) -> dict[str, Any]:
        """The notebook parameters of one site: run settings with the site's overrides."""
        return {**self.settings, **self.site_overrides.get(site_code, {})}


def _flatten(raw: dict, where: str) -> dict[str, Any]:
    out = {}
    for name, (section, key, _) in NOTEBOOK_PARAMETERS.items():
        block = raw if section is None else raw.get(section) or {}
        if not isinstance(block, dict):
            raise ParamsError(f"{where}: '{section}' must be a mapping")
        if key in block:
            out[name] = block[key]
    for section in {s for s, _, _ in NOTEBOOK_PARAMETERS.values() if s}:
        known = {k for s, k, _ in NOTEBOOK_PARAMETERS.values() if s == section}
        for key in set(raw.get(section) or {}) - known:
            raise ParamsError(f"{where}: unknown setting '{section}.{key}' (known: {', '.join(sorted(known))})")
    return out


def run_name_for(dataset_path: str | Path) -> str:
    """The run name of a build without a parameters file: the dataset folder's name, as a
    folder name (so data/north-borough publishes into reports/north-borough, not over the demo)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(dataset_path).resolve().name).strip("-")
    return name or "run"


def load_params(path: str | Path | None, dataset_path: str | Path | None = None) -> RunParams:
    """The run parameters in ``path``; without a file, the defaults, named after the dataset."""
    if path is None:
        return RunParams(run=run_name_for(dataset_path)) if dataset_path is not None else RunParams()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ParamsError(f"{path}: cannot read parameters: {err}") from err
    unknown = set(raw) - TOP_LEVEL
    if unknown:
        raise ParamsError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    formats = tuple(raw.get("formats", FORMATS))
    if bad := [f for f in formats if f not in FORMATS]:
        raise ParamsError(f"{path}: formats must be among {', '.join(FORMATS)}, not {', '.join(bad)}")
    run = str(raw.get("run", path.stem))
    if not run.replace("-", "").replace("_", "").isalnum():
        raise ParamsError(f"{path}: run '{run}' must be letters, digits, '-' or '_' (it names a folder)")
    defaults = RunParams().settings
    overrides = {str(code): _flatten(block or {}, f"{path}: sites.{code}") for code, block in (raw.get("sites") or {}).items()}
    return RunParams(
        run=run,
        formats=formats,
        cell_timeout_seconds=int(raw.get("cell_timeout_seconds", 600)),
        settings={**defaults, **_flatten(raw, str(path))},
        site_overrides=overrides,
        source=str(path),
    )

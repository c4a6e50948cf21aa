"""Run parameters (params/<run>.yaml): what a build passes to every site notebook.

The file is small on purpose: a run name, the analysis settings, disclosure settings, the
formats to render, and per-site overrides of any setting. It is checked like the data contract:
every mistake at once (unknown keys, wrong types, values out of range, overrides for sites the
dataset does not have), each naming the key, before anything runs.

Disclosure below the documented minimum (counts 1-7 hidden, rounding to 5) needs an explicit
``disclosure.override_reason``; the build logs it and records it in the manifest.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .render import FORMATS

# Notebook parameter -> (section in the YAML, key, default[, (lowest, highest)]). The type is the
# default's (an int setting takes whole numbers only); the optional range is inclusive, None for
# no bound. Defaults match the notebook's parameters cell and are documented in params/demo.yaml.
# Adding a parameter is one row here (and its line in the notebook's parameters cell).
NOTEBOOK_PARAMETERS: dict[str, tuple] = {
    "reporting_months": (None, "reporting_months", 12, (1, 120)),
    "enrolment_growth": ("risk", "enrolment_growth", 0.10, (-1.0, 10.0)),
    "enrolment_growth_sd": ("risk", "enrolment_growth_sd", 0.05, (0.0, 10.0)),
    "simulation_draws": ("risk", "simulation_draws", 10_000, (100, 1_000_000)),
    "seed": ("risk", "seed", 2015, (0, 2**32 - 1)),
    "horizon_months": ("risk", "horizon_months", 24, (1, 120)),
    "fast_rollout_months": ("risk", "fast_rollout_months", 6, (1, 120)),
    "price_uplift": ("risk", "price_uplift", 0.03, (-0.5, 1.0)),
    "price_uplift_sd": ("risk", "price_uplift_sd", 0.01, (0.0, 1.0)),
    "release_share": ("risk", "release_share", 1.0, (0.0, 1.0)),
    "unreleased_share": ("risk", "unreleased_share", 0.0, (0.0, 1.0)),
    "pooled_fund": ("finance", "pooled_fund", None),  # GBP a year by funder: checked by _check_fund
    "pooled_fund_next": ("finance", "pooled_fund_next", None),
    "suppress_threshold": ("disclosure", "suppress_threshold", 7, (0, 100)),
    "rounding": ("disclosure", "rounding", 5, (1, 100)),
    "national_values": ("compare", "national_values", {}),
    "spc_rebase": ("compare", "spc_rebase", {}),
}
# The documented minimum disclosure control (shared/domain.md, NHS Digital practice).
MIN_THRESHOLD, MIN_ROUNDING = 7, 5
OVERRIDE_KEY = "override_reason"  # disclosure.override_reason: why a run goes below the minimum
SECTION_EXTRAS = {"disclosure": {OVERRIDE_KEY}}  # section keys that are not notebook parameters
TOP_LEVEL = {"run", "formats", "sites", "cell_timeout_seconds"} | {
    row[0] or row[1] for row in NOTEBOOK_PARAMETERS.values()
}


class ParamsError(ValueError):
    """Every mistake in a parameters file, one per line."""

    def __init__(self, where: str, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(f"{where}: {p}" for p in problems))


@dataclass(frozen=True)
class RunParams:
    run: str = "demo"
    formats: tuple[str, ...] = FORMATS
    cell_timeout_seconds: int = 600
    settings: dict[str, Any] = field(default_factory=lambda: {k: v[2] for k, v in NOTEBOOK_PARAMETERS.items()})
    site_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str | None = None  # the YAML file's name (never its absolute path: it is published)
    content_sha256: str | None = None  # what the file says, for cache keys (moving it changes nothing)
    override_reason: str | None = None  # why disclosure control is below the documented minimum

    def for_site(self, site_code: str) -> dict[str, Any]:
        """The notebook parameters of one site: run settings with the site's overrides."""
        return {**self.settings, **self.site_overrides.get(site_code, {})}

    def check_sites(self, site_codes: list[str]) -> None:
        """Overrides must name sites the dataset has (a typo must not be silently ignored)."""
        unknown = sorted(set(self.site_overrides) - set(site_codes))
        if unknown:
            raise ParamsError(self.source or "parameters", [
                f"sites.{code}: no site with this code in the dataset (sites: {', '.join(site_codes)})"
                for code in unknown])


FUND_PARAMETERS = ("pooled_fund", "pooled_fund_next")


def _check_fund(value: Any, where: str) -> str | None:
    """A pooled fund: null, or GBP a year by funder (nhs, social_care, education), each finite and >= 0."""
    from ..data.contract import FUNDERS

    if value is None:
        return None
    ok = isinstance(value, dict) and set(value) <= set(FUNDERS) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in value.values())
    return None if ok else (f"{where} must be GBP a year by funder ({', '.join(FUNDERS)}), each a number >= 0, "
                            f"not {value!r}")


def _check_value(name: str, value: Any, where: str) -> str | None:
    """What is wrong with one setting's value, or None."""
    if name in FUND_PARAMETERS:
        return _check_fund(value, where)
    default, bounds = NOTEBOOK_PARAMETERS[name][2], (NOTEBOOK_PARAMETERS[name][3:] or (None,))[0]
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = default is None or isinstance(value, type(default))
    if not ok:
        kind = "a whole number" if isinstance(default, int) else "a number" if isinstance(default, float) \
            else type(default).__name__
        return f"{where} must be {kind}, not {value!r}"
    if bounds and isinstance(value, (int, float)):
        low, high = bounds
        if (low is not None and value < low) or (high is not None and value > high):
            return f"{where} must be between {low} and {high}, not {value!r}"
    return None


def _flatten(raw: Any, where: str, problems: list[str]) -> dict[str, Any]:
    """The notebook settings of one block (the file, or one site's overrides), checked."""
    if not isinstance(raw, dict):
        problems.append(f"{where or 'the file'} must be a mapping of settings, not {type(raw).__name__}")
        return {}
    out = {}
    prefix = f"{where}." if where else ""
    sections = {row[0] for row in NOTEBOOK_PARAMETERS.values() if row[0]}
    for section in sections:
        block = raw.get(section)
        if block is not None and not isinstance(block, dict):
            problems.append(f"{prefix}{section} must be a mapping, not {block!r}")
            continue
        known = {row[1] for row in NOTEBOOK_PARAMETERS.values() if row[0] == section}
        for key in sorted(set(block or {}) - known - SECTION_EXTRAS.get(section, set())):
            problems.append(f"unknown setting {prefix}{section}.{key} (known: {', '.join(sorted(known))})")
    for name, row in NOTEBOOK_PARAMETERS.items():
        section, key = row[0], row[1]
        block = raw if section is None else raw.get(section)
        if isinstance(block, dict) and key in block:
            problem = _check_value(name, block[key], prefix + (f"{section}.{key}" if section else key))
            if problem:
                problems.append(problem)
            else:
                out[name] = block[key]
    return out


def run_name_for(dataset_path: str | Path) -> str:
    """The run name of a build without a parameters file: the dataset folder's name, as a
    folder name (so data/north-borough publishes into reports/north-borough, not over the demo)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(dataset_path).resolve().name).strip("-")
    return name or "run"


def _disclosure_override(settings: dict[str, Any], reason: Any, where: str, problems: list[str]) -> None:
    below = settings["suppress_threshold"] < MIN_THRESHOLD or settings["rounding"] < MIN_ROUNDING
    if below and not (isinstance(reason, str) and reason.strip()):
        problems.append(f"{where}disclosure below the documented minimum (suppress_threshold {MIN_THRESHOLD}, "
                        f"rounding {MIN_ROUNDING}) needs disclosure.{OVERRIDE_KEY}: why, and who agreed it")


def load_params(path: str | Path | None, dataset_path: str | Path | None = None) -> RunParams:
    """The run's parameters, or ParamsError listing every mistake in the file; without a file,
    the defaults, named after the dataset."""
    if path is None:
        return RunParams(run=run_name_for(dataset_path)) if dataset_path is not None else RunParams()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ParamsError(path.name, [f"cannot read parameters: {err}"]) from err
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ParamsError(path.name, [f"must be a mapping of settings, not a {type(raw).__name__}"])
    problems: list[str] = []
    if unknown := sorted(map(str, set(raw) - TOP_LEVEL)):
        problems.append(f"unknown top-level key(s) {', '.join(unknown)}")
    formats = raw.get("formats", list(FORMATS))
    if not isinstance(formats, list) or not formats or [f for f in formats if f not in FORMATS]:
        problems.append(f"formats must be a list among {', '.join(FORMATS)}, not {formats!r}")
        formats = list(FORMATS)
    run = str(raw.get("run", path.stem))
    if not run.replace("-", "").replace("_", "").isalnum():
        problems.append(f"run '{run}' must be letters, digits, '-' or '_' (it names a folder)")
    timeout = raw.get("cell_timeout_seconds", 600)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 86_400:
        problems.append(f"cell_timeout_seconds must be a whole number of seconds from 1 to 86400, not {timeout!r}")
    settings = {**RunParams().settings, **_flatten(raw, "", problems)}
    reason = (raw.get("disclosure") or {}).get(OVERRIDE_KEY) if isinstance(raw.get("disclosure"), dict) else None
    _disclosure_override(settings, reason, "", problems)
    sites = raw.get("sites") or {}
    if not isinstance(sites, dict):
        problems.append(f"sites must be a mapping of site code to settings, not {sites!r}")
        sites = {}
    overrides = {}
    for code, block in sites.items():
        overrides[str(code)] = _flatten(block or {}, f"sites.{code}", problems)
        if {"suppress_threshold", "rounding"} & set(overrides[str(code)]):
            _disclosure_override({**settings, **overrides[str(code)]}, reason, f"sites.{code}: ", problems)
    if problems:
        raise ParamsError(path.name, problems)
    from ..data.files import sha256_json

    return RunParams(run=run, formats=tuple(formats), cell_timeout_seconds=timeout, settings=settings,
                     site_overrides=overrides, source=path.name,
                     content_sha256=sha256_json([run, formats, timeout, settings, overrides, reason]),
                     override_reason=reason.strip() if isinstance(reason, str) and reason.strip() else None)

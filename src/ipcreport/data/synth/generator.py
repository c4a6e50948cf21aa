"""The generator: draws every table in order into a sink (a folder or memory) and returns what it
put in. Each table's draws live in their own module (people, budgets, activity, questionnaires,
contracts) with their own random stream; this module only wires them together."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml

from .activity import draw_events
from .arrays import _day, _rng
from .budgets import draw_budgets, draw_spend
from .contracts import draw_contracts, write_services
from .params import _S_SERVICES, FORMATS, SynthConfig, _validate_config
from .people import draw_people, draw_sites
from .questionnaires import draw_surveys
from .sinks import _FolderSink, _MemorySink
from .truth import build_meta, build_truth, incremental_cost_truth


def generate_tables(config: SynthConfig) -> tuple[dict, dict]:
    """The dataset :func:`synthesise` would write for ``config``, in memory, without any file.

    Returns ``(tables, truth)``: the seven contract tables as typed frames (the dtypes
    :func:`ipcreport.data.dataset.load_dataset` gives) and the truth dict (as in truth.json). The
    draws are the same as :func:`synthesise`'s, so the values are too. For simulation studies
    that need many replicates quickly (benchmarks/validity.py).
    """
    _validate_config(config)
    sink = _MemorySink()
    truth, _ = _generate(sink, config)
    return sink.frames(), json.loads(json.dumps(truth, allow_nan=False))


# ---------------------------------------------------------------------------------------------
# the generator


def synthesise(out_dir: Path, config: SynthConfig, *, overwrite: bool = False, format: str = "csv") -> dict:
    """Write a synthetic dataset to ``out_dir``; return the truth dict (also in truth.json).

    The folder is built in a temporary sibling and renamed into place, so a reader never sees a
    half-written dataset. Refuses (ValueError) to replace a non-empty folder unless overwrite.
    ``format`` is ``"csv"`` (the default) or ``"parquet"``: the same draws and values either way
    (the tables load to equal frames); only the files differ. truth.json and dataset.yaml do not
    depend on it.
    """
    _validate_config(config)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ValueError(f"{out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not overwrite:
            raise ValueError(f"{out_dir} exists and is not empty (pass overwrite=True to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the dataset folder is not
    try:
        truth, meta = _generate(_FolderSink(tmp, format), config)
        with open(tmp / "dataset.yaml", "w", encoding="utf-8") as handle:
            yaml.safe_dump(meta, handle, sort_keys=False, allow_unicode=True, width=100)
        with open(tmp / "truth.json", "w", encoding="utf-8") as handle:
            json.dump(truth, handle, indent=2, allow_nan=False)
            handle.write("\n")
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            os.rmdir(old)
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return truth


def _generate(sink: "_FolderSink | _MemorySink", cfg: SynthConfig) -> tuple[dict, dict]:
    """Draw every table into ``sink``; return (truth, dataset.yaml contents)."""
    extract = _day(cfg.extract_date)
    sites = draw_sites(sink, cfg, extract)
    people = draw_people(sink, cfg, extract, sites)
    budgets = draw_budgets(sink, cfg, people)
    spend = draw_spend(sink, cfg, extract, people, budgets)
    activity = draw_events(sink, cfg, people)
    surveys = draw_surveys(sink, cfg, extract, people)
    site_money = np.bincount(people.site[budgets.holders], weights=budgets.indicative_p / 100.0, minlength=cfg.sites)
    contracts = draw_contracts(sink, cfg, extract, sites.codes, site_money)
    monthly_service = people.prior_p / 100.0 / 12.0  # prior_service_cost is a 12-month figure
    services_rows = None
    if cfg.services:
        services_rows = write_services(sink.table("services"), _rng(cfg.seed, _S_SERVICES), people.person_id,
                                       people.cohort, people.ipc, people.index, people.exit_day, monthly_service,
                                       cfg.ipc_services_kept)
    cost_truth = incremental_cost_truth(cfg, extract, people.ipc, people.cohort, people.index, people.exit_day,
                                        budgets.holders, spend.in_follow_up_year, budgets.holder_education,
                                        monthly_service, activity.rate_factor, activity.los_scale)
    rows = {
        "sites": cfg.sites,
        "people": cfg.people,
        "budgets": len(budgets.p_person),
        "spend": spend.rows,
        "events": activity.rows,
        "surveys": surveys.rows,
        "contracts": contracts,
        "services": services_rows,
    }
    truth = build_truth(cfg, extract, sites, people, budgets, spend, activity, surveys, rows, cost_truth)
    return truth, build_meta(cfg)


def main(argv: list[str] | None = None) -> int:
    """``python -m ipcreport.data.synth OUT_DIR [--sites N --people N --seed N --format csv|parquet --overwrite]``."""
    import argparse

    parser = argparse.ArgumentParser(description="Write a synthetic IPC dataset with known effects.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--sites", type=int, default=SynthConfig.sites)
    parser.add_argument("--people", type=int, default=SynthConfig.people)
    parser.add_argument("--seed", type=int, default=SynthConfig.seed)
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    config = SynthConfig(sites=args.sites, people=args.people, seed=args.seed)
    truth = synthesise(args.out_dir, config, overwrite=args.overwrite, format=args.format)
    print(f"wrote {args.out_dir}: {truth['counts']['rows']}")
    return 0


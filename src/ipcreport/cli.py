"""`ipcreport synth | validate | build | status | snapshot | notebooks`.

Exit codes: 0 success; 1 a build ran but some site or the overview failed; 2 bad input
(the dataset breaks the contract, or the parameters are wrong): nothing was written;
130 interrupted (Ctrl-C or SIGTERM): finished sites are kept and a re-run carries on.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

EXIT_OK, EXIT_FAILED_SITES, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _synth(args: argparse.Namespace) -> int:
    from .data.synth import SynthConfig, synthesise

    config = SynthConfig(sites=args.sites, people=args.people, seed=args.seed, extract_date=args.extract_date,
                         admissions_rr=args.admissions_rr, bed_days_rr=args.bed_days_rr,
                         ascot_gain=args.ascot_gain, eq5d_gain=args.eq5d_gain)
    try:
        synthesise(Path(args.out), config, overwrite=args.overwrite, format=args.format)
    except ValueError as err:
        print(f"ipcreport synth: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"Wrote a synthetic dataset to {args.out}: {args.sites} sites, {args.people:,} people, seed {args.seed} "
          f"(true effects in {Path(args.out) / 'truth.json'})")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from .pipeline.build import check_request, choose_engine
    from .data.dataset import validate_dataset

    folder = Path(args.dataset)
    check_request(folder, "local", None)
    if choose_engine(folder, args.engine) == "duckdb":
        from .data.scale import check_dataset_duckdb

        breaches = check_dataset_duckdb(args.dataset)
    else:
        breaches = validate_dataset(args.dataset)
    errors = [b for b in breaches if b.severity == "error"]
    for breach in breaches:
        print(breach, file=sys.stderr if breach.severity == "error" else sys.stdout)
    if errors:
        print(f"{args.dataset}: {len(errors)} contract breach(es); nothing was written.", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{args.dataset}: valid ({len(breaches)} warning(s)).")
    return EXIT_OK


def _build(args: argparse.Namespace) -> int:
    from .pipeline.build import build
    params = _params(args)
    site_notebook, overview_notebook = _notebooks(args.notebooks)
    result = build(args.dataset, params, jobs=args.jobs, reports_root=args.reports, work_root=args.work,
                   force=args.force, executor=args.executor, scheduler=args.scheduler, engine=args.engine,
                   site_notebook=site_notebook, overview_notebook=overview_notebook)
    built = sum(s.ok and not s.cached for s in result.sites)
    print(f"Report: {result.report_dir / 'index.html'} ({len(result.sites)} sites: {built} built, "
          f"{sum(s.cached for s in result.sites)} unchanged, {len(result.failed)} failed; {result.seconds:.1f} s)")
    for failed in result.failed:
        kept = " (its last good briefing stays published, marked stale)" if failed.last_good_dir else ""
        print(f"FAILED {failed.key}: {failed.error}{kept} (log in {failed.work_dir})", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED_SITES


def _notebooks(folder: str | None) -> tuple[Path, Path]:
    """The site and overview notebooks: the package's own, or an analyst's edited copies."""
    from .pipeline.params import ParamsError
    from .resources import OVERVIEW_NOTEBOOK, OVERVIEW_NOTEBOOK_NAME, SITE_NOTEBOOK, SITE_NOTEBOOK_NAME

    if folder is None:
        return SITE_NOTEBOOK, OVERVIEW_NOTEBOOK
    paths = Path(folder) / SITE_NOTEBOOK_NAME, Path(folder) / OVERVIEW_NOTEBOOK_NAME
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ParamsError(f"--notebooks {folder}", [f"{', '.join(missing)} not found there "
                          "('ipcreport notebooks FOLDER' writes the package's notebooks to start from)"])
    return paths[0].resolve(), paths[1].resolve()


def _copy_notebooks(args: argparse.Namespace) -> int:
    import shutil

    from .resources import OVERVIEW_NOTEBOOK, SITE_NOTEBOOK

    out = Path(args.out)
    existing = [n.name for n in (SITE_NOTEBOOK, OVERVIEW_NOTEBOOK) if (out / n.name).exists()]
    if existing and not args.overwrite:
        print(f"ipcreport notebooks: {out} already holds {', '.join(existing)}; --overwrite replaces them",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    out.mkdir(parents=True, exist_ok=True)
    for notebook in (SITE_NOTEBOOK, OVERVIEW_NOTEBOOK):
        shutil.copyfile(notebook, out / notebook.name)
    print(f"Wrote the site and overview notebooks to {out}; edit them, then: ipcreport build DATASET --notebooks {out}")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from .pipeline.build import status
    plan = status(args.dataset, _params(args), work_root=args.work, engine=args.engine,
                  site_notebook=_notebooks(args.notebooks)[0])
    for job in plan.sites:
        print(f"{job.key:<12} {'stale: ' + '; '.join(job.reasons) if job.reasons else 'up to date'}")
    stale = len(plan.stale())
    print(f"{stale} of {len(plan.sites)} site(s) would be built" + (" (and the overview)." if stale else "."))
    return EXIT_OK


def _snapshot(args: argparse.Namespace) -> int:
    import pandas as pd

    from .pipeline.build import UsageError
    from .data.dataset import load_dataset
    from .data.snapshot import write_snapshot

    extract = load_dataset(args.dataset).meta.extract_date  # a dataset breaking the contract: main says so
    earlier = extract - pd.DateOffset(months=args.months_before)
    if args.months_before < 1:
        raise UsageError(f"--months-before must be at least 1, not {args.months_before}")
    write_snapshot(args.dataset, args.out, f"{earlier:%Y-%m-%d}")
    print(f"Wrote {args.out}: {args.dataset} as extracted on {earlier:%d %B %Y}")
    return EXIT_OK


def _params(args: argparse.Namespace):
    """The run's parameters, with the run name the command line gives, if any."""
    from dataclasses import replace

    from .pipeline.params import load_params

    params = load_params(args.params, args.dataset)
    return replace(params, run=args.run) if args.run else params


def _run_name(text: str) -> str:
    if not text.replace("-", "").replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"'{text}' must be letters, digits, '-' or '_' (it names a folder)")
    return text


def _run_arguments(command: argparse.ArgumentParser) -> None:
    """What `build` and `status` both need to know: the dataset, the run, where work is kept."""
    command.add_argument("dataset")
    command.add_argument("--params", help="run parameters (YAML), e.g. params/demo.yaml; without one, the "
                         "defaults, and the run (output folder) is named after the dataset folder")
    command.add_argument("--run", type=_run_name, help="the run's name (its output folder); default: the parameters' run")
    command.add_argument("--notebooks", help="a folder with your own edited site_briefing.ipynb and "
                         "national_overview.ipynb (default: the package's; see 'ipcreport notebooks')")
    command.add_argument("--work", default="work", help="working files root (default: work)")
    command.add_argument("--engine", choices=("auto", "pandas", "duckdb"), default="auto",
                         help="how the dataset is checked and split by site (auto: DuckDB above 256 MB)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ipcreport", description="Personal budgets / IPC site briefings")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a synthetic dataset with known effects")
    s.add_argument("out", help="folder to create")
    s.add_argument("--sites", type=int, default=9,
                   help="sites, 1-153 (153: every upper-tier area in England, people in proportion to population)")
    s.add_argument("--people", type=int, default=8000, help="people in all sites, budget holders and comparison")
    s.add_argument("--seed", type=int, default=2015)
    s.add_argument("--extract-date", type=date.fromisoformat, default=date(2026, 9, 30))
    s.add_argument("--admissions-rr", type=float, default=0.85, help="true emergency-admission rate ratio")
    s.add_argument("--bed-days-rr", type=float, default=0.85, help="true bed-days rate ratio")
    s.add_argument("--ascot-gain", type=float, default=0.04, help="true ASCOT gain for budget holders")
    s.add_argument("--eq5d-gain", type=float, default=0.0, help="true EQ-5D gain for budget holders")
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    s.add_argument("--format", choices=("csv", "parquet"), default="csv", help="file format of the tables")
    s.set_defaults(func=_synth)

    v = sub.add_parser("validate", help="check a dataset against the data contract; writes nothing")
    v.add_argument("dataset")
    v.add_argument("--engine", choices=("auto", "pandas", "duckdb"), default="auto",
                   help="pandas, or DuckDB over the files for national-sized data (auto: DuckDB above 256 MB)")
    v.set_defaults(func=_validate)

    b = sub.add_parser("build", help="validate, then build every site's briefing")
    _run_arguments(b)
    b.add_argument("--jobs", type=int, default=None, help="sites built at once (default: number of cores)")
    b.add_argument("--reports", default="reports", help="published output root (default: reports)")
    b.add_argument("--force", action="store_true", help="run every site again, changed or not")
    b.add_argument("--executor", choices=("local", "dask"), default="local",
                   help="local: a process pool on this machine; dask: a Dask distributed cluster")
    b.add_argument("--scheduler", help="the Dask scheduler's address, e.g. tcp://10.0.0.5:8786")
    b.set_defaults(func=_build)

    sn = sub.add_parser("snapshot", help="write a dataset as it would have been extracted some months earlier")
    sn.add_argument("dataset")
    sn.add_argument("out", help="folder to write (replaced if it exists)")
    sn.add_argument("--months-before", type=int, default=3, help="how many months earlier (default: 3, a quarter)")
    sn.set_defaults(func=_snapshot)

    nb = sub.add_parser("notebooks", help="write the package's notebooks to a folder, to edit and build with")
    nb.add_argument("out", help="folder to write site_briefing.ipynb and national_overview.ipynb into")
    nb.add_argument("--overwrite", action="store_true", help="replace notebooks already there")
    nb.set_defaults(func=_copy_notebooks)

    st = sub.add_parser("status", help="which sites a build would run again, and why; writes nothing")
    _run_arguments(st)
    st.set_defaults(func=_status)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a command. The one error path: every user mistake is a message and exit 2; exit 1
    only means a build ran and some site failed."""
    args = parser().parse_args(argv)
    from .pipeline.build import UsageError
    from .pipeline.jobs import BuildInterrupted
    from .pipeline.params import ParamsError
    from .data.validation import DatasetInvalid

    def mistake(message: str) -> int:
        print(f"ipcreport {args.command}: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT

    try:
        return args.func(args)
    except DatasetInvalid as err:
        for breach in err.breaches:
            print(breach, file=sys.stderr)
        return mistake(f"{args.dataset} breaks the data contract; nothing was written.")
    except (ParamsError, UsageError) as err:
        return mistake(str(err))
    except BuildInterrupted:
        return EXIT_INTERRUPTED
    except OSError as err:  # a folder that cannot be read or written: full, read-only, not ours
        where = err.filename or getattr(args, "dataset", "")
        return mistake(f"cannot use {where}: {err.strerror or err}. Free space or choose another folder "
                       "(--work, --reports); finished sites are kept.")


if __name__ == "__main__":
    sys.exit(main())

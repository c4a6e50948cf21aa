"""Benchmark: every briefing of a national dataset, all 153 English upper-tier areas, end to end.

    .venv/bin/python benchmarks/national_build.py [--people 5000000] [--executor local|dask|both]
        [--jobs 2] [--out /tmp/ipcreport-national-build] [--keep] [--reuse-data]

Measured in one run on this machine, each stage a child process (or, for Dask, a LocalCluster of
2 worker processes started here) whose whole process tree is sampled for memory:

1. synthesis: ``ipcreport synth --sites 153 --people N --format parquet`` (people spread over the
   areas in proportion to population: a Birmingham-sized site holds ~2% of them);
2. the build, ``ipcreport build --force``: validation and partitioning (DuckDB above 256 MB),
   every site's briefing, the overview, publishing; its stage times are read from manifest.json;
3. a rebuild with nothing changed (no ``--force``): the no-change path at 153 sites;
4. per-site time against site size (people), from the manifest, with a line fitted through it.

Peak memory is the largest sum of resident memory over the process tree seen at any sample
(every 0.2 s): sampling can miss a short spike, so it is a lower bound; the tree includes the
build's worker processes, their kernels and renderers (and, for Dask, the cluster). The targets
are printed beside the measured values. The machine is shared: say so when quoting the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGETS = {"wall_minutes": 20.0, "peak_gib": 8.0, "rebuild_seconds": 2.0}
GIB = 1024**3


class TreeMemory:
    """Samples the resident memory of a process and all its descendants; keeps the peak."""

    def __init__(self, pid: int, every: float = 0.2):
        self.root, self.every, self.peak = psutil.Process(pid), every, 0
        self.at_peak: dict[str, int] = {}
        self.started, self.peak_seconds = time.perf_counter(), 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                procs = [self.root] + self.root.children(recursive=True)
            except psutil.NoSuchProcess:
                procs = []
            sizes = []
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                    total += rss
                    sizes.append((rss, _kind(proc)))
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            if total > self.peak:  # what made up the peak: resident memory by kind of process
                self.peak, self.at_peak = total, {}
                for rss, kind in sizes:
                    self.at_peak[kind] = self.at_peak.get(kind, 0) + rss
                self.peak_seconds = time.perf_counter() - self.started
            self._stop.wait(self.every)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _kind(proc: psutil.Process) -> str:
    """A process's part in a build: kernel, renderer, worker, the build itself, or other."""
    try:
        line = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "other"
    for kind, mark in (("kernels", "ipykernel"), ("pandoc/typst", "pandoc"), ("workers", "spawn_main"),
                       ("dask", "distributed"), ("build", "ipcreport")):
        if mark in line:
            return kind
    return "other"


def run(cmd: list[str], label: str, tree_of_self: bool = False) -> dict:
    """Run a command; its wall time and the peak memory of its process tree (or of this
    process's tree, when it includes a cluster started here)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with TreeMemory(os.getpid() if tree_of_self else proc.pid) as memory:
        output, _ = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed ({proc.returncode}):\n{output[-3000:]}")
    parts = ", ".join(f"{kind} {rss / GIB:.2f}" for kind, rss in sorted(memory.at_peak.items(), key=lambda kv: -kv[1]))
    print(f"  {label}: {seconds:.1f} s, peak {memory.peak / GIB:.2f} GiB at {memory.peak_seconds:.0f} s ({parts})",
          flush=True)
    return {"seconds": round(seconds, 1), "peak_gib": round(memory.peak / GIB, 2), "peak_at_seconds": round(memory.peak_seconds),
            "peak_parts_gib": {k: round(v / GIB, 2) for k, v in memory.at_peak.items()}, "output_tail": output[-400:]}


def per_site(reports: Path, truth: dict) -> tuple[list[dict], dict]:
    manifest = json.loads(next(reports.glob("*/manifest.json")).read_text())
    rows = []
    for site in manifest["sites"]:
        code = site["key"]
        timings = site.get("timings", {})
        rows.append({"site": code, "people": truth["sites"].get(code, {}).get("people"),
                     "execute_seconds": timings.get("execute_seconds"), "render_seconds": timings.get("render_seconds")})
    return rows, manifest["timings"]


def fit(rows: list[dict]) -> tuple[float, float]:
    """Least-squares line of notebook seconds on people: (seconds at 0 people, seconds per 1,000)."""
    import numpy as np

    pts = [(r["people"], r["execute_seconds"]) for r in rows if r["people"] and r["execute_seconds"]]
    if len(pts) < 2:
        return float("nan"), float("nan")
    x, y = np.array(pts, dtype=float).T
    slope, intercept = np.polyfit(x / 1000, y, 1)
    return float(intercept), float(slope)


def build(executor: str, data: Path, out: Path, jobs: int, truth: dict) -> dict:
    work, reports = out / f"work-{executor}", out / f"reports-{executor}"
    for folder in (work, reports):
        shutil.rmtree(folder, ignore_errors=True)
    cmd = [str(BIN / "ipcreport"), "build", str(data), "--work", str(work), "--reports", str(reports),
           "--jobs", str(jobs), "--force"]
    cluster = None
    if executor == "dask":
        from distributed import LocalCluster

        # a worker holds one site at a time: one thread each, so memory is bounded by the largest site
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None)
        cmd += ["--executor", "dask", "--scheduler", cluster.scheduler_address]
    try:
        full = run(cmd, f"build ({executor}, {jobs} jobs)", tree_of_self=cluster is not None)
        rows, stages = per_site(reports, truth)  # before the rebuild replaces the manifest
        rebuild = run(cmd[:-1] if cluster is None else [c for c in cmd if c != "--force"],
                      f"no-change rebuild ({executor})", tree_of_self=cluster is not None)
    finally:
        if cluster is not None:
            cluster.close()
    return {"build": full, "rebuild": rebuild, "stages": stages, "sites": rows, "fit": fit(rows)}


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for executor, res in results["builds"].items():
        pts = [(r["people"], r["execute_seconds"]) for r in res["sites"] if r["people"] and r["execute_seconds"]]
        if pts:
            ax.scatter(*zip(*pts), s=10, label=f"{executor} build")
    ax.set_xlabel("People in the site")
    ax.set_ylabel("Notebook time (s)")
    ax.set_title(f"Per-site notebook time, {results['people']:,} people in 153 areas")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=5_000_000)
    parser.add_argument("--executor", choices=("local", "dask", "both"), default="both")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sites", type=int, default=153, help="fewer areas, only to try the benchmark out quickly")
    parser.add_argument("--out", type=Path, default=Path("/tmp/ipcreport-national-build"))
    parser.add_argument("--reuse-data", action="store_true", help="keep a dataset already in --out/data")
    parser.add_argument("--keep", action="store_true", help="keep --out afterwards")
    parser.add_argument("--chart", type=Path, help="write the per-site curve as a PNG here")
    args = parser.parse_args(argv)

    out, data = args.out.resolve(), args.out.resolve() / f"england-{args.sites}-{args.people}"
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"people": args.people, "jobs": args.jobs, "cores": os.cpu_count(), "targets": TARGETS}
    print(f"national build: {args.people:,} people, {args.sites} areas, {args.jobs} jobs, {os.cpu_count()} cores", flush=True)
    if not (args.reuse_data and (data / "truth.json").exists()):
        shutil.rmtree(data, ignore_errors=True)
        results["synth"] = run([str(BIN / "ipcreport"), "synth", str(data), "--sites", str(args.sites), "--people",
                                str(args.people), "--format", "parquet"], "synth")
    truth = json.loads((data / "truth.json").read_text())
    executors = ("local", "dask") if args.executor == "both" else (args.executor,)
    results["builds"] = {e: build(e, data, out, args.jobs, truth) for e in executors}

    print(f"\nTargets beside measured values ({args.people:,} people; shared machine, timings are noisy):")
    synth_s = results.get("synth", {}).get("seconds", 0.0)
    for executor, res in results["builds"].items():
        # the target is the build (every briefing and the overview); synthesis stands in for an
        # extract a real run is given, so it is printed beside it, not counted
        wall = res["build"]["seconds"] / 60
        peak = max(res["build"]["peak_gib"], results.get("synth", {}).get("peak_gib", 0.0))
        stages = ", ".join(f"{k.replace('_seconds', '')} {v:.0f} s" for k, v in res["stages"].items())
        print(f"  {executor}: build {wall:.1f} min (target <= {TARGETS['wall_minutes']:.0f}; synthesis "
              f"{synth_s / 60:.1f} min besides); "
              f"peak {peak:.2f} GiB (target <= {TARGETS['peak_gib']:.0f}); "
              f"no-change rebuild {res['rebuild']['seconds']:.1f} s (target <= {TARGETS['rebuild_seconds']:.0f})")
        print(f"    stages: synth {synth_s:.0f} s, {stages}")
        intercept, slope = res["fit"]
        sites = sorted((r for r in res["sites"] if r["people"]), key=lambda r: r["people"])
        print(f"    per-site notebook time ~ {intercept:.1f} s + {slope:.3f} s per 1,000 people "
              f"({len(sites)} sites, {sites[0]['people']:,} to {sites[-1]['people']:,} people)")
        shown = sites[:: max(1, len(sites) // 8)]
        for r in shown + ([sites[-1]] if sites[-1] is not shown[-1] else []):
            print(f"      {r['site']}: {r['people']:>9,} people, run {r['execute_seconds']:.1f} s, "
                  f"render {r['render_seconds'] or 0:.1f} s")
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    if args.chart:
        chart(results, args.chart)
    print(f"\nresults: {out / 'results.json'}")
    if not args.keep:
        for executor in executors:
            for name in (f"work-{executor}", f"reports-{executor}"):
                shutil.rmtree(out / name, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

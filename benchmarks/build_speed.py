"""Benchmark: `ipcreport build` against the naive way, and incremental rebuilds.

    .venv/bin/python benchmarks/build_speed.py [--sites 20] [--people 16000] [--out /tmp/ipc-bench]

(a) every site from scratch: `ipcreport build --force` (process pool, warm kernels) against the
    naive sequential loop a team would write first: the papermill command line, then a
    renderer command, site by site, then the overview the same way (given the same partitions
    and national table, so the naive loop skips validation and partitioning);
(b) a rebuild with nothing changed (target: under 2 s);
(c) a rebuild after one site's data changed (target: only that site and the overview run).

Every figure is measured in this one run on this machine and printed, with the ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from ipcreport.pipeline.params import run_name_for

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RENDER = """
import sys
from pathlib import Path
from ipcreport.pipeline.render import RenderRequest, default_renderer
notebook, out, title = sys.argv[1:4]
default_renderer().render(RenderRequest(Path(notebook), Path(out), "briefing", title,
                                        watermark="SYNTHETIC DATA: not real people"))
"""


def run(cmd: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd[:4])}... failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def naive_loop(out: Path, work: Path, sites: list[dict]) -> float:
    """papermill CLI, then a renderer process, one site after another."""
    folder = out / "naive"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    for site in sites:
        code = site["site_code"]
        executed = folder / f"{code}.ipynb"
        run([str(BIN / "papermill"), str(REPO / "notebooks" / "site_briefing.ipynb"), str(executed), "-k", "ipcreport",
             "--cwd", str(REPO / "notebooks"), "-p", "site_code", code,
             "-p", "data_path", str(work / "data" / f"site={code}"),
             "-p", "national_path", str(work / "data" / "national.csv"),
             "-p", "output_dir", str(folder / code), "--no-progress-bar"], out)
        run([sys.executable, "-c", RENDER, str(executed), str(folder / code), site["site_name"]], out)
    overview = folder / "overview.ipynb"  # the build makes the national overview too
    run([str(BIN / "papermill"), str(REPO / "notebooks" / "national_overview.ipynb"), str(overview), "-k", "ipcreport",
         "--cwd", str(REPO / "notebooks"), "-p", "metrics_dir", str(folder),
         "-p", "national_path", str(work / "data" / "national.csv"), "-p", "output_dir", str(folder / "overview"),
         "--no-progress-bar"], out)
    run([sys.executable, "-c", RENDER, str(overview), str(folder / "overview"), "National overview"], out)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--people", type=int, default=16_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ipcreport-bench"))
    args = parser.parse_args()
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    data = out / "data"
    build = [str(BIN / "ipcreport"), "build", str(data), "--reports", str(out / "reports"), "--work", str(out / "work")]

    run([str(BIN / "ipcreport"), "synth", str(data), "--sites", str(args.sites), "--people", str(args.people)], out)
    fast = run(build + ["--force"], out)
    run_name = run_name_for(data)  # a build without parameters names its run after the dataset folder
    work = out / "work" / run_name
    sites = json.loads((work / "data" / "inputs.json").read_text())["sites"]
    naive = naive_loop(out, work, sites)
    unchanged = run(build, out)

    events = pd.read_csv(data / "events.csv", dtype=str, keep_default_na=False)
    people = pd.read_csv(data / "people.csv", dtype=str, usecols=["person_id", "site_code"])
    victim = sites[len(sites) // 2]["site_code"]
    row = events.index[events["person_id"].isin(people.loc[people["site_code"] == victim, "person_id"])
                       & (events["cost"] != "")][0]
    events.loc[row, "cost"] = str(float(events.loc[row, "cost"]) + 1)
    events.to_csv(data / "events.csv", index=False)
    one_changed = run(build, out)
    manifest = json.loads((out / "reports" / run_name / "manifest.json").read_text())
    ran = [s["key"] for s in manifest["sites"] if not s["cached"]] + ([] if manifest["overview"]["cached"] else ["overview"])

    print(f"{len(sites)} sites, {args.people:,} people, {BIN.parent.name} on this machine")
    print(f"(a) ipcreport build --force: {fast:6.1f} s   naive papermill + renderer loop: {naive:6.1f} s   "
          f"ratio {naive / fast:.1f}x faster (target: at least 8x, issue 16)")
    print(f"(b) rebuild, nothing changed: {unchanged:.2f} s (target: under 2 s)")
    print(f"(c) rebuild, {victim}'s data changed: {one_changed:.1f} s; ran again: {', '.join(ran)} "
          f"(target: only {victim} and the overview)")


if __name__ == "__main__":
    main()

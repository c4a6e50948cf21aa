"""Benchmark: what one site's briefing costs as the site grows (2,000, 20,000, 100,000 people).

    .venv/bin/python benchmarks/site_curve.py [--sizes 2000 20000 100000] [--out /tmp/ipcreport-site-curve]
        [--chart docs/performance-site-curve.png]

For each size: a one-site synthetic dataset (Birmingham, Parquet), then ``ipcreport build --jobs 1
--force`` on it; printed are the notebook's time (execute_seconds in manifest.json: the kernel
running every cell), the render time, the build's wall time and the peak resident memory of the
build's whole process tree (sampled every 0.2 s: a lower bound). Targets (issue 16) are printed
beside: a 100,000-person site in <= 10 s of notebook time and <= 1.5 GiB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from national_build import BIN, run  # noqa: E402  (same process-tree memory sampling)

TARGET = {"people": 100_000, "notebook_seconds": 10.0, "peak_gib": 1.5}


def measure(people: int, out: Path) -> dict:
    data, work, reports = out / f"site-{people}", out / f"work-{people}", out / f"reports-{people}"
    for folder in (data, work, reports):
        shutil.rmtree(folder, ignore_errors=True)
    run([str(BIN / "ipcreport"), "synth", str(data), "--sites", "1", "--people", str(people), "--format", "parquet"],
        f"synth {people:,}")
    built = run([str(BIN / "ipcreport"), "build", str(data), "--work", str(work), "--reports", str(reports),
                 "--jobs", "1", "--force"], f"build {people:,}")
    manifest = json.loads(next(reports.glob("*/manifest.json")).read_text())
    timings = manifest["sites"][0]["timings"]
    return {"people": people, "notebook_seconds": timings.get("execute_seconds"),
            "render_seconds": timings.get("render_seconds"), "build_seconds": built["seconds"],
            "peak_gib": built["peak_gib"], "stages": manifest["timings"]}


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.4))
    people = [r["people"] for r in rows]
    left.plot(people, [r["notebook_seconds"] for r in rows], marker="o")
    left.axhline(TARGET["notebook_seconds"], linestyle="--", color="grey")
    left.set(xlabel="People in the site", ylabel="Notebook time (s)", title="Time")
    right.plot(people, [r["peak_gib"] for r in rows], marker="o")
    right.axhline(TARGET["peak_gib"], linestyle="--", color="grey")
    right.set(xlabel="People in the site", ylabel="Peak memory (GiB)", title="Memory")
    fig.suptitle("One site's briefing as the site grows (dashed: targets at 100,000 people)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000, 100_000])
    parser.add_argument("--out", type=Path, default=Path("/tmp/ipcreport-site-curve"))
    parser.add_argument("--chart", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = [measure(n, out) for n in args.sizes]
    print("\npeople     notebook   render   build    peak      (targets at 100,000: notebook <= 10 s, peak <= 1.5 GiB)")
    for r in rows:
        print(f"{r['people']:>8,}  {r['notebook_seconds']:>7.1f} s {r['render_seconds']:>6.1f} s "
              f"{r['build_seconds']:>6.1f} s {r['peak_gib']:>6.2f} GiB")
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    if args.chart:
        chart(rows, args.chart)
    if not args.keep:
        for r in rows:
            for name in (f"site-{r['people']}", f"work-{r['people']}", f"reports-{r['people']}"):
                shutil.rmtree(out / name, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

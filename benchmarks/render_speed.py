"""Benchmark: render time per site, the built-in renderer against Quarto.

    PATH=/path/to/quarto/bin:$PATH .venv/bin/python benchmarks/render_speed.py [--repeats 3] [--out DIR]

Makes a small synthetic dataset, executes one site's briefing with papermill (once), then
renders that executed notebook to HTML, PDF and Word with each renderer ``--repeats`` times
(Quarto: one `quarto render` call for the three formats) and prints each renderer's median
seconds per site and the ratio. Measured in this one run on this machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import papermill

from ipcreport.pipeline.jobs import KERNEL
from ipcreport.pipeline.publish import SYNTHETIC_MARK
from ipcreport.pipeline.render import PandocTypstRenderer, QuartoRenderer, RenderRequest
from ipcreport.resources import SITE_NOTEBOOK
from ipcreport.data.synth import SynthConfig, synthesise


def executed_briefing(folder: Path) -> Path:
    data = folder / "data"
    synthesise(data, SynthConfig(sites=2, people=700, seed=7))
    site = pd.read_csv(data / "sites.csv", dtype=str)["site_code"].iloc[0]
    out = folder / "executed.ipynb"
    papermill.execute_notebook(str(SITE_NOTEBOOK), str(out), kernel_name=KERNEL, progress_bar=False,
                               cwd=str(SITE_NOTEBOOK.parent), parameters={
                                   "site_code": site, "data_path": str(data), "output_dir": str(folder / "site"),
                                   "simulation_draws": 2000})
    return out


def seconds_per_site(renderer, notebook: Path, out: Path, repeats: int) -> list[float]:
    times = []
    for n in range(repeats):
        request = RenderRequest(notebook, out / f"{renderer.name.replace('+', '-')}-{n}", "briefing",
                                "Benchmark site: personal budgets briefing", watermark=SYNTHETIC_MARK)
        started = time.perf_counter()
        renderer.render(request)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="keep the rendered files here")
    args = parser.parse_args()
    if not shutil.which("quarto"):
        print("quarto is not on PATH: nothing to compare against", file=sys.stderr)
        return 2
    folder = args.out or Path(tempfile.mkdtemp(prefix="ipc-render-bench-"))
    notebook = executed_briefing(folder)
    results = {}
    for renderer in (PandocTypstRenderer(), QuartoRenderer()):
        times = seconds_per_site(renderer, notebook, folder, args.repeats)
        results[renderer.name] = statistics.median(times)
        print(f"{renderer.name:>13}: median {results[renderer.name]:.1f} s per site for html, pdf and docx "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)})")
    print(f"Quarto takes {results['quarto'] / results['pandoc+typst']:.1f} times as long as the built-in renderer")
    return 0


if __name__ == "__main__":
    sys.exit(main())

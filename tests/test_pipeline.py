"""The build pipeline at scale: incremental, resilient, interruptible, distributed.

Real papermill executions and real kernels throughout; notebooks that fail on purpose are
small notebooks written here, run by the same build code as the real one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest

from ipcreport.pipeline.build import build, status
from ipcreport.pipeline.params import RunParams, load_params
from ipcreport.data.synth import SynthConfig, synthesise

from conftest import edit_csv

pytestmark = pytest.mark.slow
QUIET = lambda message: None  # noqa: E731 - the tests read results, not progress lines


def manifest(report: Path) -> dict:
    return json.loads((report / "manifest.json").read_text())


def cached(report: Path) -> dict[str, bool]:
    m = manifest(report)
    return {s["key"]: s["cached"] for s in m["sites"]} | {"overview": m["overview"]["cached"]}


def test_unchanged_sites_are_reused_and_a_changed_site_runs_again(built, small_dataset, tmp_path):
    # On a copy of the shared build (its work folder, its reports): rebuilding the shared one
    # with a changed site would change what later tests of it (the Dask build) compare with.
    # The cache keys hold no paths, so the copy's sites are as reusable as the original's.
    import shutil

    root = tmp_path / "build"
    shutil.copytree(built[0], root, symlinks=True)
    report = root / built[1].relative_to(built[0])
    params = load_params(root / "test.yaml")
    sites = pd.read_csv(small_dataset / "sites.csv", dtype=str)["site_code"].tolist()
    lines: list[str] = []
    again = build(small_dataset, params, reports_root=root / "reports", work_root=root / "work", progress=lines.append)
    assert again.ok and cached(report) == {sites[0]: True, sites[1]: True, "overview": True}, lines

    # One event's cost changes at the second site: its data, and nothing any other site shows.
    changed = tmp_path / "changed"
    shutil.copytree(small_dataset, changed)
    people = pd.read_csv(changed / "people.csv", dtype=str)
    person = people.loc[people["site_code"] == sites[1], "person_id"].iloc[0]

    def new_cost(frame):
        row = frame.index[(frame["person_id"] == person) & (frame["cost"] != "")][0]
        frame.loc[row, "cost"] = str(float(frame.loc[row, "cost"]) + 1)
        return frame

    edit_csv(changed, "events", new_cost)
    plan = status(changed, params, work_root=root / "work", reports_root=root / "reports")
    assert {job.key: job.reasons for job in plan.sites} == {sites[0]: (), sites[1]: ("its data changed",)}
    result = build(changed, params, reports_root=root / "reports", work_root=root / "work", progress=QUIET)
    assert result.ok and cached(report) == {sites[0]: True, sites[1]: False, "overview": False}


def failing_notebook(path: Path, hang: str, die: str, raise_: str) -> Path:
    """A small site notebook that hangs, kills its kernel, or raises for the named sites."""
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("site_code = None\ndata_path = None\noutput_dir = None")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [
        parameters,
        nbformat.v4.new_code_cell(
            "import os, time\nfrom pathlib import Path\n"
            f"if site_code == {hang!r}:\n    time.sleep(600)\n"
            f"if site_code == {die!r}:\n    os.write(2, b'last words of a dying kernel')\n    os._exit(1)\n"
            f"if site_code == {raise_!r}:\n    raise ValueError('this site fails on purpose')\n"
            "Path(output_dir).mkdir(parents=True, exist_ok=True)\n"
            "(Path(output_dir) / 'metrics.json').write_text('{\"budget_total\": 1}')"),
        nbformat.v4.new_code_cell("#| output: asis\nprint(f'## Site {site_code}\\n\\nAll well.')"),
    ]
    nb.metadata["kernelspec"] = {"name": "ipcreport", "display_name": "Python (ipcreport)", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def four_sites(tmp_path_factory):
    out = tmp_path_factory.mktemp("four") / "data"
    synthesise(out, SynthConfig(sites=4, people=600, seed=3))
    return out


def test_a_hanging_a_dying_and_a_raising_site_never_stop_the_healthy_one(four_sites, tmp_path):
    codes = pd.read_csv(four_sites / "sites.csv", dtype=str)["site_code"].tolist()
    notebook = failing_notebook(tmp_path / "site.ipynb", hang=codes[0], die=codes[1], raise_=codes[2])
    params = RunParams(run="resilient", formats=("html",), cell_timeout_seconds=10)
    result = build(four_sites, params, jobs=2, reports_root=tmp_path / "reports", work_root=tmp_path / "work",
                   site_notebook=notebook, progress=QUIET)
    statuses = {s.key: s.status for s in result.sites}
    assert statuses == {codes[0]: "failed", codes[1]: "failed", codes[2]: "failed", codes[3]: "ok"}
    errors = {s.key: s.error for s in result.sites}
    assert "timed out" in errors[codes[0]].lower() or "timeout" in errors[codes[0]].lower()
    assert "dead" in errors[codes[1]].lower() or "died" in errors[codes[1]].lower()
    assert "fails on purpose" in errors[codes[2]]
    report = tmp_path / "reports" / "resilient"
    assert (report / "sites" / codes[3] / "briefing.html").exists()
    index = (report / "index.html").read_text()
    assert index.count('<tr class="failed">') == 3 and index.count('<tr class="ok">') == 1
    for code in codes[:3]:
        folder = tmp_path / "work" / "resilient" / "sites" / code
        assert (folder / "error.txt").exists() and (folder / "execution.log").exists()
        assert not (folder / "key.json").exists()  # a failure is never reused
    # what a kernel writes to stderr lands in the log of the site it was running, only there
    logs = {code: (tmp_path / "work" / "resilient" / "sites" / code / "execution.log").read_text() for code in codes}
    assert [code for code, text in logs.items() if "last words of a dying kernel" in text] == [codes[1]]
    assert not result.ok


def test_interrupted_build_keeps_finished_sites_and_carries_on(four_sites, tmp_path):
    """SIGTERM part-way through a real build: nothing published, nothing half-written, the
    finished site is kept and not executed again by the next build."""
    cmd = [sys.executable, "-m", "ipcreport.cli", "build", str(four_sites), "--jobs", "1",
           "--reports", str(tmp_path / "reports"), "--work", str(tmp_path / "work")]
    sites = tmp_path / "work" / four_sites.name / "sites"  # no parameters file: run named after the dataset
    process = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(sites.glob("*/key.json")):
        time.sleep(0.5)
    finished = [p.parent.name for p in sites.glob("*/key.json")]
    assert finished, "no site finished in time"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "interrupted" in output
    assert not (tmp_path / "reports").exists()
    kept = [p.parent.name for p in sites.glob("*/key.json")]
    assert set(finished) <= set(kept) and len(kept) < 4
    for code in kept:  # a kept site is complete
        folder = sites / code
        assert (folder / "rendered" / "briefing.pdf").stat().st_size > 0 and (folder / "metrics.json").exists()

    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    by_site = cached(tmp_path / "reports" / four_sites.name)
    assert all(by_site[code] for code in kept) and not all(by_site[c] for c in by_site if c not in kept)
    assert not list((tmp_path / "reports").rglob("*.tmp")) and not list((tmp_path / "reports").rglob(".*partial*"))


def test_a_dask_cluster_build_equals_a_local_one(built, small_dataset, tmp_path):
    from distributed import LocalCluster

    root, local_report = built
    params = load_params(root / "test.yaml")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = build(small_dataset, params, executor="dask", scheduler=cluster.scheduler_address,
                       reports_root=tmp_path / "reports", work_root=tmp_path / "work", progress=QUIET)
        kernels = kernels_of(psutil.Process())  # the cluster's workers are this process's descendants
        # the nanny's memory trimming is its worker's, not the kernels' (warm.NOT_FOR_KERNELS)
        assert kernels and all("MALLOC_TRIM_THRESHOLD_" not in k.environ() for k in kernels)
    assert result.ok and not any(s.cached for s in result.sites)
    dask_report = tmp_path / "reports" / "test"
    files = lambda report: sorted(str(p.relative_to(report)) for p in report.rglob("*") if p.is_file())  # noqa: E731
    assert files(dask_report) == files(local_report)
    volatile = {"package_version", "notes"}
    for site in manifest(local_report)["sites"]:
        local = json.loads((root / "work" / "test" / site["metrics"]).read_text())
        remote = json.loads((tmp_path / "work" / "test" / "sites" / site["key"] / "metrics.json").read_text())
        assert {k: v for k, v in local.items() if k not in volatile} == {k: v for k, v in remote.items() if k not in volatile}
    for csv in dask_report.rglob("*.csv"):
        assert csv.read_bytes() == (local_report / csv.relative_to(dask_report)).read_bytes()


def test_workers_start_their_kernels_before_any_site_and_stop_with_them():
    """The pool starts a kernel per worker as soon as it starts (a build starts it before
    validating the data); leaving on an error stops every worker and kernel."""
    from ipcreport.pipeline.jobs import LocalExecutor

    with pytest.raises(RuntimeError, match="validation failed"), LocalExecutor(2) as executor:
        executor.start()
        workers = [psutil.Process(pid) for pid in executor.pool._processes]
        deadline = time.time() + 120
        while time.time() < deadline and not all(kernels_of(w) for w in workers):
            time.sleep(0.5)
        started = [k for w in workers for k in kernels_of(w)]
        assert len(workers) == 2 and len(started) == 2, "each worker starts one kernel before any job"
        # one BLAS thread each, as Dask's workers have: the same figures whichever executor ran them
        assert all(k.environ().get("OPENBLAS_NUM_THREADS") == "1" for k in started)
        raise RuntimeError("validation failed")  # as prepare raises DatasetInvalid
    gone, alive = psutil.wait_procs(workers + started, timeout=15)
    assert not alive


def kernels_of(worker: psutil.Process) -> list[psutil.Process]:
    return [p for p in worker.children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]


def test_a_warm_kernel_carries_nothing_from_one_site_to_the_next(built, small_dataset, tmp_path):
    """Site B run straight after site A in the same warm kernel gives exactly what the build gave.
    The kernel is started by the first job, as on a Dask worker (no prewarm): it is warmed up
    all the same, its imported modules frozen out of the garbage collector, and its memory is
    reused, not asked for afresh (ipcreport sets that on import)."""
    from dataclasses import replace

    from ipcreport.pipeline import warm
    from ipcreport.pipeline.build import plan_sites
    from ipcreport.pipeline.jobs import run_notebook_job

    root, report = built
    params = load_params(root / "test.yaml")
    inputs = json.loads((root / "work" / "test" / "data" / "inputs.json").read_text())
    first, second = plan_sites(inputs, params, tmp_path / "work").sites
    warm.discard("ipcreport")
    try:
        for job in (first, second):  # same process, so the same warm kernel
            moved = replace(job, work_dir=str(tmp_path / job.key),
                            parameters={**job.parameters, "output_dir": str(tmp_path / f".{job.key}.partial")})
            assert run_notebook_job(moved).ok
        kernel = warm._kernel("ipcreport")
        assert int(_kernel_prints(kernel, "import gc; print(gc.get_freeze_count())")) > 100_000
        # memory reused, not asked for afresh (ipcreport._reuse_memory): the C library's allocator,
        # not Arrow's, and no huge pages for numpy's arrays (setting False returns the old value)
        assert _kernel_prints(kernel, "import pyarrow; print(pyarrow.default_memory_pool().backend_name)") == "system"
        assert _kernel_prints(kernel, "import numpy; print(numpy._core.multiarray._set_madvise_hugepage(False))") == "False"
    finally:
        warm.discard("ipcreport")
    volatile = {"package_version", "notes"}
    again = json.loads((tmp_path / second.key / "metrics.json").read_text())
    before = json.loads((root / "work" / "test" / "sites" / second.key / "metrics.json").read_text())
    assert {k: v for k, v in again.items() if k not in volatile} == {k: v for k, v in before.items() if k not in volatile}
    downloads = sorted(p.name for p in (tmp_path / second.key / "downloads").iterdir())
    assert downloads == sorted(p.name for p in (report / "sites" / second.key / "downloads").iterdir() if p.name != "index.html")
    for name in downloads:
        if name.endswith(".csv"):
            assert (tmp_path / second.key / "downloads" / name).read_bytes() == \
                (report / "sites" / second.key / "downloads" / name).read_bytes()


def _kernel_prints(kernel, code: str) -> str:
    """What ``code`` prints when run in the kernel."""
    from nbclient.util import run_sync

    client, printed = kernel.client(), []
    client.start_channels()
    try:
        run_sync(client.wait_for_ready)(timeout=60)
        run_sync(client.execute_interactive)(code, timeout=60,
                                             output_hook=lambda msg: printed.append(msg["content"].get("text", "")))
    finally:
        client.stop_channels()
    return "".join(printed).strip()


def test_the_duckdb_engine_gives_the_same_build_inputs(small_dataset, tmp_path):
    """National-scale datasets go through DuckDB: the same partitions (hashes), national table and
    comparisons as the pandas path, and an invalid dataset still writes nothing."""
    from ipcreport.pipeline.build import prepare
    from ipcreport.data.validation import DatasetInvalid

    from test_contract import corrupt_three_tables

    params = RunParams(run="engines")
    by_pandas = prepare(small_dataset, params, tmp_path / "pandas", engine="pandas")
    by_duckdb = prepare(small_dataset, params, tmp_path / "duckdb", engine="duckdb")
    same = ("partitions", "national_sha256", "fingerprints", "sites", "warnings", "dataset_sha256")
    strip = lambda inputs: {k: ({c: p["sha256"] for c, p in v.items()} if k == "partitions" else v)  # noqa: E731
                            for k, v in inputs.items() if k in same}
    assert strip(by_duckdb) == strip(by_pandas)
    # the overview's national model from the rows the build kept = the same model fitted on the
    # dataset folder one site at a time (an analyst's run)
    from ipcreport.report.overview import national_model
    from_rows, by_hand = national_model(small_dataset, rows_path=by_duckdb["national_model_rows"]), national_model(small_dataset)
    assert from_rows.available and (from_rows.value, from_rows.se, from_rows.n) == (
        pytest.approx(by_hand.value, rel=1e-12), pytest.approx(by_hand.se, rel=1e-12), by_hand.n)
    bad = tmp_path / "bad"
    import shutil
    shutil.copytree(small_dataset, bad)
    corrupt_three_tables(bad)
    with pytest.raises(DatasetInvalid):
        prepare(bad, params, tmp_path / "bad-work", engine="duckdb")
    assert not (tmp_path / "bad-work").exists()


def test_unchanged_files_keep_their_hash_and_a_touched_file_is_hashed_again(dataset_copy, tmp_path, monkeypatch):
    """The dataset's bytes are hashed again only when a file's size or modification time moved
    (a national dataset takes seconds to hash); a file edited in place is always seen."""
    import os

    from ipcreport.pipeline import build as B

    params = RunParams(run="stamps")
    first = B.prepare(dataset_copy, params, tmp_path)
    hashed = []
    real = B.sha256_files
    monkeypatch.setattr(B, "sha256_files", lambda files: hashed.append(len(files)) or real(files))
    assert B.prepare(dataset_copy, params, tmp_path) == first and hashed == []
    events = dataset_copy / "events.csv"
    stat = events.stat()
    os.utime(events, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # the same bytes, touched
    assert B.prepare(dataset_copy, params, tmp_path)["dataset_sha256"] == first["dataset_sha256"] and hashed
    edit_csv(dataset_copy, "events", lambda f: f.iloc[:-1])
    assert B.prepare(dataset_copy, params, tmp_path)["dataset_sha256"] != first["dataset_sha256"]

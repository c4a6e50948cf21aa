"""Nothing lost when the machine misbehaves: a report published onto another file system, two
builds of one run at once, the build killed with SIGKILL, a site that fails after it built.

Real builds with real kernels, of small notebooks written here (the real site notebook's
behaviour is covered elsewhere); what is tested is the build's handling of the machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest

from ipcreport.pipeline.build import build
from ipcreport.pipeline.params import RunParams

from conftest import REPO

pytestmark = pytest.mark.slow
QUIET = lambda message: None  # noqa: E731


@contextmanager
def mounted(folder: Path, options: str):
    """A fresh tmpfs at ``folder`` mounted with ``options`` (yields None where mounting is not
    allowed: not root, or no mount command)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def site_notebook(path: Path, behaviour: dict[str, str]) -> Path:
    """A small site notebook: per site code, 'raise' fails, 'sleep:N' takes N seconds."""
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("site_code = None\noutput_dir = None")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [
        parameters,
        nbformat.v4.new_markdown_cell("## Money"),
        nbformat.v4.new_code_cell(textwrap.dedent(f"""\
            import time
            from pathlib import Path
            action = {behaviour!r}.get(site_code, "")
            if action == "raise":
                raise ValueError("budgets do not add up at /srv/secret/ipc/data.csv")
            if action.startswith("sleep:"):
                time.sleep(float(action[6:]))
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            (Path(output_dir) / "metrics.json").write_text('{{"budget_total": 100}}')""")),
        nbformat.v4.new_code_cell(f"#| output: asis\nprint(f'Site {{site_code}}: version {len(behaviour)}.')"),
    ]
    nb.metadata["kernelspec"] = {"name": "ipcreport", "display_name": "Python (ipcreport)", "language": "python"}
    nbformat.write(nb, path)
    return path


def codes(dataset: Path) -> list[str]:
    return pd.read_csv(dataset / "sites.csv", dtype=str)["site_code"].tolist()


PARAMS = RunParams(run="faults", formats=("html",), cell_timeout_seconds=60)


def test_a_site_that_fails_keeps_its_last_good_briefing_published_and_marked_stale(small_dataset, tmp_path):
    first, second = codes(small_dataset)
    kwargs = dict(jobs=2, reports_root=tmp_path / "reports", work_root=tmp_path / "work", progress=QUIET)
    good = build(small_dataset, PARAMS, site_notebook=site_notebook(tmp_path / "a.ipynb", {}), **kwargs)
    assert all(s.ok for s in good.sites), [s.error for s in good.sites]  # (the real overview needs real metrics)
    briefing = tmp_path / "reports" / "faults" / "sites" / first / "briefing.html"
    before = briefing.read_text()

    failing = site_notebook(tmp_path / "b.ipynb", {first: "raise", second: ""})
    result = build(small_dataset, PARAMS, site_notebook=failing, **kwargs)
    failed = {s.key: s for s in result.sites}[first]
    assert not result.ok and failed.status == "failed" and failed.last_good_dir
    assert failed.error == ("ValueError: budgets do not add up at data.csv (in section 'Money')")  # no path
    assert briefing.read_text() == before, "the last good briefing stays published"
    assert "version 2" in (tmp_path / "reports" / "faults" / "sites" / second / "briefing.html").read_text()
    index = (tmp_path / "reports" / "faults" / "index.html").read_text()
    assert "Stale: this run failed (ValueError: budgets do not add up at data.csv (in section &#x27;Money&#x27;))" \
        in index and f"sites/{first}/briefing.html" in index
    assert "/srv/secret" not in index and str(tmp_path) not in index and "Traceback" not in index
    manifest = json.loads((tmp_path / "reports" / "faults" / "manifest.json").read_text())
    assert str(tmp_path) not in json.dumps(manifest), "no machine path in the published manifest"
    work = tmp_path / "work" / "faults" / "sites"
    assert (work / first / "key.json").exists(), "the last good work folder is kept"
    assert "budgets do not add up" in (work / f".{first}.failed" / "error.txt").read_text()


def test_a_report_published_onto_another_file_system(small_dataset, tmp_path):
    with mounted(tmp_path / "other", "size=256m") as other:
        if other is None:
            if os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
                pytest.skip("no second file system: cannot mount a tmpfs (not root) and /dev/shm is the same one")
            other = Path("/dev/shm") / f"ipcreport-test-{os.getpid()}"
        assert os.stat(other).st_dev != os.stat(tmp_path).st_dev if other.exists() else True
        notebook = site_notebook(tmp_path / "a.ipynb", {})
        result = build(small_dataset, PARAMS, jobs=2, reports_root=other / "reports", work_root=tmp_path / "work",
                       site_notebook=notebook, progress=QUIET)
        report = other / "reports" / "faults"
        assert all(s.ok for s in result.sites) and (report / "index.html").exists()
        for code in codes(small_dataset):
            assert "version 0" in (report / "sites" / code / "briefing.html").read_text()
        # the run's folder and the history of headline figures every build adds to
        assert sorted(p.name for p in (other / "reports").iterdir()) == ["faults", "history.parquet"], \
            "no temporary folder left"
        assert not (tmp_path / "work" / "faults" / "publish").exists()


def _build_script(dataset: Path, tmp_path: Path, notebook: Path) -> list[str]:
    code = textwrap.dedent(f"""\
        import sys
        from pathlib import Path
        from ipcreport.pipeline.build import build
        from ipcreport.pipeline.params import RunParams
        result = build(Path({str(dataset)!r}), RunParams(run="faults", formats=("html",)), jobs=1,
                       reports_root=Path({str(tmp_path / 'reports')!r}), work_root=Path({str(tmp_path / 'work')!r}),
                       site_notebook=Path({str(notebook)!r}), force=True)
        sys.exit(0 if all(s.ok for s in result.sites) else 1)""")
    return [sys.executable, "-c", code]


def test_two_builds_of_one_run_at_once_take_turns(small_dataset, tmp_path):
    notebook = site_notebook(tmp_path / "slow.ipynb", {code: "sleep:3" for code in codes(small_dataset)})
    first = subprocess.Popen(_build_script(small_dataset, tmp_path, notebook), cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(2)  # the first holds the run's lock
    second = subprocess.run(_build_script(small_dataset, tmp_path, notebook), cwd=REPO, text=True,
                            capture_output=True, timeout=600)
    out_first = first.communicate(timeout=600)[0]
    assert first.returncode == 0 and second.returncode == 0, out_first + second.stdout + second.stderr
    assert "another build of run 'faults' is running" in second.stdout and "waiting" in second.stdout
    report = tmp_path / "reports" / "faults"
    manifest = json.loads((report / "manifest.json").read_text())
    assert {s["key"] for s in manifest["sites"]} == set(codes(small_dataset))
    for code in codes(small_dataset):
        assert (report / "sites" / code / "briefing.html").exists()
    assert not [p for p in (tmp_path / "reports").iterdir() if p.name not in ("faults", "history.parquet")]


def test_killing_the_build_with_sigkill_leaves_no_worker_or_kernel(small_dataset, tmp_path):
    notebook = site_notebook(tmp_path / "slow.ipynb", {code: "sleep:20" for code in codes(small_dataset)})
    build_process = subprocess.Popen(_build_script(small_dataset, tmp_path, notebook), cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(build_process.pid)
    deadline = time.time() + 120
    family: list[psutil.Process] = []
    while time.time() < deadline:
        family = parent.children(recursive=True)
        if any("ipykernel" in " ".join(p.cmdline()) for p in family if p.is_running()) and \
                list((tmp_path / "work" / "faults" / "sites").glob(".*.partial")):
            break
        time.sleep(0.5)
    assert any("ipykernel" in " ".join(p.cmdline()) for p in family), "a kernel was running a site"
    os.kill(build_process.pid, signal.SIGKILL)
    build_process.wait()
    gone, alive = psutil.wait_procs(family, timeout=15)
    assert not alive, [" ".join(p.cmdline())[:120] for p in alive]
    time.sleep(25)  # longer than the site takes: an orphan would have moved it into place by now
    assert not list((tmp_path / "work" / "faults" / "sites").glob("*/key.json"))
    assert not (tmp_path / "reports").exists()

"""The package as a user installs it: a wheel built from this checkout, installed into a fresh
virtual environment outside the repository, writes a dataset and builds every briefing there,
from the notebooks, templates and reference data inside the wheel, and from an analyst's own
edited notebooks when asked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest

from conftest import REPO, run_cli
from ipcreport.pipeline.params import load_params, run_name_for

MARKER = "ANALYST-EDITED-NOTEBOOK-5521"


def test_run_is_named_after_the_dataset_without_a_parameters_file(tmp_path):
    assert run_name_for("data/north-borough") == "north-borough"
    assert run_name_for(Path("x") / "North Borough (Q2)") == "North-Borough-Q2"
    assert load_params(None, "data/demo").run == "demo"
    assert load_params(None, tmp_path / "Q2 2026").run == "Q2-2026"
    params = tmp_path / "mine.yaml"
    params.write_text("risk: {seed: 3}\n")
    assert load_params(params, "data/demo").run == "mine"  # a parameters file names its own run


def test_missing_own_notebooks_are_bad_input(small_dataset, tmp_path):
    (tmp_path / "mine").mkdir()
    done = run_cli("status", small_dataset, "--notebooks", tmp_path / "mine", cwd=tmp_path)
    assert done.returncode == 2
    assert "site_briefing.ipynb, national_overview.ipynb not found" in done.stderr
    assert not (tmp_path / "work").exists()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the checkout: setuptools writes build/ and *.egg-info beside the source,
    # and two test workers building in the checkout at once collide there.
    source = out / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "build", "*.egg-info", "reports", "work", "test-artifacts", "demo*"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-cache-dir",
                           "-w", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return next(out.glob("ipcreport-*.whl")), done.stdout + done.stderr


def test_wheel_carries_notebooks_templates_and_reference_data(wheel):
    names = set(zipfile.ZipFile(wheel[0]).namelist())
    expected = {"ipcreport/notebooks/site_briefing.ipynb", "ipcreport/notebooks/national_overview.ipynb",
                "ipcreport/reference/areas.csv", "ipcreport/templates/briefing.typst",
                "ipcreport/templates/ipcreport.css", "ipcreport/templates/quarto/typst-template.typ",
                "ipcreport/templates/quarto/ipcreport-quarto.lua", "ipcreport/analysis/peers.py"}
    assert expected <= names, sorted(expected - names)


def test_building_the_wheel_prints_no_deprecation_warning(wheel):
    assert "deprecat" not in wheel[1].lower(), wheel[1]


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel installed. Its dependencies come from this
    environment's site-packages through a path file (installing them again would take minutes);
    a plain path line runs no .pth file there, so this checkout's editable ipcreport is not
    importable in it: only the wheel's is."""
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "ipcreport-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-cache-dir", str(wheel[0])],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deprecat" not in (done.stdout + done.stderr).lower()
    subprocess.run([str(python), "-m", "ipykernel", "install", "--sys-prefix", "--name", "ipcreport"],
                   capture_output=True, check=True, timeout=300)
    return venv


def in_venv(venv: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "JUPYTER_PATH": str(venv / "share" / "jupyter"), "IPCREPORT_RENDERER": "builtin",
           "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(venv / "bin" / args[0]), *map(str, args[1:])], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_installed_wheel_builds_every_briefing_outside_the_repository(fresh_venv, tmp_path):
    where = in_venv(fresh_venv, "python", "-c", "import ipcreport.resources as r; print(r.NOTEBOOKS)", cwd=tmp_path)
    assert where.returncode == 0 and where.stdout.strip().startswith(str(fresh_venv)), where.stdout + where.stderr

    done = in_venv(fresh_venv, "ipcreport", "synth", "north-borough", "--sites", 2, "--people", 700, "--seed", 7,
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = in_venv(fresh_venv, "ipcreport", "notebooks", "mine", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    edited = nbformat.read(tmp_path / "mine" / "site_briefing.ipynb", as_version=4)
    edited.cells.append(nbformat.v4.new_markdown_cell(f"## Local notes\n\n{MARKER}"))
    nbformat.write(edited, tmp_path / "mine" / "site_briefing.ipynb")

    done = in_venv(fresh_venv, "ipcreport", "build", "north-borough", "--jobs", 2, "--notebooks", "mine",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = tmp_path / "reports" / "north-borough"  # named after the dataset: no parameters file
    briefings = sorted(report.glob("sites/*/briefing.html"))
    assert len(briefings) == 2 and (report / "overview" / "overview.html").exists()
    for html in briefings:
        assert MARKER in html.read_text(encoding="utf-8")
        assert all(html.with_suffix(s).stat().st_size > 10_000 for s in (".pdf", ".docx"))
    assert not (tmp_path / "reports" / "demo").exists()

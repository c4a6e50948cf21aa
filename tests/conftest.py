"""Shared fixtures: small synthetic datasets made once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ipcreport.data.synth import SynthConfig, synthesise

REPO = Path(__file__).resolve().parents[1]
# Builds in tests use the built-in renderer unless a test asks for Quarto (the renderer tests
# and the browser and publication tests do, where it is on PATH): same results, and quick.
os.environ.setdefault("IPCREPORT_RENDERER", "builtin")
ARTIFACTS = REPO / "test-artifacts"

# Small enough to be quick, large enough that every section has numbers (sites get >= 40 people).
SMALL = SynthConfig(sites=2, people=700, seed=7)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "small"
    synthesise(out, SMALL)
    return out


@pytest.fixture
def dataset_copy(small_dataset, tmp_path) -> Path:
    """A private copy of the small dataset that a test may corrupt."""
    target = tmp_path / "dataset"
    shutil.copytree(small_dataset, target)
    return target


def edit_csv(folder: Path, table: str, edit) -> pd.DataFrame:
    """Rewrite ``table``.csv with the frame ``edit(frame)`` returns (all cells as text)."""
    path = folder / f"{table}.csv"
    frame = edit(pd.read_csv(path, dtype=str, keep_default_na=False))
    frame.to_csv(path, index=False)
    return frame


def run_cli(*args, cwd, renderer: str = "builtin"):
    """The ipcreport command as a user runs it, in a fresh process, with the given renderer."""
    env = {**os.environ, "IPCREPORT_RENDERER": renderer}
    return subprocess.run([sys.executable, "-m", "ipcreport.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=900, env=env)


# Both renderers, where Quarto is on PATH (.ci/run installs the kit in ../shared/quarto).
RENDERERS = ("builtin", "quarto")
NO_QUARTO = "quarto is not on PATH (install it, or run .ci/run beside ../shared/quarto)"


def need_renderer(renderer: str) -> None:
    if renderer == "quarto" and not shutil.which("quarto"):
        pytest.skip(NO_QUARTO)


def build_small(dataset: Path, root: Path, renderer: str) -> Path:
    """A real build of ``dataset`` (all formats) with one renderer; returns the report folder."""
    params = root / "test.yaml"
    params.write_text("run: test\nrisk: {simulation_draws: 2000}\n")
    done = run_cli("build", dataset, "--params", params, "--jobs", 2, "--reports", root / "reports",
                   "--work", root / "work", cwd=root, renderer=renderer)
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "reports" / "test"


# Each renderer's build is made once per test process: pytest may tear a parametrized
# session fixture down and set it up again when tests of the two renderers interleave.
_BUILDS: dict[str, tuple[Path, Path]] = {}


def build_once(renderer: str, dataset: Path, tmp_path_factory) -> tuple[Path, Path]:
    if renderer not in _BUILDS:
        root = tmp_path_factory.mktemp(f"build-{renderer}")
        _BUILDS[renderer] = root, build_small(dataset, root, renderer)
    return _BUILDS[renderer]


@pytest.fixture(scope="session")
def built(small_dataset, tmp_path_factory):
    """One real build of the small dataset (all formats, built-in renderer), shared by the build
    and browser tests."""
    return build_once("builtin", small_dataset, tmp_path_factory)


@pytest.fixture(scope="session", params=RENDERERS)
def built_by(request, small_dataset, tmp_path_factory):
    """The same build by each renderer: (renderer, root, report folder)."""
    need_renderer(request.param)
    return (request.param, *build_once(request.param, small_dataset, tmp_path_factory))

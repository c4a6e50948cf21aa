"""Shared fixtures: small synthetic datasets made once per test session; which worker runs what."""

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


# ---------------------------------------------------------------------------------------------
# Which xdist worker runs what (make test: -n 2 --dist loadgroup)
#
# Each worker is its own process with its own session and module fixtures: two workers that
# both run tests of one expensive fixture would each make it (a build of a minute or more).
# So every test that uses one of these fixtures joins that fixture's group, and a group runs on
# one worker; everything else is spread over both. Groups are keyed like the fixtures' caches:
# a parametrized fixture has a group per parameter (the Quarto build and the built-in build are
# made by different workers at once). A test using two of them joins the two groups into one.
SHARED_FIXTURES = {
    "built": "build-builtin",  # conftest: the built-in renderer's build
    "built_by": "build-{}",  # conftest: that build, and Quarto's
    "small_cohort_build": "cohort-{}",  # test_publication: a build per renderer
    "hostile_build": "hostile",  # test_hostile
    "site_of_one": "site-of-one",  # test_disclosure_attack
    "site_run": "site-notebook",  # test_notebooks: the site notebook executed once
    "wheel": "wheel",  # test_packaging: the wheel (and the fresh venv made from it)
    "study": "validity",  # test_validity: the simulation study
    "eight_sites": "eight-sites",  # test_compare
    "rendered": "render",  # test_render: a notebook executed and rendered once
}


def shared_groups(item) -> set[str]:
    """The groups of the shared fixtures ``item`` uses (directly or through other fixtures),
    and of any xdist_group mark it carries."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    found = {template.format(params.get(name)) for name, template in SHARED_FIXTURES.items()
             if name in getattr(item, "fixturenames", ())}
    found |= {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
              for mark in item.iter_markers("xdist_group")}
    return found


def _group_of_each(items) -> dict:
    """Each grouped item's group: groups that share a test are merged (union-find)."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    groups = {item: shared_groups(item) for item in items}
    for names in groups.values():
        first, *rest = sorted(names) or [None]
        for name in rest:
            parent[root(name)] = root(first)
    return {item: root(min(names)) for item, names in groups.items() if names}


def _with_group(item, group: str) -> None:
    """What pytest-xdist does for --dist loadgroup: the group after an '@' in the test's id.
    xdist 3.8 writes it into ``item._nodeid``, which pytest 9.2 no longer reads (the id is
    ``item._id``), so without this every group was silently ignored and every worker made its
    own copy of every shared build."""
    nodeid = item.nodeid.split("@")[0] + "@" + group
    if hasattr(item, "_id"):  # pytest >= 9.2
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(nodeid)
    else:
        item._nodeid = nodeid


@pytest.hookimpl(trylast=True)  # after xdist's own (ineffective) renaming
def pytest_collection_modifyitems(config, items):
    if not getattr(config.option, "loadgroup", False):  # set on xdist workers for --dist loadgroup
        return
    for item, group in _group_of_each(items).items():
        _with_group(item, group)
        assert item.nodeid.endswith("@" + group), f"could not put {item.nodeid} in group {group}"

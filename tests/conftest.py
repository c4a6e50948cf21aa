"""Shared fixtures: small synthetic datasets made once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from ipcreport.synth import SynthConfig, synthesise

REPO = Path(__file__).resolve().parents[1]
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

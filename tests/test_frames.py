"""The shared pandas helpers, against pandas itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ipcreport.data.frames import isin


@pytest.mark.parametrize("allowed", [
    pd.Series(["b", None], dtype="str"),  # missing matches missing, as in pandas
    pd.Series(["b", "zz"], dtype=object),
    pd.Index(["c"]),
    pd.Series([], dtype="str"),
    pd.Series([1, "a"], dtype=object),  # not all text: pandas decides
])
def test_isin_answers_as_pandas_does(allowed):
    column = pd.Series(["a", "b", None, "c", "b"], dtype="str", index=[10, 11, 12, 13, 14])
    assert isin(column, allowed).equals(column.isin(allowed))


def test_isin_on_numbers_is_pandas_isin():
    column = pd.Series([1, 2, 3, np.nan])
    assert isin(column, pd.Series([2.0, np.nan])).equals(column.isin([2.0, np.nan]))


def test_isin_over_a_nation_of_ids():
    """The case it exists for: 400,000 rows against 16,000 people, same answer as pandas."""
    rng = np.random.default_rng(1)
    people = pd.Series([f"P{i:07d}" for i in range(16_000)], dtype="str")
    rows = pd.Series([f"P{i:07d}" for i in rng.integers(0, 20_000, 400_000)], dtype="str")
    mine = people.iloc[:1_500]
    assert isin(rows, mine).equals(rows.isin(mine))
    assert isin(rows, people).sum() == (rows.str[1:].astype(int) < 16_000).sum()  # IDs under 16,000 exist

"""Small pandas helpers the rest of the package shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def isin(column: pd.Series, allowed: pd.Series | pd.Index) -> pd.Series:
    """``column.isin(allowed)`` for text keys such as person_id, computed by Arrow.

    pandas 3 stores text in Arrow but its ``isin`` first turns every allowed value into a Python
    object, one at a time: testing a site's spend rows against all its people's IDs took seconds
    per site. Arrow's own ``is_in`` does the same test in C (missing matches missing, as in pandas).
    Other dtypes go to pandas as before.
    """
    if not (pd.api.types.is_string_dtype(column) and pd.api.types.is_string_dtype(allowed)):
        return column.isin(allowed)
    try:
        found = pc.is_in(pa.array(column), value_set=pa.array(allowed))
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # object columns holding more than text
        return column.isin(allowed)
    return pd.Series(found.to_numpy(zero_copy_only=False), index=column.index, dtype=bool)


def positions(column: pd.Series, keys: pd.Series | pd.Index) -> np.ndarray:
    """Where each value of ``column`` is in ``keys`` (unique, e.g. people's IDs), -1 where it is
    not: the row join of a merge or ``map`` on person_id, computed by Arrow. pandas turns Arrow
    text into Python objects before joining on it (a site's spend rows onto its people took
    seconds); Arrow's ``index_in`` hashes it in C. Other dtypes go to pandas' indexer."""
    if pd.api.types.is_string_dtype(column) and pd.api.types.is_string_dtype(keys):
        try:
            found = pc.index_in(pa.array(column), value_set=pa.array(keys))
            return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            pass  # object columns holding more than text
    return pd.Index(keys).get_indexer(column)

"""Small pandas helpers the rest of the package shares."""

from __future__ import annotations

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

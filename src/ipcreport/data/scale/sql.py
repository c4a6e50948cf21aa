"""Contract columns in DuckDB SQL: quoting, the types DuckDB reports, and typing one column
from text or a native type the way the pandas reader does (typed value, unparsable flag, raw text)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from .. import contract as C


DEFAULT_MEMORY_LIMIT = "4GB"
DEFAULT_THREADS = 2
# A CSV/Parquet file DuckDB refuses is re-read with pandas (for pandas' exact message, or
# because pandas' parser is more lenient) only up to this size; bigger ones are reported with
# DuckDB's message instead of exhausting memory.
PANDAS_FALLBACK_BYTES = 256 * 1024**2
# Rows per Arrow batch streamed out of DuckDB while partitioning, and rows per Parquet row group.
BATCH_ROWS = 1_000_000
ROW_GROUP_ROWS = 1024 * 1024  # pyarrow's default maximum, which pandas' to_parquet uses

# What str.strip() removes (pandas' .str.strip() strips the same set).
_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
# Dates pandas can hold in datetime64[ns]: the pandas validator crashes (OutOfBoundsDatetime) on
# dates outside; here they are unparsable cells.
_MIN_DATE, _MAX_DATE = "1677-09-22", "2262-04-11"
_UNIQUE_RULE = "must be unique (duplicated)"  # check_single_table's wording for pandera's uniqueness
_MISSING_COLUMN_RULE = "required column is missing from the header"
_EXTRA_COLUMNS_RULE = "extra column(s) are kept but ignored"
_REQUIRED_RULE = "required: value is missing"
_PARTITION_HASH_VERSION = "ipcreport-partition-sha256/1"  # change it when the hashed form changes

_NUMERIC_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE",
}  # fmt: skip
_FLOAT_TYPES = {"FLOAT", "DOUBLE"}
# contract kind -> the DuckDB type that exports to the Arrow type pandas' partition files hold
_DUCK_TYPES = {"text": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE", "date": "TIMESTAMP_NS"}


def _q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def _lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _in_list(values) -> str:
    return ", ".join(_lit(v) for v in values)


# ---------------------------------------------------------------------------------------------
# typing one column: (typed value, unparsable flag, raw value of unparsable cells)


def _category(duck_type: str) -> str:
    t = duck_type.upper()
    if t == "VARCHAR":
        return "text"
    if t == "BOOLEAN":
        return "bool"
    if t in _NUMERIC_TYPES or t.startswith("DECIMAL"):
        return "numeric"
    if t == "DATE":
        return "date"
    if "TIME ZONE" in t or t.startswith("TIMESTAMPTZ"):
        return "timestamptz"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    return "other"


def _text_of(ref: str, duck_type: str) -> str:
    """The value as text, as pandas' ``.astype("string")`` gives it."""
    cat, upper = _category(duck_type), duck_type.upper()
    if cat == "text":
        return ref
    if cat == "bool":
        return f"(CASE WHEN {ref} IS NULL THEN NULL WHEN {ref} THEN 'True' ELSE 'False' END)"
    if upper in _FLOAT_TYPES:
        return f"(CASE WHEN isnan({ref}) THEN NULL ELSE CAST({ref} AS VARCHAR) END)"
    return f"CAST({ref} AS VARCHAR)"


def _stripped(text: str) -> str:
    """``text`` stripped of whitespace as str.strip() does, empty as NULL. Trimming a set of
    characters is slow in DuckDB (~1 us a cell), so only values that start or end with a
    character outside 33-132 (every whitespace character is) take that path."""
    slow = f"nullif(trim({text}, {_lit(_WHITESPACE)}), '')"
    return (f"(CASE WHEN unicode({text}) BETWEEN 33 AND 132 AND unicode(reverse({text})) BETWEEN 33 AND 132 "
            f"THEN {text} ELSE {slow} END)")


def _column_stages(col: C.Column, ref: str, duck_type: str, tz: str | None = None) -> list[list[tuple[str, str]]]:
    """SQL for one contract column read from ``ref`` of DuckDB type ``duck_type``, as four
    stages of (name, expression), each stage reading the names of the one before.

    The last stage gives the typed value (named after the column) and, for non-text columns,
    ``<col>__bad`` (the cell is unparsable) and ``<col>__raw`` (its raw value). It mirrors
    :func:`ipcreport.data.validation.parse_column`: text is stripped (empty = missing); numbers are
    what pandas.to_numeric accepts; integers must be whole; dates are ISO ``YYYY-MM-DD`` text or
    native dates/timestamps (time zones dropped to wall time).
    """
    n = col.name
    src, s, v, bad = (_q(f"{n}__{part}") for part in ("src", "s", "v", "bad"))
    cat = _category(duck_type)
    stripped = _stripped(_text_of(ref, duck_type))  # NULL = missing
    if col.kind == "text":
        return [[(f"{n}__s", stripped)], [], [], [(n, s)]]
    stage1 = [(f"{n}__src", ref), (f"{n}__s", stripped)]
    if col.kind in ("integer", "number"):
        if cat == "numeric":
            value = f"(CASE WHEN isnan(CAST({src} AS DOUBLE)) THEN NULL ELSE CAST({src} AS DOUBLE) END)"
            flag = f"isinf({v})"  # NULL and NaN are missing values; infinity is no amount
        else:
            # pandas.to_numeric rejects '1_000' (DuckDB would read 1000); 'nan' parses to NaN,
            # which pandas then counts as unparsable.
            value = f"(CASE WHEN contains({s}, '_') THEN NULL ELSE TRY_CAST({s} AS DOUBLE) END)"
            flag = f"({s} IS NOT NULL AND ({v} IS NULL OR isnan({v}) OR isinf({v})))"
        if col.kind == "integer":
            flag = f"({flag} OR ({v} IS NOT NULL AND (NOT isfinite({v}) OR {v} != floor({v}))))"
            typed = f"TRY_CAST(round({v}) AS BIGINT)"
        else:
            typed = v
    else:  # dates
        if cat in ("date", "timestamp"):
            value, present = f"CAST({src} AS TIMESTAMP)", f"{src} IS NOT NULL"
        elif cat == "timestamptz":  # wall time where the file says it was recorded (UTC if it does not say)
            value = f"timezone({_lit(tz or 'UTC')}, CAST({src} AS TIMESTAMPTZ))"
            present = f"{src} IS NOT NULL"
        else:
            # ISO YYYY-MM-DD exactly (pandas: a regex, then to_datetime): a date DuckDB reads back
            # to the same text (cheaper than a regex)
            value = (f"(CASE WHEN CAST(TRY_CAST({s} AS DATE) AS VARCHAR) = {s} "
                     f"THEN CAST(TRY_CAST({s} AS DATE) AS TIMESTAMP) END)")
            present = f"{s} IS NOT NULL"
        # pandas holds datetime64[ns]: dates outside its range crash the pandas validator
        flag = f"({present} AND NOT coalesce({v} BETWEEN TIMESTAMP '{_MIN_DATE}' AND TIMESTAMP '{_MAX_DATE}', false))"
        typed = v
    return [
        stage1,
        [(f"{n}__v", value)],
        [(f"{n}__bad", f"coalesce({flag}, false)")],
        [(n, f"(CASE WHEN {bad} THEN NULL ELSE {typed} END)"), (f"{n}__bad", bad),
         (f"{n}__raw", f"(CASE WHEN {bad} THEN {src} END)")],
    ]


def _typed_select(table: str, types: dict[str, str], source: str, row_sql: str | None,
                  tz: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """SELECT turning ``source`` (raw columns of the given DuckDB types) into ``_row`` + typed
    contract columns (+ ``__bad``, ``__raw``); returns (sql, contract columns present).
    ``row_sql=None`` leaves ``_row`` out (a table's rowid gives it)."""
    first = [f"{row_sql} AS _row"] if row_sql else ["true AS _present"]
    stages: list[list[str]] = [first, [], [], ["_row"] if row_sql else []]
    present = []
    for col in C.COLUMNS[table]:
        if col.name in types:
            ref, duck_type = _q(col.name), types[col.name]
        elif col.may_be_absent:  # a column added later: an older file reads as all missing
            ref, duck_type = "CAST(NULL AS VARCHAR)", "VARCHAR"
        else:
            continue
        present.append(col.name)
        for i, stage in enumerate(_column_stages(col, ref, duck_type, (tz or {}).get(col.name))):
            stages[i] += [f"{expr} AS {_q(name)}" for name, expr in stage]
    sql = f"SELECT {', '.join(stages[0])} FROM {source}"
    for stage in stages[1:3]:
        sql = f"SELECT *{''.join(', ' + e for e in stage)} FROM ({sql})"
    return f"SELECT {', '.join(stages[3]) or 'true AS _present'} FROM ({sql})", present


def _pandas_header(path: Path) -> list[str]:
    """The column names pandas.read_csv gives this file's header (duplicates made 'a.1')."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle), [])
    names = [name if name != "" else f"Unnamed: {i}" for i, name in enumerate(header)]
    counts: dict[str, int] = defaultdict(int)
    for i, name in enumerate(names):  # pandas.io.common.dedup_names
        current = counts[name]
        while current > 0:
            counts[name] = current + 1
            name = f"{name}.{current}"
            current = counts[name]
        names[i] = name
        counts[name] = current + 1
    return names

"""National scale: validate and partition a dataset with DuckDB, never loading a national table
into pandas.

The pandas path (:mod:`ipcreport.data.validation`, :mod:`ipcreport.data.dataset`) reads every table into
memory; at millions of people that is tens of GB. This module does the same work in DuckDB:

* :func:`check_dataset_duckdb` applies the same rules as :func:`ipcreport.data.dataset.check_dataset`
  and returns the same :class:`~ipcreport.data.validation.Breach` records (file, column, rule text,
  1-based data rows, count, offending values, severity), in the same order. The rules are
  generated from :data:`ipcreport.data.contract.COLUMNS` (types, required values, bounds,
  vocabularies, pattern, uniqueness) and mirror every rule of
  :data:`ipcreport.data.validation.CROSS_RULES`, whose wording (and severity) is read from there;
  a cross rule without a DuckDB twin is an error, never a silent gap.
* :func:`partition_duckdb` writes ``out_dir/site=<code>/<table>.parquet`` and ``site.json``
  exactly as :func:`ipcreport.data.dataset.partition_by_site` does: same layout, same rows in the
  same order, byte-identical Parquet files (so the same ``data_sha256``), same per-site
  warnings. Each table is streamed twice, with no sort: each row's site (from a join) into a
  small array indexed by row number, then a plain scan in file order split into one Parquet
  writer per site.
* :func:`partition_sha256` is a content hash of one site's partition: it changes exactly when
  that site's rows (or its site.json) change, whichever engine or Parquet writer wrote it.
* :class:`DuckDataset` is the session behind them: validate, then partition, parsing each CSV
  once; :meth:`DuckDataset.to_dataset` gives the build the small tables (sites, contracts).

How tables are read:

* CSV: parsed once by DuckDB as text (``all_varchar``: a bad cell is reported, never a crash)
  into a typed table in a scratch DuckDB database file (compressed on disk, buffer-managed), with
  a ``__bad`` flag and the raw text of unparsable cells; the header is read with :mod:`csv` and
  de-duplicated the way pandas does, so extra-column warnings name the same columns.
* Parquet: a view over ``read_parquet`` with native types (nothing is copied); row numbers come
  from ``file_row_number``.
* Excel (``.xlsx``): workbooks are small by nature (at most ~1M rows a sheet), so a sheet goes
  through the pandas parser and single-table checks (the very same functions) and is then handed
  to DuckDB for the cross-table rules. A CSV or Parquet file DuckDB cannot read falls back to the
  pandas reader too (for the identical "cannot be read" message), unless it is bigger than
  :data:`PANDAS_FALLBACK_BYTES`.

Memory is bounded by DuckDB's ``memory_limit`` (default 4 GB; larger work spills to the scratch
folder), plus, while partitioning, a 2-byte site number per row of the table being split and up
to one row group per site. Only a handful of values per breach are ever fetched into Python.

Where the two engines can differ (all on data the pandas path mishandles or already rejects):

* a date outside 1677-09-22..2262-04-11 (what pandas' datetime64[ns] holds) is an unparsable
  cell here; the pandas validator crashes on it (OutOfBoundsDatetime);
* digits other than ASCII 0-9 (e.g. Arabic-Indic) in a date: pandas accepts some, DuckDB none;
* "must fall within one of the person's budget periods" when a person has two periods starting
  the same day (itself an overlap error): which one counts is arbitrary in both engines;
* a CSV file over :data:`PANDAS_FALLBACK_BYTES` that DuckDB cannot parse is reported with
  DuckDB's message instead of pandas';
* timestamps are compared at microsecond precision (pandas: nanoseconds).
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import shutil
import tempfile
import time
import weakref
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import contract as C
from . import validation as V
from .dataset import META_FILE, SITE_META_FILE, Dataset, _label, _table_sources, file_sha256, read_meta, read_raw
from .validation import MAX_LISTED, Breach, DatasetInvalid

__all__ = [
    "DuckDataset",
    "check_dataset_duckdb",
    "partition_duckdb",
    "validate_and_partition_duckdb",
    "partition_sha256",
    "site_files_sha256",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_THREADS",
]

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


# ---------------------------------------------------------------------------------------------
# rules as SQL flags


@dataclass
class _Rel:
    """One table as a DuckDB relation with ``_row`` (1-based data row) and typed columns."""

    table: str
    file: str
    name: str  # view or table in DuckDB
    columns: list[str]  # contract columns present, contract order
    raw_checked: bool = False  # parse and single-table rules already done (the pandas path)
    extra: list[str] = field(default_factory=list)


@dataclass
class _Flag:
    """A rule as a boolean SQL expression over the rows ``x`` of one table."""

    file: str
    column: str | None
    rule: str
    expr: str
    shown: str | None = None  # "raw:<col>", "typed:<col>", "funding" or None
    severity: str = "error"
    joins: tuple[str, ...] = ()
    asof: bool = False  # the spend-within-a-period rule: its own query with an ASOF join


@dataclass(frozen=True)
class _Twin:
    """The DuckDB form of one :data:`ipcreport.data.validation.CROSS_RULES` rule."""

    table: str
    column: str
    keyword: str  # a phrase of the CrossRule's wording that identifies it
    needs: tuple[tuple[str, str], ...]  # (table, column) the pandas rule reads (a KeyError skips it)
    expr: str = ""  # SQL over x and the joins; {extract} is the extract date literal
    joins: tuple[str, ...] = ()
    after_extract: bool = False  # no breach at all without an extract date
    shown: str | None = None
    special: str | None = None


def _fk(table: str) -> tuple[_Twin, _Twin]:
    return (
        _Twin(table, "person_id", "listed in people", ((table, "person_id"), ("people", "person_id")),
              "x.person_id IS NOT NULL AND _ids.k IS NULL", joins=("ids",)),
        _Twin(table, "person_id", "group ipc", ((table, "person_id"), ("people", "person_id"), ("people", "group")),
              "_ids.k IS NOT NULL AND NOT _ids.ipc", joins=("ids",)),
    )


def _late(table: str, column: str) -> _Twin:
    return _Twin(table, column, "on or before extract_date", ((table, column),),
                 f"x.{_q(column)} > {{extract}}", after_extract=True)


_BUDGET_KEYS = "(x.person_id IS NOT NULL AND x.period_start IS NOT NULL AND x.period_end IS NOT NULL)"
_FUNDED = " + ".join(f"coalesce(x.{c}, 0.0)" for c in C.FUNDING_COLUMNS)  # summed left to right, as pandas does

_TWINS: tuple[_Twin, ...] = (
    _Twin("people", "site_code", "listed in sites", (("people", "site_code"), ("sites", "site_code")),
          "x.site_code IS NOT NULL AND _sc.k IS NULL", joins=("site_codes",)),
    _Twin("people", "age", "age <", (("people", "cohort"), ("people", "age")),
          f"x.cohort = 'children_complex_needs' AND x.age >= {C.CHILD_AGE_LIMIT}"),
    _Twin("people", "management", "required for ipc", (("people", "group"), ("people", "management")),
          "x.\"group\" = 'ipc' AND x.management IS NULL"),
    _Twin("people", "management", "empty for comparison", (("people", "group"), ("people", "management")),
          "x.\"group\" = 'comparison' AND x.management IS NOT NULL"),
    _late("people", "index_date"),
    _Twin("people", "exit_date", "on or after index_date", (("people", "exit_date"), ("people", "index_date")),
          "x.exit_date < x.index_date"),
    _late("people", "exit_date"),
    _Twin("people", "exit_reason", "only where exit_date", (("people", "exit_reason"), ("people", "exit_date")),
          "x.exit_reason IS NOT NULL AND x.exit_date IS NULL"),
    *_fk("budgets"),
    _Twin("budgets", "period_end", "must be after period_start", (("budgets", "period_end"), ("budgets", "period_start")),
          "x.period_end <= x.period_start"),
    _Twin("budgets", "period_end", "days after period_start", (("budgets", "period_end"), ("budgets", "period_start")),
          # pandas: Timedelta.days > MAX (floor of whole days) <=> the gap is at least MAX + 1 days
          f"epoch_us(x.period_end) - epoch_us(x.period_start) >= {(C.MAX_PERIOD_DAYS + 1) * 86_400_000_000}"),
    _Twin("budgets", "period_start", "overlap",
          (("budgets", "person_id"), ("budgets", "period_start"), ("budgets", "period_end")),
          # pandas sorts by (person_id, period_start) stably and compares with the previous end
          f"{_BUDGET_KEYS} AND x.period_start < lag(x.period_end) OVER "
          f"(PARTITION BY x.person_id, {_BUDGET_KEYS} ORDER BY x.period_start, x._row)"),
    _Twin("budgets", "agreed_budget", "must equal agreed_budget",
          (("budgets", "agreed_budget"),) + tuple(("budgets", c) for c in C.FUNDING_COLUMNS),
          f"NOT ({' AND '.join(f'x.{c} IS NULL' for c in C.FUNDING_COLUMNS)}) "
          f"AND abs(({_FUNDED}) - x.agreed_budget) > {C.FUNDING_TOLERANCE_GBP!r}",
          shown="funding"),
    *_fk("spend"),
    _Twin("spend", "month", "first day", (("spend", "month"),),
          # pandas: NaT.day is NaN and NaN != 1, so a missing month is flagged here too
          "x.month IS NULL OR day(x.month) != 1"),
    _Twin("spend", "month", "within one of the person's budget periods",
          (("spend", "person_id"), ("spend", "month"), ("budgets", "person_id"), ("budgets", "period_start"),
           ("budgets", "period_end")), special="asof"),
    _late("spend", "month"),
    _fk("events")[0],
    _late("events", "event_date"),
    _Twin("events", "bed_days", "not admissions", (("events", "event_type"), ("events", "bed_days")),
          f"(x.event_type IS NULL OR x.event_type NOT IN ({_in_list(C.ADMISSION_TYPES)})) AND x.bed_days > 0"),
    _fk("surveys")[0],
    _late("surveys", "survey_date"),
    _Twin("surveys", "timepoint", "at most one", (("surveys", "person_id"), ("surveys", "timepoint")),
          "x.person_id IS NOT NULL AND x.timepoint IS NOT NULL AND "
          "count(*) OVER (PARTITION BY x.person_id, x.timepoint) > 1"),
    _Twin("surveys", "timepoint", "without a follow-up", (("surveys", "person_id"), ("surveys", "timepoint")),
          "x.timepoint = 'baseline' AND _fu.hit IS NULL", joins=("followed",)),
    _Twin("contracts", "site_code", "listed in sites", (("contracts", "site_code"), ("sites", "site_code")),
          "x.site_code IS NOT NULL AND _sc.k IS NULL", joins=("site_codes",)),
    _fk("services")[0],
    _Twin("services", "month", "first day", (("services", "month"),), "x.month IS NULL OR day(x.month) != 1"),
    _late("services", "month"),
)


def _twin_for(rule: V.CrossRule) -> _Twin:
    found = [t for t in _TWINS if t.table == rule.table and t.column == rule.column and t.keyword in rule.rule]
    if len(found) != 1:
        raise NotImplementedError(
            f"ipcreport.data.scale has {len(found)} DuckDB twins for the cross rule {rule.table}.{rule.column}: "
            f"{rule.rule!r}; add one to scale._TWINS so both engines check the same rules"
        )
    return found[0]


def cross_rule_twins() -> list[tuple[V.CrossRule, _Twin]]:
    """Every pandas cross rule with its DuckDB twin (raises if one has none)."""
    return [(rule, _twin_for(rule)) for rule in V.CROSS_RULES]


def _fmt_value(value: object) -> str:
    """validation._fmt on a value as DuckDB returns it (a datetime becomes a pandas.Timestamp)."""
    if isinstance(value, datetime.datetime) and not isinstance(value, pd.Timestamp):
        value = pd.Timestamp(value)
    return V._fmt(value)


def _funding_text(agreed, nhs, social, education) -> str:
    """validation._funding_shown for one row (pandas sums skipping NaN)."""
    funded = 0.0
    for part in (nhs, social, education):
        funded = funded + (0.0 if part is None else part)
    a = float("nan") if agreed is None else agreed
    return f"agreed {a:,.2f} vs funded {funded:,.2f}"


# ---------------------------------------------------------------------------------------------
# the engine


class DuckDataset:
    """A dataset folder opened in DuckDB: validate it, then partition it, in one session.

    Use as a context manager (or call :meth:`close`): the scratch folder (DuckDB database file
    holding parsed CSV tables, spill files) is removed at the end unless ``work_dir`` was given.
    """

    def __init__(self, folder: str | Path, *, work_dir: str | Path | None = None,
                 memory_limit: str = DEFAULT_MEMORY_LIMIT, threads: int = DEFAULT_THREADS):
        self.folder = Path(folder)
        self._own_work = work_dir is None
        self.work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="ipcreport-duckdb-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        spill = self.work_dir / "spill"
        spill.mkdir(exist_ok=True)
        self.con = duckdb.connect(str(self.work_dir / "scale.duckdb"), config={
            "memory_limit": memory_limit,
            "threads": threads,
            "temp_directory": str(spill),
            "preserve_insertion_order": True,
        })
        self._finalizer = weakref.finalize(self, self._cleanup, self.con, self.work_dir, self._own_work)
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")
        self.timings: list[tuple[str, float]] = []  # (what, seconds) of every big statement
        self.meta: C.DatasetMeta | None = None
        self.sources: dict[str, tuple[Path, str | None]] = {}
        self.files: dict[str, str] = {}
        self.rels: dict[str, _Rel] = {}
        self.breaches: list[Breach] | None = None
        self._loaded = False
        self._aux: set[str] = set()  # auxiliary tables made for the current rule run
        self._ids_table = ""
        self._seq = 0

    # -- lifecycle --------------------------------------------------------------------------

    def _run(self, sql: str, label: str = "") -> list[tuple]:
        """Run one statement to completion; its time goes into :attr:`timings`."""
        started = time.perf_counter()
        rows = self.con.execute(sql).fetchall()
        self.timings.append((label or sql[:60], round(time.perf_counter() - started, 3)))
        return rows

    def close(self) -> None:
        """Close DuckDB and remove the scratch files (also done when the object is collected)."""
        self.con = None
        self._finalizer()

    @staticmethod
    def _cleanup(con: duckdb.DuckDBPyConnection, work_dir: Path, own: bool) -> None:
        con.close()
        if own:
            shutil.rmtree(work_dir, ignore_errors=True)
            return
        for name in ("scale.duckdb", "scale.duckdb.wal", "spill"):
            path = work_dir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()

    def __enter__(self) -> "DuckDataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- loading ----------------------------------------------------------------------------

    def _load(self) -> list[Breach]:
        """Read dataset.yaml and every table; returns the breaches of reading, parsing and the
        single-table rules (in the pandas validator's order)."""
        if not self.folder.is_dir():
            self._loaded = True
            self._load_breaches: list[Breach] = [Breach(str(self.folder), None, "dataset folder does not exist", count=1)]
            return self._load_breaches
        breaches: list[Breach] = []
        self.meta, meta_breaches = read_meta(self.folder)
        breaches += meta_breaches
        self.sources, source_breaches = _table_sources(self.folder)
        breaches += source_breaches
        for table, (path, sheet) in self.sources.items():
            self.files[table] = _label(path, sheet)
            breaches += self._load_table(table, path, sheet)
        self._loaded = True
        self._load_breaches = breaches
        return breaches

    def _name(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}_{self._seq}"

    def _load_table(self, table: str, path: Path, sheet: str | None) -> list[Breach]:
        label = _label(path, sheet)
        if sheet is not None:
            return self._load_with_pandas(table, label, path, sheet)
        try:
            if path.suffix == ".parquet":
                rel = self._parquet_relation(table, label, path)
            else:
                rel = self._csv_relation(table, label, path)
        except (duckdb.Error, UnicodeDecodeError, csv.Error, OSError) as err:
            if path.stat().st_size <= PANDAS_FALLBACK_BYTES:
                return self._load_with_pandas(table, label, path, None)
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            return [Breach(label, None, f"cannot be read: {message}", count=1)]
        self.rels[table] = rel
        return self._single_table(rel)

    def _parquet_relation(self, table: str, label: str, path: Path, name: str | None = None) -> _Rel:
        source = f"read_parquet({_lit(str(path))}, file_row_number = true)"
        described = self.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        types = {row[0]: row[1] for row in described if row[0] != "file_row_number"}
        tz = {}
        try:
            for fld in pq.read_schema(path):
                if pa.types.is_timestamp(fld.type) and fld.type.tz:
                    tz[fld.name] = fld.type.tz
        except Exception:  # noqa: BLE001 - time zones are a refinement; DuckDB read the file
            pass
        sql, present = _typed_select(table, types, source, "file_row_number + 1", tz)
        name = name or self._name(f"t_{table}")
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
        known = {c.name for c in C.COLUMNS[table]}
        return _Rel(table, label, name, present, extra=[c for c in types if c not in known])

    def _csv_relation(self, table: str, label: str, path: Path) -> _Rel:
        names = _pandas_header(path)
        if not names:
            raise duckdb.InvalidInputException("No columns to parse from file")
        columns = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in names) + "}"
        options = (f"auto_detect = false, header = true, columns = {columns}, delim = ',', quote = '\"', "
                   f"escape = '\"', encoding = 'utf-8'")
        store = self._name(f"csv_{table}")
        sql, present = _typed_select(table, {n: "VARCHAR" for n in names}, "_csv_source", None)

        def create(extra: str = "") -> None:
            source = f"read_csv({_lit(str(path))}, {options}{extra})"
            self._run(f"CREATE TABLE {store} AS {sql.replace('_csv_source', source, 1)}", f"parse {label}")

        try:
            create()
        except duckdb.Error:
            # Short rows (pandas fills them with missing values) need null padding, which DuckDB's
            # parallel reader cannot combine with quoted newlines: retry serially.
            self.con.execute(f"DROP TABLE IF EXISTS {store}")
            create(", null_padding = true, parallel = false")
        # preserve_insertion_order keeps the file's order, so rowid + 1 is the data row number
        name = self._name(f"t_{table}")
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT rowid + 1 AS _row, * FROM {store}")
        known = {c.name for c in C.COLUMNS[table]}
        return _Rel(table, label, name, present, extra=[n for n in names if n not in known])

    def _load_with_pandas(self, table: str, label: str, path: Path, sheet: str | None) -> list[Breach]:
        """Excel sheets (small by nature), and files DuckDB cannot read: the pandas parser."""
        try:
            raw = read_raw(path, sheet)
        except Exception as err:  # noqa: BLE001 - the same report as the pandas validator
            return [Breach(label, None, f"cannot be read: {err}", count=1)]
        raw = raw.reset_index(drop=True)
        typed, breaches, unparsable = V.parse_table(table, label, raw)
        breaches += V.check_single_table(table, label, typed, unparsable)
        breaches += V.plausibility_breaches(table, label, typed, list(raw.columns))
        frame = typed.copy()
        frame.insert(0, "_row", pd.RangeIndex(1, len(frame) + 1).to_numpy())
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        handle = self._name("arrow")
        self.con.register(handle, arrow)
        casts = ["_row"]
        for name in typed.columns:
            kind = C.column(table, name).kind
            sql = {"text": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE", "date": "TIMESTAMP"}[kind]
            casts.append(f"CAST({_q(name)} AS {sql}) AS {_q(name)}")
        store = self._name(f"pd_{table}")
        self._run(f"CREATE TABLE {store} AS SELECT {', '.join(casts)} FROM {handle}", f"load {label}")
        self.con.unregister(handle)
        self.rels[table] = _Rel(table, label, store, list(typed.columns), raw_checked=True)
        return breaches

    # -- single-table rules -----------------------------------------------------------------

    def _single_table(self, rel: _Rel) -> list[Breach]:
        """Parsing breaches, the extra-column warning, required values and the pandera checks,
        in the order the pandas validator reports them."""
        items: list[Breach | _Flag] = []
        for col in C.COLUMNS[rel.table]:
            if col.name not in rel.columns:
                items.append(Breach(rel.file, col.name, _MISSING_COLUMN_RULE, count=1))
            elif col.kind != "text":
                items.append(_Flag(rel.file, col.name, V._TYPE_RULE[col.kind], f"x.{_q(col.name + '__bad')}",
                                   shown=f"raw:{col.name}"))
        if rel.extra:
            items.append(Breach(rel.file, ", ".join(map(str, rel.extra)), _EXTRA_COLUMNS_RULE, severity="warning"))
        present = [col for col in C.COLUMNS[rel.table] if col.name in rel.columns]
        for col in present:
            if col.required:
                not_bad = f" AND NOT x.{_q(col.name + '__bad')}" if col.kind != "text" else ""
                items.append(_Flag(rel.file, col.name, _REQUIRED_RULE, f"x.{_q(col.name)} IS NULL{not_bad}"))
        for col in present:
            ref = f"x.{_q(col.name)}"
            if col.unique:
                items.append(_Flag(rel.file, col.name, _UNIQUE_RULE,
                                   f"{ref} IS NOT NULL AND count(*) OVER (PARTITION BY {ref}) > 1",
                                   shown=f"typed:{col.name}"))
            for sql, text in zip(self._bound_sql(col, ref), [text for _, text in V._describe_bounds(col)], strict=True):
                items.append(_Flag(rel.file, col.name, text, sql, shown=f"typed:{col.name}"))
        # validation.plausibility_breaches, in its order: repeated header names, implausible values
        items += [Breach(rel.file, column, V.DUPLICATED_HEADER_RULE.format(repeat), count=1)
                  for column, repeat in V.duplicated_headers(rel.columns + rel.extra)]
        for rule in V.PLAUSIBLE:
            if rule.table == rel.table and rule.column in rel.columns:
                items.append(_Flag(rel.file, rule.column, rule.rule,
                                   f"coalesce({rule.sql.format(ref=f'x.{_q(rule.column)}')}, false)",
                                   shown=f"typed:{rule.column}" if rule.show else None, severity=rule.severity))
        return self._resolve(rel, items)

    @staticmethod
    def _bound_sql(col: C.Column, ref: str) -> list[str]:
        """Failing rows of each check, in validation._describe_bounds' order (nulls pass)."""
        out = []
        if col.minimum is not None:
            out.append(f"{ref} <= {col.minimum!r}" if col.exclusive_minimum else f"{ref} < {col.minimum!r}")
        if col.maximum is not None:
            out.append(f"{ref} > {col.maximum!r}")
        if col.allowed is not None:
            out.append(f"{ref} NOT IN ({_in_list(col.allowed)})")
        if col.pattern is not None:
            out.append(f"NOT regexp_full_match({ref}, {_lit(col.pattern)})")
        return out

    # -- cross-table rules ------------------------------------------------------------------

    def _join_sql(self, name: str) -> str:
        people, sites, surveys = (self.rels.get(t) for t in ("people", "sites", "surveys"))
        if name == "ids":
            if "ids" not in self._aux:
                ipc = ("bool_or(coalesce(\"group\" = 'ipc', false))" if "group" in people.columns else "false")
                self._ids_table = self._name("ids")
                self._run(f"CREATE OR REPLACE TEMP TABLE {self._ids_table} AS SELECT person_id AS k, "
                          f"{ipc} AS ipc FROM {people.name} WHERE person_id IS NOT NULL GROUP BY person_id", "person ids")
                self._aux.add("ids")
            return f"LEFT JOIN {self._ids_table} _ids ON x.person_id = _ids.k"
        if name == "site_codes":
            return (f"LEFT JOIN (SELECT DISTINCT site_code AS k FROM {sites.name} WHERE site_code IS NOT NULL) _sc "
                    "ON x.site_code = _sc.k")
        if name == "followed":  # pandas isin: a missing person_id matches a missing one
            return (f"LEFT JOIN (SELECT DISTINCT person_id AS k, true AS hit FROM {surveys.name} "
                    "WHERE timepoint = 'follow_up') _fu ON x.person_id IS NOT DISTINCT FROM _fu.k")
        raise KeyError(name)

    def _cross(self, extract: pd.Timestamp | None, severities=("error", "warning"),
               rels: dict[str, _Rel] | None = None) -> list[Breach]:
        """Every cross-table rule whose tables and columns are present (validation.check_cross_tables)."""
        rels = self.rels if rels is None else rels
        saved, self.rels = self.rels, rels
        saved_aux, self._aux = self._aux, set()
        try:
            return self._cross_inner(extract, severities)
        finally:
            self.rels, self._aux = saved, saved_aux

    def _cross_inner(self, extract, severities) -> list[Breach]:
        rels = self.rels
        by_table: dict[str, list[_Flag]] = defaultdict(list)
        order: list[_Flag] = []
        for rule, twin in cross_rule_twins():
            if rule.severity not in severities:
                continue
            if rule.table not in rels or "people" not in rels or "sites" not in rels:
                continue
            if any(t not in rels or c not in rels[t].columns for t, c in twin.needs):
                continue  # the pandas rule raises KeyError and is skipped: the column is reported missing
            if twin.after_extract and extract is None:
                continue
            rel = rels[rule.table]
            shown = None if rule.severity == "warning" else (twin.shown or f"typed:{rule.column}")
            if twin.special == "asof":
                flag = self._asof_flag(rule, rel, shown)
                if flag is None:
                    continue
            else:
                literal = f"TIMESTAMP '{pd.Timestamp(extract).isoformat(sep=' ')}'" if extract is not None else "NULL"
                flag = _Flag(rel.file, rule.column, rule.rule, twin.expr.replace("{extract}", literal), shown,
                             rule.severity, twin.joins)
            by_table[rule.table].append(flag)
            order.append(flag)
        results: dict[int, Breach | None] = {}
        for table, flags in by_table.items():
            for flag, breach in zip(flags, self._resolve(rels[table], flags, keep_empty=True)):
                results[id(flag)] = breach
        return [results[id(f)] for f in order if results.get(id(f)) is not None]

    def _asof_flag(self, rule: V.CrossRule, rel: _Rel, shown: str | None) -> _Flag | None:
        """validation._spend_outside_periods: the latest period starting on or before the month
        (per person) must not have ended before it."""
        budgets = self.rels["budgets"]
        spend_rows = self._run(
            f"SELECT count(*) FROM {rel.name} WHERE person_id IS NOT NULL AND month IS NOT NULL", "spend rows")[0][0]
        if spend_rows == 0:
            return None
        periods = (f"SELECT person_id, period_start, period_end FROM {budgets.name} "
                   "WHERE person_id IS NOT NULL AND period_start IS NOT NULL AND period_end IS NOT NULL")
        if self._run(f"SELECT count(*) FROM ({periods})", "budget periods")[0][0] == 0:
            return _Flag(rel.file, rule.column, rule.rule, "x.month IS NOT NULL", shown, rule.severity)
        return _Flag(rel.file, rule.column, rule.rule,
                     "x.person_id IS NOT NULL AND x.month IS NOT NULL AND (_p.period_end IS NULL OR x.month > _p.period_end)",
                     shown, rule.severity, joins=(f"ASOF LEFT JOIN ({periods}) _p ON x.person_id = _p.person_id "
                                                  "AND x.month >= _p.period_start",), asof=True)

    # -- evaluating flags -------------------------------------------------------------------

    def _resolve(self, rel: _Rel, items: list, keep_empty: bool = False) -> list:
        """Count and locate every flag (one pass per table, plus one per ASOF rule), fetch the
        shown values of the listed rows, and turn flags into Breach records."""
        flags = [f for f in items if isinstance(f, _Flag)]
        found: dict[int, tuple[int, list[int]]] = {}
        plain = [f for f in flags if not f.asof]
        groups = [plain] + [[f] for f in flags if f.asof]
        for group in groups:
            if not group:
                continue
            joins: list[str] = []
            for f in group:
                for j in f.joins:
                    sql = j if j.startswith("ASOF") else self._join_sql(j)
                    if sql not in joins:
                        joins.append(sql)
            inner = ", ".join(f"coalesce({f.expr}, false) AS f{i}" for i, f in enumerate(group))
            outer = ", ".join(f"coalesce(count_if(f{i}), 0), min(_row, {MAX_LISTED}) FILTER (WHERE f{i})" for i in range(len(group)))
            sql = (f"SELECT {outer} FROM (SELECT x._row, {inner} FROM {rel.name} x {' '.join(joins)})")
            row = self._run(sql, f"rules {rel.file}" + (" (as-of join)" if group[0].asof else ""))[0]
            for i, f in enumerate(group):
                found[id(f)] = (int(row[2 * i]), sorted(row[2 * i + 1] or []))
        # values of the listed rows
        wanted: set[str] = set()
        rows: set[int] = set()
        for f in flags:
            count, listed = found[id(f)]
            if count and f.shown:
                rows.update(listed)
                if f.shown == "funding":
                    wanted.update(("agreed_budget",) + C.FUNDING_COLUMNS)
                else:
                    kind, col = f.shown.split(":", 1)
                    wanted.add(col + "__raw" if kind == "raw" else col)
        values: dict[int, dict[str, object]] = {}
        if rows and wanted:
            cols = sorted(wanted)
            fetched = self._run(
                f"SELECT _row, {', '.join(_q(c) for c in cols)} FROM {rel.name} "
                f"WHERE _row IN ({', '.join(str(r) for r in sorted(rows))})", f"values {rel.file}")
            values = {r[0]: dict(zip(cols, r[1:])) for r in fetched}
        out = []
        for item in items:
            if isinstance(item, Breach):
                out.append(item)
                continue
            count, listed = found[id(item)]
            if count == 0:
                if keep_empty:
                    out.append(None)
                continue
            shown: tuple[str, ...] = ()
            if item.shown == "funding":
                shown = tuple(V._fmt(_funding_text(*(values[r].get(c) for c in ("agreed_budget",) + C.FUNDING_COLUMNS)))
                              for r in listed)
            elif item.shown:
                kind, col = item.shown.split(":", 1)
                key = col + "__raw" if kind == "raw" else col
                shown = tuple(_fmt_value(values[r].get(key)) for r in listed)
            out.append(Breach(item.file, item.column, item.rule, tuple(int(r) for r in listed), count, shown,
                              item.severity))
        return out

    # -- public -----------------------------------------------------------------------------

    def check(self) -> list[Breach]:
        """Every breach of the contract (errors and warnings), as the pandas validator reports them."""
        if self.breaches is None:
            breaches = list(self._load()) if not self._loaded else list(self._load_breaches)
            if self.folder.is_dir():
                extract = self.meta.extract_date if self.meta else None
                breaches += self._cross(extract)
            self.breaches = breaches
        return self.breaches

    @property
    def ok(self) -> bool:
        return not any(b.severity == "error" for b in self.check())

    @property
    def warnings(self) -> list[Breach]:
        return [b for b in self.check() if b.severity == "warning"]

    @property
    def sha256(self) -> str:
        """dataset.Dataset.sha256: every input file's bytes."""
        return file_sha256([self.folder / META_FILE] + [path for path, _ in self.sources.values()])

    def site_codes(self) -> list[str]:
        return [r[0] for r in self.con.execute(f"SELECT site_code FROM {self.rels['sites'].name} ORDER BY _row").fetchall()]

    def frame(self, table: str) -> pd.DataFrame:
        """One table as the pandas loader types it (only for the small ones: sites, contracts)."""
        rel = self.rels[table]
        casts = ", ".join(f"CAST({_q(c.name)} AS {_DUCK_TYPES[c.kind]}) AS {_q(c.name)}"
                          for c in C.COLUMNS[table] if c.name in rel.columns)
        arrow = self.con.sql(f"SELECT {casts} FROM {rel.name} ORDER BY _row").to_arrow_table()
        schema = _partition_schema(table)
        return arrow.cast(pa.schema([schema.field(n) for n in arrow.column_names], metadata=schema.metadata)).to_pandas()

    def to_dataset(self, tables: tuple[str, ...] = ("sites", "contracts")) -> Dataset:
        """A :class:`ipcreport.data.dataset.Dataset` of a valid dataset holding only the small
        ``tables`` (what the build's planning, index and manifest read: site names, regions),
        with the same meta, files, sha256 and warnings as :func:`ipcreport.data.dataset.load_dataset`
        gives. Raises DatasetInvalid if there are errors."""
        breaches = self.check()
        if any(b.severity == "error" for b in breaches):
            raise DatasetInvalid(str(self.folder), breaches)
        return Dataset(self.folder, self.meta, {t: self.frame(t) for t in tables}, dict(self.files), self.sha256,
                       [b for b in breaches if b.severity == "warning"])

    def partition(self, out_dir: str | Path, *, extract_date=None, check: bool = True) -> dict[str, Path]:
        """Write each site's rows as ``out_dir/site=<code>/<table>.parquet`` plus site.json, as
        :func:`ipcreport.data.dataset.partition_by_site` does; returns code -> folder.

        With ``check`` (the default) the dataset must pass validation (DatasetInvalid otherwise);
        ``check=False`` trusts the caller to have validated it (the rows of a dataset with errors
        may belong to no site or to several)."""
        out_dir = Path(out_dir)
        if check:
            breaches = self.check()
            if any(b.severity == "error" for b in breaches):
                raise DatasetInvalid(str(self.folder), breaches)
        elif not self._loaded:
            self._load()
        if self.meta is None:
            raise ValueError(f"{self.folder}: dataset.yaml is missing or invalid")
        extract = pd.Timestamp(extract_date) if extract_date is not None else self.meta.extract_date
        codes = self.site_codes()
        index = {code: i for i, code in enumerate(codes)}
        folders = {code: out_dir / f"site={code}" for code in codes}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        self.con.execute("CREATE OR REPLACE TEMP TABLE _site_index (code VARCHAR, idx INTEGER)")
        self.con.executemany("INSERT INTO _site_index VALUES (?, ?)", list(index.items()))
        people = self.rels["people"].name
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _person_site AS SELECT p.person_id AS k, s.idx "
                         f"FROM {people} p JOIN _site_index s ON p.site_code = s.code")
        for table in C.TABLES:
            rel = self.rels.get(table)
            if rel is None:  # an optional table the dataset leaves out: empty files, as pandas writes them
                for folder in folders.values():
                    pq.write_table(_partition_schema(table).empty_table(), folder / f"{table}.parquet")
                continue
            via = ("JOIN _site_index _s ON x.site_code = _s.code" if table in ("sites", "people", "contracts")
                   else "JOIN _person_site _s ON x.person_id = _s.k")  # person_id is unique in a valid dataset
            self._write_partitions(rel, via, folders, codes)
        structural = [w for w in (self.warnings if check else self._structural_warnings()) if not w.rows]
        for code, folder in folders.items():
            warnings = structural + self._site_warnings(folder, extract)
            meta = {
                "site_code": code,
                "dataset": self.meta.name,
                "extract_date": extract.date().isoformat(),
                "synthetic": self.meta.synthetic,
                "data_sha256": site_files_sha256(folder),  # this site's data, as dataset.site_partition hashes it
                "warnings": [asdict(w) for w in warnings],
            }
            (folder / SITE_META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return folders

    def _structural_warnings(self) -> list[Breach]:
        return [b for b in self._load_breaches if b.severity == "warning" and not b.rows]

    def _write_partitions(self, rel: _Rel, via: str, folders: dict[str, Path], codes: list[str]) -> None:
        """Stream one table once, in file order, into one Parquet file per site.

        DuckDB's joins do not keep the input order (and sorting a national table spills GBs), so
        it is done in two passes that need no sort: (1) each row's site, from the join, scattered
        into a small array indexed by row number; (2) a plain scan, which does keep the file's
        order (checked), split batch by batch with that array. Every site's rows are then in the
        file's order, as the pandas partition has them.
        """
        table = rel.table
        schema = _partition_schema(table)
        started = time.perf_counter()
        n_rows = self._run(f"SELECT coalesce(max(_row), 0) FROM {rel.name}", f"rows {rel.file}")[0][0]
        no_site = np.iinfo(np.uint16).max
        site_of = np.full(n_rows + 1, no_site, dtype=np.uint16)  # by row number; rows of no site stay out
        for batch in self.con.sql(f"SELECT x._row, _s.idx FROM {rel.name} x {via}").to_arrow_reader(BATCH_ROWS):
            site_of[batch.column(0).to_numpy()] = batch.column(1).to_numpy()
        select = [f"CAST({_q(c.name)} AS {_DUCK_TYPES[c.kind]}) AS {_q(c.name)}" for c in C.COLUMNS[table]]
        writers = _SiteWriters(table, schema, [folders[code] for code in codes])
        last = 0
        for batch in self.con.sql(f"SELECT _row, {', '.join(select)} FROM {rel.name}").to_arrow_reader(BATCH_ROWS):
            if batch.num_rows == 0:
                continue
            rows = batch.column(0).to_numpy()
            if rows[0] <= last or (len(rows) > 1 and not (np.diff(rows) > 0).all()):
                raise RuntimeError(f"DuckDB scanned {rel.file} out of order (preserve_insertion_order is off?)")
            last = rows[-1]
            sites = site_of[rows]
            data = pa.Table.from_batches([batch]).drop_columns(["_row"])
            steps = np.diff(sites)
            if (steps < 0).any():  # sites interleave: group them, keeping file order within each
                order = np.argsort(sites, kind="stable")
                data, sites = data.take(pa.array(order)), sites[order]
                steps = np.diff(sites)
            bounds = np.flatnonzero(steps) + 1
            for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(sites)]):
                site = int(sites[start])
                if site != no_site:
                    writers.add(site, data.slice(start, stop - start).cast(schema))
        writers.close()
        self.timings.append((f"partition {rel.file}", round(time.perf_counter() - started, 3)))

    def _site_warnings(self, folder: Path, extract) -> list[Breach]:
        """dataset.site_warnings' row-level part: the warning rules on the site's own rows."""
        rels = {}
        for table in C.TABLES:
            rel = self._parquet_relation(table, self.files.get(table, f"{table}.csv"), folder / f"{table}.parquet",
                                         name=f"site_{table}")
            rels[table] = rel
        return self._cross(extract, severities=("warning",), rels=rels)


class _SiteWriters:
    """One Parquet file per site, written in row groups of exactly ROW_GROUP_ROWS single-chunk
    rows (the rest at the end): the way pyarrow splits the one table pandas' to_parquet writes,
    so the files come out byte-identical to the pandas partition's. The encoding (the slow part)
    runs in a background thread while DuckDB produces the next batches; at most a few row
    groups wait for it, so memory stays bounded."""

    IN_FLIGHT = 3

    def __init__(self, table: str, schema: pa.Schema, folders: list[Path]):
        self.paths = [folder / f"{table}.parquet" for folder in folders]
        self.schema = schema
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.pending: dict[int, list[pa.Table]] = defaultdict(list)
        self.rows: dict[int, int] = defaultdict(int)
        self.pool = ThreadPoolExecutor(max_workers=1)  # one thread: each file's row groups in order
        self.futures: deque = deque()

    def add(self, site: int, part: pa.Table) -> None:
        self.pending[site].append(part)
        self.rows[site] += part.num_rows
        if self.rows[site] >= ROW_GROUP_ROWS:
            self._flush(site, final=False)

    def _write(self, site: int, data: pa.Table) -> None:
        if site not in self.writers:
            self.writers[site] = pq.ParquetWriter(self.paths[site], self.schema)
        self.writers[site].write_table(data)

    def _flush(self, site: int, final: bool) -> None:
        while self.rows[site] >= ROW_GROUP_ROWS or (final and self.rows[site]):
            data = pa.concat_tables(self.pending[site])
            size = min(ROW_GROUP_ROWS, self.rows[site])
            self.futures.append(self.pool.submit(self._write, site, data.slice(0, size).combine_chunks()))
            self.pending[site], self.rows[site] = [data.slice(size)], self.rows[site] - size
            while len(self.futures) > self.IN_FLIGHT:
                self.futures.popleft().result()

    def close(self) -> None:
        try:
            for site in range(len(self.paths)):
                self._flush(site, final=True)
            while self.futures:
                self.futures.popleft().result()
        finally:
            self.pool.shutdown(wait=True)
            for writer in self.writers.values():
                writer.close()
        for site, path in enumerate(self.paths):
            if site not in self.writers:  # a site with no rows in this table: an empty file, as pandas writes one
                pq.write_table(self.schema.empty_table(), path)


def _partition_schema(table: str) -> pa.Schema:
    """The Arrow schema (with pandas metadata) pandas writes for a typed frame of ``table``."""
    dtypes = {"text": "string", "integer": "Int64", "number": "float64", "date": "datetime64[ns]"}
    frame = pd.DataFrame({c.name: pd.Series([], dtype=dtypes[c.kind]) for c in C.COLUMNS[table]})
    return pa.Schema.from_pandas(frame, preserve_index=False)


# ---------------------------------------------------------------------------------------------
# one-call entry points


def check_dataset_duckdb(folder: str | Path, *, memory_limit: str = DEFAULT_MEMORY_LIMIT,
                         threads: int = DEFAULT_THREADS, work_dir: str | Path | None = None) -> list[Breach]:
    """Every breach of the contract in a dataset folder, like :func:`ipcreport.data.dataset.validate_dataset`.

    Writes nothing but a scratch folder (``work_dir``, default a temporary one), removed after.
    """
    with DuckDataset(folder, work_dir=work_dir, memory_limit=memory_limit, threads=threads) as data:
        return list(data.check())


def partition_duckdb(folder: str | Path, out_dir: str | Path, extract_date=None, *, check: bool = True,
                     memory_limit: str = DEFAULT_MEMORY_LIMIT, threads: int = DEFAULT_THREADS) -> dict[str, Path]:
    """:func:`ipcreport.data.dataset.partition_by_site` for a dataset folder, through DuckDB.

    ``extract_date`` (default: dataset.yaml's) goes into site.json. The scratch folder lives in
    ``out_dir/.duckdb-work`` and is removed after. Raises DatasetInvalid when ``check`` finds
    errors; pass ``check=False`` when the dataset was validated just before.
    """
    out_dir = Path(out_dir)
    work = out_dir / ".duckdb-work"
    try:
        with DuckDataset(folder, work_dir=work, memory_limit=memory_limit, threads=threads) as data:
            return data.partition(out_dir, extract_date=extract_date, check=check)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def validate_and_partition_duckdb(folder: str | Path, out_dir: str | Path, *,
                                  memory_limit: str = DEFAULT_MEMORY_LIMIT, threads: int = DEFAULT_THREADS,
                                  ) -> tuple[list[Breach], dict[str, Path] | None]:
    """Validate, and partition only if there is no error: what a build needs, in one session
    (each CSV is parsed once). Returns (breaches, partitions or None); writes nothing under
    ``out_dir`` when the dataset is invalid."""
    out_dir = Path(out_dir)
    scratch = Path(tempfile.mkdtemp(prefix=".duckdb-work-", dir=out_dir.parent if out_dir.parent.exists() else None))
    try:
        with DuckDataset(folder, work_dir=scratch, memory_limit=memory_limit, threads=threads) as data:
            breaches = list(data.check())
            if any(b.severity == "error" for b in breaches):
                return breaches, None
            return breaches, data.partition(out_dir, check=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# per-site content hashes


def site_files_sha256(folder: str | Path) -> str:
    """site.json's ``data_sha256``: the partition's Parquet files' names and bytes, as
    :func:`ipcreport.data.dataset.site_partition` hashes them (the files are byte-identical to the
    ones pandas writes, so both engines give the same value)."""
    digest = hashlib.sha256()
    for name in sorted(f"{table}.parquet" for table in C.TABLES):
        path = Path(folder) / name
        digest.update(name.encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _column_digests(arr: pa.Array, kind: str, digests: list) -> None:
    """Feed one column's values, canonically by contract kind, into its running digests:
    [0] which values are missing, [1] the values (fixed width; a text's length), [2] a text's
    bytes. Each stream is a plain concatenation, so batch boundaries do not matter."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    digests[0].update(arr.is_null().to_numpy(zero_copy_only=False).tobytes())
    if kind == "text":
        text = pc.fill_null(arr.cast(pa.large_string()), "")
        if len(text):
            offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[text.offset:text.offset + len(text) + 1]
            digests[1].update(np.diff(offsets).tobytes())
            if offsets[-1] > offsets[0]:
                digests[2].update(memoryview(text.buffers()[2])[offsets[0]:offsets[-1]])
        return
    if kind == "date":
        arr = arr.cast(pa.timestamp("ns")).cast(pa.int64())
    target = pa.float64() if kind == "number" else pa.int64()
    digests[1].update(pc.fill_null(arr.cast(target), 0).to_numpy(zero_copy_only=False).tobytes())


def partition_sha256(folder: str | Path) -> str:
    """Content hash of one site partition (``.../site=<code>``), for keying a site's work.

    Canonical, not byte-level: for every table, every contract column's values in row order,
    typed by the contract (text as UTF-8, integers as int64, numbers as float64, dates as
    nanoseconds), with which of them are missing; the tables' columns and row counts; and
    site.json except ``data_sha256`` (a hash of the files' bytes, which a different pyarrow
    version, compression or row-group layout changes although the data do not). So it is the
    same for partitions written by pandas or by DuckDB, by any Parquet writer, and it changes
    when a value, a row, the row order, the site's warnings, the extract date or the dataset
    name changes. Streams the files in batches (memory: one batch); format tag
    ``ipcreport-partition-sha256/1``.
    """
    folder = Path(folder)
    meta = json.loads((folder / SITE_META_FILE).read_text(encoding="utf-8"))
    meta.pop("data_sha256", None)
    top = hashlib.sha256(_PARTITION_HASH_VERSION.encode())
    top.update(json.dumps(meta, sort_keys=True, ensure_ascii=True).encode())
    for table in C.TABLES:
        source = pq.ParquetFile(folder / f"{table}.parquet")
        names = set(source.schema_arrow.names)
        cols = [c for c in C.COLUMNS[table] if c.name in names]
        digests = {c.name: [hashlib.sha256() for _ in range(3)] for c in cols}
        rows = 0
        for batch in source.iter_batches(batch_size=1 << 20, columns=[c.name for c in cols]):
            rows += batch.num_rows
            for col in cols:
                _column_digests(batch.column(col.name), col.kind, digests[col.name])
        top.update(f"\n{table}|{rows}".encode())
        for col in cols:
            top.update(f"|{col.name}:{':'.join(d.hexdigest() for d in digests[col.name])}".encode())
    return top.hexdigest()

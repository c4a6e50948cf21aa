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

The pieces, one job each: :mod:`.sql` (a contract column in SQL), :mod:`.twins` (the cross rules
as SQL flags), :mod:`.loading` (reading the files), :mod:`.rules` (checking them),
:mod:`.partition` (one folder per site, and its content hash) and :mod:`.engine` (the
:class:`DuckDataset` session that joins them, and the one-call entry points).
"""

from __future__ import annotations

from .engine import DuckDataset, check_dataset_duckdb, partition_duckdb, validate_and_partition_duckdb
from .partition import partition_sha256, site_files_sha256
from .sql import DEFAULT_MEMORY_LIMIT, DEFAULT_THREADS, PANDAS_FALLBACK_BYTES
from .twins import _TWINS, cross_rule_twins  # noqa: F401  (_TWINS: where a new cross rule's twin goes)

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

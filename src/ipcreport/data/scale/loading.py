"""Reading a dataset folder into DuckDB relations (the loading half of DuckDataset)."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import contract as C
from .. import validation as V
from ..dataset import _label, _table_sources, read_meta, read_raw
from ..validation import Breach
from .sql import PANDAS_FALLBACK_BYTES, _lit, _pandas_header, _q, _typed_select
from .twins import _Rel


class _Loading:
    """DuckDataset's reading half: dataset.yaml and every table, CSV parsed once into a typed
    scratch table, Parquet as a view, Excel (and unreadable files) through the pandas reader."""

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

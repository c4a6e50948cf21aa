"""Where the generated tables go: files in a folder (CSV or Parquet, written block by block) or
Arrow tables in memory (:func:`~ipcreport.data.synth.generate_tables`). Both receive exactly the
same draws, so the frames in memory equal what loading the files would give."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import contract as C

class _BlockTable:
    """A table written in blocks of rows, each checked against the contract's columns."""

    def __init__(self, schema: pa.Schema, writer):
        self.schema = schema
        self.writer = writer
        self.rows = 0

    def write(self, columns: dict[str, pa.Array]) -> None:
        if set(columns) != set(self.schema.names):
            raise ValueError(f"columns {sorted(columns)} are not the contract's {self.schema.names}")
        table = pa.table(columns, schema=self.schema)
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self.writer.close()


class _CsvTable(_BlockTable):
    """CSV with pyarrow: bare header, no quoting (values never need it)."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.file = open(path, "wb")
        self.file.write((",".join(schema.names) + "\n").encode())
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        super().__init__(schema, pacsv.CSVWriter(self.file, schema, write_options=options))

    def close(self) -> None:
        super().close()
        self.file.close()


def _schema(table: str) -> pa.Schema:
    """Column names and order straight from the contract; writing a column it lacks fails."""
    kinds = {"text": pa.string(), "integer": pa.int64(), "number": pa.float64(), "date": pa.date32()}
    return pa.schema([(c.name, kinds[c.kind]) for c in C.COLUMNS[table]])


def _write_small(path: Path, table: str, rows: dict[str, list]) -> None:
    """A small table (sites, contracts) with RFC 4180 quoting only where a value needs it."""
    names = [c.name for c in C.COLUMNS[table]]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        for values in zip(*(rows[n] for n in names)):
            writer.writerow(["" if v is None else v for v in values])


class _ParquetTable(_BlockTable):
    """The Parquet twin of :class:`_CsvTable`: the same blocks, written as row groups."""

    def __init__(self, path: Path, schema: pa.Schema):
        super().__init__(schema, pq.ParquetWriter(path, schema, compression="zstd"))


def _write_small_parquet(path: Path, table: str, rows: dict[str, list]) -> None:
    """A small table (sites, contracts) as Parquet with the contract's types (ISO text -> date)."""
    schema = _schema(table)
    arrays = []
    for field in schema:
        values = rows[field.name]
        if pa.types.is_date32(field.type):
            values = [None if v is None else date.fromisoformat(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path, compression="zstd")


class _FolderSink:
    def __init__(self, folder: Path, format: str = "csv"):
        self.folder = folder
        self.format = format

    def table(self, name: str) -> "_CsvTable | _ParquetTable":
        if self.format == "parquet":
            return _ParquetTable(self.folder / f"{name}.parquet", _schema(name))
        return _CsvTable(self.folder / f"{name}.csv", _schema(name))

    def small(self, name: str, rows: dict[str, list]) -> None:
        if self.format == "parquet":
            _write_small_parquet(self.folder / f"{name}.parquet", name, rows)
        else:
            _write_small(self.folder / f"{name}.csv", name, rows)


class _MemoryTable(_BlockTable):
    """The in-memory twin of :class:`_CsvTable`: the same checks (it is its own writer), keeps Arrow tables."""

    def __init__(self, schema: pa.Schema):
        self.parts: list[pa.Table] = []
        super().__init__(schema, writer=self)

    def write_table(self, table: pa.Table) -> None:
        self.parts.append(table)

    def close(self) -> None:
        pass

    def arrow(self) -> pa.Table:
        return pa.concat_tables(self.parts) if self.parts else self.schema.empty_table()


class _MemorySink:
    def __init__(self):
        self.big: dict[str, _MemoryTable] = {}
        self.rows: dict[str, dict[str, list]] = {}

    def table(self, name: str) -> _MemoryTable:
        self.big[name] = _MemoryTable(_schema(name))
        return self.big[name]

    def small(self, name: str, rows: dict[str, list]) -> None:
        self.rows[name] = rows

    def frames(self) -> dict:
        """Typed frames as the dataset loader returns them (contract kinds -> pandas dtypes)."""
        import pandas as pd

        dtypes = {"text": "string", "integer": "Int64", "number": "float64", "date": "datetime64[ns]"}
        out = {}
        for name in C.TABLES:
            if name in self.big:
                frame = self.big[name].arrow().to_pandas()
            elif name not in self.rows:  # an optional table not generated
                frame = pd.DataFrame({c.name: [] for c in C.COLUMNS[name]})
            else:
                frame = pd.DataFrame({c.name: self.rows[name][c.name] for c in C.COLUMNS[name]})
            for col in C.COLUMNS[name]:
                if col.kind == "date":
                    frame[col.name] = pd.to_datetime(frame[col.name]).astype("datetime64[ns]")
                else:
                    frame[col.name] = frame[col.name].astype(dtypes[col.kind])
            out[name] = frame
        return out

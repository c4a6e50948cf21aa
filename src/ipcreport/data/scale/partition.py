"""Splitting a checked dataset into one folder per site (byte-identical to the pandas path's
Parquet files), and the per-site content hashes the build's cache keys on."""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import contract as C
from ..dataset import SITE_META_FILE
from ..validation import Breach, DatasetInvalid
from .sql import BATCH_ROWS, ROW_GROUP_ROWS, _DUCK_TYPES, _PARTITION_HASH_VERSION, _q
from .twins import _Rel


class _Partitioning:
    """DuckDataset's writing half: one folder per site with the pandas path's files."""

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
            # cast once per batch, not once per site's slice of it (153 slices a batch nationally)
            data = pa.Table.from_batches([batch]).drop_columns(["_row"]).cast(schema)
            steps = np.diff(sites)
            if (steps < 0).any():  # sites interleave: group them, keeping file order within each
                order = np.argsort(sites, kind="stable")
                data, sites = data.take(pa.array(order)), sites[order]
                steps = np.diff(sites)
            bounds = np.flatnonzero(steps) + 1
            for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(sites)]):
                site = int(sites[start])
                if site != no_site:
                    writers.add(site, data.slice(start, stop - start))
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
    so the files come out byte-identical to the pandas partition's.

    A site's rows arrive in pieces through the whole scan of a table, and most sites have fewer
    rows than one row group, so holding them until the end held the whole table in memory (11 GB
    for 5M people's spend). Each piece is appended instead to the site's Arrow stream on disk
    beside its file; :meth:`close` reads each stream back and writes its row groups, two sites
    at a time (Parquet encoding runs outside the GIL). Memory: two sites' rows of one table
    (decompressed; by estimate about 0.25 GB for the largest site's services at 5M people).

    The streams are LZ4-compressed: uncompressed, a national table's spill is several GB (8.7 GB
    for 5M people's services), more than the kernel keeps as dirty page cache, so writing it
    waited on the disk; compressed it is about a quarter of that, for a little CPU."""

    SPILL = pa.ipc.IpcWriteOptions(compression="lz4")

    def __init__(self, table: str, schema: pa.Schema, folders: list[Path]):
        self.paths = [folder / f"{table}.parquet" for folder in folders]
        self.spills = [folder / f".{table}.arrows" for folder in folders]
        self.schema = schema
        self.streams: dict[int, pa.ipc.RecordBatchStreamWriter] = {}

    def add(self, site: int, part: pa.Table) -> None:
        if site not in self.streams:
            self.streams[site] = pa.ipc.new_stream(str(self.spills[site]), self.schema, options=self.SPILL)
        self.streams[site].write_table(part)

    def _write(self, site: int) -> None:
        with pa.memory_map(str(self.spills[site])) as source:
            rows = pa.ipc.open_stream(source).read_all()
            with pq.ParquetWriter(self.paths[site], self.schema) as writer:
                for start in range(0, rows.num_rows, ROW_GROUP_ROWS):
                    writer.write_table(rows.slice(start, ROW_GROUP_ROWS).combine_chunks())
        self.spills[site].unlink()

    def close(self) -> None:
        for stream in self.streams.values():
            stream.close()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(self._write, sorted(self.streams)))
        for site, path in enumerate(self.paths):
            if site not in self.streams:  # a site with no rows in this table: an empty file, as pandas writes one
                pq.write_table(self.schema.empty_table(), path)


def _partition_schema(table: str) -> pa.Schema:
    """The Arrow schema (with pandas metadata) pandas writes for a typed frame of ``table``."""
    dtypes = {"text": "string", "integer": "Int64", "number": "float64", "date": "datetime64[ns]"}
    frame = pd.DataFrame({c.name: pd.Series([], dtype=dtypes[c.kind]) for c in C.COLUMNS[table]})
    return pa.Schema.from_pandas(frame, preserve_index=False)



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

"""The session (DuckDataset: load, check, partition in one DuckDB database) and the one-call
entry points the build and the CLI use."""

from __future__ import annotations

import shutil
import tempfile
import time
import weakref
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from .. import contract as C
from ..dataset import META_FILE, Dataset, file_sha256
from ..validation import Breach, DatasetInvalid
from .loading import _Loading
from .partition import _Partitioning, _partition_schema
from .rules import _Rules
from .sql import DEFAULT_MEMORY_LIMIT, DEFAULT_THREADS, _DUCK_TYPES, _q
from .twins import _Rel


class DuckDataset(_Loading, _Rules, _Partitioning):
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

    # -- what the build reads ----------------------------------------------------------------

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

"""Read a dataset folder (CSV, Parquet or Excel per table), validate it, split it by site.

A dataset is the folder described in shared/contract.md. :func:`load_dataset` returns typed
tables only when every contract rule holds; otherwise it raises
:class:`~ipcreport.data.validation.DatasetInvalid` carrying every breach. Nothing here writes except
:func:`partition_by_site`, which writes each site's rows as Parquet for the site notebooks.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from . import contract as C
from .frames import isin
from .files import replace_folder
from .validation import (Breach, DatasetInvalid, check_cross_tables, check_single_table, empty_table, parse_table,
                         plausibility_breaches)

META_FILE = "dataset.yaml"
SITE_META_FILE = "site.json"


@dataclass
class Dataset:
    """A validated dataset: typed tables plus what dataset.yaml says about them."""

    path: Path
    meta: C.DatasetMeta
    tables: dict[str, pd.DataFrame]
    files: dict[str, str]  # table -> file name it came from (for messages)
    sha256: str  # of every input file's bytes: the dataset's identity in provenance
    warnings: list[Breach] = field(default_factory=list)

    @property
    def site_codes(self) -> list[str]:
        return self.tables["sites"]["site_code"].tolist()

    def __getitem__(self, table: str) -> pd.DataFrame:
        return self.tables[table]


# ---------------------------------------------------------------------------------------------
# reading


def _table_sources(folder: Path) -> tuple[dict[str, tuple[Path, str | None]], list[Breach]]:
    """Where each table comes from: (file, sheet name for Excel). Reports missing/ambiguous ones."""
    sources: dict[str, list[tuple[Path, str | None]]] = {t: [] for t in C.TABLES}
    breaches_read: list[Breach] = []
    for table in C.TABLES:
        for ext in (".csv", ".parquet"):
            if (folder / f"{table}{ext}").exists():
                sources[table].append((folder / f"{table}{ext}", None))
    for workbook in sorted(folder.glob("*.xlsx")):
        if workbook.name.startswith("~$"):  # Excel's lock file while a workbook is open
            continue
        try:
            sheets = pd.ExcelFile(workbook).sheet_names
        except Exception as err:  # noqa: BLE001 - any unreadable workbook is a breach, not a crash
            breaches_read.append(Breach(workbook.name, None, f"not a readable Excel workbook ({type(err).__name__}); "
                                        "remove it or save it again from Excel", count=1))
            continue
        for sheet in sheets:
            if sheet in sources:
                sources[sheet].append((workbook, sheet))
    breaches, chosen = breaches_read, {}
    for table, found in sources.items():
        if not found and table in C.OPTIONAL_TABLES:
            continue  # read as an empty table
        if not found:
            breaches.append(
                Breach(f"{table}.csv", None, f"table '{table}' is missing: expected {table}.csv, "
                       f"{table}.parquet or a sheet named '{table}' in an .xlsx workbook", count=1)
            )
        elif len(found) > 1:
            names = ", ".join(_label(p, s) for p, s in found)
            breaches.append(Breach(_label(*found[0]), None, f"table '{table}' is given more than once: {names}", count=1))
        else:
            chosen[table] = found[0]
    return chosen, breaches


def _label(path: Path, sheet: str | None) -> str:
    return f"{path.name}[{sheet}]" if sheet else path.name


def read_raw(path: Path, sheet: str | None) -> pd.DataFrame:
    """A table as it is in its file: text for CSV, native types for Parquet and Excel."""
    if sheet is not None:
        return pd.read_excel(path, sheet_name=sheet, dtype=object)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def read_meta(folder: Path) -> tuple[C.DatasetMeta | None, list[Breach]]:
    file = folder / META_FILE
    if not file.exists():
        return None, [Breach(META_FILE, None, "dataset.yaml is missing (name, extract_date, synthetic)", count=1)]
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        return None, [Breach(META_FILE, None, f"not UTF-8 text (byte {err.start}); save it as UTF-8", count=1)]
    except yaml.YAMLError as err:
        return None, [Breach(META_FILE, None, f"not valid YAML: {err}", count=1)]
    if not isinstance(raw, dict):
        return None, [Breach(META_FILE, None, f"must be a mapping of keys (name, extract_date, synthetic), "
                             f"not a {type(raw).__name__}", count=1)]
    breaches = [
        Breach(META_FILE, key, "required key is missing", count=1) for key in C.DATASET_META_REQUIRED if key not in raw
    ]
    extract = pd.to_datetime(str(raw.get("extract_date", "")), format="%Y-%m-%d", errors="coerce")
    if "extract_date" in raw and pd.isna(extract):
        breaches.append(Breach(META_FILE, "extract_date", "must be a date written YYYY-MM-DD",
                               count=1, values=(str(raw["extract_date"]),)))
    elif "extract_date" in raw and extract > pd.Timestamp.now().normalize() + pd.Timedelta(days=1):
        breaches.append(Breach(META_FILE, "extract_date", "is in the future: an extract cannot be dated after "
                               "today", count=1, values=(str(raw["extract_date"]),)))
    if "synthetic" in raw and not isinstance(raw["synthetic"], bool):
        breaches.append(Breach(META_FILE, "synthetic", "must be true or false", count=1, values=(str(raw["synthetic"]),)))
    if breaches:
        return None, breaches
    meta = C.DatasetMeta(
        name=str(raw["name"]),
        extract_date=extract,
        synthetic=raw["synthetic"],
        description=str(raw.get("description", "")),
        source=str(raw.get("source", "")),
    )
    return meta, []


def file_sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(set(paths)):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def check_dataset(folder: str | Path) -> tuple[Dataset | None, list[Breach]]:
    """Read and check everything; returns the dataset (None if any error) and all breaches."""
    folder = Path(folder)
    if not folder.is_dir():
        return None, [Breach(str(folder), None, "dataset folder does not exist", count=1)]
    meta, breaches = read_meta(folder)
    sources, source_breaches = _table_sources(folder)
    breaches += source_breaches
    tables, files = {}, {}
    for table, (path, sheet) in sources.items():
        files[table] = _label(path, sheet)
        try:
            raw = read_raw(path, sheet)
        except Exception as err:  # unreadable file: report it and check the rest
            breaches.append(Breach(files[table], None, f"cannot be read: {err}", count=1))
            continue
        raw = raw.reset_index(drop=True)
        typed, parse_breaches, unparsable = parse_table(table, files[table], raw)
        breaches += parse_breaches + check_single_table(table, files[table], typed, unparsable)
        breaches += plausibility_breaches(table, files[table], typed, list(raw.columns))
        tables[table] = typed
    for table in C.OPTIONAL_TABLES:
        if table not in sources:
            tables[table] = empty_table(table)
            files[table] = f"{table}.csv"
    extract = meta.extract_date if meta else None
    breaches += check_cross_tables(tables, files, extract)
    if any(b.severity == "error" for b in breaches):
        return None, breaches
    paths = [folder / META_FILE] + [path for path, _ in sources.values()]
    dataset = Dataset(folder, meta, tables, files, file_sha256(paths), [b for b in breaches if b.severity == "warning"])
    return dataset, breaches


def validate_dataset(folder) -> list[Breach]:
    """Every breach of the contract in a dataset folder (errors and warnings); writes nothing."""
    return check_dataset(folder)[1]


def load_dataset(folder: str | Path) -> Dataset:
    """A validated dataset, or DatasetInvalid listing every breach."""
    dataset, breaches = check_dataset(folder)
    if dataset is None:
        raise DatasetInvalid(str(folder), breaches)
    return dataset


# ---------------------------------------------------------------------------------------------
# per-site partitions


def site_tables(dataset: Dataset, site_code: str) -> dict[str, pd.DataFrame]:
    """One site's rows of every table (people by site_code; person tables through person_id)."""
    t = dataset.tables
    people = t["people"][t["people"]["site_code"] == site_code]
    ids = people["person_id"]
    out = {
        "sites": t["sites"][t["sites"]["site_code"] == site_code],
        "people": people,
        "contracts": t["contracts"][t["contracts"]["site_code"] == site_code],
    }
    for table in ("budgets", "spend", "events", "surveys", "services"):
        out[table] = t[table][isin(t[table]["person_id"], ids)]
    return {name: frame.reset_index(drop=True) for name, frame in out.items()}


def site_warnings(dataset: Dataset, tables: dict[str, pd.DataFrame]) -> list[Breach]:
    """The warnings that concern one site: dataset-wide ones about structure (extra columns),
    and the row-level ones counted again on the site's own rows."""
    structural = [w for w in dataset.warnings if not w.rows]
    rows = check_cross_tables(tables, dataset.files, dataset.meta.extract_date)
    return structural + [b for b in rows if b.severity == "warning"]


def _breach_from_json(raw: dict) -> Breach:
    return Breach(**{**raw, "rows": tuple(raw["rows"]), "values": tuple(raw["values"])})


def site_partition(dataset: Dataset, code: str) -> tuple[dict[str, bytes], dict]:
    """One site's partition in memory: each table as Parquet bytes, and its site.json.

    The Parquet bytes are deterministic for the same rows, so their hash (``partition_sha256``
    in site.json) changes only when this site's data changes.
    """
    tables = site_tables(dataset, code)
    files = {}
    for table, frame in tables.items():
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        files[f"{table}.parquet"] = buffer.getvalue()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update(files[name])
    meta = {
        "site_code": code,
        "dataset": dataset.meta.name,
        "extract_date": dataset.meta.extract_date.date().isoformat(),
        "synthetic": dataset.meta.synthetic,
        "data_sha256": digest.hexdigest(),  # this site's data, not the whole dataset's
        "warnings": [asdict(w) for w in site_warnings(dataset, tables)],
    }
    return files, meta


def write_partition(folder: Path, files: dict[str, bytes], meta: dict) -> None:
    """Write one site's partition beside its place, then swap it in: never half-written."""
    staged = folder.with_name(f".{folder.name}.partial")
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    for name, content in files.items():
        (staged / name).write_bytes(content)
    (staged / SITE_META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    replace_folder(staged, folder)


def partition_by_site(dataset: Dataset, out_dir: Path) -> dict[str, Path]:
    """Write ``out_dir/site=<code>/<table>.parquet`` plus site.json; returns code -> folder."""
    folders = {}
    for code in dataset.site_codes:
        folders[code] = out_dir / f"site={code}"
        write_partition(folders[code], *site_partition(dataset, code))
    return folders


@dataclass
class SiteData:
    """What a site notebook works on: its own rows and the dataset's provenance."""

    site_code: str
    tables: dict[str, pd.DataFrame]
    dataset: str
    extract_date: pd.Timestamp
    synthetic: bool
    data_sha256: str
    warnings: list[Breach]

    def __getitem__(self, table: str) -> pd.DataFrame:
        return self.tables[table]

    @property
    def site(self) -> pd.Series:
        return self.tables["sites"].iloc[0]


def load_site(path: str | Path, site_code: str | None = None) -> SiteData:
    """A site's data from its partition folder (what the build passes) or a whole dataset
    folder (what an analyst opening the notebook by hand has, where ``site_code=None`` means
    the dataset's first site), validated either way."""
    path = Path(path)
    if site_code is None and not (path / SITE_META_FILE).exists():
        dataset = load_dataset(path)
        return site_data(dataset, dataset.site_codes[0])
    partition = path / SITE_META_FILE
    if not partition.exists() and (path / f"site={site_code}" / SITE_META_FILE).exists():
        path, partition = path / f"site={site_code}", path / f"site={site_code}" / SITE_META_FILE
    if partition.exists():
        meta = json.loads(partition.read_text(encoding="utf-8"))
        if site_code is not None and meta["site_code"] != site_code:
            raise ValueError(f"{path} holds site {meta['site_code']}, not {site_code}")
        tables = _read_partition(path)
        return SiteData(meta["site_code"], tables, meta["dataset"], pd.Timestamp(meta["extract_date"]),
                        meta["synthetic"], meta["data_sha256"],
                        [_breach_from_json(w) for w in meta["warnings"]])
    return site_data(load_dataset(path), site_code)


def _read_partition(folder: Path) -> dict[str, pd.DataFrame]:
    """A site partition's tables, person_id as person codes (:func:`with_person_codes`)."""
    people = _read_partition_table(folder, "people")
    universe = _person_universe(people)
    people = people.assign(person_id=_person_codes(pa.chunked_array([pa.array(people["person_id"], type=IDS)]),
                                                   universe, "people"))
    return {t: people if t == "people" else _read_partition_table(folder, t, universe) for t in C.TABLES}


def _read_partition_table(folder: Path, table: str, universe: pa.Array | None = None) -> pd.DataFrame:
    """A table of a site partition; an optional table a partition lacks (written by an older
    version) is empty. Given the people's IDs, person_id is read as codes straight from the
    file's dictionary of IDs: the millions of ID strings are never made."""
    path = folder / f"{table}.parquet"
    if not path.exists() and table in C.OPTIONAL_TABLES:
        return empty_table(table)
    columns = pq.read_schema(path).names
    if universe is None or "person_id" not in columns:
        return pd.read_parquet(path)
    frame = pd.read_parquet(path, columns=[c for c in columns if c != "person_id"])
    ids = pq.read_table(path, columns=["person_id"], read_dictionary=["person_id"]).column(0)
    frame.insert(columns.index("person_id"), "person_id", _person_codes(ids, universe, table))
    return frame


def site_data(dataset: Dataset, site_code: str) -> SiteData:
    """One site of a loaded dataset, as a notebook works on it."""
    if site_code not in dataset.site_codes:
        raise ValueError(f"site {site_code!r} is not in {dataset.path}: choose one of {', '.join(dataset.site_codes)}")
    tables = site_tables(dataset, site_code)
    warnings = site_warnings(dataset, tables)  # before the codes: a warning names the person_id as written
    return SiteData(site_code, with_person_codes(tables), dataset.meta.name, dataset.meta.extract_date,
                    dataset.meta.synthetic, dataset.sha256, warnings)


def with_person_codes(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables with every person_id replaced by its rank among the people's IDs (0, 1, ...).

    A site's analysis joins, filters and groups its tables on person_id millions of times;
    on text (Arrow strings in pandas 3) each step converts or hashes the text again, and a
    100,000-person site spent seconds there. Ranks in sorted order keep every sort, group order
    and equality the text gave, so every figure is the same; no published figure shows a
    person_id. The person tables' IDs were validated to be people's (a contract rule), so an
    ID that is not is a dataset nobody validated: refused, naming the table.
    """
    universe = _person_universe(tables["people"])
    return {name: frame if "person_id" not in frame.columns or pd.api.types.is_integer_dtype(frame["person_id"])
            else frame.assign(person_id=_person_codes(pa.chunked_array([pa.array(frame["person_id"], type=IDS)]),
                                                      universe, name))
            for name, frame in tables.items()}


IDS = pa.large_string()  # the one Arrow type IDs are compared in (an empty column has none of its own)


def _person_universe(people: pd.DataFrame) -> pa.Array:
    """The people's IDs in sorted order: a person's code is the position of its ID here."""
    ids = pa.array(people["person_id"], type=IDS)
    universe = ids.take(pc.sort_indices(ids))
    if pc.count_distinct(universe).as_py() != len(universe):
        raise ValueError("people.person_id holds the same ID twice: validate the dataset first")
    return universe


def _person_codes(ids: pa.ChunkedArray, universe: pa.Array, table: str) -> np.ndarray:
    """Each ID's code; a dictionary-encoded column (as Parquet stores it) is looked up once per
    distinct ID, not once per row."""
    if pa.types.is_dictionary(ids.type) and ids.num_chunks:
        ids = ids.unify_dictionaries()  # one dictionary for all chunks, so the people's IDs are hashed once
        lookup = pc.index_in(ids.chunk(0).dictionary.cast(IDS), value_set=universe)
        parts = [pc.take(lookup, chunk.indices) for chunk in ids.chunks]
    else:
        parts = [pc.index_in(chunk.cast(IDS), value_set=universe) for chunk in ids.chunks]
    parts = [found.fill_null(-1).to_numpy(zero_copy_only=False) for found in parts]
    codes = np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)
    if (codes < 0).any():
        raise ValueError(f"{table}.person_id holds IDs not in people: validate the dataset first")
    return codes

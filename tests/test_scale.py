"""The DuckDB engine (ipcreport.data.scale) against the pandas one, rule by rule and file by file.

The key test: on a small dataset corrupted in many ways at once, both validators report the
very same breaches (file, column, rule, rows, count, values, severity), in the same order.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from ipcreport.data import contract as C
from ipcreport.data.dataset import load_dataset, load_site, partition_by_site
from ipcreport.data.scale import (
    DuckDataset,
    check_dataset_duckdb,
    cross_rule_twins,
    partition_duckdb,
    partition_sha256,
    validate_and_partition_duckdb,
)
from ipcreport.data.synth import SynthConfig, synthesise
from ipcreport.data.dataset import validate_dataset
from ipcreport.data.validation import CROSS_RULES

from conftest import edit_csv

BASE = SynthConfig(sites=3, people=1500, seed=11)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale") / "base"
    synthesise(folder, BASE)
    return folder


@pytest.fixture
def copy(base, tmp_path):
    target = tmp_path / "dataset"
    shutil.copytree(base, target)
    return target


def cells(*changes):
    def edit(frame):
        for row, column, value in changes:
            frame.loc[row, column] = value
        return frame
    return edit


def later_than_extract(folder, days=1) -> str:
    extract = yaml.safe_load((folder / "dataset.yaml").read_text())["extract_date"]
    return (pd.Timestamp(str(extract)) + pd.Timedelta(days=days)).date().isoformat()


# ---------------------------------------------------------------------------------------------
# corruptions (the kinds in test_contract.py, many at once, plus what a text file can hold)


def corrupt_cells(d):
    """Types, required values, bounds, vocabularies, pattern, uniqueness; odd but valid text."""
    edit_csv(d, "people", cells(
        (3, "age", "forty"), (4, "age", "40.5"), (5, "age", "111"), (6, "imd_decile", "0"),
        (7, "prior_service_cost", "-5"), (8, "cohort", "elderly"), (9, "sex", "F"), (10, "need_score", ""),
        (11, "index_date", "03/02/2025"), (12, "index_date", "2025-02-30"), (13, "age", "inf"),
        (14, "need_score", "nan"), (15, "need_score", "1_000"), (16, "age", " 42 "), (17, "sex", " male\u00a0"),
        (18, "person_id", "   "), (19, "exit_date", "2025-13-01"), (20, "imd_decile", "1e1"), (21, "age", "-0"),
        (22, "need_score", "+5"), (23, "age", "1e400"), (24, "management", "bogus"), (30, "person_id", "P0000030"),
        (31, "person_id", ""), (32, "person_id", "")))
    edit_csv(d, "budgets", cells((2, "agreed_budget", "1,200"), (3, "indicative_budget", "-1")))
    edit_csv(d, "events", cells((3, "event_date", "03/02/2025"), (4, "event_type", "gp_visit"), (5, "bed_days", "-2"),
                                (6, "cost", "abc")))
    edit_csv(d, "spend", cells((1, "amount", "1000001"), (2, "category", "holidays"), (3, "amount", "")))
    edit_csv(d, "surveys", cells((1, "ascot", "1.5"), (2, "eq5d", "-0.6"), (3, "ghq12", "37"), (4, "timepoint", "midway")))
    edit_csv(d, "contracts", cells((0, "notice_months", "25"), (1, "funder", "lottery"), (2, "annual_value", "0")))
    edit_csv(d, "sites", cells((0, "site_code", "bad code!"), (1, "site_name", ""), (2, "population", "0")))


def corrupt_cross(d):
    """Every cross-table rule, with missing values where pandas' null handling matters."""
    people = pd.read_csv(d / "people.csv", dtype=str, keep_default_na=False)
    comparison = people.index[people["group"] == "comparison"][:3]
    ipc = people.index[people["group"] == "ipc"][:3]
    child = people.index[people["cohort"] == "children_complex_needs"][0]
    later = later_than_extract(d)
    edit_csv(d, "people", cells(
        (2, "site_code", "NOWHERE"), (comparison[0], "management", "notional"), (ipc[0], "management", ""),
        (child, "age", "18"), (40, "index_date", later), (41, "exit_date", "2000-01-01"), (42, "exit_date", later),
        (43, "group", ""), (44, "cohort", "")))

    def budgets(f):
        f.loc[0, "person_id"] = people.loc[comparison[1], "person_id"]
        f.loc[1, "period_end"] = f.loc[1, "period_start"]
        repeat = f.index[f["person_id"].duplicated(keep=False)]
        a = repeat[0]
        f.loc[a, "period_end"] = (pd.Timestamp(f.loc[a, "period_start"]) + pd.Timedelta(days=400)).date().isoformat()
        f.loc[5, "funded_nhs"] = str(float(f.loc[5, "funded_nhs"]) - 300)
        f.loc[6, "funded_social_care"] = str(float(f.loc[6, "funded_social_care"]) + 0.5)  # within GBP 1
        f.loc[7, ["funded_nhs", "funded_social_care", "funded_education"]] = ""
        f.loc[8, "agreed_budget"] = ""
        f.loc[9, "person_id"] = "P-nobody"
        f.loc[10, "funded_education"] = ""
        f.loc[11, "person_id"] = ""
        tie = f.loc[[repeat[2]]].copy()  # a second period starting the same day: an overlap
        tie["period_end"] = (pd.Timestamp(tie["period_start"].iloc[0]) + pd.Timedelta(days=10)).date().isoformat()
        return pd.concat([f, tie], ignore_index=True)
    edit_csv(d, "budgets", budgets)
    edit_csv(d, "spend", cells(
        (0, "month", "2025-01-15"), (1, "month", "2001-01-01"), (2, "person_id", "P-nobody"),
        (3, "person_id", people.loc[comparison[2], "person_id"]), (4, "month", "2027-01-01"), (5, "month", ""),
        (6, "month", "bad"), (7, "person_id", "")))
    edit_csv(d, "events", cells(
        (6, "event_date", later), (7, "person_id", "P-nobody"), (8, "event_type", "outpatient"), (8, "bed_days", "3"),
        (9, "event_type", ""), (9, "bed_days", "2"), (10, "person_id", "")))

    def surveys(f):
        f.loc[2, "survey_date"] = later
        f.loc[3, "person_id"] = "P-nobody"
        f.loc[5, "person_id"] = ""
        f.loc[6, ["person_id", "timepoint"]] = ["", "follow_up"]
        return pd.concat([f, f.iloc[[0]]], ignore_index=True)
    edit_csv(d, "surveys", surveys)
    edit_csv(d, "contracts", cells((0, "site_code", "NOWHERE")))


def corrupt_structure(d):
    """A missing table, missing and extra columns, a bad dataset.yaml, an empty table."""
    (d / "contracts.csv").unlink()
    edit_csv(d, "events", lambda f: f.drop(columns=["bed_days"]))
    edit_csv(d, "people", lambda f: f.drop(columns=["group"]).assign(nhs_trust="RXX"))
    (d / "dataset.yaml").write_text("name: x\nextract_date: 30/09/2026\nsynthetic: yes please\n")
    edit_csv(d, "budgets", lambda f: f.iloc[0:0])
    edit_csv(d, "surveys", lambda f: f.assign(extra1="a"))


def corrupt_no_periods(d):
    """No budget periods at all: every dated spend row is outside one."""
    edit_csv(d, "budgets", lambda f: f.iloc[0:0])
    edit_csv(d, "spend", cells((0, "person_id", ""), (1, "month", "")))


def corrupt_missing_rule_columns(d):
    """Cross rules whose columns are missing are skipped, as pandas skips them (KeyError)."""
    edit_csv(d, "budgets", lambda f: f.drop(columns=["period_end", "funded_education"]))
    edit_csv(d, "spend", lambda f: f.drop(columns=["amount"]))


def corrupt_mixed_formats(d):
    """Parquet (typed, text-typed, time-zoned) and an Excel workbook beside CSV."""
    dataset = load_dataset(d)
    for table in ("people", "events"):
        dataset.tables[table].to_parquet(d / f"{table}.parquet", index=False)
        (d / f"{table}.csv").unlink()
    surveys = pd.read_csv(d / "surveys.csv", dtype=str, keep_default_na=False)
    surveys.loc[3, "ascot"], surveys.loc[4, "survey_date"], surveys.loc[5, "eq5d"] = "lots", "2025/01/01", ""
    surveys.to_parquet(d / "surveys.parquet", index=False)
    (d / "surveys.csv").unlink()
    spend = dataset.tables["spend"].copy()
    spend["month"] = spend["month"].dt.tz_localize("Europe/London")
    spend.loc[3, "amount"] = np.nan
    spend.to_parquet(d / "spend.parquet", index=False)
    (d / "spend.csv").unlink()
    with pd.ExcelWriter(d / "finance.xlsx") as workbook:
        for table in ("budgets", "contracts"):
            frame = pd.read_csv(d / f"{table}.csv", dtype=str, keep_default_na=False)
            if table == "budgets":
                frame.loc[4, "agreed_budget"], frame.loc[5, "person_id"] = "lots", "P-nobody"
            frame.to_excel(workbook, sheet_name=table, index=False)
            (d / f"{table}.csv").unlink()


def corrupt_parquet_types(d):
    """Parquet columns of the wrong physical type: floats for integers, text, booleans."""
    dataset = load_dataset(d)
    people = dataset.tables["people"].copy()
    people["age"] = people["age"].astype("float64")
    people.loc[2, "age"], people.loc[3, "age"] = 40.5, np.nan
    people["imd_decile"] = people["imd_decile"].astype("string")
    people.loc[4, "imd_decile"] = "x"
    people["index_date"] = people["index_date"].dt.date
    people.loc[5, "index_date"] = None
    people.to_parquet(d / "people.parquet", index=False)
    (d / "people.csv").unlink()
    events = dataset.tables["events"].copy()
    events["bed_days"] = events["bed_days"].astype("float64")
    events.loc[1, "bed_days"] = np.inf
    events["cost"] = events["cost"].notna()
    events.to_parquet(d / "events.parquet", index=False)
    (d / "events.csv").unlink()


def corrupt_csv_text(d):
    """BOM and CRLF, a short row, a quoted newline, a blank line, a duplicated header name."""
    (d / "sites.csv").write_text("\ufeff" + (d / "sites.csv").read_text().replace("\n", "\r\n"))
    lines = (d / "contracts.csv").read_text().splitlines()
    lines[1] = ",".join(lines[1].split(",")[:4])
    lines[2] = lines[2].replace(lines[2].split(",")[1], '"multi\nline"', 1)
    (d / "contracts.csv").write_text("\n".join(lines) + "\n\n")
    lines = (d / "surveys.csv").read_text().splitlines()
    lines.insert(5, "")
    (d / "surveys.csv").write_text("\n".join(lines) + "\n")
    lines = (d / "events.csv").read_text().splitlines()
    (d / "events.csv").write_text("\n".join([lines[0] + ",cost"] + [line + ",1" for line in lines[1:]]) + "\n")


def corrupt_unreadable(d):
    """Files that cannot be read: empty, ragged, not UTF-8 (pandas' messages, word for word)."""
    (d / "contracts.csv").write_bytes(b"")
    lines = (d / "surveys.csv").read_text().splitlines()
    lines[3] += ",1,2"
    (d / "surveys.csv").write_text("\n".join(lines) + "\n")
    (d / "sites.csv").write_bytes((d / "sites.csv").read_bytes() + b"\xff\xfe,bad\n")


def corrupt_outcome_columns(d):
    """The exit_reason column and the optional services table (the contract's later additions)."""
    people = pd.read_csv(d / "people.csv", dtype=str, keep_default_na=False)
    stayed = people.index[people["exit_date"] == ""][:2]
    edit_csv(d, "people", cells((stayed[0], "exit_reason", "died"), (stayed[1], "exit_reason", "abducted")))
    edit_csv(d, "services", cells(
        (0, "person_id", "P-nobody"), (1, "month", "2025-01-15"), (2, "month", later_than_extract(d, 40)),
        (3, "service", "spa"), (4, "funder", "lottery"), (5, "cost", "-1"), (6, "cost", "")))


def corrupt_before_the_later_columns(d):
    """A dataset made before exit_reason and services existed: no breach for their absence."""
    (d / "services.csv").unlink()
    edit_csv(d, "people", lambda f: f.drop(columns=["exit_reason"]).assign(age=f["age"].where(f.index != 3, "x")))
    edit_csv(d, "events", cells((1, "bed_days", "-1"), (2, "event_type", "gp")))


CORRUPTIONS = [corrupt_outcome_columns, corrupt_before_the_later_columns, corrupt_cells, corrupt_cross, corrupt_structure, corrupt_no_periods, corrupt_missing_rule_columns,
               corrupt_mixed_formats, corrupt_parquet_types, corrupt_csv_text, corrupt_unreadable]


# ---------------------------------------------------------------------------------------------
# validation


def test_every_pandas_cross_rule_has_a_duckdb_twin():
    pairs = cross_rule_twins()
    assert [rule for rule, _ in pairs] == list(CROSS_RULES)
    assert len({id(twin) for _, twin in pairs}) == len(CROSS_RULES)


def test_valid_dataset_same_breaches(base):
    pandas_breaches = validate_dataset(base)
    assert [b.severity for b in pandas_breaches] == ["warning"]  # baseline without follow-up
    assert check_dataset_duckdb(base) == pandas_breaches


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__.removeprefix("corrupt_"))
def test_corrupted_dataset_same_breaches(copy, corrupt):
    corrupt(copy)
    expected = validate_dataset(copy)
    assert sum(b.severity == "error" for b in expected) >= 3 or corrupt in (corrupt_csv_text,)
    found = check_dataset_duckdb(copy)
    key = [(b.file, b.column, b.rule, b.rows, b.count) for b in expected]
    assert [(b.file, b.column, b.rule, b.rows, b.count) for b in found] == key
    assert found == expected  # values and severities too, in the same order


def test_unparsable_csv_cells_are_reported_not_crashed_on(copy):
    edit_csv(copy, "people", cells((3, "age", "forty")))
    edit_csv(copy, "contracts", cells((0, "end_date", "2300-01-01")))  # beyond pandas' datetime64[ns]
    found = check_dataset_duckdb(copy)
    age = [b for b in found if b.column == "age"]
    assert [(b.rule, b.rows, b.values) for b in age] == [("type: must be a whole number", (4,), ("'forty'",))]
    end = [b for b in found if b.file == "contracts.csv" and b.column == "end_date"]
    assert end and end[0].rows == (1,) and end[0].values == ("'2300-01-01'",)


def test_parquet_dataset(tmp_path, base):
    folder = tmp_path / "parquet"
    synthesise(folder, BASE, format="parquet")
    assert sorted(p.suffix for p in folder.iterdir() if p.stem in C.TABLES) == [".parquet"] * len(C.TABLES)
    csv_tables, parquet_tables = load_dataset(base).tables, load_dataset(folder).tables
    for table in C.TABLES:  # the same values whichever format synth writes
        pd.testing.assert_frame_equal(csv_tables[table], parquet_tables[table])
    assert check_dataset_duckdb(folder) == validate_dataset(folder)
    breaches, parts = validate_and_partition_duckdb(folder, tmp_path / "parts")
    assert [b.severity for b in breaches] == ["warning"] and len(parts) == BASE.sites
    for code, part in parts.items():
        site = load_site(part)
        assert (site["people"]["site_code"] == code).all() and len(site["spend"]) > 0


def test_small_tables_for_the_build(base):
    """What the build reads besides the partitions (site names, provenance), without pandas."""
    reference = load_dataset(base)
    with DuckDataset(base) as data:
        light = data.to_dataset()
    assert set(light.tables) == {"sites", "contracts"}
    for table in light.tables:
        pd.testing.assert_frame_equal(light.tables[table], reference.tables[table])
    assert (light.meta, light.files, light.sha256, light.warnings, light.site_codes) == (
        reference.meta, reference.files, reference.sha256, reference.warnings, reference.site_codes)


# ---------------------------------------------------------------------------------------------
# partitions


@pytest.fixture(scope="module")
def both_partitions(base, tmp_path_factory):
    root = tmp_path_factory.mktemp("partitions")
    source = root / "dataset"
    shutil.copytree(base, source)
    last = pd.read_csv(base / "sites.csv", dtype=str)["site_code"].iloc[-1]
    edit_csv(source, "contracts", lambda f: f[f["site_code"] != last])  # a site with no contracts
    by_pandas = partition_by_site(load_dataset(source), root / "pandas")
    by_duckdb = partition_duckdb(source, root / "duckdb")
    return by_pandas, by_duckdb


def test_partitions_equal_the_pandas_ones(both_partitions):
    by_pandas, by_duckdb = both_partitions
    assert list(by_duckdb) == list(by_pandas)
    for code in by_pandas:
        assert sorted(p.name for p in by_duckdb[code].iterdir()) == sorted(p.name for p in by_pandas[code].iterdir())
        ours, theirs = load_site(by_duckdb[code]), load_site(by_pandas[code])
        for table in C.TABLES:
            mine, reference = ours[table], theirs[table]
            pd.testing.assert_frame_equal(mine, reference)  # same rows in the same order
            keys = list(mine.columns)
            pd.testing.assert_frame_equal(mine.sort_values(keys, ignore_index=True),
                                          reference.sort_values(keys, ignore_index=True))
            schema = pq.read_schema(by_duckdb[code] / f"{table}.parquet")
            assert schema.equals(pq.read_schema(by_pandas[code] / f"{table}.parquet"), check_metadata=True)
        for name in [f"{table}.parquet" for table in C.TABLES]:  # byte for byte, as pandas writes them
            assert (by_duckdb[code] / name).read_bytes() == (by_pandas[code] / name).read_bytes(), name
        site_json = [json.loads((folder[code] / "site.json").read_text()) for folder in (by_duckdb, by_pandas)]
        assert site_json[0] == site_json[1]  # warnings, and data_sha256 (the site's files)
        assert ours.warnings == theirs.warnings and ours.warnings  # per-site baseline warnings
    assert len(load_site(by_duckdb[list(by_duckdb)[-1]])["contracts"]) == 0


def test_partition_writes_nothing_for_an_invalid_dataset(copy, tmp_path):
    edit_csv(copy, "people", cells((3, "age", "forty")))
    breaches, parts = validate_and_partition_duckdb(copy, tmp_path / "parts")
    assert parts is None and any(b.severity == "error" for b in breaches)
    assert not (tmp_path / "parts").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]  # no scratch left behind


def test_partition_hash_is_canonical_and_per_site(both_partitions, copy, tmp_path):
    by_pandas, by_duckdb = both_partitions
    hashes = {code: partition_sha256(folder) for code, folder in by_duckdb.items()}
    # the same rows written by another engine or writer, other row groups and compression: same hash
    assert hashes == {code: partition_sha256(folder) for code, folder in by_pandas.items()}
    code, folder = next(iter(by_duckdb.items()))
    rewritten = tmp_path / "rewritten"
    shutil.copytree(folder, rewritten)
    table = pq.read_table(rewritten / "spend.parquet")
    pq.write_table(table, rewritten / "spend.parquet", row_group_size=1000, compression="zstd")
    assert partition_sha256(rewritten) == hashes[code]
    # a row moved within the site is a change (an analysis may depend on the order)
    table = pq.read_table(rewritten / "events.parquet")
    pq.write_table(table.take(list(range(1, table.num_rows)) + [0]), rewritten / "events.parquet")
    assert partition_sha256(rewritten) != hashes[code]

    # one spend amount changes for a person of the second site: only that site's hash changes
    before = {c: partition_sha256(f) for c, f in partition_duckdb(copy, tmp_path / "before").items()}
    other = list(before)[1]
    site_of = pd.read_csv(copy / "people.csv", dtype=str).set_index("person_id")["site_code"]

    def change(frame):
        row = frame.index[frame["person_id"].map(site_of) == other][0]
        frame.loc[row, "amount"] = str(float(frame.loc[row, "amount"]) + 1)
        return frame
    edit_csv(copy, "spend", change)
    after = {c: partition_sha256(f) for c, f in partition_duckdb(copy, tmp_path / "after").items()}
    assert {c for c in before if before[c] != after[c]} == {other}


def test_a_dataset_without_the_later_additions_reads_and_partitions_the_same(copy, tmp_path):
    (copy / "services.csv").unlink()
    edit_csv(copy, "people", lambda f: f.drop(columns=["exit_reason"]))
    dataset = load_dataset(copy)
    assert dataset.tables["services"].empty and list(dataset.tables["services"].columns) == [
        c.name for c in C.COLUMNS["services"]]
    assert dataset.tables["people"]["exit_reason"].isna().all()
    by_pandas = partition_by_site(dataset, tmp_path / "pandas")
    by_duckdb = partition_duckdb(copy, tmp_path / "duckdb")
    for code in by_pandas:
        for table in ("people", "services"):
            name = f"{table}.parquet"
            assert (by_duckdb[code] / name).read_bytes() == (by_pandas[code] / name).read_bytes(), name
        assert load_site(by_pandas[code])["services"].empty


def test_a_build_summarises_partitions_in_its_workers_as_the_pandas_path_does(base, tmp_path):
    """At national scale each site's indicators and model rows are made from its partition in the
    build's worker processes (LocalExecutor.map): the same national table and model rows, in the
    same order, as the in-memory path makes one site after another."""
    from ipcreport.pipeline.build import prepare
    from ipcreport.pipeline.jobs import LocalExecutor
    from ipcreport.pipeline.params import load_params

    params = load_params(None, base)
    by_pandas = prepare(base, params, tmp_path / "pandas", engine="pandas")
    with LocalExecutor(2) as executor:
        by_workers = prepare(base, params, tmp_path / "duckdb", engine="duckdb", on_work=executor.start,
                             map_sites=executor.map)
    pd.testing.assert_frame_equal(pd.read_csv(by_workers["national_csv"]), pd.read_csv(by_pandas["national_csv"]))
    pd.testing.assert_frame_equal(pd.read_parquet(by_workers["national_model_rows"]),
                                  pd.read_parquet(by_pandas["national_model_rows"]))
    assert by_workers["national_sha256"] == by_pandas["national_sha256"]
    assert by_workers["fingerprints"] == by_pandas["fingerprints"]

"""Every rule family of the data contract, each broken on purpose in a copy of a valid dataset.

Row numbers in breaches are 1-based data rows, so editing frame row i must be reported as row i+1.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from ipcreport.data.dataset import load_dataset
from ipcreport.data.dataset import validate_dataset
from ipcreport.data.validation import DatasetInvalid

from conftest import edit_csv


def errors(folder):
    return [b for b in validate_dataset(folder) if b.severity == "error"]


def only_breach(folder, file, column, rule_part):
    found = [b for b in errors(folder) if b.file == file and b.column == column and rule_part in b.rule]
    assert found, f"no breach {file}/{column}/{rule_part!r} in:\n" + "\n".join(map(str, errors(folder)))
    return found[0]


def set_cell(row, column, value):
    def edit(frame):
        frame.loc[row, column] = value
        return frame
    return edit


def test_the_fixture_dataset_is_valid(small_dataset):
    assert errors(small_dataset) == []
    dataset = load_dataset(small_dataset)
    assert len(dataset.site_codes) == 2
    assert dataset.tables["people"]["index_date"].dtype.kind == "M"


@pytest.mark.parametrize(
    "table, column, value, rule_part",
    [
        ("people", "age", "forty", "whole number"),
        ("people", "age", "40.5", "whole number"),
        ("budgets", "agreed_budget", "1,200", "must be a number"),
        ("events", "event_date", "03/02/2025", "YYYY-MM-DD"),
        ("events", "event_date", "2025-02-30", "YYYY-MM-DD"),
    ],
)
def test_type_rules_name_file_row_column_and_value(dataset_copy, table, column, value, rule_part):
    edit_csv(dataset_copy, table, set_cell(3, column, value))
    breach = only_breach(dataset_copy, f"{table}.csv", column, rule_part)
    assert breach.rows[0] == 4 and value in " ".join(breach.values)
    # An unparsable cell is one breach, not also a "missing value".
    assert not [b for b in errors(dataset_copy) if b.column == column and "required" in b.rule]


@pytest.mark.parametrize(
    "table, column, value, rule_part",
    [
        ("sites", "site_name", "", "required"),
        ("people", "need_score", "", "required"),
        ("people", "age", "111", "<= 110"),
        ("people", "imd_decile", "0", ">= 1"),
        ("people", "prior_service_cost", "-5", ">= 0"),
        ("sites", "population", "0", "> 0"),
        ("surveys", "ascot", "1.5", "<= 1"),
        ("surveys", "eq5d", "-0.6", ">= -0.594"),
        ("surveys", "ghq12", "37", "<= 36"),
        ("spend", "amount", "1000001", "<= 1e+06"),
        ("contracts", "notice_months", "25", "<= 24"),
        ("people", "cohort", "elderly", "one of"),
        ("people", "sex", "F", "one of"),
        ("events", "event_type", "gp_visit", "one of"),
        ("spend", "category", "holidays", "one of"),
        ("contracts", "funder", "lottery", "one of"),
        ("surveys", "timepoint", "midway", "one of"),
    ],
)
def test_required_range_and_vocabulary_rules(dataset_copy, table, column, value, rule_part):
    edit_csv(dataset_copy, table, set_cell(1, column, value))
    breach = only_breach(dataset_copy, f"{table}.csv", column, rule_part)
    assert breach.rows[0] == 2


def test_site_code_pattern_and_uniqueness(dataset_copy):
    edit_csv(dataset_copy, "sites", set_cell(0, "site_code", "bad code!"))
    only_breach(dataset_copy, "sites.csv", "site_code", "1-20 characters")

    def duplicate_person(frame):
        frame.loc[5, "person_id"] = frame.loc[4, "person_id"]
        return frame
    edit_csv(dataset_copy, "people", duplicate_person)
    breach = only_breach(dataset_copy, "people.csv", "person_id", "unique")
    assert set(breach.rows) == {5, 6}


def test_foreign_keys(dataset_copy):
    edit_csv(dataset_copy, "people", set_cell(2, "site_code", "NOWHERE"))
    edit_csv(dataset_copy, "events", set_cell(0, "person_id", "P-nobody"))
    edit_csv(dataset_copy, "contracts", set_cell(0, "site_code", "NOWHERE"))
    assert only_breach(dataset_copy, "people.csv", "site_code", "listed in sites").rows == (3,)
    assert only_breach(dataset_copy, "events.csv", "person_id", "listed in people").values == ("'P-nobody'",)
    only_breach(dataset_copy, "contracts.csv", "site_code", "listed in sites")


def test_budgets_only_for_budget_holders_and_management_matches_group(dataset_copy):
    people = pd.read_csv(dataset_copy / "people.csv", dtype=str, keep_default_na=False)
    comparison_row = people.index[people["group"] == "comparison"][0]
    ipc_row = people.index[people["group"] == "ipc"][0]
    edit_csv(dataset_copy, "budgets", set_cell(0, "person_id", people.loc[comparison_row, "person_id"]))
    edit_csv(dataset_copy, "people", set_cell(comparison_row, "management", "notional"))
    edit_csv(dataset_copy, "people", set_cell(ipc_row, "management", ""))
    only_breach(dataset_copy, "budgets.csv", "person_id", "group ipc")
    assert only_breach(dataset_copy, "people.csv", "management", "empty for comparison").rows == (comparison_row + 1,)
    assert only_breach(dataset_copy, "people.csv", "management", "required for ipc").rows == (ipc_row + 1,)


def test_children_must_be_under_18(dataset_copy):
    people = pd.read_csv(dataset_copy / "people.csv", dtype=str)
    child = people.index[people["cohort"] == "children_complex_needs"][0]
    edit_csv(dataset_copy, "people", set_cell(child, "age", "18"))
    assert only_breach(dataset_copy, "people.csv", "age", "age < 18").rows == (child + 1,)


def test_funding_must_add_up(dataset_copy):
    def shortfall(frame):
        frame.loc[2, "funded_nhs"] = str(float(frame.loc[2, "funded_nhs"]) - 300)
        frame.loc[3, "funded_social_care"] = str(float(frame.loc[3, "funded_social_care"]) + 0.5)  # within GBP 1
        return frame
    edit_csv(dataset_copy, "budgets", shortfall)
    breach = only_breach(dataset_copy, "budgets.csv", "agreed_budget", "within GBP 1")
    assert breach.rows == (3,) and "agreed" in breach.values[0]


def test_budget_periods(dataset_copy):
    budgets = pd.read_csv(dataset_copy / "budgets.csv", dtype=str)
    repeat = budgets.index[budgets["person_id"].duplicated(keep=False)]
    first, second = repeat[0], repeat[1]  # two consecutive periods of one person

    def edit(frame):
        frame.loc[0, "period_end"] = frame.loc[0, "period_start"]
        start = pd.Timestamp(frame.loc[first, "period_start"])
        frame.loc[first, "period_end"] = (start + pd.Timedelta(days=400)).date().isoformat()
        return frame
    edit_csv(dataset_copy, "budgets", edit)
    assert 1 in only_breach(dataset_copy, "budgets.csv", "period_end", "after period_start").rows
    assert first + 1 in only_breach(dataset_copy, "budgets.csv", "period_end", "at most 366 days").rows
    assert second + 1 in only_breach(dataset_copy, "budgets.csv", "period_start", "overlap").rows


def test_spend_months(dataset_copy):
    def edit(frame):
        frame.loc[0, "month"] = frame.loc[0, "month"][:8] + "15"
        frame.loc[1, "month"] = "2001-01-01"
        return frame
    edit_csv(dataset_copy, "spend", edit)
    assert only_breach(dataset_copy, "spend.csv", "month", "first day").rows == (1,)
    assert 2 in only_breach(dataset_copy, "spend.csv", "month", "within one of the person's budget periods").rows


def test_nothing_observed_after_extract_date(dataset_copy):
    extract = yaml.safe_load((dataset_copy / "dataset.yaml").read_text())["extract_date"]
    later = (pd.Timestamp(str(extract)) + pd.Timedelta(days=1)).date().isoformat()
    edit_csv(dataset_copy, "events", set_cell(6, "event_date", later))
    edit_csv(dataset_copy, "surveys", set_cell(2, "survey_date", later))
    assert only_breach(dataset_copy, "events.csv", "event_date", "extract_date").rows == (7,)
    only_breach(dataset_copy, "surveys.csv", "survey_date", "extract_date")


def test_one_survey_per_timepoint(dataset_copy):
    def duplicate(frame):
        return pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    frame = edit_csv(dataset_copy, "surveys", duplicate)
    breach = only_breach(dataset_copy, "surveys.csv", "timepoint", "at most one")
    assert breach.rows == (1, len(frame))


def test_structure_missing_table_column_and_meta(dataset_copy):
    (dataset_copy / "contracts.csv").unlink()
    edit_csv(dataset_copy, "events", lambda f: f.drop(columns=["bed_days"]))
    (dataset_copy / "dataset.yaml").write_text("name: x\nextract_date: 30/09/2026\nsynthetic: yes please\n")
    found = {(b.file, b.column) for b in errors(dataset_copy)}
    assert ("contracts.csv", None) in found
    assert ("events.csv", "bed_days") in found
    assert ("dataset.yaml", "extract_date") in found and ("dataset.yaml", "synthetic") in found


def test_empty_tables_are_valid(dataset_copy):
    # A site early in its roll-out may have no budgets or spend yet: header-only files are fine.
    for table in ("budgets", "spend", "contracts"):
        edit_csv(dataset_copy, table, lambda f: f.iloc[0:0])
    assert errors(dataset_copy) == []


def test_extra_columns_are_a_warning_not_an_error(dataset_copy):
    edit_csv(dataset_copy, "people", lambda f: f.assign(nhs_trust="RXX"))
    breaches = validate_dataset(dataset_copy)
    assert [b.severity for b in breaches if b.column == "nhs_trust"] == ["warning"]
    assert load_dataset(dataset_copy).warnings


def test_parquet_and_excel_are_accepted_and_checked(small_dataset, tmp_path):
    target = tmp_path / "mixed"
    shutil.copytree(small_dataset, target)
    for table in ("people", "events"):  # Parquet, typed as a data warehouse would write it
        frame = load_dataset(small_dataset).tables[table]
        frame.to_parquet(target / f"{table}.parquet", index=False)
        (target / f"{table}.csv").unlink()
    with pd.ExcelWriter(target / "finance.xlsx") as workbook:  # Excel, as finance teams send it
        for table in ("budgets", "contracts"):
            frame = pd.read_csv(target / f"{table}.csv", dtype=str, keep_default_na=False)
            frame.to_excel(workbook, sheet_name=table, index=False)
            (target / f"{table}.csv").unlink()
    assert errors(target) == []
    assert load_dataset(target).files["budgets"] == "finance.xlsx[budgets]"

    budgets = pd.read_excel(target / "finance.xlsx", sheet_name="budgets", dtype=object)
    budgets.loc[4, "agreed_budget"] = "lots"
    # append mode is openpyxl's (pandas picks XlsxWriter for new files when it is installed)
    with pd.ExcelWriter(target / "finance.xlsx", engine="openpyxl", mode="a", if_sheet_exists="replace") as workbook:
        budgets.to_excel(workbook, sheet_name="budgets", index=False)
    assert only_breach(target, "finance.xlsx[budgets]", "agreed_budget", "must be a number").rows == (5,)


def corrupt_three_tables(folder):
    """The issue's acceptance case: funding that does not add up, an unknown site, a late event."""
    extract = yaml.safe_load((folder / "dataset.yaml").read_text())["extract_date"]
    edit_csv(folder, "budgets", set_cell(9, "funded_nhs", "0"))
    edit_csv(folder, "people", set_cell(11, "site_code", "E99999999"))
    edit_csv(folder, "events", set_cell(13, "event_date", (pd.Timestamp(str(extract)) + pd.Timedelta(days=30)).date().isoformat()))


def test_all_errors_reported_at_once_and_load_refuses(dataset_copy):
    corrupt_three_tables(dataset_copy)
    with pytest.raises(DatasetInvalid) as caught:
        load_dataset(dataset_copy)
    text = str(caught.value)
    assert "budgets.csv, row 10, column agreed_budget" in text
    assert "people.csv, row 12, column site_code" in text and "E99999999" in text
    assert "events.csv, row 14, column event_date" in text


def test_validate_command_exit_code_and_nothing_written(dataset_copy):
    before = sorted(p.name for p in dataset_copy.iterdir())
    ok = subprocess.run([sys.executable, "-m", "ipcreport.cli", "validate", str(dataset_copy)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    corrupt_three_tables(dataset_copy)
    bad = subprocess.run([sys.executable, "-m", "ipcreport.cli", "validate", str(dataset_copy)],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    for expected in ("budgets.csv, row 10, column agreed_budget", "people.csv, row 12, column site_code",
                     "events.csv, row 14, column event_date"):
        assert expected in bad.stderr
    assert sorted(p.name for p in dataset_copy.iterdir()) == before


def test_exit_reason_vocabulary_and_only_with_an_exit_date(dataset_copy):
    people = pd.read_csv(dataset_copy / "people.csv", dtype=str, keep_default_na=False)
    stayed = people.index[people["exit_date"] == ""][:2]
    edit_csv(dataset_copy, "people", set_cell(stayed[0], "exit_reason", "died"))
    breach = only_breach(dataset_copy, "people.csv", "exit_reason", "only where exit_date is set")
    assert breach.rows == (stayed[0] + 1,)
    edit_csv(dataset_copy, "people", set_cell(stayed[1], "exit_reason", "abducted"))
    breach = only_breach(dataset_copy, "people.csv", "exit_reason", "must be one of")
    assert breach.rows == (stayed[1] + 1,) and "abducted" in " ".join(breach.values)


def test_services_table_is_optional_and_checked_when_given(dataset_copy):
    edit_csv(dataset_copy, "services", set_cell(2, "service", "spa"))
    edit_csv(dataset_copy, "services", set_cell(3, "month", "2025-01-15"))
    edit_csv(dataset_copy, "services", set_cell(4, "person_id", "P-nobody"))
    assert only_breach(dataset_copy, "services.csv", "service", "must be one of").rows == (3,)
    assert only_breach(dataset_copy, "services.csv", "month", "first day of a month").rows == (4,)
    assert only_breach(dataset_copy, "services.csv", "person_id", "listed in people").rows == (5,)
    (dataset_copy / "services.csv").unlink()
    edit_csv(dataset_copy, "people", lambda f: f.drop(columns=["exit_reason"]))
    assert errors(dataset_copy) == []  # a dataset made before these additions is still valid
    assert load_dataset(dataset_copy).tables["services"].empty

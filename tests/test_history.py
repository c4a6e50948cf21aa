"""Since last quarter: a dataset as extracted earlier, and the history of headline figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ipcreport.report import history as H
from ipcreport.data.dataset import load_dataset
from ipcreport.data.snapshot import write_snapshot


def test_a_snapshot_is_the_dataset_as_extracted_three_months_earlier(small_dataset, tmp_path):
    full = load_dataset(small_dataset)
    earlier = full.meta.extract_date - pd.DateOffset(months=3)
    snap = load_dataset(write_snapshot(small_dataset, tmp_path / "q1", f"{earlier:%Y-%m-%d}"))  # validates
    assert snap.meta.extract_date == earlier
    people, full_people = snap.tables["people"], full.tables["people"]
    assert (people["index_date"] <= earlier).all()
    assert len(people) == (full_people["index_date"] <= earlier).sum()
    assert not (people["exit_date"] > earlier).any()
    assert (snap.tables["spend"]["month"] <= earlier).all() and (snap.tables["events"]["event_date"] <= earlier).all()
    # What was observed by then is unchanged: spend up to the earlier date is the same in both.
    spend = full.tables["spend"]
    before = spend.loc[spend["month"] <= earlier, "amount"].sum()
    assert before > 0 and snap.tables["spend"]["amount"].sum() == pytest.approx(before)
    with pytest.raises(ValueError, match="not before"):
        write_snapshot(small_dataset, tmp_path / "later", f"{full.meta.extract_date:%Y-%m-%d}")


def metrics(site: str, extract: str, irr: tuple[float, float, float], total: float) -> dict:
    return {"site_code": site, "extract_date": extract, "budget_total": total, "admissions_irr": irr[0],
            "admissions_irr_low": irr[1], "admissions_irr_high": irr[2], "spend_in_year": None}


def test_changes_since_the_previous_extract_by_hand(tmp_path):
    path = tmp_path / "history.parquet"
    H.append(path, H.rows_from_metrics("q1", [metrics("A", "2026-06-30", (0.90, 0.81, 1.0), 1_000_000.0)]))
    # A rebuild of the same run and extract replaces its rows rather than adding twice.
    H.append(path, H.rows_from_metrics("q1", [metrics("A", "2026-06-30", (0.90, 0.81, 1.0), 1_000_000.0)]))
    now = H.rows_from_metrics("q2", [metrics("A", "2026-09-30", (0.60, 0.54, 0.6667), 1_200_000.0)])
    table = H.changes(H.read(path), now, "A", "2026-09-30").set_index("figure")
    assert len(H.read(path)) == 2  # two figures of one extract
    assert table.loc["budget_total", "change"] == pytest.approx(200_000.0)
    assert table.loc["budget_total", "beyond_chance"] is None  # counted from records: no test
    irr = table.loc["admissions_irr"]
    assert irr["change"] == pytest.approx(0.60 / 0.90 - 1)
    # log-scale standard errors: ln(1/0.81)/(2 x 1.96) and ln(0.6667/0.54)/(2 x 1.96), about 0.054 each.
    se = np.hypot(np.log(1.0 / 0.81), np.log(0.6667 / 0.54)) / (2 * H.Z95)
    assert abs(np.log(0.60 / 0.90)) / se > H.Z95 and irr["beyond_chance"] is True
    assert irr["then_extract"] == "2026-06-30"
    # A small move inside the noise is not beyond chance; a site with no earlier extract has no table.
    close = H.rows_from_metrics("q2", [metrics("A", "2026-09-30", (0.88, 0.79, 0.98), 1_000_000.0)])
    assert H.changes(H.read(path), close, "A", "2026-09-30").set_index("figure").loc["admissions_irr", "beyond_chance"] is False
    assert H.changes(H.read(path), now, "B", "2026-09-30").empty


def test_the_since_table_says_no_change_and_names_projections(tmp_path):
    from ipcreport.report.sections import since

    path = tmp_path / "history.parquet"
    before = {**metrics("A", "2026-06-30", (0.90, 0.81, 1.0), 1_000_000.0), "site_name": "Alpha",
              "utilisation": 0.871, "overspend_probability": 0.004, "double_running_cost": 10_000.0}
    H.append(path, H.rows_from_metrics("q1", [before]))
    now = {**before, "extract_date": "2026-09-30", "utilisation": 0.874, "overspend_probability": 0.15,
           "double_running_cost": 12_000.0, "budget_total": 1_200_000.0}
    changes = since.site_changes(path, now)
    shown = since.table(changes)
    # 87.1% and 87.4% both print as 87%: "no change", not "+0 points"
    assert shown.loc["Utilisation of completed budgets", "Change"] == "no change"
    assert shown.loc["Chance of exceeding the pooled fund", "Beyond chance"] == "not tested (a projection)"
    assert shown.loc["Agreed budgets in the year", "Beyond chance"] == "not tested (counted, not estimated)"
    assert "went from under 1% to 15%" in since.sentence(changes)
    # a verdict lost as NaN (a float column) is "not tested", never "yes"
    assert since.table(changes.assign(beyond_chance=float("nan")))["Beyond chance"].str.startswith("not tested").all()
    # the overview: one row per site, a column per figure
    wide = since.overview_table(path, pd.DataFrame([now]))
    assert list(wide.index) == ["Alpha"]
    assert wide.loc["Alpha", "Agreed budgets in the year"] == "£1.0m to £1.2m (+£200k)"


def test_previous_by_site_is_previous_for_every_site():
    """The one-pass version a build plans with equals the per-site filter, site by site:
    the latest earlier extract, and of that extract the last run in the table's order."""
    rows = pd.DataFrame({
        "run": ["q1", "q1", "q2", "q2", "q3", "q1", "q2", "q9"],
        "site_code": ["A", "A", "A", "A", "A", "B", "B", "C"],
        "extract_date": ["2026-03-31", "2026-03-31", "2026-06-30", "2026-06-30", "2026-09-30",
                         "2026-03-31", "2026-03-31", "2026-09-30"],
        "figure": ["x", "y", "x", "y", "x", "x", "x", "x"],
        "value": [1.0, 2, 3, 4, 5, 6, 7, 8], "low": np.nan, "high": np.nan})
    found = H.previous_by_site(rows, "2026-09-30")
    assert sorted(found) == ["A", "B"]  # C has nothing before the extract
    assert found["A"]["value"].tolist() == [3.0, 4.0] and found["B"]["value"].tolist() == [7.0]
    for code in "AB":
        pd.testing.assert_frame_equal(found[code], H.previous(rows, code, "2026-09-30"))
    assert H.previous(rows, "C", "2026-09-30").empty

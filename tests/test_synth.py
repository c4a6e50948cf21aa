"""The synthetic generator: deterministic, valid under the contract, and true to its truth.json."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ipcreport.data import contract as C
from ipcreport.data.synth import SITE_AREAS, SynthConfig, synthesise

REPO = Path(__file__).resolve().parents[1]
SMALL = SynthConfig(sites=3, people=1500, seed=2015)
# Bigger, with effects that are not the defaults and a known confounder, for the statistics.
LARGE = SynthConfig(
    sites=3,
    people=30_000,
    seed=7,
    admissions_rr=0.75,
    bed_days_rr=0.65,
    ascot_gain=0.06,
    baseline_need_imbalance=0.2,
)
DATES = {
    "sites": ["go_live"],
    "people": ["index_date", "exit_date"],
    "budgets": ["period_start", "period_end"],
    "spend": ["month"],
    "events": ["event_date"],
    "surveys": ["survey_date"],
    "contracts": ["end_date"],
    "services": ["month"],
}


def read(folder: Path) -> dict[str, pd.DataFrame]:
    return {
        t: pd.read_csv(folder / f"{t}.csv", dtype={"person_id": str, "site_code": str}, parse_dates=DATES[t])
        for t in C.TABLES
    }


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth") / "small"
    truth = synthesise(folder, SMALL)
    return folder, truth, read(folder)


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth") / "large"
    truth = synthesise(folder, LARGE)
    return folder, truth, read(folder)


# ---------------------------------------------------------------------------------------------
# determinism and writing


def test_same_config_gives_byte_identical_files(small, tmp_path):
    folder, truth, _ = small
    again = synthesise(tmp_path / "again", SMALL)
    assert digests(tmp_path / "again") == digests(folder)
    assert again == truth
    assert set(digests(folder)) == {f"{t}.csv" for t in C.TABLES} | {"dataset.yaml", "truth.json"}
    assert json.loads((folder / "truth.json").read_text()) == truth


def test_different_seed_gives_different_data(small, tmp_path):
    folder, _, _ = small
    synthesise(tmp_path / "other", replace(SMALL, seed=SMALL.seed + 1))
    theirs, ours = digests(tmp_path / "other"), digests(folder)
    assert theirs["sites.csv"] != ours["sites.csv"]  # go-live months are drawn
    for table in ("people", "budgets", "spend", "events", "surveys"):
        assert theirs[f"{table}.csv"] != ours[f"{table}.csv"], table


def test_refuses_to_overwrite_a_non_empty_folder(tmp_path):
    tiny = SynthConfig(sites=1, people=60)
    target = tmp_path / "data"
    target.mkdir()
    synthesise(target, tiny)  # an empty folder is fine
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match=str(target)):
        synthesise(target, tiny)
    assert (target / "keep.txt").read_text() == "mine"
    synthesise(target, replace(tiny, seed=3), overwrite=True)
    assert not (target / "keep.txt").exists()
    assert json.loads((target / "truth.json").read_text())["config"]["seed"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temporary folders left behind


def test_dataset_yaml(small):
    import yaml

    folder, _, _ = small
    meta = yaml.safe_load((folder / "dataset.yaml").read_text())
    assert meta["name"] == SMALL.name
    assert meta["extract_date"] == SMALL.extract_date
    assert meta["synthetic"] is True
    assert meta["source"] == "ipcreport synth"
    assert meta["config"]["people"] == SMALL.people and meta["description"]


# ---------------------------------------------------------------------------------------------
# the contract


def test_validator_finds_no_errors(small):
    from ipcreport.data.dataset import validate_dataset

    folder, _, _ = small
    errors = [b for b in validate_dataset(folder) if b.severity == "error"]
    assert errors == []


def test_contract_rules_hold_on_the_frames(small):
    _, _, t = small
    extract = pd.Timestamp(SMALL.extract_date)
    people, budgets, spend, events, surveys = (t[k] for k in ("people", "budgets", "spend", "events", "surveys"))
    sites, contracts = t["sites"], t["contracts"]

    # columns exactly as the contract spells them
    for table, frame in t.items():
        assert list(frame.columns) == [c.name for c in C.COLUMNS[table]], table
    # vocabularies and ranges
    for table, frame in t.items():
        for col in C.COLUMNS[table]:
            values = frame[col.name]
            if col.required:
                assert values.notna().all(), (table, col.name)
            present = values.dropna()
            if col.allowed:
                assert present.isin(col.allowed).all(), (table, col.name)
            if col.minimum is not None:
                assert (present > col.minimum).all() if col.exclusive_minimum else (present >= col.minimum).all()
            if col.maximum is not None:
                assert (present <= col.maximum).all(), (table, col.name)
            if col.unique:
                assert present.is_unique, (table, col.name)
    assert sites["site_code"].str.fullmatch(C.SITE_CODE_PATTERN).all()
    assert people["person_id"].str.fullmatch(r"P\d{7}").all()  # pseudonymous, never 10 digits

    # foreign keys, and budgets/spend only for budget holders
    assert people["site_code"].isin(sites["site_code"]).all()
    assert contracts["site_code"].isin(sites["site_code"]).all()
    ipc_ids = people.loc[people["group"] == "ipc", "person_id"]
    assert budgets["person_id"].isin(ipc_ids).all() and spend["person_id"].isin(ipc_ids).all()
    assert events["person_id"].isin(people["person_id"]).all()
    assert surveys["person_id"].isin(people["person_id"]).all()

    # people
    assert (people.loc[people["cohort"] == "children_complex_needs", "age"] < C.CHILD_AGE_LIMIT).all()
    assert (people["management"].notna() == (people["group"] == "ipc")).all()
    assert (people["exit_date"].dropna() >= people.loc[people["exit_date"].notna(), "index_date"]).all()

    # nothing observed after the extract date
    for frame, column in ((people, "index_date"), (people, "exit_date"), (spend, "month"),
                          (events, "event_date"), (surveys, "survey_date")):
        assert (frame[column].dropna() <= extract).all(), column

    # budgets: funding sums (exactly, in pennies), period lengths, no overlaps
    funded = budgets[list(C.FUNDING_COLUMNS)].sum(axis=1)
    assert ((funded - budgets["agreed_budget"]).abs() < 0.005).all()
    days = (budgets["period_end"] - budgets["period_start"]).dt.days
    assert ((days > 0) & (days <= C.MAX_PERIOD_DAYS)).all()
    ordered = budgets.sort_values(["person_id", "period_start"])
    previous_end = ordered.groupby("person_id")["period_end"].shift()
    assert not (ordered["period_start"] <= previous_end).any()
    children = people.loc[people["cohort"] == "children_complex_needs", "person_id"]
    assert (budgets.loc[~budgets["person_id"].isin(children), "funded_education"] == 0).all()
    assert (budgets.loc[budgets["person_id"].isin(children), "funded_education"] > 0).all()

    # spend: first of the month, inside one of the person's periods, one row per person-month-category
    assert (spend["month"].dt.day == 1).all()
    joined = pd.merge_asof(
        spend.sort_values("month"), budgets.sort_values("period_start")[["person_id", "period_start", "period_end"]],
        left_on="month", right_on="period_start", by="person_id", direction="backward",
    )
    assert joined["period_end"].notna().all() and (joined["month"] <= joined["period_end"]).all()
    assert not spend.duplicated(["person_id", "month", "category"]).any()
    refunds = spend.loc[spend["amount"] < 0, "person_id"]
    dp = people.loc[people["management"] == "direct_payment", "person_id"]
    assert len(refunds) > 0 and refunds.isin(dp).all()

    # events: admissions only have bed days; cover the 12 months before index
    assert (events.loc[~events["event_type"].isin(C.ADMISSION_TYPES), "bed_days"] == 0).all()
    first = events.merge(people[["person_id", "index_date"]], on="person_id")
    assert ((first["index_date"] - first["event_date"]).dt.days <= 365).all()

    # surveys: one baseline at index for everyone, at most one follow-up a year later
    assert not surveys.duplicated(["person_id", "timepoint"]).any()
    s = surveys.merge(people[["person_id", "index_date"]], on="person_id")
    offset = (s["survey_date"] - s["index_date"]).dt.days
    assert (offset[s["timepoint"] == "baseline"] == 0).all()
    assert (offset[s["timepoint"] == "follow_up"] == 365).all()
    assert (surveys["timepoint"] == "baseline").sum() == len(people)

    # contracts
    assert (contracts["end_date"] > extract).all()
    assert contracts["notice_months"].between(3, 12).all()
    assert set(contracts["category"]) <= set(C.SPEND_CATEGORIES)
    assert contracts.groupby("site_code").size().between(3, 6).all()


# ---------------------------------------------------------------------------------------------
# the truth


def test_counts_in_truth_match_the_tables(small):
    folder, truth, t = small
    people = t["people"]
    counts = people.groupby(["site_code", "group", "cohort"]).size()
    for site, by_group in truth["counts"]["by_site_group_cohort"].items():
        for group, by_cohort in by_group.items():
            for cohort, n in by_cohort.items():
                assert counts.get((site, group, cohort), 0) == n, (site, group, cohort)
    by_site = people.groupby(["site_code", "group"]).size()
    for site, groups in truth["counts"]["by_site"].items():
        assert {g: int(by_site.get((site, g), 0)) for g in C.GROUPS} == groups
    for table, n in truth["counts"]["rows"].items():
        assert len(t[table]) == n, table
    assert truth["counts"]["people"] == SMALL.people
    assert truth["config"]["extract_date"] == SMALL.extract_date.isoformat()
    mgmt = people["management"].value_counts()
    assert {k: int(mgmt.get(k, 0)) for k in C.MANAGEMENT} == truth["management"]["counts"]


def test_budgets_follow_the_ras(small):
    _, truth, t = small
    b = t["budgets"].merge(t["people"], on="person_id")
    rate = b["cohort"].map(truth["budgets"]["ras_rate_gbp_per_point"])
    assert np.allclose(b["indicative_budget"], (rate * b["need_score"]).round(2), atol=0.006)
    ratio = b["agreed_budget"] / b["indicative_budget"]
    assert abs(ratio.median() - 1.0) < 0.02
    assert 0.08 < np.log(ratio).std() < 0.16
    # periods are consecutive 365-day years of care from index_date
    k = (b["period_start"] - b["index_date"]).dt.days
    assert (k % 365 == 0).all() and ((b["period_end"] - b["period_start"]).dt.days == 364).all()


def test_sites_are_the_listed_areas_and_stable(small, tmp_path):
    _, truth, t = small
    areas_file = REPO / "data" / "reference" / "areas.csv"
    if areas_file.exists():
        areas = pd.read_csv(areas_file).set_index("area_code")
        for code, name, region, population, imd in SITE_AREAS:
            row = areas.loc[code]
            assert (row["area_name"], row["nhs_region"], int(row["population"])) == (name, region, population)
            assert pd.isna(row["imd_score"]) if imd is None else row["imd_score"] == pytest.approx(imd)
    assert len({a[2] for a in SITE_AREAS[:9]}) == 7  # the default 9 sites span every NHS region
    all_sites = synthesise(tmp_path / "thirty", SynthConfig(sites=30, people=1500))
    per_site = [v["people"] for v in all_sites["sites"].values()]
    assert len(per_site) == 30 and min(per_site) >= 40 and sum(per_site) == 1500
    for code, site in truth["sites"].items():  # more sites do not move the first ones' go-live
        assert all_sites["sites"][code]["go_live"] == site["go_live"]
    go_live = t["sites"]["go_live"]
    assert (go_live.dt.day == 1).all() and go_live.dt.year.isin([2023, 2024]).all()


def test_a_national_dataset_covers_every_area_in_proportion_to_population(tmp_path):
    """sites=153: every upper-tier area of areas.csv is a site, people in proportion to population
    (a Birmingham-sized area ~2% of them), and the areas without an IMD 2019 score still work."""
    areas = pd.read_csv(REPO / "data" / "reference" / "areas.csv").set_index("area_code")
    assert len(SITE_AREAS) == len(areas) == 153
    people = 60_000
    truth = synthesise(tmp_path / "england", SynthConfig(sites=153, people=people, seed=3, services=False))
    sites = pd.read_csv(tmp_path / "england" / "sites.csv").set_index("site_code")
    assert sorted(sites.index) == sorted(areas.index)
    assert sites["imd_score"].isna().sum() == areas["imd_score"].isna().sum() == 7
    per_site = pd.Series({code: v["people"] for code, v in truth["sites"].items()})
    assert per_site.sum() == people and per_site.min() >= 40
    # at least 40 each, the rest by population: within one person of that, everywhere
    expected = 40 + (people - 40 * 153) * areas["population"] / areas["population"].sum()
    assert (per_site - expected[per_site.index]).abs().max() < 1
    # in a 5-million-person nation, Birmingham (1.14 of England's 56.6 million) holds ~100,000
    from ipcreport.data.synth.arrays import _allocate

    national = _allocate(5_000_000, np.array([a[3] for a in SITE_AREAS], dtype=float), 40)
    assert 99_000 < national[[a[0] for a in SITE_AREAS].index("E08000025")] < 102_000
    no_score = sites.index[sites["imd_score"].isna()]
    deciles = pd.read_csv(tmp_path / "england" / "people.csv", usecols=["site_code", "imd_decile"])
    assert deciles[deciles["site_code"].isin(no_score)]["imd_decile"].between(1, 10).mean() > 0.9


def emergency_did(t: dict[str, pd.DataFrame], extract: date, value: str = "count") -> float:
    """Ratio of ratios of emergency admissions (or bed days) per person-year, after vs before index."""
    people = t["people"].set_index("person_id")
    end = people["exit_date"].fillna(pd.Timestamp(extract))
    years_after = ((end - people["index_date"]).dt.days + 1) / 365.25
    years = pd.DataFrame({"before": 365 / 365.25, "after": years_after, "group": people["group"]})
    ev = t["events"][t["events"]["event_type"] == "emergency_admission"].copy()
    ev["after"] = ev["event_date"].values >= people.loc[ev["person_id"], "index_date"].values
    ev["group"] = people.loc[ev["person_id"], "group"].values
    ev["count"] = 1
    totals = ev.groupby(["group", "after"])[value].sum()
    py = years.groupby("group")[["before", "after"]].sum()
    rate = {(g, a): totals[(g, a)] / py.loc[g, "after" if a else "before"] for g in C.GROUPS for a in (False, True)}
    return (rate[("ipc", True)] / rate[("ipc", False)]) / (rate[("comparison", True)] / rate[("comparison", False)])


def test_known_effects_are_recovered(large):
    _, truth, t = large
    people = t["people"]
    ipc = people[people["group"] == "ipc"]
    shares = ipc["management"].value_counts(normalize=True)
    assert abs(shares["notional"] - 0.80) < 0.03
    assert abs(shares["direct_payment"] - 0.15) < 0.03
    assert abs(shares["third_party"] - 0.05) < 0.02
    new_need = people["prior_service_cost"] == 0
    assert abs(new_need.mean() - 0.10) < 0.015
    assert abs(new_need[people["group"] == "ipc"].mean() - new_need[people["group"] == "comparison"].mean()) < 0.02

    # difference in differences from the written events recovers the true rate ratios,
    # despite the baseline need imbalance (a confounder of any after-only comparison)
    admissions = emergency_did(t, LARGE.extract_date)
    assert admissions == pytest.approx(truth["events"]["realised_admissions_did"], abs=1e-4)
    assert abs(admissions - LARGE.admissions_rr) < 0.06
    bed_days = emergency_did(t, LARGE.extract_date, "bed_days")
    assert bed_days == pytest.approx(truth["events"]["realised_bed_days_did"], abs=1e-4)
    assert abs(bed_days - LARGE.bed_days_rr) < 0.08
    need_ratio = people.groupby(["cohort", "group"])["need_score"].median().unstack()
    assert ((need_ratio["ipc"] / need_ratio["comparison"]).between(1.1, 1.3)).all()

    # ASCOT: mean change ipc minus comparison is near the true gain; EQ-5D has none
    s = t["surveys"].pivot(index="person_id", columns="timepoint", values=["ascot", "eq5d"])
    group = people.set_index("person_id")["group"].reindex(s.index)
    for name, gain in (("ascot", LARGE.ascot_gain), ("eq5d", LARGE.eq5d_gain)):
        change = s[(name, "follow_up")] - s[(name, "baseline")]
        diff = change[group == "ipc"].mean() - change[group == "comparison"].mean()
        assert diff == pytest.approx(truth["surveys"][name]["change_diff"], abs=1e-6)
        assert abs(diff - gain) < 0.015, name
    follow_ups = (t["surveys"]["timepoint"] == "follow_up").sum()
    assert 0.78 < follow_ups / truth["surveys"]["follow_up_eligible"] < 0.88


def test_bad_configs_are_refused(tmp_path):
    for bad in (SynthConfig(sites=0), SynthConfig(sites=len(SITE_AREAS) + 1), SynthConfig(ipc_share=1.5),
                SynthConfig(admissions_rr=-1)):
        with pytest.raises(ValueError):
            synthesise(tmp_path / "bad", bad)
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------------------------------------
# exits, enrolment to the extract date, services and the true incremental cost, scenarios


def test_exit_reasons_only_for_those_who_left_and_counted_in_truth(small):
    _, truth, t = small
    people = t["people"]
    assert people.loc[people["exit_date"].isna(), "exit_reason"].isna().all()
    assert people.loc[people["exit_date"].notna(), "exit_reason"].isin(C.EXIT_REASONS).all()
    counts = people.groupby(["group", "exit_reason"]).size()
    for group, reasons in truth["exits"]["by_group_reason"].items():
        assert {r: int(counts.get((group, r), 0)) for r in C.EXIT_REASONS} == reasons


def test_enrolment_continues_up_to_the_extract_date(small):
    _, truth, t = small
    people = t["people"]
    extract = pd.Timestamp(SMALL.extract_date)
    recent = people["index_date"] + pd.Timedelta(days=365) > extract + pd.Timedelta(days=1)  # year not yet due
    assert recent.mean() > 0.2  # a year of enrolment like any other (the demo's control chart has no stop)
    assert (people.groupby("site_code")["index_date"].max() > extract - pd.Timedelta(days=45)).all()
    by_group = people[recent].groupby("group").size()
    assert {g: int(by_group.get(g, 0)) for g in C.GROUPS} == truth["exits"]["enrolled_in_last_year"]
    # nobody enrolled in the last year has a follow-up questionnaire
    follow = t["surveys"].loc[t["surveys"]["timepoint"] == "follow_up", "person_id"]
    assert not people.loc[recent, "person_id"].isin(follow).any()


def test_services_cover_the_year_before_index_to_exit_and_budgets_replace_most(small):
    _, truth, t = small
    people = t["people"].set_index("person_id")
    s = t["services"].join(people[["group", "index_date", "exit_date", "prior_service_cost"]], on="person_id")
    extract = pd.Timestamp(SMALL.extract_date)
    end = s["exit_date"].fillna(extract)
    assert (s["month"].dt.day == 1).all()
    assert (s["month"] >= s["index_date"] - pd.Timedelta(days=365)).all() and (s["month"] <= end).all()
    assert set(s["person_id"]) == set(people.index[people["prior_service_cost"] > 0])
    # a month of service costs prior_service_cost / 12 on average; after index budget holders keep 15%
    ratio = s["cost"] / (s["prior_service_cost"] / 12)
    after = s["month"] >= s["index_date"]
    assert ratio[~after].mean() == pytest.approx(1.0, abs=0.03)
    assert ratio[after & (s["group"] == "comparison")].mean() == pytest.approx(1.0, abs=0.03)
    assert ratio[after & (s["group"] == "ipc")].mean() == pytest.approx(SMALL.ipc_services_kept, abs=0.01)
    assert truth["counts"]["rows"]["services"] == len(s)


def test_cost_truth_budget_spend_is_the_spend_table_in_the_follow_up_year(small):
    _, truth, t = small
    people = t["people"]
    extract = pd.Timestamp(SMALL.extract_date)
    due = people[(people["group"] == "ipc") & (people["index_date"] + pd.Timedelta(days=365) <= extract + pd.Timedelta(days=1))]
    end = np.minimum(due["index_date"] + pd.Timedelta(days=364), due["exit_date"].fillna(extract))
    window = due.assign(end=end)[["person_id", "index_date", "end"]]
    spend = t["spend"].merge(window, on="person_id")
    inside = spend[(spend["month"] >= spend["index_date"]) & (spend["month"] <= spend["end"])]
    econ = truth["economics"]
    assert econ["people"] == len(due)
    assert econ["budget_spend"] + econ["education_budget_spend"] == pytest.approx(inside["amount"].sum() / len(due), abs=0.02)
    # services replaced: 85% of prior cost / 12 for every month starting in the observed year
    months = [len(pd.date_range(i, e, freq="MS")) for i, e in zip(window["index_date"], window["end"])]
    expected = -(1 - SMALL.ipc_services_kept) * (due["prior_service_cost"].to_numpy() / 12 * np.array(months)).mean()
    assert econ["services_replaced"] == pytest.approx(expected, rel=1e-6)
    assert econ["incremental_cost"] == pytest.approx(
        econ["budget_spend"] + econ["services_replaced"] + econ["hospital_avoided"], abs=0.02)


def test_without_services_the_table_is_absent(tmp_path):
    truth = synthesise(tmp_path / "d", replace(SMALL, services=False))
    assert not (tmp_path / "d" / "services.csv").exists() and truth["counts"]["rows"]["services"] is None


def _year_before_rate(t, group):
    people = t["people"]
    ev = t["events"][t["events"]["event_type"] == "emergency_admission"].merge(people[["person_id", "index_date"]])
    before = ev[(ev["event_date"] < ev["index_date"]) & (ev["event_date"] >= ev["index_date"] - pd.Timedelta(days=365))]
    ids = people.loc[people["group"] == group, "person_id"]
    return before["person_id"].isin(ids).sum() / len(ids)


def test_scenarios_do_what_they_say():
    from ipcreport.data.synth import generate_tables

    base = SynthConfig(sites=1, people=6000, seed=3)
    t, _ = generate_tables(replace(base, pre_year_shock_sd=0.6, enrol_after_bad_year=1.5))
    assert _year_before_rate(t, "ipc") > 1.15 * _year_before_rate(t, "comparison")  # enrolled after a bad year
    t, truth = generate_tables(replace(base, exit_share=0.2, exit_frailty=1.0, ipc_exit_ratio=2.0))
    exits = {g: sum(r.values()) for g, r in truth["exits"]["by_group_reason"].items()}
    assert exits["ipc"] > 1.6 * exits["comparison"]
    assert truth["exits"]["frailty_power"] == 1.0

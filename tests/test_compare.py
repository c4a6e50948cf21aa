"""Comparisons on synthetic data with injected signals: a shift in one site's monthly series is
special cause on its control chart; an outlying proportion falls outside the 99.8% funnel."""

from __future__ import annotations

import pandas as pd
import pytest

from ipcreport.analysis import indicators as I
from ipcreport.briefing import analyse_site
from ipcreport.dataset import load_dataset, site_data, site_tables
from ipcreport.overview import flagged, funnels
from ipcreport.sections import compare
from ipcreport.synth import SynthConfig, synthesise


@pytest.fixture(scope="module")
def eight_sites(tmp_path_factory):
    out = tmp_path_factory.mktemp("eight") / "data"
    synthesise(out, SynthConfig(sites=8, people=12000, seed=11))  # enough holders a month for a steady rate
    return load_dataset(out)


def test_an_injected_shift_in_admissions_is_special_cause(eight_sites):
    data = site_data(eight_sites, eight_sites.site_codes[0])
    before, summary_before = compare.control_charts(data, analyse_site(data).allocation)["emergency_admissions"]
    assert summary_before.variation == "common_cause"
    # Budget holders' emergency admissions double over the last eight months.
    shift_from = data.extract_date - pd.Timedelta(days=240)
    events = data.tables["events"]
    holders = data["people"].loc[data["people"]["group"] == "ipc", "person_id"]
    late = events[(events["event_type"] == "emergency_admission") & events["person_id"].isin(holders)
                  & (events["event_date"] >= shift_from)]
    data.tables["events"] = pd.concat([events, late], ignore_index=True)
    frame, summary = compare.control_charts(data, analyse_site(data).allocation)["emergency_admissions"]
    shifted = frame["date"] >= shift_from.to_period("M").to_timestamp() + pd.offsets.MonthBegin()
    assert (frame.loc[shifted, "point_class"] == "special_cause_concern").all()
    assert summary.variation == "concern_high"  # fewer admissions is better, so a rise is a concern
    assert (before.loc[before["date"] >= shift_from, "point_class"] == "common_cause").all()


def national(dataset, inject_site=None, share=0.6):
    tables = []
    for code in dataset.site_codes:
        t = site_tables(dataset, code)
        if code == inject_site:  # many more budget holders take a direct payment
            people = t["people"]
            holders = people.index[people["group"] == "ipc"]
            chosen = holders[: int(share * len(holders))]
            people.loc[chosen, "management"] = "direct_payment"
        tables.append(t)
    return I.national_table(tables, dataset.meta.extract_date)


def test_an_injected_outlying_proportion_is_outside_the_998_limit(eight_sites):
    site = eight_sites.site_codes[3]
    name = eight_sites.tables["sites"].set_index("site_code").loc[site, "site_name"]
    before = funnels(national(eight_sites))["direct_payment_share"].units.set_index("unit")
    assert before.loc[name, "flag"] != "above 99.8%"
    after = funnels(national(eight_sites, inject_site=site))["direct_payment_share"].units.set_index("unit")
    assert after.loc[name, "flag"] == "above 99.8%"
    assert after.loc[name, "value"] > after.loc[name, "upper_998"]
    table = flagged(funnels(national(eight_sites, inject_site=site)))
    assert ((table["Site"] == name) & (table["Outside"] == "above 99.8%")).any()


def test_site_comparison_respects_polarity(eight_sites):
    nat = national(eight_sites, inject_site=eight_sites.site_codes[3])
    data = site_data(eight_sites, eight_sites.site_codes[3])
    result = analyse_site(data, national=nat).compare
    rows = result.comparisons.set_index("indicator")
    assert rows.loc["Budgets held as direct payments", "vs_england"] == "Higher"  # neutral: never Better/Worse
    assert set(rows["vs_england"]) <= {"Better", "Similar", "Worse", "Higher", "Lower", "Not compared"}
    neutral = [I.INDICATORS[k].name for k in I.INDICATORS if I.INDICATORS[k].polarity == "neutral"]
    assert not rows.loc[neutral, "vs_england"].isin(["Better", "Worse"]).any()
    assert 0 < len(result.peers) <= 5 and data.site_code not in result.peers
    assert set(result.spine["indicator"]) == set(rows.index)

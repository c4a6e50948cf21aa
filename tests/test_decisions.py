"""The decision page: ranked by money, flags always reach it, plain English, a dated or priced action."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from ipcreport.report.briefing import Settings, analyse_site, load_national
from ipcreport.data.dataset import load_dataset, site_data
from ipcreport.report.sections import decisions as D


def d(title: str, at_stake: float = 0.0, evidence: str = D.INDICATIVE) -> D.Decision:
    return D.Decision(title, None, evidence, at_stake)


def test_rank_puts_money_first_keeps_two_flags_and_stops_at_five():
    money = [d("small", 10.0), d("big", 1_000.0), d("middle", 100.0), d("fourth", 5.0)]
    signals = [d("gap", evidence=D.DATA_GAP), d("clear", evidence=D.ROBUST)]
    flags = [d("flag one"), d("flag two"), d("flag three")]
    ranked = [x.title for x in D.rank(money + signals, flags)]
    assert ranked == ["big", "middle", "small", "flag one", "flag two"]
    # Without flags, the rest fill the page: priced first, then unpriced by strength of evidence.
    assert [x.title for x in D.rank(money[:2] + signals, [])] == ["big", "small", "clear", "gap"]


@pytest.fixture(scope="module")
def site_results(small_dataset):
    ds = load_dataset(small_dataset)
    national = load_national(None, small_dataset)
    fund = {"nhs": 1e6, "social_care": 1e6}
    return [analyse_site(site_data(ds, code), Settings(pooled_fund=fund), national) for code in ds.site_codes]


def test_every_site_gets_a_short_plain_english_page_with_a_priced_or_dated_decision(site_results):
    for r in site_results:
        items = D.decisions(r)
        assert 3 <= len(items) <= D.MAX_DECISIONS
        text = " ".join(D.lines(r))
        for word in D.JARGON:
            assert word not in text, word
        actions = [x.action for x in items if x.action]
        assert any(re.search(r"£[\d.,]+[km]?|\bnow\b|\d{1,2} \w+ 20\d\d", a) for a in actions), actions
        # Money decisions come first, largest first.
        stakes = [x.at_stake for x in items if x.at_stake > 0]
        assert stakes == sorted(stakes, reverse=True)


def test_a_pooled_fund_missing_is_a_data_gap_not_an_invented_probability(small_dataset):
    ds = load_dataset(small_dataset)
    r = analyse_site(site_data(ds, ds.site_codes[0]), Settings())
    o = D.overspend(r)
    assert o.evidence == D.DATA_GAP and "chance" not in o.title
    assert r.metrics.values["overspend_probability"] is None


def test_the_overview_ranks_programme_decisions_by_money_at_stake():
    from ipcreport.report.overview import programme_decisions

    m = pd.DataFrame({"site_name": ["A", "B", "C"], "overspend_probability": [0.63, 0.10, 0.5],
                      "spend_p95": [1_960_000.0, 1_000_000.0, 2_000_000.0],
                      "pooled_fund": [1_770_000.0, 1_100_000.0, 2_100_000.0],
                      "net_new_money": [300_000.0, -50_000.0, 100_000.0],
                      "double_running_cost": [30_000.0, 0.0, 20_000.0],
                      "double_running_cost_fast": [90_000.0, 0.0, 60_000.0]})
    lines = programme_decisions(m)
    # new money £400k (B's negative figure is not new money), overspend: A's 95th percentile is
    # £190k over its fund (C's is under its fund: nothing at stake), double running £50k
    assert [line.split(":")[0] for line in lines] == ["New money", "Overspend risk next year", "Double running"]
    assert "£400k" in lines[0] and "A 63% (up to £190k over its fund); C 50%." in lines[1]
    assert "B" not in lines[1] and all("Decision:" in line for line in lines)


def test_follow_up_shares_agree_between_sentence_table_and_chart(site_results):
    # four answers once (sentence from exact counts, table's missing share from separately
    # rounded counts, chart from rounded ones): now one, from the rounded counts the table prints
    from ipcreport.report import disclosure
    from ipcreport.report.sections import outcomes, quality

    for r in site_results:
        table = quality.follow_up_table(r.outcomes, disclosure.DEFAULT)
        chart = quality.follow_up_shares(r.outcomes, disclosure.DEFAULT)
        sentence = next(m for m in outcomes.messages(r.outcomes) if "had no follow-up" in m)
        for group, words in (("ipc", "of budget holders"), ("comparison", "of the comparison group")):
            missing = table.loc[group, "Missing follow-up"]
            assert f"{1 - chart[group]:.0%}" == missing and f"{missing} {words}" in sentence, (sentence, table)

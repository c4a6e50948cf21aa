"""Money in the reporting year: pro-rating, the money bridge and net new money, worked by hand
and against the synthetic dataset counted day by day."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ipcreport.analysis import allocation as A
from ipcreport.analysis import money as M
from ipcreport.data.dataset import load_dataset

T = pd.Timestamp
WINDOW = A.Window(T("2025-02-01"), T("2026-01-31"))

PEOPLE = pd.DataFrame(
    [("a", "ipc", "long_term_conditions", "notional", 1_000.0),
     ("b", "ipc", "mental_health", "direct_payment", 0.0),
     ("c", "ipc", "mental_health", "direct_payment", 730.0)],
    columns=["person_id", "group", "cohort", "management", "prior_service_cost"],
)
BUDGETS = pd.DataFrame(
    # a: 334 of 365 days in the window; b: two consecutive years of care; c: 215 of 365 days.
    [("a", T("2025-01-01"), T("2025-12-31"), 12_000.0, 12_000.0, 6_000.0, 6_000.0, 0.0),
     ("b", T("2024-06-01"), T("2025-05-31"), 3_650.0, 3_650.0, 3_650.0, 0.0, 0.0),
     ("b", T("2025-06-01"), T("2026-05-31"), 7_300.0, 7_300.0, 3_650.0, 3_650.0, 0.0),
     ("c", T("2025-07-01"), T("2026-06-30"), 3_650.0, 3_650.0, 1_825.0, 0.0, 1_825.0)],
    columns=["person_id", "period_start", "period_end", "indicative_budget", "agreed_budget", "funded_nhs",
             "funded_social_care", "funded_education"],
)
SPEND = pd.DataFrame(
    [("a", T("2025-01-01"), "home_care", 1_000.0),  # before the window: not in the year
     ("a", T("2025-03-01"), "home_care", 6_000.0),
     ("b", T("2025-03-01"), "personal_assistants", 1_000.0),  # b's first period (all NHS)
     ("b", T("2025-09-01"), "personal_assistants", 2_000.0),  # b's second period (half NHS)
     ("c", T("2026-01-01"), "respite", 500.0)],
    columns=["person_id", "month", "category", "amount"],
)


def test_a_period_of_365_days_with_100_inside_the_year_counts_100_over_365():
    year = A.Window(T("2026-01-01"), T("2026-12-31"))
    end = year.start + pd.Timedelta(days=99)  # 1 January to 10 April: 100 days, both ends counted
    period = pd.DataFrame({"person_id": ["x"], "period_start": [end - pd.Timedelta(days=364)], "period_end": [end],
                           "agreed_budget": [7_300.0], "funded_nhs": [7_300.0], "funded_social_care": [0.0],
                           "funded_education": [0.0]})
    assert M.period_days(period).iloc[0] == 365
    inside = M.in_year(period, year)
    assert inside["days_in_year"].iloc[0] == 100
    assert inside["agreed_budget_in_year"].iloc[0] == pytest.approx(7_300 * 100 / 365)
    assert inside["funded_nhs_in_year"].iloc[0] == pytest.approx(2_000.0)
    # A period that only touches the year on its last day counts one day, never in full.
    touching = period.assign(period_end=year.start, period_start=year.start - pd.Timedelta(days=364))
    assert M.budget_total(touching, year) == pytest.approx(20.0)


def test_in_year_money_by_hand():
    periods = M.in_year(BUDGETS, WINDOW)
    # a: 12,000 x 334/365; b: 3,650 x 120/365 + 7,300 x 245/365; c: 3,650 x 215/365.
    expected = {"a": 12_000 * 334 / 365, "b": 1_200.0 + 4_900.0, "c": 2_150.0}
    assert periods.groupby("person_id")["agreed_budget_in_year"].sum().to_dict() == pytest.approx(expected)
    assert M.budget_total(BUDGETS, WINDOW) == pytest.approx(sum(expected.values()))
    # The old definition counted every touching period in full: 26,600, far above the year's money.
    assert BUDGETS["agreed_budget"].sum() == 26_600.0
    funders = A.funding_shares(BUDGETS, WINDOW)
    nhs = 6_000 * 334 / 365 + 1_200 + 2_450 + 1_075
    assert funders["nhs"] == pytest.approx(nhs / sum(expected.values()))


def test_committed_annual_counts_live_periods_at_a_year():
    # On 2026-01-31 b's second period and c's are live; a 6-month period would count double.
    assert M.committed_annual(BUDGETS, T("2026-01-31")) == pytest.approx(7_300 + 3_650)
    half = BUDGETS.iloc[[3]].assign(period_end=T("2025-12-29"))  # 182 days
    assert M.committed_annual(half, T("2025-10-01")) == pytest.approx(3_650 * 365 / 182)


def test_money_bridge_by_hand():
    bridge = M.money_bridge(PEOPLE, BUDGETS, SPEND, WINDOW, pooled_fund={"nhs": 12_000.0, "social_care": 9_000.0})
    # Spend in the year: a 6,000 (half NHS), b 1,000 (NHS) + 2,000 (half NHS), c 500 (half NHS, half education).
    assert bridge.loc["nhs", "spent"] == pytest.approx(3_000 + 1_000 + 1_000 + 250)
    assert bridge.loc["social_care", "spent"] == pytest.approx(3_000 + 1_000)
    assert bridge.loc["education", "spent"] == pytest.approx(250)
    assert bridge.loc["total", "spent"] == pytest.approx(9_500)
    agreed = 12_000 * 334 / 365 + 6_100 + 2_150
    assert bridge.loc["total", "agreed"] == pytest.approx(agreed)
    assert bridge.loc["total", "unspent"] == pytest.approx(agreed - 9_500)
    # Direct payments: b's periods 1,200 - 1,000 = 200 and 4,900 - 2,000 = 2,900; c: 2,150 - 500 = 1,650.
    assert bridge.loc["total", "dp_recoverable"] == pytest.approx(200 + 2_900 + 1_650)
    assert bridge.loc["nhs", "dp_recoverable"] == pytest.approx(200 + 1_450 + 825)
    # A funder the fund leaves out pays nothing in; the variance is fund minus spend.
    assert bridge.loc["education", "pooled_fund"] == 0.0
    assert bridge.loc["total", "pooled_fund"] == 21_000.0
    assert bridge.loc["total", "variance"] == pytest.approx(21_000 - 9_500)
    assert M.money_bridge(PEOPLE, BUDGETS, SPEND, WINDOW)["pooled_fund"].isna().all()


def test_net_new_money_takes_prior_cost_over_the_same_days():
    # a: 1,000 a year over 334 days; b: nothing before (new need); c: 730 a year over 215 days.
    prior = 1_000 * 334 / 365 + 730 * 215 / 365
    assert M.net_new_money(PEOPLE, BUDGETS, WINDOW) == pytest.approx(M.budget_total(BUDGETS, WINDOW) - prior)
    new = A.new_need(PEOPLE, BUDGETS, WINDOW)
    assert new.loc["mental_health", "agreed"] == pytest.approx(6_100.0)


def test_utilisation_leaves_out_periods_cut_short_by_an_exit():
    people = PEOPLE.assign(exit_date=[pd.NaT, T("2025-04-30"), pd.NaT])
    per_period = A.utilisation(BUDGETS, SPEND, T("2026-01-31"), people)
    # b left on 30 April 2025, a month before their first period ended: left out, counted as cut short.
    assert per_period["cut_short"].tolist() == [False, True]
    assert A.overall_utilisation(per_period) == pytest.approx(7_000 / 12_000)
    use = A.budget_use(per_period, people)
    assert (use.periods, use.cut_short) == (1, 1)


def day_by_day(budgets: pd.DataFrame, window: A.Window, column: str) -> float:
    """In-year money counted the slow way: every day of every period, at the period's daily rate."""
    total = 0.0
    for row in budgets.itertuples(index=False):
        days = pd.date_range(row.period_start, row.period_end, freq="D")
        inside = ((days >= window.start) & (days <= window.end)).sum()
        total += getattr(row, column) / len(days) * inside
    return total


def test_in_year_money_of_the_synthetic_dataset_to_the_penny(small_dataset):
    ds = load_dataset(small_dataset)
    budgets, people = ds.tables["budgets"], ds.tables["people"]
    window = A.Window.ending(ds.meta.extract_date)
    sample = budgets.sample(300, random_state=1) if len(budgets) > 300 else budgets
    assert M.budget_total(sample, window) == pytest.approx(day_by_day(sample, window, "agreed_budget"), abs=0.01)
    in_year = M.in_year(sample, window)
    assert in_year["funded_education_in_year"].sum() == pytest.approx(day_by_day(sample, window, "funded_education"), abs=0.01)
    # Whole dataset: pro-rated money never exceeds whole periods, and is well below double counting.
    total = M.budget_total(budgets, window)
    overlapping = A.budgets_in_window(budgets, window)["agreed_budget"].sum()
    assert total < overlapping
    # Net new money: the same people's prior cost per day over their days in the year.
    periods = M.in_year(budgets, window)
    days = periods.groupby("person_id")["days_in_year"].sum()
    prior = people.set_index("person_id").loc[days.index, "prior_service_cost"].astype(float)
    assert M.net_new_money(people, budgets, window) == pytest.approx(total - float((prior * days / 365).sum()), abs=0.01)
    assert np.isfinite(total)


def test_headline_money_agrees_with_the_bridge_and_with_spend(small_dataset):
    """What the briefing headlines is the bridge's total, and never more than twice the year's
    spend (the doubled definition gave 2.3 times at the demo's Birmingham)."""
    from ipcreport.data.dataset import site_data
    from ipcreport.report.results import Metrics
    from ipcreport.report.sections import allocation

    ds = load_dataset(small_dataset)
    window = A.Window.ending(ds.meta.extract_date)
    for code in ds.site_codes:
        metrics = Metrics(code, "small", "", "")
        alloc = allocation.compute(site_data(ds, code), window, metrics)
        m, bridge = metrics.values, alloc.bridge
        assert m["budget_total"] == pytest.approx(bridge.loc["total", "agreed"])
        assert m["spend_in_year"] == pytest.approx(bridge.loc["total", "spent"])
        assert m["spend_in_year"] <= m["budget_total"] <= 2 * m["spend_in_year"]
        assert bridge.loc[["nhs", "social_care", "education"], "agreed"].sum() == pytest.approx(m["budget_total"])


def test_each_spend_month_is_matched_to_the_period_containing_it_by_hand():
    periods = pd.DataFrame({
        "person_id": ["b", "a", "a", "b"],
        # a has a gap in August 2025; b's periods are listed out of order
        "period_start": [T("2025-06-01"), T("2025-09-01"), T("2024-08-01"), T("2024-06-01")],
        "period_end": [T("2026-05-31"), T("2026-08-31"), T("2025-07-31"), T("2025-05-31")],
    }, index=[10, 11, 12, 13])
    spend = pd.DataFrame({
        "person_id": ["a", "a", "a", "a", "b", "b", "z"],
        "month": [T("2024-07-01"),  # before a's first period: none
                  T("2024-08-01"),  # a's first period's first day: position 2
                  T("2025-08-01"),  # a's gap: none
                  T("2026-08-01"),  # a's second period: position 1
                  T("2025-05-01"),  # b's first period's last month: position 3
                  T("2026-06-01"),  # after b's last period: none
                  T("2025-01-01")],  # nobody's period: none
        "amount": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
    })
    assert M.period_positions(spend, periods).tolist() == [-1, 2, -1, 1, 3, -1, -1]
    # each period's spend, indexed as the periods are: a refund nets off within its period
    refund = pd.concat([spend, spend.iloc[[1]].assign(amount=-0.5)], ignore_index=True)
    assert M.spend_per_period(refund, periods).to_dict() == {10: 0.0, 11: 8.0, 12: 1.5, 13: 16.0}
    assert M.period_positions(spend, periods.iloc[0:0]).tolist() == [-1] * 7
    with pytest.raises(ValueError, match="dates"):  # a missing date would sort among the others
        M.period_positions(spend, periods.assign(period_start=periods["period_start"].where(periods.index != 11)))


def test_period_matching_equals_an_as_of_merge_by_person_on_random_periods():
    """Against pandas' merge_asof (the join this replaced) on 2,000 people's contiguous and
    gapped periods and spend months on either side of them."""
    rng = np.random.default_rng(11)
    rows = []
    for person in range(2_000):
        start = T("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 400)))
        for _ in range(int(rng.integers(1, 4))):
            end = start + pd.Timedelta(days=int(rng.integers(100, 400)))
            rows.append((f"P{person:05d}", start, end))
            start = end + pd.Timedelta(days=int(rng.choice([1, 1, 40])))
    periods = pd.DataFrame(rows, columns=["person_id", "period_start", "period_end"]).sample(frac=1, random_state=1)
    periods = periods.reset_index(drop=True)
    spend = pd.DataFrame({
        "person_id": [f"P{p:05d}" for p in rng.integers(0, 2_100, 30_000)],
        "month": (T("2022-12-01") + pd.to_timedelta(rng.integers(0, 48, 30_000) * 31, unit="D")).to_period("M").to_timestamp(),
        "amount": rng.normal(100, 30, 30_000),
    })
    expected = pd.merge_asof(spend.reset_index().sort_values("month"),
                             periods.reset_index().rename(columns={"index": "period"}).sort_values("period_start"),
                             left_on="month", right_on="period_start", by="person_id")
    expected = expected[expected["month"] <= expected["period_end"]].set_index("index")["period"]
    found = M.period_positions(spend, periods)
    assert (found >= 0).sum() == len(expected) > 5_000
    assert (found[expected.index.to_numpy()] == expected.to_numpy()).all()

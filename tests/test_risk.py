"""Financial risk: a double-running case worked out by hand, its monotone properties, and the
overspend simulation against cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from ipcreport.analysis import risk as R

T = pd.Timestamp
EXTRACT = T("2026-09-30")


def three_people_spend(months: int = 12) -> pd.DataFrame:
    """Persons 1 and 2 buy home care (GBP 1,000 and 2,000 a month), person 3 respite (1,500)."""
    rows = []
    for m in pd.date_range(end="2026-09-01", periods=months, freq="MS"):
        rows += [("p1", m, "home_care", 1_000.0), ("p2", m, "home_care", 2_000.0), ("p3", m, "respite", 1_500.0)]
    return pd.DataFrame(rows, columns=["person_id", "month", "category", "amount"])


def two_contracts(respite_end: str = "2030-01-01") -> pd.DataFrame:
    return pd.DataFrame({
        "contract_id": ["C1", "C2"], "category": ["home_care", "respite"], "funder": ["social_care", "nhs"],
        "annual_value": [120_000.0, 12_000.0], "notice_months": [3, 2],
        "end_date": [T("2030-01-01"), T(respite_end)],
    })


FLAT = np.ones(24)  # no growth in budget holders


def test_two_contracts_three_people_by_hand():
    monthly = R.budget_spend_per_month(three_people_spend(), EXTRACT)
    assert monthly.to_dict() == {"home_care": 3_000.0, "respite": 1_500.0}
    projection = R.double_running_projection(two_contracts(), monthly, FLAT, EXTRACT)
    by_contract = projection.groupby("contract_id")["paid_twice"].sum()
    # C1: 3,000 a month displaced, paid twice for the 3 months of notice = 9,000.
    # C2: 1,500 displaced but only 1,000 a month of contract to pay twice, for 2 months = 2,000.
    assert by_contract.to_dict() == {"C1": 9_000.0, "C2": 2_000.0}
    assert R.projection_year_cost(projection) == 11_000.0
    months = R.double_running_by_month(projection)
    assert months["paid_twice"].iloc[:4].tolist() == [4_000.0, 4_000.0, 3_000.0, 0.0]
    assert months["cumulative"].iloc[-1] == 11_000.0


def test_a_contract_ending_stops_double_running():
    monthly = R.budget_spend_per_month(three_people_spend(), EXTRACT)
    # The respite contract ends 45 days after the extract: only its first month is paid twice.
    projection = R.double_running_projection(two_contracts("2026-11-14"), monthly, FLAT, EXTRACT)
    assert projection.groupby("contract_id")["paid_twice"].sum()["C2"] == 1_000.0


def test_contracts_in_one_category_share_the_displaced_money_by_value():
    contracts = pd.DataFrame({
        "contract_id": ["A", "B"], "category": ["home_care"] * 2, "funder": ["nhs"] * 2,
        "annual_value": [90_000.0, 30_000.0], "notice_months": [1, 1], "end_date": [T("2030-01-01")] * 2,
    })
    projection = R.double_running_projection(contracts, pd.Series({"home_care": 4_000.0}), FLAT, EXTRACT)
    assert projection.groupby("contract_id")["paid_twice"].sum().to_dict() == {"A": 3_000.0, "B": 1_000.0}


def test_growth_is_paid_twice_for_each_increment_notice_period():
    monthly = pd.Series({"home_care": 1_000.0})
    contract = two_contracts().iloc[[0]]  # notice 3 months, value far above the spend
    growing = 1 + 0.1 * np.arange(1, 25)  # +GBP 100 a month each month
    projection = R.double_running_projection(contract, monthly, growing, EXTRACT)
    paid = projection.set_index("month")["paid_twice"]
    # Month m pays twice everything that moved in the last 3 months (or since the start).
    assert paid[1] == pytest.approx(1_100.0)
    assert paid[3] == pytest.approx(1_300.0)
    assert paid[4] == pytest.approx(1_400.0 - 1_100.0)
    assert paid[10] == pytest.approx(300.0)


def test_doubling_notice_periods_raises_the_cost():
    monthly = R.budget_spend_per_month(three_people_spend(), EXTRACT)
    plan = R.rollout_plan(0.2, 24, 24)
    usual = R.double_running_projection(two_contracts(), monthly, plan, EXTRACT)
    doubled = R.double_running_projection(two_contracts(), monthly, plan, EXTRACT, notice_scale=2)
    assert R.projection_year_cost(doubled) > R.projection_year_cost(usual)


def test_a_slower_rollout_lowers_the_cost():
    monthly = R.budget_spend_per_month(three_people_spend(), EXTRACT)
    cost = {ramp: R.projection_year_cost(R.double_running_projection(
        two_contracts(), monthly, R.rollout_plan(0.3, 24, ramp), EXTRACT)) for ramp in (3, 6, 12, 24)}
    assert cost[3] > cost[6] > cost[12] > cost[24]


def test_rollout_plans_reach_the_same_enrolment():
    plans = R.plans(R.RiskAssumptions(enrolment_growth=0.1))
    assert plans["phased"][-1] == pytest.approx(1.21) and plans["fast"][-1] == pytest.approx(1.21)
    assert plans["fast"][5] == pytest.approx(1.21) and plans["phased"][11] == pytest.approx(1.105)


def periods(n: int, budget: float, ratio: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"agreed_budget": budget, "spent": budget * ratio, "ratio": ratio}, index=range(n))


def test_overspend_is_a_coin_toss_when_only_the_pace_is_uncertain_and_spend_matches_budgets():
    a = R.RiskAssumptions(enrolment_growth=0.1, enrolment_growth_sd=0.05, draws=20_000, seed=1)
    result = R.overspend(periods(50, 10_000.0, np.ones(50)), holders_now=100, assumptions=a)
    # No spread in budgets or use: spend exceeds the pooled budget exactly when enrolment beats the plan.
    assert result.probability == pytest.approx(0.5, abs=0.015)
    assert result.pooled_budget == pytest.approx(100 * 1.1 * 10_000)
    assert result.p95 == pytest.approx(100 * (1.1 + 1.6449 * 0.05) * 10_000, rel=0.01)


def test_overspend_is_seeded_and_follows_use():
    a = R.RiskAssumptions(draws=10_000, seed=7)
    rng = np.random.default_rng(0)
    under = periods(200, 8_000.0, rng.normal(0.85, 0.1, 200))
    over = periods(200, 8_000.0, rng.normal(1.05, 0.1, 200))
    first = R.overspend(under, 150, a)
    assert np.array_equal(first.spend_draws, R.overspend(under, 150, a).spend_draws)
    assert first.probability < 0.05
    assert first.median < first.p95
    # With equal budgets, spend beats the pooled budget when (1 + growth) x use > 1.1, i.e. when
    # growth > 1.1 / use - 1; growth ~ N(0.1, 0.05). The other noise is small beside it.
    result = R.overspend(over, 150, a)
    expected = norm.sf((1.1 / result.inputs.utilisation - 1 - 0.1) / 0.05)
    assert result.probability == pytest.approx(expected, abs=0.03)


def test_tornado_ranks_inputs_by_their_swing():
    a = R.RiskAssumptions(enrolment_growth_sd=0.2)
    result = R.overspend(periods(100, 10_000.0, np.full(100, 0.9)), 100, a)
    table = R.tornado(result, a)
    assert table["input"].iloc[0] == "Enrolment pace"
    assert (table["width"].diff().dropna() <= 0).all()
    central = 100 * 1.1 * 10_000 * 0.9 - result.pooled_budget
    assert table["gap_central"].iloc[0] == pytest.approx(central)

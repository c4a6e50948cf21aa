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
STEP = np.full(24, 1.5)  # half as much money again moves into budgets in month 1, then no more


def test_the_issue_worked_example_pays_twice_only_what_moves():
    """A contract of GBP 120,000 a year, 3 months' notice; GBP 2,000 a month of home-care budget spend
    on the extract date; the plan adds GBP 100 a month of it each month. Money moving in month k is
    paid twice in months k, k+1, k+2, so month m pays twice 100 x min(m, 3): GBP 3,300 in 12 months."""
    contract = two_contracts().iloc[[0]]
    plan = 1 + 0.05 * np.arange(1, 25)
    projection = R.double_running_projection(contract, pd.Series({"home_care": 2_000.0}), plan, EXTRACT)
    paid = projection.set_index("month")["paid_twice"]
    assert paid.iloc[:4].tolist() == pytest.approx([100.0, 200.0, 300.0, 300.0])
    assert R.projection_year_cost(projection) == pytest.approx(3_300.0)
    # The old definition added the GBP 2,000 a month already in budgets for 3 months: 9,300.
    assert R.projection_year_cost(projection) + 3 * 2_000 == pytest.approx(9_300.0)


def test_zero_growth_pays_nothing_twice():
    monthly = R.budget_spend_per_month(three_people_spend(), EXTRACT)
    projection = R.double_running_projection(two_contracts(), monthly, FLAT, EXTRACT)
    assert R.projection_year_cost(projection) == 0.0


def test_two_contracts_three_people_by_hand():
    monthly = R.budget_spend_per_month(three_people_spend(), EXTRACT)
    assert monthly.to_dict() == {"home_care": 3_000.0, "respite": 1_500.0}
    contracts = two_contracts().assign(annual_value=[120_000.0, 6_000.0])
    projection = R.double_running_projection(contracts, monthly, STEP, EXTRACT)
    by_contract = projection.groupby("contract_id")["paid_twice"].sum()
    # C1: 1,500 a month moves in month 1, paid twice for its 3 months of notice = 4,500.
    # C2: 750 moves but only 500 a month of contract is left to pay twice, for 2 months = 1,000.
    assert by_contract.to_dict() == {"C1": 4_500.0, "C2": 1_000.0}
    months = R.double_running_by_month(projection)
    assert months["paid_twice"].iloc[:4].tolist() == [2_000.0, 2_000.0, 1_500.0, 0.0]
    assert months["cumulative"].iloc[-1] == 5_500.0
    by_funder = R.double_running_by_funder(projection)
    assert by_funder.to_dict() == {"nhs": 1_000.0, "social_care": 4_500.0}


def test_a_contract_ending_stops_double_running():
    monthly = R.budget_spend_per_month(three_people_spend(), EXTRACT)
    # The respite contract ends 45 days after the extract: only its first month is paid twice.
    projection = R.double_running_projection(two_contracts("2026-11-14"), monthly, STEP, EXTRACT)
    assert projection.groupby("contract_id")["paid_twice"].sum()["C2"] == 750.0


def test_new_need_displaces_nothing():
    people = pd.DataFrame({"person_id": ["p1", "p2", "p3"], "prior_service_cost": [5_000.0, 0.0, 1.0]})
    monthly = R.budget_spend_per_month(three_people_spend(), EXTRACT, people)
    assert monthly.to_dict() == {"home_care": 1_000.0, "respite": 1_500.0}


def test_contracts_in_one_category_share_the_displaced_money_by_value():
    contracts = pd.DataFrame({
        "contract_id": ["A", "B"], "category": ["home_care"] * 2, "funder": ["nhs"] * 2,
        "annual_value": [90_000.0, 30_000.0], "notice_months": [1, 1], "end_date": [T("2030-01-01")] * 2,
    })
    projection = R.double_running_projection(contracts, pd.Series({"home_care": 8_000.0}), STEP, EXTRACT)
    assert projection.groupby("contract_id")["paid_twice"].sum().to_dict() == {"A": 3_000.0, "B": 1_000.0}


def test_money_a_contract_cannot_release_stays_paid_twice():
    contract = two_contracts().iloc[[0]]
    monthly = pd.Series({"home_care": 2_000.0})
    full = R.double_running_projection(contract, monthly, STEP, EXTRACT)
    half = R.double_running_projection(contract, monthly, STEP, EXTRACT, release_share=0.5)
    # 1,000 a month moves; 3 months paid twice, then half of it (500) for the other 9 months.
    assert R.projection_year_cost(full) == 3_000.0
    assert R.projection_year_cost(half) == 3_000.0 + 9 * 500.0


def test_money_already_in_budgets_is_shown_apart_only_when_a_site_says_so():
    monthly = R.budget_spend_per_month(three_people_spend(), EXTRACT)
    contracts = two_contracts().assign(annual_value=[120_000.0, 6_000.0])
    assert R.double_running_existing(contracts, monthly, 0.0) == 0.0
    # 20% of 3,000 (C1) and of 1,500 (C2, under its 500 a month) is still paid twice each month.
    assert R.double_running_existing(contracts, monthly, 0.2) == pytest.approx(600.0 + 300.0)


def test_notice_calendar_by_hand():
    contracts = pd.concat([two_contracts().iloc[[0]],
                           two_contracts("2026-10-20").iloc[[1]].assign(contract_id="C3"),
                           two_contracts().iloc[[0]].assign(contract_id="C4", notice_months=0)])
    plan = 1 + 0.05 * np.arange(1, 25)
    monthly = pd.Series({"home_care": 2_000.0, "respite": 1_000.0})
    projection = R.double_running_projection(contracts, monthly, plan, EXTRACT)
    calendar = R.notice_calendar(contracts, projection, EXTRACT).set_index("contract_id")
    # Money first moves in October 2026 (month 1). With 3 months' notice, notice was due by 1 July.
    assert calendar.loc["C1", "serve_by"] == T("2026-07-01") and calendar.loc["C1", "overdue"]
    # Each month of delay keeps a month of the year's moved money paid twice: C1 and C4 share home
    # care by value (half each): 50 a month more each month, 600 a month by month 12.
    assert calendar.loc["C1", "delay_cost_per_month"] == pytest.approx(600.0)
    assert calendar.loc["C4", "serve_by"] == T("2026-10-01") and not calendar.loc["C4", "overdue"]
    # C3 ends in its first month, before notice could matter: no notice, no cost.
    assert pd.isna(calendar.loc["C3", "serve_by"]) or calendar.loc["C3", "first_move_month"] == 1
    assert list(calendar.index)[-1] in ("C3", "C4")


def test_a_late_contract_that_ends_before_notice_could_land_is_not_the_decision():
    # C5 (respite, 4 months' notice) is late (money moves in month 1) but ends on 31 December
    # 2026, three months after the extract: notice served now would take effect in month 5, after
    # it ends, so notice cannot save anything there. C1 (home care, ends 2030) can still be
    # helped: it is the one a board should act on, whatever the calendar's order.
    contracts = pd.concat([two_contracts().iloc[[0]],
                           two_contracts().iloc[[1]].assign(contract_id="C5", notice_months=4,
                                                             end_date=T("2026-12-31"))])
    plan = 1 + 0.05 * np.arange(1, 25)
    monthly = pd.Series({"home_care": 2_000.0, "respite": 1_000.0})
    calendar = R.notice_calendar(contracts, R.double_running_projection(contracts, monthly, plan, EXTRACT), EXTRACT)
    c5 = calendar.set_index("contract_id").loc["C5"]
    assert c5["overdue"] and c5["ends_first"] and c5["delay_cost_per_month"] == 0.0
    top, others = R.notice_priority(calendar)
    assert top["contract_id"] == "C1" and others == 0


def test_phased_and_fast_plans_differ_the_way_speed_matters():
    monthly = R.budget_spend_per_month(three_people_spend(), EXTRACT)
    plans = R.plans(R.RiskAssumptions(enrolment_growth=0.1))
    cost = {name: R.projection_year_cost(R.double_running_projection(two_contracts(), monthly, plan, EXTRACT))
            for name, plan in plans.items()}
    # Both reach 1.1^2 = 1.21 times today's holders: phased moves 0.875% of the spend each month for
    # 24 months, fast 3.5% a month for 6 months, then nothing.
    # C1 (3,000 a month, 3 months' notice): phased 26.25 x (1 + 2 + 3 x 10); fast 105 x (1 + 2 + 3 x 4 + 2 + 1).
    # C2 (1,500 a month, 2 months' notice): phased 13.125 x (1 + 2 x 11); fast 52.5 x (1 + 2 x 5 + 1).
    c1 = {"phased": 26.25 * 33, "fast": 105 * 18}
    c2 = {"phased": 13.125 * 23, "fast": 52.5 * 12}
    assert cost == pytest.approx({k: c1[k] + c2[k] for k in cost})
    assert cost["fast"] > 2 * cost["phased"]


def test_doubling_notice_periods_raises_the_cost():
    monthly = R.budget_spend_per_month(three_people_spend(), EXTRACT)
    plan = R.rollout_plan(0.2, 24, 24)
    usual = R.double_running_projection(two_contracts(), monthly, plan, EXTRACT)
    doubled = R.double_running_projection(two_contracts(), monthly, plan, EXTRACT, notice_scale=2)
    assert R.projection_year_cost(doubled) > R.projection_year_cost(usual)


def test_pace_moves_double_running_in_time_but_not_in_total():
    """Each pound moved is paid twice for its contract's notice period, whatever the pace: a faster
    roll-out brings that cost into the coming year, a slower one spreads it (and, being planned,
    lets notice be served ahead of the moves)."""
    monthly = R.budget_spend_per_month(three_people_spend(), EXTRACT)
    contracts = two_contracts().assign(annual_value=[1e9, 1e9])  # no cap
    projections = {ramp: R.double_running_projection(contracts, monthly, R.rollout_plan(0.3, 36, ramp), EXTRACT)
                   for ramp in (3, 6, 12, 24)}
    year = {ramp: R.projection_year_cost(p) for ramp, p in projections.items()}
    assert year[3] == pytest.approx(year[6]) and year[6] > year[12] > year[24]
    moved = 1.3**3 - 1
    whole = moved * (3_000 * 3 + 1_500 * 2)  # money moved x notice months, per contract
    for p in projections.values():
        assert p["paid_twice"].sum() == pytest.approx(whole)


def test_rollout_plans_reach_the_same_enrolment():
    plans = R.plans(R.RiskAssumptions(enrolment_growth=0.1))
    assert plans["phased"][-1] == pytest.approx(1.21) and plans["fast"][-1] == pytest.approx(1.21)
    assert plans["fast"][5] == pytest.approx(1.21) and plans["phased"][11] == pytest.approx(1.105)


# ---------------------------------------------------------------------------------------------
# overspend


def test_exposure_moments_match_simulated_exits():
    rng = np.random.default_rng(3)
    for h in (0.02, 0.3, 1.5):
        leave = rng.exponential(1 / h, 400_000)
        arrive = rng.random(400_000)
        m = R.exposure_moments(np.array(h))
        now, new = np.minimum(1, leave), np.minimum(1 - arrive, leave)
        assert m["current"] == pytest.approx(now.mean(), abs=0.003)
        assert m["current_sq"] == pytest.approx((now**2).mean(), abs=0.003)
        assert m["new"] == pytest.approx(new.mean(), abs=0.003)
        assert m["new_sq"] == pytest.approx((new**2).mean(), abs=0.003)


def site_inputs(rng: np.random.Generator, holders: int = 400):
    """A site: each holder's daily budget and days left in their live period; the estimates a finance
    team would have (exits, utilisation, new budgets) with their uncertainty."""
    daily = rng.gamma(4.0, 10.0, holders)  # about GBP 14,600 a year
    remaining = rng.integers(0, 365, holders).astype(float)
    before, after = daily * remaining, daily * (365 - remaining)
    inputs = R.SpendInputs(
        holders_now=holders, money_before_renewal=before.sum(), money_after_renewal=after.sum(),
        sum_sq_before=(before**2).sum(), sum_cross=(before * after).sum(), sum_sq_after=(after**2).sum(),
        exits=30, holder_years=380.0, utilisation=0.86, se_utilisation=0.015, sd_person_utilisation=0.2,
        new_budget_mean=15_000.0, se_new_budget_mean=600.0, sd_new_budget=6_000.0,
    )
    return inputs, daily, remaining


def one_real_year(inputs: R.SpendInputs, daily, remaining, a: R.RiskAssumptions, rng) -> float:
    """Next year as it happens, person by person and day by day: the true rates drawn from the same
    uncertainty the forecast states, then each holder's exit, use and renewal, and each starter's
    arrival, budget, exit and use."""
    growth = rng.normal(a.enrolment_growth, a.enrolment_growth_sd)
    hazard = rng.gamma(inputs.exits + 0.5, 1 / inputs.holder_years)
    use = rng.normal(inputs.utilisation, inputs.se_utilisation)
    new_mean = rng.normal(inputs.new_budget_mean, inputs.se_new_budget_mean)
    uplift = rng.normal(a.price_uplift, a.price_uplift_sd)
    stay_days = np.minimum(rng.exponential(1 / hazard, len(daily)), 1) * 365
    money = daily * (np.minimum(stay_days, remaining) + np.clip(stay_days - remaining, 0, None) * (1 + uplift))
    spend = (money * rng.normal(use, inputs.sd_person_utilisation, len(daily))).sum()
    starters = rng.poisson(inputs.holders_now * max(growth + 1 - np.exp(-hazard), 0))
    arrive = rng.random(starters)
    held = np.minimum(1 - arrive, rng.exponential(1 / hazard, starters))
    shape = (new_mean / inputs.sd_new_budget) ** 2
    budgets = rng.gamma(shape, new_mean / shape, starters) * (1 + uplift)
    return spend + (budgets * held * rng.normal(use, inputs.sd_person_utilisation, starters)).sum()


def test_the_spend_forecast_is_calibrated_over_many_years():
    """Over many synthetic years drawn from the same assumptions, the stated 90% interval holds next
    year's spend about 90% of the time, and the stated chance of exceeding a pool matches how often
    it is exceeded."""
    rng = np.random.default_rng(11)
    inputs, daily, remaining = site_inputs(rng)
    a = R.RiskAssumptions(draws=40_000, seed=5)
    forecast = R.overspend(inputs, a, pooled_fund=None)
    pool = float(np.quantile(forecast.spend_draws, 0.7))
    stated = R.overspend(inputs, a, pooled_fund=pool).probability
    years = np.array([one_real_year(inputs, daily, remaining, a, rng) for _ in range(3_000)])
    inside = ((years >= forecast.p05) & (years <= forecast.p95)).mean()
    se = np.sqrt(0.9 * 0.1 / len(years))
    assert abs(inside - 0.90) < 3.5 * se
    assert abs((years > pool).mean() - stated) < 3.5 * np.sqrt(stated * (1 - stated) / len(years))
    assert forecast.p05 < forecast.forecast < forecast.p95


def test_no_pool_no_probability_and_a_pool_at_the_median_is_a_coin_toss():
    inputs, _, _ = site_inputs(np.random.default_rng(2))
    a = R.RiskAssumptions(draws=20_000, seed=1)
    free = R.overspend(inputs, a, pooled_fund=None)
    assert free.probability is None and free.pooled_fund is None
    assert R.overspend(inputs, a, pooled_fund=free.forecast).probability == pytest.approx(0.5, abs=0.01)
    # Seeded: the same run gives the same draws.
    assert np.array_equal(free.spend_draws, R.overspend(inputs, a, None).spend_draws)


def test_tornado_ranks_every_input_on_its_own_uncertainty():
    inputs, _, _ = site_inputs(np.random.default_rng(2))
    a = R.RiskAssumptions(enrolment_growth_sd=0.2, draws=2_000)
    result = R.overspend(inputs, a, pooled_fund=6_000_000.0)
    table = R.tornado(result, a)
    assert set(table["input"]) == set(R.TORNADO_INPUTS.values())
    assert table["input"].iloc[0] == "Enrolment pace"
    assert (table["width"].diff().dropna() <= 0).all()
    # Pace changes only the starters: 400 x 0.03 x 1.6449 x 2 more or fewer of them, each spending
    # 15,000 x 1.03 x 0.86 for the part of the year they hold a budget.
    a = R.RiskAssumptions(enrolment_growth_sd=0.03, draws=2_000)
    pace = R.tornado(R.overspend(inputs, a, None), a).set_index("input").loc["Enrolment pace"]
    new_share = R.exposure_moments(np.array(R.exit_hazard(inputs)))["new"]
    swing = 400 * 0.03 * 2 * R.Z90 * 15_000 * 1.03 * 0.86 * new_share
    assert pace["gap_high"] - pace["gap_low"] == pytest.approx(swing, rel=1e-6)


def test_forecast_outturn_adds_the_months_left_to_spend_to_date():
    spend = pd.DataFrame({"month": pd.date_range("2026-01-01", "2026-09-01", freq="MS"), "amount": 100.0})
    out = R.forecast_outturn(spend, EXTRACT, np.full(10, 1_200.0))
    # Financial year 2026/27: April to September spent (600); October to March is 182/365 of a year.
    assert out["financial_year"] == "2026/27" and out["spend_to_date"] == 600.0
    assert out["outturn"] == pytest.approx(600 + 1_200 * 182 / 365)

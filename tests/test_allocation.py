"""Allocation analyses against cases worked out by hand and synthetic data with known truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ipcreport.analysis import allocation as A
from ipcreport.data.dataset import load_dataset

T = pd.Timestamp


def frame(rows, columns):
    return pd.DataFrame(rows, columns=columns)


PEOPLE = frame(
    [("a", "ipc", "long_term_conditions", "notional", 1000.0),
     ("b", "ipc", "mental_health", "direct_payment", 0.0),
     ("c", "ipc", "mental_health", "direct_payment", 500.0),
     ("z", "comparison", "mental_health", None, 800.0)],
    ["person_id", "group", "cohort", "management", "prior_service_cost"],
)
BUDGETS = frame(
    [("a", T("2025-01-01"), T("2025-12-31"), 10_000.0, 12_000.0, 6_000.0, 6_000.0, 0.0),
     ("b", T("2025-01-01"), T("2025-12-31"), 5_000.0, 4_000.0, 4_000.0, 0.0, 0.0),
     ("c", T("2025-07-01"), T("2026-06-30"), 3_000.0, 3_000.0, 1_000.0, 2_000.0, 0.0)],
    ["person_id", "period_start", "period_end", "indicative_budget", "agreed_budget", "funded_nhs",
     "funded_social_care", "funded_education"],
)
SPEND = frame(
    [("a", T("2025-01-01"), "home_care", 6_000.0), ("a", T("2025-06-01"), "therapies", 3_000.0),
     ("b", T("2025-03-01"), "personal_assistants", 3_000.0), ("b", T("2025-12-01"), "personal_assistants", -500.0),
     ("c", T("2025-08-01"), "respite", 1_000.0)],
    ["person_id", "month", "category", "amount"],
)
EXTRACT = T("2026-01-31")
WINDOW = A.Window.ending(EXTRACT)


def test_window_is_the_twelve_months_ending_on_the_extract_date():
    assert WINDOW == A.Window(T("2025-02-01"), T("2026-01-31"))


def test_money_counts_and_shares_by_hand():
    # In the year (1 Feb 2025 to 31 Jan 2026): a and b 334 of their 365 days, c 215 of 365.
    a, b, c = 12_000 * 334 / 365, 4_000 * 334 / 365, 3_000 * 215 / 365
    summary = A.budget_summary(BUDGETS, WINDOW)
    assert summary == pytest.approx({"budget_total": a + b + c, "budget_mean": 19_000 / 3, "budget_median": 4_000.0,
                                     "budget_periods": 3})
    by_management = A.money_by(BUDGETS, PEOPLE, WINDOW, "management", ("notional", "third_party", "direct_payment"))
    assert by_management["people"].tolist() == [1, 0, 2]
    assert by_management["money"].tolist() == pytest.approx([a, 0.0, b + c])
    assert by_management.loc["notional", "share_of_money"] == pytest.approx(a / (a + b + c))
    funding = A.funding_shares(BUDGETS, WINDOW)
    nhs = (10_000 * 334 + 1_000 * 215) / 365
    assert funding.to_dict() == pytest.approx({"nhs": nhs / (a + b + c), "social_care": 1 - nhs / (a + b + c),
                                               "education": 0.0})
    assert A.management_shares(PEOPLE).to_dict() == pytest.approx({"notional": 1 / 3, "third_party": 0, "direct_payment": 2 / 3})


def test_utilisation_counts_completed_periods_only_and_nets_refunds():
    per_period = A.utilisation(BUDGETS, SPEND, EXTRACT)
    # c's period runs to June 2026, after the extract: not completed, not counted.
    assert per_period.set_index("person_id")["spent"].to_dict() == {"a": 9_000.0, "b": 2_500.0}
    assert A.overall_utilisation(per_period) == pytest.approx(11_500 / 16_000)
    use = A.budget_use(per_period, PEOPLE)
    assert use.share_under_70 == 0.5  # b used 62.5%
    assert use.share_over_100 == 0.0
    assert use.direct_payment_unspent == pytest.approx(1_500.0)  # b: 4,000 agreed, 2,500 net spent
    assert use.distribution["50-70%"] == 1 and use.distribution["70-90%"] == 1


def test_new_need_is_agreed_money_of_people_with_no_prior_service_cost():
    table = A.new_need(PEOPLE, BUDGETS, WINDOW)
    assert table.loc["mental_health", "people"] == 1 and list(table.index) == ["mental_health"]
    assert table.loc["mental_health", "agreed"] == pytest.approx(4_000 * 334 / 365)


def test_calibration_recovers_a_known_elasticity():
    rng = np.random.default_rng(3)
    indicative = np.exp(rng.uniform(np.log(1_000), np.log(80_000), 400))
    agreed = 2.0 * indicative**0.8 * np.exp(rng.normal(0, 0.05, 400))
    budgets = pd.DataFrame({"indicative_budget": indicative, "agreed_budget": agreed})
    c = A.ras_calibration(budgets)
    assert c.slope_low < 0.8 < c.slope_high and c.slope_high < 1
    exact = A.ras_calibration(pd.DataFrame({"indicative_budget": indicative, "agreed_budget": indicative * 1.05}))
    assert exact.median_ratio == pytest.approx(1.05) and exact.share_within_10pct == 1.0
    assert exact.slope == pytest.approx(1.0)


def _equity_data(male_effect: float, n: int = 600, seed: int = 5):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    need = np.exp(rng.normal(4, 0.6, n))
    people = pd.DataFrame({
        "person_id": [f"p{i}" for i in range(n)], "group": "ipc",
        "cohort": rng.choice(["long_term_conditions", "mental_health"], n), "age": rng.integers(18, 95, n),
        "sex": sex, "imd_decile": rng.integers(1, 11, n), "need_score": need,
    })
    budget = 150 * need * np.exp(male_effect * (sex == "male") + rng.normal(0, 0.1, n))
    budgets = pd.DataFrame({"person_id": people["person_id"], "period_start": T("2025-06-01"),
                            "period_end": T("2026-05-31"), "agreed_budget": budget})
    return budgets, people


def test_equity_model_finds_an_injected_difference_and_not_an_absent_one():
    budgets, people = _equity_data(np.log(1.2))
    e = A.equity_model(budgets, people, WINDOW)
    male = e.terms.set_index("level").loc["male"]
    assert male["low"] < 0.2 < male["high"] and male["low"] > 0.1
    assert e.fairness_p_value < 0.001
    assert e.need_elasticity[1] < 0.1 < e.need_elasticity[2] + 0.001  # budget proportional to need

    fair = A.equity_model(*_equity_data(0.0), WINDOW)
    assert fair.fairness_p_value > 0.05


def test_equity_model_says_why_when_there_are_too_few_people():
    budgets, people = _equity_data(0.0, n=30)
    e = A.equity_model(budgets, people, WINDOW)
    assert e.fairness_p_value is None and "too few" in e.reason


def test_known_truth_of_the_synthetic_dataset(small_dataset):
    truth = json.loads((small_dataset / "truth.json").read_text())
    data = load_dataset(small_dataset)
    people, budgets, spend = data["people"], data["budgets"], data["spend"]
    for site, groups in truth["counts"]["by_site"].items():
        mine = people[people["site_code"] == site]
        assert mine["group"].value_counts().to_dict() == groups
    assert A.people_by(people, "management", tuple(truth["management"]["counts"])).to_dict() == truth["management"]["counts"]
    everything = A.Window(T("1900-01-01"), T("2100-01-01"))
    assert A.budget_summary(budgets, everything)["budget_total"] == pytest.approx(truth["budgets"]["agreed_total_gbp"], abs=0.01)
    assert A.new_need(people, budgets, everything)["agreed"].sum() == pytest.approx(
        truth["new_need"]["agreed_budget_gbp_all_periods"], abs=0.01)
    per_period = A.utilisation(budgets, spend, data.meta.extract_date)
    assert len(per_period) == truth["utilisation"]["completed_periods"]
    assert A.overall_utilisation(per_period) == pytest.approx(truth["utilisation"]["realised_net"], rel=0.01)
    assert A.ras_calibration(budgets).median_ratio == pytest.approx(
        truth["budgets"]["realised_agreed_over_indicative_median"], abs=1e-5)

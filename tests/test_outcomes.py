"""Outcome and economic estimators: hand-computed small cases, then synthetic data with known truth."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import statsmodels.api as sm  # noqa: E402
from scipy import stats  # noqa: E402

from ipcreport.report import charts as CH  # noqa: E402
from ipcreport.analysis import economics as E  # noqa: E402
from ipcreport.analysis import outcomes as O  # noqa: E402
from ipcreport.data.synth import SynthConfig, generate_tables  # noqa: E402

EXTRACT = pd.Timestamp("2026-09-30")
INDEX = pd.Timestamp("2024-03-01")
DAY = pd.Timedelta(days=1)


def make_people(n_ipc: int, n_comp: int, **extra) -> pd.DataFrame:
    n = n_ipc + n_comp
    people = pd.DataFrame({
        "person_id": [f"P{i:03d}" for i in range(n)],
        "site_code": "S1",
        "group": ["ipc"] * n_ipc + ["comparison"] * n_comp,
        "cohort": "long_term_conditions",
        "index_date": INDEX,
        "age": 70,
        "sex": "female",
        "imd_decile": 5,
        "need_score": 50.0,
        "management": ["notional"] * n_ipc + [None] * n_comp,
        "prior_service_cost": 1000.0,
        "exit_date": pd.NaT,
    })
    for k, v in extra.items():
        people[k] = v
    people["exit_date"] = pd.to_datetime(people["exit_date"])
    return people


def make_events(counts: dict[tuple[str, int], int], people: pd.DataFrame, event_type="emergency_admission",
                bed_days: int = 2) -> pd.DataFrame:
    """counts[(person_id, after)] events, spread inside the window."""
    rows = []
    for (pid, after), k in counts.items():
        for j in range(k):
            date = INDEX + (10 + j) * DAY if after else INDEX - (10 + j) * DAY
            rows.append({"person_id": pid, "event_date": date, "event_type": event_type, "bed_days": bed_days,
                         "cost": 1000.0})
    return pd.DataFrame(rows, columns=["person_id", "event_date", "event_type", "bed_days", "cost"])


# ---------------------------------------------------------------------------------------------
# difference in differences


def test_panel_windows_are_365_days_and_inclusive_at_exit():
    people = make_people(1, 1, exit_date=[INDEX + 99 * DAY, pd.NaT])
    ev = pd.DataFrame({
        "person_id": ["P000"] * 6 + ["P001"] * 3,
        "event_date": [INDEX - 365 * DAY, INDEX - 366 * DAY, INDEX - DAY, INDEX, INDEX + 99 * DAY, INDEX + 100 * DAY,
                       INDEX + 364 * DAY, INDEX + 365 * DAY, INDEX],
        "event_type": "emergency_admission",
        "bed_days": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        "cost": 1.0,
    })
    panel = O.before_after_panel(people, ev, "emergency_admission", EXTRACT).set_index(["person_id", "after"])
    # P000: before counts index-365 and index-1 (not index-366); after counts index and the exit day
    assert panel.loc[("P000", 0), "events"] == 2
    assert panel.loc[("P000", 1), "events"] == 2
    assert panel.loc[("P000", 0), "years"] == pytest.approx(365 / 365.25)
    assert panel.loc[("P000", 1), "years"] == pytest.approx(100 / 365.25)  # index .. exit, inclusive
    # P001: after window is index .. index+364
    assert panel.loc[("P001", 1), "events"] == 2
    assert panel.loc[("P001", 1), "years"] == pytest.approx(365 / 365.25)
    beds = O.before_after_panel(people, ev, "emergency_admission", EXTRACT, "bed_days").set_index(["person_id", "after"])
    assert beds.loc[("P000", 0), "events"] == 1 + 3
    assert beds.loc[("P000", 1), "events"] == 4 + 5
    assert beds.loc[("P000", 1), "episodes"] == 2
    with pytest.raises(ValueError):
        O.before_after_panel(people, ev, "emergency_admission", EXTRACT, "cost")


def test_extract_date_cuts_the_after_window():
    people = make_people(1, 1)
    panel = O.before_after_panel(people, make_events({}, people), "emergency_admission", INDEX + 49 * DAY)
    assert panel.loc[panel["after"] == 1, "years"].tolist() == pytest.approx([50 / 365.25] * 2)


def tiny_counts():
    """25 people a group, equal exposure; counts chosen by hand."""
    rng = np.random.default_rng(3)
    people = make_people(25, 25)
    counts = {}
    for i, pid in enumerate(people["person_id"]):
        counts[(pid, 0)] = int(rng.integers(0, 4))
        counts[(pid, 1)] = int(rng.integers(0, 4)) if i < 25 else int(rng.integers(1, 5))
    return people, counts


def test_poisson_did_equals_the_ratio_of_rate_ratios_computed_by_hand():
    people, counts = tiny_counts()
    events = make_events(counts, people)
    ipc_ids = set(people.loc[people["group"] == "ipc", "person_id"])
    a0 = sum(v for (p, t), v in counts.items() if p in ipc_ids and t == 0)
    a1 = sum(v for (p, t), v in counts.items() if p in ipc_ids and t == 1)
    c0 = sum(v for (p, t), v in counts.items() if p not in ipc_ids and t == 0)
    c1 = sum(v for (p, t), v in counts.items() if p not in ipc_ids and t == 1)
    by_hand = (a1 / a0) / (c1 / c0)  # equal exposures: years cancel
    panel = O.before_after_panel(people, events, "emergency_admission", EXTRACT)
    est = O.did_rate_ratio(panel)
    assert est.available and est.n == 50
    assert est.value == pytest.approx(by_hand, rel=1e-8)
    assert O.ratio_of_rate_ratios(panel) == pytest.approx(by_hand, rel=1e-10)
    assert est.low < est.value < est.high
    # the interval is the person-clustered sandwich: check it against a hand-built one
    X = np.column_stack([np.ones(len(panel)), panel["ipc"], panel["after"], panel["ipc"] * panel["after"]])
    y = panel["events"].to_numpy(float)
    fit = sm.GLM(y, X, family=sm.families.Poisson(), offset=np.log(panel["years"])).fit()
    mu = fit.mu
    g = pd.factorize(panel["person_id"])[0]
    S = np.zeros((g.max() + 1, 4))
    np.add.at(S, g, X * (y - mu)[:, None])
    Hinv = np.linalg.inv((X * mu[:, None]).T @ X)
    G, N = g.max() + 1, len(y)
    V = Hinv @ S.T @ S @ Hinv * G / (G - 1) * (N - 1) / (N - 4)
    se = np.sqrt(V[3, 3])
    assert np.log(est.high) - np.log(est.value) == pytest.approx(stats.norm.ppf(0.975) * se, rel=1e-6)


def test_weighted_did_with_fixed_weights_matches_a_hand_sandwich():
    people, counts = tiny_counts()
    panel = O.before_after_panel(people, make_events(counts, people), "emergency_admission", EXTRACT)
    w = pd.Series(np.linspace(0.5, 2.0, 50), index=people["person_id"])
    est = O.did_rate_ratio(panel, weights=w)
    # weighted Poisson with a saturated design: ratio of weighted ratios
    pw = panel.assign(w=panel["person_id"].map(w))
    t = pw.assign(we=pw["events"] * pw["w"], wy=pw["years"] * pw["w"]).groupby(["ipc", "after"])[["we", "wy"]].sum()
    r = t["we"] / t["wy"]
    assert est.value == pytest.approx((r[(1, 1)] / r[(1, 0)]) / (r[(0, 1)] / r[(0, 0)]), rel=1e-8)


def test_too_few_people_or_events_give_a_reason_not_a_number():
    people = make_people(5, 30)
    counts = {(p, t): 2 for p in people["person_id"] for t in (0, 1)}
    est = O.did_rate_ratio(O.before_after_panel(people, make_events(counts, people), "emergency_admission", EXTRACT))
    assert not est.available and est.value is None and "too few people" in est.reason
    people = make_people(30, 30)
    counts = {(p, t): (1 if p in ("P000", "P001") else 0) for p in people["person_id"] for t in (0, 1)}
    est = O.did_rate_ratio(O.before_after_panel(people, make_events(counts, people), "emergency_admission", EXTRACT))
    assert not est.available and "too few events" in est.reason
    # no events of the type at all
    est = O.did_rate_ratio(O.before_after_panel(people, make_events({}, people), "care_home_admission", EXTRACT))
    assert not est.available


def test_subgroup_frame_is_tidy_and_small_groups_get_reasons():
    people, counts = tiny_counts()
    people.loc[people.index[:3], "management"] = "direct_payment"
    panel = O.before_after_panel(people, make_events(counts, people), "emergency_admission", EXTRACT)
    rows = O.rate_ratio_subgroups(panel, "admissions")
    assert list(rows.columns) == O.SUBGROUP_COLUMNS
    assert rows.iloc[0][["dimension", "subgroup"]].tolist() == ["overall", "all"]
    dp = rows[rows["subgroup"] == "direct_payment"].iloc[0]
    assert pd.isna(dp["irr"]) and "too few people" in dp["reason"] and dp["n_ipc"] == 3
    notional = rows[rows["subgroup"] == "notional"].iloc[0]
    assert notional["n_comparison"] == 25 and notional["irr"] > 0 and notional["reason"] is None


# ---------------------------------------------------------------------------------------------
# quality of life


def qol_data(n: int = 60, effect: float = 0.03):
    rng = np.random.default_rng(5)
    people = make_people(n // 2, n // 2)
    people["age"] = rng.integers(20, 90, n)
    people["need_score"] = rng.uniform(10, 100, n)
    people["cohort"] = np.where(np.arange(n) % 3 == 0, "mental_health", "long_term_conditions")
    base = rng.uniform(0.3, 0.8, n)
    ipc = (people["group"] == "ipc").to_numpy()
    follow = 0.2 + 0.5 * base + effect * ipc + 0.001 * people["age"].to_numpy() \
        - 0.0002 * people["need_score"].to_numpy() + 0.01 * (people["cohort"] == "mental_health").to_numpy()
    surveys = pd.concat([
        pd.DataFrame({"person_id": people["person_id"], "survey_date": INDEX, "timepoint": "baseline", "ascot": base,
                      "eq5d": base, "ghq12": 10.0}),
        pd.DataFrame({"person_id": people["person_id"], "survey_date": INDEX + 365 * DAY, "timepoint": "follow_up",
                      "ascot": follow, "eq5d": follow, "ghq12": 10.0}),
    ], ignore_index=True)
    return people, surveys


def test_ancova_recovers_an_exact_effect_without_noise():
    people, surveys = qol_data()
    panel = O.quality_of_life_panel(people, surveys, "ascot")
    est = O.ancova_difference(panel)
    assert est.value == pytest.approx(0.03, abs=1e-10)
    assert est.high - est.low == pytest.approx(0.0, abs=1e-8)
    assert est.n == 60


def test_ancova_difference_matches_ols_by_hand():
    people, surveys = qol_data()
    rng = np.random.default_rng(9)
    surveys.loc[surveys["timepoint"] == "follow_up", "ascot"] += rng.normal(0, 0.05, 60)
    panel = O.quality_of_life_panel(people, surveys, "ascot")
    crude = O.ancova_difference(panel, adjust=False)
    X = np.column_stack([np.ones(60), panel["ipc"], panel["baseline"]])
    beta, *_ = np.linalg.lstsq(X, panel["follow_up"].to_numpy(), rcond=None)
    assert crude.value == pytest.approx(beta[1], rel=1e-10)
    fit = sm.OLS(panel["follow_up"].to_numpy(), X).fit(cov_type="HC3")
    assert crude.high - crude.low == pytest.approx(2 * O.Z95 * fit.bse[1], rel=1e-10)


def test_follow_up_completeness_and_missingness_test():
    people, surveys = qol_data(60)
    drop = surveys[(surveys["timepoint"] == "follow_up") & surveys["person_id"].isin([f"P{i:03d}" for i in range(0, 10)])]
    surveys = surveys.drop(drop.index)
    table = O.follow_up_completeness(people, surveys)
    assert table.loc["ipc"].tolist() == [30, 20, 10]
    assert table.loc["comparison"].tolist() == [30, 30, 0]
    with_dates = O.follow_up_completeness(people, surveys, EXTRACT)
    assert with_dates.loc["ipc", "missing_follow_up"] == 10 and with_dates.loc["ipc", "not_yet_due"] == 0
    test = O.missing_follow_up_test(table)
    assert test.missing_ipc == pytest.approx(1 / 3) and test.missing_comparison == 0
    # expected count of missing in each group is 5: chi-square; p from the 2x2 table by hand
    assert test.test == "chi-square test"
    assert test.p_value == pytest.approx(stats.chi2_contingency([[10, 20], [0, 30]], correction=False).pvalue)
    small = pd.DataFrame({"baseline": [25, 25], "followed_up": [23, 25], "missing_follow_up": [2, 0]},
                         index=["ipc", "comparison"])
    t2 = O.missing_follow_up_test(small)
    assert t2.test == "Fisher's exact test"
    assert t2.p_value == pytest.approx(stats.fisher_exact([[2, 23], [0, 25]]).pvalue)


def test_not_yet_due_follow_ups_are_not_counted_missing():
    people, surveys = qol_data(60)
    people.loc[people.index[:5], "index_date"] = EXTRACT - 100 * DAY
    surveys = surveys.drop(surveys[(surveys["timepoint"] == "follow_up") & surveys["person_id"].isin(
        people["person_id"][:5])].index)
    table = O.follow_up_completeness(people, surveys, EXTRACT)
    assert table.loc["ipc", "baseline"] == 25 and table.loc["ipc", "not_yet_due"] == 5
    assert table.loc["ipc", "missing_follow_up"] == 0


# ---------------------------------------------------------------------------------------------
# balance and propensity


def test_standardised_mean_difference_by_hand():
    cov = pd.DataFrame({"person_id": list("abcdef"), "ipc": [1, 1, 1, 0, 0, 0], "age": [1.0, 2, 3, 2, 3, 4],
                        "need_score": [1.0, 1, 4, 1, 1, 1]})
    smd = O.standardised_differences(cov, columns=["age", "need_score"]).set_index("covariate")
    assert smd.loc["age", "smd"] == pytest.approx(-1.0)  # means 2 and 3, variances 1 and 1
    # need: ipc mean 2, var 3; comparison mean 1, var 0 -> (2 - 1) / sqrt(1.5)
    assert smd.loc["need_score", "smd"] == pytest.approx(1 / np.sqrt(1.5))
    w = pd.Series([1, 1, 1, 3, 1, 1.0], index=list("abcdef"))
    ws = O.standardised_differences(cov, weights=w, columns=["age"]).set_index("covariate")
    assert ws.loc["age", "weighted_mean_comparison"] == pytest.approx((6 + 3 + 4) / 5)
    assert ws.loc["age", "weighted_smd"] == pytest.approx((2 - 13 / 5) / 1.0)


def test_stacked_sandwich_bread_is_the_derivative_of_the_estimating_equations():
    tables, _ = generate_tables(SynthConfig(sites=1, people=600, seed=4, baseline_need_imbalance=0.5))
    p, ev, sv = tables["people"], tables["events"], tables["surveys"]
    model = O.propensity_model(O.person_covariates(p, ev, sv))
    assert model is not None and np.all((model.e_fit > 0.01) & (model.e_fit < 0.99))
    panel = O.before_after_panel(p, ev, "emergency_admission", pd.Timestamp("2026-09-30"))
    pos = pd.Series(np.arange(len(model.person_id)), index=model.person_id)
    person = panel["person_id"].map(pos).to_numpy()
    X = np.column_stack([np.ones(len(panel)), panel["ipc"], panel["after"], panel["ipc"] * panel["after"]])
    y, off = panel["events"].to_numpy(float), np.log(panel["years"].to_numpy(float))
    ipc = model.ipc

    def equations(theta):
        beta, gamma = theta[:4], theta[4:]
        e = 1 / (1 + np.exp(-model.z @ gamma))
        w = np.where(ipc, 1.0, e / (1 - e))[person]
        mu = np.exp(X @ beta + off)
        return np.concatenate([(X * (w * (y - mu))[:, None]).sum(0), (model.z * (ipc - e)[:, None]).sum(0)])

    w = model.weights.to_numpy()[person]
    fit = sm.GLM(y, X, family=sm.families.Poisson(), offset=off, var_weights=w).fit()
    theta = np.concatenate([fit.params, model.params])
    assert np.abs(equations(theta)).max() < 1e-4  # both sets of equations solved
    A, _ = O._stacked_parts(model, person, X, w, y - fit.mu, fit.mu)
    h = 1e-6
    jac = np.column_stack([(equations(theta + h * np.eye(len(theta))[j]) - equations(theta - h * np.eye(len(theta))[j]))
                           / (2 * h) for j in range(len(theta))])
    np.testing.assert_allclose(-jac, A, rtol=1e-4, atol=1e-4 * np.abs(A).max())
    est = O.did_rate_ratio(panel, weights=model)
    known = O.did_rate_ratio(panel, weights=model.weights)
    assert est.value == pytest.approx(known.value)  # same point estimate, different interval


# ---------------------------------------------------------------------------------------------
# economics


def test_qaly_auc_nmb_and_icer_by_hand():
    assert E.qaly_auc(0.6, 0.8) == pytest.approx(0.7)
    assert E.qaly_auc(0.6, 0.8, years=0.5) == pytest.approx(0.35)
    np.testing.assert_allclose(E.qaly_auc([0.2, -0.1], [0.4, 0.1]), [0.3, 0.0])
    assert E.net_monetary_benefit(0.01, 100.0, 20_000) == pytest.approx(20_000 * 0.01 - 100)
    assert E.net_monetary_benefit(0.02, 700.0, 30_000) == pytest.approx(-100.0)
    assert E.icer(1000.0, 0.05) == (pytest.approx(20_000.0), "more QALYs for more money")
    assert E.icer(-10.0, 0.05)[0] is None and E.icer(-10.0, 0.05)[1].startswith("dominant")
    assert E.icer(10.0, -0.05)[1].startswith("dominated")
    assert E.icer(-1000.0, -0.1)[0] == pytest.approx(10_000.0)


def test_att_difference_is_the_mean_difference_without_covariates_and_exact_with_them():
    rng = np.random.default_rng(2)
    n = 200
    ipc = np.arange(n) < 80
    x = rng.normal(size=n) + ipc  # imbalanced covariate
    y = 3 + 2 * x + 5 * ipc
    ones = np.ones((n, 1))
    assert E.att_difference(y, ones, ipc)[0] == pytest.approx(y[ipc].mean() - y[~ipc].mean())
    X = np.column_stack([ones, x])
    assert E.att_difference(y, X, ipc)[0] == pytest.approx(5.0)
    y_missing = y.copy()
    y_missing[:10] = np.nan
    assert E.att_difference(y_missing, X, ipc)[0] == pytest.approx(5.0)
    W = E._resample_counts(ipc, 7, np.random.default_rng(0))
    assert W.shape == (7, n) and (W[:, ipc].sum(1) == 80).all() and (W[:, ~ipc].sum(1) == 120).all()
    np.testing.assert_allclose(E.att_difference(y, X, ipc, W), 5.0)
    # a resample's weighted fit equals fitting the explicitly resampled rows
    rows = np.repeat(np.arange(n), W[0].astype(int))
    yy = y + rng.normal(size=n)
    explicit = E.att_difference(yy[rows], X[rows], ipc[rows])[0]
    assert E.att_difference(yy, X, ipc, W[:1])[0] == pytest.approx(explicit)


def test_the_cost_design_is_standardised_and_leaves_the_adjusted_difference_unchanged():
    """Costs in pounds beside an intercept make the normal equations ill conditioned; the design
    standardises them (missing at the mean), which must not move the adjusted difference."""
    rng = np.random.default_rng(5)
    n = 300
    ipc = np.arange(n) < 100
    cost = rng.gamma(2.0, 6_000.0, size=n) + 3_000 * ipc  # pounds, imbalanced
    y = 500 + 0.4 * cost + 800 * ipc + rng.normal(0, 50, size=n)
    panel = pd.DataFrame({"cost": np.where(np.arange(n) % 17 == 0, np.nan, cost)})
    X = E._design(panel, ("cost",))
    seen = panel["cost"].notna().to_numpy()
    assert X[:, 1].mean() == pytest.approx(0, abs=1e-12) and X[seen, 1].std() == pytest.approx(1)
    raw = np.column_stack([np.ones(n), panel["cost"].fillna(panel["cost"].mean())])
    assert E.att_difference(y, X, ipc)[0] == pytest.approx(E.att_difference(y, raw, ipc)[0], rel=1e-9)


def test_follow_up_costs_by_hand():
    people = make_people(1, 1, exit_date=[pd.NaT, INDEX + 99 * DAY])
    budgets = pd.DataFrame({"person_id": ["P000", "P000"],
                            "period_start": [INDEX - 183 * DAY, INDEX + 182 * DAY],
                            "period_end": [INDEX + 181 * DAY, INDEX + 546 * DAY],
                            "agreed_budget": [3650.0, 7300.0]})
    events = pd.DataFrame({
        "person_id": ["P000", "P000", "P000", "P001", "P001", "P001"],
        "event_date": [INDEX, INDEX + 364 * DAY, INDEX - DAY, INDEX + 99 * DAY, INDEX + 100 * DAY, INDEX + 5 * DAY],
        "event_type": ["emergency_admission", "ae_attendance", "emergency_admission", "emergency_admission",
                       "emergency_admission", "ae_attendance"],
        "bed_days": [1, 0, 1, 1, 1, 0],
        "cost": [500.0, 100.0, 400.0, 700.0, 300.0, np.nan],
    })
    c = E.follow_up_costs(people, budgets, events, EXTRACT, basis="agreed").set_index("person_id")
    # period 1 covers index..index+181 (182 of its 365 days), period 2 index+182..index+364 (183 of 365)
    assert c.loc["P000", "budget_cost"] == pytest.approx(3650 * 182 / 365 + 7300 * 183 / 365)
    assert c.loc["P000", "hospital_cost"] == pytest.approx(600.0)
    assert c.loc["P000", "baseline_hospital_cost"] == pytest.approx(400.0)
    # P001 left on index+99: the exit-day event counts, the next day's does not; the uncosted A&E
    # attendance gets the A&E mean (100)
    assert c.loc["P001", "hospital_cost"] == pytest.approx(700.0 + 100.0)
    assert c.loc["P001", "days"] == 100 and c.loc["P001", "budget_cost"] == 0
    assert c.loc["P001", "total_cost"] == pytest.approx(800.0)
    u = E.follow_up_costs(people, budgets, events, EXTRACT, basis="agreed", usual_care=True).set_index("person_id")
    assert u.loc["P001", "usual_care_cost"] == pytest.approx(1000 * 100 / 365)
    assert u.loc["P000", "usual_care_cost"] == 0
    # follow-up year not yet complete: left out
    assert E.follow_up_costs(people, budgets, events, INDEX + 300 * DAY, basis="agreed").empty


def test_cost_effectiveness_bootstrap_is_seeded_and_consistent():
    tables, _ = generate_tables(SynthConfig(sites=2, people=1200, seed=8, ascot_gain=0.05, eq5d_gain=0.03))
    t = tables
    panel = E.economic_panel(t["people"], t["budgets"], t["events"], t["surveys"], pd.Timestamp("2026-09-30"),
                             spend=t["spend"], services=t["services"])
    a = E.cost_effectiveness(panel, n_boot=300, seed=1)
    b = E.cost_effectiveness(panel, n_boot=300, seed=1)
    pd.testing.assert_frame_equal(a.draws, b.draws)
    assert len(a.draws) == 300 and a.available
    assert a.d_cost.low < a.d_cost.value < a.d_cost.high
    for wtp in (20_000, 30_000):
        assert a.nmb[wtp].value == pytest.approx(wtp * a.d_qaly.value - a.d_cost.value)
        assert a.p_cost_effective[wtp] == pytest.approx(
            (wtp * a.draws["d_qaly"] - a.draws["d_cost"] > 0).mean())
    ceac = a.ceac.set_index("wtp")["probability"]
    assert ceac.loc[0] == pytest.approx((a.draws["d_cost"] < 0).mean())
    assert ceac.loc[20_000] == pytest.approx(a.p_cost_effective[20_000])
    # one population: everyone whose year was due has a cost and a QALY (observed, imputed or a death)
    assert panel["qaly"].notna().all() and a.n_qaly == len(panel) == a.n_ipc + a.n_comparison
    alive = ~panel["died"] & panel["eq5d_baseline"].notna() & panel["eq5d_follow_up"].notna()
    np.testing.assert_allclose(panel.loc[alive, "qaly"], (panel.loc[alive, "eq5d_baseline"]
                                                          + panel.loc[alive, "eq5d_follow_up"]) / 2)
    msgs = a.messages()
    assert all(isinstance(m, str) and m for m in msgs)
    assert any("QALY" in m for m in msgs)


def test_economics_reason_when_groups_are_tiny():
    people = make_people(5, 5)
    events = make_events({}, people)
    budgets = pd.DataFrame(columns=["person_id", "period_start", "period_end", "agreed_budget"])
    surveys = pd.DataFrame(columns=["person_id", "survey_date", "timepoint", "ascot", "eq5d", "ghq12"])
    ce = E.analyse_economics(people, budgets, events, surveys, EXTRACT, n_boot=50)
    assert not ce.available and "too few" in ce.reason
    assert ce.d_cost.value is None and all(not v.available for v in ce.nmb.values())
    assert "not estimated" in ce.messages()[0]


# ---------------------------------------------------------------------------------------------
# synthetic data with known truth


@pytest.fixture(scope="module")
def large():
    config = SynthConfig(sites=3, people=30_000, seed=21, admissions_rr=0.8, bed_days_rr=0.7, ascot_gain=0.05,
                         eq5d_gain=0.0, baseline_need_imbalance=0.3)
    tables, truth = generate_tables(config)
    return config, tables, truth


def test_large_replicate_recovers_the_truth(large):
    config, t, truth = large
    extract = pd.Timestamp(config.extract_date)
    est = O.headline_estimates(t["people"], t["events"], t["surveys"], extract)
    e = truth["effects"]
    assert abs(np.log(est["admissions"].value / e["admissions_rr"])) < 0.06
    assert abs(np.log(est["bed_days"].value / e["bed_days_rr"])) < 0.10
    assert abs(est["ascot"].value - e["ascot_gain"]) < 0.006
    assert abs(est["eq5d"].value - e["eq5d_gain"]) < 0.01
    for key in ("admissions", "bed_days"):
        assert est[key].low < e[f"{key}_rr"] < est[key].high
    # the realised in-sample DiD the generator records is close to ours (its after window runs
    # to the extract date, ours to a year, so not equal)
    assert abs(np.log(est["admissions"].value / truth["events"]["realised_admissions_did"])) < 0.05


def test_analyse_outcomes_on_imbalanced_data(large):
    config, t, _ = large
    r = O.analyse_outcomes(t["people"], t["events"], t["surveys"], pd.Timestamp(config.extract_date))
    assert "need_score" in r.imbalanced and r.weights is not None
    bal = r.balance.set_index("covariate")
    assert bal.loc["need_score", "smd"] > 0.1 and abs(bal.loc["need_score", "weighted_smd"]) < 0.05
    assert set(r.adjusted) == set(r.estimates)
    assert abs(np.log(r.adjusted["admissions"].value / 0.8)) < 0.06
    hu = r.hospital_use
    assert set(hu["outcome"]) == set(O.EVENT_OUTCOMES)
    # children are never admitted to care homes: a reason, not a number
    child = hu[(hu["outcome"] == "care_home_admissions") & (hu["subgroup"] == "children_complex_needs")].iloc[0]
    assert pd.isna(child["irr"]) and "too few events" in child["reason"]
    assert r.missingness.p_value is not None
    msgs = O.key_messages(r)
    assert any("cannot rule" in m for m in msgs)
    assert any("differed at the start by more than chance" in m for m in msgs)
    assert all(isinstance(m, str) for m in msgs)
    # the briefing headlines the weighted conditional estimate wherever it was fitted, the
    # unweighted and pooled ones as sensitivity rows
    which, head = O.headline_admissions(r)
    assert which == "weighted" and head is r.adjusted["admissions"]
    admissions = next(m for m in msgs if m.startswith("Emergency admissions"))
    assert f"rate ratio {head.value:.2f} (95% CI {head.low:.2f} to {head.high:.2f}), comparing each person" in admissions
    assert f"not weighted {r.estimates['admissions'].value:.2f}" in admissions
    # without a propensity model the unweighted conditional estimate is the headline
    unweighted = O.OutcomeResults(**{**r.__dict__, "adjusted": {}})
    assert O.headline_admissions(unweighted) == ("conditional", r.estimates["admissions"])
    assert "No weighted estimate could be fitted" in O.which_to_believe(unweighted)


# ---------------------------------------------------------------------------------------------
# charts


def test_charts_return_figures(large):
    config, t, _ = large
    people = t["people"].iloc[:3000]
    ids = set(people["person_id"])
    ev = t["events"][t["events"]["person_id"].isin(ids)]
    sv = t["surveys"][t["surveys"]["person_id"].isin(ids)]
    bu = t["budgets"][t["budgets"]["person_id"].isin(ids)]
    extract = pd.Timestamp(config.extract_date)
    r = O.analyse_outcomes(people, ev, sv, extract)
    ce = E.analyse_economics(people, bu, ev, sv, extract, n_boot=200)
    figs = [
        CH.forest_plot(r.hospital_use[r.hospital_use["outcome"] == "care_home_admissions"], "Care-home admissions"),
        CH.forest_plot(r.hospital_use[r.hospital_use["outcome"] == "admissions"], "Emergency admissions"),
        CH.forest_plot(r.hospital_use.iloc[:0], "Nothing"),
        CH.balance_plot(r.balance, "Balance"),
        CH.quality_of_life_plot(r.quality_of_life, "Quality of life"),
        CH.cost_effectiveness_plane(ce.draws, "Plane", (ce.d_qaly.value, ce.d_cost.value)),
        CH.acceptability_curve(ce.ceac, "CEAC"),
        CH.cost_components(ce.costs, "Costs"),
    ]
    for fig in figs:
        assert isinstance(fig, plt.Figure)
        plt.close(fig)


# ---------------------------------------------------------------------------------------------
# the conditional (person fixed-effect) model, exits, power, pre-trend, balance against chance


def two_window_panel(y0, y1, t1, ipc) -> pd.DataFrame:
    n = len(y0)
    return pd.DataFrame({"person_id": np.r_[np.arange(n), np.arange(n)].astype(str),
                         "after": np.r_[np.zeros(n), np.ones(n)].astype(int),
                         "events": np.r_[y0, y1].astype(float), "episodes": np.r_[y0, y1].astype(float),
                         "years": np.r_[np.ones(n), t1], "ipc": np.r_[ipc, ipc].astype(int)})


def test_conditional_model_with_equal_exposure_is_the_ratio_of_summed_counts():
    # Given each person's total, the after-share is binomial; with one group term the MLE is
    # each group's pooled after-share, so the IRR is (Y1/Y0 among ipc) / (Y1/Y0 among comparison).
    rng = np.random.default_rng(4)
    ipc = np.r_[np.ones(60), np.zeros(60)].astype(bool)
    y0, y1 = rng.poisson(1.5, 120), rng.poisson(1.2, 120)
    est = O.conditional_rate_ratio(two_window_panel(y0, y1, np.ones(120), ipc))
    by_hand = (y1[ipc].sum() / y0[ipc].sum()) / (y1[~ipc].sum() / y0[~ipc].sum())
    assert est.value == pytest.approx(by_hand, rel=1e-9)


def test_conditional_model_matches_statsmodels_conditional_poisson_and_its_robust_errors():
    from statsmodels.discrete.conditional_models import ConditionalPoisson

    rng = np.random.default_rng(1)
    n = 1500
    ipc = rng.random(n) < 0.5
    frailty = rng.gamma(2, 0.5, n)
    y0, y1 = rng.poisson(frailty), rng.poisson(frailty * np.where(ipc, 0.85, 1.05))
    t1 = rng.uniform(0.3, 1.0, n)
    # statsmodels drops people whose two counts are equal (no within-person variation carries
    # no information for a logit; for a Poisson it does), so compare where every pair differs
    keep = y0 != y1
    panel = two_window_panel(y0[keep], y1[keep], t1[keep], ipc[keep])
    est = O.conditional_rate_ratio(panel)
    X = np.column_stack([panel["after"], panel["ipc"] * panel["after"]]).astype(float)
    ref = ConditionalPoisson(panel["events"].to_numpy(), X, groups=panel["person_id"].to_numpy(),
                             offset=np.log(panel["years"].to_numpy())).fit(method="newton", disp=0)
    assert np.log(est.value) == pytest.approx(ref.params[1], abs=1e-6)
    # the interval is the robust (HC0 x n/(n-1)) sandwich of the binomial form
    total = y0[keep] + y1[keep]
    fit = sm.GLM(np.column_stack([y1[keep], y0[keep]]), np.column_stack([np.ones(keep.sum()), ipc[keep]]),
                 family=sm.families.Binomial(), offset=np.log(t1[keep])).fit(cov_type="HC0")
    assert est.se == pytest.approx(fit.bse[1] * np.sqrt(len(total) / (len(total) - 1)), rel=1e-6)


def test_minimum_detectable_ratio_and_interval_in_words_by_hand():
    # exp(-(1.959964 + 0.841621) x 0.1) = exp(-0.2801585) = 0.755664
    assert O.minimum_detectable_ratio(0.1) == pytest.approx(0.755664, abs=1e-6)
    assert O.interval_words(O.Estimate(0.85, 0.72, 1.02)) == "consistent with anything from a 28% fall to a 2% rise"
    assert O.interval_words(O.Estimate(0.85, 0.70, 0.95)) == "consistent with anything from a 30% fall to a 5% fall"


def test_chance_band_for_standardised_differences_by_hand():
    # 1.959964 x sqrt(1/100 + 1/100) = 0.277181; over 10 covariates z = 2.807034
    assert O.chance_smd(100, 100) == pytest.approx(0.277181, abs=1e-6)
    assert O.chance_smd(100, 100, comparisons=10) == pytest.approx(2.807034 * np.sqrt(0.02), abs=1e-6)
    balance = pd.DataFrame({"covariate": ["a", "b", "c"], "smd": [0.15, 0.25, 0.05], "n_ipc": [1000, 100, 1000],
                            "n_comparison": [1000, 100, 1000]})
    # chance band for 3 covariates: z = 2.393980; n = 1000 each: 0.107062; n = 100: 0.338562
    assert O.imbalanced_covariates(balance) == ["a"]


def test_exits_by_group_by_hand():
    people = make_people(40, 40)
    people["exit_reason"] = pd.Series([pd.NA] * 80, dtype="string")
    leave = {0: "died", 1: "died", 2: "moved", 3: "left_programme", 4: "died", 5: "died",
             40: "died", 41: "moved", 42: "moved", 43: "moved", 44: "moved", 45: "left_programme", 46: "died"}
    for i, reason in leave.items():
        people.loc[i, ["exit_date", "exit_reason"]] = [INDEX + 99 * DAY, reason]  # 100 days observed each
    table, ratios = O.exits_by_group(people, EXTRACT)
    t = table.set_index("group")
    full = ((EXTRACT - INDEX).days + 1) / 365.25
    years_ipc = 6 * 100 / 365.25 + 34 * full
    years_comp = 7 * 100 / 365.25 + 33 * full
    assert t.loc["ipc", ["exits", "died", "moved", "left_programme"]].tolist() == [6, 4, 1, 1]
    assert t.loc["comparison", ["exits", "died", "moved", "left_programme"]].tolist() == [7, 2, 4, 1]
    assert t.loc["ipc", "person_years"] == pytest.approx(years_ipc)
    assert ratios["exits"].value == pytest.approx((6 / years_ipc) / (7 / years_comp))
    assert ratios["exits"].se == pytest.approx(np.sqrt(1 / 6 + 1 / 7))
    assert not ratios["deaths"].available and "too few deaths" in ratios["deaths"].reason  # 2 comparison deaths


def test_change_score_difference_by_hand():
    panel = pd.DataFrame({"person_id": [f"P{i}" for i in range(6)], "ipc": [1, 1, 1, 0, 0, 0],
                          "baseline": [0.5, 0.6, 0.7, 0.4, 0.5, 0.6], "follow_up": [0.6, 0.7, 0.9, 0.4, 0.6, 0.6]})
    est = O.change_score_difference(panel, min_people=3)
    # changes: ipc 0.1, 0.1, 0.2 (mean 0.1333); comparison 0, 0.1, 0 (mean 0.0333)
    assert est.value == pytest.approx(0.1)


@pytest.fixture(scope="module")
def exits_scenarios():
    out = {}
    for ratio in (0.5, 2.0):
        cfg = SynthConfig(sites=1, people=24000, seed=31, admissions_rr=0.85, bed_days_rr=0.85, exit_share=0.3,
                          exit_frailty=1.0, ipc_exit_ratio=ratio)
        t, truth = generate_tables(cfg)
        panel = O.before_after_panel(t["people"], t["events"], "emergency_admission", pd.Timestamp(cfg.extract_date))
        out[ratio] = (O.conditional_rate_ratio(panel), O.did_rate_ratio(panel), truth)
    return out


def test_informative_exits_the_conditional_model_recovers_the_truth(exits_scenarios):
    # frail people leave, budget holders half or twice as often: the conditional model compares
    # each person with themselves and covers the true 0.85 both ways
    for ratio, (conditional, pooled, truth) in exits_scenarios.items():
        assert conditional.low < 0.85 < conditional.high, (ratio, conditional)
        assert abs(np.log(conditional.value / 0.85)) < 0.04, (ratio, conditional)
    # the pooled model without person effects is pulled up when budget holders leave less, down when more
    assert exits_scenarios[0.5][1].value > exits_scenarios[2.0][1].value


def test_pre_trend_where_the_data_cover_two_years_before_index():
    people = make_people(30, 30)
    rng = np.random.default_rng(2)
    rows = []
    for pid in people["person_id"]:
        for year_before in (1, 2):
            for j in range(rng.poisson(2)):
                rows.append({"person_id": pid, "event_date": INDEX - (year_before - 1) * 365 * DAY - (5 + j) * DAY,
                             "event_type": "emergency_admission", "bed_days": 1, "cost": 500.0})
    events = pd.DataFrame(rows)
    est = O.pre_trend(people, events, EXTRACT)
    assert est.available and est.low < 1 < est.high
    just_one_year = events[events["event_date"] >= INDEX - 365 * DAY]
    assert "do not cover more than 12 months" in O.pre_trend(people, just_one_year, EXTRACT).reason


def test_outcomes_survive_missing_questionnaires_and_events():
    cfg = SynthConfig(sites=1, people=600, seed=9)
    t, _ = generate_tables(cfg)
    extract = pd.Timestamp(cfg.extract_date)
    people, events, surveys = t["people"], t["events"], t["surveys"]
    cases = {
        "no questionnaires": (events, surveys.iloc[0:0]),
        "baselines only": (events, surveys[surveys["timepoint"] == "baseline"]),
        "no events after index": (events[events["event_date"] < events["person_id"].map(
            people.set_index("person_id")["index_date"])], surveys),
        "no events at all": (events.iloc[0:0], surveys.iloc[0:0]),
    }
    for name, (ev, sv) in cases.items():
        r = O.analyse_outcomes(people, ev, sv, extract)
        msgs = " ".join(O.key_messages(r))
        if "questionnaires" in name or "baselines" in name or "at all" in name:
            assert not r.estimates["ascot"].available and "too few paired questionnaires" in msgs, name
        if "events" in name:
            assert not r.estimates["admissions"].available and "too few events" in msgs, name
        econ = E.analyse_economics(people, t["budgets"], ev, sv, extract, spend=t["spend"], services=t["services"],
                                   n_boot=50)
        assert " ".join(econ.messages())  # words, not a KeyError


def test_qalys_count_deaths_as_zero_and_impute_missing_follow_ups_by_hand():
    people = make_people(25, 25, exit_date=[INDEX + 99 * DAY] + [pd.NaT] * 49)
    people["exit_reason"] = pd.Series(["died"] + [pd.NA] * 49, dtype="string")
    ids = people["person_id"]
    base = np.r_[np.linspace(0.4, 0.8, 25), np.linspace(0.3, 0.7, 25)]
    follow = base + np.r_[np.full(25, 0.05), np.zeros(25)]
    rows = [{"person_id": p, "timepoint": "baseline", "eq5d": b, "ascot": b} for p, b in zip(ids, base)]
    rows += [{"person_id": p, "timepoint": "follow_up", "eq5d": f, "ascot": f}
             for i, (p, f) in enumerate(zip(ids, follow)) if i not in (0, 1)]  # 0 died, 1 did not answer
    surveys = pd.DataFrame(rows)
    empty_events = make_events({}, people)
    budgets = pd.DataFrame(columns=["person_id", "period_start", "period_end", "agreed_budget", "funded_education"])
    panel = E.economic_panel(people, budgets, empty_events, surveys, EXTRACT, basis="agreed").set_index("person_id")
    # the death: baseline utility for the 100 days alive, then zero
    assert panel.loc["P000", "qaly"] == pytest.approx(base[0] * 100 / 365)
    # the non-responder: follow-up from the budget holders' line (follow = base + 0.05 exactly)
    assert panel.loc["P001", "qaly"] == pytest.approx((base[1] + base[1] + 0.05) / 2)
    assert panel.attrs["imputed"] == {"eq5d": 1, "ascot": 1}


def test_break_even_by_hand():
    # extra cost outside hospital 1,000 a year per holder; year-before emergency cost 2,500: 40%
    be = E.BreakEven(cost_to_recover=1000.0, emergency_cost=2500.0, cost_per_admission=2000.0, net_of_services=True)
    assert be.fall == pytest.approx(0.4) and be.admissions == pytest.approx(0.5)


@pytest.fixture(scope="module")
def cost_truth_data():
    cfg = SynthConfig(sites=1, people=16000, seed=12)
    t, truth = generate_tables(cfg)
    return cfg, t, truth


def test_cost_truth_is_recovered_and_no_nmb_without_services(cost_truth_data):
    cfg, t, truth = cost_truth_data
    extract = pd.Timestamp(cfg.extract_date)
    ce = E.analyse_economics(t["people"], t["budgets"], t["events"], t["surveys"], extract, spend=t["spend"],
                             services=t["services"], n_boot=400)
    true = truth["economics"]["incremental_cost"]
    assert ce.comparable and ce.d_cost.low < true < ce.d_cost.high, (ce.d_cost, true)
    assert ce.budget_cost == pytest.approx(truth["economics"]["budget_spend"] * truth["economics"]["people"]
                                           / ce.n_ipc, rel=0.02)  # the same people, education apart
    assert set(ce.nmb_ascot) == set(ce.nmb) and all(v.available for v in ce.nmb_ascot.values())
    assert ce.icer is None or ce.d_qaly.low > 0 or ce.d_qaly.high < 0
    # the break-even's interval covers the fall the true outside cost (budget spend plus the
    # services it replaced) would need, over the same emergency cost
    panel = E.economic_panel(t["people"], t["budgets"], t["events"], t["surveys"], extract, spend=t["spend"],
                             services=t["services"])
    be = ce.break_even
    outside = truth["economics"]["budget_spend"] + truth["economics"]["services_replaced"]
    true_fall = outside * E._per_year(panel, panel["ipc"].to_numpy() == 1) / be.emergency_cost
    assert be.low < be.fall < be.high and be.low < true_fall < be.high, (be, true_fall)
    without = E.analyse_economics(t["people"], t["budgets"], t["events"], t["surveys"], extract, spend=t["spend"],
                                  services=t["services"].iloc[0:0], n_boot=50)
    words = " ".join(without.messages())
    assert not without.comparable and "no services table" in words and "net monetary benefit is" not in words
    assert "Break-even" in words and without.break_even.fall > 0 and without.break_even.low is None


def test_fast_paths_give_the_same_numbers_as_the_plain_computations():
    # group sizes of a DiD panel from its before rows = distinct people by group
    people = make_people(25, 30, exit_date=[INDEX + 100 * DAY] * 5 + [pd.NaT] * 50)
    events = make_events({(f"P{i:03d}", a): (i + a) % 3 for i in range(55) for a in (0, 1)}, people)
    panel = O.before_after_panel(people, events, "emergency_admission", EXTRACT)
    ids = panel.drop_duplicates("person_id")
    assert O.did._group_sizes(panel) == (int((ids["ipc"] == 1).sum()), int((ids["ipc"] == 0).sum()))
    # the bootstrap's ATT difference with missing outcomes = the same with those people's weights zeroed
    rng = np.random.default_rng(3)
    n = 60
    ipc = np.arange(n) < 25
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=n) + X[:, 1]
    y[[2, 40, 41]] = np.nan
    W = rng.integers(0, 3, size=(4, n)).astype(float)
    zeroed = np.where(np.isnan(y), 0.0, W)
    assert np.allclose(E.att_difference(y, X, ipc, W), E.att_difference(np.nan_to_num(y), X, ipc, zeroed), rtol=0,
                       atol=1e-12)

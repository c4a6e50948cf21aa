"""Fast paths of issue 16 against the plain computations they replace, on small data, to many digits."""

from __future__ import annotations

import numpy as np
import pytest

from ipcreport.analysis import economics as E


def _legacy_resample_counts(ipc: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """The bootstrap's resample counts as first written (int64 draws into one B x n matrix)."""
    W = np.zeros((n_boot, len(ipc)))
    for mask in (ipc, ~ipc):
        idx = np.flatnonzero(mask)
        m = len(idx)
        if m == 0:
            continue
        picks = rng.integers(0, m, size=(n_boot, m)) + (np.arange(n_boot) * m)[:, None]
        W[:, idx] = np.bincount(picks.ravel(), minlength=n_boot * m).reshape(n_boot, m)
    return W


@pytest.mark.parametrize("seed,n,share", [(0, 50, 0.3), (1, 1000, 0.5), (2015, 3001, 0.1), (3, 40, 1.0)])
def test_resamples_split_by_group_are_the_same_draws(seed, n, share):
    ipc = np.random.default_rng(seed + 100).random(n) < share
    legacy = _legacy_resample_counts(ipc, 9, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    wi, wc = E._resample_split(ipc, 9, rng)
    np.testing.assert_array_equal(wi, legacy[:, ipc])
    np.testing.assert_array_equal(wc, legacy[:, ~ipc])
    np.testing.assert_array_equal(E._resample_counts(ipc, 9, np.random.default_rng(seed)), legacy)


def test_att_difference_on_split_weights_equals_the_full_matrix():
    rng = np.random.default_rng(5)
    n = 500
    ipc = rng.random(n) < 0.4
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.gamma(2.0, size=n)])
    y = X @ [1.0, 2.0, -0.5] + 3 * ipc + rng.normal(size=n)
    y[rng.random(n) < 0.1] = np.nan
    W = E._resample_counts(ipc, 20, np.random.default_rng(1))
    split = E._resample_split(ipc, 20, np.random.default_rng(1))
    # the same sums in another memory layout: equal to the last bits BLAS blocking leaves
    np.testing.assert_allclose(E.att_difference(y, X, ipc, split=split), E.att_difference(y, X, ipc, W), rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# the conditional (person fixed-effect) rate ratio: Newton on per-person arrays against the
# statsmodels GLM it replaced, and the subgroup table against a model fitted per subgroup panel

import pandas as pd  # noqa: E402
import statsmodels.api as sm  # noqa: E402

from ipcreport.analysis import outcomes as O  # noqa: E402
from ipcreport.analysis.outcomes import did as D  # noqa: E402
from ipcreport.analysis.outcomes.balance import _person_weights, _stacked_variance  # noqa: E402
from ipcreport.data.synth import SynthConfig, generate_tables  # noqa: E402

EXTRACT = pd.Timestamp("2026-09-30")


def _legacy_conditional(panel: pd.DataFrame, weights=None) -> O.Estimate:
    """conditional_rate_ratio as first written: statsmodels' binomial GLM on the person pairs."""
    if (few := D._too_few(panel, 20, 10)) is not None:
        return few
    pairs = D._person_pairs(panel)
    n = len(pairs)
    pairs = pairs[(pairs["y0"] + pairs["y1"]) > 0]
    X = np.column_stack([np.ones(len(pairs)), pairs["ipc"].to_numpy(dtype=float)])
    y1, total = pairs["y1"].to_numpy(dtype=float), (pairs["y0"] + pairs["y1"]).to_numpy(dtype=float)
    offset = np.log(pairs["t1"].to_numpy(dtype=float) / pairs["t0"].to_numpy(dtype=float))
    w, person = (np.ones(len(pairs)), None) if weights is None else _person_weights(pairs, weights)
    fit = sm.GLM(np.column_stack([y1, total - y1]), X, family=sm.families.Binomial(), offset=offset,
                 var_weights=w).fit()
    p = np.asarray(fit.mu)
    resid, slope = y1 - total * p, total * p * (1 - p)
    if person is not None:
        V = _stacked_variance(weights, person, X, w, resid, slope)
    else:
        bread = np.linalg.inv((X * (w * slope)[:, None]).T @ X)
        meat = (X * (w * resid)[:, None]).T @ (X * (w * resid)[:, None])
        V = bread @ meat @ bread * len(pairs) / (len(pairs) - 1)
    beta, se = float(fit.params[1]), float(np.sqrt(V[1, 1]))
    return O.Estimate(np.exp(beta), np.exp(beta - 1.959963984540054 * se), np.exp(beta + 1.959963984540054 * se),
                      n=n, se=se)


@pytest.fixture(scope="module")
def site():
    tables, _ = generate_tables(SynthConfig(sites=1, people=3000, seed=16, baseline_need_imbalance=0.4))
    return tables


def _same(a: O.Estimate, b: O.Estimate) -> None:
    assert (a.value is None) == (b.value is None) and a.n == b.n and a.reason == b.reason
    if a.value is not None:
        np.testing.assert_allclose([a.value, a.low, a.high, a.se], [b.value, b.low, b.high, b.se], rtol=1e-8)


def test_binomial_newton_matches_statsmodels_glm_with_weights_and_offset():
    rng = np.random.default_rng(9)
    n = 800
    X = np.column_stack([np.ones(n), rng.random(n) < 0.4])
    total = rng.integers(1, 9, n).astype(float)
    offset = np.log(rng.uniform(0.2, 1.0, n))
    y1 = rng.binomial(total.astype(int), 1 / (1 + np.exp(-(offset + X @ [0.1, -0.3])))).astype(float)
    w = rng.gamma(2.0, 0.5, n)
    beta, p = D._binomial_fit(y1, total, X, offset, w)
    ref = sm.GLM(np.column_stack([y1, total - y1]), X, family=sm.families.Binomial(), offset=offset,
                 var_weights=w).fit(tol=1e-13)
    np.testing.assert_allclose(beta, ref.params, rtol=1e-10)
    np.testing.assert_allclose(p, ref.mu, rtol=1e-10)


@pytest.mark.parametrize("outcome", ["emergency_admission", "elective_admission"])
def test_conditional_rate_ratio_equals_the_statsmodels_fit_unweighted_and_weighted(site, outcome):
    p, ev, sv = site["people"], site["events"], site["surveys"]
    panel = O.before_after_panel(p, ev, outcome, EXTRACT)
    _same(O.conditional_rate_ratio(panel), _legacy_conditional(panel))
    model = O.propensity_model(O.person_covariates(p, ev, sv))
    assert model is not None
    _same(O.conditional_rate_ratio(panel, weights=model), _legacy_conditional(panel, model))


@pytest.mark.parametrize("people", [3000, 400])  # 400: some subgroups too small (a reason, no number)
def test_subgroup_table_equals_a_statsmodels_fit_per_subgroup_panel(site, people):
    p, ev = site["people"].iloc[:people], site["events"]
    panel = O.before_after_panel(p, ev, "emergency_admission", EXTRACT, "bed_days")
    fast = O.rate_ratio_subgroups(panel, "bed_days")
    assert {"overall", "cohort", "management"} <= set(fast["dimension"])
    assert fast["irr"].notna().sum() >= 3 and (people > 1000 or fast["reason"].notna().any())
    for row in fast.itertuples():
        if row.dimension == "overall":
            sub = panel
        elif row.dimension == "cohort":
            sub = panel[panel["cohort"] == row.subgroup]
        else:
            sub = panel[(panel["ipc"] == 0) | (panel["management"] == row.subgroup)]
        ref = _legacy_conditional(sub)
        n_ipc, n_comp = D._group_sizes(sub)
        assert (row.n_ipc, row.n_comparison, row.events) == (n_ipc, n_comp, int(sub["episodes"].sum()))
        _same(O.Estimate(None if pd.isna(row.irr) else row.irr, row.low, row.high, n=ref.n, reason=row.reason,
                         se=ref.se), ref)


# ---------------------------------------------------------------------------------------------
# active budget holders by month: sorted searches against the count month by month


def test_active_holders_equal_the_month_by_month_count(site):
    from ipcreport.report.sections.compare import active_holders

    people = site["people"].copy()
    people.loc[people.index[:5], "exit_date"] = people["index_date"].iloc[:5] - pd.Timedelta(days=40)  # before start
    data = {"people": people}
    months = pd.period_range(people["index_date"].min().to_period("M") - 2, EXTRACT.to_period("M"), freq="M")
    holders = people[people["group"] == "ipc"]
    starts, exits = holders["index_date"].dt.to_period("M").to_numpy(), holders["exit_date"].dt.to_period("M")
    by_month = [int(((starts <= m) & ~(exits < m).fillna(False).to_numpy()).sum()) for m in months]
    pd.testing.assert_series_equal(active_holders(data, months), pd.Series(by_month, index=months, dtype=float))


# ---------------------------------------------------------------------------------------------
# follow-up costs: rows placed in people's windows by Arrow positions, against the merges they replace

from ipcreport.data.frames import positions  # noqa: E402


def test_positions_are_the_rows_a_merge_on_person_id_joins():
    keys = pd.Series(["b", "a", "c", None], dtype="str")
    column = pd.Series(["a", "z", "c", "a", None, "b"], dtype="str")
    np.testing.assert_array_equal(positions(column, keys.dropna()), [1, -1, 2, 1, -1, 0])
    np.testing.assert_array_equal(positions(pd.Series([3, 1, 7]), pd.Series([1, 2, 3])), [2, 0, -1])


def _legacy_window_sums(frame, window, date, value, mask_extra=None, before=False):
    """Per person of ``window``: sum of ``value`` over ``frame``'s rows in the follow-up year
    (or the 365 days before index), by a merge and a groupby as first written."""
    f = frame.assign(_v=value).merge(window[["person_id", "index_date", "end"]], on="person_id")
    inside = ((f[date] < f["index_date"]) & (f[date] >= f["index_date"] - pd.Timedelta(days=365)) if before
              else (f[date] >= f["index_date"]) & (f[date] <= f["end"]))
    if mask_extra is not None:
        inside &= mask_extra(f)
    return window["person_id"].map(f.loc[inside].groupby("person_id")["_v"].sum()).fillna(0.0).to_numpy(float)


def test_follow_up_costs_equal_the_merge_and_groupby_sums(site):
    t = site
    costs = E.follow_up_costs(t["people"], t["budgets"], t["events"], EXTRACT, spend=t["spend"],
                              services=t["services"])
    window = t["people"].set_index("person_id").loc[costs["person_id"], ["index_date"]].reset_index()
    window["end"] = window["index_date"] + (costs["days"].to_numpy() - 1) * pd.Timedelta(days=1)
    spend = _legacy_window_sums(t["spend"], window, "month", t["spend"]["amount"].astype(float))
    edu_share = window["person_id"].map(E._education_share(t["budgets"])).fillna(0.0).to_numpy()
    np.testing.assert_allclose(costs["budget_cost"], spend * (1 - edu_share), rtol=1e-12, atol=1e-9)
    sv = t["services"]
    not_edu = lambda f: f["funder"] != "education"  # noqa: E731
    for column, before in (("services_cost", False), ("baseline_services_cost", True)):
        legacy = _legacy_window_sums(sv, window, "month", sv["cost"].astype(float), not_edu, before)
        np.testing.assert_allclose(costs[column], legacy, rtol=1e-12, atol=1e-9)
    ev, cost = t["events"], E._event_costs(t["events"])
    emergency = lambda f: f["event_type"] == "emergency_admission"  # noqa: E731
    for column, extra, before in (("hospital_cost", None, False), ("baseline_hospital_cost", None, True),
                                  ("emergency_cost", emergency, False), ("baseline_emergency_cost", emergency, True)):
        legacy = _legacy_window_sums(ev, window, "event_date", cost, extra, before)
        np.testing.assert_allclose(costs[column], legacy, rtol=1e-12, atol=1e-9)
    assert costs["services_cost"].sum() > 0 and costs["baseline_emergency_cost"].sum() > 0


# ---------------------------------------------------------------------------------------------
# the pooled Poisson DiD: Newton and a bincount sandwich against statsmodels' cluster-robust GLM


@pytest.mark.parametrize("outcome,measure", [("emergency_admission", "count"), ("emergency_admission", "bed_days"),
                                             ("elective_admission", "count")])
def test_pooled_rate_ratio_equals_statsmodels_cluster_robust_glm(site, outcome, measure):
    panel = O.before_after_panel(site["people"], site["events"], outcome, EXTRACT, measure)
    ipc, after = panel["ipc"].to_numpy(float), panel["after"].to_numpy(float)
    groups = pd.factorize(panel["person_id"])[0]
    X = np.column_stack([np.ones(len(panel)), ipc, after, ipc * after, (groups % 7) / 7])  # plus a person covariate
    y, offset = panel["events"].to_numpy(float), np.log(panel["years"].to_numpy(float))
    ref = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset).fit(
        cov_type="cluster", cov_kwds={"groups": groups}, tol=1e-13)
    beta, cov, mu = D._poisson_cluster(y, X, offset, groups)
    np.testing.assert_allclose(beta, ref.params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov, ref.cov_params(), rtol=1e-8)
    np.testing.assert_allclose(mu, ref.mu, rtol=1e-9)
    est = O.did_rate_ratio(panel)
    ref4 = sm.GLM(y, X[:, :4], family=sm.families.Poisson(), offset=offset).fit(
        cov_type="cluster", cov_kwds={"groups": groups})
    np.testing.assert_allclose([np.log(est.value), est.se], [ref4.params[3], ref4.bse[3]], rtol=1e-8)


# person codes: a site's analysis on its people's ranks gives what it gave on the text IDs

def test_a_site_analysed_on_person_codes_publishes_what_the_text_ids_gave(small_dataset):
    from dataclasses import replace

    from ipcreport.data.dataset import load_dataset, site_data, site_tables
    from ipcreport.report.briefing import Settings, analyse_site

    dataset = load_dataset(small_dataset)
    coded = site_data(dataset, dataset.site_codes[0])
    assert coded["spend"]["person_id"].dtype == np.int64
    text = replace(coded, tables=site_tables(dataset, dataset.site_codes[0]))
    assert pd.api.types.is_string_dtype(text["spend"]["person_id"])
    on_codes, on_text = analyse_site(coded, Settings()), analyse_site(text, Settings())
    assert on_codes.metrics.values == on_text.metrics.values
    np.testing.assert_array_equal(on_codes.outcomes.economics.draws, on_text.outcomes.economics.draws)
    pd.testing.assert_frame_equal(on_codes.risk.by_month, on_text.risk.by_month)


def test_person_codes_are_ranks_of_the_people_ids_and_refuse_an_unknown_id():
    from ipcreport.data.dataset import with_person_codes

    people = pd.DataFrame({"person_id": pd.Series(["P3", "P1", "P2"], dtype="str"), "age": [70, 80, 90]})
    spend = pd.DataFrame({"person_id": pd.Series(["P2", "P3", "P2", "P1"], dtype="str"), "amount": [1.0, 2, 3, 4]})
    coded = with_person_codes({"people": people, "spend": spend, "sites": pd.DataFrame({"site_code": ["X"]})})
    assert coded["people"]["person_id"].tolist() == [2, 0, 1]  # P1 < P2 < P3, in the people's own row order
    assert coded["spend"]["person_id"].tolist() == [1, 2, 1, 0]
    assert coded["spend"]["amount"].tolist() == [1.0, 2, 3, 4] and people["person_id"].tolist() == ["P3", "P1", "P2"]
    with pytest.raises(ValueError, match="spend.person_id holds IDs not in people"):
        with_person_codes({"people": people, "spend": spend.assign(person_id=pd.Series(["P9"] * 4, dtype="str"))})


def test_a_partition_reads_the_same_person_codes_as_the_dataset_gives(small_dataset, tmp_path):
    """A partition's person_id is read as codes from Parquet's dictionary; the tables are those
    of the dataset split in memory, value for value and type for type."""
    from ipcreport.data.dataset import load_dataset, load_site, partition_by_site, site_data

    dataset = load_dataset(small_dataset)
    folders = partition_by_site(dataset, tmp_path)
    for code in dataset.site_codes[:2]:
        from_file, in_memory = load_site(folders[code]), site_data(dataset, code)
        for table, frame in in_memory.tables.items():
            pd.testing.assert_frame_equal(from_file[table], frame, obj=f"{code} {table}")
        assert from_file["services"]["person_id"].max() < len(from_file["people"])


def test_person_codes_of_a_table_with_no_rows():
    """A site with no budgets yet: an empty person_id column has no text type of its own."""
    from ipcreport.data.dataset import with_person_codes

    people = pd.DataFrame({"person_id": pd.Series(["P1"], dtype="str")})
    coded = with_person_codes({"people": people, "budgets": pd.DataFrame({"person_id": pd.Series([], dtype=object)})})
    assert coded["budgets"]["person_id"].dtype == np.int64 and coded["budgets"].empty

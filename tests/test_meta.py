"""Pooling sites' rate ratios (random effects): hand-computed cases and synthetic truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ipcreport.analysis import meta
from ipcreport.data.synth import SynthConfig, generate_tables


def test_homogeneous_sites_pool_to_the_inverse_variance_mean_by_hand():
    # log IRRs -0.2, -0.1, -0.15 with SEs 0.1, 0.2, 0.1: weights 100, 25, 100
    frame = pd.DataFrame({"site": ["A", "B", "C"], "log_irr": [-0.2, -0.1, -0.15], "se": [0.1, 0.2, 0.1]})
    p = meta.pool(frame)
    mu = (100 * -0.2 + 25 * -0.1 + 100 * -0.15) / 225  # = -0.1666...
    q = 100 * (-0.2 - mu) ** 2 + 25 * (-0.1 - mu) ** 2 + 100 * (-0.15 - mu) ** 2  # 0.3333 < k - 1: tau2 = 0
    assert p.tau2 == 0 and p.i2 == 0 and p.q == pytest.approx(q)
    assert p.value == pytest.approx(np.exp(mu)) and p.fixed == pytest.approx(np.exp(mu))
    se = np.sqrt(1 / 225)
    assert (p.low, p.high) == (pytest.approx(np.exp(mu - 1.959964 * se)), pytest.approx(np.exp(mu + 1.959964 * se)))
    t = stats.t.ppf(0.975, 1)  # 12.706: three sites leave one degree of freedom
    assert p.prediction_low == pytest.approx(np.exp(mu - t * se))
    np.testing.assert_allclose(p.sites["weight"], [100 / 225, 25 / 225, 100 / 225])


def test_heterogeneous_sites_dersimonian_laird_by_hand():
    y, se = np.array([-0.5, 0.1, -0.2]), np.array([0.1, 0.1, 0.2])
    w = 1 / se**2  # 100, 100, 25
    fixed = (w * y).sum() / w.sum()
    q = (w * (y - fixed) ** 2).sum()
    tau2 = (q - 2) / (w.sum() - (w**2).sum() / w.sum())
    w_re = 1 / (se**2 + tau2)
    mu = (w_re * y).sum() / w_re.sum()
    p = meta.pool(pd.DataFrame({"site": list("ABC"), "log_irr": y, "se": se}))
    assert p.tau2 == pytest.approx(tau2) and p.value == pytest.approx(np.exp(mu))
    assert p.i2 == pytest.approx((q - 2) / q)
    assert p.high == pytest.approx(np.exp(mu + 1.959964 * np.sqrt(1 / w_re.sum())), rel=1e-6)


def test_sites_without_an_estimate_are_left_out_and_named():
    frame = pd.DataFrame({"site": ["A", "B", "Tiny"], "log_irr": [-0.2, -0.1, np.nan], "se": [0.1, 0.2, np.nan]})
    p = meta.pool(frame)
    assert p.k == 2 and p.left_out == ["Tiny"] and p.prediction_low is None
    assert meta.pool(frame.iloc[[0, 2]]) is None
    assert "Left out" in " ".join(meta.messages(p))


def test_pooling_small_sites_recovers_the_true_effect():
    # six sites of 1,500 people, true IRR 0.85 everywhere: each alone is too small to see it
    cfg = SynthConfig(sites=6, people=9000, seed=44, admissions_rr=0.85, bed_days_rr=0.85)
    t, _ = generate_tables(cfg)
    people = t["people"]
    rows = []
    for code in people["site_code"].unique():
        ids = people.loc[people["site_code"] == code, "person_id"]
        tables = {"people": people[people["site_code"] == code], "events": t["events"][t["events"]["person_id"].isin(ids)]}
        est = meta.site_estimate(tables, pd.Timestamp(cfg.extract_date))
        rows.append({"site": code, "log_irr": est["admissions_log_irr"], "se": est["admissions_log_irr_se"]})
    p = meta.pool(pd.DataFrame(rows))
    assert p.k == 6 and p.low < 0.85 < p.high
    assert p.high - p.low < min(np.exp(r["log_irr"] + 1.96 * r["se"]) - np.exp(r["log_irr"] - 1.96 * r["se"])
                                for r in rows)


def _site_tables(t: dict, code: str) -> dict[str, pd.DataFrame]:
    ids = t["people"].loc[t["people"]["site_code"] == code, "person_id"]
    return {k: t[k][t[k]["person_id"].isin(ids)] for k in ("people", "events", "surveys")}


def test_national_model_with_site_effects_recovers_the_common_effect():
    # six sites, one true rate ratio 0.8 everywhere: the model on all people covers it, and
    # agrees with the random-effects pool of the sites' own (headline, weighted) estimates
    cfg = SynthConfig(sites=6, people=12000, seed=44, admissions_rr=0.8)
    t, _ = generate_tables(cfg)
    extract = pd.Timestamp(cfg.extract_date)
    codes = sorted(t["people"]["site_code"].unique())
    parts = {code: meta.site_part(_site_tables(t, code), extract) for code in codes}
    assert {p.which for p in parts.values()} == {"weighted"}
    national = meta.national_model(pd.concat([p.rows.assign(site=c) for c, p in parts.items()]))
    assert national.n == sum(p.estimate.n for p in parts.values())
    assert national.low < 0.8 < national.high and abs(np.log(national.value / 0.8)) < 0.1, national
    frame = pd.DataFrame([{"site": c, **p.columns()} for c, p in parts.items()]).rename(
        columns={"admissions_log_irr": "log_irr", "admissions_log_irr_se": "se"})
    pooled = meta.pool(frame)
    assert abs(np.log(national.value / pooled.value)) < 2 * national.se
    assert "national model" in meta.national_message(national, pooled) and "0.8" in meta.national_message(national, pooled)


def test_site_part_is_the_estimate_the_site_briefing_headlines():
    # the pool and the national model use what each briefing headlines (weighted where it fits)
    from ipcreport.analysis import outcomes as O

    cfg = SynthConfig(sites=2, people=3000, seed=7)
    t, _ = generate_tables(cfg)
    extract = pd.Timestamp(cfg.extract_date)
    tables = _site_tables(t, sorted(t["people"]["site_code"].unique())[0])
    which, head = O.headline_admissions(O.analyse_outcomes(tables["people"], tables["events"], tables["surveys"], extract))
    part = meta.site_part(tables, extract)
    assert (part.which, part.estimate.value, part.estimate.se) == (which, head.value, head.se)


def _glm_with_site_dummies(rows: pd.DataFrame) -> tuple[float, float]:
    """The national model the plain way, for comparison: statsmodels' binomial GLM on one row per
    person with a dummy per site, then the robust sandwich on the dense design."""
    import statsmodels.api as sm

    rows = rows.loc[rows.index.repeat(rows["people"])].reset_index(drop=True)  # one row per person
    rows = rows[rows["total"] > 0]
    X = np.column_stack([pd.get_dummies(rows["site"], dtype=float).to_numpy(), rows["ipc"].to_numpy()])
    y1, total, w = rows["y1"].to_numpy(), rows["total"].to_numpy(), rows["weight"].to_numpy()
    fit = sm.GLM(np.column_stack([y1, total - y1]), X, family=sm.families.Binomial(), offset=rows["offset"].to_numpy(),
                 var_weights=w).fit()
    p = np.asarray(fit.mu)
    resid, slope = w * (y1 - total * p), w * total * p * (1 - p)
    bread = np.linalg.inv((X * slope[:, None]).T @ X)
    meat = (X * resid[:, None]).T @ (X * resid[:, None])
    V = bread @ meat @ bread * len(rows) / (len(rows) - 1)
    return float(fit.params[-1]), float(np.sqrt(V[-1, -1]))


def test_national_model_matches_statsmodels_glm_with_site_dummies():
    # three sites of made-up rows with weights, offsets and merged duplicate people: the
    # per-site Newton fit gives statsmodels' coefficient and the dense sandwich's error
    rng = np.random.default_rng(3)
    n = 900
    rows = pd.DataFrame({"site": rng.choice(["A", "B", "C"], n), "ipc": rng.integers(0, 2, n).astype(float),
                         "total": rng.integers(0, 5, n).astype(float),
                         "offset": np.log(rng.choice([1.0, 0.5, 0.8], n)), "weight": rng.uniform(0.3, 2.0, n),
                         "people": rng.integers(1, 4, n)})
    rows["y1"] = rng.binomial(rows["total"].astype(int), 0.4 + 0.1 * rows["ipc"]).astype(float)
    est = meta.national_model(rows)
    beta, se = _glm_with_site_dummies(rows)
    assert np.log(est.value) == pytest.approx(beta, abs=1e-9) and est.se == pytest.approx(se, rel=1e-9)
    assert est.n == rows["people"].sum()


def test_national_model_site_terms_absorb_site_specific_trends_by_hand():
    # two sites, 40 people each (20 + 20), one event before and one after for everyone, except
    # that in site B every comparison person has 2 after: with site x period terms the budget
    # effect is identified within each site, so it is the same as fitting site A alone (1.0)
    # only if site B's budget holders follow site B's trend; here they do not (they stay at 1),
    # so the common IRR lies between A's 1.0 and B's 0.5.
    rows, events = [], []
    for s in ("A", "B"):
        for i in range(40):
            pid, ipc = f"{s}{i:02d}", i < 20
            rows.append({"person_id": pid, "site_code": s, "group": "ipc" if ipc else "comparison",
                         "cohort": "long_term_conditions", "index_date": pd.Timestamp("2024-03-01"),
                         "exit_date": pd.NaT, "management": "notional" if ipc else None})
            after = 2 if (s == "B" and not ipc) else 1
            for d in [-30] + [30 + j for j in range(after)]:
                events.append({"person_id": pid, "event_date": pd.Timestamp("2024-03-01") + pd.Timedelta(days=d),
                               "event_type": "emergency_admission", "bed_days": 1, "cost": 1.0})
    people = pd.DataFrame(rows)
    tables = {s: {"people": people[people["site_code"] == s], "events": pd.DataFrame(events)} for s in ("A", "B")}
    est = meta.national_model_of_sites(tables.values(), pd.Timestamp("2026-09-30"))
    assert 0.5 < est.value < 1.0 and est.low < est.value < est.high

"""Peer groups (nearest neighbours) and Fingertips-style comparisons."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ipcreport.analysis import funnel as F
from ipcreport.analysis import peers as P

matplotlib.use("Agg")


def two_clusters() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three small, affluent, older sites and three large, deprived, younger ones."""
    sites = pd.DataFrame({
        "site_code": ["A1", "A2", "A3", "B1", "B2", "B3"],
        "population": [100_000, 110_000, 95_000, 1_000_000, 1_100_000, 900_000],
        "imd_score": [10.0, 11.0, 9.5, 40.0, 41.0, 39.0],
    })
    areas = pd.DataFrame({"area_code": ["A1", "A2", "A3", "B1", "B2", "B3", "ZZ"],
                          "share_age_66_plus": [0.25, 0.24, 0.26, 0.10, 0.11, 0.09, 0.5]})
    return sites, areas


def test_nearest_neighbours_are_the_obvious_ones():
    sites, areas = two_clusters()
    groups = P.peer_groups(P.nearest_neighbours(sites, areas, k=2))
    assert set(groups["A1"]) == {"A2", "A3"}
    assert set(groups["B2"]) == {"B1", "B3"}
    assert all(code not in peers for code, peers in groups.items())


def test_default_k_is_5_or_fewer_when_fewer_sites():
    sites, areas = two_clusters()
    neighbours = P.nearest_neighbours(sites, areas)
    assert neighbours.groupby("site_code").size().eq(5).all()
    first = neighbours[neighbours["site_code"] == "A1"].sort_values("rank")
    assert set(first["peer_code"].iloc[:2]) == {"A2", "A3"}  # own cluster first
    assert first["distance"].is_monotonic_increasing
    three = P.nearest_neighbours(sites.iloc[:3], areas)
    assert three.groupby("site_code").size().eq(2).all()


def test_distance_is_euclidean_over_z_scores_by_hand():
    sites = pd.DataFrame({"site_code": ["X", "Y", "Z"], "population": [math.e, math.e**2, math.e**3],
                          "imd_score": [10.0, 20.0, 30.0]})
    areas = pd.DataFrame({"area_code": ["X", "Y", "Z"], "share_age_66_plus": [0.2, 0.2, 0.2]})
    # log population 1, 2, 3 and IMD 10, 20, 30 both have z-scores -1, 0, 1 (sample sd);
    # age does not vary, so it counts 0. Weighted (size 0.5, deprivation 2): X to Y
    # sqrt(0.5 x 1 + 2 x 1 + 0) = sqrt(2.5); X to Z sqrt(0.5 x 4 + 2 x 4) = sqrt(10)
    table = P.nearest_neighbours(sites, areas, k=2)
    x = table[table["site_code"] == "X"].set_index("peer_code")["distance"]
    assert x["Y"] == pytest.approx(math.sqrt(2.5))
    assert x["Z"] == pytest.approx(math.sqrt(10))
    # equal weights: sqrt(1 + 1) and sqrt(4 + 4)
    equal = P.nearest_neighbours(sites, areas, k=2, weights=dict.fromkeys(P.FEATURE_WEIGHTS, 1.0))
    x = equal[equal["site_code"] == "X"].set_index("peer_code")["distance"]
    assert x["Y"] == pytest.approx(math.sqrt(2)) and x["Z"] == pytest.approx(math.sqrt(8))


def test_deprivation_outweighs_size():
    # P is as deprived as S but a tenth of its size; Q is S's size but far less deprived.
    sites = pd.DataFrame({"site_code": ["S", "P", "Q", "R"], "population": [1_000_000, 100_000, 1_000_000, 400_000],
                          "imd_score": [40.0, 40.0, 10.0, 25.0]})
    areas = pd.DataFrame({"area_code": ["S", "P", "Q", "R"], "share_age_66_plus": [0.15] * 4})
    # log population z: S and Q +0.866, P -0.866 ... the gap S-P is 2 x 0.866 on size (weight 0.5)
    # and 0 on deprivation; S-Q is 0 on size and 1.549 (30 / sd 19.36) on deprivation (weight 2)
    ranked = P.nearest_neighbours(sites, areas, k=3)
    first = ranked[ranked["site_code"] == "S"].sort_values("rank")
    assert list(first["peer_code"])[:1] == ["P"]
    z = P.standardise(P.peer_features(sites, areas))
    by_hand = math.sqrt(0.5 * (z.loc["S", "log_population"] - z.loc["P", "log_population"]) ** 2)
    assert first.iloc[0]["distance"] == pytest.approx(by_hand)


def test_peer_count_is_5_or_the_nearer_half():
    assert [P.peer_count(n) for n in (1, 2, 3, 9, 10, 11, 30)] == [0, 1, 1, 4, 5, 5, 5]


def test_peer_reasons_say_what_is_similar_and_what_differs():
    sites, areas = two_clusters()
    reasons = P.peer_reasons(sites, areas, "A1", ["A2", "B1"]).set_index("site_code")
    assert reasons.loc["A1", "why"] == "This site"
    assert reasons.loc["A2", "why"] == "Similar deprivation and age structure and size"
    assert reasons.loc["B1", "why"] == "Nearest overall; more deprived, younger, larger"
    assert reasons.loc["B1", "population"] == 1_000_000 and reasons.loc["B1", "imd_score"] == 40.0


def test_sites_missing_a_variable_are_left_out():
    sites, areas = two_clusters()
    sites.loc[0, "imd_score"] = np.nan
    neighbours = P.nearest_neighbours(sites, areas, k=5)
    assert "A1" not in set(neighbours["site_code"]) | set(neighbours["peer_code"])


def test_read_areas_reads_the_reference_table():
    if not P.AREAS_CSV.exists():
        pytest.skip("data/reference/areas.csv not built")
    areas = P.read_areas()
    assert len(areas) == 153
    assert {"area_code", "population", "imd_score", "share_age_66_plus"} <= set(areas.columns)
    birmingham = areas.set_index("area_code").loc["E08000025"]
    assert birmingham["population"] == 1_140_525


# --- comparisons -------------------------------------------------------------------------------


@pytest.mark.parametrize(("low", "high", "polarity", "expected"), [
    (0.6, 0.7, "higher_is_better", "Better"),
    (0.6, 0.7, "lower_is_better", "Worse"),
    (0.6, 0.7, "neutral", "Higher"),
    (0.3, 0.4, "higher_is_better", "Worse"),
    (0.3, 0.4, "lower_is_better", "Better"),
    (0.3, 0.4, "neutral", "Lower"),
    (0.4, 0.6, "higher_is_better", "Similar"),
    (0.5, 0.6, "higher_is_better", "Similar"),  # touching the comparator is not excluding it
    (np.nan, 0.6, "higher_is_better", "Not compared"),
])
def test_compare_against_a_comparator_of_0_5(low, high, polarity, expected):
    assert P.compare(low, high, 0.5, polarity) == expected


@settings(max_examples=100, deadline=None)
@given(a=st.floats(-100, 100), b=st.floats(-100, 100), comparator=st.floats(-100, 100))
def test_a_neutral_indicator_never_says_better_or_worse(a, b, comparator):
    low, high = min(a, b), max(a, b)
    assert P.compare(low, high, comparator, "neutral") in {"Higher", "Similar", "Lower"}


def site_counts() -> pd.DataFrame:
    return pd.DataFrame({"site_code": ["A1", "A2", "A3", "B1", "B2", "B3"],
                         "numerator": [30, 32, 28, 300, 330, 90],
                         "denominator": [100, 100, 100, 1000, 1000, 150]})


def test_compare_sites_with_counts():
    sites, areas = two_clusters()
    neighbours = P.nearest_neighbours(sites, areas, k=2)
    data = site_counts()
    out = P.compare_sites(data, "proportion", "higher_is_better", neighbours=neighbours, overdispersion=None).set_index("site_code")
    england = 810 / 2450
    assert out["england"].to_numpy() == pytest.approx(np.full(6, england))
    low, high = stats.binomtest(90, 150).proportion_ci(0.95, method="wilson")
    assert out.loc["B3", "low"] == pytest.approx(low) and out.loc["B3", "high"] == pytest.approx(high)
    assert out.loc["B3", "vs_england"] == "Better"  # 60%, interval well above 33%
    assert out.loc["A1", "vs_england"] == "Similar"
    # B3's peers are B1 and B2, pooled: 630 / 2000
    assert set(out.loc["B3", "peers"].split(", ")) == {"B1", "B2"}
    assert out.loc["B3", "peer_value"] == pytest.approx(630 / 2000)
    assert out.loc["B3", "vs_peers"] == "Better"
    neutral = P.compare_sites(data, "proportion", "neutral", neighbours=neighbours, overdispersion=None)
    assert set(neutral["vs_england"]) <= {"Higher", "Similar", "Lower"}
    assert set(neutral["vs_peers"]) <= {"Higher", "Similar", "Lower"}
    worse = P.compare_sites(data, "proportion", "lower_is_better", overdispersion=None).set_index("site_code")
    assert worse.loc["B3", "vs_england"] == "Worse"
    assert worse["peer_value"].isna().all() and (worse["vs_peers"] == "Not compared").all()


def test_the_confidence_level_matters():
    data = pd.DataFrame({"site_code": ["S", "T"], "numerator": [60, 4000], "denominator": [100, 10000]})
    at_95 = P.compare_sites(data, "proportion", "higher_is_better", level=0.95, overdispersion=None).set_index("site_code")
    at_998 = P.compare_sites(data, "proportion", "higher_is_better", level=0.998, overdispersion=None).set_index("site_code")
    # S: 60% against England 4060 / 10100 = 40.2%: the 95% interval excludes it
    assert at_95.loc["S", "vs_england"] == "Better"
    assert at_998.loc["S", "low"] < at_95.loc["S", "low"]
    assert (at_998["level"] == 0.998).all()
    # 50% against England 4050 / 10100 = 40.1%: Wilson 95% (40.4%, 59.6%) excludes it,
    # 99.8% (35.2%, 64.8%) does not
    close = pd.DataFrame({"site_code": ["S", "T"], "numerator": [50, 4000], "denominator": [100, 10000]})
    assert P.compare_sites(close, "proportion", "higher_is_better", level=0.95, overdispersion=None).iloc[0]["vs_england"] == "Better"
    assert P.compare_sites(close, "proportion", "higher_is_better", level=0.998, overdispersion=None).iloc[0]["vs_england"] == "Similar"


def test_rates_use_exact_poisson_intervals():
    data = pd.DataFrame({"site_code": ["S", "T"], "numerator": [5, 100], "denominator": [10.0, 400.0]})
    out = P.compare_sites(data, "rate", "lower_is_better", multiplier=1000, overdispersion=None).set_index("site_code")
    assert out.loc["S", "value"] == pytest.approx(500.0)
    assert out.loc["S", "low"] == pytest.approx(stats.chi2.ppf(0.025, 10) / 2 / 10 * 1000)
    assert out.loc["S", "high"] == pytest.approx(stats.chi2.ppf(0.975, 12) / 2 / 10 * 1000)
    assert out.loc["S", "england"] == pytest.approx(105 / 410 * 1000)
    assert out.loc["S", "vs_england"] == "Similar"  # 500 per 1,000, but only 5 events


def test_given_values_and_intervals():
    data = pd.DataFrame({"site_code": ["S", "T"], "value": [0.8, 0.5], "low": [0.7, 0.45], "high": [0.9, 0.55]})
    out = P.compare_sites(data, polarity="higher_is_better", england=0.6)
    assert list(out["vs_england"]) == ["Better", "Worse"]
    with pytest.raises(ValueError):
        P.compare_sites(data, polarity="higher_is_better", overdispersion=None)


# --- spine chart -------------------------------------------------------------------------------


def spine_example() -> pd.DataFrame:
    data = site_counts()
    compared = {
        "share_good": P.compare_sites(data, "proportion", "higher_is_better", overdispersion=None),
        "share_bad": P.compare_sites(data, "proportion", "lower_is_better", overdispersion=None),
        "share_neutral": P.compare_sites(data, "proportion", "neutral", overdispersion=None),
    }
    return P.spine_rows(compared, "B3")


def test_spine_rows_and_positions():
    rows = spine_example()
    assert list(rows["indicator"]) == ["share_good", "share_bad", "share_neutral"]
    assert rows.loc[0, "max"] == pytest.approx(0.6) and rows.loc[0, "min"] == pytest.approx(0.28)
    assert list(rows["comparison"]) == ["Better", "Worse", "Higher"]
    pos = P.spine_positions(rows)
    # England 810 / 2450 = 0.331; furthest site 0.6 is 0.269 away: it touches the right end
    assert pos.loc[0, "value"] == pytest.approx(1.0)
    assert pos.loc[0, "left"] == pytest.approx(0.5 + (0.28 - 810 / 2450) / 0.269 / 2, rel=1e-2)
    # lower is better: flipped, the highest (worst) value on the left
    assert pos.loc[1, "value"] == pytest.approx(0.0)
    assert (pos["left"] <= pos["iqr_left"]).all() and (pos["iqr_right"] <= pos["right"]).all()
    assert pos.loc[2, "value"] == pytest.approx(1.0)


def test_spine_chart_smoke():
    import matplotlib.pyplot as plt

    from ipcreport.report.charts import spine_chart

    rows = spine_example()
    fig = spine_chart(rows, "B3 against England")
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * len(rows)  # range and inter-quartile bar per indicator
    assert len(ax.lines) == 1  # England
    assert len(ax.collections) == 3  # Better, Worse and Higher markers
    plt.close(fig)


# --- verdicts from overdispersed funnel limits -------------------------------------------------

DEMO_SIZES = np.array([900, 1000, 300, 500, 520, 280, 1000, 130, 160])  # budget holders, demo-like


def null_sites(rng: np.random.Generator, kind: str, phi: float = 1.6) -> pd.DataFrame:
    """Nine sites with no site effects: every site's expected value is the same, and sites
    differ only by chance and by ordinary between-site variation (overdispersion phi on
    average over the sites, drawn as random effects on the variance-stabilised scale)."""
    n = DEMO_SIZES
    if kind == "proportion":
        s2 = 1 / (4 * n)
        theta = math.asin(math.sqrt(0.3)) + rng.normal(0, math.sqrt((phi - 1) * s2.mean()), n.size)
        numerator = rng.binomial(n, np.sin(theta) ** 2)
    else:
        exposure = n * 0.8  # person-years
        s2 = 1 / (4 * 0.6 * exposure)
        root = 1 + rng.normal(0, math.sqrt((phi - 1) * s2.mean()), n.size)
        numerator = rng.poisson(0.6 * exposure * root**2)
        n = exposure
    return pd.DataFrame({"site_code": [f"S{i}" for i in range(n.size)], "numerator": numerator, "denominator": n})


def false_alarms(kind: str, overdispersion: str | None, replicates: int = 150) -> float:
    rng = np.random.default_rng(2005)
    verdicts = [P.compare_sites(null_sites(rng, kind), kind, "higher_is_better",
                                overdispersion=overdispersion)["vs_england"] for _ in range(replicates)]
    return float((pd.concat(verdicts) != "Similar").mean())


@pytest.mark.parametrize("kind", ["proportion", "rate"])
def test_overdispersion_brings_false_alarms_down_to_about_the_nominal_rate(kind):
    # 150 replicates x 9 sites = 1,350 verdicts; the nominal two-sided rate at 95% is 5%
    # (standard error 0.6 points). Intervals alone flag about 1 in 8, as the demo's
    # 7 of 54 did; the additive adjustment brings it back to about 1 in 20.
    unadjusted = false_alarms(kind, None)
    adjusted = false_alarms(kind, "additive")
    assert unadjusted > 0.10
    assert 0.025 < adjusted < 0.075


def test_funnel_verdicts_by_hand():
    # ten equal sites at 30% and one of 500 at 50%: far outside any limits, "Better"
    data = pd.DataFrame({"site_code": [f"S{i}" for i in range(11)],
                         "numerator": [150, 148, 152, 155, 145, 150, 149, 151, 150, 150, 250],
                         "denominator": [500] * 11})
    out = P.compare_sites(data, "proportion", "higher_is_better").set_index("site_code")
    assert out.loc["S10", "vs_england"] == "Better"
    assert (out.drop(index="S10")["vs_england"] == "Similar").all()
    # the comparator is the given England value; the verdict is the funnel's at that target
    england = P.compare_sites(data, "proportion", "higher_is_better", england=50.0, multiplier=100)
    target = 0.5
    fun = F.funnel(data.assign(unit=data["site_code"]), "proportion", target=target, overdispersion="additive")
    expected = [P.polarised(None if f == "within" else "Higher" if f.startswith("above") else "Lower",
                            "higher_is_better") for f in fun.units["flag"]]
    assert list(england["vs_england"]) == expected
    assert england["vs_england"].iloc[0] == "Worse"  # 30% against England's 50%
    assert (england["england"] == 50.0).all()


def test_peer_verdicts_use_the_same_spread():
    sites, areas = two_clusters()
    neighbours = P.nearest_neighbours(sites, areas, k=2)
    data = pd.concat([site_counts()] * 2, ignore_index=True)  # 12 units: enough to estimate
    data["site_code"] = [f"{c}{'' if i < 6 else 'x'}" for i, c in enumerate(data["site_code"])]
    out = P.compare_sites(data, "proportion", "higher_is_better", neighbours=neighbours).set_index("site_code")
    b3 = out.loc["B3"]
    assert b3["peer_value"] == pytest.approx(630 / 2000)
    limits = F.limits("proportion", [150], 630 / 2000, overdispersion="additive", phi=b3["phi"], tau2=b3["tau2"])
    above = 90 / 150 > limits.loc[0, "upper_95"]
    assert b3["vs_peers"] == ("Better" if above else "Similar")
    assert pd.isna(out.loc["B3x", "peer_value"]) and out.loc["B3x", "vs_peers"] == "Not compared"


@pytest.mark.parametrize("kind,overdispersion", [("proportion", "additive"), ("proportion", "multiplicative"),
                                                 ("rate", "additive"), ("rate", None)])
def test_limits_for_a_target_per_site_equal_one_call_per_site(kind, overdispersion):
    """Peer verdicts take every site's limits, each around its own peers' value, in one call."""
    den = np.array([40.0, 150, 900, 2500])
    targets = np.array([0.12, 0.3, 0.05, 0.6])
    together = F.limits(kind, den, targets, overdispersion=overdispersion, phi=1.8, tau2=0.004)
    for i, (d, t) in enumerate(zip(den, targets)):
        alone = F.limits(kind, [d], t, overdispersion=overdispersion, phi=1.8, tau2=0.004)
        pd.testing.assert_frame_equal(together.iloc[[i]].reset_index(drop=True), alone)

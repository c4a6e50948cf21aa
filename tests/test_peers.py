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
    # age does not vary, so it counts 0. X to Y: sqrt(1 + 1 + 0); X to Z: sqrt(4 + 4)
    table = P.nearest_neighbours(sites, areas, k=2)
    x = table[table["site_code"] == "X"].set_index("peer_code")["distance"]
    assert x["Y"] == pytest.approx(math.sqrt(2))
    assert x["Z"] == pytest.approx(math.sqrt(8))


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
    out = P.compare_sites(data, "proportion", "higher_is_better", neighbours=neighbours).set_index("site_code")
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
    neutral = P.compare_sites(data, "proportion", "neutral", neighbours=neighbours)
    assert set(neutral["vs_england"]) <= {"Higher", "Similar", "Lower"}
    assert set(neutral["vs_peers"]) <= {"Higher", "Similar", "Lower"}
    worse = P.compare_sites(data, "proportion", "lower_is_better").set_index("site_code")
    assert worse.loc["B3", "vs_england"] == "Worse"
    assert worse["peer_value"].isna().all() and (worse["vs_peers"] == "Not compared").all()


def test_the_confidence_level_matters():
    data = pd.DataFrame({"site_code": ["S", "T"], "numerator": [60, 4000], "denominator": [100, 10000]})
    at_95 = P.compare_sites(data, "proportion", "higher_is_better", level=0.95).set_index("site_code")
    at_998 = P.compare_sites(data, "proportion", "higher_is_better", level=0.998).set_index("site_code")
    # S: 60% against England 4060 / 10100 = 40.2%: the 95% interval excludes it
    assert at_95.loc["S", "vs_england"] == "Better"
    assert at_998.loc["S", "low"] < at_95.loc["S", "low"]
    assert (at_998["level"] == 0.998).all()
    # 50% against England 4050 / 10100 = 40.1%: Wilson 95% (40.4%, 59.6%) excludes it,
    # 99.8% (35.2%, 64.8%) does not
    close = pd.DataFrame({"site_code": ["S", "T"], "numerator": [50, 4000], "denominator": [100, 10000]})
    assert P.compare_sites(close, "proportion", "higher_is_better", level=0.95).iloc[0]["vs_england"] == "Better"
    assert P.compare_sites(close, "proportion", "higher_is_better", level=0.998).iloc[0]["vs_england"] == "Similar"


def test_rates_use_exact_poisson_intervals():
    data = pd.DataFrame({"site_code": ["S", "T"], "numerator": [5, 100], "denominator": [10.0, 400.0]})
    out = P.compare_sites(data, "rate", "lower_is_better", multiplier=1000).set_index("site_code")
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
        P.compare_sites(data, polarity="higher_is_better")


# --- spine chart -------------------------------------------------------------------------------


def spine_example() -> pd.DataFrame:
    data = site_counts()
    compared = {
        "share_good": P.compare_sites(data, "proportion", "higher_is_better"),
        "share_bad": P.compare_sites(data, "proportion", "lower_is_better"),
        "share_neutral": P.compare_sites(data, "proportion", "neutral"),
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

    from ipcreport.charts import spine_chart

    rows = spine_example()
    fig = spine_chart(rows, "B3 against England")
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * len(rows)  # range and inter-quartile bar per indicator
    assert len(ax.lines) == 1  # England
    assert len(ax.collections) == 3  # Better, Worse and Higher markers
    plt.close(fig)

"""Funnel plot limits worked out by hand for small cases, outliers, overdispersion and the
shape of the funnel as properties."""

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

matplotlib.use("Agg")


# --- exact limits by hand ----------------------------------------------------------------------


def interpolated_by_hand(pmf, p: float, size: float) -> float:
    """Spiegelhalter (2005) A.1.1 from probabilities summed term by term: r_p is the smallest r
    with P(R <= r) >= p, a = (P(R <= r_p) - p) / P(R = r_p), the limit (r_p - a) / size."""
    cumulative, r = 0.0, 0
    while True:
        cumulative += pmf(r)
        if cumulative >= p:
            return (r - (cumulative - p) / pmf(r)) / size
        r += 1


def test_binomial_limits_p0_0_2_n_50_by_hand():
    n, p0 = 50, 0.2

    def pmf(r: int) -> float:
        return math.comb(n, r) * p0**r * (1 - p0) ** (n - r)

    # the quantiles themselves: P(R <= 4) = 0.0185 < 0.025 <= P(R <= 5) = 0.0480, so r = 5;
    # P(R <= 15) = 0.9692 < 0.975 <= P(R <= 16) = 0.9856, so r = 16
    assert sum(pmf(r) for r in range(5)) < 0.025 <= sum(pmf(r) for r in range(6))
    assert sum(pmf(r) for r in range(16)) < 0.975 <= sum(pmf(r) for r in range(17))
    assert stats.binom.ppf([0.025, 0.975], n, p0).tolist() == [5, 16]

    for level, (low_p, high_p) in ((0.95, (0.025, 0.975)), (0.998, (0.001, 0.999))):
        lower, upper = F.proportion_limits([n], p0, level)
        assert lower[0] == pytest.approx(interpolated_by_hand(pmf, low_p, n), rel=1e-9)
        assert upper[0] == pytest.approx(interpolated_by_hand(pmf, high_p, n), rel=1e-9)
    lower, upper = F.proportion_limits([n], p0, 0.95)
    assert 4 / 50 < lower[0] < 5 / 50 and 15 / 50 < upper[0] < 16 / 50


def test_binomial_beta_form_by_hand():
    # expected count 50 x 0.2 = 10: lower Beta(10, 41), upper Beta(11, 40)
    lower, upper = F.proportion_limits([50], 0.2, 0.95, method="beta")
    assert lower[0] == pytest.approx(stats.beta.ppf(0.025, 10, 41))
    assert upper[0] == pytest.approx(stats.beta.ppf(0.975, 11, 40))


def test_poisson_rate_limits_small_expected_count_by_hand():
    # 0.5 events per person-year, 10 person-years: 5 events expected
    rate, exposure = 0.5, 10.0
    lower, upper = F.rate_limits([exposure], rate, 0.95)
    assert lower[0] == pytest.approx(stats.chi2.ppf(0.025, 2 * 5) / 2 / exposure)
    assert upper[0] == pytest.approx(stats.chi2.ppf(0.975, 2 * (5 + 1)) / 2 / exposure)
    assert lower[0] == pytest.approx(stats.gamma.ppf(0.025, 5) / exposure)  # the same, as a gamma
    lower, upper = F.rate_limits([exposure], rate, 0.998)
    assert lower[0] == pytest.approx(stats.chi2.ppf(0.001, 10) / 2 / exposure)
    assert upper[0] == pytest.approx(stats.chi2.ppf(0.999, 12) / 2 / exposure)
    assert 0.0 < lower[0] < rate < upper[0]


def test_poisson_interpolated_by_hand():
    mu, exposure = 5.0, 10.0

    def pmf(r: int) -> float:
        return math.exp(-mu) * mu**r / math.factorial(r)

    lower, upper = F.rate_limits([exposure], 0.5, 0.95, method="poisson")
    assert lower[0] == pytest.approx(interpolated_by_hand(pmf, 0.025, exposure), rel=1e-9)
    assert upper[0] == pytest.approx(interpolated_by_hand(pmf, 0.975, exposure), rel=1e-9)


# --- units and flags -------------------------------------------------------------------------


def units(numerators, denominators) -> pd.DataFrame:
    return pd.DataFrame({"unit": [f"U{i:02d}" for i in range(len(numerators))],
                         "numerator": numerators, "denominator": denominators})


def test_outlying_units_fall_outside_99_8():
    data = units([40] * 20 + [80, 10], [200] * 22)
    result = F.funnel(data)
    assert result.target == pytest.approx((20 * 40 + 90) / (22 * 200))
    flags = result.units.set_index("unit")["flag"]
    assert flags["U20"] == "above 99.8%"
    assert flags["U21"] == "below 99.8%"
    assert set(flags.iloc[:20]) == {"within"}
    assert list(result.units.columns) == ["unit", "numerator", "denominator", "value", "target", "lower_998",
                                          "lower_95", "upper_95", "upper_998", "z", "flag"]


def test_flag_between_95_and_99_8_and_on_a_limit():
    table = pd.DataFrame({"lower_998": [0.1] * 5, "lower_95": [0.2] * 5, "upper_95": [0.4] * 5,
                          "upper_998": [0.5] * 5})
    flags = F.classify([0.45, 0.55, 0.15, 0.05, 0.4], table)
    assert list(flags) == ["above 95%", "above 99.8%", "below 95%", "below 99.8%", "within"]


def test_rates_with_a_multiplier():
    data = units([5, 50, 30], [10.0, 100.0, 20.0])
    result = F.funnel(data, kind="rate", multiplier=1000)
    assert result.target == pytest.approx(85 / 130)
    row = result.units.iloc[0]
    assert row["value"] == pytest.approx(500.0)
    assert row["upper_95"] == pytest.approx(stats.chi2.ppf(0.975, 2 * (85 / 130 * 10 + 1)) / 2 / 10 * 1000)
    assert result.units.iloc[2]["flag"].startswith("above")  # 1.5 a year against 0.65


def test_grid_spans_the_denominators():
    result = F.funnel(units([10, 20, 30], [50, 100, 400]))
    grid = result.grid
    assert grid["denominator"].min() <= 50 and grid["denominator"].max() >= 400
    assert grid["denominator"].is_monotonic_increasing
    assert list(grid.columns) == ["denominator", "target", "lower_998", "lower_95", "upper_95", "upper_998"]


def test_rejects_impossible_counts():
    with pytest.raises(ValueError):
        F.funnel(units([60], [50]))
    with pytest.raises(ValueError):
        F.funnel(units([1], [0]))


# --- overdispersion ----------------------------------------------------------------------------


def overdispersed() -> pd.DataFrame:
    shares = np.linspace(0.1, 0.3, 10)
    return units((shares * 500).round().astype(int), [500] * 10)


def test_phi_from_winsorised_z_scores_by_hand():
    data = overdispersed()
    o, n = data["numerator"].to_numpy(float), data["denominator"].to_numpy(float)
    p0 = o.sum() / n.sum()
    z = (np.arcsin(np.sqrt(o / n)) - np.arcsin(np.sqrt(p0))) * 2 * np.sqrt(n)
    zs = np.sort(z)
    # 10% and 90% quantiles of 10 values (linear interpolation): 0.9 of the way from the 1st to
    # the 2nd value, and 0.1 of the way from the 9th to the 10th
    low, high = zs[0] + 0.9 * (zs[1] - zs[0]), zs[8] + 0.1 * (zs[9] - zs[8])
    phi = np.mean(np.clip(z, low, high) ** 2)
    s = 1 / (2 * np.sqrt(n))
    w = 1 / s**2
    tau2 = (10 * phi - 9) / (w.sum() - (w**2).sum() / w.sum())
    result = F.funnel(data, overdispersion="multiplicative")
    assert result.phi == pytest.approx(phi)
    assert result.tau2 == pytest.approx(tau2)
    assert result.phi > 1


def test_overdispersion_widens_the_limits():
    data = overdispersed()
    plain = F.funnel(data).units
    multiplicative = F.funnel(data, overdispersion="multiplicative").units
    additive = F.funnel(data, overdispersion="additive").units
    for wider in (multiplicative, additive):
        assert (wider["upper_998"] > plain["upper_998"]).all()
        assert (wider["lower_998"] < plain["lower_998"]).all()
        assert (wider["flag"] == "within").sum() > (plain["flag"] == "within").sum()
    phi = F.funnel(data).phi
    assert multiplicative["upper_95"].to_numpy() == pytest.approx(
        plain["target"] + np.sqrt(phi) * (plain["upper_95"] - plain["target"]))


def test_no_overdispersion_leaves_the_exact_limits():
    data = units([40, 41, 39, 40, 42, 38], [200] * 6)  # far less spread than chance
    plain = F.funnel(data).units
    additive = F.funnel(data, overdispersion="additive")
    assert additive.tau2 == 0.0
    assert additive.units["upper_95"].to_numpy() == pytest.approx(plain["upper_95"].to_numpy())


# --- properties --------------------------------------------------------------------------------


targets = st.floats(min_value=0.02, max_value=0.98)


def contains(outer: tuple, inner: tuple) -> bool:
    return bool(np.all(outer[0] <= inner[0] + 1e-12) and np.all(outer[1] >= inner[1] - 1e-12))


@settings(max_examples=60, deadline=None)
@given(p0=targets, n=st.integers(1, 5000), more=st.integers(1, 5000))
def test_beta_limits_widen_as_the_denominator_falls(p0, n, more):
    small = F.proportion_limits([n], p0, 0.95, "beta")
    large = F.proportion_limits([n + more], p0, 0.95, "beta")
    assert contains(small, large)


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(0.001, 5.0), exposure=st.floats(0.5, 1e5), factor=st.floats(1.01, 100.0),
       method=st.sampled_from(["chisq"]))
def test_rate_limits_widen_as_the_exposure_falls(rate, exposure, factor, method):
    small = F.rate_limits([exposure], rate, 0.998, method)
    large = F.rate_limits([exposure * factor], rate, 0.998, method)
    assert contains(small, large)


@settings(max_examples=60, deadline=None)
@given(p0=targets, n=st.integers(1, 3000), factor=st.integers(2, 10))
def test_binomial_limits_widen_as_the_denominator_falls(p0, n, factor):
    # the interpolated binomial limits keep a small sawtooth from the discreteness of the
    # binomial, so they narrow over a doubling of the denominator, once past the smallest counts
    if n * p0 * (1 - p0) < 5:
        return
    assert contains(F.proportion_limits([n], p0, 0.95), F.proportion_limits([n * factor], p0, 0.95))


@settings(max_examples=80, deadline=None)
@given(p0=targets, n=st.integers(1, 5000), method=st.sampled_from(["binomial", "beta"]))
def test_99_8_contains_95_and_both_contain_the_target(p0, n, method):
    wide = F.proportion_limits([n], p0, 0.998, method)
    narrow = F.proportion_limits([n], p0, 0.95, method)
    assert contains(wide, narrow)
    assert narrow[0][0] <= p0 <= narrow[1][0]


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(0.001, 5.0), exposure=st.floats(0.5, 1e5), method=st.sampled_from(["chisq", "poisson"]))
def test_rate_99_8_contains_95(rate, exposure, method):
    assert contains(F.rate_limits([exposure], rate, 0.998, method), F.rate_limits([exposure], rate, 0.95, method))


# --- chart -------------------------------------------------------------------------------------


def test_funnel_plot_smoke():
    import matplotlib.pyplot as plt

    from ipcreport.report.charts import funnel_plot

    result = F.funnel(units([40] * 20 + [80, 10], [200] * 20 + [150, 300]))
    fig = funnel_plot(result.units, result.grid, "Title", "People", "Share", percent=True)
    ax = fig.axes[0]
    assert len(ax.lines) == 5  # target, two 95% and two 99.8% limits
    assert {t.get_text() for t in ax.texts} == {"U20", "U21"}  # only the units outside are named
    plt.close(fig)


# --- Spiegelhalter's overdispersed limits against the published formulas ----------------------


def test_additive_proportion_limits_by_hand():
    # Spiegelhalter (2005, QSHC 14:347), arcsine scale: target asin(sqrt(0.3)) = 0.57964,
    # s^2 = 1 / (4 x 100) = 0.0025; with tau^2 = 0.002 the 95% half-width is
    # 1.95996 x sqrt(0.0045) = 0.13148; limits sin^2(0.57964 -/+ 0.13148) = 0.18776, 0.42599.
    frame = F.limits("proportion", [100], 0.3, overdispersion="additive", tau2=0.002)
    assert frame.loc[0, "lower_95"] == pytest.approx(0.18776, abs=5e-5)
    assert frame.loc[0, "upper_95"] == pytest.approx(0.42599, abs=5e-5)
    centre, spread = math.asin(math.sqrt(0.3)), 3.090232 * math.sqrt(0.0025 + 0.002)
    assert frame.loc[0, "upper_998"] == pytest.approx(math.sin(centre + spread) ** 2, rel=1e-6)


def test_additive_rate_limits_by_hand():
    # square-root scale (FunnelPlotR "CQC"): expected E = 0.5 x 40 = 20 events, s = 1 / (2 sqrt(20))
    # = 0.11180; tau^2 = 0.01: half-width 1.95996 x sqrt(0.0125 + 0.01) = 0.29399; limits
    # 0.5 x (1 -/+ 0.29399)^2 = 0.24922 and 0.83721 per unit of exposure.
    frame = F.limits("rate", [40.0], 0.5, overdispersion="additive", tau2=0.01)
    assert frame.loc[0, "lower_95"] == pytest.approx(0.24922, abs=5e-5)
    assert frame.loc[0, "upper_95"] == pytest.approx(0.83721, abs=5e-5)


def test_multiplicative_limits_by_hand():
    # phi = 2.25: the exact limits' distance from the target grows by sqrt(2.25) = 1.5
    exact = F.limits("proportion", [50], 0.2)
    wide = F.limits("proportion", [50], 0.2, overdispersion="multiplicative", phi=2.25)
    assert wide.loc[0, "upper_95"] == pytest.approx(0.2 + 1.5 * (exact.loc[0, "upper_95"] - 0.2))
    assert wide.loc[0, "lower_95"] == pytest.approx(0.2 - 1.5 * (0.2 - exact.loc[0, "lower_95"]))


def test_tau_squared_by_hand():
    # I = 3 units with s = 0.1, 0.2, 0.2: w = 100, 25, 25; sum w = 150, sum w^2 = 11250;
    # phi = 2: tau^2 = (3 x 2 - 2) / (150 - 11250 / 150) = 4 / 75
    assert F.tau_squared(2.0, [0.1, 0.2, 0.2]) == pytest.approx(4 / 75)
    assert F.tau_squared(0.5, [0.1, 0.2, 0.2]) == 0.0  # I phi = 1.5 < I - 1 = 2


def test_too_few_units_are_not_adjusted():
    data = units([10, 30, 50, 70, 90], [100] * 5)  # wildly overdispersed, but only 5 units
    result = F.funnel(data, overdispersion="additive")
    assert result.overdispersion is None and result.phi > 1
    plain = F.funnel(data)
    assert result.units["upper_95"].to_numpy() == pytest.approx(plain.units["upper_95"].to_numpy())


def test_chance_flags_by_hand():
    # 9 sites x 6 indicators = 54 verdicts at 95%: 54 x 0.05 = 2.7 expected by chance alone,
    # and at least one with probability 1 - 0.95^54 = 0.93733
    expected, any_flag = F.chance_flags(54, 0.95)
    assert expected == pytest.approx(2.7)
    assert any_flag == pytest.approx(0.93733, abs=1e-5)
    assert F.chance_flags(10, 0.998) == pytest.approx((0.02, 1 - 0.998**10))


def test_an_outside_target_does_not_count_as_spread():
    # every unit at about 30% against an England value of 50%: the spread about their own
    # pooled value is small, so the limits stay narrow and every unit is below them
    data = units([150, 148, 152, 155, 145, 150, 149, 151, 150, 150], [500] * 10)
    pooled = F.funnel(data, overdispersion="additive")
    against_england = F.funnel(data, overdispersion="additive", target=0.5)
    assert against_england.phi == pytest.approx(pooled.phi) and against_england.tau2 == pytest.approx(pooled.tau2)
    assert (against_england.units["flag"] == "below 99.8%").all()

"""Funnel plots (Spiegelhalter 2005): units of different sizes against a pooled value.

Pure functions: a table of units (numerator, denominator) in, tidy frames out. No I/O, no
plotting (the chart is ``funnel_plot``).

Limits are drawn at 95% and 99.8% (two-sided: 2.5%/97.5% and 0.1%/99.9%) around the target,
by default the pooled value (sum of numerators over sum of denominators).

* **Proportions**, ``method="binomial"`` (default): exact binomial limits with Spiegelhalter's
  interpolation (Spiegelhalter 2005, Statistics in Medicine 24:1185, appendix A.1.1). For a
  denominator n and target p0, r_p is the p-quantile of Binomial(n, p0) (the smallest r with
  P(R <= r) >= p) and the limit is (r_p - a) / n with a = (P(R <= r_p) - p) /
  (P(R <= r_p) - P(R <= r_p - 1)): the step function of the quantile smoothed so the funnel
  is a curve. It keeps a small sawtooth from the binomial's discreteness (a limit can move
  slightly outwards from one denominator to the next) and, with under about one event
  expected, a limit the interpolation puts on the wrong side of the target is held at the
  target. ``method="beta"``: the continuous form, Clopper-Pearson's beta quantiles taken at
  the expected count n p0 (lower Beta(n p0, n(1-p0) + 1), upper Beta(n p0 + 1, n(1-p0))):
  smooth and monotone, a little wider for small denominators. Limits stay within [0, 1].
* **Rates** (events per unit of exposure, e.g. person-years), ``method="chisq"`` (default): the
  exact Poisson limits FunnelPlotR draws, chi-square (gamma) quantiles taken at the expected
  count mu = rate0 x exposure: lower chi2(p, 2 mu) / 2, upper chi2(1 - p, 2 (mu + 1)) / 2,
  divided by the exposure. ``method="poisson"``: Spiegelhalter's interpolated Poisson quantile.
* **Classification** compares each unit's value with the limits at its own denominator:
  strictly beyond a limit is outside it, on a limit is inside. Flags: "above 99.8%",
  "above 95%" (beyond 95% only), "within", "below 95%", "below 99.8%".
* **Overdispersion** (optional), after Spiegelhalter (2005, Quality and Safety in Health Care
  14:347) and as FunnelPlotR does it: z-scores on a variance-stabilising scale (proportions:
  arcsine square root, z = (asin(sqrt(y)) - asin(sqrt(p0))) 2 sqrt(n); rates: square root of
  the ratio observed / expected, z = (sqrt(O / mu) - 1) 2 sqrt(mu), FunnelPlotR's "CQC" form,
  which copes with units with no events), winsorised at 10% and 90% (``trim``), phi = mean of
  the squared winsorised z-scores. The z-scores for phi and tau^2 are taken about the units'
  pooled value even when another target is given (e.g. an England value), so units that all
  differ from that target in the same direction are flagged, not absorbed as spread.
  ``"multiplicative"`` widens the exact limits about the target by sqrt(phi) when phi > 1.
  ``"additive"`` (random effects, FunnelPlotR's default) estimates the between-unit variance
  tau^2 = (I phi - (I - 1)) / (sum w - sum w^2 / sum w), w = 1 / s^2 (0 when I phi < I - 1),
  and draws the limits on the transformed scale as target ± z sqrt(s^2 + tau^2), back-
  transformed; with tau^2 = 0 the exact limits stay.
  Either adjustment needs enough units to estimate the spread: with fewer than
  ``MIN_UNITS_FOR_OVERDISPERSION`` (8) the exact limits are drawn and ``Funnel.overdispersion``
  is None (phi and tau^2 are still reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

LEVELS = (0.95, 0.998)
KINDS = ("proportion", "rate")
METHODS = {"proportion": ("binomial", "beta"), "rate": ("chisq", "poisson")}
OVERDISPERSION = (None, "multiplicative", "additive")
FLAGS = ("above 99.8%", "above 95%", "within", "below 95%", "below 99.8%")
LIMIT_COLUMNS = ("lower_998", "lower_95", "upper_95", "upper_998")
MIN_UNITS_FOR_OVERDISPERSION = 8  # winsorising 10% of fewer units leaves too little to estimate from


def _suffix(level: float) -> str:
    return {0.95: "95", 0.998: "998"}[level]


def _tails(level: float) -> tuple[float, float]:
    return (1 - level) / 2, 1 - (1 - level) / 2


def _interpolated_quantile(dist, p: float, size: np.ndarray) -> np.ndarray:
    """Spiegelhalter's (r_p - a) / size, a = (F(r_p) - p) / (F(r_p) - F(r_p - 1))."""
    r = dist.ppf(p)
    f_r, f_below = dist.cdf(r), dist.cdf(r - 1)
    a = (f_r - p) / (f_r - f_below)
    return (r - a) / size


def _around(target: float, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """With under about one event expected the interpolation can put a limit on the wrong side
    of the target (e.g. n = 1, p0 = 0.02 gives an upper limit of 0); keep it at the target."""
    return np.minimum(lower, target), np.maximum(upper, target)


# --- limits for given denominators -----------------------------------------------------------


def proportion_limits(denominator, target: float, level: float,
                      method: str = "binomial") -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial (lower, upper) limits for proportions at each denominator (see module)."""
    n = np.asarray(denominator, dtype=float)
    low_p, high_p = _tails(level)
    if method == "binomial":
        if not np.all(n == np.round(n)):
            raise ValueError("binomial limits need whole-number denominators")
        dist = stats.binom(n, target)
        lower, upper = _around(target, _interpolated_quantile(dist, low_p, n), _interpolated_quantile(dist, high_p, n))
    elif method == "beta":
        expected = n * target
        with np.errstate(invalid="ignore", divide="ignore"):
            lower = np.where(expected > 0, stats.beta.ppf(low_p, expected, n - expected + 1), 0.0)
            upper = np.where(n - expected > 0, stats.beta.ppf(high_p, expected + 1, n - expected), 1.0)
    else:
        raise ValueError(f"proportion method must be one of {METHODS['proportion']}")
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


def rate_limits(exposure, target: float, level: float, method: str = "chisq") -> tuple[np.ndarray, np.ndarray]:
    """Exact Poisson (lower, upper) limits for rates at each exposure (see module)."""
    e = np.asarray(exposure, dtype=float)
    expected = target * e
    low_p, high_p = _tails(level)
    if method == "chisq":
        with np.errstate(invalid="ignore"):
            lower = np.where(expected > 0, stats.chi2.ppf(low_p, 2 * expected) / 2, 0.0)
        upper = stats.chi2.ppf(high_p, 2 * (expected + 1)) / 2
        lower, upper = lower / e, upper / e
    elif method == "poisson":
        dist = stats.poisson(expected)
        lower, upper = _around(target, _interpolated_quantile(dist, low_p, e), _interpolated_quantile(dist, high_p, e))
    else:
        raise ValueError(f"rate method must be one of {METHODS['rate']}")
    return np.clip(lower, 0.0, None), upper


# --- overdispersion ----------------------------------------------------------------------------


def transformed_z(kind: str, numerator, denominator, target: float) -> tuple[np.ndarray, np.ndarray]:
    """z-scores and their standard errors on the variance-stabilising scale (see module)."""
    o = np.asarray(numerator, dtype=float)
    d = np.asarray(denominator, dtype=float)
    if kind == "proportion":
        s = 1 / (2 * np.sqrt(d))
        z = (np.arcsin(np.sqrt(o / d)) - np.arcsin(np.sqrt(target))) / s
    else:
        expected = target * d
        s = 1 / (2 * np.sqrt(expected))
        z = (np.sqrt(o / expected) - 1) / s
    return z, s


def winsorise(z, trim: float = 0.1) -> np.ndarray:
    """Values below the ``trim`` quantile raised to it, above ``1 - trim`` lowered to it."""
    z = np.asarray(z, dtype=float)
    low, high = np.quantile(z, [trim, 1 - trim])
    return np.clip(z, low, high)


def dispersion_phi(z, trim: float = 0.1) -> float:
    """Overdispersion factor: the mean of the squared winsorised z-scores."""
    return float(np.mean(winsorise(z, trim) ** 2))


def tau_squared(phi: float, s) -> float:
    """Between-unit variance for additive random effects (0 when I phi < I - 1)."""
    s = np.asarray(s, dtype=float)
    units = s.size
    if units * phi < units - 1:
        return 0.0
    w = 1 / s**2
    return max(0.0, float((units * phi - (units - 1)) / (w.sum() - (w**2).sum() / w.sum())))


def _additive_limits(kind: str, denominator: np.ndarray, target: float, level: float,
                     tau2: float) -> tuple[np.ndarray, np.ndarray]:
    z = stats.norm.ppf(_tails(level)[1])
    d = np.asarray(denominator, dtype=float)
    if kind == "proportion":
        centre, s = np.arcsin(np.sqrt(target)), 1 / (2 * np.sqrt(d))
        spread = z * np.sqrt(s**2 + tau2)
        lower = np.sin(np.clip(centre - spread, 0, np.pi / 2)) ** 2
        upper = np.sin(np.clip(centre + spread, 0, np.pi / 2)) ** 2
        return lower, upper
    s = 1 / (2 * np.sqrt(target * d))
    spread = z * np.sqrt(s**2 + tau2)
    return target * np.clip(1 - spread, 0, None) ** 2, target * (1 + spread) ** 2


def limits(kind: str, denominator, target, *, method: str | None = None,
           overdispersion: str | None = None, phi: float = 1.0, tau2: float = 0.0) -> pd.DataFrame:
    """The 95% and 99.8% limits at each denominator, with any overdispersion adjustment;
    ``target`` is one value for all, or one per denominator."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if overdispersion not in OVERDISPERSION:
        raise ValueError(f"overdispersion must be one of {OVERDISPERSION}")
    method = method or METHODS[kind][0]
    d = np.asarray(denominator, dtype=float)
    exact = proportion_limits if kind == "proportion" else rate_limits
    out = pd.DataFrame({"denominator": d, "target": target})
    for level in LEVELS:
        if overdispersion == "additive" and tau2 > 0:
            lower, upper = _additive_limits(kind, d, target, level, tau2)
        else:
            lower, upper = exact(d, target, level, method)
            if overdispersion == "multiplicative" and phi > 1:
                lower = target - np.sqrt(phi) * (target - lower)
                upper = target + np.sqrt(phi) * (upper - target)
                lower = np.clip(lower, 0, None)
                upper = np.clip(upper, None, 1) if kind == "proportion" else upper
        out[f"lower_{_suffix(level)}"] = lower
        out[f"upper_{_suffix(level)}"] = upper
    return out[["denominator", "target", *LIMIT_COLUMNS]]


def classify(value, limits_frame: pd.DataFrame) -> np.ndarray:
    """Each value against the limits in the same row: within, or above/below 95% or 99.8%."""
    v = np.asarray(value, dtype=float)
    return np.select(
        [v > limits_frame["upper_998"].to_numpy(), v > limits_frame["upper_95"].to_numpy(),
         v < limits_frame["lower_998"].to_numpy(), v < limits_frame["lower_95"].to_numpy()],
        ["above 99.8%", "above 95%", "below 99.8%", "below 95%"],
        default="within",
    )


def chance_flags(comparisons: int, level: float = 0.95) -> tuple[float, float]:
    """How many of ``comparisons`` independent comparisons chance alone puts outside two-sided
    ``level`` limits on average, and the chance that at least one is: n (1 - level) and
    1 - level^n."""
    return comparisons * (1 - level), 1 - level**comparisons


# --- the whole funnel --------------------------------------------------------------------------


@dataclass(frozen=True)
class Funnel:
    """Units with their limits and flags, the limits over a grid for drawing, and the method."""

    units: pd.DataFrame
    grid: pd.DataFrame
    kind: str
    target: float
    method: str
    overdispersion: str | None
    phi: float
    tau2: float
    multiplier: float = 1.0


def limits_grid(kind: str, target: float, low: float, high: float, *, points: int = 200,
                multiplier: float = 1.0, **options) -> pd.DataFrame:
    """Limits over denominators from ``low`` to ``high`` (geometric steps) for drawing.

    Proportions use whole-number denominators (at least 1).
    """
    grid = np.geomspace(max(low, 1e-9), high, points)
    if kind == "proportion":
        grid = np.unique(np.maximum(1, np.round(grid)))
    frame = limits(kind, grid, target, **options)
    cols = ["target", *LIMIT_COLUMNS]
    frame[cols] = frame[cols] * multiplier
    return frame


def funnel(data: pd.DataFrame, kind: str = "proportion", *, unit: str = "unit",
           numerator: str = "numerator", denominator: str = "denominator", target: float | None = None,
           method: str | None = None, overdispersion: str | None = None, trim: float = 0.1,
           multiplier: float = 1.0, grid_points: int = 200) -> Funnel:
    """Limits and flags for every unit, and a grid of limits spanning their denominators.

    ``target`` defaults to the pooled value. ``multiplier`` scales values, target and limits
    (e.g. 100 for percentages, 1000 for a rate per 1,000 person-years).

    ``units`` columns: unit, numerator, denominator, value, target, lower_998, lower_95,
    upper_95, upper_998, z (unadjusted, transformed scale), flag.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    method = method or METHODS[kind][0]
    if method not in METHODS[kind]:
        raise ValueError(f"{kind} method must be one of {METHODS[kind]}")
    o = data[numerator].to_numpy(dtype=float)
    d = data[denominator].to_numpy(dtype=float)
    if (d <= 0).any() or (o < 0).any():
        raise ValueError("denominators must be above zero and numerators not below zero")
    if kind == "proportion" and (o > d).any():
        raise ValueError("a proportion's numerator cannot exceed its denominator")
    pooled = float(o.sum() / d.sum())
    target = pooled if target is None else target
    z, s = transformed_z(kind, o, d, target)
    # the spread is the units' spread about their own pooled value: units all lying on one
    # side of an outside target (England) are a difference to flag, not overdispersion
    spread_z, spread_s = transformed_z(kind, o, d, pooled) if target != pooled else (z, s)
    phi = dispersion_phi(spread_z, trim) if len(z) else 1.0
    tau2 = tau_squared(phi, spread_s) if len(z) else 0.0
    if len(z) < MIN_UNITS_FOR_OVERDISPERSION:
        overdispersion = None
    options = {"method": method, "overdispersion": overdispersion, "phi": phi, "tau2": tau2}

    at_units = limits(kind, d, target, **options)
    value = o / d
    units = pd.DataFrame({
        "unit": data[unit].to_numpy(),
        "numerator": data[numerator].to_numpy(),
        "denominator": data[denominator].to_numpy(),
        "value": value * multiplier,
        "target": target * multiplier,
    })
    for column in LIMIT_COLUMNS:
        units[column] = at_units[column].to_numpy() * multiplier
    units["z"] = z
    units["flag"] = classify(value, at_units)
    low, high = (d.min() / 2, d.max() * 1.1) if len(d) else (1.0, 10.0)
    grid = limits_grid(kind, target, low, high, points=grid_points, multiplier=multiplier, **options)
    return Funnel(units, grid, kind, float(target), method, overdispersion, phi, tau2, multiplier)

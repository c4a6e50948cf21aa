"""Peer groups and comparisons with England and with peers, in the manner of PHE Fingertips.

Pure functions apart from :func:`read_areas`, which reads the reference table.

**Peer groups (nearest neighbours).** Each site is described by three variables: its
deprivation (``sites.imd_score``, IMD 2019 average score), its age structure
(``share_age_66_plus`` from data/reference/areas.csv, joined on site_code = area_code) and its
size (the natural log of ``sites.population``). Each variable is standardised to z-scores over
the sites given (mean 0, sample standard deviation 1; a variable that does not vary is set to
0); the distance between two sites is the weighted Euclidean distance between their z-scores,
sqrt(sum of weight x difference squared), with weights deprivation 2, age structure 1 and size
0.5 (:data:`FEATURE_WEIGHTS`): deprivation is the strongest area-level driver of need for health
and social care, and indicators here are rates and shares, which do not scale with size, so a
large affluent county is not a large deprived city's peer. A site's peers are the ``k`` sites
nearest to it, ties broken by site code; :func:`peer_count` gives k = 5, or the nearer half of
the other sites when there are fewer than 11 (so peers stay a selection, not everyone).
Sites missing any of the three variables are neither given peers nor used as peers. This
follows the idea of the CIPFA and ONS nearest-neighbour models (similar areas found by
distance over standardised characteristics) but is not either of them: the variables, their
weights and the pool of areas (the sites in the dataset) are our own. :func:`peer_reasons`
says, for each peer, on which variables it is close and where it differs.

**Comparisons.** A site's value is compared with a comparator: England when national values
are given (``england=``), otherwise all sites in the dataset pooled (total numerator over total
denominator); and with its peers (the peers pooled the same way; the mean of their values when
only values are given).

* With counts (the default, ``overdispersion="additive"``): the site is "Higher" or "Lower"
  when it lies outside the funnel-plot limits around the comparator at its own denominator,
  with the limits widened for the variation between sites that chance alone does not explain
  (Spiegelhalter 2005, additive random effects; :mod:`ipcreport.analysis.funnel`). The
  between-site variance is estimated from all sites against the comparator and also widens the
  limits around the peers' value. Without that allowance, in data where sites differ only by
  chance and by ordinary between-site variation, far more than 5% of 95% verdicts would be
  false alarms.
* ``overdispersion=None`` or values and intervals given: the site's confidence interval
  decides, as PHE Fingertips does: wholly above the comparator "Higher", wholly below "Lower",
  otherwise "Similar". Intervals are computed at the stated level (95% by default, 99.8%
  optional): Wilson score for proportions (Clopper-Pearson with ``method="beta"``), exact
  Poisson (chi-square, statsmodels' "exact-c") for rates.

Where the indicator has a polarity, Higher/Lower become Better/Worse ("higher_is_better":
higher is Better; "lower_is_better": lower is Better); an indicator without one ("neutral")
only ever says Higher, Similar or Lower.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.rates import confint_poisson

from ..resources import AREAS_CSV
from . import funnel as F

FEATURES = ("log_population", "imd_score", "share_age_66_plus")
POLARITIES = ("higher_is_better", "lower_is_better", "neutral")
LEVELS = (0.95, 0.998)
COMPARISONS = ("Better", "Similar", "Worse", "Higher", "Lower", "Not compared")
# Squared z-score differences are weighted: deprivation counts most (see module docstring).
FEATURE_WEIGHTS = {"log_population": 0.5, "imd_score": 2.0, "share_age_66_plus": 1.0}
FEATURE_WORDS = {"log_population": ("size", "larger", "smaller"),
                 "imd_score": ("deprivation", "more deprived", "less deprived"),
                 "share_age_66_plus": ("age structure", "older", "younger")}
CLOSE = 0.5  # within half a standard deviation of the sites' spread counts as similar


def read_areas(path: Path | str | None = None) -> pd.DataFrame:
    """England's upper-tier local authorities (data/reference/areas.csv), one row each."""
    return pd.read_csv(path or AREAS_CSV, dtype={"area_code": str})


# --- peer groups ---------------------------------------------------------------------------


def peer_features(sites: pd.DataFrame, areas: pd.DataFrame) -> pd.DataFrame:
    """log population, IMD score and share aged 66+ of each site, indexed by site_code."""
    ages = areas.set_index("area_code")["share_age_66_plus"]
    imd = sites["imd_score"] if "imd_score" in sites.columns else pd.Series(np.nan, index=sites.index)
    return pd.DataFrame({
        "log_population": np.log(sites["population"].to_numpy(dtype=float)),
        "imd_score": pd.to_numeric(imd, errors="coerce").to_numpy(dtype=float),
        "share_age_66_plus": sites["site_code"].map(ages).to_numpy(dtype=float),
    }, index=pd.Index(sites["site_code"], name="site_code"))


def standardise(features: pd.DataFrame) -> pd.DataFrame:
    """z-scores of each column (sample standard deviation); a constant column becomes 0."""
    sd = features.std(ddof=1).replace(0, np.nan)
    return ((features - features.mean()) / sd).fillna(0.0)


def peer_count(sites: int) -> int:
    """How many peers each of ``sites`` sites gets: 5, or the nearer half of the others."""
    return max(0, min(5, math.ceil((sites - 1) / 2)))


def nearest_neighbours(sites: pd.DataFrame, areas: pd.DataFrame, k: int = 5,
                       weights: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Each site's k nearest sites: site_code, rank (1 = nearest), peer_code, distance."""
    features = peer_features(sites, areas).dropna()
    z = standardise(features)
    w = weights or FEATURE_WEIGHTS
    scale = np.sqrt(np.array([w[c] for c in z.columns], dtype=float))
    codes = z.index.to_numpy()
    points = z.to_numpy() * scale
    rows = []
    for i, code in enumerate(codes):
        distance = np.sqrt(((points - points[i]) ** 2).sum(axis=1))
        others = pd.DataFrame({"peer_code": codes, "distance": distance})
        others = others[others["peer_code"] != code].sort_values(["distance", "peer_code"], kind="stable")
        for rank, row in enumerate(others.head(k).itertuples(index=False), start=1):
            rows.append({"site_code": code, "rank": rank, "peer_code": row.peer_code, "distance": row.distance})
    return pd.DataFrame(rows, columns=["site_code", "rank", "peer_code", "distance"])


def _why(site_z: pd.Series, peer_z: pd.Series) -> str:
    """'Similar deprivation and age structure; smaller' from two rows of z-scores."""
    similar, different = [], []
    for column in sorted(FEATURE_WEIGHTS, key=FEATURE_WEIGHTS.get, reverse=True):  # heaviest first
        name, more, less = FEATURE_WORDS[column]
        gap = peer_z[column] - site_z[column]
        if abs(gap) <= CLOSE:
            similar.append(name)
        else:
            different.append(more if gap > 0 else less)
    text = "Similar " + " and ".join(similar) if similar else "Nearest overall"
    return text + ("; " + ", ".join(different) if different else "")


def peer_reasons(sites: pd.DataFrame, areas: pd.DataFrame, site_code: str, peers: list[str]) -> pd.DataFrame:
    """Why each peer was chosen: the site and its peers with the three variables and, for
    each peer, the variables it is similar on (within half a standard deviation of the
    sites' spread) and how it differs on the others.

    Columns: site_code, imd_score, share_age_66_plus, population, why ("This site" first).
    """
    features = peer_features(sites, areas).dropna()
    if site_code not in features.index:
        return pd.DataFrame(columns=["site_code", "imd_score", "share_age_66_plus", "population", "why"])
    z = standardise(features)
    codes = [site_code, *[p for p in peers if p in features.index]]
    out = features.loc[codes, ["imd_score", "share_age_66_plus"]].copy()
    out["population"] = np.exp(features.loc[codes, "log_population"]).round().astype(int)
    out["why"] = ["This site"] + [_why(z.loc[site_code], z.loc[p]) for p in codes[1:]]
    return out.reset_index()


def peer_groups(neighbours: pd.DataFrame) -> dict[str, list[str]]:
    """site_code -> its peers, nearest first."""
    ordered = neighbours.sort_values(["site_code", "rank"])
    return {code: list(group["peer_code"]) for code, group in ordered.groupby("site_code", sort=True)}


# --- intervals -----------------------------------------------------------------------------


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError("level is a confidence level between 0 and 1, e.g. 0.95 or 0.998")


def proportion_interval(numerator, denominator, level: float = 0.95,
                        method: str = "wilson") -> tuple[np.ndarray, np.ndarray]:
    """Confidence interval of a proportion: Wilson score (default) or Clopper-Pearson ("beta")."""
    _check_level(level)
    low, high = proportion_confint(np.asarray(numerator), np.asarray(denominator), alpha=1 - level, method=method)
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def rate_interval(events, exposure, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact Poisson confidence interval of a rate (events per unit of exposure)."""
    _check_level(level)
    low, high = confint_poisson(np.asarray(events, dtype=float), np.asarray(exposure, dtype=float),
                                method="exact-c", alpha=1 - level)
    return np.nan_to_num(np.asarray(low, dtype=float), nan=0.0), np.asarray(high, dtype=float)


# --- comparisons ---------------------------------------------------------------------------


def compare(low: float, high: float, comparator: float, polarity: str = "neutral") -> str:
    """Better / Similar / Worse (with a polarity) or Higher / Similar / Lower (without).

    "Higher" when the interval lies wholly above the comparator (low > comparator), "Lower"
    when wholly below (high < comparator); "Not compared" when anything is missing.
    """
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}")
    if any(pd.isna(x) for x in (low, high, comparator)):
        return "Not compared"
    direction = "Higher" if low > comparator else "Lower" if high < comparator else None
    return polarised(direction, polarity)


def _direction(flag: str, level: float) -> str | None:
    """'Higher' / 'Lower' / None from a funnel flag, at the 95% or 99.8% limits."""
    beyond = flag != "within" if level == 0.95 else "99.8" in flag
    return None if not beyond else "Higher" if flag.startswith("above") else "Lower"


def polarised(direction: str | None, polarity: str) -> str:
    """Higher/Lower as Better/Worse where the indicator has a polarity; None is Similar."""
    if direction is None:
        return "Similar"
    if polarity == "neutral":
        return direction
    good = "Higher" if polarity == "higher_is_better" else "Lower"
    return "Better" if direction == good else "Worse"


def funnel_verdicts(num: np.ndarray, den: np.ndarray, kind: str, polarity: str, level: float,
                    comparator: float, overdispersion: str,
                    peer_targets: np.ndarray | None = None) -> tuple[list[str], list[str], F.Funnel]:
    """Each site against the comparator, and against its peers' value, by the overdispersed
    funnel limits at its own denominator (see module). Targets are on the unit scale."""
    if level not in LEVELS:
        raise ValueError(f"funnel verdicts are made at {LEVELS} only")
    units = pd.DataFrame({"unit": np.arange(len(num)), "numerator": num, "denominator": den})
    fun = F.funnel(units, kind, target=comparator, overdispersion=overdispersion, grid_points=2)
    vs_comparator = [polarised(_direction(flag, level), polarity) for flag in fun.units["flag"]]
    targets = np.full(len(num), np.nan) if peer_targets is None else np.asarray(peer_targets, dtype=float)
    vs_peers = np.full(len(num), "Not compared", dtype=object)
    has = ~np.isnan(targets)
    if has.any():  # every site's limits around its own peers' value, in one vectorised call
        at_sites = F.limits(kind, den[has], targets[has], method=fun.method, overdispersion=overdispersion,
                            phi=fun.phi, tau2=fun.tau2)
        flags = F.classify(num[has] / den[has], at_sites)
        vs_peers[has] = [polarised(_direction(str(flag), level), polarity) for flag in flags]
    return vs_comparator, list(vs_peers), fun


def compare_sites(data: pd.DataFrame, kind: str = "proportion", polarity: str = "neutral", *,
                  level: float = 0.95, neighbours: pd.DataFrame | None = None, multiplier: float = 1.0,
                  method: str = "wilson", england: float | None = None,
                  overdispersion: str | None = "additive") -> pd.DataFrame:
    """Every site against the comparator (England, or all sites pooled) and against its peers.

    ``data``: one row per site with site_code and either numerator and denominator (the
    interval is computed: ``kind`` "proportion" or "rate") or value, low and high (given,
    already on the scale reported; then ``england`` must be given). ``multiplier`` scales
    computed values (100 for a percentage, 1000 for a rate per 1,000); ``england`` is on the
    reported scale. With counts, verdicts come from the overdispersed funnel limits
    (``overdispersion`` "additive" or "multiplicative"), or from the interval with None.

    Columns: site_code, value, low, high, level, england (the comparator's value), vs_england,
    peers (codes joined by ", "), peer_value, vs_peers, polarity, phi, tau2 (the funnel's
    dispersion, NaN for interval verdicts).
    """
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}")
    _check_level(level)
    has_counts = {"numerator", "denominator"} <= set(data.columns)
    out = pd.DataFrame({"site_code": data["site_code"].to_numpy()})
    if has_counts:
        num = data["numerator"].to_numpy(dtype=float)
        den = data["denominator"].to_numpy(dtype=float)
        if kind == "proportion":
            low, high = proportion_interval(num, den, level, method)
        elif kind == "rate":
            low, high = rate_interval(num, den, level)
        else:
            raise ValueError("kind must be 'proportion' or 'rate'")
        out["value"] = num / den * multiplier
        out["low"], out["high"] = low * multiplier, high * multiplier
        england_value = num.sum() / den.sum() * multiplier if england is None else england
    else:
        if england is None:
            raise ValueError("with given values and intervals, say the England value (england=...)")
        out["value"] = data["value"].to_numpy(dtype=float)
        out["low"] = data["low"].to_numpy(dtype=float)
        out["high"] = data["high"].to_numpy(dtype=float)
        england_value = england
    out["level"] = level
    out["england"] = england_value

    groups = peer_groups(neighbours) if neighbours is not None else {}
    row_of = {code: i for i, code in enumerate(out["site_code"])}
    peer_values, peer_lists = [], []
    for code in out["site_code"]:
        peers = [p for p in groups.get(code, []) if p in row_of and p != code]
        peer_lists.append(", ".join(peers))
        if not peers:
            peer_values.append(np.nan)
        elif has_counts:
            rows = [row_of[p] for p in peers]
            peer_values.append(num[rows].sum() / den[rows].sum() * multiplier)
        else:
            peer_values.append(float(out.loc[[row_of[p] for p in peers], "value"].mean()))
    out["peers"] = peer_lists
    out["peer_value"] = peer_values
    if has_counts and overdispersion is not None:
        vs_england, vs_peers, fun = funnel_verdicts(num, den, kind, polarity, level, england_value / multiplier,
                                                    overdispersion, np.asarray(peer_values) / multiplier)
        out["vs_england"], out["vs_peers"], out["phi"], out["tau2"] = vs_england, vs_peers, fun.phi, fun.tau2
    else:
        out["vs_england"] = [compare(lo, hi, england_value, polarity) for lo, hi in zip(out["low"], out["high"])]
        out["vs_peers"] = [compare(lo, hi, pv, polarity) for lo, hi, pv in zip(out["low"], out["high"], out["peer_value"])]
        out["phi"], out["tau2"] = np.nan, np.nan
    out["polarity"] = polarity
    return out


# --- spine chart rows ------------------------------------------------------------------------


def spine_rows(compared: Mapping[str, pd.DataFrame], site_code: str) -> pd.DataFrame:
    """One row per indicator for one site's spine chart, from :func:`compare_sites` frames.

    Columns: indicator, value, england, min, q1, median, q3, max (over all sites), comparison
    (the site against England), polarity, level.
    """
    rows = []
    for indicator, frame in compared.items():
        site = frame[frame["site_code"] == site_code]
        values = frame["value"].dropna()
        if site.empty or values.empty:
            continue
        first = site.iloc[0]
        rows.append({
            "indicator": indicator,
            "value": float(first["value"]),
            "england": float(first["england"]),
            "min": float(values.min()),
            "q1": float(values.quantile(0.25)),
            "median": float(values.median()),
            "q3": float(values.quantile(0.75)),
            "max": float(values.max()),
            "comparison": first["vs_england"],
            "polarity": first["polarity"],
            "level": float(first["level"]),
        })
    return pd.DataFrame(rows, columns=["indicator", "value", "england", "min", "q1", "median", "q3", "max",
                                       "comparison", "polarity", "level"])


def spine_positions(rows: pd.DataFrame) -> pd.DataFrame:
    """Where to draw each part of a spine chart row, from 0 (left) to 1 (right), England at 0.5.

    Each row is scaled so the site furthest from England touches an end. As in Fingertips,
    the left end is the worst (with a polarity) or the lowest (without): an indicator where
    lower is better is flipped, its highest value on the left.

    Columns: left, iqr_left, median, iqr_right, right (the range of all sites, its
    inter-quartile range and median) and value (the site).
    """
    out = pd.DataFrame(index=rows.index, columns=["left", "iqr_left", "median", "iqr_right", "right", "value"],
                       dtype=float)
    for i, row in rows.iterrows():
        half = max(abs(row["max"] - row["england"]), abs(row["min"] - row["england"]))
        sign = -1.0 if row["polarity"] == "lower_is_better" else 1.0

        def at(x: float) -> float:
            return 0.5 + sign * ((x - row["england"]) / half if half > 0 else 0.0) / 2

        ends = sorted([at(row["min"]), at(row["max"])])
        quartiles = sorted([at(row["q1"]), at(row["q3"])])
        out.loc[i] = [ends[0], quartiles[0], at(row["median"]), quartiles[1], ends[1], at(row["value"])]
    return out

"""Peer groups and comparisons with England and with peers, in the manner of PHE Fingertips.

Pure functions apart from :func:`read_areas`, which reads the reference table.

**Peer groups (nearest neighbours).** Each site is described by three variables: the natural
log of its population (``sites.population``), its deprivation (``sites.imd_score``, IMD 2019
average score) and its age structure (``share_age_66_plus`` from data/reference/areas.csv,
joined on site_code = area_code). Each variable is standardised to z-scores over the sites
given (mean 0, sample standard deviation 1; a variable that does not vary is set to 0), so the
three weigh equally; the distance between two sites is the Euclidean distance between their
z-scores; a site's peers are the ``k`` sites nearest to it (default 5, fewer if there are
fewer other sites), ties broken by site code. Sites missing any of the three variables are
neither given peers nor used as peers. This follows the idea of the CIPFA and ONS
nearest-neighbour models (similar areas found by distance over standardised characteristics)
but is not either of them: the variables, their weights and the pool of areas are our own.

**Comparisons.** A site's value is compared with England (all sites pooled: total numerator
over total denominator) and with its peers (the peers pooled the same way; the mean of their
values when only values are given). The site's confidence interval decides: if it lies wholly
above the comparator the site is "Higher", wholly below "Lower", otherwise "Similar". Where
the indicator has a polarity, Higher/Lower become Better/Worse ("higher_is_better": higher is
Better; "lower_is_better": lower is Better); an indicator without one ("neutral") only ever
says Higher, Similar or Lower. Intervals are given, or computed at the stated level (95% by
default, 99.8% optional): Wilson score for proportions (as Fingertips does; Clopper-Pearson
with ``method="beta"``), exact Poisson (chi-square, statsmodels' "exact-c") for rates.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.rates import confint_poisson

from ..resources import AREAS_CSV
FEATURES = ("log_population", "imd_score", "share_age_66_plus")
POLARITIES = ("higher_is_better", "lower_is_better", "neutral")
LEVELS = (0.95, 0.998)
COMPARISONS = ("Better", "Similar", "Worse", "Higher", "Lower", "Not compared")


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


def nearest_neighbours(sites: pd.DataFrame, areas: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """Each site's k nearest sites: site_code, rank (1 = nearest), peer_code, distance."""
    features = peer_features(sites, areas).dropna()
    z = standardise(features)
    codes = z.index.to_numpy()
    points = z.to_numpy()
    rows = []
    for i, code in enumerate(codes):
        distance = np.sqrt(((points - points[i]) ** 2).sum(axis=1))
        others = pd.DataFrame({"peer_code": codes, "distance": distance})
        others = others[others["peer_code"] != code].sort_values(["distance", "peer_code"], kind="stable")
        for rank, row in enumerate(others.head(k).itertuples(index=False), start=1):
            rows.append({"site_code": code, "rank": rank, "peer_code": row.peer_code, "distance": row.distance})
    return pd.DataFrame(rows, columns=["site_code", "rank", "peer_code", "distance"])


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
    if low > comparator:
        direction = "Higher"
    elif high < comparator:
        direction = "Lower"
    else:
        return "Similar"
    if polarity == "neutral":
        return direction
    good = "Higher" if polarity == "higher_is_better" else "Lower"
    return "Better" if direction == good else "Worse"


def compare_sites(data: pd.DataFrame, kind: str = "proportion", polarity: str = "neutral", *,
                  level: float = 0.95, neighbours: pd.DataFrame | None = None, multiplier: float = 1.0,
                  method: str = "wilson", england: float | None = None) -> pd.DataFrame:
    """Every site against England and against its peers.

    ``data``: one row per site with site_code and either numerator and denominator (the
    interval is computed: ``kind`` "proportion" or "rate") or value, low and high (given,
    already on the scale reported; then ``england`` must be given). ``multiplier`` scales
    computed values (100 for a percentage, 1000 for a rate per 1,000).

    Columns: site_code, value, low, high, level, england, vs_england, peers (codes joined by
    ", "), peer_value, vs_peers, polarity.
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
    out["vs_england"] = [compare(lo, hi, england_value, polarity) for lo, hi in zip(out["low"], out["high"])]

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
    out["vs_peers"] = [compare(lo, hi, pv, polarity) for lo, hi, pv in zip(out["low"], out["high"], out["peer_value"])]
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

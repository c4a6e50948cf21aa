"""The national answer to "do budgets work?": every site's own estimate, pooled.

Pure functions: frames in, dataclasses out; no I/O and no plotting.

Each site's emergency-admissions rate ratio (the conditional difference in differences of
:mod:`ipcreport.analysis.outcomes`) is pooled on the log scale by a random-effects
meta-analysis (DerSimonian and Laird, through statsmodels' ``combine_effects``): sites are
allowed to differ in their true effect, and the pooled ratio is the average of those effects.
Beside it: I² (the share of the spread between sites' estimates beyond chance), tau² (the
between-site variance of true log effects) and the 95% prediction interval for a new site's true
effect, mu +/- t(k - 2) x sqrt(tau² + se(mu)²) (Higgins, Thompson and Spiegelhalter 2009),
given for 3 or more sites.

A site too small for its own estimate (no standard error) is left out of the pool and listed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from . import outcomes as O

Z95 = float(stats.norm.ppf(0.975))
SITE_COLUMNS = ("admissions_log_irr", "admissions_log_irr_se", "admissions_people")


@dataclass(frozen=True)
class Pooled:
    """A random-effects pooled rate ratio with its heterogeneity and prediction interval."""

    value: float
    low: float
    high: float
    fixed: float  # the fixed-effect (inverse-variance) pooled ratio, for comparison
    tau2: float
    i2: float
    q: float
    p_heterogeneity: float
    prediction_low: float | None
    prediction_high: float | None
    sites: pd.DataFrame  # site, irr, low, high, weight (random-effects, shares), in the pool
    left_out: list[str]

    @property
    def k(self) -> int:
        return len(self.sites)


def site_estimate(tables: dict[str, pd.DataFrame], extract_date: pd.Timestamp) -> dict[str, float | None]:
    """One site's headline admissions estimate as pooling needs it: log rate ratio, its
    standard error, and the people in the model (None where the site has no estimate)."""
    panel = O.before_after_panel(tables["people"], tables["events"], "emergency_admission", pd.Timestamp(extract_date))
    est = O.conditional_rate_ratio(panel)
    return {"admissions_log_irr": float(np.log(est.value)) if est.available else None,
            "admissions_log_irr_se": est.se if est.available else None, "admissions_people": est.n}


def pool(frame: pd.DataFrame, site: str = "site", log_irr: str = "log_irr", se: str = "se") -> Pooled | None:
    """Random-effects pool of the sites' log rate ratios; None with fewer than 2 sites."""
    ok = frame[log_irr].notna() & frame[se].notna() & (frame[se] > 0)
    used, left_out = frame[ok], frame.loc[~ok, site].astype(str).tolist()
    if len(used) < 2:
        return None
    y, v = used[log_irr].to_numpy(dtype=float), used[se].to_numpy(dtype=float) ** 2
    with warnings.catch_warnings():  # statsmodels takes sqrt of its untruncated (negative) tau2 fit
        warnings.simplefilter("ignore", RuntimeWarning)
        res = combine_effects(y, v, method_re="chi2", use_t=False)
    tau2 = max(float(res.tau2), 0.0)  # DerSimonian-Laird, truncated at 0 (statsmodels leaves it negative)
    w = 1 / (v + tau2)
    mu, se_mu = float((w * y).sum() / w.sum()), float(np.sqrt(1 / w.sum()))
    q, k = float(res.q), len(y)
    i2 = max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0
    pred = (None, None)
    if k >= 3:
        half = float(stats.t.ppf(0.975, k - 2)) * np.sqrt(tau2 + se_mu**2)
        pred = (float(np.exp(mu - half)), float(np.exp(mu + half)))
    sites = pd.DataFrame({"site": used[site].astype(str).to_numpy(), "irr": np.exp(y),
                          "low": np.exp(y - Z95 * np.sqrt(v)), "high": np.exp(y + Z95 * np.sqrt(v)),
                          "weight": w / w.sum()})
    return Pooled(float(np.exp(mu)), float(np.exp(mu - Z95 * se_mu)), float(np.exp(mu + Z95 * se_mu)),
                  float(np.exp(res.mean_effect_fe)), tau2, i2, q, float(stats.chi2.sf(q, k - 1)), *pred, sites, left_out)


def pool_metrics(metrics: pd.DataFrame) -> Pooled | None:
    """Pool from the sites' metrics.json rows (site_name or site_code, admissions_irr and
    admissions_irr_log_se)."""
    if "admissions_irr" not in metrics.columns or "admissions_irr_log_se" not in metrics.columns:
        return None
    name = "site_name" if "site_name" in metrics.columns else "site_code"
    frame = pd.DataFrame({"site": metrics[name], "log_irr": np.log(metrics["admissions_irr"].astype(float)),
                          "se": metrics["admissions_irr_log_se"].astype(float)})
    return pool(frame)


def pool_national(national: pd.DataFrame | None) -> Pooled | None:
    """Pool from the national indicator table the build passes every site (one row per site
    and indicator; the estimate columns repeat on a site's rows)."""
    if national is None or not set(SITE_COLUMNS) <= set(national.columns):
        return None
    sites = national.drop_duplicates("site_code")
    name = "site_name" if "site_name" in sites.columns else "site_code"
    return pool(pd.DataFrame({"site": sites[name], "log_irr": sites["admissions_log_irr"].astype(float),
                              "se": sites["admissions_log_irr_se"].astype(float)}))


def messages(pooled: Pooled | None) -> list[str]:
    """The national answer in words."""
    if pooled is None:
        return ["Too few sites have their own admissions estimate to pool them."]
    verdict = ("fell more for budget holders" if pooled.high < 1 else "rose more for budget holders"
               if pooled.low > 1 else "changed no differently for budget holders, within the uncertainty")
    est = O.Estimate(pooled.value, pooled.low, pooled.high)
    text = (f"Across {pooled.k} sites, emergency admissions {verdict} than for the comparison group: pooled rate "
            f"ratio {pooled.value:.2f} (95% CI {pooled.low:.2f} to {pooled.high:.2f}), {O.interval_words(est)}. "
            f"I² = {pooled.i2:.0%} of the spread between sites is beyond chance")
    if pooled.prediction_low is not None:
        text += (f"; a new site's true rate ratio would lie between {pooled.prediction_low:.2f} and "
                 f"{pooled.prediction_high:.2f} (95% prediction interval).")
    else:
        text += "."
    out = [text]
    if pooled.left_out:
        out.append(f"Left out of the pool (too small for their own estimate): {', '.join(pooled.left_out)}.")
    return out


def national_model(people: pd.DataFrame, events: pd.DataFrame, extract_date: pd.Timestamp,
                   site: str = "site_code") -> O.Estimate:
    """One model on every site's people: the conditional (person fixed-effect) Poisson
    difference in differences with a site x period term for each site and one common budget
    effect.

    As in :func:`ipcreport.analysis.outcomes.conditional_rate_ratio`, each person's after-window
    count given their two-window total is binomial; its log-odds are log(t1/t0) + a_site +
    b x budget holder, so every site has its own before-to-after change (the site x period
    terms; person and site levels cancel) and exp(b) is the IRR common to all sites, weighted
    by information (a fixed-effect answer, beside the random-effects pool). Robust sandwich
    errors, one row per person, with the same n/(n-1) factor as the site model."""
    panel = O.before_after_panel(people, events, "emergency_admission", pd.Timestamp(extract_date))
    if (few := O.did._too_few(panel, O.MIN_PEOPLE_PER_GROUP, O.MIN_EVENTS_PER_CELL)) is not None:
        return few
    pairs = O.did._person_pairs(panel).merge(people[["person_id", site]], on="person_id")
    n = len(pairs)
    pairs = pairs[(pairs["y0"] + pairs["y1"]) > 0]
    sites = pd.get_dummies(pairs[site].astype(str), dtype=float)
    X = np.column_stack([sites.to_numpy(), pairs["ipc"].to_numpy(dtype=float)])
    y1, total = pairs["y1"].to_numpy(dtype=float), (pairs["y0"] + pairs["y1"]).to_numpy(dtype=float)
    offset = np.log(pairs["t1"].to_numpy(dtype=float) / pairs["t0"].to_numpy(dtype=float))
    try:
        fit = sm.GLM(np.column_stack([y1, total - y1]), X, family=sm.families.Binomial(), offset=offset).fit()
        p = np.asarray(fit.mu, dtype=float)
        resid, slope = y1 - total * p, total * p * (1 - p)
        bread = np.linalg.inv((X * slope[:, None]).T @ X)
        meat = (X * resid[:, None]).T @ (X * resid[:, None])
    except (np.linalg.LinAlgError, ValueError) as err:  # pragma: no cover - degenerate data
        return O.Estimate(None, n=n, reason=f"the model could not be fitted ({err})")
    V = bread @ meat @ bread * len(pairs) / (len(pairs) - 1)
    beta, se = float(fit.params[-1]), float(np.sqrt(V[-1, -1]))
    if not np.isfinite(beta) or not np.isfinite(se) or se == 0:
        return O.Estimate(None, n=n, reason="the model did not give a finite estimate")
    return O.Estimate(float(np.exp(beta)), float(np.exp(beta - Z95 * se)), float(np.exp(beta + Z95 * se)), n=n,
                      se=se)


def national_message(national: O.Estimate | None, pooled: Pooled | None) -> str:
    """The national model's answer beside the pooled one, in one sentence."""
    if national is None or not national.available:
        return ("One national model with site effects: not estimated"
                + (f" ({national.reason})." if national is not None else " (no person-level data)."))
    text = (f"One national model on all {national.n:,} people, each site with its own before-to-after change and "
            f"one common budget effect: rate ratio {national.value:.2f} (95% CI {national.low:.2f} to "
            f"{national.high:.2f})")
    if pooled is not None:
        text += (f", beside the random-effects pool's {pooled.value:.2f} ({pooled.low:.2f} to {pooled.high:.2f}); "
                 "the model weights sites by their information and assumes one effect, the pool lets sites differ")
    return text + "."

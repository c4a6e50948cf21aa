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


@dataclass(frozen=True)
class SitePart:
    """One site's part of the national answer: its headline admissions estimate (for the
    pool) and its rows of the national model (:func:`model_rows`)."""

    estimate: O.Estimate
    which: str  # "weighted" or "conditional": the estimate the site's briefing headlines
    rows: pd.DataFrame

    def columns(self) -> dict[str, float | int | None]:
        """The estimate as the national indicator table carries it."""
        est = self.estimate
        return {"admissions_log_irr": float(np.log(est.value)) if est.available else None,
                "admissions_log_irr_se": est.se if est.available else None, "admissions_people": est.n}


def site_part(tables: dict[str, pd.DataFrame], extract_date: pd.Timestamp) -> SitePart:
    """One site's headline admissions estimate, computed as its briefing computes it (the
    conditional DiD, propensity-weighted wherever the propensity model fits:
    :func:`ipcreport.analysis.outcomes.preferred`), and its national-model rows with the
    same weights."""
    people, events = tables["people"], tables["events"]
    event_type, measure = O.EVENT_OUTCOMES["admissions"]
    panel = O.before_after_panel(people, events, event_type, pd.Timestamp(extract_date), measure)
    surveys = tables.get("surveys")
    propensity = None if surveys is None else O.propensity_model(O.person_covariates(people, events, surveys))
    weighted = O.conditional_rate_ratio(panel, propensity) if propensity is not None else None
    which = O.preferred(None, weighted)
    if which == "weighted":
        return SitePart(weighted, which, model_rows(panel, propensity))
    return SitePart(O.conditional_rate_ratio(panel), which, model_rows(panel))


def site_estimate(tables: dict[str, pd.DataFrame], extract_date: pd.Timestamp) -> dict[str, float | None]:
    """One site's headline admissions estimate as pooling needs it: log rate ratio, its
    standard error, and the people in the model (None where the site has no estimate)."""
    return site_part(tables, extract_date).columns()


def model_rows(panel: pd.DataFrame, weights: "O.PropensityModel | pd.Series | None" = None) -> pd.DataFrame:
    """What the national model needs of one site, and nothing more: per person with both
    windows, ipc, after-window count y1, two-window total, offset log(t1/t0) and weight; people
    whose rows are identical are merged into one row with a count (``people``), so the table
    holds no identifiers and shrinks where follow-up is complete. People with no events in either
    window carry no information: they are kept only as a count per group."""
    pairs = O.did._person_pairs(panel)
    weight = np.ones(len(pairs)) if weights is None else O.balance._person_weights(pairs, weights)[0]
    total = (pairs["y0"] + pairs["y1"]).to_numpy(dtype=float)
    informative = total > 0
    rows = pd.DataFrame({
        "ipc": pairs["ipc"].to_numpy(dtype=float), "y1": pairs["y1"].to_numpy(dtype=float), "total": total,
        "offset": np.where(informative, np.log(pairs["t1"].to_numpy(dtype=float) / pairs["t0"].to_numpy(dtype=float)),
                           0.0),
        "weight": np.where(informative, weight, 1.0)})
    return rows.groupby(list(MODEL_COLUMNS), as_index=False, sort=False).size().rename(columns={"size": "people"})


MODEL_COLUMNS = ("ipc", "y1", "total", "offset", "weight")


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


def national_model(rows: pd.DataFrame, site: str = "site", max_iterations: int = 100) -> O.Estimate:
    """One model on every site's people: the conditional (person fixed-effect) Poisson
    difference in differences with a site x period term for each site and one common budget
    effect, fitted on the sites' :func:`model_rows` stacked (a ``site`` column beside them).

    As in :func:`ipcreport.analysis.outcomes.conditional_rate_ratio`, each person's after-window
    count given their two-window total is binomial; its log-odds are log(t1/t0) + a_site +
    b x budget holder, so every site has its own before-to-after change (the site x period
    terms; person and site levels cancel) and exp(b) is the IRR common to all sites, weighted
    by information (a fixed-effect answer, beside the random-effects pool). People carry their
    own site's propensity weights, taken as known here (the site models also carry the
    uncertainty of the weights; the pool uses those). Robust sandwich errors, one row per
    person, with the same n/(n-1) factor as the site model.

    Fitted by Newton's method on per-site sums: the Hessian is a diagonal block for the site
    terms bordered by one row for b, so each step costs one pass over the rows whatever the
    number of sites (a design matrix of site dummies at 5 million people would not fit in
    memory). It gives the same estimate as statsmodels' GLM with site dummies (tests/test_meta)."""
    n = int(rows["people"].sum()) if len(rows) else 0
    rows = rows[rows["total"] > 0]
    # a site whose events all fall in one window has an infinite site term and says nothing of b
    share = rows.groupby(site)["y1"].transform("sum") / rows.groupby(site)["total"].transform("sum")
    rows = rows[(share > 0) & (share < 1)]
    if len(rows) < 3 or rows["ipc"].min() == rows["ipc"].max():
        return O.Estimate(None, n=n, reason="too few people with events in either window in both groups")
    index, labels = pd.factorize(rows[site])
    arrays = _ModelArrays(index, len(labels), *(rows[c].to_numpy(dtype=float)
                                                for c in ("y1", "total", "offset", "ipc", "people", "weight")))
    fitted = _fit_site_terms(arrays, max_iterations)
    if fitted is None:  # pragma: no cover - Newton on this concave likelihood converges in a handful of steps
        return O.Estimate(None, n=n, reason="the model did not converge")
    b, var = fitted[1], _common_effect_variance(arrays, *fitted)
    se = float(np.sqrt(var))
    if not np.isfinite(b) or not np.isfinite(se) or se == 0:
        return O.Estimate(None, n=n, reason="the model did not give a finite estimate")
    return O.Estimate(float(np.exp(b)), float(np.exp(b - Z95 * se)), float(np.exp(b + Z95 * se)), n=n, se=se)


@dataclass(frozen=True)
class _ModelArrays:
    """The national model's rows as arrays: each row's site (0..k-1) and its numbers."""

    index: np.ndarray
    k: int
    y1: np.ndarray
    total: np.ndarray
    offset: np.ndarray
    ipc: np.ndarray
    people: np.ndarray
    weight: np.ndarray

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-site sums."""
        return np.bincount(self.index, weights=values, minlength=self.k)

    def fitted(self, a: np.ndarray, b: float) -> np.ndarray:
        """After-window probabilities given the site terms and the common effect."""
        return 1 / (1 + np.exp(-(self.offset + a[self.index] + b * self.ipc)))

    def curvature(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """The Hessian's pieces: per-site diagonal d, its border e with b, and the Schur
        complement of b (h_b - e'D^-1 e)."""
        slope = self.people * self.weight * self.total * p * (1 - p)
        d, e = self.sums(slope), self.sums(slope * self.ipc)
        return d, e, float((slope * self.ipc).sum()) - float((e**2 / d).sum())


def _fit_site_terms(m: _ModelArrays, max_iterations: int) -> tuple[np.ndarray, float] | None:
    """(site terms, common effect) by Newton's method, solving each step through the Schur
    complement of the bordered Hessian; None if it does not settle."""
    c = m.people * m.weight  # likelihood weight of a row
    a = np.log(m.sums(c * m.y1) / m.sums(c * (m.total - m.y1))) - m.sums(c * m.offset) / m.sums(c)  # near the answer
    b = 0.0
    for _ in range(max_iterations):
        p = m.fitted(a, b)
        resid = m.y1 - m.total * p
        d, e, schur = m.curvature(p)
        g_a, g_b = m.sums(c * resid), float((c * resid * m.ipc).sum())
        step_b = (g_b - float((e * g_a / d).sum())) / schur
        step_a = (g_a - e * step_b) / d
        a, b = a + step_a, b + step_b
        if max(abs(step_b), float(np.abs(step_a).max())) < 1e-10:
            return a, b
    return None


def _common_effect_variance(m: _ModelArrays, a: np.ndarray, b: float) -> float:
    """Robust sandwich variance of b, one row per person (a merged row counts its people),
    with the n/(n-1) factor: the b row of the inverse Hessian, then its quadratic form with
    the meat."""
    p = m.fitted(a, b)
    d, e, schur = m.curvature(p)
    u_a, u_b = -e / (d * schur), 1 / schur
    score2 = m.people * (m.weight * (m.y1 - m.total * p)) ** 2
    m_aa, m_ab, m_bb = m.sums(score2), m.sums(score2 * m.ipc), float((score2 * m.ipc).sum())
    people = m.people.sum()
    return (u_b**2 * m_bb + 2 * u_b * float((u_a * m_ab).sum()) + float((u_a**2 * m_aa).sum())) * people / (people - 1)


def national_model_of_sites(site_tables, extract_date: pd.Timestamp) -> O.Estimate:
    """:func:`national_model` on sites' tables (an iterable of dicts of frames, one site each)."""
    parts = [site_part(t, extract_date).rows.assign(site=t["people"]["site_code"].iloc[0]) for t in site_tables]
    return national_model(pd.concat(parts, ignore_index=True))


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

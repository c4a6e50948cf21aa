"""Balance of the groups at the start and propensity weights (with the stacked sandwich that
counts the propensity model's own estimation)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from ...data.contract import COHORTS
from ...data.frames import isin, positions
from .common import DAYS_PER_YEAR, MIN_PEOPLE_PER_GROUP, PROPENSITY_CLIP, SMD_THRESHOLD, WINDOW_DAYS, _design


def chance_smd(n_ipc: int, n_comparison: int, comparisons: int = 1, alpha: float = 0.05) -> float:
    """The largest |standardised difference| chance gives between two random groups of these
    sizes: z x sqrt(1/n_ipc + 1/n_comparison) (the SMD's standard error under random
    allocation), with z for a two-sided ``alpha`` shared over ``comparisons`` covariates
    (Bonferroni), so that across the whole balance table a false alarm happens about
    ``alpha`` of the time. Infinite when a group is empty."""
    if min(n_ipc, n_comparison) < 1:
        return float("inf")
    z = stats.norm.ppf(1 - alpha / (2 * max(comparisons, 1)))
    return float(z * np.sqrt(1 / n_ipc + 1 / n_comparison))



BALANCE_LABELS = {
    "age": "Age", "need_score": "Need score", "prior_service_cost": "Prior service cost (GBP)",
    "imd_decile": "IMD decile", "baseline_admissions_rate": "Emergency admissions, year before",
    "baseline_ascot": "Baseline ASCOT", "baseline_eq5d": "Baseline EQ-5D",
}


def person_covariates(people: pd.DataFrame, events: pd.DataFrame, surveys: pd.DataFrame,
                      window_days: int = WINDOW_DAYS) -> pd.DataFrame:
    """One row per person: ipc, the baseline covariates the balance table shows, cohort shares.

    baseline_admissions_rate: emergency admissions per person-year in the ``window_days`` before
    index. Baseline ASCOT/EQ-5D are missing where the questionnaire item is.
    """
    p = people[["person_id", "group", "cohort", "index_date", "age", "need_score", "prior_service_cost",
                "imd_decile"]].copy()
    p["ipc"] = (p["group"] == "ipc").astype(int)
    ev = events.loc[events["event_type"] == "emergency_admission", ["person_id", "event_date"]].merge(
        p[["person_id", "index_date"]], on="person_id")
    pre = ev[(ev["event_date"] < ev["index_date"]) & (ev["event_date"] >= ev["index_date"] - pd.Timedelta(days=window_days))]
    p["baseline_admissions_rate"] = (p["person_id"].map(pre["person_id"].value_counts()).fillna(0).to_numpy(float)
                                     / (window_days / DAYS_PER_YEAR))
    base = surveys[surveys["timepoint"] == "baseline"].drop_duplicates("person_id").set_index("person_id")
    for m in ("ascot", "eq5d"):
        p[f"baseline_{m}"] = p["person_id"].map(base[m]).astype(float) if m in base.columns else np.nan
    for c in COHORTS:
        p[f"cohort_{c}"] = (p["cohort"] == c).astype(float)
    for c in ("age", "need_score", "prior_service_cost", "imd_decile"):
        p[c] = pd.to_numeric(p[c], errors="coerce").astype(float)
    return p.drop(columns=["index_date"]).reset_index(drop=True)


BALANCE_COVARIATES = ["age", "need_score", "prior_service_cost", "imd_decile", "baseline_admissions_rate",
                      "baseline_ascot", "baseline_eq5d"] + [f"cohort_{c}" for c in COHORTS]


def _weighted_mean_var(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted mean and (reliability-weighted, unbiased when weights are 1) variance."""
    sw = w.sum()
    m = float((w * x).sum() / sw)
    denom = sw - (w**2).sum() / sw
    v = float((w * (x - m) ** 2).sum() / denom) if denom > 0 else float("nan")
    return m, v


def standardised_differences(covariates: pd.DataFrame, weights: pd.Series | None = None,
                             columns: list[str] | None = None) -> pd.DataFrame:
    """Standardised mean difference (ipc minus comparison) of each covariate.

    SMD = (mean_ipc - mean_comp) / sqrt((var_ipc + var_comp) / 2) with sample variances
    (ddof = 1), on people with the covariate recorded. With ``weights`` (indexed like
    ``covariates`` rows, or by person_id), weighted means and variances, and the denominator
    stays the unweighted pooled SD so crude and weighted SMDs are on one scale.
    Columns: covariate, mean_ipc, mean_comparison, smd, [weighted_mean_comparison, weighted_smd].
    """
    cols = [c for c in (columns or BALANCE_COVARIATES) if c in covariates.columns]
    ipc = covariates["ipc"].to_numpy() == 1
    if weights is not None:
        w_all = (covariates["person_id"].map(weights) if "person_id" in covariates.columns
                 and isin(pd.Series(weights.index), covariates["person_id"]).any() else weights.reindex(covariates.index))
        w_all = w_all.to_numpy(dtype=float)
    rows = []
    for c in cols:
        x = covariates[c].to_numpy(dtype=float)
        ok = ~np.isnan(x)
        a, b = x[ok & ipc], x[ok & ~ipc]
        row = {"covariate": c, "mean_ipc": np.nan, "mean_comparison": np.nan, "smd": np.nan,
               "n_ipc": int(len(a)), "n_comparison": int(len(b))}
        if len(a) > 1 and len(b) > 1:
            sd = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
            row.update(mean_ipc=a.mean(), mean_comparison=b.mean(),
                       smd=(a.mean() - b.mean()) / sd if sd > 0 else 0.0)
            if weights is not None:
                wa, wb = w_all[ok & ipc], w_all[ok & ~ipc]
                ma, _ = _weighted_mean_var(a, wa)
                mb, _ = _weighted_mean_var(b, wb)
                row.update(weighted_mean_ipc=ma, weighted_mean_comparison=mb,
                           weighted_smd=(ma - mb) / sd if sd > 0 else 0.0)
        rows.append(row)
    return pd.DataFrame(rows)


PROPENSITY_COVARIATES = ["age", "log_need", "log_prior_cost", "imd_decile", "baseline_admissions_rate",
                         "baseline_ascot", "baseline_eq5d", "cohort"]


@dataclass(frozen=True)
class PropensityModel:
    """A fitted logit propensity model and the ATT weights it gives.

    Budget holders weigh 1, comparison people e/(1-e) (the odds of holding a budget), so the
    weighted comparison group resembles the budget holders on the model's covariates. Passed as
    ``weights`` to :func:`did_rate_ratio` or :func:`ancova_difference`, the interval also
    accounts for the propensity model having been estimated (a stacked M-estimation sandwich:
    the logit's score equations beside the outcome model's); a plain Series of weights is
    treated as known.
    """

    person_id: np.ndarray
    ipc: np.ndarray  # bool
    z: np.ndarray  # design, intercept first (standardised covariates)
    e_fit: np.ndarray  # fitted propensity (unclipped)
    clip: tuple[float, float]
    params: np.ndarray  # logit coefficients, for z

    @property
    def e(self) -> np.ndarray:
        return np.clip(self.e_fit, *self.clip)

    @property
    def weights(self) -> pd.Series:
        e = self.e
        return pd.Series(np.where(self.ipc, 1.0, e / (1 - e)), index=self.person_id, name="weight")

    def weight_gradient(self) -> np.ndarray:
        """d weight / d logit coefficients, one row per person (0 for budget holders and where
        the propensity was clipped)."""
        w = self.weights.to_numpy()
        active = ~self.ipc & (self.e_fit > self.clip[0]) & (self.e_fit < self.clip[1])
        return self.z * (w * active)[:, None]

    def scores(self) -> np.ndarray:
        return self.z * (self.ipc.astype(float) - self.e_fit)[:, None]

    def information(self) -> np.ndarray:
        v = self.e_fit * (1 - self.e_fit)
        return (self.z * v[:, None]).T @ self.z


def propensity_model(covariates: pd.DataFrame, clip: tuple[float, float] = PROPENSITY_CLIP
                     ) -> PropensityModel | None:
    """Logit of group on age, log need, log prior cost, IMD decile, baseline admissions rate,
    baseline ASCOT and EQ-5D (missing -> mean plus a missing indicator) and cohort, fitted with
    statsmodels on :func:`person_covariates`' frame. None when there are too few people or the
    model cannot be fitted (separation)."""
    c = covariates.reset_index(drop=True).copy()
    n_ipc, n_comp = int(c["ipc"].sum()), int((1 - c["ipc"]).sum())
    if min(n_ipc, n_comp) < MIN_PEOPLE_PER_GROUP:
        return None
    c["log_need"] = np.log1p(c["need_score"].astype(float))
    c["log_prior_cost"] = np.log1p(c["prior_service_cost"].astype(float))
    X, _ = _design(c, [v for v in PROPENSITY_COVARIATES if v in c.columns])
    sd = X.std(axis=0)
    X = (X[:, sd > 0] - X[:, sd > 0].mean(axis=0)) / sd[sd > 0]
    Z = np.column_stack([np.ones(len(c)), X])
    d = c["ipc"].to_numpy(dtype=float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.Logit(d, Z).fit(disp=0, maxiter=200, method="newton")
    except Exception:  # noqa: BLE001 - perfect separation, singular matrix: no model
        return None
    e = np.asarray(fit.predict(Z), dtype=float)
    if not np.isfinite(e).all():
        return None
    return PropensityModel(c["person_id"].to_numpy(), d == 1, Z, e, clip, np.asarray(fit.params, dtype=float))


def propensity_weights(covariates: pd.DataFrame, clip: tuple[float, float] = PROPENSITY_CLIP) -> pd.Series | None:
    """ATT weights indexed by person_id (see :class:`PropensityModel`), or None."""
    model = propensity_model(covariates, clip)
    return None if model is None else model.weights


def _stacked_variance(model: PropensityModel, person: np.ndarray, X: np.ndarray, w: np.ndarray,
                      resid: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Covariance of an inverse-probability-weighted GLM's coefficients that accounts for the
    estimated propensity model (Lunceford & Davidian 2004; Wooldridge 2010, 12.4).

    Per person i the estimating functions are U_i = sum_t w_i x_it r_it (outcome model, r the
    response residual) and S_i = z_i (d_i - e_i) (logit). With A = -E[d(U,S)/d(beta,gamma)]:
    A_bb = sum w slope x x' (slope = mu for Poisson, 1 for least squares), A_bg = -sum_i
    (sum_t x_it r_it) (dw_i/dgamma)', A_gg = the logit information, A_gb = 0; B = sum_i
    (U_i,S_i)(U_i,S_i)'. V = A^-1 B A^-T, with a G/(G-1) small-sample factor.
    """
    A, psi = _stacked_parts(model, person, X, w, resid, slope)
    A_inv = np.linalg.inv(A)
    V = A_inv @ (psi.T @ psi) @ A_inv.T
    n = len(psi)
    return V[: X.shape[1], : X.shape[1]] * n / (n - 1)


def _stacked_parts(model: PropensityModel, person: np.ndarray, X: np.ndarray, w: np.ndarray, resid: np.ndarray,
                   slope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, per-person estimating functions) of :func:`_stacked_variance`."""
    n, k = len(model.person_id), X.shape[1]
    q = model.z.shape[1]
    U = np.zeros((n, k))
    H = np.zeros((n, k))
    np.add.at(U, person, X * (w * resid)[:, None])
    np.add.at(H, person, X * resid[:, None])
    a_bb = (X * (w * slope)[:, None]).T @ X
    a_bg = -H.T @ model.weight_gradient()
    A = np.block([[a_bb, a_bg], [np.zeros((q, k)), model.information()]])
    return A, np.column_stack([U, model.scores()])


def _person_weights(panel: pd.DataFrame, weights) -> tuple[np.ndarray, np.ndarray | None]:
    """Row weights for a panel, and (with a PropensityModel) each row's position in the model."""
    if isinstance(weights, PropensityModel):
        person = positions(panel["person_id"], pd.Series(weights.person_id))
        if (person < 0).any():
            raise ValueError("the propensity model must cover every person in the panel")
        return weights.weights.to_numpy()[person], person
    w = panel["person_id"].map(weights).to_numpy(dtype=float)
    if np.isnan(w).any():
        raise ValueError("weights must cover every person in the panel")
    return w, None



def imbalanced_covariates(balance: pd.DataFrame) -> list[str]:
    """Covariates whose |SMD| exceeds both 0.1 and what chance gives between random groups of
    the sizes measured (:func:`chance_smd`, shared over the covariates in the table)."""
    k = int(balance["smd"].notna().sum())
    band = [chance_smd(a, b, k) for a, b in zip(balance["n_ipc"], balance["n_comparison"])]
    balance["chance_smd"] = band
    beyond = balance["smd"].abs() > np.maximum(SMD_THRESHOLD, band)
    return balance.loc[beyond.fillna(False), "covariate"].tolist()

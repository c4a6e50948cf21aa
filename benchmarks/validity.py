"""Validity study: do the outcome estimators recover the effects the synthetic generator put in,
including in data NOT shaped like the estimators' own model?

For each scenario, many synthetic datasets are drawn in memory (``ipcreport.data.synth.generate_tables``,
the same draws ``synthesise`` writes) and the estimators of ``ipcreport.analysis.outcomes`` and
``ipcreport.analysis.economics`` are run on each as a site briefing runs them. Per scenario and
estimator: the truth (from the generator's truth dict), bias, coverage of the 95% intervals,
their Monte Carlo errors, and which estimator the briefing tells the reader to believe there
(the "briefing" rows follow ``outcomes.preferred`` replicate by replicate).

Scenarios (docs/validity.md): no effect; an effect; informative exits both ways (frail people
leave, budget holders half or twice as often); enrolment after a bad year (regression to the
mean, no effect); need changing the trend (confounding the DiD); need entering the
questionnaire model (confounding the change score); a small site of 300 people; economics with
a known incremental cost. Balance-flag false alarms are counted in the no-effect scenario (old
rule |SMD| > 0.1 against the chance-aware rule).

Bias: for rate ratios on the log scale, reported as a relative bias of the geometric mean,
exp(mean(log IRR)) / truth - 1; for differences (ASCOT, cost), absolute mean(estimate - truth).
Targets: coverage 93-97%, |relative bias| <= 5% for ratios, |bias| <= 0.005 for ASCOT/EQ-5D
(GBP 100 for costs).

Usage::

    nice -n 10 python benchmarks/validity.py --replicates 1000 --people 2000 --workers 1 --out docs/validity.md

Prints timings.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread per worker process

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ipcreport.analysis import allocation as A  # noqa: E402
from ipcreport.analysis import economics as E  # noqa: E402
from ipcreport.analysis import funnel as F  # noqa: E402
from ipcreport.analysis import spc as S  # noqa: E402
from ipcreport.analysis import outcomes as O  # noqa: E402
from ipcreport.data.synth import SynthConfig, generate_tables  # noqa: E402

NULL = dict(admissions_rr=1.0, bed_days_rr=1.0, ascot_gain=0.0, eq5d_gain=0.0, baseline_need_imbalance=0.0,
            services=False)
EFFECT = {**NULL, "admissions_rr": 0.85, "bed_days_rr": 0.85, "ascot_gain": 0.04}
# Scenario -> (SynthConfig options, estimators run there). Effects not named keep the values given
# here explicitly, so a change of SynthConfig's defaults cannot silently change a scenario.
ADMISSIONS = ("admissions", "admissions_crude", "admissions_weighted", "admissions_briefing")
SCENARIOS: dict[str, tuple[dict, tuple[str, ...]]] = {
    "no_effect": (dict(NULL), ADMISSIONS + ("bed_days", "bed_days_weighted", "ascot", "eq5d", "balance_flag",
                                            "fairness_flag")),
    "effect": (dict(EFFECT), ADMISSIONS + ("bed_days", "bed_days_weighted", "ascot", "ascot_change", "eq5d")),
    "exits_ipc_half": ({**EFFECT, "exit_share": 0.3, "exit_frailty": 1.0, "ipc_exit_ratio": 0.5}, ADMISSIONS),
    "exits_ipc_double": ({**EFFECT, "exit_share": 0.3, "exit_frailty": 1.0, "ipc_exit_ratio": 2.0}, ADMISSIONS),
    "bad_year": ({**NULL, "pre_year_shock_sd": 0.4, "enrol_after_bad_year": 1.0}, ADMISSIONS),
    "need_trend": ({**EFFECT, "baseline_need_imbalance": 0.3, "need_trend": 0.3}, ADMISSIONS),
    "need_in_questionnaire": ({**EFFECT, "baseline_need_imbalance": 0.3, "need_in_questionnaire": 0.03},
                              ("ascot", "ascot_change", "ascot_weighted")),
    "small_site": ({**EFFECT, "people": 300}, ("admissions", "admissions_crude", "ascot")),
    "economics": ({**EFFECT, "services": True}, ("incremental_cost",)),
    # funnels and SPC under no change: unit counts drawn directly (no person-level data needed)
    "no_change": ({}, ("funnel", "spc")),
}
ECONOMICS_BOOT = 200  # bootstrap resamples per replicate in the economics scenario (the briefing uses 1,000)

RATIOS = ("admissions", "bed_days", "ae_attendances")
RATIO_BIAS_TOLERANCE = 0.05  # relative, on the geometric mean
DIFF_BIAS_TOLERANCE = 0.005  # absolute, ASCOT and EQ-5D points
COST_BIAS_TOLERANCE = 100.0  # GBP per budget holder
COVERAGE_RANGE = (0.93, 0.97)


def base_of(estimate: str) -> str:
    for suffix in ("_weighted", "_crude", "_briefing", "_change"):
        estimate = estimate.removesuffix(suffix)
    return estimate


def truth_of(truth: dict, estimate: str) -> float:
    """The true value of an estimate, from the generator's truth dict."""
    e = truth["effects"]
    base = base_of(estimate)
    if base in ("admissions", "bed_days"):
        return float(e[f"{base}_rr"])
    if base in ("ascot", "eq5d"):
        return float(e[f"{base}_gain"])
    if base == "incremental_cost":
        return float(truth["economics"]["incremental_cost"])
    if base == "balance_flag":
        return 0.0
    if base == "ae_attendances":
        return 1.0
    raise KeyError(estimate)


def _estimates(wanted: tuple[str, ...], p, ev, sv, extract, tables, seed) -> dict:
    """The estimators a scenario needs, as Estimates (and the balance-flag indicators)."""
    panels: dict = {}
    bases = tuple(dict.fromkeys(b for b in map(base_of, wanted) if b in O.EVENT_OUTCOMES or b in O.QOL_MEASURES))
    found = dict(O.headline_estimates(p, ev, sv, extract, outcomes=bases, panels=panels))
    if any(w.endswith("_crude") for w in wanted):
        crude = O.headline_estimates(p, ev, sv, extract, outcomes=tuple(b for b in bases if f"{b}_crude" in wanted),
                                     panels=panels, model="pooled")
        found.update({f"{k}_crude": v for k, v in crude.items()})
    needs_weights = any(w.endswith(("_weighted", "_briefing")) or w == "balance_flag" for w in wanted)
    if needs_weights:
        cov = O.person_covariates(p, ev, sv)
        balance = O.standardised_differences(cov)
        imbalanced = O.imbalanced_covariates(balance)
        weights = O.propensity_model(cov)
        if weights is not None:
            weighted = O.headline_estimates(p, ev, sv, extract, weights=weights, panels=panels,
                                            outcomes=tuple(base_of(w) for w in wanted if w.endswith("_weighted")))
            found.update({f"{k}_weighted": v for k, v in weighted.items()})
        if "admissions_briefing" in wanted:
            choice = O.preferred(found.get("admissions"), found.get("admissions_weighted"), balance)
            found["admissions_briefing"] = found["admissions_weighted" if choice == "weighted" else "admissions"]
            found["_choice"] = choice
        if "balance_flag" in wanted:  # share of null datasets flagged "groups differ" (no estimate, a rate)
            found["balance_flag_old"] = bool((balance["smd"].abs() > O.SMD_THRESHOLD).any())
            found["balance_flag"] = bool(imbalanced)
    if "fairness_flag" in wanted:  # budgets follow need only (synth): does the joint test say otherwise?
        equity = A.equity_model(tables["budgets"], p, A.Window.ending(extract))
        found["fairness_flag"] = bool(equity.fairness_p_value is not None and equity.fairness_p_value < 0.05)
    if "ascot_change" in wanted:
        found["ascot_change"] = O.change_score_difference(panels["ascot"])
    if "incremental_cost" in wanted:
        ce = E.analyse_economics(p, tables["budgets"], ev, sv, extract, spend=tables["spend"],
                                 services=tables["services"], n_boot=ECONOMICS_BOOT, seed=seed)
        found["incremental_cost"] = ce.d_cost
    return found


def replicate(task: tuple[str, int, int, int, bool]) -> list[dict]:
    """One synthetic dataset, all of its scenario's estimates. The unit of work a worker runs."""
    scenario, rep, people, seed, _ = task
    options, wanted = SCENARIOS[scenario]
    if scenario == "no_change":
        return [{"scenario": scenario, "replicate": rep, "seed": seed, "estimate": key, "truth": 0.0,
                 "value": float(value), "low": None, "high": None, "n": None, "reason": None}
                for key, value in no_change_flags(seed).items()]
    options = dict(options)
    people = options.pop("people", people)
    config = SynthConfig(sites=1, people=people, seed=seed, **options)
    tables, truth = generate_tables(config)
    p, ev, sv = tables["people"], tables["events"], tables["surveys"]
    extract = pd.Timestamp(config.extract_date)
    found = _estimates(wanted, p, ev, sv, extract, tables, seed)
    rows = []
    for key, est in found.items():
        if key.startswith("_"):
            continue
        if key in FLAG_TEXT:
            rows.append({"scenario": scenario, "replicate": rep, "seed": seed, "estimate": key, "truth": 0.0,
                         "value": float(est), "low": None, "high": None, "n": people, "reason": None})
            continue
        rows.append({"scenario": scenario, "replicate": rep, "seed": seed, "estimate": key,
                     "truth": truth_of(truth, key), "value": est.value, "low": est.low, "high": est.high,
                     "n": est.n, "reason": est.reason, "choice": found.get("_choice")})
    return rows


# Scenarios whose replicates cost more (a bootstrap each) run at most this many replicates.
MAX_REPLICATES = {"economics": 1000}


def tasks(scenarios: list[str], replicates: int, people: int, seed: int, extra: bool) -> list[tuple]:
    # Replicate r of the k-th scenario (in SCENARIOS order) uses seed + SEED_STRIDE * k + r:
    # independent data across scenarios, and a scenario's data do not depend on which other
    # scenarios run with it; the first R replicates of a longer run are an R-replicate run.
    return [(s, r, people, scenario_seed(s, seed) + r, extra) for s in scenarios
            for r in range(min(replicates, MAX_REPLICATES.get(s, replicates)))]


SEED_STRIDE = 100_000


def scenario_seed(scenario: str, seed: int) -> int:
    return seed + SEED_STRIDE * list(SCENARIOS).index(scenario)


def run(scenarios: list[str], replicates: int, people: int, seed: int, workers: int = 2,
        extra: bool = True) -> pd.DataFrame:
    """Every replicate's estimates (one row per scenario x replicate x estimate)."""
    work = tasks(scenarios, replicates, people, seed, extra)
    if workers <= 1:
        results = map(replicate, work)
        rows = [row for chunk in results for row in chunk]
    else:
        ctx = mp.get_context("spawn" if sys.platform == "win32" else "fork")
        with ctx.Pool(workers) as pool:
            rows = [row for chunk in pool.imap_unordered(replicate, work, chunksize=4) for row in chunk]
    out = pd.DataFrame(rows)
    return out.sort_values(["scenario", "estimate", "replicate"]).reset_index(drop=True)


FUNNEL_SITES = 9  # the demo's sites
FUNNEL_PEOPLE = (150, 1500)  # people per site, drawn uniformly: demo-sized sites
FUNNEL_METHOD = "additive"  # what the briefing and overview draw (report.sections.compare.METHOD)
SPC_MONTHS = 24  # report.sections.compare.MONTHS_SHOWN
SPC_MEANS = (5, 20, 100)  # monthly counts: a small, a middling and a large series


def no_change_flags(seed: int) -> dict[str, float]:
    """Funnels of demo-sized sites with no site effects (a proportion, 30%, and a rate, 0.8 per
    person-year, the same in every site) and SPC charts of 24 monthly Poisson counts with a
    constant mean: the share of sites and of datasets flagged, and of series with a signal."""
    rng = np.random.default_rng(seed)
    out = {}
    people = rng.integers(*FUNNEL_PEOPLE, size=FUNNEL_SITES)
    for kind, numerator, denominator in (
        ("proportion", lambda n: rng.binomial(n, 0.3), people),
        ("rate", lambda e: rng.poisson(0.8 * e), people * 0.9),  # person-years: some leave early
    ):
        data = pd.DataFrame({"unit": np.arange(FUNNEL_SITES), "numerator": numerator(denominator),
                             "denominator": denominator})
        flag = F.funnel(data, kind, overdispersion=FUNNEL_METHOD).units["flag"]
        out[f"funnel_{kind}_site95"] = float((flag != "within").mean())
        out[f"funnel_{kind}_site998"] = float(flag.str.endswith("99.8%").mean())
        out[f"funnel_{kind}_any95"] = float((flag != "within").any())
    months = pd.period_range("2024-10", periods=SPC_MONTHS, freq="M").to_timestamp()
    for mean in SPC_MEANS:
        frame, summary = S.spc(rng.poisson(mean, SPC_MONTHS).astype(float), months, improvement_direction="decrease")
        out[f"spc_{mean}_any"] = float(frame["special_cause"].any())
        out[f"spc_{mean}_outside"] = float((frame["rule"] == "outside_limits").any())
        out[f"spc_{mean}_latest"] = float(summary.variation != "common_cause")
    return out


# estimate -> (what is flagged, what chance alone should give)
FLAG_TEXT = {
    "balance_flag_old": ("Balance: any |SMD| > 0.1 (old rule), per dataset", "no nominal rate"),
    "balance_flag": ("Balance: any |SMD| beyond both 0.1 and chance (Bonferroni over covariates), per dataset",
                     "at most 5%"),
    "fairness_flag": ("Fairness: joint F-test of age, sex and deprivation at equal need, p < 0.05, per dataset",
                      "5%"),
}
for _kind in ("proportion", "rate"):
    FLAG_TEXT |= {
        f"funnel_{_kind}_site95": (f"Funnel ({_kind}, {FUNNEL_SITES} sites, additive overdispersion): share of "
                                   "sites beyond the 95% limits", "5%"),
        f"funnel_{_kind}_site998": (f"Funnel ({_kind}): share of sites beyond the 99.8% limits", "0.2%"),
        f"funnel_{_kind}_any95": (f"Funnel ({_kind}): any site beyond the 95% limits, per dataset",
                                  f"{F.chance_flags(FUNNEL_SITES)[1]:.1%}"),
    }
for _mean in SPC_MEANS:
    FLAG_TEXT |= {
        f"spc_{_mean}_any": (f"SPC, {SPC_MONTHS} months, mean {_mean} a month: any special-cause point, per series",
                             "no single nominal rate (four rules)"),
        f"spc_{_mean}_outside": (f"SPC, mean {_mean}: any point outside the limits, per series",
                                 f"{1 - (1 - 0.0027) ** SPC_MONTHS:.1%} (normal data)"),
        f"spc_{_mean}_latest": (f"SPC, mean {_mean}: the latest point's icon says special cause", "no nominal rate"),
    }


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per scenario x estimate: truth, mean estimate, bias, coverage, Monte Carlo errors, verdict.

    The incremental cost's truth is the expected one (the mean over replicates of the realised
    truth each dataset records); coverage against each replicate's realised truth is kept as
    ``coverage_realised``. Flag rows (:data:`FLAG_TEXT`) are false-alarm rates under no effect,
    with their Monte Carlo error."""
    out = []
    for (scenario, estimate), g in rows.groupby(["scenario", "estimate"], sort=False):
        ok = g[g["value"].notna()]
        r = len(ok)
        truth_all = ok["truth"].to_numpy(dtype=float) if r else g["truth"].to_numpy(dtype=float)
        row = {"scenario": scenario, "estimate": estimate, "truth": float(np.mean(truth_all)),
               "replicates": len(g), "estimated": r}
        if r == 0:
            out.append(row)
            continue
        if estimate in FLAG_TEXT:
            rate = float(ok["value"].mean())
            row.update({"false_alarm": rate, "false_alarm_mc_se": float(ok["value"].std(ddof=1) / math.sqrt(r))})
            out.append(row)
            continue
        base = base_of(estimate)
        ratio = base in RATIOS
        v, lo, hi = (ok[c].to_numpy(dtype=float) for c in ("value", "low", "high"))
        truth = truth_all
        if base == "incremental_cost":
            # The realised truth (these budget holders' own spend plus the expected rest) moves with
            # the estimate, which contains the same spend; the bootstrap interval, resampling the
            # budget holders, is meant to cover the expected incremental cost under the generator:
            # the mean of the realised truth over the replicates, with its Monte Carlo error.
            row["coverage_realised"] = float(((lo <= truth) & (truth <= hi)).mean())
            row["truth_mc_se"] = float(truth.std(ddof=1) / math.sqrt(r))
            truth = np.full(r, truth.mean())
            row["truth"] = float(truth[0])
        covered = (lo <= truth) & (truth <= hi)
        cov = float(covered.mean())
        if ratio:
            logs = np.log(v) - np.log(truth)
            mean_est = float(np.exp(np.log(v).mean()))
            bias = float(np.exp(logs.mean()) - 1)
            emp_sd = float(logs.std(ddof=1))
            model_se = float(np.mean((np.log(hi) - np.log(lo)) / (2 * O.Z95)))
            bias_ok = abs(bias) <= RATIO_BIAS_TOLERANCE
            bias_mc = emp_sd / math.sqrt(r) * (1 + bias)
        else:
            diff = v - truth
            mean_est = float(v.mean())
            bias = float(diff.mean())
            emp_sd = float(diff.std(ddof=1))
            model_se = float(np.mean((hi - lo) / (2 * O.Z95)))
            bias_ok = abs(bias) <= (COST_BIAS_TOLERANCE if base == "incremental_cost" else DIFF_BIAS_TOLERANCE)
            bias_mc = emp_sd / math.sqrt(r)
        row.update({
            "bias_scale": "relative (log)" if ratio else "absolute",
            "mean_estimate": mean_est,
            "bias": bias,
            "bias_mc_se": float(bias_mc),
            "coverage": cov,
            "coverage_mc_se": float(math.sqrt(max(cov * (1 - cov), 1e-12) / r)),
            "empirical_sd": emp_sd,
            "mean_model_se": model_se,
            "below": float((hi < truth).mean()),
            "above": float((lo > truth).mean()),
            "bias_ok": bool(bias_ok),
            "coverage_ok": bool(COVERAGE_RANGE[0] <= cov <= COVERAGE_RANGE[1]),
        })
        if estimate.endswith("_briefing") and "choice" in ok.columns:
            row["weighted_share"] = float((ok["choice"] == "weighted").mean())
        out.append(row)
    frame = pd.DataFrame(out)
    order = {name: i for i, name in enumerate(SCENARIOS)}
    est_order = {name: i for i, name in enumerate(ESTIMATE_ORDER)}
    frame = frame.sort_values(["scenario", "estimate"], key=lambda c: c.map(order if c.name == "scenario" else
                                                                           est_order).fillna(99))
    return frame.reset_index(drop=True)


ESTIMATE_ORDER = ("admissions", "admissions_crude", "admissions_weighted", "admissions_briefing", "bed_days",
                  "bed_days_weighted", "ascot", "ascot_change", "ascot_weighted", "eq5d", "incremental_cost", "balance_flag_old",
                  "balance_flag", "fairness_flag") + tuple(FLAG_TEXT)


def clipped_scale_effect(measure: str, gain: float, draws: int = 2_000_000, seed: int = 1) -> float:
    """The budget's effect on ASCOT or EQ-5D as recorded (clipped to the instrument's range),
    by simulating the generator's survey formula (ipcreport.data.synth, `instrument`) for the same
    people with and without the gain."""
    from ipcreport.data import contract as C
    from ipcreport.data import synth as S

    consts = {"ascot": (S.ASCOT_MEAN, S.ASCOT_SD, S.ASCOT_RHO, S.ASCOT_DRIFT, S.ASCOT_NOISE, C.ASCOT_RANGE),
              "eq5d": (S.EQ5D_MEAN, S.EQ5D_SD, S.EQ5D_RHO, S.EQ5D_DRIFT, S.EQ5D_NOISE, C.EQ5D_RANGE)}[measure]
    mean, sd, rho, drift, noise, bounds = consts
    rng = np.random.default_rng(seed)
    mu = mean[rng.choice(len(mean), size=draws, p=S.COHORT_SHARE)]
    f = mu + rho * sd * rng.standard_normal(draws) + drift + noise * rng.standard_normal(draws)
    return float((np.clip(f + gain, *bounds) - np.clip(f, *bounds)).mean())


def clipping_note(summary: pd.DataFrame) -> str:
    parts = []
    for measure, name in (("ascot", "ASCOT"), ("eq5d", "EQ-5D")):
        gains = sorted({float(t) for t in summary.loc[summary["estimate"].map(base_of) == measure,
                                                      "truth"] if t != 0})
        for g in gains:
            eff = clipped_scale_effect(measure, g)
            parts.append(f"{name} gain {g:g}: {eff:.4f} on the recorded scale (expected bias {eff - g:+.4f})")
    if not parts:
        return ""
    return "Effect on the recorded (clipped) scale: " + "; ".join(parts) + "."


SCENARIO_TEXT = {
    "no_effect": "no effect on anything (admissions_rr 1, bed_days_rr 1, ascot_gain 0, eq5d_gain 0)",
    "effect": "admissions_rr 0.85, bed_days_rr 0.85, ascot_gain 0.04",
    "exits_ipc_half": "the effects above; 30% leave, the frail more (exit probability x frailty), budget holders "
                      "half as often as the comparison group",
    "exits_ipc_double": "the same with budget holders leaving twice as often",
    "bad_year": "no effect; a transient shock to each person's emergency admissions in the year before index "
                "(log-normal, sd 0.4) and enrolment likelier after a bad year (log-odds +1 per unit of the log "
                "shock): regression to the mean",
    "need_trend": "the effects above; budget holders' need x1.3 and need changing the post-index trend of every "
                  "event rate (x exp(0.3 x standardised log need)): confounding that shifts the DiD",
    "need_in_questionnaire": "the effects above; need x1.3 and follow-up ASCOT +0.03 per standardised log need: "
                             "confounding of the change score, which ANCOVA adjusting for need removes",
    "small_site": "the effects above in one site of 300 people",
    "economics": "the effects above with the services table; truth: the expected incremental cost per budget "
                 "holder, NHS and social care perspective (the mean over replicates of the realised cost each "
                 "dataset's truth.json records, economics.incremental_cost)",
    "no_change": f"no site effects and no change: funnels of {FUNNEL_SITES} demo-sized sites "
                 f"({FUNNEL_PEOPLE[0]:,}-{FUNNEL_PEOPLE[1]:,} people) with one true proportion or rate, and SPC "
                 f"charts of {SPC_MONTHS} monthly Poisson counts with a constant mean (no person-level data)",
}
ESTIMATE_TEXT = {
    "admissions": "Admissions IRR, conditional, unweighted",
    "admissions_crude": "Admissions IRR, without person effects",
    "admissions_weighted": "Admissions IRR, conditional, propensity-weighted",
    "admissions_briefing": "Admissions IRR the briefing headlines",
    "bed_days": "Bed-days IRR, conditional, unweighted",
    "bed_days_weighted": "Bed-days IRR, conditional, propensity-weighted (headline)",
    "ascot": "ASCOT, ANCOVA (headline)",
    "ascot_change": "ASCOT, change score",
    "ascot_weighted": "ASCOT, ANCOVA, propensity-weighted",
    "eq5d": "EQ-5D, ANCOVA",
    "incremental_cost": "Incremental cost (GBP), regression-adjusted, bootstrap CI",
}
BRIEFING_USES = {"admissions_briefing", "bed_days_weighted", "ascot", "eq5d", "incremental_cost"}


def _fmt(x: float, ratio: bool) -> str:
    return f"{x:.4f}" if ratio else f"{x:+.4f}"


def markdown(summaries: list[tuple[str, pd.DataFrame]], meta: dict) -> str:
    summary = summaries[0][1]
    lines = [
        "# Validity of the outcome estimators",
        "",
        "Generated by `benchmarks/validity.py`; do not edit by hand. Each replicate is a synthetic dataset "
        "drawn with `ipcreport.data.synth.generate_tables` (the draws `synthesise` writes) and analysed with the "
        "functions the site briefing calls (`ipcreport.analysis.outcomes`, `ipcreport.analysis.economics`). The "
        "truth is read from the generator's truth dict.",
        "",
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}; Python {meta['python']}; {meta['workers']} worker process(es)",
        f"- Replicates per scenario: {meta['replicates']} (economics: at most {MAX_REPLICATES['economics']}, "
        f"each with a bootstrap); people per replicate: {meta['people']:,} (one site, "
        f"about half budget holders; the small-site scenario 300); base seed {meta['seed']}: replicate r of the "
        f"k-th scenario (in the order below) uses seed {meta['seed']} + {SEED_STRIDE:,} k + r",
        f"- Wall time: {meta['seconds']:.0f} s ({meta['per_replicate']:.2f} s per replicate per worker)",
        "",
        "Bias: rate ratios on the log scale, shown as the relative bias of the geometric mean "
        "(exp(mean log IRR) / truth - 1); differences absolute (mean of estimate - truth). Coverage: share "
        "of replicates whose 95% interval contains the truth. Targets: coverage 93% to 97%; |bias| at most 5% "
        "(ratios), 0.005 points (ASCOT, EQ-5D) or GBP 100 (cost). MC SE: Monte Carlo standard errors. "
        "Emp. SD / model SE: spread of the estimates across replicates against the mean standard error the "
        "intervals were built from; near 1 means the intervals have the right width. 'Briefing uses': the "
        "estimator the briefing headlines or, for admissions, the one its sentence tells the reader to believe "
        "(the propensity-weighted conditional estimate wherever it can be fitted, else the unweighted one; "
        "`outcomes.preferred`, replicate by replicate). The targets apply to those rows; the others are "
        "there to show what goes wrong without them.",
        "",
        "Scenarios:",
        "",
    ]
    for s in summary["scenario"].unique():
        lines.append(f"- **{s}**: {SCENARIO_TEXT.get(s, s)}")
    for title, summary in summaries:
        lines += ["", f"## {title}", ""] + table_lines(summary) + [""] + reading(summary)
    lines += ["", NOTES.strip(), "", clipping_note(summaries[0][1]), ""]
    if meta.get("notes"):
        lines += [meta["notes"].strip(), ""]
    return "\n".join(lines)


def reading(summary: pd.DataFrame) -> list[str]:
    """Sentences generated from a summary table: which cells miss a target and by how much
    Monte Carlo error alone could explain it."""
    done = summary[summary["coverage"].notna()]
    both = int((done["bias_ok"] & done["coverage_ok"]).sum())
    out = [f"{both} of {len(done)} scenario x estimate cells meet both targets."]
    for _, r in done[~(done["bias_ok"] & done["coverage_ok"])].iterrows():
        z = (r["coverage"] - 0.95) / math.sqrt(0.95 * 0.05 / r["estimated"])
        what = []
        if not r["coverage_ok"]:
            what.append(f"coverage {r['coverage']:.1%} is {abs(z):.1f} Monte Carlo standard errors "
                        f"{'above' if z > 0 else 'below'} 95%")
        if not r["bias_ok"]:
            what.append(f"bias {r['bias']:+.4f}")
        out.append(f"- {r['scenario']} / {r['estimate']}: " + "; ".join(what) + ".")
    low = done["coverage"].min()
    if len(done):
        pooled = float((done["coverage"] * done["estimated"]).sum() / done["estimated"].sum())
        out.append("")
        out.append(f"Pooled over all cells, coverage is {pooled:.1%} (lowest cell {low:.1%}, highest "
                   f"{done['coverage'].max():.1%}).")
    return out


NOTES = """
## Notes

* **What the estimators are.** Admissions and bed days: difference in differences over 365 days
  before index and up to 365 days from index (cut at exit or the extract date, inclusive), each
  window's time at risk as exposure. Headline: the conditional (person fixed-effect) Poisson
  model, fitted as a binomial of the after-window count out of the person's total with the log
  exposure ratio as offset, robust errors. "Without person effects": a Poisson GLM with
  person-clustered errors (the old headline). "Propensity-weighted": the conditional model with
  ATT weights from a logit propensity model (age, need, prior cost, deprivation, the year-before
  admission rate, baseline ASCOT and EQ-5D, cohort), its interval from a stacked M-estimation
  sandwich that counts the propensity model's estimation. Quality of life: ANCOVA of follow-up on
  baseline, group, age, need and cohort (HC3); the change score: difference in mean change (HC3).
  Cost: budget spend, outside services and hospital cost over the follow-up year, regression-
  adjusted for the treated, percentile bootstrap interval (200 resamples per replicate here).
* **Truth.** `effects.admissions_rr`, `bed_days_rr`, `ascot_gain`; for cost, the expected
  incremental cost: each dataset's truth.json records `economics.incremental_cost`, the realised
  spend of its budget holders in their year plus, in expectation, the services the budget
  replaced and the emergency care it avoided; the realised spend moves with the estimate (which
  contains the same spend), so coverage is judged against its mean over the replicates, the
  expected incremental cost under the generator (its Monte Carlo error is given).
* **Known small biases, from the generator's definition rather than the estimators.**
  Questionnaire scores are clipped to the instrument's range after the gain is added, so the
  effect on the recorded scale is a little smaller than `ascot_gain` (the paragraph below gives
  it, from the generator's own formula).
* **False alarms.** Funnels use `analysis.funnel.funnel` with the additive (random-effects)
  overdispersion allowance the briefing and overview draw; SPC uses `analysis.spc.spc` (XmR with
  the four Making Data Count rules), improvement direction "decrease"; the fairness test is
  `analysis.allocation.equity_model`'s joint F-test on the no_effect datasets, whose budgets
  follow need and cohort only.
"""


def table_lines(summary: pd.DataFrame) -> list[str]:
    lines = [
        "| Scenario | Estimator | Briefing uses | Truth | Mean estimate | Bias (MC SE) | Coverage (MC SE) | "
        "Emp. SD / model SE | Replicates | Meets targets |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for _, r in summary.iterrows():
        if r["estimate"] in FLAG_TEXT:
            continue
        base = base_of(r["estimate"])
        ratio = base in RATIOS
        name = ESTIMATE_TEXT.get(r["estimate"], r["estimate"])
        uses = "yes" if r["estimate"] in BRIEFING_USES else ""
        if r["estimate"] == "admissions_briefing" and pd.notna(r.get("weighted_share")):
            name += f" (weighted in {r['weighted_share']:.0%})"
        if pd.notna(r.get("coverage_realised")):
            name += (f" (truth's MC SE {r['truth_mc_se']:,.0f}; coverage of each dataset's realised cost "
                     f"{r['coverage_realised']:.1%})")
        money = base == "incremental_cost"
        fmt = (lambda x: f"{x:,.0f}") if money else (lambda x: _fmt(x, ratio))
        if pd.isna(r.get("coverage")):
            lines.append(f"| {r['scenario']} | {name} | {uses} | {fmt(r['truth'])} | no estimate | | | | "
                         f"0 of {r['replicates']} | no |")
            continue
        bias = (f"{r['bias']:+.2%} ({r['bias_mc_se']:.2%})" if ratio else f"{r['bias']:+,.0f} ({r['bias_mc_se']:,.0f})"
                if money else f"{r['bias']:+.4f} ({r['bias_mc_se']:.4f})")
        verdict = "yes" if r["bias_ok"] and r["coverage_ok"] else (
            "bias" if not r["bias_ok"] and r["coverage_ok"] else "coverage" if r["bias_ok"] else "bias, coverage")
        lines.append(
            f"| {r['scenario']} | {name} | {uses} | {fmt(r['truth'])} | {fmt(r['mean_estimate'])} | {bias} | "
            f"{r['coverage']:.1%} ({r['coverage_mc_se']:.1%}) | {r['empirical_sd'] / r['mean_model_se']:.2f} | "
            f"{r['estimated']} of {r['replicates']} | {verdict} |")
    flags = summary[summary["estimate"].isin(list(FLAG_TEXT))]
    if len(flags):
        lines += ["", "### False alarms under no effect", "",
                  "Share of sites, datasets or series flagged where nothing differs (balance and fairness: the "
                  "no_effect datasets; funnels and SPC: the no_change scenario), against what chance alone "
                  "should give.", "", "| Flag | False alarms (MC SE) | Nominal | Replicates |", "|---|---:|---|---:|"]
        for _, r in flags.iterrows():
            what, nominal = FLAG_TEXT[r["estimate"]]
            lines.append(f"| {what} | {r['false_alarm']:.1%} ({r['false_alarm_mc_se']:.1%}) | {nominal} | "
                         f"{r['estimated']} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20240)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--out", type=Path, default=None, help="markdown file for the table (e.g. docs/validity.md)")
    parser.add_argument("--subset", type=int, default=None,
                        help="also tabulate the first N replicates (identical to a --replicates N run)")
    parser.add_argument("--rows", type=Path, default=None, help="optional CSV of every replicate's estimates")
    parser.add_argument("--notes", type=Path, default=None, help="optional markdown appended below the table")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    rows = run(args.scenarios, args.replicates, args.people, args.seed, args.workers)
    seconds = time.perf_counter() - start
    n_rep = len(tasks(args.scenarios, args.replicates, args.people, args.seed, False))
    print(f"{n_rep} replicates of {args.people:,} people in {seconds:.1f} s on {args.workers} workers "
          f"({seconds * args.workers / n_rep:.2f} s per replicate per worker)")
    summaries = [(f"All {args.replicates} replicates per scenario", summarise(rows))]
    if args.subset and args.subset < args.replicates:
        summaries.append((f"The first {args.subset} replicates per scenario (what `--replicates {args.subset}` "
                          "gives)", summarise(rows[rows["replicate"] < args.subset])))
    for title, summary in summaries:
        print(title)
        with pd.option_context("display.width", 220, "display.max_columns", 30):
            cols = [c for c in ("scenario", "estimate", "truth", "mean_estimate", "bias", "coverage", "coverage_mc_se",
                                "empirical_sd", "mean_model_se", "bias_ok", "coverage_ok", "false_alarm")
                    if c in summary.columns]
            print(summary[cols].round(4).to_string(index=False))
    if args.rows:
        rows.to_csv(args.rows, index=False)
    if args.out:
        command = "python benchmarks/validity.py " + " ".join(argv if argv is not None else sys.argv[1:])
        meta = {"command": command.strip(), "date": dt.date.today().isoformat(), "python": platform.python_version(),
                "workers": args.workers, "replicates": args.replicates, "people": args.people, "seed": args.seed,
                "seconds": seconds, "per_replicate": seconds * args.workers / n_rep,
                "notes": args.notes.read_text(encoding="utf-8") if args.notes else ""}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown(summaries, meta), encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Validity study: do the outcome estimators recover the effects the synthetic generator put in?

For each scenario, many synthetic datasets are drawn in memory (``ipcreport.synth.generate_tables``,
the same draws ``synthesise`` writes) and the headline estimators of
``ipcreport.analysis.outcomes`` are run on each exactly as a site briefing runs them
(``headline_estimates``). Per scenario and estimate we report the truth (read from the
generator's truth dict), the mean estimate, bias and the coverage of the 95% intervals.

Bias: for rate ratios on the log scale, reported as a relative bias of the geometric mean,
exp(mean(log IRR)) / truth - 1; for ASCOT and EQ-5D differences, absolute (mean - truth).
Targets: coverage 93-97%, |relative bias| <= 5% for ratios, |bias| <= 0.005 for differences.

Usage::

    python benchmarks/validity.py --replicates 200 --people 4000 --seed 20240 --out docs/validity.md

Runs on ``--workers`` processes (default 2) and prints timings.
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

from ipcreport.analysis import outcomes as O  # noqa: E402
from ipcreport.synth import SynthConfig, generate_tables  # noqa: E402

# The four scenarios of the brief. Effects not named keep the value given here explicitly so
# a change of SynthConfig's defaults cannot silently change a scenario.
NULL = dict(admissions_rr=1.0, bed_days_rr=1.0, ascot_gain=0.0, eq5d_gain=0.0, baseline_need_imbalance=0.0)
SCENARIOS: dict[str, dict] = {
    "no_effect": dict(NULL),
    "admissions_rr_0.8": {**NULL, "admissions_rr": 0.8, "bed_days_rr": 0.8},
    "ascot_gain_0.04": {**NULL, "ascot_gain": 0.04},
    "need_imbalance_0.3": {**NULL, "baseline_need_imbalance": 0.3, "admissions_rr": 0.85, "bed_days_rr": 0.75,
                           "ascot_gain": 0.04, "eq5d_gain": 0.02},
}
# Scenarios where the propensity-weighted estimates are reported beside the crude ones.
WEIGHTED_IN = ("need_imbalance_0.3",)

ESTIMATES = ("admissions", "bed_days", "ascot", "eq5d")
RATIOS = ("admissions", "bed_days", "ae_attendances")
RATIO_BIAS_TOLERANCE = 0.05  # relative, on the geometric mean
DIFF_BIAS_TOLERANCE = 0.005  # absolute, ASCOT and EQ-5D points
COVERAGE_RANGE = (0.93, 0.97)


def truth_of(truth: dict, estimate: str) -> float:
    """The true value of an estimate, from the generator's truth dict."""
    e = truth["effects"]
    base = estimate.removesuffix("_weighted")
    if base == "admissions":
        return float(e["admissions_rr"])
    if base == "bed_days":
        return float(e["bed_days_rr"])
    if base == "ascot":
        return float(e["ascot_gain"])
    if base == "eq5d":
        return float(e["eq5d_gain"])
    if base == "ae_attendances":
        # The generator multiplies every non-emergency rate after index by secular_trend in
        # both groups (truth.json "notes"), so the DiD ratio for A&E is 1 by construction.
        return 1.0
    raise KeyError(estimate)


def replicate(task: tuple[str, int, int, int, bool]) -> list[dict]:
    """One synthetic dataset, all estimates. The unit of work a worker runs."""
    scenario, rep, people, seed, extra = task
    config = SynthConfig(sites=3, people=people, seed=seed, **SCENARIOS[scenario])
    tables, truth = generate_tables(config)
    p, ev, sv = tables["people"], tables["events"], tables["surveys"]
    extract = pd.Timestamp(config.extract_date)
    keys = ESTIMATES + (("ae_attendances",) if extra else ())
    panels: dict = {}
    found = dict(O.headline_estimates(p, ev, sv, extract, outcomes=keys, panels=panels))
    if scenario in WEIGHTED_IN:
        weights = O.propensity_model(O.person_covariates(p, ev, sv))
        if weights is not None:
            weighted = O.headline_estimates(p, ev, sv, extract, weights=weights, panels=panels)
            found.update({f"{k}_weighted": v for k, v in weighted.items()})
    rows = []
    for key, est in found.items():
        rows.append({"scenario": scenario, "replicate": rep, "seed": seed, "estimate": key,
                     "truth": truth_of(truth, key), "value": est.value, "low": est.low, "high": est.high,
                     "n": est.n, "reason": est.reason})
    return rows


def tasks(scenarios: list[str], replicates: int, people: int, seed: int, extra: bool) -> list[tuple]:
    # Replicate r of the k-th scenario (in SCENARIOS order) uses seed + SEED_STRIDE * k + r:
    # independent data across scenarios, and a scenario's data do not depend on which other
    # scenarios run with it; the first R replicates of a longer run are an R-replicate run.
    return [(s, r, people, scenario_seed(s, seed) + r, extra) for s in scenarios for r in range(replicates)]


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


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per scenario x estimate: truth, mean estimate, bias, coverage, Monte Carlo error, verdict."""
    out = []
    for (scenario, estimate), g in rows.groupby(["scenario", "estimate"], sort=False):
        truth = float(g["truth"].iloc[0])
        ok = g[g["value"].notna()]
        r = len(ok)
        base = estimate.removesuffix("_weighted")
        ratio = base in RATIOS
        row = {"scenario": scenario, "estimate": estimate, "truth": truth, "replicates": len(g), "estimated": r}
        if r == 0:
            out.append(row)
            continue
        v, lo, hi = (ok[c].to_numpy(dtype=float) for c in ("value", "low", "high"))
        covered = (lo <= truth) & (truth <= hi)
        cov = float(covered.mean())
        if ratio:
            logs = np.log(v)
            mean_est = float(np.exp(logs.mean()))
            bias = mean_est / truth - 1
            emp_sd = float(logs.std(ddof=1))
            model_se = float(np.mean((np.log(hi) - np.log(lo)) / (2 * O.Z95)))
            bias_ok = abs(bias) <= RATIO_BIAS_TOLERANCE
        else:
            mean_est = float(v.mean())
            bias = mean_est - truth
            emp_sd = float(v.std(ddof=1))
            model_se = float(np.mean((hi - lo) / (2 * O.Z95)))
            bias_ok = abs(bias) <= DIFF_BIAS_TOLERANCE
        row.update({
            "bias_scale": "relative (log)" if ratio else "absolute",
            "mean_estimate": mean_est,
            "bias": float(bias),
            "bias_mc_se": float(emp_sd / math.sqrt(r) * (mean_est / truth if ratio else 1.0)),
            "coverage": cov,
            "coverage_mc_se": float(math.sqrt(max(cov * (1 - cov), 1e-12) / r)),
            "empirical_sd": emp_sd,
            "mean_model_se": model_se,
            "below": float((hi < truth).mean()),
            "above": float((lo > truth).mean()),
            "bias_ok": bool(bias_ok),
            "coverage_ok": bool(COVERAGE_RANGE[0] <= cov <= COVERAGE_RANGE[1]),
        })
        out.append(row)
    frame = pd.DataFrame(out)
    order = {name: i for i, name in enumerate(SCENARIOS)}
    est_order = {name: i for i, name in enumerate(ESTIMATE_ORDER)}
    frame = frame.sort_values(["scenario", "estimate"], key=lambda c: c.map(order if c.name == "scenario" else
                                                                           est_order).fillna(99))
    return frame.reset_index(drop=True)


ESTIMATE_ORDER = ("admissions", "bed_days", "ae_attendances", "ascot", "eq5d", "admissions_weighted",
                  "bed_days_weighted", "ascot_weighted", "eq5d_weighted")


def clipped_scale_effect(measure: str, gain: float, draws: int = 2_000_000, seed: int = 1) -> float:
    """The budget's effect on ASCOT or EQ-5D as recorded (clipped to the instrument's range),
    by simulating the generator's survey formula (ipcreport.synth, `instrument`) for the same
    people with and without the gain."""
    from ipcreport import contract as C
    from ipcreport import synth as S

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
        gains = sorted({float(t) for t in summary.loc[summary["estimate"].str.removesuffix("_weighted") == measure,
                                                      "truth"] if t != 0})
        for g in gains:
            eff = clipped_scale_effect(measure, g)
            parts.append(f"{name} gain {g:g}: {eff:.4f} on the recorded scale (expected bias {eff - g:+.4f})")
    if not parts:
        return ""
    return "Effect on the recorded (clipped) scale: " + "; ".join(parts) + "."


SCENARIO_TEXT = {
    "no_effect": "admissions_rr 1, bed_days_rr 1, ascot_gain 0, eq5d_gain 0",
    "admissions_rr_0.8": "admissions_rr 0.8, bed_days_rr 0.8 (same length of stay), no quality-of-life effect",
    "ascot_gain_0.04": "ascot_gain 0.04, no other effect",
    "need_imbalance_0.3": "baseline_need_imbalance 0.3 (budget holders' need x1.3), admissions_rr 0.85, "
                          "bed_days_rr 0.75, ascot_gain 0.04, eq5d_gain 0.02",
}
ESTIMATE_TEXT = {
    "admissions": "Emergency admissions IRR",
    "bed_days": "Emergency bed-days IRR",
    "ae_attendances": "A&E attendances IRR (extra check)",
    "ascot": "ASCOT adjusted difference",
    "eq5d": "EQ-5D adjusted difference",
}


def _fmt(x: float, ratio: bool) -> str:
    return f"{x:.4f}" if ratio else f"{x:+.4f}"


def markdown(summaries: list[tuple[str, pd.DataFrame]], meta: dict) -> str:
    summary = summaries[0][1]
    lines = [
        "# Validity of the outcome estimators",
        "",
        "Generated by `benchmarks/validity.py`; do not edit by hand. Each replicate is a synthetic dataset "
        "drawn with `ipcreport.synth.generate_tables` (the draws `synthesise` writes) and analysed with "
        "`ipcreport.analysis.outcomes.headline_estimates`, the code path the site briefing uses. The truth "
        "is read from the generator's truth dict (`effects`).",
        "",
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}; Python {meta['python']}; {meta['workers']} worker processes",
        f"- Replicates per scenario: {meta['replicates']}; people per replicate: {meta['people']:,} "
        f"(3 sites, about half budget holders); base seed {meta['seed']}: replicate r of the k-th scenario "
        f"(k = 0..3 in the order below) uses seed {meta['seed']} + {SEED_STRIDE:,} k + r",
        f"- Wall time: {meta['seconds']:.0f} s ({meta['per_replicate']:.2f} s per replicate per worker)",
        "",
        "Bias: rate ratios on the log scale, shown as the relative bias of the geometric mean "
        "(exp(mean log IRR) / truth - 1); quality-of-life differences absolute (mean - truth). Coverage: share "
        "of replicates whose 95% interval contains the truth. Targets: coverage 93% to 97%; |bias| at most 5% "
        "(ratios) or 0.005 points (ASCOT, EQ-5D). MC SE: Monte Carlo standard error of the coverage "
        "(with 200 replicates about 1.5 percentage points, so a correct 95% interval lands outside 93-97% "
        "about one time in five by chance). Emp. SD / model SE: spread of the estimates across replicates "
        "against the mean standard error the intervals were built from (log scale for ratios); near 1 means "
        "the intervals have the right width.",
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

* **What the estimators are.** Rate ratios: Poisson GLM difference in differences (after x ipc
  interaction), log person-years offset, person-clustered sandwich errors, windows of 365 days
  before index and up to 365 days from index (cut at exit or the extract date, both inclusive),
  matching the generator's event windows (events cover exactly the 365 days before index; after
  index they run to exit or extract, inclusive). Quality of life: ANCOVA of follow-up on
  baseline, group, age, need and cohort, HC3 errors. Propensity-weighted rows: ATT weights from a
  logit propensity model, with a stacked M-estimation sandwich that accounts for the model's
  estimation (treating the weights as known made the admissions interval about 25% too wide:
  98.5% coverage in a pilot run).
* **Truth.** Read from `truth["effects"]`: `admissions_rr`, `bed_days_rr`, `ascot_gain`,
  `eq5d_gain`. The generator applies the rate ratio to budget holders' post-index rates and the
  secular trend (1.05) to both groups, so the DiD rate ratio's expectation is the parameter;
  the need imbalance scales a person's rates by the same factor before and after index, so it
  cancels in the DiD. The A&E row is an extra check: the generator leaves non-emergency rates
  untouched by the budget (only the secular trend), so its truth is 1.
* **Known small biases, from the generator's definition rather than the estimators.**
  Questionnaire scores are clipped to the instrument's range *after* the gain is added, so the
  effect on the scores as recorded is a little smaller than the `ascot_gain` / `eq5d_gain`
  parameter (truth.json's note says as much: "less a little from clipping"). The paragraph
  below gives the effect on the recorded scale, computed from the generator's own survey
  formula and constants; the small negative biases of the quality-of-life rows match it, so
  the ANCOVA is unbiased for what the data can show.
* **Monte Carlo error.** With R replicates the coverage estimate has standard error
  sqrt(0.95 x 0.05 / R): 1.5 points at 200, 0.7 at 1,000. At 200 replicates a correct interval
  falls outside 93-97% in about one cell in five, so a miss there is read against the
  1,000-replicate table and the Emp. SD / model SE column before it is called a failure.
"""


def table_lines(summary: pd.DataFrame) -> list[str]:
    lines = [
        "| Scenario | Estimate | Truth | Mean estimate | Bias | Coverage (MC SE) | Emp. SD / model SE | "
        "Replicates | Meets targets |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for _, r in summary.iterrows():
        base = r["estimate"].removesuffix("_weighted")
        ratio = base in RATIOS
        name = ESTIMATE_TEXT.get(base, base) + (", propensity-weighted" if r["estimate"].endswith("_weighted") else "")
        if pd.isna(r.get("coverage")):
            lines.append(f"| {r['scenario']} | {name} | {_fmt(r['truth'], ratio)} | no estimate | | | | "
                         f"0 of {r['replicates']} | no |")
            continue
        bias = f"{r['bias']:+.2%}" if ratio else f"{r['bias']:+.4f}"
        verdict = "yes" if r["bias_ok"] and r["coverage_ok"] else (
            "bias" if not r["bias_ok"] and r["coverage_ok"] else "coverage" if r["bias_ok"] else "bias, coverage")
        lines.append(
            f"| {r['scenario']} | {name} | {_fmt(r['truth'], ratio)} | {_fmt(r['mean_estimate'], ratio)} | {bias} | "
            f"{r['coverage']:.1%} ({r['coverage_mc_se']:.1%}) | {r['empirical_sd'] / r['mean_model_se']:.2f} | "
            f"{r['estimated']} of {r['replicates']} | {verdict} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--people", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=20240)
    parser.add_argument("--workers", type=int, default=2)
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
    n_rep = args.replicates * len(args.scenarios)
    print(f"{n_rep} replicates of {args.people:,} people in {seconds:.1f} s on {args.workers} workers "
          f"({seconds * args.workers / n_rep:.2f} s per replicate per worker)")
    summaries = [(f"All {args.replicates} replicates per scenario", summarise(rows))]
    if args.subset and args.subset < args.replicates:
        summaries.append((f"The first {args.subset} replicates per scenario (what `--replicates {args.subset}` "
                          "gives)", summarise(rows[rows["replicate"] < args.subset])))
    for title, summary in summaries:
        print(title)
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(summary[["scenario", "estimate", "truth", "mean_estimate", "bias", "coverage", "coverage_mc_se",
                           "empirical_sd", "mean_model_se", "below", "above", "bias_ok", "coverage_ok"]]
                  .round(4).to_string(index=False))
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

"""Benchmark: the overspend simulation for one site, vectorised against a naive loop.

The naive way simulates each draw in Python: draw the pace, the mean budget and the use,
then add up one simulated spend per budget holder. The package draws all 10,000 years at once
and replaces the per-holder sum by its exact normal distribution (central limit theorem).

    .venv/bin/python benchmarks/overspend.py [--dataset data/demo] [--draws 10000]

Prints the seconds of each and their ratio, measured in this one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ipcreport.analysis import allocation as A
from ipcreport.analysis import risk as R
from ipcreport.dataset import load_site


def naive(inputs: R.SpendInputs, a: R.RiskAssumptions) -> np.ndarray:
    rng = np.random.default_rng(a.seed)
    out = []
    for _ in range(a.draws):
        growth = rng.normal(a.enrolment_growth, a.enrolment_growth_sd)
        budget = rng.normal(inputs.mean_budget, inputs.se_mean_budget)
        use = rng.normal(inputs.utilisation, inputs.se_utilisation)
        holders = int(round(inputs.holders_now * (1 + growth)))
        total = 0.0
        for _ in range(holders):
            total += budget * use + rng.normal(0, inputs.sd_person_spend)
        out.append(total)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="data/demo")
    parser.add_argument("--draws", type=int, default=10_000)
    args = parser.parse_args()
    data = load_site(args.dataset)
    per_period = A.utilisation(data["budgets"], data["spend"], data.extract_date)
    holders = int(A.budgets_in_window(data["budgets"], A.Window(data.extract_date, data.extract_date))["person_id"].nunique())
    a = R.RiskAssumptions(draws=args.draws)

    start = time.perf_counter()
    result = R.overspend(per_period, holders, a)
    fast = time.perf_counter() - start
    start = time.perf_counter()
    slow_draws = naive(result.inputs, a)
    slow = time.perf_counter() - start

    print(f"site {data.site_code}: {holders} budget holders, {len(per_period)} completed periods, {args.draws:,} draws")
    print(f"vectorised simulation: {fast:.4f} s  (target: under 1 s)")
    print(f"naive loop:            {slow:.2f} s")
    print(f"ratio naive / vectorised: {slow / fast:,.0f}x")
    print(f"same answer: P(overspend) {result.probability:.3f} vectorised vs "
          f"{(slow_draws > result.pooled_budget).mean():.3f} naive; "
          f"p95 {result.p95:,.0f} vs {np.quantile(slow_draws, 0.95):,.0f}")


if __name__ == "__main__":
    main()

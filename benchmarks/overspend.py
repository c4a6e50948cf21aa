"""Benchmark: the overspend simulation for one site, vectorised against a naive loop.

The naive way simulates each year in Python, person by person: each holder's exit, renewal
and use, then each starter's arrival, budget and use. The package draws all 10,000 years at
once and replaces the sums over people by their normal distributions (central limit theorem),
with the exit moments in closed form.

    .venv/bin/python benchmarks/overspend.py [--dataset data/demo] [--draws 10000]

Prints the seconds of each and their ratio, measured in this one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ipcreport.analysis import allocation as A
from ipcreport.analysis import risk as R
from ipcreport.data.dataset import load_site


def holders_money(data) -> tuple[np.ndarray, np.ndarray]:
    """Each live holder's daily budget and days left in their period (what the naive loop walks)."""
    b = data["budgets"]
    people = data["people"]
    staying = people.loc[people["exit_date"].isna(), "person_id"]
    live = b[(b["period_start"] <= data.extract_date) & (b["period_end"] >= data.extract_date) & b["person_id"].isin(staying)]
    daily = live["agreed_budget"].to_numpy(float) / ((live["period_end"] - live["period_start"]).dt.days + 1).to_numpy(float)
    remaining = np.minimum((live["period_end"] - data.extract_date).dt.days.to_numpy(float), 365)
    return daily, remaining


def naive(inputs: R.SpendInputs, a: R.RiskAssumptions, daily: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """Each simulated year person by person in Python: exits, renewals, use, starters."""
    rng = np.random.default_rng(a.seed)
    out = []
    for _ in range(a.draws):
        growth = rng.normal(a.enrolment_growth, a.enrolment_growth_sd)
        hazard = rng.gamma(inputs.exits + 0.5, 1 / inputs.holder_years)
        use = rng.normal(inputs.utilisation, inputs.se_utilisation)
        new_mean = rng.normal(inputs.new_budget_mean, inputs.se_new_budget_mean)
        uplift = rng.normal(a.price_uplift, a.price_uplift_sd)
        total = 0.0
        for rate, left in zip(daily, remaining):
            days = min(rng.exponential(1 / hazard), 1.0) * 365
            money = rate * (min(days, left) + max(days - left, 0.0) * (1 + uplift))
            total += money * rng.normal(use, inputs.sd_person_utilisation)
        for _ in range(rng.poisson(inputs.holders_now * max(growth + 1 - np.exp(-hazard), 0.0))):
            held = min(1 - rng.random(), rng.exponential(1 / hazard))
            shape = (new_mean / inputs.sd_new_budget) ** 2  # budgets are positive and skewed: gamma
            budget = rng.gamma(shape, new_mean / shape) * (1 + uplift)
            total += budget * held * rng.normal(use, inputs.sd_person_utilisation)
        out.append(total)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="data/demo")
    parser.add_argument("--draws", type=int, default=10_000)
    args = parser.parse_args()
    data = load_site(args.dataset)
    window = A.Window.ending(data.extract_date)
    per_period = A.utilisation(data["budgets"], data["spend"], data.extract_date, data["people"])
    inputs = R.SpendInputs.from_site(data["people"], data["budgets"], per_period, data.extract_date, window)
    a = R.RiskAssumptions(draws=args.draws)

    start = time.perf_counter()
    result = R.overspend(inputs, a, pooled_fund=None)
    fast = time.perf_counter() - start
    start = time.perf_counter()
    slow_draws = naive(inputs, a, *holders_money(data))
    slow = time.perf_counter() - start

    print(f"site {data.site_code}: {inputs.holders_now} budget holders, {args.draws:,} draws")
    print(f"vectorised simulation: {fast:.4f} s  (target: under 1 s)")
    print(f"naive loop:            {slow:.2f} s")
    print(f"ratio naive / vectorised: {slow / fast:,.0f}x")
    print(f"same answer: median {result.forecast:,.0f} vs {np.median(slow_draws):,.0f}; "
          f"p05 {result.p05:,.0f} vs {np.quantile(slow_draws, 0.05):,.0f}; "
          f"p95 {result.p95:,.0f} vs {np.quantile(slow_draws, 0.95):,.0f}")


if __name__ == "__main__":
    main()

"""Budget holders' money: the budgets table (one row per holder and 365-day period, split by
funder) and the spend table (monthly spend by category, with refunds of unspent direct-payment
money), written in blocks of holders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .. import contract as C
from .arrays import _dates, _gbp, _month_of, _month_start, _pennies, _rng, _segments, _vocab
from .params import (
    _S_BUDGETS,
    _S_SPEND,
    AGREED_NOISE_SIGMA,
    CATEGORY_WEIGHTS,
    DIRECT_PAYMENT,
    FOLLOW_UP_DAYS,
    FUNDING_CONCENTRATION,
    FUNDING_MEAN,
    N_CATEGORIES_P,
    PERIOD_DAYS,
    RAS_RATE,
    REFUND_FRACTION,
    REFUND_PROBABILITY,
    SPEND_CHUNK_HOLDERS,
    SPEND_NOISE_SIGMA,
    UTILISATION_BETA,
    SynthConfig,
)
from .people import People


@dataclass
class Budgets:
    holders: np.ndarray  # person numbers of budget holders
    indicative_p: np.ndarray  # per holder, pennies a year
    holder_education: np.ndarray  # education's share of each holder's budget money
    # per period (one row of the budgets table each)
    p_holder: np.ndarray
    p_person: np.ndarray
    p_start: np.ndarray
    p_end: np.ndarray
    p_indicative: np.ndarray
    p_agreed: np.ndarray
    n_periods: np.ndarray  # per holder


@dataclass
class Spend:
    rows: int
    p_completed: np.ndarray  # period ended by the extract date
    p_spend_net: np.ndarray
    p_spend_gross: np.ndarray
    p_refunded: np.ndarray
    in_follow_up_year: np.ndarray  # pennies of net spend in months starting in each holder's first year


def draw_budgets(sink, cfg: SynthConfig, people: People) -> Budgets:
    """One period per 365 days from index while observed; agreed = indicative with noise, split
    between funders by a Dirichlet share per holder. Writes the budgets table."""
    rng = _rng(cfg.seed, _S_BUDGETS)
    holders = np.flatnonzero(people.ipc)
    h_cohort = people.cohort[holders]
    index, exit_day = people.index, people.exit_day
    n_periods = (exit_day[holders] - index[holders]) // PERIOD_DAYS + 1  # start <= min(extract, exit)
    p_holder, p_k = _segments(n_periods)  # period -> holder position, period number
    p_person = holders[p_holder]
    p_start = index[p_person] + PERIOD_DAYS * p_k
    p_end = p_start + PERIOD_DAYS - 1
    indicative_p = _pennies(RAS_RATE[h_cohort] * people.need[holders])  # per holder, every period
    p_indicative = indicative_p[p_holder]
    p_agreed = np.rint(p_indicative * np.exp(AGREED_NOISE_SIGMA * rng.standard_normal(len(p_person)))).astype(np.int64)
    alpha = FUNDING_CONCENTRATION * FUNDING_MEAN[h_cohort]
    gam = rng.standard_gamma(np.where(alpha > 0, alpha, 1.0)) * (alpha > 0)
    share = gam / gam.sum(axis=1, keepdims=True)
    p_share = share[p_holder]
    funded = np.floor(p_agreed[:, None] * p_share).astype(np.int64)
    remainder = p_agreed - funded.sum(axis=1)  # pennies; goes to the largest component
    funded[np.arange(len(p_agreed)), np.argmax(p_share, axis=1)] += remainder
    budgets_table = sink.table("budgets")
    budgets_table.write(
        {
            "person_id": people.person_id.take(pa.array(p_person)),
            "period_start": _dates(p_start),
            "period_end": _dates(p_end),
            "indicative_budget": _gbp(p_indicative),
            "agreed_budget": _gbp(p_agreed),
            "funded_nhs": _gbp(funded[:, 0]),
            "funded_social_care": _gbp(funded[:, 1]),
            "funded_education": _gbp(funded[:, 2]),
        }
    )
    budgets_table.close()
    # education's share of each holder's budget money (value for money counts it apart)
    holder_education = np.bincount(p_holder, weights=funded[:, 2], minlength=len(holders)) / np.maximum(
        np.bincount(p_holder, weights=p_agreed, minlength=len(holders)), 1)
    return Budgets(holders=holders, indicative_p=indicative_p, holder_education=holder_education, p_holder=p_holder,
                   p_person=p_person, p_start=p_start, p_end=p_end, p_indicative=p_indicative, p_agreed=p_agreed,
                   n_periods=n_periods)


def draw_spend(sink, cfg: SynthConfig, extract: int, people: People, budgets: Budgets) -> Spend:
    """Monthly spend in 1-4 categories per holder, a utilisation per holder and noise per month;
    a direct-payment period observed to its end may close with a refund. Writes the spend table
    in blocks of SPEND_CHUNK_HOLDERS holders."""
    rng = _rng(cfg.seed, _S_SPEND)
    holders, p_holder, p_person = budgets.holders, budgets.p_holder, budgets.p_person
    p_start, p_end, p_agreed = budgets.p_start, budgets.p_end, budgets.p_agreed
    index, exit_day = people.index, people.exit_day
    h_cohort = people.cohort[holders]
    n_h = len(holders)
    n_cat = rng.choice(np.arange(1, 5), size=n_h, p=N_CATEGORIES_P)
    keys = np.log(CATEGORY_WEIGHTS[h_cohort]) + rng.gumbel(size=(n_h, len(C.SPEND_CATEGORIES)))
    top = np.argsort(-keys, axis=1, kind="stable")[:, :4].astype(np.int8)  # weighted, without replacement
    del keys
    slot = np.arange(4)[None, :]
    cats = np.sort(np.where(slot < n_cat[:, None], top, 99), axis=1)  # chosen ones first, ascending
    cat_gam = rng.standard_gamma(2.0, size=(n_h, 4)) * (slot < n_cat[:, None])
    cat_share = cat_gam / cat_gam.sum(axis=1, keepdims=True)
    utilisation = rng.beta(*UTILISATION_BETA, size=n_h)
    is_dp = people.management[holders] == DIRECT_PAYMENT

    first_month = _month_of(p_start) + (_month_start(_month_of(p_start)) != p_start)
    limit = np.minimum(p_end, exit_day[p_person])  # exit_day is extract for those who stayed
    p_months = np.maximum(_month_of(limit) - first_month + 1, 0)
    p_full_months = _month_of(p_end) - first_month + 1  # the budget is spread over these
    p_completed = p_end <= extract
    p_spend_net = np.zeros(len(p_person), dtype=np.int64)
    p_spend_gross = np.zeros(len(p_person), dtype=np.int64)
    p_refunded = np.zeros(len(p_person), dtype=bool)

    spend_table = sink.table("spend")
    spend_in_follow_up_year = np.zeros(n_h)  # pennies of net spend in months starting in each holder's first year
    period_of_holder_start = np.cumsum(budgets.n_periods) - budgets.n_periods
    for lo in range(0, n_h, SPEND_CHUNK_HOLDERS):
        hi = min(lo + SPEND_CHUNK_HOLDERS, n_h)
        plo, phi = period_of_holder_start[lo], (period_of_holder_start[hi] if hi < n_h else len(p_person))
        pidx = np.arange(plo, phi)
        holder = p_holder[pidx]
        rows_per = p_months[pidx] * n_cat[holder]
        seg, pos = _segments(rows_per)
        r_period = pidx[seg]
        r_holder = holder[seg]
        if len(seg) == 0:
            continue
        r_slot = pos % n_cat[r_holder]
        r_month = first_month[r_period] + pos // n_cat[r_holder]
        mean = p_agreed[r_period] / p_full_months[r_period] * utilisation[r_holder] * cat_share[r_holder, r_slot]
        noise = np.exp(SPEND_NOISE_SIGMA * rng.standard_normal(len(seg)) - SPEND_NOISE_SIGMA**2 / 2)
        amount = np.minimum(_pennies(mean * noise / 100.0), (C.MAX_SPEND_AMOUNT_GBP - 1) * 100)
        gross = np.bincount(seg, weights=amount, minlength=len(pidx)).astype(np.int64)
        # recovered unspent money: direct payments, completed periods observed to their end
        lucky = rng.random(len(pidx)) < REFUND_PROBABILITY
        refund = is_dp[holder] & p_completed[pidx] & (limit[pidx] == p_end[pidx]) & (rows_per > 0) & lucky
        first_row = np.cumsum(rows_per) - rows_per
        last_month_row = first_row + (p_months[pidx] - 1) * n_cat[holder]  # slot 0 of the last month
        fraction = rng.uniform(*REFUND_FRACTION, size=len(pidx))
        unspent = p_agreed[pidx] - (gross - amount[np.where(rows_per > 0, last_month_row, 0)])
        recovered = np.rint(np.maximum(unspent, 0) * fraction).astype(np.int64)
        refund &= recovered > 0
        amount[last_month_row[refund]] = -recovered[refund]
        p_spend_gross[pidx] = gross
        p_spend_net[pidx] = np.bincount(seg, weights=amount, minlength=len(pidx)).astype(np.int64)
        p_refunded[pidx] = refund
        r_person, r_start = holders[r_holder], _month_start(r_month)
        year_end = np.minimum(index[r_person] + FOLLOW_UP_DAYS - 1, exit_day[r_person])
        in_year = (r_start >= index[r_person]) & (r_start <= year_end)
        spend_in_follow_up_year += np.bincount(r_holder[in_year], weights=amount[in_year], minlength=n_h)
        spend_table.write(
            {
                "person_id": people.person_id.take(pa.array(holders[r_holder])),
                "month": _dates(_month_start(r_month)),
                "category": _vocab(C.SPEND_CATEGORIES, cats[r_holder, r_slot]),
                "amount": _gbp(amount),
            }
        )
    spend_table.close()
    return Spend(rows=spend_table.rows, p_completed=p_completed, p_spend_net=p_spend_net, p_spend_gross=p_spend_gross,
                 p_refunded=p_refunded, in_follow_up_year=spend_in_follow_up_year)

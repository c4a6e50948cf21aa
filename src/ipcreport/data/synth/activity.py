"""Hospital and care activity: the events table (everyone, the 365 days before index to the end
of observation), drawn as Poisson counts per person, type and period, in blocks of people; the
emergency-admission totals the truth needs are tallied on the way."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .. import contract as C
from .arrays import _dates, _pennies, _rng, _segments, _vocab
from .params import (
    _S_EVENTS,
    ELECTIVE,
    ELECTIVE_LOS_MEAN,
    ELECTIVE_LOS_SHAPE,
    EMERGENCY,
    EMERGENCY_LOS_MEAN,
    EMERGENCY_LOS_SHAPE,
    EVENT_COST_FIXED,
    EVENT_COST_PER_BED_DAY,
    EVENT_COST_SIGMA,
    EVENT_RATE,
    EVENTS_CHUNK_PEOPLE,
    NEED_MEDIAN,
    NEED_RATE_POWER,
    NEED_SIGMA,
    PRE_INDEX_DAYS,
    SECULAR_TREND,
    SynthConfig,
)
from .people import People


@dataclass
class Activity:
    rows: int
    rate_factor: np.ndarray  # each person's multiplier of the cohort's base rates after index (truth)
    los_scale: float  # budget holders' emergency length of stay after index, x
    # [group ipc=0/comparison=1, pre=0/post=1]
    emerg_count: np.ndarray
    emerg_beds: np.ndarray
    person_years: np.ndarray
    counts_by_type: np.ndarray


def draw_events(sink, cfg: SynthConfig, people: People) -> Activity:
    """Rates = cohort base x frailty x need; after index x secular trend (x admissions_rr for
    budget holders' emergency admissions); lengths of stay and costs per event. Writes the
    events table sorted by person, date and type within each block."""
    rng = _rng(cfg.seed, _S_EVENTS)
    n = cfg.people
    cohort, ipc, index, need = people.cohort, people.ipc, people.index, people.need
    trend = np.exp(cfg.need_trend * people.z_need_std - cfg.need_trend**2 / 2)  # need changes the post-index trend
    need_factor = (need / NEED_MEDIAN[cohort]) ** NEED_RATE_POWER / np.exp((NEED_RATE_POWER * NEED_SIGMA[cohort]) ** 2 / 2)
    los_scale = cfg.bed_days_rr / cfg.admissions_rr if cfg.admissions_rr > 0 else 1.0
    post_days = people.exit_day - index + 1
    n_types = len(C.EVENT_TYPES)
    # accumulators for truth: [group ipc=0/comparison=1, pre=0/post=1]
    emerg_count = np.zeros((2, 2), dtype=np.int64)
    emerg_beds = np.zeros((2, 2), dtype=np.int64)
    person_years = np.zeros((2, 2))
    all_counts = np.zeros(n_types, dtype=np.int64)
    events_table = sink.table("events")
    for lo in range(0, n, EVENTS_CHUNK_PEOPLE):
        hi = min(lo + EVENTS_CHUNK_PEOPLE, n)
        m = hi - lo
        c, g = cohort[lo:hi], ipc[lo:hi]
        base = EVENT_RATE[:, c].T * (people.frailty[lo:hi] * need_factor[lo:hi])[:, None]  # m x types
        post_mult = np.full((m, n_types), SECULAR_TREND) * trend[lo:hi, None]
        post_mult[:, EMERGENCY] *= np.where(g, cfg.admissions_rr, 1.0)
        seg_len = np.stack([np.full(m, PRE_INDEX_DAYS), post_days[lo:hi]], axis=1)  # m x 2
        seg_start = np.stack([index[lo:hi] - PRE_INDEX_DAYS, index[lo:hi]], axis=1)
        pre = base.copy()
        pre[:, EMERGENCY] *= np.exp(people.log_shock[lo:hi])  # a transient bad (or good) year before index
        rate = np.stack([pre, base * post_mult], axis=2)  # m x types x 2
        counts = rng.poisson(rate * (seg_len[:, None, :] / 365.25))
        seg, _ = _segments(counts.reshape(-1))
        e_local, rest = np.divmod(seg, n_types * 2)
        e_type, e_post = np.divmod(rest, 2)
        e_person = lo + e_local
        e_date = seg_start[e_local, e_post] + np.floor(rng.random(len(seg)) * seg_len[e_local, e_post]).astype(np.int64)
        los_mean = np.zeros(len(seg))
        emerg = e_type == EMERGENCY
        los_mean[emerg] = EMERGENCY_LOS_MEAN[cohort[e_person[emerg]]] * np.where(
            ipc[e_person[emerg]] & (e_post[emerg] == 1), los_scale, 1.0
        )
        elect = e_type == ELECTIVE
        los_mean[elect] = ELECTIVE_LOS_MEAN
        shape = np.where(emerg, EMERGENCY_LOS_SHAPE, ELECTIVE_LOS_SHAPE)
        bed_days = rng.poisson(rng.gamma(shape, los_mean / shape)).astype(np.int64)
        bed_days[~(emerg | elect)] = 0
        cost = (EVENT_COST_FIXED[e_type] + EVENT_COST_PER_BED_DAY[e_type] * bed_days) * np.exp(
            EVENT_COST_SIGMA * rng.standard_normal(len(seg)) - EVENT_COST_SIGMA**2 / 2
        )
        cost_missing = np.isnan(cost)
        cost_p = _pennies(np.where(cost_missing, 0.0, cost))
        order = np.lexsort((e_type, e_date, e_person))
        events_table.write(
            {
                "person_id": people.person_id.take(pa.array(e_person[order])),
                "event_date": _dates(e_date[order]),
                "event_type": _vocab(C.EVENT_TYPES, e_type[order]),
                "bed_days": pa.array(bed_days[order]),
                "cost": pa.array(cost_p[order] / 100.0, mask=cost_missing[order]),
            }
        )
        grp = np.where(g, 0, 1)
        for period in (0, 1):
            np.add.at(person_years[:, period], grp, seg_len[:, period] / 365.25)
        eg = np.where(ipc[e_person[emerg]], 0, 1)
        np.add.at(emerg_count, (eg, e_post[emerg]), 1)
        np.add.at(emerg_beds, (eg, e_post[emerg]), bed_days[emerg])
        all_counts += np.bincount(e_type, minlength=n_types)
    events_table.close()
    return Activity(rows=events_table.rows, rate_factor=people.frailty * need_factor * trend, los_scale=los_scale,
                    emerg_count=emerg_count, emerg_beds=emerg_beds, person_years=person_years,
                    counts_by_type=all_counts)

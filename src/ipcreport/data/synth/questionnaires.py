"""Questionnaires: the surveys table (ASCOT, EQ-5D, GHQ-12 at index for everyone; at index +
365 days for those still observed who returned it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .. import contract as C
from .arrays import _dates, _rng, _vocab
from .params import (
    _S_SURVEYS,
    ASCOT_DRIFT,
    ASCOT_MEAN,
    ASCOT_NOISE,
    ASCOT_RHO,
    ASCOT_SD,
    BASELINE,
    EQ5D_DRIFT,
    EQ5D_MEAN,
    EQ5D_NOISE,
    EQ5D_RHO,
    EQ5D_SD,
    FOLLOW_UP,
    FOLLOW_UP_DAYS,
    FOLLOW_UP_MISSING,
    GHQ12_DRIFT,
    GHQ12_MEAN,
    GHQ12_MIN_AGE,
    GHQ12_NOISE,
    GHQ12_RHO,
    GHQ12_SD,
    ITEM_MISSING,
    SynthConfig,
)
from .people import People


@dataclass
class Questionnaires:
    rows: int
    scores: dict  # instrument -> (baseline, follow-up) per person, before missingness
    item_missing: np.ndarray  # 6 x people: ascot, eq5d, ghq12 x baseline, follow-up
    eligible: np.ndarray
    responded: np.ndarray


def draw_surveys(sink, cfg: SynthConfig, extract: int, people: People) -> Questionnaires:
    """follow-up = cohort mean + rho x (baseline - mean) + drift + gain (budget holders) + noise,
    clipped to the instrument's range. Writes the surveys table."""
    rng = _rng(cfg.seed, _S_SURVEYS)
    n, cohort, ipc, index = cfg.people, people.cohort, people.ipc, people.index
    gain = ipc.astype(np.float64)

    def instrument(mean, sd, rho, drift, noise, effect, lo_hi, digits, need_shift=0.0):
        mu = mean[cohort]
        b = mu + sd * rng.standard_normal(n)
        f = mu + rho * (b - mu) + drift + effect * gain + need_shift * people.z_need_std + noise * rng.standard_normal(n)
        b, f = np.clip(b, *lo_hi), np.clip(f, *lo_hi)
        return np.round(b, digits), np.round(f, digits)

    shift = cfg.need_in_questionnaire
    ascot_b, ascot_f = instrument(ASCOT_MEAN, ASCOT_SD, ASCOT_RHO, ASCOT_DRIFT, ASCOT_NOISE, cfg.ascot_gain, C.ASCOT_RANGE, 3,
                                  shift)
    eq5d_b, eq5d_f = instrument(EQ5D_MEAN, EQ5D_SD, EQ5D_RHO, EQ5D_DRIFT, EQ5D_NOISE, cfg.eq5d_gain, C.EQ5D_RANGE, 3,
                                shift)
    ghq_b, ghq_f = instrument(GHQ12_MEAN, GHQ12_SD, GHQ12_RHO, GHQ12_DRIFT, GHQ12_NOISE, 0.0, C.GHQ12_RANGE, 0)
    follow_day = index + FOLLOW_UP_DAYS
    eligible = (follow_day <= extract) & (~people.exited | (people.exit_day >= follow_day))
    responded = eligible & (rng.random(n) >= FOLLOW_UP_MISSING)
    item_missing = rng.random((6, n)) < ITEM_MISSING  # ascot, eq5d, ghq12 x baseline, follow-up
    too_young = people.age < GHQ12_MIN_AGE
    # rows: every baseline, then follow-ups; sorted by person then timepoint
    s_person = np.concatenate([np.arange(n), np.flatnonzero(responded)])
    s_follow = np.concatenate([np.zeros(n, dtype=bool), np.ones(responded.sum(), dtype=bool)])
    order = np.lexsort((s_follow, s_person))
    s_person, s_follow = s_person[order], s_follow[order]
    values = {}
    for k, (name, b, f) in enumerate((("ascot", ascot_b, ascot_f), ("eq5d", eq5d_b, eq5d_f), ("ghq12", ghq_b, ghq_f))):
        v = np.where(s_follow, f[s_person], b[s_person])
        miss = np.where(s_follow, item_missing[2 * k + 1][s_person], item_missing[2 * k][s_person])
        if name == "ghq12":
            miss |= too_young[s_person]
        values[name] = (v, miss)
    surveys_table = sink.table("surveys")
    surveys_table.write(
        {
            "person_id": people.person_id.take(pa.array(s_person)),
            "survey_date": _dates(np.where(s_follow, follow_day[s_person], index[s_person])),
            "timepoint": _vocab(C.TIMEPOINTS, np.where(s_follow, FOLLOW_UP, BASELINE)),
            **{name: pa.array(v, mask=miss) for name, (v, miss) in values.items()},
        }
    )
    surveys_table.close()
    return Questionnaires(rows=surveys_table.rows,
                          scores={"ascot": (ascot_b, ascot_f), "eq5d": (eq5d_b, eq5d_f), "ghq12": (ghq_b, ghq_f)},
                          item_missing=item_missing, eligible=eligible, responded=responded)

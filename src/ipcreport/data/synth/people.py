"""The sites table and the people table: who is in the programme, where, when they joined and
left, and the person-level traits (frailty, need, a bad year before index) the outcome tables
share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import contract as C
from .arrays import _allocate, _dates, _gbp, _iso, _month_of, _month_start, _pennies, _rng, _vocab
from .params import (
    _S_PEOPLE,
    _S_PERSON,
    _S_SITES,
    AGE_HI,
    AGE_LO,
    AGE_MEAN,
    AGE_SD,
    CHILDREN,
    COHORT_SHARE,
    ENGLAND_MEAN_IMD,
    EXIT_REASON_P,
    FRAILTY_SHAPE,
    GO_LIVE_LATEST_MONTHS_BEFORE_EXTRACT,
    GO_LIVE_SPREAD_MONTHS,
    IMD_DECILE_MISSING,
    IMD_DECILE_PER_SCORE,
    IMD_DECILE_SD,
    IPC_COHORT_DEPRIVATION,
    MANAGEMENT_P,
    MAX_SITES,
    MIN_PEOPLE_PER_SITE,
    NEED_MEDIAN,
    NEED_SIGMA,
    NEW_NEED_SHARE,
    PRIOR_COST_RATIO,
    PRIOR_COST_SIGMA,
    RAS_RATE,
    SEX_P,
    SITE_AREAS,
    SynthConfig,
)


@dataclass
class Sites:
    codes: tuple[str, ...]
    go_live: np.ndarray  # day number of each site's go-live
    people: np.ndarray  # people allocated to each site


@dataclass
class People:
    """Person-level arrays (index = person number - 1) that the other tables are drawn from."""

    person_id: pa.Array
    site: np.ndarray
    ipc: np.ndarray
    cohort: np.ndarray
    age: np.ndarray
    need: np.ndarray
    z_need_std: np.ndarray  # standardised log need within cohort
    management: np.ndarray
    new_need: np.ndarray
    prior_p: np.ndarray  # prior_service_cost in pennies
    index: np.ndarray
    exited: np.ndarray
    exit_day: np.ndarray  # the end of observation: exit date, else the extract date
    exit_reason: np.ndarray
    frailty: np.ndarray
    log_shock: np.ndarray  # transient log-multiplier of emergency admissions in the year before index


def _enrol_probability(cfg: SynthConfig, log_shock: np.ndarray) -> np.ndarray | float:
    """P(budget holder): ipc_share, raised after a bad year when enrol_after_bad_year > 0."""
    if cfg.enrol_after_bad_year == 0 or cfg.ipc_share in (0.0, 1.0):
        return cfg.ipc_share
    logit = np.log(cfg.ipc_share / (1 - cfg.ipc_share)) + cfg.enrol_after_bad_year * log_shock
    return 1 / (1 + np.exp(-logit))


def _exit_probability(cfg: SynthConfig, frailty: np.ndarray, ipc: np.ndarray) -> np.ndarray:
    """P(leaving before extract): exit_share on average over comparison-like people, times
    frailty^exit_frailty (normalised to mean 1) and ipc_exit_ratio for budget holders."""
    tilt = frailty**cfg.exit_frailty
    p = cfg.exit_share * tilt / tilt.mean() * np.where(ipc, cfg.ipc_exit_ratio, 1.0)
    return np.clip(p, 0.0, 1.0)


def draw_sites(sink, cfg: SynthConfig, extract: int) -> Sites:
    """Go-live months and people per site (in proportion to population); writes the sites table."""
    rng = _rng(cfg.seed, _S_SITES)
    areas = SITE_AREAS[: cfg.sites]
    offsets = rng.integers(0, GO_LIVE_SPREAD_MONTHS, size=MAX_SITES)[: cfg.sites]  # all areas drawn
    latest_go_live = _month_of(np.array([extract]))[0] - GO_LIVE_LATEST_MONTHS_BEFORE_EXTRACT
    go_live = _month_start(latest_go_live - offsets)
    site_pop = np.array([a[3] for a in areas], dtype=np.float64)
    per_site = _allocate(cfg.people, site_pop, MIN_PEOPLE_PER_SITE)
    sink.small(
        "sites",
        {
            "site_code": [a[0] for a in areas],
            "site_name": [a[1] for a in areas],
            "region": [a[2] for a in areas],
            "population": [a[3] for a in areas],
            "imd_score": [a[4] for a in areas],
            "go_live": [_iso(d) for d in go_live],
        },
    )
    return Sites(codes=tuple(a[0] for a in areas), go_live=go_live, people=per_site)


def draw_people(sink, cfg: SynthConfig, extract: int, sites: Sites) -> People:
    """Draw every person's traits, index date and exit; writes the people table."""
    n = cfg.people
    # an area without a 2019 score (7 of 153) is taken as England's mean: no deprivation shift
    site_imd = np.array([ENGLAND_MEAN_IMD if a[4] is None else a[4] for a in SITE_AREAS[: cfg.sites]])
    go_live = sites.go_live
    rng = _rng(cfg.seed, _S_PEOPLE)
    site = np.repeat(np.arange(cfg.sites), sites.people)
    # person-level traits the outcome tables share (own stream): frailty drives every event rate
    # (and, in the informative-exits scenario, leaving); a transient shock to the year before
    # index (the regression-to-the-mean scenario: budgets offered after a bad year)
    trait_rng = _rng(cfg.seed, _S_PERSON)
    frailty = trait_rng.gamma(FRAILTY_SHAPE, 1 / FRAILTY_SHAPE, size=n)
    sd = cfg.pre_year_shock_sd
    log_shock = sd * trait_rng.standard_normal(n) - sd**2 / 2
    ipc = rng.random(n) < _enrol_probability(cfg, log_shock)
    cohort = rng.choice(len(C.COHORTS), size=n, p=COHORT_SHARE)
    age_normal = np.clip(np.rint(AGE_MEAN[cohort] + AGE_SD[cohort] * rng.standard_normal(n)), AGE_LO[cohort], AGE_HI[cohort])
    age_child = rng.integers(0, C.CHILD_AGE_LIMIT, size=n)
    is_child = cohort == CHILDREN
    age = np.where(is_child, age_child, age_normal).astype(np.int64)
    sex = (rng.random(n)[:, None] > np.cumsum(SEX_P, axis=1)[cohort][:, :-1]).sum(axis=1)
    latent = (
        5.5
        - (site_imd[site] - ENGLAND_MEAN_IMD) * IMD_DECILE_PER_SCORE
        - IPC_COHORT_DEPRIVATION
        + IMD_DECILE_SD * rng.standard_normal(n)
    )
    imd_decile = np.clip(np.rint(latent), 1, 10).astype(np.int64)
    imd_missing = rng.random(n) < IMD_DECILE_MISSING
    z_need = rng.standard_normal(n)
    need = NEED_MEDIAN[cohort] * np.exp(NEED_SIGMA[cohort] * z_need) * np.where(ipc, 1 + cfg.baseline_need_imbalance, 1.0)
    need = np.maximum(np.round(need, 1), 0.1)
    z_need_std = np.log(need / NEED_MEDIAN[cohort]) / NEED_SIGMA[cohort]
    management = np.where(ipc, rng.choice(len(C.MANAGEMENT), size=n, p=MANAGEMENT_P), -1)
    new_need = rng.random(n) < NEW_NEED_SHARE
    prior = RAS_RATE[cohort] * need * PRIOR_COST_RATIO * np.exp(PRIOR_COST_SIGMA * rng.standard_normal(n))
    prior_p = np.where(new_need, 0, _pennies(prior))
    # enrolment continues up to the extract date: the latest people lack a full year of follow-up
    window = extract - go_live[site] + 1  # index in [go_live, extract]
    index = go_live[site] + np.floor(rng.random(n) * window).astype(np.int64)
    exited = rng.random(n) < _exit_probability(cfg, frailty, ipc)
    exit_day = index + np.floor(rng.random(n) * (extract - index + 1)).astype(np.int64)
    exit_day = np.where(exited, exit_day, extract)  # the end of observation for everyone
    exit_reason = np.where(exited, trait_rng.choice(len(C.EXIT_REASONS), size=n, p=EXIT_REASON_P), -1)
    width = max(7, len(str(n)))
    person_id = pc.binary_join_element_wise(
        "P", pc.utf8_lpad(pa.array(np.arange(1, n + 1)).cast(pa.string()), width, "0"), ""
    )
    people_table = sink.table("people")
    people_table.write(
        {
            "person_id": person_id,
            "site_code": _vocab(sites.codes, site),
            "group": _vocab(C.GROUPS, np.where(ipc, C.GROUPS.index("ipc"), C.GROUPS.index("comparison"))),
            "cohort": _vocab(C.COHORTS, cohort),
            "index_date": _dates(index),
            "age": pa.array(age),
            "sex": _vocab(C.SEXES, sex),
            "imd_decile": pa.array(imd_decile, mask=imd_missing),
            "need_score": pa.array(need),
            "management": _vocab(C.MANAGEMENT, management),
            "prior_service_cost": _gbp(prior_p),
            "exit_date": _dates(exit_day, missing=~exited),
            "exit_reason": _vocab(C.EXIT_REASONS, exit_reason),
        }
    )
    people_table.close()
    return People(person_id=person_id, site=site, ipc=ipc, cohort=cohort, age=age, need=need, z_need_std=z_need_std,
                  management=management, new_need=new_need, prior_p=prior_p, index=index, exited=exited,
                  exit_day=exit_day, exit_reason=exit_reason, frailty=frailty, log_shock=log_shock)

"""What the generator put in: truth.json (the configuration, the effects, and the realised
counts and rates an analysis of the data should recover) and dataset.yaml's contents."""

from __future__ import annotations

import numpy as np

from .. import contract as C
from .activity import Activity
from .arrays import _iso, _months_from, _num
from .budgets import Budgets, Spend
from .params import (
    AGREED_NOISE_SIGMA,
    ELECTIVE_LOS_MEAN,
    EMERGENCY,
    EMERGENCY_LOS_MEAN,
    EVENT_COST_FIXED,
    EVENT_COST_PER_BED_DAY,
    EVENT_RATE,
    FOLLOW_UP_DAYS,
    FOLLOW_UP_MISSING,
    FRAILTY_SHAPE,
    FUNDING_MEAN,
    MANAGEMENT_P,
    NEED_MEDIAN,
    NEED_SIGMA,
    NEW_NEED_SHARE,
    RAS_RATE,
    SECULAR_TREND,
    UTILISATION_BETA,
    EXIT_REASON_P,
    SynthConfig,
    _config_dict,
)
from .people import People, Sites
from .questionnaires import Questionnaires


def incremental_cost_truth(cfg, extract, ipc, cohort, index, exit_day, holders, spend_year, education_share, monthly,
                            rate_factor, los_scale) -> dict:
    """The true incremental cost of a budget over the follow-up year (the analysis population:
    people whose year was due by the extract date), per budget holder: their own budget spend
    in the year (realised) plus, in expectation, the outside services the budget replaced and
    the emergency hospital care it avoided, over the days each was observed. It is what an
    unbiased estimator of budget holders' cost minus what the same people would have cost
    without a budget recovers."""
    due = index + FOLLOW_UP_DAYS <= extract + 1
    end = np.minimum(index + FOLLOW_UP_DAYS - 1, exit_day)
    days = end - index + 1
    _, months = _months_from(index, end)
    spend, education = np.zeros(len(index)), np.zeros(len(index))
    spend[holders] = spend_year / 100.0 * (1 - education_share)  # NHS and social care: education counted apart
    education[holders] = spend_year / 100.0 * education_share
    services = -(1 - cfg.ipc_services_kept) * monthly * months
    los = EMERGENCY_LOS_MEAN[cohort]
    unit_cost = EVENT_COST_FIXED[EMERGENCY] + EVENT_COST_PER_BED_DAY[EMERGENCY] * los
    unit_cost_ipc = EVENT_COST_FIXED[EMERGENCY] + EVENT_COST_PER_BED_DAY[EMERGENCY] * los * los_scale
    admissions = EVENT_RATE[EMERGENCY, cohort] * rate_factor * SECULAR_TREND * days / 365.25
    hospital = admissions * (cfg.admissions_rr * unit_cost_ipc - unit_cost)
    people = due & ipc
    if not people.any():
        return {"people": 0, "incremental_cost": None}
    return {
        "people": int(people.sum()),
        "incremental_cost": _num(np.mean((spend + services + hospital)[people]), 2),
        "budget_spend": _num(np.mean(spend[people]), 2),
        "education_budget_spend": _num(np.mean(education[people]), 2),
        "services_replaced": _num(np.mean(services[people]), 2),
        "hospital_avoided": _num(np.mean(hospital[people]), 2),
        "services_kept_share": cfg.ipc_services_kept,
        "notes": "GBP per budget holder over the follow-up year (index to index + 364 days, cut at exit), NHS and "
                 "social care perspective: budget spend (net of refunds, less education's share of the budget, "
                 "given apart) + outside services + emergency hospital care, budget holders minus what they would "
                 "have cost without a budget.",
    }


def _rate(count, years):
    return count / years if years > 0 else None


def _ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def _survey_outcomes(people: People, surveys: Questionnaires) -> dict:
    """Realised ipc-minus-comparison differences in ASCOT and EQ-5D among people with both answers."""
    ipc, both, miss_items = people.ipc, surveys.responded, surveys.item_missing
    outcome = {}
    for k, name in enumerate(("ascot", "eq5d")):
        b, f = surveys.scores[name]
        ok = both & ~(miss_items[2 * k] | miss_items[2 * k + 1])
        change_i, change_c = (f - b)[ok & ipc], (f - b)[ok & ~ipc]
        adjusted = None
        if len(change_i) > 1 and len(change_c) > 1:
            x = np.column_stack([np.ones(ok.sum()), ipc[ok].astype(float), b[ok]])
            adjusted = _num(np.linalg.lstsq(x, f[ok], rcond=None)[0][1])
        outcome[name] = {
            "people_with_both": int(ok.sum()),
            "change_diff": _num(change_i.mean() - change_c.mean()) if len(change_i) and len(change_c) else None,
            "adjusted_diff": adjusted,
        }
    return outcome


NOTES = [
    "Synthetic data with known effects; sites are real areas chosen to span NHS regions and "
    "deprivation, not the IPC demonstrator sites. Numbers are calibration assumptions.",
    "admissions: difference-in-differences rate ratio of emergency admissions per person-year, "
    "ipc vs comparison, after index (index_date to min(extract_date, exit_date)) vs the 365 days "
    "before index; the generator multiplies ipc post-index rates by admissions_rr and both groups' "
    "post-index rates by secular_trend.",
    "bed_days: the same ratio for bed days of emergency admissions; ipc post-index length of stay is "
    "scaled by bed_days_rr / admissions_rr, so the expected ratio is bed_days_rr. Elective admissions "
    "(no effect) also have bed days; care-home admissions have bed_days 0 and no cost.",
    "surveys: follow_up = cohort mean + rho*(baseline - cohort mean) + drift + gain (ipc) + noise, "
    "clipped to the contract range; the adjusted ipc-minus-comparison difference controlling for "
    "baseline has expectation gain (less a little from clipping). GHQ-12 has no ipc effect.",
    "utilisation: net spend / agreed budget over budget periods with period_end <= extract_date.",
]


def build_truth(cfg: SynthConfig, extract: int, sites: Sites, people: People, budgets: Budgets, spend: Spend,
                activity: Activity, surveys: Questionnaires, rows: dict, cost_truth: dict) -> dict:
    """The truth dict (truth.json): configuration, effects put in, realised counts and rates."""
    n = cfg.people
    site, ipc, cohort, site_codes = people.site, people.ipc, people.cohort, sites.codes
    holders, p_person, p_agreed, p_indicative = budgets.holders, budgets.p_person, budgets.p_agreed, budgets.p_indicative
    emerg_count, emerg_beds, person_years = activity.emerg_count, activity.emerg_beds, activity.person_years
    emerg_rate = [[_rate(emerg_count[gi, t], person_years[gi, t]) for t in (0, 1)] for gi in (0, 1)]
    beds_rate = [[_rate(emerg_beds[gi, t], person_years[gi, t]) for t in (0, 1)] for gi in (0, 1)]
    did_adm = _ratio(_ratio(emerg_rate[0][1], emerg_rate[0][0]), _ratio(emerg_rate[1][1], emerg_rate[1][0]))
    did_beds = _ratio(_ratio(beds_rate[0][1], beds_rate[0][0]), _ratio(beds_rate[1][1], beds_rate[1][0]))
    outcome = _survey_outcomes(people, surveys)

    completed = spend.p_completed
    agreed_done = p_agreed[completed].sum()
    groups = {"ipc": ipc, "comparison": ~ipc}
    by_site_group_cohort = {
        code: {
            gname: {cname: int(((site == s) & gmask & (cohort == ci)).sum()) for ci, cname in enumerate(C.COHORTS)}
            for gname, gmask in groups.items()
        }
        for s, code in enumerate(site_codes)
    }
    mgmt_counts = np.bincount(people.management[holders], minlength=len(C.MANAGEMENT))
    return {
        "generator": "ipcreport.data.synth",
        "config": _config_dict(cfg),
        "notes": list(NOTES),
        "counts": {
            "people": n,
            "ipc": int(ipc.sum()),
            "comparison": int((~ipc).sum()),
            "by_site": {
                code: {"ipc": int(((site == s) & ipc).sum()), "comparison": int(((site == s) & ~ipc).sum())}
                for s, code in enumerate(site_codes)
            },
            "by_group_cohort": {
                gname: {cname: int((gmask & (cohort == ci)).sum()) for ci, cname in enumerate(C.COHORTS)}
                for gname, gmask in groups.items()
            },
            "by_site_group_cohort": by_site_group_cohort,
            "exited": int(people.exited.sum()),
            "rows": rows,
        },
        "sites": {
            code: {"go_live": _iso(sites.go_live[s]), "people": int(sites.people[s])} for s, code in enumerate(site_codes)
        },
        "effects": {
            "admissions_rr": cfg.admissions_rr,
            "bed_days_rr": cfg.bed_days_rr,
            "ascot_gain": cfg.ascot_gain,
            "eq5d_gain": cfg.eq5d_gain,
            "ghq12_gain": 0.0,
            "secular_trend": SECULAR_TREND,
            "length_of_stay_scale_ipc_after_index": _num(activity.los_scale),
            "baseline_need_imbalance": cfg.baseline_need_imbalance,
        },
        "exits": {
            "share": cfg.exit_share,
            "frailty_power": cfg.exit_frailty,
            "ipc_exit_ratio": cfg.ipc_exit_ratio,
            "reason_probabilities": dict(zip(C.EXIT_REASONS, EXIT_REASON_P.tolist())),
            "by_group_reason": {
                gname: {r: int((gmask & (people.exit_reason == k)).sum()) for k, r in enumerate(C.EXIT_REASONS)}
                for gname, gmask in groups.items()
            },
            "enrolled_in_last_year": {
                gname: int((gmask & (people.index + FOLLOW_UP_DAYS > extract + 1)).sum())
                for gname, gmask in groups.items()
            },
        },
        "economics": cost_truth,
        "scenario": {
            "pre_year_shock_sd": cfg.pre_year_shock_sd,
            "enrol_after_bad_year": cfg.enrol_after_bad_year,
            "need_trend": cfg.need_trend,
            "need_in_questionnaire": cfg.need_in_questionnaire,
        },
        "management": {
            "probabilities": dict(zip(C.MANAGEMENT, MANAGEMENT_P.tolist())),
            "counts": dict(zip(C.MANAGEMENT, mgmt_counts.tolist())),
            "shares": dict(zip(C.MANAGEMENT, [_num(x) for x in mgmt_counts / max(len(holders), 1)])),
        },
        "new_need": {
            "probability": NEW_NEED_SHARE,
            "people": int(people.new_need.sum()),
            "share": _num(people.new_need.mean()),
            "ipc_people": int((people.new_need & ipc).sum()),
            "agreed_budget_gbp_all_periods": _num(p_agreed[people.new_need[p_person]].sum() / 100.0, 2),
        },
        "budgets": {
            "ras_rate_gbp_per_point": dict(zip(C.COHORTS, RAS_RATE.tolist())),
            "need_score_median": dict(zip(C.COHORTS, NEED_MEDIAN.tolist())),
            "need_score_sigma_log": dict(zip(C.COHORTS, NEED_SIGMA.tolist())),
            "agreed_over_indicative": {"median": 1.0, "sigma_log": AGREED_NOISE_SIGMA},
            "funding_share_mean": {
                cname: dict(zip(C.FUNDING_COLUMNS, FUNDING_MEAN[ci].tolist())) for ci, cname in enumerate(C.COHORTS)
            },
            "periods": len(p_person),
            "agreed_total_gbp": _num(p_agreed.sum() / 100.0, 2),
            "realised_agreed_over_indicative_median": _num(np.median(p_agreed / np.maximum(p_indicative, 1)))
            if len(p_person)
            else None,
        },
        "utilisation": {
            "person_beta_mean": _num(UTILISATION_BETA[0] / sum(UTILISATION_BETA)),
            "completed_periods": int(completed.sum()),
            "realised_net": _num(spend.p_spend_net[completed].sum() / agreed_done) if agreed_done else None,
            "realised_gross": _num(spend.p_spend_gross[completed].sum() / agreed_done) if agreed_done else None,
            "refunded_periods": int(spend.p_refunded.sum()),
        },
        "events": {
            "base_rate_per_person_year": {
                etype: dict(zip(C.COHORTS, EVENT_RATE[k].tolist())) for k, etype in enumerate(C.EVENT_TYPES)
            },
            "emergency_los_mean": dict(zip(C.COHORTS, EMERGENCY_LOS_MEAN.tolist())),
            "elective_los_mean": ELECTIVE_LOS_MEAN,
            "frailty_gamma_shape": FRAILTY_SHAPE,
            "counts_by_type": dict(zip(C.EVENT_TYPES, activity.counts_by_type.tolist())),
            "emergency": {
                gname: {
                    period: {
                        "admissions": int(emerg_count[gi, t]),
                        "bed_days": int(emerg_beds[gi, t]),
                        "person_years": _num(person_years[gi, t]),
                    }
                    for t, period in enumerate(("before", "after"))
                }
                for gi, gname in enumerate(("ipc", "comparison"))
            },
            "realised_admissions_did": _num(did_adm) if did_adm is not None else None,
            "realised_bed_days_did": _num(did_beds) if did_beds is not None else None,
        },
        "surveys": {
            "follow_up_days": FOLLOW_UP_DAYS,
            "follow_up_missing_probability": FOLLOW_UP_MISSING,
            "follow_up_eligible": int(surveys.eligible.sum()),
            "follow_up_returned": int(surveys.responded.sum()),
            "ascot": outcome["ascot"],
            "eq5d": outcome["eq5d"],
        },
    }


def build_meta(cfg: SynthConfig) -> dict:
    """dataset.yaml's contents."""
    return {
        "name": cfg.name,
        "extract_date": cfg.extract_date,
        "synthetic": True,
        "description": (
            f"Synthetic IPC dataset: {cfg.people} people in {cfg.sites} sites, generated with known effects "
            f"(emergency admissions rate ratio {cfg.admissions_rr}, bed days {cfg.bed_days_rr}, ASCOT gain "
            f"{cfg.ascot_gain}, EQ-5D gain {cfg.eq5d_gain}). Site names, regions, populations and IMD "
            "scores are real public figures for English upper-tier areas; the sites are not the IPC "
            "demonstrators and every person, budget, event and survey is invented. truth.json holds "
            "what was put in."
        ),
        "source": "ipcreport synth",
        "config": _config_dict(cfg),
    }

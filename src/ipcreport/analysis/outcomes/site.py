"""Every outcome analysis for one site (or a whole dataset) at once."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .balance import PropensityModel, imbalanced_covariates, person_covariates, propensity_model, standardised_differences
from .common import EVENT_OUTCOMES, QOL_MEASURES, WINDOW_DAYS, Estimate
from .did import before_after_panel, conditional_rate_ratio, did_rate_ratio, hospital_use_table, pre_trend
from .exits import exits_by_group
from .questionnaire import (MissingnessTest, ancova_difference, follow_up_completeness, missing_follow_up_test,
                            quality_of_life_panel, quality_of_life_table)


HEADLINE = ("admissions", "bed_days", "ascot", "eq5d")
RATE_MODELS = {"conditional": lambda: conditional_rate_ratio, "pooled": lambda: did_rate_ratio}


@dataclass
class OutcomeResults:
    """What :func:`analyse_outcomes` returns."""

    estimates: dict[str, Estimate]  # the headline: conditional DiD IRRs and covariate-adjusted ANCOVA differences
    adjusted: dict[str, Estimate]  # propensity-weighted (conditional DiD, ANCOVA), where a propensity model fits
    balance: pd.DataFrame
    imbalanced: list[str]  # covariates whose |SMD| is beyond both 0.1 and what chance gives at this size
    hospital_use: pd.DataFrame  # tidy subgroup frame (all event outcomes)
    quality_of_life: pd.DataFrame
    completeness: pd.DataFrame
    missingness: MissingnessTest
    weights: "PropensityModel | None" = None
    notes: list[str] = field(default_factory=list)
    crude: dict[str, Estimate] = field(default_factory=dict)  # pooled Poisson DiD without person effects
    exits: pd.DataFrame = field(default_factory=pd.DataFrame)
    exit_ratios: dict[str, Estimate] = field(default_factory=dict)
    pre_trend: Estimate | None = None
    not_yet_due: int = 0  # people whose follow-up year was not yet over on the extract date


def headline_estimates(people: pd.DataFrame, events: pd.DataFrame, surveys: pd.DataFrame,
                       extract_date: pd.Timestamp, weights: "pd.Series | PropensityModel | None" = None,
                       outcomes: tuple[str, ...] = HEADLINE, panels: dict | None = None,
                       model: str = "conditional") -> dict[str, Estimate]:
    """The headline estimates (what the briefing and metrics.json report, and what the validity
    study checks): DiD IRRs for event outcomes (``model`` "conditional", the person
    fixed-effect model, or "pooled", the Poisson GLM without person effects), ANCOVA
    differences for questionnaires.

    ``panels``: optional dict used as a cache of the per-outcome panels, so a second call (say,
    weighted) on the same data does not rebuild them.
    """
    panels = {} if panels is None else panels
    rate_ratio = RATE_MODELS[model]()
    out = {}
    for key in outcomes:
        if key not in panels:
            if key in EVENT_OUTCOMES:
                event_type, measure = EVENT_OUTCOMES[key]
                panels[key] = before_after_panel(people, events, event_type, extract_date, measure)
            else:
                panels[key] = quality_of_life_panel(people, surveys, key)
        if key in EVENT_OUTCOMES:
            out[key] = rate_ratio(panels[key], weights=weights)
        else:
            out[key] = ancova_difference(panels[key], weights=weights)
    return out



def analyse_outcomes(people: pd.DataFrame, events: pd.DataFrame, surveys: pd.DataFrame,
                     extract_date: pd.Timestamp) -> OutcomeResults:
    """Every outcome analysis for one site (or a whole dataset)."""
    keys = tuple(EVENT_OUTCOMES) + QOL_MEASURES
    panels: dict = {}
    estimates = headline_estimates(people, events, surveys, extract_date, outcomes=keys, panels=panels)
    crude = headline_estimates(people, events, surveys, extract_date, outcomes=tuple(EVENT_OUTCOMES), panels=panels,
                               model="pooled")
    cov = person_covariates(people, events, surveys)
    balance = standardised_differences(cov)
    imbalanced = imbalanced_covariates(balance)
    adjusted, notes = {}, []
    weights = propensity_model(cov)
    if weights is None:
        notes.append("A propensity model could not be fitted (too few people, or the groups do not overlap), so no "
                     "weighted estimates are shown.")
    else:
        chance = balance["chance_smd"]
        balance = standardised_differences(cov, weights.weights)
        balance["chance_smd"] = chance.to_numpy()
        adjusted = headline_estimates(people, events, surveys, extract_date, weights=weights, outcomes=keys,
                                      panels=panels)
    completeness = follow_up_completeness(people, surveys, extract_date)
    exits, exit_ratios = exits_by_group(people, extract_date)
    due = people["index_date"] + pd.Timedelta(days=WINDOW_DAYS) <= pd.Timestamp(extract_date) + pd.Timedelta(days=1)
    return OutcomeResults(
        estimates=estimates,
        adjusted=adjusted,
        balance=balance,
        imbalanced=imbalanced,
        hospital_use=hospital_use_table(people, events, extract_date, panels=panels),
        quality_of_life=quality_of_life_table(people, surveys),
        completeness=completeness,
        missingness=missing_follow_up_test(completeness),
        weights=weights,
        notes=notes,
        crude=crude,
        exits=exits,
        exit_ratios=exit_ratios,
        pre_trend=pre_trend(people, events, extract_date),
        not_yet_due=int((~due).sum()),
    )

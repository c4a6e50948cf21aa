"""Do budget holders do better than the comparison group?

Pure functions: frames in, frames or dataclasses out; no I/O and no plotting.

Hospital use (emergency admissions, emergency bed days, A&E attendances, care-home admissions)
---------------------------------------------------------------------------------------------
Difference in differences over two windows per person: *before* is the 365 days up to the
index date (``[index - 365 d, index)``, what the contract guarantees the events table covers),
*after* is the 365 days from the index date (``[index, index + 364 d]``, inclusive), cut short
at exit_date or extract_date (both inclusive: an event on the exit day counts). Each window's
exposure in years (days / 365.25) enters as a log offset, so people who leave early count for
the time they were observed.

The briefing's headline is the **conditional (person fixed-effect) Poisson** model
(:func:`conditional_rate_ratio`) with propensity weights wherever they can be fitted
(:func:`preferred`: it meets the validity study's targets in every scenario); the unweighted
conditional model and the pooled model below are its sensitivity rows. The pooled model is a
**Poisson GLM** ``y ~ ipc + after + ipc:after`` with **person-clustered robust (sandwich)
errors**; exp(coefficient of ipc:after) is the incidence rate ratio (IRR). Why
Poisson and not negative binomial: the Poisson score equations only need the mean to be right
(a multiplicative rate model), so the estimate is consistent however overdispersed the outcome
is, bed days included (a sum of a random number of random lengths of stay), and the sandwich
errors clustered on the person give valid intervals for that overdispersion and for the
correlation between a person's two windows. With equal exposures it is exactly the ratio of
the two groups' after/before rate ratios (the estimand synthetic truth.json defines), which a
negative-binomial fit is not: NB re-weights people towards low counts, so with heterogeneous
effects it estimates a different quantity, and its model-based errors are wrong when the
variance function is (the lengths of stay here are far from NB). The validity study
(docs/validity.md) checks the coverage this gives.

Subgroups (by cohort; by how the budget is held, against the whole comparison group) use the
same model; a subgroup with fewer than :data:`MIN_PEOPLE_PER_GROUP` people in a group or fewer
than :data:`MIN_EVENTS_PER_CELL` events in any group x window gets a reason instead of a number.

Quality of life
---------------
ANCOVA: follow-up score on baseline score, group, age, need score and cohort, OLS with HC3
errors (ASCOT, EQ-5D, GHQ-12). Complete cases (baseline and follow-up both answered); missing
follow-ups are counted by group and the difference in missingness tested (chi-square, or
Fisher's exact test when an expected count is under 5).

Balance
-------
Standardised mean differences of baseline covariates (pooled SD = sqrt((var_ipc + var_comp)/2),
sample variances). Wherever a propensity model fits, a weighted estimate is given beside the unweighted ones:
inverse-probability-of-treatment weights for the treated (ATT: budget holders weight 1,
comparison people e/(1-e)) from a statsmodels logit propensity model; the same weights go into
the Poisson DiD and into the (covariate-adjusted, so doubly robust) ANCOVA. Their intervals come
from a stacked M-estimation sandwich (the logit's score equations beside the outcome model's),
so the propensity model's own uncertainty is counted: treating the weights as known made the
weighted admissions intervals about a quarter too wide in the validity study. Caveat for real
data: the propensity model includes the year-before admission rate, so weighting also equalises
the groups' "before" level; where the groups come from populations with different usual levels,
that can add regression to the mean to the DiD (Daw and Hatfield 2018), which is why the
unweighted estimates stay beside the weighted headline.

Validity against synthetic data with known effects: benchmarks/validity.py, docs/validity.md.
"""

# Every name the report, the tests and the validity study use, importable from the package as before.
from .common import (  # noqa: F401
    DAYS_PER_YEAR, WINDOW_DAYS, MIN_PEOPLE_PER_GROUP, MIN_EVENTS_PER_CELL, SMD_THRESHOLD, PROPENSITY_CLIP, Z95,
    EVENT_OUTCOMES, QOL_MEASURES, OUTCOME_NAMES, Estimate,
)
from .did import (  # noqa: F401
    before_after_panel, did_rate_ratio, conditional_rate_ratio, pre_trend, ratio_of_rate_ratios,
    SUBGROUP_COLUMNS, rate_ratio_subgroups, hospital_use_table, rates_by_group,
)
from .questionnaire import (  # noqa: F401
    survey_wide, quality_of_life_panel, ANCOVA_COVARIATES, ancova_difference, change_score_difference,
    quality_of_life_table, follow_up_completeness, MissingnessTest, missing_follow_up_test,
)
from .balance import (  # noqa: F401
    chance_smd, BALANCE_LABELS, person_covariates, BALANCE_COVARIATES, standardised_differences,
    PROPENSITY_COVARIATES, PropensityModel, propensity_model, propensity_weights, _stacked_parts,
    imbalanced_covariates,
)
from .exits import (  # noqa: F401
    EXIT_COLUMNS, exits_by_group,
)
from .power import (  # noqa: F401
    Z80, minimum_detectable_ratio, interval_words,
)
from .site import (  # noqa: F401
    HEADLINE, RATE_MODELS, OutcomeResults, headline_estimates, analyse_outcomes,
)
from .messages import (  # noqa: F401
    worse_year_before, preferred, headline_admissions, which_to_believe, key_messages,
)

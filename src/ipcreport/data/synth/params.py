"""The generator's configuration and calibration: the areas, the options a caller sets
(:class:`SynthConfig`) and every constant the draws use, each cited to shared/domain.md or marked
"assumption" (plausible calibration, never a finding)."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from datetime import date, datetime

import numpy as np

from ...resources import AREAS_CSV
from .. import contract as C

# File formats synthesise() can write: the contract accepts CSV or Parquet per table. CSV is the
# default (and what the demo and tests use); Parquet (typed, zstd-compressed) is for national-sized
# datasets, where it is ~5x smaller and DuckDB reads it without parsing text.
FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class SynthConfig:
    sites: int = 9
    people: int = 8000  # total people across all sites (ipc + comparison)
    seed: int = 2015
    extract_date: date = date(2026, 9, 30)
    admissions_rr: float = 0.85  # true emergency-admission rate ratio for budget holders after index (DiD)
    bed_days_rr: float = 0.85  # true ratio for bed days per person-year (via admissions and length of stay)
    ascot_gain: float = 0.04  # true ASCOT gain at follow-up for ipc vs comparison, adjusting for baseline
    eq5d_gain: float = 0.0
    ipc_share: float = 0.5  # share of people who are budget holders
    baseline_need_imbalance: float = 0.0  # ipc need_score multiplied by (1+this) vs comparison (a known confounder)
    name: str = "IPC demo (synthetic)"
    # --- scenario options (benchmarks/validity.py); the defaults give the demo data ---
    exit_share: float = 0.08  # expected share of people who leave, move or die before extract
    exit_frailty: float = 0.0  # exit probability x frailty^this (1 = frail people leave more: informative exits)
    ipc_exit_ratio: float = 1.0  # budget holders' exit probability / comparison people's
    pre_year_shock_sd: float = 0.0  # sd of a transient log-multiplier of emergency admissions in the year before index
    enrol_after_bad_year: float = 0.0  # log-odds of holding a budget per unit of that log-multiplier (regression to the mean)
    need_trend: float = 0.0  # post-index rates x exp(need_trend x standardised log need): need changes the trend
    need_in_questionnaire: float = 0.0  # follow-up ASCOT and EQ-5D + this x standardised log need
    services: bool = True  # write the optional services table
    ipc_services_kept: float = 0.15  # share of outside services budget holders keep after index (the budget replaces the rest)


# ---------------------------------------------------------------------------------------------
# Sites: England's 153 upper-tier areas (data/reference/areas.csv, built by
# scripts/build_reference.py), the 30 listed here first (copied from it; tests check they still
# agree), then the other 123 in the file's order (area code).
# Order: the first 9 cover all 7 NHS regions and IMD scores from 5.8 (Wokingham) to 45.0
# (Blackpool); the rest alternate regions and deprivation. NOT the IPC demonstrator sites.
# (area_code, area_name, nhs_region, population ONS mid-2020, IMD 2019 average score)
LISTED_AREAS: tuple[tuple[str, str, str, int, float], ...] = (
    ("E08000025", "Birmingham", "Midlands", 1140525, 38.067),
    ("E10000030", "Surrey", "South East", 1199870, 10.087),
    ("E09000030", "Tower Hamlets", "London", 331969, 27.913),
    ("E08000003", "Manchester", "North West", 555741, 40.005),
    ("E06000052", "Cornwall", "South West", 573299, 23.072),
    ("E08000021", "Newcastle upon Tyne", "North East and Yorkshire", 306824, 29.79),
    ("E10000015", "Hertfordshire", "East of England", 1195672, 12.732),
    ("E06000009", "Blackpool", "North West", 138381, 45.039),
    ("E06000041", "Wokingham", "South East", 173945, 5.846),
    ("E08000035", "Leeds", "North East and Yorkshire", 798786, 27.301),
    ("E09000032", "Wandsworth", "London", 329735, 16.611),
    ("E10000012", "Essex", "East of England", 1497759, 17.016),
    ("E06000018", "Nottingham", "Midlands", 337098, 34.891),
    ("E06000023", "City of Bristol", "South West", 465866, 26.363),
    ("E10000016", "Kent", "South East", 1589057, 19.538),
    ("E08000012", "Liverpool", "North West", 500474, 42.412),
    ("E06000047", "County Durham", "North East and Yorkshire", 533149, 26.793),
    ("E09000025", "Newham", "London", 355266, 29.577),
    ("E06000031", "Peterborough", "East of England", 202626, 27.821),
    ("E10000034", "Worcestershire", "Midlands", 598070, 18.089),
    ("E10000013", "Gloucestershire", "South West", 640650, 14.932),
    ("E06000044", "Portsmouth", "South East", 214692, 26.899),
    ("E08000009", "Trafford", "North West", 237579, 16.088),
    ("E06000010", "Kingston upon Hull", "North East and Yorkshire", 259126, 40.564),
    ("E09000006", "Bromley", "London", 332752, 14.163),
    ("E10000020", "Norfolk", "East of England", 914039, 21.183),
    ("E06000021", "Stoke-on-Trent", "Midlands", 256622, 34.504),
    ("E06000026", "Plymouth", "South West", 262839, 26.619),
    ("E10000032", "West Sussex", "South East", 867635, 14.429),
    ("E08000014", "Sefton", "North West", 275899, 27.035),
)


def _reference_areas() -> tuple[tuple[str, str, str, int, float | None], ...]:
    """Every area of areas.csv as (code, name, region, population, IMD score or None when the
    2019 index has no score for the current authority: 7 areas)."""
    with open(AREAS_CSV, encoding="utf-8", newline="") as handle:
        return tuple((r["area_code"], r["area_name"], r["nhs_region"], int(r["population"]),
                      float(r["imd_score"]) if r["imd_score"] else None) for r in csv.DictReader(handle))


_LISTED_CODES = {a[0] for a in LISTED_AREAS}
SITE_AREAS = LISTED_AREAS + tuple(a for a in _reference_areas() if a[0] not in _LISTED_CODES)
MAX_SITES = len(SITE_AREAS)  # 153: a national dataset covers every area
MIN_PEOPLE_PER_SITE = 40  # every site gets at least this many (when people allows)
ENGLAND_MEAN_IMD = 21.99  # population-weighted mean of the 146 scored areas in areas.csv

# go_live: first of a month, 21-44 months before extract_date (2023-01 .. 2024-12 for the default
# extract date of 2026-09-30), so every site has at least 9 months of enrolment with a full year
# of follow-up after it. Assumption.
GO_LIVE_LATEST_MONTHS_BEFORE_EXTRACT = 21
GO_LIVE_SPREAD_MONTHS = 24

# ---------------------------------------------------------------------------------------------
# Parameters keyed by the contract's own vocabularies (contract.COHORTS, SEXES, MANAGEMENT,
# SPEND_CATEGORIES, EVENT_TYPES, FUNDING_COLUMNS); _ordered() turns them into arrays in the
# contract's order and fails at import if a key drifts from the contract.


def _ordered(vocab: tuple[str, ...], mapping: dict) -> np.ndarray:
    if set(mapping) != set(vocab):
        raise ValueError(f"parameter keys {sorted(mapping)} do not match the contract's {list(vocab)}")
    return np.array([mapping[v] for v in vocab], dtype=np.float64)


def _by_cohort(ltc, children, ld, mh) -> np.ndarray:
    """One value (or row) per cohort, in contract.COHORTS order."""
    keys = ("long_term_conditions", "children_complex_needs", "learning_disability", "mental_health")
    return _ordered(C.COHORTS, dict(zip(keys, (ltc, children, ld, mh))))


CHILDREN = C.COHORTS.index("children_complex_needs")

# ---------------------------------------------------------------------------------------------
# People.
COHORT_SHARE = _by_cohort(0.45, 0.15, 0.20, 0.20)  # assumption (brief)
# age at index: normal(mean, sd) rounded and clipped to [lo, hi]; children uniform 0-17 (assumption)
AGE_MEAN = _by_cohort(70.0, 9.0, 38.0, 44.0)
AGE_SD = _by_cohort(14.0, 5.0, 14.0, 13.0)
AGE_LO = _by_cohort(18, 0, 18, 18)
AGE_HI = _by_cohort(101, C.CHILD_AGE_LIMIT - 1, 85, 90)
# sex by cohort (assumption): complex-needs children and learning disability more often male
_SEX_KEYS = ("female", "male", "other", "unknown")
SEX_P = _by_cohort(
    *(
        _ordered(C.SEXES, dict(zip(_SEX_KEYS, p)))
        for p in (
            (0.550, 0.435, 0.005, 0.010),
            (0.380, 0.605, 0.005, 0.010),
            (0.420, 0.565, 0.005, 0.010),
            (0.480, 0.505, 0.005, 0.010),
        )
    )
)
IMD_DECILE_SD = 2.4  # latent spread of people's deciles within a site (assumption)
IMD_DECILE_PER_SCORE = 1 / 4.5  # deciles per IMD score point away from England's mean (assumption)
IPC_COHORT_DEPRIVATION = 0.5  # high-need cohorts live a little more in deprived areas (assumption)
IMD_DECILE_MISSING = 0.02  # unknown postcode (assumption)
# need_score: cohort lognormal (median points, sigma of log), so budgets (RAS rate x need) form a
# lognormal mixture by cohort (domain.md: "A lognormal mixture by cohort fits this shape").
NEED_MEDIAN = _by_cohort(60.0, 50.0, 80.0, 20.0)  # assumption
NEED_SIGMA = _by_cohort(0.85, 0.75, 0.70, 1.00)  # assumption
# about 80% notional, 15% direct payment, 5% third party (domain.md, NHS Digital PHB 2023/24)
MANAGEMENT_P = _ordered(C.MANAGEMENT, {"notional": 0.80, "direct_payment": 0.15, "third_party": 0.05})
DIRECT_PAYMENT = C.MANAGEMENT.index("direct_payment")
NEW_NEED_SHARE = 0.10  # prior_service_cost exactly 0 (assumption; "new need" in domain.md)
PRIOR_COST_RATIO = 0.85  # median prior cost / RAS-equivalent budget (assumption)
PRIOR_COST_SIGMA = 0.6  # assumption
EXIT_REASON_P = _ordered(C.EXIT_REASONS, {"died": 0.45, "moved": 0.20, "left_programme": 0.35})  # assumption

# ---------------------------------------------------------------------------------------------
# Budgets. RAS rate in GBP per need point by cohort (assumption), giving median indicative budgets
# of about 9.6k (LTC), 12k (children), 20k (LD) and 3k (MH) a year and a long right tail:
# "from a few hundred pounds to well over GBP 100k a year, most above GBP 1k" (domain.md);
# about 3% under 1k, under 1% over 100k.
RAS_RATE = _by_cohort(160.0, 240.0, 250.0, 150.0)
AGREED_NOISE_SIGMA = 0.12  # agreed = indicative x lognormal(0, 0.12): median ratio 1.0 (brief)
PERIOD_DAYS = 365  # a year of care; period_end = period_start + 364 (inclusive last day)
# Funding blend: mean shares by cohort (assumption; domain.md: NHS + council social care, plus
# education for children), drawn per person from a Dirichlet with this concentration.
_FUNDING_KEYS = ("funded_nhs", "funded_social_care", "funded_education")
FUNDING_MEAN = _by_cohort(
    *(
        _ordered(C.FUNDING_COLUMNS, dict(zip(_FUNDING_KEYS, shares)))
        for shares in ((0.60, 0.40, 0.00), (0.40, 0.30, 0.30), (0.35, 0.65, 0.00), (0.70, 0.30, 0.00))
    )
)
FUNDING_CONCENTRATION = 20.0

# ---------------------------------------------------------------------------------------------
# Spend. Category weights by cohort (assumption).
_CATEGORY_KEYS = (
    "personal_assistants", "home_care", "therapies", "equipment", "respite",
    "day_opportunities", "transport", "community_health", "other",
)  # fmt: skip
CATEGORY_WEIGHTS = _by_cohort(
    *(
        _ordered(C.SPEND_CATEGORIES, dict(zip(_CATEGORY_KEYS, w)))
        for w in (
            (0.20, 0.30, 0.10, 0.10, 0.05, 0.05, 0.05, 0.12, 0.03),  # LTC: home care, community health
            (0.15, 0.05, 0.25, 0.10, 0.20, 0.05, 0.05, 0.10, 0.05),  # children: therapies, respite
            (0.25, 0.10, 0.05, 0.03, 0.15, 0.30, 0.07, 0.02, 0.03),  # LD: day opportunities, PAs
            (0.20, 0.05, 0.25, 0.02, 0.05, 0.15, 0.08, 0.10, 0.10),  # MH: therapies, PAs
        )
    )
)
N_CATEGORIES_P = np.array([0.25, 0.35, 0.25, 0.15])  # 1-4 categories per person (assumption)
UTILISATION_BETA = (8.8, 1.2)  # person utilisation ~ Beta, mean 0.88 (brief; assumption)
SPEND_NOISE_SIGMA = 0.30  # month-to-month lognormal noise, mean 1 (assumption)
REFUND_PROBABILITY = 0.35  # direct-payment period ending with recovered unspent money (assumption)
REFUND_FRACTION = (0.3, 0.9)  # share of the unspent money recovered (assumption)

# ---------------------------------------------------------------------------------------------
# Events. Base rates per person-year by cohort (assumption; the brief's examples for emergency
# admissions, A&E about 1.5 a year): rows in contract.EVENT_TYPES order.
EVENT_RATE = _ordered(
    C.EVENT_TYPES,
    {
        "emergency_admission": _by_cohort(0.90, 0.40, 0.50, 0.60),
        "elective_admission": _by_cohort(0.35, 0.20, 0.15, 0.10),
        "ae_attendance": _by_cohort(1.60, 1.30, 1.20, 1.80),
        "outpatient": _by_cohort(4.00, 3.00, 2.00, 1.50),
        "care_home_admission": _by_cohort(0.04, 0.00, 0.01, 0.01),  # frail older people mostly
    },
)
EMERGENCY = C.EVENT_TYPES.index("emergency_admission")
ELECTIVE = C.EVENT_TYPES.index("elective_admission")
FRAILTY_SHAPE = 2.0  # person frailty ~ gamma(shape 2, mean 1) (assumption)
NEED_RATE_POWER = 0.3  # rate x (need / cohort median)^0.3, normalised to mean 1 (assumption)
SECULAR_TREND = 1.05  # every rate after index, both groups (assumption; the brief's example)
PRE_INDEX_DAYS = 365  # events cover the 12 months before index_date (contract)
# length of stay (bed days) per admission: Poisson(gamma(shape, mean)), so zero-day stays happen.
EMERGENCY_LOS_MEAN = _by_cohort(6.5, 2.5, 5.0, 8.0)  # assumption
EMERGENCY_LOS_SHAPE = 0.9
ELECTIVE_LOS_MEAN = 1.2  # mostly day cases (assumption)
ELECTIVE_LOS_SHAPE = 0.5
# costs at approximate NHS reference costs x lognormal(mean 1, sd-log 0.2) (assumption).
# Care-home admissions get no cost (empty): placements are priced by the council, not at NHS
# reference cost; they also have bed_days 0 (they are not hospital stays).
EVENT_COST_FIXED = _ordered(
    C.EVENT_TYPES,
    {"emergency_admission": 900.0, "elective_admission": 1300.0, "ae_attendance": 180.0,
     "outpatient": 140.0, "care_home_admission": np.nan},
)  # fmt: skip
EVENT_COST_PER_BED_DAY = _ordered(
    C.EVENT_TYPES,
    {"emergency_admission": 350.0, "elective_admission": 350.0, "ae_attendance": 0.0,
     "outpatient": 0.0, "care_home_admission": 0.0},
)  # fmt: skip
EVENT_COST_SIGMA = 0.2

# ---------------------------------------------------------------------------------------------
# Surveys: baseline at index_date; follow-up at index + 365 days.
FOLLOW_UP_DAYS = 365
FOLLOW_UP_MISSING = 0.17  # non-response among those eligible (assumption; brief: 15-20%)
ITEM_MISSING = 0.03  # each instrument blank on a returned questionnaire (assumption)
GHQ12_MIN_AGE = 16  # GHQ-12 is a self-report questionnaire for 16+ (assumption)
BASELINE, FOLLOW_UP = C.TIMEPOINTS.index("baseline"), C.TIMEPOINTS.index("follow_up")
# baseline mean by cohort, sd; follow-up = mean + rho * (baseline - mean) + drift + gain + noise
ASCOT_MEAN = _by_cohort(0.62, 0.66, 0.68, 0.60)  # ~0.65 (brief; assumption by cohort)
ASCOT_SD, ASCOT_RHO, ASCOT_DRIFT, ASCOT_NOISE = 0.15, 0.6, 0.018, 0.10  # drift: PSSRU controls +0.018
EQ5D_MEAN = _by_cohort(0.55, 0.75, 0.68, 0.60)  # assumption
EQ5D_SD, EQ5D_RHO, EQ5D_DRIFT, EQ5D_NOISE = 0.25, 0.6, -0.005, 0.15  # assumption
GHQ12_MEAN = _by_cohort(14.0, 13.0, 12.0, 19.0)  # assumption
GHQ12_SD, GHQ12_RHO, GHQ12_DRIFT, GHQ12_NOISE = 6.0, 0.5, -0.5, 4.0  # assumption; no ipc effect

# ---------------------------------------------------------------------------------------------
# Contracts: 3-6 block contracts per site in categories budgets buy (brief); P(funder = nhs),
# else social_care (assumption).
CONTRACT_NHS_P = {"home_care": 0.2, "day_opportunities": 0.2, "respite": 0.3, "community_health": 0.9, "therapies": 0.7}
CONTRACT_CATEGORIES = tuple(c for c in C.SPEND_CATEGORIES if c in CONTRACT_NHS_P)
assert len(CONTRACT_CATEGORIES) == len(CONTRACT_NHS_P), "contract categories must be spend categories"
CONTRACT_FUNDERS = (C.FUNDERS.index("social_care"), C.FUNDERS.index("nhs"))
CONTRACT_VALUE_SHARE = (0.3, 1.0)  # annual value / site's annual budget money (assumption)
CONTRACT_MIN_VALUE = 25_000.0
CONTRACT_NOTICE_MONTHS = (3, 12)
CONTRACT_END_MONTHS = (3, 36)  # months after the extract month (assumption)

# Blocks for the two big tables: they bound memory (~100-200 MB of row arrays per block) and
# are part of the algorithm (draws happen block by block), so changing them changes the data.
SPEND_CHUNK_HOLDERS = 25_000  # budget holders per block (~250k spend rows)
EVENTS_CHUNK_PEOPLE = 50_000  # people per block (~800k event rows)


# random streams (numpy SeedSequence([seed, stream])): one per table, so redrawing one table
# never reshuffles another
_S_SITES, _S_PEOPLE, _S_BUDGETS, _S_SPEND, _S_EVENTS, _S_SURVEYS, _S_CONTRACTS, _S_PERSON, _S_SERVICES = range(9)


# services outside the budget (optional table) and the true incremental cost

# each person's main outside service by cohort (assumption), and who pays for it
SERVICE_P = _by_cohort(
    *(
        _ordered(C.SERVICES, dict(zip(C.SERVICES, p)))
        for p in (
            (0.45, 0.30, 0.00, 0.15, 0.05, 0.05),  # LTC: care packages, district nursing, CHC
            (0.30, 0.40, 0.05, 0.15, 0.05, 0.05),  # children
            (0.70, 0.10, 0.05, 0.10, 0.00, 0.05),  # LD: care packages
            (0.20, 0.10, 0.60, 0.05, 0.00, 0.05),  # MH: community mental health teams
        )
    )
)
SERVICE_FUNDER = {"social_care_package": "social_care", "community_health": "nhs", "mental_health_community": "nhs",
                  "continuing_healthcare": "nhs", "primary_care": "nhs", "other": "social_care"}
SERVICE_COST_SIGMA = 0.2  # month-to-month lognormal noise, mean 1 (assumption)



def _validate_config(config: SynthConfig) -> None:
    if not 1 <= config.sites <= MAX_SITES:
        raise ValueError(f"sites must be between 1 and {MAX_SITES}, got {config.sites}")
    if config.people < config.sites:
        raise ValueError(f"people ({config.people}) must be at least the number of sites ({config.sites})")
    if not 0.0 <= config.ipc_share <= 1.0:
        raise ValueError(f"ipc_share must be between 0 and 1, got {config.ipc_share}")
    for name in ("admissions_rr", "bed_days_rr"):
        if not getattr(config, name) >= 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")
    if config.admissions_rr == 0 and config.bed_days_rr != 0:
        raise ValueError("bed_days_rr must be 0 when admissions_rr is 0 (no admissions, no bed days)")
    if not config.baseline_need_imbalance > -1:
        raise ValueError("baseline_need_imbalance must be > -1")
    if not 0.0 <= config.exit_share <= 1.0:
        raise ValueError(f"exit_share must be between 0 and 1, got {config.exit_share}")
    for name in ("ipc_exit_ratio", "pre_year_shock_sd", "ipc_services_kept"):
        if not getattr(config, name) >= 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")
    if not isinstance(config.extract_date, date) or isinstance(config.extract_date, datetime):
        raise ValueError("extract_date must be a datetime.date (not a datetime)")



def _config_dict(config: SynthConfig) -> dict:
    out = asdict(config)
    out["extract_date"] = config.extract_date.isoformat()
    return out


"""Deterministic synthetic IPC datasets with known effects.

:func:`synthesise` writes a dataset folder in the shape of the data contract (shared/contract.md):
the seven tables as CSV, ``dataset.yaml`` and ``truth.json`` (the configuration plus the facts
the generator put in, so analyses can be tested against a known answer).

Design:

* Everything is vectorised with numpy; there is no per-person Python loop. People-level arrays
  are held in memory (a few hundred MB at 5 million people); the two big tables (spend, events)
  are generated and written in blocks of people, so their size never sits in memory at once.
* Randomness comes from independent streams (``numpy.random.SeedSequence([seed, stream])``) per
  table, so one config always gives byte-identical files, and changing how one table is drawn
  does not reshuffle the others. Per-site draws are made for all 30 listed areas, so the first
  nine sites look the same whether ``sites`` is 9 or 30.
* Numbers come from shared/domain.md where it has one (cited beside the constant); everything
  else is marked "assumption": plausible calibration, never a finding.

The sites are real English upper-tier local authorities (names, NHS regions, ONS mid-2020
population and IMD 2019 average score from data/reference/areas.csv). They were chosen only to
span NHS regions and deprivation; they are NOT the IPC demonstrator sites and nothing in the
generated data describes them.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from . import contract as C

__all__ = ["SynthConfig", "synthesise", "generate_tables", "SITE_AREAS", "FORMATS"]

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
# Sites: a fixed, ordered list of real English upper-tier areas (copied from
# data/reference/areas.csv, built by scripts/build_reference.py; tests check they still agree).
# Order: the first 9 cover all 7 NHS regions and IMD scores from 5.8 (Wokingham) to 45.0
# (Blackpool); the rest alternate regions and deprivation. NOT the IPC demonstrator sites.
# (area_code, area_name, nhs_region, population ONS mid-2020, IMD 2019 average score)
SITE_AREAS: tuple[tuple[str, str, str, int, float], ...] = (
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
MAX_SITES = len(SITE_AREAS)
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

# random streams
_S_SITES, _S_PEOPLE, _S_BUDGETS, _S_SPEND, _S_EVENTS, _S_SURVEYS, _S_CONTRACTS, _S_PERSON, _S_SERVICES = range(9)

_EPOCH = date(1970, 1, 1)


# ---------------------------------------------------------------------------------------------
# helpers


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *keys])))


def _day(d: date) -> int:
    return (d - _EPOCH).days


def _iso(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


def _month_of(days: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of each day number."""
    return np.asarray(days, dtype="int64").astype("datetime64[D]").astype("datetime64[M]").astype("int64")


def _month_start(months: np.ndarray) -> np.ndarray:
    """Day number of the first day of each month (months since 1970-01)."""
    return np.asarray(months, dtype="int64").astype("datetime64[M]").astype("datetime64[D]").astype("int64")


def _allocate(total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Integers summing to total, at least `minimum` each (when possible), the rest in proportion
    to weights by largest remainder (ties to the earlier index)."""
    n = len(weights)
    base = min(minimum, total // n)
    rest = total - base * n
    quota = rest * weights / weights.sum()
    counts = np.floor(quota).astype(np.int64)
    short = rest - counts.sum()
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[:short]] += 1
    return counts + base


def _pennies(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 100.0).astype(np.int64)


def _gbp(pennies: np.ndarray) -> pa.Array:
    return pa.array(pennies / 100.0, type=pa.float64())


def _segments(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows expanded from segments of the given lengths: (segment index, position within)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    seg = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(len(seg), dtype=np.int64) - starts[seg]
    return seg, pos


def _vocab(values: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """Text column from integer codes into a vocabulary; negative codes are missing."""
    codes = np.asarray(codes)
    idx = pa.array(codes.astype(np.int32), mask=codes < 0)
    return pa.array(values, type=pa.string()).take(idx)


def _dates(days: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.date32(), mask=missing)


class _BlockTable:
    """A table written in blocks of rows, each checked against the contract's columns."""

    def __init__(self, schema: pa.Schema, writer):
        self.schema = schema
        self.writer = writer
        self.rows = 0

    def write(self, columns: dict[str, pa.Array]) -> None:
        if set(columns) != set(self.schema.names):
            raise ValueError(f"columns {sorted(columns)} are not the contract's {self.schema.names}")
        table = pa.table(columns, schema=self.schema)
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self.writer.close()


class _CsvTable(_BlockTable):
    """CSV with pyarrow: bare header, no quoting (values never need it)."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.file = open(path, "wb")
        self.file.write((",".join(schema.names) + "\n").encode())
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        super().__init__(schema, pacsv.CSVWriter(self.file, schema, write_options=options))

    def close(self) -> None:
        super().close()
        self.file.close()


def _schema(table: str) -> pa.Schema:
    """Column names and order straight from the contract; writing a column it lacks fails."""
    kinds = {"text": pa.string(), "integer": pa.int64(), "number": pa.float64(), "date": pa.date32()}
    return pa.schema([(c.name, kinds[c.kind]) for c in C.COLUMNS[table]])


def _write_small(path: Path, table: str, rows: dict[str, list]) -> None:
    """A small table (sites, contracts) with RFC 4180 quoting only where a value needs it."""
    names = [c.name for c in C.COLUMNS[table]]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        for values in zip(*(rows[n] for n in names)):
            writer.writerow(["" if v is None else v for v in values])


class _ParquetTable(_BlockTable):
    """The Parquet twin of :class:`_CsvTable`: the same blocks, written as row groups."""

    def __init__(self, path: Path, schema: pa.Schema):
        super().__init__(schema, pq.ParquetWriter(path, schema, compression="zstd"))


def _write_small_parquet(path: Path, table: str, rows: dict[str, list]) -> None:
    """A small table (sites, contracts) as Parquet with the contract's types (ISO text -> date)."""
    schema = _schema(table)
    arrays = []
    for field in schema:
        values = rows[field.name]
        if pa.types.is_date32(field.type):
            values = [None if v is None else date.fromisoformat(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path, compression="zstd")


def _num(x: float, digits: int = 6) -> float:
    return float(round(float(x), digits))


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


def _config_dict(config: SynthConfig) -> dict:
    out = asdict(config)
    out["extract_date"] = config.extract_date.isoformat()
    return out


# ---------------------------------------------------------------------------------------------
# where the tables go: CSV files in a folder (synthesise) or frames in memory (generate_tables).
# Both receive exactly the same draws, so the frames equal what loading the files would give.


class _FolderSink:
    def __init__(self, folder: Path, format: str = "csv"):
        self.folder = folder
        self.format = format

    def table(self, name: str) -> "_CsvTable | _ParquetTable":
        if self.format == "parquet":
            return _ParquetTable(self.folder / f"{name}.parquet", _schema(name))
        return _CsvTable(self.folder / f"{name}.csv", _schema(name))

    def small(self, name: str, rows: dict[str, list]) -> None:
        if self.format == "parquet":
            _write_small_parquet(self.folder / f"{name}.parquet", name, rows)
        else:
            _write_small(self.folder / f"{name}.csv", name, rows)


class _MemoryTable:
    """The in-memory twin of :class:`_CsvTable`: same checks, keeps Arrow tables."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.parts: list[pa.Table] = []
        self.rows = 0

    def write(self, columns: dict[str, pa.Array]) -> None:
        if set(columns) != set(self.schema.names):
            raise ValueError(f"columns {sorted(columns)} are not the contract's {self.schema.names}")
        table = pa.table(columns, schema=self.schema)
        self.parts.append(table)
        self.rows += table.num_rows

    def close(self) -> None:
        pass

    def arrow(self) -> pa.Table:
        return pa.concat_tables(self.parts) if self.parts else self.schema.empty_table()


class _MemorySink:
    def __init__(self):
        self.big: dict[str, _MemoryTable] = {}
        self.rows: dict[str, dict[str, list]] = {}

    def table(self, name: str) -> _MemoryTable:
        self.big[name] = _MemoryTable(_schema(name))
        return self.big[name]

    def small(self, name: str, rows: dict[str, list]) -> None:
        self.rows[name] = rows

    def frames(self) -> dict:
        """Typed frames as the dataset loader returns them (contract kinds -> pandas dtypes)."""
        import pandas as pd

        dtypes = {"text": "string", "integer": "Int64", "number": "float64", "date": "datetime64[ns]"}
        out = {}
        for name in C.TABLES:
            if name in self.big:
                frame = self.big[name].arrow().to_pandas()
            elif name not in self.rows:  # an optional table not generated
                frame = pd.DataFrame({c.name: [] for c in C.COLUMNS[name]})
            else:
                frame = pd.DataFrame({c.name: self.rows[name][c.name] for c in C.COLUMNS[name]})
            for col in C.COLUMNS[name]:
                if col.kind == "date":
                    frame[col.name] = pd.to_datetime(frame[col.name]).astype("datetime64[ns]")
                else:
                    frame[col.name] = frame[col.name].astype(dtypes[col.kind])
            out[name] = frame
        return out


# ---------------------------------------------------------------------------------------------
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


def _months_from(first_day: np.ndarray, last_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first month number, number of months) whose first day lies in [first_day, last_day]."""
    first = _month_of(first_day) + (_month_start(_month_of(first_day)) < first_day)
    return first, np.maximum(_month_of(last_day) - first + 1, 0)


def _write_services(table, rng, person_id, cohort, ipc, index, exit_day, monthly, kept) -> int:
    """One row per person and month (first day from 12 months before index to exit or extract)
    of the person's main outside service: prior_service_cost / 12 a month with noise; after
    index, budget holders keep ``kept`` of it (the budget replaces the rest)."""
    n = len(index)
    service = (rng.random(n)[:, None] > np.cumsum(SERVICE_P, axis=1)[cohort][:, :-1]).sum(axis=1)
    funder = np.array([C.FUNDERS.index(SERVICE_FUNDER[v]) for v in C.SERVICES])[service]
    for lo in range(0, n, EVENTS_CHUNK_PEOPLE):
        ids = np.arange(lo, min(lo + EVENTS_CHUNK_PEOPLE, n))
        ids = ids[monthly[ids] > 0]
        first, count = _months_from(index[ids] - PRE_INDEX_DAYS, exit_day[ids])
        seg, pos = _segments(count)
        person = ids[seg]
        day = _month_start(first[seg] + pos)
        scale = np.where(ipc[person] & (day >= index[person]), kept, 1.0)
        noise = np.exp(SERVICE_COST_SIGMA * rng.standard_normal(len(seg)) - SERVICE_COST_SIGMA**2 / 2)
        table.write({
            "person_id": person_id.take(pa.array(person)),
            "month": _dates(day),
            "service": _vocab(C.SERVICES, service[person]),
            "funder": _vocab(C.FUNDERS, funder[person]),
            "cost": _gbp(_pennies(monthly[person] * scale * noise)),
        })
    table.close()
    return table.rows


def _incremental_cost_truth(cfg, extract, ipc, cohort, index, exit_day, holders, spend_year, education_share, monthly,
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


def generate_tables(config: SynthConfig) -> tuple[dict, dict]:
    """The dataset :func:`synthesise` would write for ``config``, in memory, without any file.

    Returns ``(tables, truth)``: the seven contract tables as typed frames (the dtypes
    :func:`ipcreport.data.dataset.load_dataset` gives) and the truth dict (as in truth.json). The
    draws are the same as :func:`synthesise`'s, so the values are too. For simulation studies
    that need many replicates quickly (benchmarks/validity.py).
    """
    _validate_config(config)
    sink = _MemorySink()
    truth, _ = _generate(sink, config)
    return sink.frames(), json.loads(json.dumps(truth, allow_nan=False))


# ---------------------------------------------------------------------------------------------
# the generator


def synthesise(out_dir: Path, config: SynthConfig, *, overwrite: bool = False, format: str = "csv") -> dict:
    """Write a synthetic dataset to ``out_dir``; return the truth dict (also in truth.json).

    The folder is built in a temporary sibling and renamed into place, so a reader never sees a
    half-written dataset. Refuses (ValueError) to replace a non-empty folder unless overwrite.
    ``format`` is ``"csv"`` (the default) or ``"parquet"``: the same draws and values either way
    (the tables load to equal frames); only the files differ. truth.json and dataset.yaml do not
    depend on it.
    """
    _validate_config(config)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ValueError(f"{out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not overwrite:
            raise ValueError(f"{out_dir} exists and is not empty (pass overwrite=True to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the dataset folder is not
    try:
        truth, meta = _generate(_FolderSink(tmp, format), config)
        with open(tmp / "dataset.yaml", "w", encoding="utf-8") as handle:
            yaml.safe_dump(meta, handle, sort_keys=False, allow_unicode=True, width=100)
        with open(tmp / "truth.json", "w", encoding="utf-8") as handle:
            json.dump(truth, handle, indent=2, allow_nan=False)
            handle.write("\n")
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            os.rmdir(old)
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return truth


def _generate(sink: "_FolderSink | _MemorySink", cfg: SynthConfig) -> tuple[dict, dict]:
    """Draw every table into ``sink``; return (truth, dataset.yaml contents)."""
    extract = _day(cfg.extract_date)
    n_sites, n = cfg.sites, cfg.people

    # ---- sites -------------------------------------------------------------------------------
    rng = _rng(cfg.seed, _S_SITES)
    areas = SITE_AREAS[:n_sites]
    offsets = rng.integers(0, GO_LIVE_SPREAD_MONTHS, size=MAX_SITES)[:n_sites]  # all 30 drawn
    latest_go_live = _month_of(np.array([extract]))[0] - GO_LIVE_LATEST_MONTHS_BEFORE_EXTRACT
    go_live = _month_start(latest_go_live - offsets)
    site_pop = np.array([a[3] for a in areas], dtype=np.float64)
    site_imd = np.array([a[4] for a in areas], dtype=np.float64)
    per_site = _allocate(n, site_pop, MIN_PEOPLE_PER_SITE)
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

    # ---- people ------------------------------------------------------------------------------
    rng = _rng(cfg.seed, _S_PEOPLE)
    site = np.repeat(np.arange(n_sites), per_site)
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
    site_codes = tuple(a[0] for a in areas)
    people_table = sink.table("people")
    people_table.write(
        {
            "person_id": person_id,
            "site_code": _vocab(site_codes, site),
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
    del age_normal, age_child, latent, z_need, window  # keep peak memory down at millions

    # ---- budgets (ipc only) ------------------------------------------------------------------
    rng = _rng(cfg.seed, _S_BUDGETS)
    holders = np.flatnonzero(ipc)
    h_cohort = cohort[holders]
    n_periods = (exit_day[holders] - index[holders]) // PERIOD_DAYS + 1  # start <= min(extract, exit)
    p_holder, p_k = _segments(n_periods)  # period -> holder position, period number
    p_person = holders[p_holder]
    p_start = index[p_person] + PERIOD_DAYS * p_k
    p_end = p_start + PERIOD_DAYS - 1
    indicative_p = _pennies(RAS_RATE[h_cohort] * need[holders])  # per holder, every period
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
            "person_id": person_id.take(pa.array(p_person)),
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
    del alpha, gam, share, p_share, funded

    # ---- spend (ipc only) --------------------------------------------------------------------
    rng = _rng(cfg.seed, _S_SPEND)
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
    is_dp = management[holders] == DIRECT_PAYMENT

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
    period_of_holder_start = np.cumsum(n_periods) - n_periods
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
                "person_id": person_id.take(pa.array(holders[r_holder])),
                "month": _dates(_month_start(r_month)),
                "category": _vocab(C.SPEND_CATEGORIES, cats[r_holder, r_slot]),
                "amount": _gbp(amount),
            }
        )
    spend_table.close()

    # ---- events (everyone) -------------------------------------------------------------------
    rng = _rng(cfg.seed, _S_EVENTS)
    trend = np.exp(cfg.need_trend * z_need_std - cfg.need_trend**2 / 2)  # need changes the post-index trend
    need_factor = (need / NEED_MEDIAN[cohort]) ** NEED_RATE_POWER / np.exp((NEED_RATE_POWER * NEED_SIGMA[cohort]) ** 2 / 2)
    los_scale = cfg.bed_days_rr / cfg.admissions_rr if cfg.admissions_rr > 0 else 1.0
    post_days = exit_day - index + 1
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
        base = EVENT_RATE[:, c].T * (frailty[lo:hi] * need_factor[lo:hi])[:, None]  # m x types
        post_mult = np.full((m, n_types), SECULAR_TREND) * trend[lo:hi, None]
        post_mult[:, EMERGENCY] *= np.where(g, cfg.admissions_rr, 1.0)
        seg_len = np.stack([np.full(m, PRE_INDEX_DAYS), post_days[lo:hi]], axis=1)  # m x 2
        seg_start = np.stack([index[lo:hi] - PRE_INDEX_DAYS, index[lo:hi]], axis=1)
        pre = base.copy()
        pre[:, EMERGENCY] *= np.exp(log_shock[lo:hi])  # a transient bad (or good) year before index
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
                "person_id": person_id.take(pa.array(e_person[order])),
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

    # ---- surveys (everyone) ------------------------------------------------------------------
    rng = _rng(cfg.seed, _S_SURVEYS)
    gain = ipc.astype(np.float64)

    def instrument(mean, sd, rho, drift, noise, effect, lo_hi, digits, need_shift=0.0):
        mu = mean[cohort]
        b = mu + sd * rng.standard_normal(n)
        f = mu + rho * (b - mu) + drift + effect * gain + need_shift * z_need_std + noise * rng.standard_normal(n)
        b, f = np.clip(b, *lo_hi), np.clip(f, *lo_hi)
        return np.round(b, digits), np.round(f, digits)

    shift = cfg.need_in_questionnaire
    ascot_b, ascot_f = instrument(ASCOT_MEAN, ASCOT_SD, ASCOT_RHO, ASCOT_DRIFT, ASCOT_NOISE, cfg.ascot_gain, C.ASCOT_RANGE, 3,
                                  shift)
    eq5d_b, eq5d_f = instrument(EQ5D_MEAN, EQ5D_SD, EQ5D_RHO, EQ5D_DRIFT, EQ5D_NOISE, cfg.eq5d_gain, C.EQ5D_RANGE, 3,
                                shift)
    ghq_b, ghq_f = instrument(GHQ12_MEAN, GHQ12_SD, GHQ12_RHO, GHQ12_DRIFT, GHQ12_NOISE, 0.0, C.GHQ12_RANGE, 0)
    follow_day = index + FOLLOW_UP_DAYS
    eligible = (follow_day <= extract) & (~exited | (exit_day >= follow_day))
    responded = eligible & (rng.random(n) >= FOLLOW_UP_MISSING)
    item_missing = rng.random((6, n)) < ITEM_MISSING  # ascot, eq5d, ghq12 x baseline, follow-up
    too_young = age < GHQ12_MIN_AGE
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
            "person_id": person_id.take(pa.array(s_person)),
            "survey_date": _dates(np.where(s_follow, follow_day[s_person], index[s_person])),
            "timepoint": _vocab(C.TIMEPOINTS, np.where(s_follow, FOLLOW_UP, BASELINE)),
            **{name: pa.array(v, mask=miss) for name, (v, miss) in values.items()},
        }
    )
    surveys_table.close()

    # ---- contracts ---------------------------------------------------------------------------
    site_money = np.bincount(site[holders], weights=indicative_p / 100.0, minlength=n_sites)
    extract_month = _month_of(np.array([extract]))[0]
    contract_rows: dict[str, list] = {c.name: [] for c in C.COLUMNS["contracts"]}
    for s in range(n_sites):  # a loop over at most 30 sites, not over people
        r = _rng(cfg.seed, _S_CONTRACTS, s)
        k = int(r.integers(3, 7))
        cat = r.integers(0, len(CONTRACT_CATEGORIES), size=k)
        nhs = r.random(k) < np.array([CONTRACT_NHS_P[CONTRACT_CATEGORIES[i]] for i in cat])
        value = np.maximum(site_money[s] * r.uniform(*CONTRACT_VALUE_SHARE, size=k), CONTRACT_MIN_VALUE)
        notice = r.integers(CONTRACT_NOTICE_MONTHS[0], CONTRACT_NOTICE_MONTHS[1] + 1, size=k)
        end = _month_start(extract_month + r.integers(*CONTRACT_END_MONTHS, size=k) + 1) - 1  # month end
        for j in range(k):
            contract_rows["site_code"].append(site_codes[s])
            contract_rows["contract_id"].append(f"{site_codes[s]}-BC{j + 1:02d}")
            contract_rows["category"].append(CONTRACT_CATEGORIES[cat[j]])
            contract_rows["funder"].append(C.FUNDERS[CONTRACT_FUNDERS[int(nhs[j])]])
            contract_rows["annual_value"].append(int(np.round(value[j], -2)))  # whole hundreds of GBP
            contract_rows["notice_months"].append(int(notice[j]))
            contract_rows["end_date"].append(_iso(end[j]))
    sink.small("contracts", contract_rows)

    # ---- services (everyone; optional table) ---------------------------------------------------
    monthly_service = prior_p / 100.0 / 12.0  # prior_service_cost is a 12-month figure
    services_rows = None
    if cfg.services:
        services_rows = _write_services(sink.table("services"), _rng(cfg.seed, _S_SERVICES), person_id, cohort, ipc, index,
                        exit_day, monthly_service, cfg.ipc_services_kept)
    cost_truth = _incremental_cost_truth(cfg, extract, ipc, cohort, index, exit_day, holders, spend_in_follow_up_year,
                                         holder_education, monthly_service, frailty * need_factor * trend, los_scale)

    # ---- truth -------------------------------------------------------------------------------
    def rate(count, years):
        return count / years if years > 0 else None

    def ratio(a, b):
        return a / b if a is not None and b not in (None, 0) else None

    emerg_rate = [[rate(emerg_count[gi, t], person_years[gi, t]) for t in (0, 1)] for gi in (0, 1)]
    beds_rate = [[rate(emerg_beds[gi, t], person_years[gi, t]) for t in (0, 1)] for gi in (0, 1)]
    did_adm = ratio(ratio(emerg_rate[0][1], emerg_rate[0][0]), ratio(emerg_rate[1][1], emerg_rate[1][0]))
    did_beds = ratio(ratio(beds_rate[0][1], beds_rate[0][0]), ratio(beds_rate[1][1], beds_rate[1][0]))

    both = responded
    outcome = {}
    for name, b, f, miss in (
        ("ascot", ascot_b, ascot_f, item_missing[0] | item_missing[1]),
        ("eq5d", eq5d_b, eq5d_f, item_missing[2] | item_missing[3]),
    ):
        ok = both & ~miss
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

    completed = p_completed
    agreed_done = p_agreed[completed].sum()
    groups = {"ipc": ipc, "comparison": ~ipc}
    by_site_group_cohort = {
        code: {
            gname: {cname: int(((site == s) & gmask & (cohort == ci)).sum()) for ci, cname in enumerate(C.COHORTS)}
            for gname, gmask in groups.items()
        }
        for s, code in enumerate(site_codes)
    }
    mgmt_counts = np.bincount(management[holders], minlength=len(C.MANAGEMENT))
    truth = {
        "generator": "ipcreport.data.synth",
        "config": _config_dict(cfg),
        "notes": [
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
        ],
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
            "exited": int(exited.sum()),
            "rows": {
                "sites": n_sites,
                "people": n,
                "budgets": len(p_person),
                "spend": spend_table.rows,
                "events": events_table.rows,
                "surveys": surveys_table.rows,
                "contracts": len(contract_rows["contract_id"]),
                "services": services_rows,
            },
        },
        "sites": {
            code: {"go_live": _iso(go_live[s]), "people": int(per_site[s])} for s, code in enumerate(site_codes)
        },
        "effects": {
            "admissions_rr": cfg.admissions_rr,
            "bed_days_rr": cfg.bed_days_rr,
            "ascot_gain": cfg.ascot_gain,
            "eq5d_gain": cfg.eq5d_gain,
            "ghq12_gain": 0.0,
            "secular_trend": SECULAR_TREND,
            "length_of_stay_scale_ipc_after_index": _num(los_scale),
            "baseline_need_imbalance": cfg.baseline_need_imbalance,
        },
        "exits": {
            "share": cfg.exit_share,
            "frailty_power": cfg.exit_frailty,
            "ipc_exit_ratio": cfg.ipc_exit_ratio,
            "reason_probabilities": dict(zip(C.EXIT_REASONS, EXIT_REASON_P.tolist())),
            "by_group_reason": {
                gname: {r: int((gmask & (exit_reason == k)).sum()) for k, r in enumerate(C.EXIT_REASONS)}
                for gname, gmask in groups.items()
            },
            "enrolled_in_last_year": {
                gname: int((gmask & (index + FOLLOW_UP_DAYS > extract + 1)).sum()) for gname, gmask in groups.items()
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
            "people": int(new_need.sum()),
            "share": _num(new_need.mean()),
            "ipc_people": int((new_need & ipc).sum()),
            "agreed_budget_gbp_all_periods": _num(p_agreed[new_need[p_person]].sum() / 100.0, 2),
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
            "realised_net": _num(p_spend_net[completed].sum() / agreed_done) if agreed_done else None,
            "realised_gross": _num(p_spend_gross[completed].sum() / agreed_done) if agreed_done else None,
            "refunded_periods": int(p_refunded.sum()),
        },
        "events": {
            "base_rate_per_person_year": {
                etype: dict(zip(C.COHORTS, EVENT_RATE[k].tolist())) for k, etype in enumerate(C.EVENT_TYPES)
            },
            "emergency_los_mean": dict(zip(C.COHORTS, EMERGENCY_LOS_MEAN.tolist())),
            "elective_los_mean": ELECTIVE_LOS_MEAN,
            "frailty_gamma_shape": FRAILTY_SHAPE,
            "counts_by_type": dict(zip(C.EVENT_TYPES, all_counts.tolist())),
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
            "follow_up_eligible": int(eligible.sum()),
            "follow_up_returned": int(responded.sum()),
            "ascot": outcome["ascot"],
            "eq5d": outcome["eq5d"],
        },
    }

    meta = {
        "name": cfg.name,
        "extract_date": cfg.extract_date,
        "synthetic": True,
        "description": (
            f"Synthetic IPC dataset: {n} people in {n_sites} sites, generated with known effects "
            f"(emergency admissions rate ratio {cfg.admissions_rr}, bed days {cfg.bed_days_rr}, ASCOT gain "
            f"{cfg.ascot_gain}, EQ-5D gain {cfg.eq5d_gain}). Site names, regions, populations and IMD "
            "scores are real public figures for English upper-tier areas; the sites are not the IPC "
            "demonstrators and every person, budget, event and survey is invented. truth.json holds "
            "what was put in."
        ),
        "source": "ipcreport synth",
        "config": _config_dict(cfg),
    }
    return truth, meta


def main(argv: list[str] | None = None) -> int:
    """``python -m ipcreport.data.synth OUT_DIR [--sites N --people N --seed N --format csv|parquet --overwrite]``."""
    import argparse

    parser = argparse.ArgumentParser(description="Write a synthetic IPC dataset with known effects.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--sites", type=int, default=SynthConfig.sites)
    parser.add_argument("--people", type=int, default=SynthConfig.people)
    parser.add_argument("--seed", type=int, default=SynthConfig.seed)
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    config = SynthConfig(sites=args.sites, people=args.people, seed=args.seed)
    truth = synthesise(args.out_dir, config, overwrite=args.overwrite, format=args.format)
    print(f"wrote {args.out_dir}: {truth['counts']['rows']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The data contract (shared/contract.md) in one place: tables, columns, types, vocabularies.

Every other module reads names from here; nothing else spells a column or a code. The rules
themselves are checked in :mod:`ipcreport.data.validation` (single-table rules as pandera schemas
built from these specs, cross-table rules as row masks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TABLES = ("sites", "people", "budgets", "spend", "events", "surveys", "contracts", "services")
# Tables a dataset may leave out: an absent one reads as an empty table (no rows).
OPTIONAL_TABLES = ("services",)

GROUPS = ("ipc", "comparison")
COHORTS = ("long_term_conditions", "children_complex_needs", "learning_disability", "mental_health")
SEXES = ("female", "male", "other", "unknown")
MANAGEMENT = ("notional", "third_party", "direct_payment")
SPEND_CATEGORIES = (
    "personal_assistants",
    "home_care",
    "therapies",
    "equipment",
    "respite",
    "day_opportunities",
    "transport",
    "community_health",
    "other",
)
EVENT_TYPES = (
    "emergency_admission",
    "elective_admission",
    "ae_attendance",
    "outpatient",
    "care_home_admission",
)
ADMISSION_TYPES = ("emergency_admission", "elective_admission", "care_home_admission")
TIMEPOINTS = ("baseline", "follow_up")
FUNDERS = ("nhs", "social_care", "education")
EXIT_REASONS = ("died", "moved", "left_programme")
SERVICES = (
    "social_care_package",
    "community_health",
    "mental_health_community",
    "continuing_healthcare",
    "primary_care",
    "other",
)
FUNDING_COLUMNS = ("funded_nhs", "funded_social_care", "funded_education")

SITE_CODE_PATTERN = r"^[A-Za-z0-9_-]{1,20}$"
FUNDING_TOLERANCE_GBP = 1.0
MAX_PERIOD_DAYS = 366
MAX_SPEND_AMOUNT_GBP = 1_000_000
CHILD_AGE_LIMIT = 18

# Quality-of-life instrument ranges (contract: surveys).
ASCOT_RANGE = (-0.171, 1.0)
EQ5D_RANGE = (-0.594, 1.0)
GHQ12_RANGE = (0.0, 36.0)

Kind = Literal["text", "integer", "number", "date"]


@dataclass(frozen=True)
class Column:
    """One column of a contract table.

    ``required`` means every row must have a value; ``minimum``/``maximum`` are inclusive
    bounds unless ``exclusive_minimum``; ``allowed`` is a vocabulary; ``pattern`` a regex.
    """

    name: str
    kind: Kind
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None
    unique: bool = False
    # added after the first release: a file without this column reads as all missing (a
    # column added to the contract must not break datasets made before it)
    may_be_absent: bool = False


@dataclass(frozen=True)
class DatasetMeta:
    """dataset.yaml: what the dataset is and when it was extracted."""

    name: str
    extract_date: "object"  # pandas.Timestamp; typed loosely to keep this module import-light
    synthetic: bool
    description: str = ""
    source: str = ""


DATASET_META_REQUIRED = ("name", "extract_date", "synthetic")

COLUMNS: dict[str, tuple[Column, ...]] = {
    "sites": (
        Column("site_code", "text", pattern=SITE_CODE_PATTERN, unique=True),
        Column("site_name", "text"),
        Column("region", "text"),
        Column("population", "integer", minimum=0, exclusive_minimum=True),
        Column("imd_score", "number", required=False, minimum=0),
        Column("go_live", "date", required=False),
    ),
    "people": (
        Column("person_id", "text", unique=True),
        Column("site_code", "text"),
        Column("group", "text", allowed=GROUPS),
        Column("cohort", "text", allowed=COHORTS),
        Column("index_date", "date"),
        Column("age", "integer", minimum=0, maximum=110),
        Column("sex", "text", allowed=SEXES),
        Column("imd_decile", "integer", required=False, minimum=1, maximum=10),
        Column("need_score", "number", minimum=0),
        Column("management", "text", required=False, allowed=MANAGEMENT),
        Column("prior_service_cost", "number", minimum=0),
        Column("exit_date", "date", required=False),
        Column("exit_reason", "text", required=False, allowed=EXIT_REASONS, may_be_absent=True),
    ),
    "budgets": (
        Column("person_id", "text"),
        Column("period_start", "date"),
        Column("period_end", "date"),
        Column("indicative_budget", "number", minimum=0),
        Column("agreed_budget", "number", minimum=0),
        Column("funded_nhs", "number", minimum=0),
        Column("funded_social_care", "number", minimum=0),
        Column("funded_education", "number", minimum=0),
    ),
    "spend": (
        Column("person_id", "text"),
        Column("month", "date"),
        Column("category", "text", allowed=SPEND_CATEGORIES),
        Column("amount", "number", minimum=-MAX_SPEND_AMOUNT_GBP, maximum=MAX_SPEND_AMOUNT_GBP),
    ),
    "events": (
        Column("person_id", "text"),
        Column("event_date", "date"),
        Column("event_type", "text", allowed=EVENT_TYPES),
        Column("bed_days", "integer", minimum=0),
        Column("cost", "number", required=False, minimum=0),
    ),
    "surveys": (
        Column("person_id", "text"),
        Column("survey_date", "date"),
        Column("timepoint", "text", allowed=TIMEPOINTS),
        Column("ascot", "number", required=False, minimum=ASCOT_RANGE[0], maximum=ASCOT_RANGE[1]),
        Column("eq5d", "number", required=False, minimum=EQ5D_RANGE[0], maximum=EQ5D_RANGE[1]),
        Column("ghq12", "number", required=False, minimum=GHQ12_RANGE[0], maximum=GHQ12_RANGE[1]),
    ),
    "contracts": (
        Column("site_code", "text"),
        Column("contract_id", "text", unique=True),
        Column("category", "text", allowed=SPEND_CATEGORIES),
        Column("funder", "text", allowed=FUNDERS),
        Column("annual_value", "number", minimum=0, exclusive_minimum=True),
        Column("notice_months", "integer", minimum=0, maximum=24),
        Column("end_date", "date"),
    ),
    "services": (
        Column("person_id", "text"),
        Column("month", "date"),
        Column("service", "text", allowed=SERVICES),
        Column("funder", "text", allowed=FUNDERS),
        Column("cost", "number", minimum=0),
    ),
}

# Columns dated by observation: none may lie after extract_date (planned dates may).
OBSERVED_DATE_COLUMNS: dict[str, tuple[str, ...]] = {
    "people": ("index_date", "exit_date"),
    "spend": ("month",),
    "events": ("event_date",),
    "surveys": ("survey_date",),
    "services": ("month",),
}

# Headline results every site run records in metrics.json (contract: "Headline results").
METRIC_KEYS = (
    "site_code",
    "dataset",
    "extract_date",
    "package_version",
    "data_sha256",
    "people_ipc",
    "people_comparison",
    "budget_total",
    "budget_committed_annual",
    "budget_mean",
    "budget_median",
    "spend_in_year",
    "share_notional",
    "share_third_party",
    "share_direct_payment",
    "share_funded_nhs",
    "share_funded_social_care",
    "share_funded_education",
    "utilisation",
    "ras_agreed_ratio_median",
    "admissions_irr",
    "admissions_irr_low",
    "admissions_irr_high",
    "bed_days_irr",
    "bed_days_irr_low",
    "bed_days_irr_high",
    "ascot_diff",
    "ascot_diff_low",
    "ascot_diff_high",
    "eq5d_diff",
    "eq5d_diff_low",
    "eq5d_diff_high",
    "new_need_cost",
    "net_new_money",
    "double_running_cost",
    "double_running_existing",
    "spend_forecast",
    "spend_p05",
    "spend_p95",
    "pooled_fund",
    "overspend_probability",
    "notes",
)


def column(table: str, name: str) -> Column:
    """The spec of one column; KeyError names what is missing."""
    for col in COLUMNS[table]:
        if col.name == name:
            return col
    raise KeyError(f"{table}.{name} is not in the contract")

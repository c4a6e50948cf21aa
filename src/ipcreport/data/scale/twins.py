"""The DuckDB twins of the pandas validator's cross-table rules (validation.CROSS_RULES): each
rule as a SQL flag over relations, with the rule's wording and severity read from the pandas side."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import pandas as pd

from .. import contract as C
from .. import validation as V
from .sql import _in_list, _q


# ---------------------------------------------------------------------------------------------
# rules as SQL flags


@dataclass
class _Rel:
    """One table as a DuckDB relation with ``_row`` (1-based data row) and typed columns."""

    table: str
    file: str
    name: str  # view or table in DuckDB
    columns: list[str]  # contract columns present, contract order
    raw_checked: bool = False  # parse and single-table rules already done (the pandas path)
    extra: list[str] = field(default_factory=list)


@dataclass
class _Flag:
    """A rule as a boolean SQL expression over the rows ``x`` of one table."""

    file: str
    column: str | None
    rule: str
    expr: str
    shown: str | None = None  # "raw:<col>", "typed:<col>", "funding" or None
    severity: str = "error"
    joins: tuple[str, ...] = ()
    asof: bool = False  # the spend-within-a-period rule: its own query with an ASOF join


@dataclass(frozen=True)
class _Twin:
    """The DuckDB form of one :data:`ipcreport.data.validation.CROSS_RULES` rule."""

    table: str
    column: str
    keyword: str  # a phrase of the CrossRule's wording that identifies it
    needs: tuple[tuple[str, str], ...]  # (table, column) the pandas rule reads (a KeyError skips it)
    expr: str = ""  # SQL over x and the joins; {extract} is the extract date literal
    joins: tuple[str, ...] = ()
    after_extract: bool = False  # no breach at all without an extract date
    shown: str | None = None
    special: str | None = None


def _fk(table: str) -> tuple[_Twin, _Twin]:
    return (
        _Twin(table, "person_id", "listed in people", ((table, "person_id"), ("people", "person_id")),
              "x.person_id IS NOT NULL AND _ids.k IS NULL", joins=("ids",)),
        _Twin(table, "person_id", "group ipc", ((table, "person_id"), ("people", "person_id"), ("people", "group")),
              "_ids.k IS NOT NULL AND NOT _ids.ipc", joins=("ids",)),
    )


def _late(table: str, column: str) -> _Twin:
    return _Twin(table, column, "on or before extract_date", ((table, column),),
                 f"x.{_q(column)} > {{extract}}", after_extract=True)


_BUDGET_KEYS = "(x.person_id IS NOT NULL AND x.period_start IS NOT NULL AND x.period_end IS NOT NULL)"
_FUNDED = " + ".join(f"coalesce(x.{c}, 0.0)" for c in C.FUNDING_COLUMNS)  # summed left to right, as pandas does

_TWINS: tuple[_Twin, ...] = (
    _Twin("people", "site_code", "listed in sites", (("people", "site_code"), ("sites", "site_code")),
          "x.site_code IS NOT NULL AND _sc.k IS NULL", joins=("site_codes",)),
    _Twin("people", "age", "age <", (("people", "cohort"), ("people", "age")),
          f"x.cohort = 'children_complex_needs' AND x.age >= {C.CHILD_AGE_LIMIT}"),
    _Twin("people", "management", "required for ipc", (("people", "group"), ("people", "management")),
          "x.\"group\" = 'ipc' AND x.management IS NULL"),
    _Twin("people", "management", "empty for comparison", (("people", "group"), ("people", "management")),
          "x.\"group\" = 'comparison' AND x.management IS NOT NULL"),
    _late("people", "index_date"),
    _Twin("people", "exit_date", "on or after index_date", (("people", "exit_date"), ("people", "index_date")),
          "x.exit_date < x.index_date"),
    _late("people", "exit_date"),
    _Twin("people", "exit_reason", "only where exit_date", (("people", "exit_reason"), ("people", "exit_date")),
          "x.exit_reason IS NOT NULL AND x.exit_date IS NULL"),
    *_fk("budgets"),
    _Twin("budgets", "period_end", "must be after period_start", (("budgets", "period_end"), ("budgets", "period_start")),
          "x.period_end <= x.period_start"),
    _Twin("budgets", "period_end", "days after period_start", (("budgets", "period_end"), ("budgets", "period_start")),
          # pandas: Timedelta.days > MAX (floor of whole days) <=> the gap is at least MAX + 1 days
          f"epoch_us(x.period_end) - epoch_us(x.period_start) >= {(C.MAX_PERIOD_DAYS + 1) * 86_400_000_000}"),
    _Twin("budgets", "period_start", "overlap",
          (("budgets", "person_id"), ("budgets", "period_start"), ("budgets", "period_end")),
          # pandas sorts by (person_id, period_start) stably and compares with the previous end
          f"{_BUDGET_KEYS} AND x.period_start < lag(x.period_end) OVER "
          f"(PARTITION BY x.person_id, {_BUDGET_KEYS} ORDER BY x.period_start, x._row)"),
    _Twin("budgets", "agreed_budget", "must equal agreed_budget",
          (("budgets", "agreed_budget"),) + tuple(("budgets", c) for c in C.FUNDING_COLUMNS),
          f"NOT ({' AND '.join(f'x.{c} IS NULL' for c in C.FUNDING_COLUMNS)}) "
          f"AND abs(({_FUNDED}) - x.agreed_budget) > {C.FUNDING_TOLERANCE_GBP!r}",
          shown="funding"),
    *_fk("spend"),
    _Twin("spend", "month", "first day", (("spend", "month"),),
          # pandas: NaT.day is NaN and NaN != 1, so a missing month is flagged here too
          "x.month IS NULL OR day(x.month) != 1"),
    _Twin("spend", "month", "within one of the person's budget periods",
          (("spend", "person_id"), ("spend", "month"), ("budgets", "person_id"), ("budgets", "period_start"),
           ("budgets", "period_end")), special="asof"),
    _late("spend", "month"),
    _fk("events")[0],
    _late("events", "event_date"),
    _Twin("events", "bed_days", "not admissions", (("events", "event_type"), ("events", "bed_days")),
          f"(x.event_type IS NULL OR x.event_type NOT IN ({_in_list(C.ADMISSION_TYPES)})) AND x.bed_days > 0"),
    _fk("surveys")[0],
    _late("surveys", "survey_date"),
    _Twin("surveys", "timepoint", "at most one", (("surveys", "person_id"), ("surveys", "timepoint")),
          "x.person_id IS NOT NULL AND x.timepoint IS NOT NULL AND "
          "count(*) OVER (PARTITION BY x.person_id, x.timepoint) > 1"),
    _Twin("surveys", "timepoint", "without a follow-up", (("surveys", "person_id"), ("surveys", "timepoint")),
          "x.timepoint = 'baseline' AND _fu.hit IS NULL", joins=("followed",)),
    _Twin("contracts", "site_code", "listed in sites", (("contracts", "site_code"), ("sites", "site_code")),
          "x.site_code IS NOT NULL AND _sc.k IS NULL", joins=("site_codes",)),
    _fk("services")[0],
    _Twin("services", "month", "first day", (("services", "month"),), "x.month IS NULL OR day(x.month) != 1"),
    _late("services", "month"),
)


def _twin_for(rule: V.CrossRule) -> _Twin:
    found = [t for t in _TWINS if t.table == rule.table and t.column == rule.column and t.keyword in rule.rule]
    if len(found) != 1:
        raise NotImplementedError(
            f"ipcreport.data.scale has {len(found)} DuckDB twins for the cross rule {rule.table}.{rule.column}: "
            f"{rule.rule!r}; add one to _TWINS in ipcreport/data/scale/twins.py so both engines check the same rules"
        )
    return found[0]


def cross_rule_twins() -> list[tuple[V.CrossRule, _Twin]]:
    """Every pandas cross rule with its DuckDB twin (raises if one has none)."""
    return [(rule, _twin_for(rule)) for rule in V.CROSS_RULES]


def _fmt_value(value: object) -> str:
    """validation._fmt on a value as DuckDB returns it (a datetime becomes a pandas.Timestamp)."""
    if isinstance(value, datetime.datetime) and not isinstance(value, pd.Timestamp):
        value = pd.Timestamp(value)
    return V._fmt(value)


def _funding_text(agreed, nhs, social, education) -> str:
    """validation._funding_shown for one row (pandas sums skipping NaN)."""
    funded = 0.0
    for part in (nhs, social, education):
        funded = funded + (0.0 if part is None else part)
    a = float("nan") if agreed is None else agreed
    return f"agreed {a:,.2f} vs funded {funded:,.2f}"

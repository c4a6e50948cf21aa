"""Check a dataset against the contract and report every breach at once.

Three layers, each producing :class:`Breach` records that name file, rows, column, rule and
offending values:

1. parsing: each cell must parse as its column's type (ISO dates, numbers, integers);
2. single-table rules: pandera schemas generated from :data:`ipcreport.data.contract.COLUMNS`
   (required values, ranges, vocabularies, patterns, uniqueness);
3. cross-table rules: plain pandas row masks (keys, funding sums, budget periods, dates after
   extract_date, ...), because they need more than one table.

Nothing here writes anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from . import contract as C
from .frames import isin

Severity = Literal["error", "warning"]
MAX_LISTED = 5  # rows and values quoted per breach; the count says how many in all


@dataclass(frozen=True)
class Breach:
    """One rule broken by one or more rows of one column of one file."""

    file: str
    column: str | None
    rule: str
    rows: tuple[int, ...] = ()  # 1-based data row numbers (row 1 = first row under the header)
    count: int = 0
    values: tuple[str, ...] = ()
    severity: Severity = "error"

    def __str__(self) -> str:
        where = self.file
        if self.rows:
            listed = ", ".join(str(r) for r in self.rows)
            more = f" and {self.count - len(self.rows)} more" if self.count > len(self.rows) else ""
            where += f", row{'s' if self.count > 1 else ''} {listed}{more}"
        if self.column:
            where += f", column {self.column}"
        text = f"{self.severity.upper()}: {where}: {self.rule}"
        if self.values:
            text += f" (found: {', '.join(self.values)})"
        return text


class DatasetInvalid(Exception):
    """Raised when a dataset breaks the contract; carries every breach."""

    def __init__(self, source: str, breaches: list[Breach]):
        self.source = source
        self.breaches = breaches
        errors = [b for b in breaches if b.severity == "error"]
        super().__init__(f"{source}: {len(errors)} contract breach(es)\n" + "\n".join(map(str, errors)))


def breach_from_mask(
    file: str,
    column: str | None,
    rule: str,
    mask: pd.Series,
    shown: pd.Series | None = None,
    severity: Severity = "error",
) -> Breach | None:
    """A breach for the rows where ``mask`` is true, or None when there are none."""
    mask = mask.fillna(False).astype(bool)
    count = int(mask.sum())
    if count == 0:
        return None
    positions = np.flatnonzero(mask.to_numpy())[:MAX_LISTED]
    values: tuple[str, ...] = ()
    if shown is not None:
        values = tuple(_fmt(v) for v in shown.iloc[positions])
    return Breach(file, column, rule, tuple(int(p) + 1 for p in positions), count, values, severity)


def _fmt(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "(empty)"
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


# ---------------------------------------------------------------------------------------------
# 1. parsing


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _missing(raw: pd.Series) -> pd.Series:
    if raw.dtype == object or pd.api.types.is_string_dtype(raw):
        return raw.isna() | (raw.astype("string").str.strip() == "")
    return raw.isna()


def parse_column(raw: pd.Series, kind: C.Kind) -> tuple[pd.Series, pd.Series]:
    """Convert a raw column to its contract type; returns (values, mask of unparsable cells)."""
    missing = _missing(raw)
    if kind == "text":
        values = raw.astype("string").str.strip().mask(missing)
        return values, pd.Series(False, index=raw.index)
    if kind in ("integer", "number"):
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            numbers = raw.astype("float64")
        else:
            numbers = pd.to_numeric(raw.astype("string").str.strip(), errors="coerce").astype("float64")
        bad = ~missing & (numbers.isna() | np.isinf(numbers))  # 'inf' is no amount of money
        if kind == "integer":
            bad |= ~missing & numbers.notna() & (numbers % 1 != 0)
            return numbers.where(~bad).round().astype("Int64"), bad
        return numbers.where(~bad), bad
    # dates: ISO text, or real dates from Parquet/Excel
    if pd.api.types.is_datetime64_any_dtype(raw):
        dates = pd.to_datetime(raw).dt.tz_localize(None) if getattr(raw.dt, "tz", None) else pd.to_datetime(raw)
        return dates.astype("datetime64[ns]"), pd.Series(False, index=raw.index)
    if not isinstance(raw.dtype, pd.StringDtype):  # a mix of text and date objects (Excel)
        raw = raw.map(lambda v: v.isoformat()[:10] if hasattr(v, "isoformat") else v)
    as_text = raw.astype("string").str.strip()
    iso = as_text.str.match(_ISO_DATE).fillna(False).astype(bool)
    dates = pd.to_datetime(as_text.where(iso), format="%Y-%m-%d", errors="coerce").astype("datetime64[ns]")
    bad = ~missing & dates.isna()
    return dates, bad


_DTYPE_OF_KIND = {"text": "string", "integer": "Int64", "number": "float64", "date": "datetime64[ns]"}


def absent_column(col: C.Column, index: pd.Index) -> pd.Series:
    """An all-missing column of ``col``'s type (a column a file may leave out)."""
    return pd.Series(pd.NA if col.kind in ("text", "integer") else None, index=index, dtype=_DTYPE_OF_KIND[col.kind])


def empty_table(table: str) -> pd.DataFrame:
    """A typed table with no rows (an optional table a dataset leaves out)."""
    return pd.DataFrame({c.name: pd.Series([], dtype=_DTYPE_OF_KIND[c.kind]) for c in C.COLUMNS[table]})


_TYPE_RULE = {
    "integer": "type: must be a whole number",
    "number": "type: must be a number ('.' decimal point, no thousands separators), not infinite",
    "date": "type: must be a date written YYYY-MM-DD",
}


def parse_table(table: str, file: str, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[Breach], dict[str, pd.Series]]:
    """Type every contract column of ``raw``; report missing columns, bad cells, extra columns.

    Unparsable cells become missing values in the typed frame; the returned masks of them
    keep such cells from being reported a second time as missing.
    """
    breaches: list[Breach] = []
    parsed, unparsable = {}, {}
    for col in C.COLUMNS[table]:
        if col.name not in raw.columns:
            if col.may_be_absent:  # a column added later: an older file reads as all missing
                parsed[col.name] = absent_column(col, raw.index)
                unparsable[col.name] = pd.Series(False, index=raw.index)
                continue
            breaches.append(Breach(file, col.name, "required column is missing from the header", count=1))
            continue
        values, bad = parse_column(raw[col.name], col.kind)
        if b := breach_from_mask(file, col.name, _TYPE_RULE.get(col.kind, ""), bad, raw[col.name]):
            breaches.append(b)
        parsed[col.name], unparsable[col.name] = values, bad
    extra = [c for c in raw.columns if c not in {col.name for col in C.COLUMNS[table]}]
    if extra:
        breaches.append(
            Breach(file, ", ".join(map(str, extra)), "extra column(s) are kept but ignored", severity="warning")
        )
    return pd.DataFrame(parsed, index=raw.index), breaches, unparsable


# ---------------------------------------------------------------------------------------------
# 2. single-table rules (pandera)


def _describe_bounds(col: C.Column) -> list[tuple["pa.Check", str]]:
    import pandera.pandas as pa  # imported when checking: it is slow to import

    checks = []
    if col.minimum is not None:
        if col.exclusive_minimum:
            checks.append((pa.Check.gt(col.minimum), f"must be > {col.minimum:g}"))
        else:
            checks.append((pa.Check.ge(col.minimum), f"must be >= {col.minimum:g}"))
    if col.maximum is not None:
        checks.append((pa.Check.le(col.maximum), f"must be <= {col.maximum:g}"))
    if col.allowed is not None:
        checks.append((pa.Check.isin(list(col.allowed)), "must be one of: " + ", ".join(col.allowed)))
    if col.pattern is not None:
        checks.append((pa.Check.str_matches(col.pattern), "must be 1-20 characters of A-Z a-z 0-9 _ -"))
    return checks


_DTYPES = _DTYPE_OF_KIND


def schema_for(table: str) -> "pa.DataFrameSchema":
    """The pandera schema of one contract table (types, bounds, vocabularies, uniqueness)."""
    import pandera.pandas as pa

    columns = {}
    for col in C.COLUMNS[table]:
        checks = [_with_error(check, text) for check, text in _describe_bounds(col)]
        columns[col.name] = pa.Column(
            _DTYPES[col.kind], checks=checks, nullable=True, unique=col.unique, required=False
        )
    return pa.DataFrameSchema(columns, strict=False, coerce=False)


def _with_error(check: "pa.Check", text: str) -> "pa.Check":
    # Carry the contract's wording so the failure case names the rule, not pandera's internals.
    check.error = text
    return check


@dataclass(frozen=True)
class Plausible:
    """A value the contract's types allow but no real extract holds: one rule, written for both
    engines (a pandas mask and the DuckDB condition on ``{ref}``), so they always agree."""

    table: str
    column: str
    rule: str
    mask: Callable[[pd.Series], pd.Series]
    sql: str
    show: bool = True  # quote the offending values (not for long text)
    severity: Severity = "error"


MAX_TEXT = 200  # a name or id longer than this is a mistake (and would swamp every page it is on)
MAX_BUDGET_GBP = 10_000_000  # one year of care; the largest personal health budgets are under GBP 1m
PLAUSIBLE: tuple[Plausible, ...] = (
    *(Plausible(table, column, f"implausible: longer than {MAX_TEXT} characters",
                lambda s: s.str.len() > MAX_TEXT, f"length({{ref}}) > {MAX_TEXT}", show=False)
      for table, column in (("sites", "site_name"), ("sites", "region"), ("contracts", "contract_id"),
                            ("people", "person_id"))),
    *(Plausible("budgets", column, f"implausible: over GBP {MAX_BUDGET_GBP:,} for one budget period",
                lambda s: s > MAX_BUDGET_GBP, f"{{ref}} > {MAX_BUDGET_GBP}")
      for column in ("agreed_budget", "indicative_budget")),
    Plausible("contracts", "annual_value", f"implausible: over GBP {100 * MAX_BUDGET_GBP:,} a year",
              lambda s: s > 100 * MAX_BUDGET_GBP, f"{{ref}} > {100 * MAX_BUDGET_GBP}"),
)
DUPLICATED_HEADER_RULE = "the header names this column more than once (pandas read the second as '{}')"


def duplicated_headers(columns: list[str]) -> list[tuple[str, str]]:
    """(column, the name pandas gave its repeat) for every header name given twice: pandas
    reads 'amount,amount' as 'amount' and 'amount.1', so the repeat would be silently ignored."""
    names = set(map(str, columns))
    found = []
    for name in map(str, columns):
        match = re.fullmatch(r"(.+)\.(\d+)", name)
        if match and match.group(1) in names:
            found.append((match.group(1), name))
    return found


def plausibility_breaches(table: str, file: str, frame: pd.DataFrame, columns: list[str]) -> list[Breach]:
    """Duplicated header names and implausible values (pandas engine; scale.py mirrors it)."""
    breaches = [Breach(file, column, DUPLICATED_HEADER_RULE.format(repeat), count=1)
                for column, repeat in duplicated_headers(columns)]
    for rule in PLAUSIBLE:
        if rule.table == table and rule.column in frame:
            values = frame[rule.column]
            mask = rule.mask(values).fillna(False).astype(bool)
            if b := breach_from_mask(file, rule.column, rule.rule, mask, values if rule.show else None,
                                     rule.severity):
                breaches.append(b)
    return breaches


def check_single_table(table: str, file: str, frame: pd.DataFrame,
                       unparsable: dict[str, pd.Series] | None = None) -> list[Breach]:
    """Required values plus the pandera schema; every failure grouped by column and rule."""
    breaches = []
    unparsable = unparsable or {}
    for col in C.COLUMNS[table]:
        if col.required and col.name in frame:
            already = unparsable.get(col.name, pd.Series(False, index=frame.index))
            missing = frame[col.name].isna() & ~already
            if b := breach_from_mask(file, col.name, "required: value is missing", missing):
                breaches.append(b)
    from pandera.errors import SchemaErrors

    try:
        schema_for(table).validate(frame, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
        cases = cases[cases["index"].notna()]
        for (column, check), group in cases.groupby(["column", "check"], sort=False):
            rule = "must be unique (duplicated)" if check == "field_uniqueness" else str(check)
            mask = pd.Series(frame.index.isin(group["index"].astype(int)), index=frame.index)
            if b := breach_from_mask(file, str(column), rule, mask, frame[column]):
                breaches.append(b)
    return breaches


# ---------------------------------------------------------------------------------------------
# 3. cross-table rules


@dataclass(frozen=True)
class CrossRule:
    """A rule over one table's rows that needs other tables or dataset.yaml."""

    table: str
    column: str
    rule: str
    bad_rows: Callable[[dict[str, pd.DataFrame], pd.Timestamp | None], pd.Series]
    shown: Callable[[dict[str, pd.DataFrame]], pd.Series] | None = None
    severity: Severity = "error"


def _ids(tables: dict[str, pd.DataFrame], group: str | None = None) -> pd.Index:
    people = tables["people"]
    if group is not None:
        people = people[people["group"] == group]
    return pd.Index(people["person_id"].dropna())


def _unknown_person(table: str) -> Callable:
    return lambda t, _: t[table]["person_id"].notna() & ~isin(t[table]["person_id"], _ids(t))


def _not_ipc_person(table: str) -> Callable:
    return lambda t, _: isin(t[table]["person_id"], _ids(t)) & ~isin(t[table]["person_id"], _ids(t, "ipc"))


def _after_extract(table: str, column: str) -> Callable:
    return lambda t, extract: (t[table][column] > extract) if extract is not None else _none(t[table])


def _none(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(False, index=frame.index)


def _funding_gap(t: dict[str, pd.DataFrame]) -> pd.Series:
    b = t["budgets"]
    return b[list(C.FUNDING_COLUMNS)].sum(axis=1, min_count=1) - b["agreed_budget"]


def _funding_shown(t: dict[str, pd.DataFrame]) -> pd.Series:
    b = t["budgets"]
    funded = b[list(C.FUNDING_COLUMNS)].sum(axis=1)
    text = [f"agreed {a:,.2f} vs funded {f:,.2f}" for a, f in zip(b["agreed_budget"], funded)]
    return pd.Series(text, index=b.index, dtype=object)


def _overlapping_periods(t: dict[str, pd.DataFrame], _) -> pd.Series:
    b = t["budgets"].dropna(subset=["person_id", "period_start", "period_end"])
    b = b.sort_values(["person_id", "period_start"])
    prev_end = b.groupby("person_id")["period_end"].shift()
    overlap = b["period_start"] < prev_end
    return overlap.reindex(t["budgets"].index, fill_value=False)


def _spend_outside_periods(t: dict[str, pd.DataFrame], _) -> pd.Series:
    """Spend months that fall in none of the person's budget periods (an as-of join per person)."""
    spend = t["spend"][["person_id", "month"]].dropna().reset_index(names="_row")
    periods = t["budgets"][["person_id", "period_start", "period_end"]].dropna()
    if spend.empty:
        return _none(t["spend"])
    if periods.empty:
        return t["spend"]["month"].notna()
    joined = pd.merge_asof(
        spend.sort_values("month"),
        periods.sort_values("period_start"),
        left_on="month",
        right_on="period_start",
        by="person_id",
        direction="backward",
    )
    outside = joined["period_end"].isna() | (joined["month"] > joined["period_end"])
    bad_rows = joined.loc[outside, "_row"]
    return pd.Series(t["spend"].index.isin(bad_rows), index=t["spend"].index)


def _duplicated_timepoint(t: dict[str, pd.DataFrame], _) -> pd.Series:
    s = t["surveys"]
    return s.duplicated(["person_id", "timepoint"], keep=False) & s["person_id"].notna() & s["timepoint"].notna()


def _baseline_without_follow_up(t: dict[str, pd.DataFrame], _) -> pd.Series:
    s = t["surveys"]
    followed = s.loc[s["timepoint"] == "follow_up", "person_id"]
    return (s["timepoint"] == "baseline") & ~isin(s["person_id"], followed)


CROSS_RULES: tuple[CrossRule, ...] = (
    CrossRule("people", "site_code", "must be a site_code listed in sites",
              lambda t, _: t["people"]["site_code"].notna() & ~t["people"]["site_code"].isin(t["sites"]["site_code"])),
    CrossRule("people", "age", "children_complex_needs means age < 18",
              lambda t, _: (t["people"]["cohort"] == "children_complex_needs") & (t["people"]["age"] >= C.CHILD_AGE_LIMIT)),
    CrossRule("people", "management", "required for ipc people (notional, third_party or direct_payment)",
              lambda t, _: (t["people"]["group"] == "ipc") & t["people"]["management"].isna()),
    CrossRule("people", "management", "must be empty for comparison people",
              lambda t, _: (t["people"]["group"] == "comparison") & t["people"]["management"].notna()),
    CrossRule("people", "index_date", "must be on or before extract_date", _after_extract("people", "index_date")),
    CrossRule("people", "exit_date", "must be on or after index_date",
              lambda t, _: t["people"]["exit_date"] < t["people"]["index_date"]),
    CrossRule("people", "exit_date", "must be on or before extract_date", _after_extract("people", "exit_date")),
    CrossRule("people", "exit_reason", "only where exit_date is set",
              lambda t, _: t["people"]["exit_reason"].notna() & t["people"]["exit_date"].isna()),
    CrossRule("budgets", "person_id", "must be a person_id listed in people", _unknown_person("budgets")),
    CrossRule("budgets", "person_id", "must be a person with group ipc (budgets are for budget holders)",
              _not_ipc_person("budgets")),
    CrossRule("budgets", "period_end", "must be after period_start",
              lambda t, _: t["budgets"]["period_end"] <= t["budgets"]["period_start"]),
    CrossRule("budgets", "period_end", f"must be at most {C.MAX_PERIOD_DAYS} days after period_start",
              lambda t, _: (t["budgets"]["period_end"] - t["budgets"]["period_start"]).dt.days > C.MAX_PERIOD_DAYS),
    CrossRule("budgets", "period_start", "a person's budget periods must not overlap", _overlapping_periods),
    CrossRule("budgets", "agreed_budget",
              f"funded_nhs + funded_social_care + funded_education must equal agreed_budget "
              f"within GBP {C.FUNDING_TOLERANCE_GBP:g}",
              lambda t, _: _funding_gap(t).abs() > C.FUNDING_TOLERANCE_GBP,
              shown=_funding_shown),
    CrossRule("spend", "person_id", "must be a person_id listed in people", _unknown_person("spend")),
    CrossRule("spend", "person_id", "must be a person with group ipc", _not_ipc_person("spend")),
    CrossRule("spend", "month", "must be the first day of a month", lambda t, _: t["spend"]["month"].dt.day != 1),
    CrossRule("spend", "month", "must fall within one of the person's budget periods", _spend_outside_periods),
    CrossRule("spend", "month", "must be on or before extract_date", _after_extract("spend", "month")),
    CrossRule("events", "person_id", "must be a person_id listed in people", _unknown_person("events")),
    CrossRule("events", "event_date", "must be on or before extract_date", _after_extract("events", "event_date")),
    CrossRule("events", "bed_days", "must be 0 for events that are not admissions",
              lambda t, _: ~t["events"]["event_type"].isin(C.ADMISSION_TYPES) & (t["events"]["bed_days"] > 0)),
    CrossRule("surveys", "person_id", "must be a person_id listed in people", _unknown_person("surveys")),
    CrossRule("surveys", "survey_date", "must be on or before extract_date",
              _after_extract("surveys", "survey_date")),
    CrossRule("surveys", "timepoint", "at most one baseline and one follow_up per person", _duplicated_timepoint),
    CrossRule("surveys", "timepoint", "baseline without a follow-up (outcomes use fewer people)",
              _baseline_without_follow_up, severity="warning"),
    CrossRule("contracts", "site_code", "must be a site_code listed in sites",
              lambda t, _: t["contracts"]["site_code"].notna() & ~t["contracts"]["site_code"].isin(t["sites"]["site_code"])),
    CrossRule("services", "person_id", "must be a person_id listed in people", _unknown_person("services")),
    CrossRule("services", "month", "must be the first day of a month", lambda t, _: t["services"]["month"].dt.day != 1),
    CrossRule("services", "month", "must be on or before extract_date", _after_extract("services", "month")),
)


def check_cross_tables(
    tables: dict[str, pd.DataFrame], files: dict[str, str], extract_date: pd.Timestamp | None
) -> list[Breach]:
    """Every cross-table rule whose tables and columns are all present."""
    breaches = []
    for rule in CROSS_RULES:
        if rule.table not in tables or "people" not in tables or "sites" not in tables:
            continue
        try:
            mask = rule.bad_rows(tables, extract_date)
        except KeyError:  # a column the rule needs is missing: already reported as such
            continue
        frame = tables[rule.table]
        # Warnings reach the briefing's data-quality section, so they quote no values.
        shown = None if rule.severity == "warning" else rule.shown(tables) if rule.shown else frame.get(rule.column)
        if b := breach_from_mask(files[rule.table], rule.column, rule.rule, mask, shown, rule.severity):
            breaches.append(b)
    return breaches

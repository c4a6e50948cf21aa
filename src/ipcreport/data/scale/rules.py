"""Checking a loaded dataset in DuckDB: the same breaches, in the same order, as the pandas validator."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from .. import contract as C
from .. import validation as V
from ..validation import MAX_LISTED, Breach
from .sql import _EXTRA_COLUMNS_RULE, _MISSING_COLUMN_RULE, _REQUIRED_RULE, _UNIQUE_RULE, _in_list, _lit, _q
from .twins import _Flag, _Rel, _fmt_value, _funding_text, cross_rule_twins


class _Rules:
    """DuckDataset's checking half: single-table rules from the contract, cross-table rules from
    their twins, and the flags turned into the pandas validator's Breach records."""

    # -- single-table rules -----------------------------------------------------------------

    def _single_table(self, rel: _Rel) -> list[Breach]:
        """Parsing breaches, the extra-column warning, required values and the pandera checks,
        in the order the pandas validator reports them."""
        items: list[Breach | _Flag] = []
        for col in C.COLUMNS[rel.table]:
            if col.name not in rel.columns:
                items.append(Breach(rel.file, col.name, _MISSING_COLUMN_RULE, count=1))
            elif col.kind != "text":
                items.append(_Flag(rel.file, col.name, V._TYPE_RULE[col.kind], f"x.{_q(col.name + '__bad')}",
                                   shown=f"raw:{col.name}"))
        if rel.extra:
            items.append(Breach(rel.file, ", ".join(map(str, rel.extra)), _EXTRA_COLUMNS_RULE, severity="warning"))
        present = [col for col in C.COLUMNS[rel.table] if col.name in rel.columns]
        for col in present:
            if col.required:
                not_bad = f" AND NOT x.{_q(col.name + '__bad')}" if col.kind != "text" else ""
                items.append(_Flag(rel.file, col.name, _REQUIRED_RULE, f"x.{_q(col.name)} IS NULL{not_bad}"))
        for col in present:
            ref = f"x.{_q(col.name)}"
            if col.unique:
                items.append(_Flag(rel.file, col.name, _UNIQUE_RULE,
                                   f"{ref} IS NOT NULL AND count(*) OVER (PARTITION BY {ref}) > 1",
                                   shown=f"typed:{col.name}"))
            for sql, text in zip(self._bound_sql(col, ref), [text for _, text in V._describe_bounds(col)], strict=True):
                items.append(_Flag(rel.file, col.name, text, sql, shown=f"typed:{col.name}"))
        # validation.plausibility_breaches, in its order: repeated header names, implausible values
        items += [Breach(rel.file, column, V.DUPLICATED_HEADER_RULE.format(repeat), count=1)
                  for column, repeat in V.duplicated_headers(rel.columns + rel.extra)]
        for rule in V.PLAUSIBLE:
            if rule.table == rel.table and rule.column in rel.columns:
                items.append(_Flag(rel.file, rule.column, rule.rule,
                                   f"coalesce({rule.sql.format(ref=f'x.{_q(rule.column)}')}, false)",
                                   shown=f"typed:{rule.column}" if rule.show else None, severity=rule.severity))
        return self._resolve(rel, items)

    @staticmethod
    def _bound_sql(col: C.Column, ref: str) -> list[str]:
        """Failing rows of each check, in validation._describe_bounds' order (nulls pass)."""
        out = []
        if col.minimum is not None:
            out.append(f"{ref} <= {col.minimum!r}" if col.exclusive_minimum else f"{ref} < {col.minimum!r}")
        if col.maximum is not None:
            out.append(f"{ref} > {col.maximum!r}")
        if col.allowed is not None:
            out.append(f"{ref} NOT IN ({_in_list(col.allowed)})")
        if col.pattern is not None:
            out.append(f"NOT regexp_full_match({ref}, {_lit(col.pattern)})")
        return out

    # -- cross-table rules ------------------------------------------------------------------

    def _join_sql(self, name: str) -> str:
        people, sites, surveys = (self.rels.get(t) for t in ("people", "sites", "surveys"))
        if name == "ids":
            if "ids" not in self._aux:
                ipc = ("bool_or(coalesce(\"group\" = 'ipc', false))" if "group" in people.columns else "false")
                self._ids_table = self._name("ids")
                self._run(f"CREATE OR REPLACE TEMP TABLE {self._ids_table} AS SELECT person_id AS k, "
                          f"{ipc} AS ipc FROM {people.name} WHERE person_id IS NOT NULL GROUP BY person_id", "person ids")
                self._aux.add("ids")
            return f"LEFT JOIN {self._ids_table} _ids ON x.person_id = _ids.k"
        if name == "site_codes":
            return (f"LEFT JOIN (SELECT DISTINCT site_code AS k FROM {sites.name} WHERE site_code IS NOT NULL) _sc "
                    "ON x.site_code = _sc.k")
        if name == "followed":  # pandas isin: a missing person_id matches a missing one
            return (f"LEFT JOIN (SELECT DISTINCT person_id AS k, true AS hit FROM {surveys.name} "
                    "WHERE timepoint = 'follow_up') _fu ON x.person_id IS NOT DISTINCT FROM _fu.k")
        raise KeyError(name)

    def _cross(self, extract: pd.Timestamp | None, severities=("error", "warning"),
               rels: dict[str, _Rel] | None = None) -> list[Breach]:
        """Every cross-table rule whose tables and columns are present (validation.check_cross_tables)."""
        rels = self.rels if rels is None else rels
        saved, self.rels = self.rels, rels
        saved_aux, self._aux = self._aux, set()
        try:
            return self._cross_inner(extract, severities)
        finally:
            self.rels, self._aux = saved, saved_aux

    def _cross_inner(self, extract, severities) -> list[Breach]:
        rels = self.rels
        by_table: dict[str, list[_Flag]] = defaultdict(list)
        order: list[_Flag] = []
        for rule, twin in cross_rule_twins():
            if rule.severity not in severities:
                continue
            if rule.table not in rels or "people" not in rels or "sites" not in rels:
                continue
            if any(t not in rels or c not in rels[t].columns for t, c in twin.needs):
                continue  # the pandas rule raises KeyError and is skipped: the column is reported missing
            if twin.after_extract and extract is None:
                continue
            rel = rels[rule.table]
            shown = None if rule.severity == "warning" else (twin.shown or f"typed:{rule.column}")
            if twin.special == "asof":
                flag = self._asof_flag(rule, rel, shown)
                if flag is None:
                    continue
            else:
                literal = f"TIMESTAMP '{pd.Timestamp(extract).isoformat(sep=' ')}'" if extract is not None else "NULL"
                flag = _Flag(rel.file, rule.column, rule.rule, twin.expr.replace("{extract}", literal), shown,
                             rule.severity, twin.joins)
            by_table[rule.table].append(flag)
            order.append(flag)
        results: dict[int, Breach | None] = {}
        for table, flags in by_table.items():
            for flag, breach in zip(flags, self._resolve(rels[table], flags, keep_empty=True)):
                results[id(flag)] = breach
        return [results[id(f)] for f in order if results.get(id(f)) is not None]

    def _asof_flag(self, rule: V.CrossRule, rel: _Rel, shown: str | None) -> _Flag | None:
        """validation._spend_outside_periods: the latest period starting on or before the month
        (per person) must not have ended before it."""
        budgets = self.rels["budgets"]
        spend_rows = self._run(
            f"SELECT count(*) FROM {rel.name} WHERE person_id IS NOT NULL AND month IS NOT NULL", "spend rows")[0][0]
        if spend_rows == 0:
            return None
        periods = (f"SELECT person_id, period_start, period_end FROM {budgets.name} "
                   "WHERE person_id IS NOT NULL AND period_start IS NOT NULL AND period_end IS NOT NULL")
        if self._run(f"SELECT count(*) FROM ({periods})", "budget periods")[0][0] == 0:
            return _Flag(rel.file, rule.column, rule.rule, "x.month IS NOT NULL", shown, rule.severity)
        return _Flag(rel.file, rule.column, rule.rule,
                     "x.person_id IS NOT NULL AND x.month IS NOT NULL AND (_p.period_end IS NULL OR x.month > _p.period_end)",
                     shown, rule.severity, joins=(f"ASOF LEFT JOIN ({periods}) _p ON x.person_id = _p.person_id "
                                                  "AND x.month >= _p.period_start",), asof=True)

    # -- evaluating flags -------------------------------------------------------------------

    def _resolve(self, rel: _Rel, items: list, keep_empty: bool = False) -> list:
        """Count and locate every flag (one pass per table, plus one per ASOF rule), fetch the
        shown values of the listed rows, and turn flags into Breach records."""
        flags = [f for f in items if isinstance(f, _Flag)]
        found: dict[int, tuple[int, list[int]]] = {}
        plain = [f for f in flags if not f.asof]
        groups = [plain] + [[f] for f in flags if f.asof]
        for group in groups:
            if not group:
                continue
            joins: list[str] = []
            for f in group:
                for j in f.joins:
                    sql = j if j.startswith("ASOF") else self._join_sql(j)
                    if sql not in joins:
                        joins.append(sql)
            inner = ", ".join(f"coalesce({f.expr}, false) AS f{i}" for i, f in enumerate(group))
            outer = ", ".join(f"coalesce(count_if(f{i}), 0), min(_row, {MAX_LISTED}) FILTER (WHERE f{i})" for i in range(len(group)))
            sql = (f"SELECT {outer} FROM (SELECT x._row, {inner} FROM {rel.name} x {' '.join(joins)})")
            row = self._run(sql, f"rules {rel.file}" + (" (as-of join)" if group[0].asof else ""))[0]
            for i, f in enumerate(group):
                found[id(f)] = (int(row[2 * i]), sorted(row[2 * i + 1] or []))
        # values of the listed rows
        wanted: set[str] = set()
        rows: set[int] = set()
        for f in flags:
            count, listed = found[id(f)]
            if count and f.shown:
                rows.update(listed)
                if f.shown == "funding":
                    wanted.update(("agreed_budget",) + C.FUNDING_COLUMNS)
                else:
                    kind, col = f.shown.split(":", 1)
                    wanted.add(col + "__raw" if kind == "raw" else col)
        values: dict[int, dict[str, object]] = {}
        if rows and wanted:
            cols = sorted(wanted)
            fetched = self._run(
                f"SELECT _row, {', '.join(_q(c) for c in cols)} FROM {rel.name} "
                f"WHERE _row IN ({', '.join(str(r) for r in sorted(rows))})", f"values {rel.file}")
            values = {r[0]: dict(zip(cols, r[1:])) for r in fetched}
        out = []
        for item in items:
            if isinstance(item, Breach):
                out.append(item)
                continue
            count, listed = found[id(item)]
            if count == 0:
                if keep_empty:
                    out.append(None)
                continue
            shown: tuple[str, ...] = ()
            if item.shown == "funding":
                shown = tuple(V._fmt(_funding_text(*(values[r].get(c) for c in ("agreed_budget",) + C.FUNDING_COLUMNS)))
                              for r in listed)
            elif item.shown:
                kind, col = item.shown.split(":", 1)
                key = col + "__raw" if kind == "raw" else col
                shown = tuple(_fmt_value(values[r].get(key)) for r in listed)
            out.append(Breach(item.file, item.column, item.rule, tuple(int(r) for r in listed), count, shown,
                              item.severity))
        return out

    # -- public -----------------------------------------------------------------------------

    def check(self) -> list[Breach]:
        """Every breach of the contract (errors and warnings), as the pandas validator reports them."""
        if self.breaches is None:
            breaches = list(self._load()) if not self._loaded else list(self._load_breaches)
            if self.folder.is_dir():
                extract = self.meta.extract_date if self.meta else None
                breaches += self._cross(extract)
            self.breaches = breaches
        return self.breaches

    @property
    def ok(self) -> bool:
        return not any(b.severity == "error" for b in self.check())

    @property
    def warnings(self) -> list[Breach]:
        return [b for b in self.check() if b.severity == "warning"]

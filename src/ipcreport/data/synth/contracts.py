"""What sits around the budgets: each site's block contracts (the contracts table) and the
services people had outside their budget (the optional services table), which budget holders
mostly give up after index."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .. import contract as C
from .arrays import _dates, _gbp, _iso, _month_of, _month_start, _months_from, _pennies, _rng, _segments, _vocab
from .params import (
    _S_CONTRACTS,
    CONTRACT_CATEGORIES,
    CONTRACT_END_MONTHS,
    CONTRACT_FUNDERS,
    CONTRACT_MIN_VALUE,
    CONTRACT_NHS_P,
    CONTRACT_NOTICE_MONTHS,
    CONTRACT_VALUE_SHARE,
    EVENTS_CHUNK_PEOPLE,
    PRE_INDEX_DAYS,
    SERVICE_COST_SIGMA,
    SERVICE_FUNDER,
    SERVICE_P,
    SynthConfig,
)


def draw_contracts(sink, cfg: SynthConfig, extract: int, site_codes: tuple[str, ...], site_money: np.ndarray) -> int:
    """3-6 block contracts per site (own stream per site), valued against the site's annual
    budget money. Writes the contracts table; returns its row count."""
    extract_month = _month_of(np.array([extract]))[0]
    contract_rows: dict[str, list] = {c.name: [] for c in C.COLUMNS["contracts"]}
    for s in range(len(site_codes)):  # a loop over sites, not over people
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
    return len(contract_rows["contract_id"])


def write_services(table, rng, person_id, cohort, ipc, index, exit_day, monthly, kept) -> int:
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

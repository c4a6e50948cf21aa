"""Small array helpers the generator's pieces share: random streams, day and month numbers,
pennies, segment expansion, and Arrow columns from codes."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa

_EPOCH = date(1970, 1, 1)



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



def _num(x: float, digits: int = 6) -> float:
    return float(round(float(x), digits))



def _months_from(first_day: np.ndarray, last_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first month number, number of months) whose first day lies in [first_day, last_day]."""
    first = _month_of(first_day) + (_month_start(_month_of(first_day)) < first_day)
    return first, np.maximum(_month_of(last_day) - first + 1, 0)


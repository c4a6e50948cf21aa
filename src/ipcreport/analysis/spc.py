"""Statistical process control: XmR charts with NHS England "Making Data Count" rules.

Pure functions: a series in, a tidy frame and a small summary out. No I/O, no plotting
(the chart is ``xmr_chart``).

Limits and rules, as NHS England's Making Data Count (MDC) guidance states them and as
NHSRplotthedots (nhs-r-community) implements them; where the two differ it is said below.

* **Limits**: mean ± 2.66 × mean moving range (the moving range is the absolute difference
  between consecutive points). With ``screen_outliers`` (the default, as in NHSRplotthedots
  and MDC), moving ranges at or above 3.267 × the mean moving range are left out and the mean
  moving range is taken again, once, so a single jump does not widen the limits. Limits are
  not truncated at zero.
* **Astronomical point**: a point strictly above the upper or below the lower limit.
* **Shift**: 7 or more consecutive points strictly above (or below) the mean; a point exactly
  on the mean belongs to neither side and breaks a run (NHSRplotthedots: ``sign(y - mean)``).
* **Trend**: 7 or more consecutive points each strictly higher (or lower) than the one before,
  i.e. 6 or more rising steps in a row; a tie breaks the trend. All points of the trend,
  including the first, are marked. A trend may sit anywhere, either side of the mean.
* **Two in three**: in any 3 consecutive points, all 3 on the same side of the mean and at
  least 2 of them beyond two-thirds of the way from the mean to the limit on that side (beyond
  "2 sigma", sigma = (upper limit - mean) / 3). Only the points beyond 2 sigma are marked, not
  the third point (NHSRplotthedots; MDC's Single Chart tool). Points beyond the process limit
  count towards the 2 (MDC changed its tools to this in late 2023, see NHSRplotthedots issue
  #194; the NHSRplotthedots release read counts only points between 2 and 3 sigma).
* **Which rule names a point** when several apply (this decides high/low and so improvement
  or concern): astronomical point, then trend, then two in three, then shift, the order
  NHSRplotthedots uses. A trend's side is its direction (rising = high) not the side of the
  mean; a point at the turn of a rise and a fall takes the direction of the step after it.
* **Segments**: with rebase dates, the limits and all rules are worked out separately for each
  segment (runs do not cross a rebase). A rebase date starts a new segment at the first point
  on or after it.
* **Baseline**: ``fix_after_n_points`` fixes each segment's limits on its first N points and
  extends them to the rest of the segment.
* **Trial limits**: limits worked out from fewer than 12 points are flagged as trial limits
  (MDC: "fewer than 12 points gives trial limits only"). NHSRplotthedots warns on the size of
  the group; here it is the number of points the limits are based on, so a baseline fixed on
  8 points gives trial limits however long the series runs.
* **Point class**: common cause, or special cause improvement / concern (the side against the
  improvement direction) / neutral (no improvement direction).
* **Variation icon**: from the most recent point's class, as NHSRplotthedots draws it:
  common cause, improvement high/low, concern high/low, neutral high/low.
* **Assurance icon** (only with a target and an improvement direction): the target against
  the limits of the latest segment: outside the limits on the bad side, the process will
  consistently fail it; outside on the good side, consistently pass; inside (or on a limit),
  hit and miss.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

LIMIT_FACTOR = 2.66  # 3 / d2, d2 = 1.128 for moving ranges of 2 points
SCREEN_FACTOR = 3.267  # upper range limit D4 for moving ranges of 2 points
RUN_LENGTH = 7
TRIAL_BELOW = 12

DIRECTIONS = ("increase", "decrease", "neutral")
POINT_CLASSES = ("common_cause", "special_cause_improvement", "special_cause_concern", "special_cause_neutral")
RULES = ("outside_limits", "trend", "two_in_three", "shift")  # in order of precedence
VARIATION_ICONS = ("common_cause", "improvement_high", "improvement_low", "concern_high", "concern_low",
                   "neutral_high", "neutral_low")
ASSURANCE_ICONS = ("consistent_pass", "consistent_fail", "hit_and_miss")

VARIATION_LABELS = {
    "common_cause": "Common cause variation",
    "improvement_high": "Special cause: improvement (high)",
    "improvement_low": "Special cause: improvement (low)",
    "concern_high": "Special cause: concern (high)",
    "concern_low": "Special cause: concern (low)",
    "neutral_high": "Special cause: neither improvement nor concern (high)",
    "neutral_low": "Special cause: neither improvement nor concern (low)",
}
ASSURANCE_LABELS = {
    "consistent_pass": "Consistently passing the target",
    "consistent_fail": "Consistently failing the target",
    "hit_and_miss": "Hit and miss: target within the limits",
}
RULE_LABELS = {
    "outside_limits": "Point outside the limits",
    "trend": "7 points rising or falling",
    "two_in_three": "2 of 3 points beyond two-thirds of the way to a limit",
    "shift": "7 points on one side of the mean",
}


class Sides(NamedTuple):
    """Points that are part of a special-cause signal, on the high and on the low side."""

    high: np.ndarray
    low: np.ndarray


class Limits(NamedTuple):
    mean: float
    lcl: float
    ucl: float
    mean_moving_range: float
    points: int  # how many points the limits are based on


@dataclass(frozen=True)
class SpcSummary:
    """What the icons say, for the notebook text and the chart badge."""

    variation: str
    assurance: str | None
    trial: bool
    improvement_direction: str
    target: float | None
    points: int
    segments: int
    mean: float
    lcl: float
    ucl: float

    @property
    def variation_label(self) -> str:
        return VARIATION_LABELS[self.variation]

    @property
    def assurance_label(self) -> str | None:
        return ASSURANCE_LABELS.get(self.assurance) if self.assurance else None


# --- limits --------------------------------------------------------------------------------


def moving_ranges(values: Sequence[float]) -> np.ndarray:
    """Absolute differences between consecutive points (one fewer than the points)."""
    return np.abs(np.diff(np.asarray(values, dtype=float)))


def xmr_limits(values: Sequence[float], screen_outliers: bool = True) -> Limits:
    """Mean and process limits (mean ± 2.66 × mean moving range) of the points given."""
    y = np.asarray(values, dtype=float)
    if y.size == 0:
        return Limits(np.nan, np.nan, np.nan, np.nan, 0)
    mean = float(y.mean())
    mr = moving_ranges(y)
    amr = float(mr.mean()) if mr.size else np.nan
    if screen_outliers and mr.size and amr > 0:
        amr = float(mr[mr < SCREEN_FACTOR * amr].mean())
    return Limits(mean, mean - LIMIT_FACTOR * amr, mean + LIMIT_FACTOR * amr, amr, int(y.size))


# --- rules: one function each, on one segment ----------------------------------------------


def _in_run(mask: np.ndarray, length: int) -> np.ndarray:
    """Marks the elements of ``mask`` that belong to a run of ``length`` or more True values."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.size, dtype=bool)
    start = None
    for i, flag in enumerate(np.append(mask, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= length:
                out[start:i] = True
            start = None
    return out


def rule_outside_limits(values: Sequence[float], lcl: float | np.ndarray, ucl: float | np.ndarray) -> Sides:
    """Points strictly above the upper or strictly below the lower process limit."""
    y = np.asarray(values, dtype=float)
    return Sides(y > ucl, y < lcl)


def rule_shift(values: Sequence[float], mean: float | np.ndarray, run: int = RUN_LENGTH) -> Sides:
    """Points in a run of ``run`` or more consecutive points strictly above (below) the mean.

    A point exactly on the mean is on neither side, so it ends a run.
    """
    y = np.asarray(values, dtype=float)
    return Sides(_in_run(y > mean, run), _in_run(y < mean, run))


def rule_trend(values: Sequence[float], run: int = RUN_LENGTH) -> Sides:
    """Points in a run of ``run`` or more points each strictly higher (lower) than the last.

    ``run`` points make ``run - 1`` steps; a step of zero (a tie) breaks the trend.
    """
    y = np.asarray(values, dtype=float)
    high = np.zeros(y.size, dtype=bool)
    low = np.zeros(y.size, dtype=bool)
    if y.size < 2:
        return Sides(high, low)
    step = np.diff(y)
    for out, steps in ((high, step > 0), (low, step < 0)):
        in_trend = _in_run(steps, run - 1)
        out[:-1] |= in_trend
        out[1:] |= in_trend
    return Sides(high, low)


def rule_two_in_three(values: Sequence[float], mean: float | np.ndarray, lcl: float | np.ndarray,
                      ucl: float | np.ndarray) -> Sides:
    """Points beyond 2 sigma where 2 or more of 3 consecutive points are, all 3 on that side.

    2 sigma is two-thirds of the way from the mean to the limit: mean + 2/3 (ucl - mean).
    Points beyond the limit itself count. Only the points beyond 2 sigma are marked.
    """
    y = np.asarray(values, dtype=float)
    n = y.size
    mean = np.broadcast_to(np.asarray(mean, dtype=float), y.shape)
    upper_2s = mean + 2.0 / 3.0 * (np.asarray(ucl, dtype=float) - mean)
    lower_2s = mean - 2.0 / 3.0 * (mean - np.asarray(lcl, dtype=float))
    sides = []
    for beyond, same_side in ((y > upper_2s, y > mean), (y < lower_2s, y < mean)):
        out = np.zeros(n, dtype=bool)
        for start in range(n - 2):
            window = slice(start, start + 3)
            if same_side[window].all() and beyond[window].sum() >= 2:
                out[window] |= beyond[window]
        sides.append(out)
    return Sides(*sides)


def special_cause(values: Sequence[float], mean: float | np.ndarray, lcl: float | np.ndarray,
                  ucl: float | np.ndarray) -> pd.DataFrame:
    """All four rules on one segment, and which rule names each point (by precedence).

    Columns: ``<rule>_high`` and ``<rule>_low`` for each rule, ``special_cause`` (any rule),
    ``rule`` (the rule that decides the point, or None) and ``side`` ("high", "low" or None).
    """
    y = np.asarray(values, dtype=float)
    results = {
        "outside_limits": rule_outside_limits(y, lcl, ucl),
        "trend": rule_trend(y),
        "two_in_three": rule_two_in_three(y, mean, lcl, ucl),
        "shift": rule_shift(y, mean),
    }
    frame = pd.DataFrame({f"{name}_{side}": getattr(sides, side) for name, sides in results.items()
                          for side in ("high", "low")})
    next_step = np.append(np.sign(np.diff(y)), 0.0) if y.size else y
    rule: list[str | None] = []
    side: list[str | None] = []
    for i in range(y.size):
        for name in RULES:
            high, low = bool(results[name].high[i]), bool(results[name].low[i])
            if high or low:
                if high and low:  # the turn between a rising and a falling trend
                    high = next_step[i] > 0
                rule.append(name)
                side.append("high" if high else "low")
                break
        else:
            rule.append(None)
            side.append(None)
    frame["special_cause"] = [r is not None for r in rule]
    frame["rule"] = pd.Series(rule, dtype=object)
    frame["side"] = pd.Series(side, dtype=object)
    return frame


def point_class(side: str | None, improvement_direction: str) -> str:
    """Common cause, or special cause improvement / concern / neutral from the signal's side."""
    if side is None:
        return "common_cause"
    if improvement_direction == "neutral":
        return "special_cause_neutral"
    good = "high" if improvement_direction == "increase" else "low"
    return "special_cause_improvement" if side == good else "special_cause_concern"


# --- the whole chart -------------------------------------------------------------------------


def _segments(dates: pd.Index, rebase: Iterable) -> np.ndarray:
    """Segment number (1, 2, ...) of each point; a rebase date starts a segment."""
    rebase = list(rebase)
    if isinstance(dates, pd.DatetimeIndex):
        cuts = pd.DatetimeIndex(pd.to_datetime(rebase)).as_unit(dates.unit).sort_values().asi8
        position = np.searchsorted(cuts, dates.asi8, side="right")
    else:
        cuts = np.sort(np.asarray(rebase, dtype=float))
        position = np.searchsorted(cuts, np.asarray(dates, dtype=float), side="right")
    return pd.factorize(position)[0] + 1


def xmr(values: pd.Series | Sequence[float], dates: Sequence | None = None, *,
        improvement_direction: str = "neutral", target: float | None = None, rebase: Iterable = (),
        fix_after_n_points: int | None = None, screen_outliers: bool = True,
        trial_below: int = TRIAL_BELOW) -> pd.DataFrame:
    """An XmR chart as a tidy frame, one row per point, in date order.

    ``values``: a Series indexed by date (or anything ordered), or values with ``dates``
    (if neither gives dates, points are numbered 1, 2, ...). No gaps or missing values.

    Columns: date, value, segment, baseline (point used for the limits), moving_range, mean,
    lcl, ucl, trial, the rule flags (``<rule>_high``/``<rule>_low``), special_cause, rule,
    side, point_class, improvement_direction, target.
    """
    if improvement_direction not in DIRECTIONS:
        raise ValueError(f"improvement_direction must be one of {DIRECTIONS}, not {improvement_direction!r}")
    if fix_after_n_points is not None and fix_after_n_points < 2:
        raise ValueError("fix_after_n_points needs at least 2 points (one moving range)")
    if dates is None:
        dates = values.index if isinstance(values, pd.Series) else np.arange(1, len(values) + 1)
    y = np.asarray(values, dtype=float)
    index = pd.Index(dates)
    if isinstance(index, pd.PeriodIndex):
        index = index.to_timestamp()
    if not (isinstance(index, pd.DatetimeIndex) or pd.api.types.is_numeric_dtype(index.dtype)):
        index = pd.DatetimeIndex(pd.to_datetime(index))  # dates given as text or Periods' starts
    if len(index) != y.size:
        raise ValueError("values and dates differ in length")
    if np.isnan(y).any():
        raise ValueError("an XmR chart needs a value for every date (no missing values)")
    if index.has_duplicates:
        raise ValueError("dates must be unique")
    order = np.argsort(index.to_numpy(), kind="stable")
    y, index = y[order], index[order]

    segment = _segments(index, rebase)
    pieces = []
    for number in np.unique(segment):
        seg = np.flatnonzero(segment == number)
        seg_y = y[seg]
        baseline = np.arange(seg.size) < (fix_after_n_points or seg.size)
        limits = xmr_limits(seg_y[baseline], screen_outliers=screen_outliers)
        flags = special_cause(seg_y, limits.mean, limits.lcl, limits.ucl)
        mr = np.concatenate([[np.nan], moving_ranges(seg_y)])
        piece = pd.DataFrame({
            "date": index[seg],
            "value": seg_y,
            "segment": int(number),
            "baseline": baseline,
            "moving_range": mr,
            "mean": limits.mean,
            "lcl": limits.lcl,
            "ucl": limits.ucl,
            "trial": limits.points < trial_below,
        })
        pieces.append(pd.concat([piece, flags], axis=1))
    frame = pd.concat(pieces, ignore_index=True)
    frame["point_class"] = [point_class(s, improvement_direction) for s in frame["side"]]
    frame["improvement_direction"] = improvement_direction
    frame["target"] = np.nan if target is None else float(target)
    return frame


def variation_icon(frame: pd.DataFrame) -> str:
    """The variation icon from the most recent point, as NHSRplotthedots draws it."""
    last = frame.iloc[-1]
    kind = str(last["point_class"]).removeprefix("special_cause_")
    return "common_cause" if kind == "common_cause" else f"{kind}_{last['side']}"


def assurance_icon(frame: pd.DataFrame) -> str | None:
    """Consistently passing / failing / hit and miss: the target against the latest limits.

    None without a target, with a neutral improvement direction or without limits.
    """
    last = frame.iloc[-1]
    target, direction = last["target"], last["improvement_direction"]
    if pd.isna(target) or direction == "neutral" or pd.isna(last["ucl"]):
        return None
    increasing = direction == "increase"
    if target > last["ucl"]:
        return "consistent_fail" if increasing else "consistent_pass"
    if target < last["lcl"]:
        return "consistent_pass" if increasing else "consistent_fail"
    return "hit_and_miss"


def summarise(frame: pd.DataFrame) -> SpcSummary:
    """Icons and latest limits of a frame made by :func:`xmr`."""
    last = frame.iloc[-1]
    return SpcSummary(
        variation=variation_icon(frame),
        assurance=assurance_icon(frame),
        trial=bool(last["trial"]),
        improvement_direction=str(last["improvement_direction"]),
        target=None if pd.isna(last["target"]) else float(last["target"]),
        points=len(frame),
        segments=int(frame["segment"].nunique()),
        mean=float(last["mean"]),
        lcl=float(last["lcl"]),
        ucl=float(last["ucl"]),
    )


def spc(values: pd.Series | Sequence[float], dates: Sequence | None = None,
        **options) -> tuple[pd.DataFrame, SpcSummary]:
    """:func:`xmr` and :func:`summarise` in one call: the tidy frame and its summary."""
    frame = xmr(values, dates, **options)
    return frame, summarise(frame)

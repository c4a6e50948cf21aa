"""XmR charts and the Making Data Count rules: a test per rule on series built by hand, then a
real NHS England A&E series worked out again step by step inside the test."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from ipcreport.analysis import spc as S
from ipcreport.report.charts import GREY, NHS_BLUE

matplotlib.use("Agg")

DATA = Path(__file__).resolve().parent / "data"
MONTHS = pd.date_range("2020-01-01", periods=40, freq="MS")


def idx(flags) -> list[int]:
    return [int(i) for i in np.flatnonzero(flags)]


# --- limits --------------------------------------------------------------------------------


def test_limits_are_mean_plus_minus_2_66_mean_moving_range():
    y = [10, 12, 11, 13, 12]
    # mean 58 / 5 = 11.6; moving ranges 2, 1, 2, 1 -> mean 1.5
    limits = S.xmr_limits(y)
    assert limits.mean == pytest.approx(11.6)
    assert limits.mean_moving_range == pytest.approx(1.5)
    assert limits.ucl == pytest.approx(11.6 + 2.66 * 1.5)
    assert limits.lcl == pytest.approx(11.6 - 2.66 * 1.5)


def test_screening_drops_moving_ranges_at_or_above_3_267_times_the_mean():
    y = [10, 11] * 10 + [30]
    # moving ranges: nineteen 1s and one 19 -> mean 38 / 20 = 1.9; 19 >= 3.267 x 1.9 = 6.2: dropped
    assert S.xmr_limits(y, screen_outliers=True).mean_moving_range == pytest.approx(1.0)
    assert S.xmr_limits(y, screen_outliers=False).mean_moving_range == pytest.approx(1.9)


# --- one test (or more) per rule, on the rule functions with the limits given ----------------


def test_rule_outside_limits_strictly_beyond():
    sides = S.rule_outside_limits([0, 5, 3, -3, -5, 0], lcl=-3, ucl=3)
    assert idx(sides.high) == [1]  # 3 is on the limit, not beyond it
    assert idx(sides.low) == [4]


def test_rule_shift_seven_above_the_mean():
    sides = S.rule_shift([1] * 7 + [-1], mean=0)
    assert idx(sides.high) == list(range(7))
    assert not sides.low.any()


def test_rule_shift_six_is_not_enough():
    sides = S.rule_shift([-1] + [1] * 6 + [-1] * 6, mean=0)
    assert not sides.high.any() and not sides.low.any()


def test_rule_shift_point_on_the_mean_breaks_the_run():
    sides = S.rule_shift([1, 1, 1, 0, 1, 1, 1, 1], mean=0)
    assert not sides.high.any()
    sides = S.rule_shift([-2] * 9, mean=0)
    assert idx(sides.low) == list(range(9))


def test_rule_trend_seven_rising():
    sides = S.rule_trend([5, 1, 2, 3, 4, 5, 6, 7, 3])
    assert idx(sides.high) == [1, 2, 3, 4, 5, 6, 7]  # the first point of the trend is included
    assert not sides.low.any()


def test_rule_trend_six_points_do_not_trigger():
    assert not S.rule_trend([1, 2, 3, 4, 5, 6, 0]).high.any()


def test_rule_trend_ties_break_a_trend():
    sides = S.rule_trend([1, 2, 3, 3, 4, 5, 6, 7])  # 1-2-3 then 3-4-5-6-7: neither is 7 long
    assert not sides.high.any() and not sides.low.any()


def test_rule_trend_seven_falling():
    sides = S.rule_trend([9, 8, 7, 6, 5, 4, 3])
    assert idx(sides.low) == list(range(7))


def test_rule_two_in_three_marks_only_points_beyond_two_sigma():
    # mean 0, ucl 3: two-thirds of the way to the limit is 2
    sides = S.rule_two_in_three([0, 2.5, 0.5, 2.5, 0], mean=0, lcl=-3, ucl=3)
    assert idx(sides.high) == [1, 3]  # not the middle point, which is above the mean but not beyond 2
    sides = S.rule_two_in_three([0, -2.5, -2.1, -0.5], mean=0, lcl=-3, ucl=3)
    assert idx(sides.low) == [1, 2]


def test_rule_two_in_three_needs_all_three_on_the_same_side():
    assert not S.rule_two_in_three([2.5, -2.5, 2.5], mean=0, lcl=-3, ucl=3).high.any()
    assert not S.rule_two_in_three([2.5, 2.5, -1], mean=0, lcl=-3, ucl=3).high.any()
    assert idx(S.rule_two_in_three([0.5, 2.5, 2.5, -1], mean=0, lcl=-3, ucl=3).high) == [1, 2]


def test_rule_two_in_three_counts_points_beyond_the_limit_and_not_exactly_two_sigma():
    assert idx(S.rule_two_in_three([2.5, 3.5, 0.5], mean=0, lcl=-3, ucl=3).high) == [0, 1]
    assert not S.rule_two_in_three([2.0, 2.5, 0.5], mean=0, lcl=-3, ucl=3).high.any()


def test_precedence_and_the_turn_of_a_trend():
    y = [1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2, 1]
    flags = S.special_cause(y, mean=4, lcl=-100, ucl=100)
    assert flags["trend_high"].iloc[6] and flags["trend_low"].iloc[6]
    assert flags["side"].iloc[6] == "low"  # the peak goes with the step after it
    assert list(flags["side"].iloc[:6]) == ["high"] * 6 and list(flags["side"].iloc[7:]) == ["low"] * 6
    # a point both outside the limits and in a trend is named by the limits
    flags = S.special_cause([1, 2, 3, 4, 5, 6, 20], mean=5, lcl=-10, ucl=10)
    assert flags["rule"].iloc[6] == "outside_limits" and flags["rule"].iloc[0] == "trend"


# --- the same rules through the whole chart, limits worked out from the series ----------------


def test_one_outlier():
    y = [10, 12] * 10
    y[15] = 30
    frame = S.xmr(pd.Series(y, index=MONTHS[:20]), improvement_direction="increase")
    # mean 238 / 20 = 11.9; moving ranges seventeen 2s and two 20s (screened out): mean 2
    assert frame["mean"].iloc[0] == pytest.approx(11.9)
    assert frame["ucl"].iloc[0] == pytest.approx(11.9 + 2.66 * 2)
    assert idx(frame["special_cause"]) == [15]
    assert frame.loc[15, "rule"] == "outside_limits" and frame.loc[15, "side"] == "high"
    assert frame.loc[15, "point_class"] == "special_cause_improvement"
    decrease = S.xmr(pd.Series(y, index=MONTHS[:20]), improvement_direction="decrease")
    assert decrease.loc[15, "point_class"] == "special_cause_concern"


def test_seven_above_the_mean():
    y = [12, 8] * 5 + [11] * 7
    frame = S.xmr(y)
    # mean 177 / 17 = 10.41, so the seven 11s are above it; the 12s alternate with 8s
    assert frame["mean"].iloc[0] == pytest.approx(177 / 17)
    assert idx(frame["special_cause"]) == list(range(10, 17))
    assert set(frame.loc[10:16, "rule"]) == {"shift"}


def test_a_run_of_six_does_not_trigger():
    y = [12, 8] * 5 + [11] * 6 + [8]
    frame = S.xmr(y)
    assert frame["mean"].iloc[0] < 11
    assert not frame["special_cause"].any()
    assert set(frame["point_class"]) == {"common_cause"}


def test_seven_rising():
    y = [10, 12] * 4 + [9, 9.5, 10, 10.5, 11, 11.5, 12]
    frame = S.xmr(y, improvement_direction="decrease")
    assert idx(frame["special_cause"]) == list(range(8, 15))
    assert set(frame.loc[8:14, "rule"]) == {"trend"}
    # a rising trend is high whichever side of the mean it is on; with decrease as improvement
    # it is a concern even below the mean
    assert frame.loc[8, "value"] < frame.loc[8, "mean"]
    assert set(frame.loc[8:14, "point_class"]) == {"special_cause_concern"}


def test_a_tie_breaks_the_trend():
    y = [10, 12] * 4 + [9, 9.5, 10, 10, 10.5, 11, 11.5, 12]
    frame = S.xmr(y)
    assert not frame["trend_high"].any()
    assert not frame["special_cause"].any()


def test_two_of_three_beyond_two_thirds():
    y = [10, 11] * 8 + [13.2, 11, 13.2]
    frame = S.xmr(y, improvement_direction="increase")
    mean = sum(y) / 19  # 10.8105
    amr = (15 * 1 + 3 * 2.2) / 18  # 1.2, nothing screened
    ucl = mean + 2.66 * amr  # 14.0025
    two_sigma = mean + 2 / 3 * 2.66 * amr  # 12.9385
    assert frame["ucl"].iloc[0] == pytest.approx(ucl)
    assert two_sigma < 13.2 < ucl and 11 > mean  # the construction: 2 beyond 2 sigma, all above the mean
    assert idx(frame["special_cause"]) == [16, 18]
    assert set(frame.loc[[16, 18], "rule"]) == {"two_in_three"}
    assert set(frame.loc[[16, 18], "point_class"]) == {"special_cause_improvement"}


# --- rebasing, baselines and trial limits ------------------------------------------------------


def test_rebasing_recalculates_limits_per_segment():
    y = [10, 11] * 6 + [20, 21] * 6
    series = pd.Series(y, index=MONTHS[:24])
    one = S.xmr(series)
    assert one["special_cause"].all()  # 12 below then 12 above one mean
    two = S.xmr(series, rebase=[MONTHS[12]])
    assert list(two["segment"]) == [1] * 12 + [2] * 12
    assert two.loc[0, "mean"] == pytest.approx(10.5) and two.loc[12, "mean"] == pytest.approx(20.5)
    assert two.loc[0, "ucl"] == pytest.approx(10.5 + 2.66) and two.loc[12, "lcl"] == pytest.approx(20.5 - 2.66)
    assert not two["special_cause"].any()  # the runs do not cross the rebase
    # a rebase date between points starts the segment at the next point
    mid = S.xmr(series, rebase=[MONTHS[11] + pd.Timedelta(days=3)])
    assert list(mid["segment"]) == list(two["segment"])


def test_fewer_than_12_points_gives_trial_limits():
    eleven = S.xmr([10, 11] * 5 + [10])
    assert eleven["trial"].all()
    assert not np.isnan(eleven["ucl"]).any()  # calculated, only flagged
    twelve = S.xmr([10, 11] * 6)
    assert not twelve["trial"].any()
    _, summary = S.spc([10, 11] * 5 + [10])
    assert summary.trial


def test_fixed_baseline_extends_trial_limits():
    y = [10, 11] * 4 + [14] * 8
    frame = S.xmr(y, fix_after_n_points=8, improvement_direction="increase")
    assert list(frame["baseline"]) == [True] * 8 + [False] * 8
    assert frame["mean"].iloc[-1] == pytest.approx(10.5)
    assert frame["ucl"].iloc[-1] == pytest.approx(10.5 + 2.66)  # from the first 8 points only
    assert frame["trial"].all()  # limits from 8 points are trial limits however long the series
    assert idx(frame["outside_limits_high"]) == list(range(8, 16))
    assert S.xmr(y * 2, fix_after_n_points=12)["trial"].sum() == 0


def test_rejects_gaps_and_bad_direction():
    with pytest.raises(ValueError):
        S.xmr([1.0, np.nan, 2.0])
    with pytest.raises(ValueError):
        S.xmr([1.0, 2.0], improvement_direction="up")


def test_unsorted_text_dates_are_put_in_order():
    frame = S.xmr([3.0, 1.0, 2.0], dates=["2020-03-01", "2020-01-01", "2020-02-01"])
    assert list(frame["value"]) == [1.0, 2.0, 3.0]
    assert pd.api.types.is_datetime64_any_dtype(frame["date"])


# --- icons -----------------------------------------------------------------------------------


def outlier_last(value: float) -> list[float]:
    return [10, 12] * 8 + [value]


@pytest.mark.parametrize(("direction", "last", "icon"), [
    ("increase", 30, "improvement_high"),
    ("decrease", 30, "concern_high"),
    ("neutral", 30, "neutral_high"),
    ("increase", -8, "concern_low"),
    ("decrease", -8, "improvement_low"),
    ("neutral", -8, "neutral_low"),
    ("increase", 11, "common_cause"),
])
def test_variation_icon_from_the_latest_point(direction, last, icon):
    _, summary = S.spc(outlier_last(last), improvement_direction=direction)
    assert summary.variation == icon
    assert summary.variation_label == S.VARIATION_LABELS[icon]


def test_variation_icon_is_common_cause_when_an_earlier_point_was_special():
    y = [10, 14] * 4 + [40] + [10, 14] * 4  # mean 13.65: the 10s and 14s still alternate about it
    frame, summary = S.spc(y, improvement_direction="increase")
    assert frame["special_cause"].any()
    assert summary.variation == "common_cause"


@pytest.mark.parametrize(("direction", "target", "icon"), [
    ("increase", 4, "consistent_pass"),
    ("increase", 18, "consistent_fail"),
    ("increase", 11, "hit_and_miss"),
    ("decrease", 4, "consistent_fail"),
    ("decrease", 18, "consistent_pass"),
    ("neutral", 18, None),
    ("increase", None, None),
])
def test_assurance_icon(direction, target, icon):
    y = [10, 12] * 8  # mean 11, limits 11 ± 5.32
    frame, summary = S.spc(y, improvement_direction=direction, target=target)
    assert summary.assurance == icon
    if target is not None:
        assert (frame["target"] == target).all()


def test_assurance_uses_the_latest_segment():
    y = [10, 12] * 8 + [30, 32] * 8
    _, summary = S.spc(y, improvement_direction="increase", target=20, rebase=[16])
    assert summary.assurance == "consistent_pass"  # 20 is below the second segment's limits
    assert summary.segments == 2


# --- the real series: NHS England A&E, worked out again step by step -------------------------


def load_ae() -> pd.DataFrame:
    frame = pd.read_csv(DATA / "ae_type1_attendances_rjz_ras_rf4.csv", dtype={"type": str})
    frame["period"] = pd.to_datetime(frame["period"])
    return frame


def by_hand(y: np.ndarray, direction: str, screen: bool) -> dict[str, object]:
    """Mean, moving ranges, limits and point classes written out with plain numpy and loops
    over fixed windows (not runs, unlike the package), for comparison."""
    n = len(y)
    mean = y.sum() / n
    mr = np.array([abs(y[i] - y[i - 1]) for i in range(1, n)])
    amr = mr.sum() / len(mr)
    if screen:
        kept = [m for m in mr if m < 3.267 * amr]
        amr = sum(kept) / len(kept)
    ucl, lcl = mean + 2.66 * amr, mean - 2.66 * amr
    sigma = (ucl - mean) / 3

    high = {rule: np.zeros(n, bool) for rule in S.RULES}
    low = {rule: np.zeros(n, bool) for rule in S.RULES}
    for i in range(n):
        high["outside_limits"][i] = y[i] > ucl
        low["outside_limits"][i] = y[i] < lcl
    for start in range(n - 6):  # every window of 7 points
        w = range(start, start + 7)
        if all(y[i] > mean for i in w):
            high["shift"][list(w)] = True
        if all(y[i] < mean for i in w):
            low["shift"][list(w)] = True
        if all(y[i] > y[i - 1] for i in list(w)[1:]):
            high["trend"][list(w)] = True
        if all(y[i] < y[i - 1] for i in list(w)[1:]):
            low["trend"][list(w)] = True
    for start in range(n - 2):  # every window of 3 points
        w = list(range(start, start + 3))
        if all(y[i] > mean for i in w) and sum(y[i] > mean + 2 * sigma for i in w) >= 2:
            for i in w:
                high["two_in_three"][i] |= y[i] > mean + 2 * sigma
        if all(y[i] < mean for i in w) and sum(y[i] < mean - 2 * sigma for i in w) >= 2:
            for i in w:
                low["two_in_three"][i] |= y[i] < mean - 2 * sigma

    classes = []
    for i in range(n):
        side = None
        for rule in S.RULES:  # outside limits, trend, two in three, shift
            if high[rule][i] and low[rule][i]:  # turn between a rise and a fall
                side = "high" if y[i + 1] > y[i] else "low"
            elif high[rule][i]:
                side = "high"
            elif low[rule][i]:
                side = "low"
            if side:
                break
        if side is None:
            classes.append("common_cause")
        elif direction == "neutral":
            classes.append("special_cause_neutral")
        elif (side == "high") == (direction == "increase"):
            classes.append("special_cause_improvement")
        else:
            classes.append("special_cause_concern")
    return {"mean": mean, "mr": mr, "ucl": ucl, "lcl": lcl, "classes": classes, "high": high, "low": low}


@pytest.mark.parametrize("org", ["RJZ", "RAS", "RF4"])
@pytest.mark.parametrize(("measure", "direction"), [("performance", "increase"), ("attendances", "neutral")])
@pytest.mark.parametrize("screen", [True, False])
def test_real_ae_series_matches_a_calculation_by_hand(org, measure, direction, screen):
    ae = load_ae()
    trust = ae[ae["org_code"] == org].sort_values("period")
    assert len(trust) == 36
    if measure == "performance":
        values = 1 - trust["breaches"] / trust["attendances"]  # share seen within 4 hours
    else:
        values = trust["attendances"].astype(float)
    series = pd.Series(values.to_numpy(), index=trust["period"].to_numpy())
    frame = S.xmr(series, improvement_direction=direction, target=0.95 if measure == "performance" else None,
                  screen_outliers=screen)
    expected = by_hand(series.to_numpy(dtype=float), direction, screen)

    assert (frame["date"].to_numpy() == series.index.to_numpy()).all()
    assert frame["mean"].to_numpy() == pytest.approx(np.full(36, expected["mean"]))
    assert frame["moving_range"].to_numpy()[1:] == pytest.approx(expected["mr"])
    assert frame["ucl"].to_numpy() == pytest.approx(np.full(36, expected["ucl"]))
    assert frame["lcl"].to_numpy() == pytest.approx(np.full(36, expected["lcl"]))
    for rule in S.RULES:
        assert list(frame[f"{rule}_high"]) == list(expected["high"][rule]), rule
        assert list(frame[f"{rule}_low"]) == list(expected["low"][rule]), rule
    assert list(frame["point_class"]) == expected["classes"]
    assert not frame["trial"].any()


def test_real_ae_kings_four_hour_performance_icons():
    ae = load_ae()
    kings = ae[ae["org_code"] == "RJZ"].sort_values("period")
    series = pd.Series((1 - kings["breaches"] / kings["attendances"]).to_numpy(), index=kings["period"])
    frame, summary = S.spc(series, improvement_direction="increase", target=0.95)
    # the 95% standard sits above the upper limit: the process will not meet it without change
    assert summary.ucl < 0.95
    assert summary.assurance == "consistent_fail"
    # both improvement (2016-17) and concern (2018-19) appear; the series ends in concern, low
    assert {"special_cause_improvement", "special_cause_concern"} <= set(frame["point_class"])
    assert summary.variation == "concern_low"


# --- chart -------------------------------------------------------------------------------------


def test_xmr_chart_smoke():
    import matplotlib.pyplot as plt

    from ipcreport.report.charts import xmr_chart

    y = [10, 12] * 8 + [30, 32] * 8
    frame = S.xmr(pd.Series(y, index=MONTHS[:32]), improvement_direction="increase", target=20, rebase=[MONTHS[16]])
    fig = xmr_chart(frame, "Title", "Value")
    ax = fig.axes[0]
    # the series, then mean, upper and lower limit for each of 2 segments, the line marking
    # where the limits start again, then the target
    assert len(ax.lines) == 1 + 3 * 2 + 1 + 1
    assert not ax.texts  # icons are drawn, not written
    variation, assurance = icons(ax)
    # the second segment sits at 30-32 with the target of 20 below its lower limit: with
    # "increase" that passes every month (blue P); the latest point is common cause (grey)
    assert variation == (matplotlib.colors.to_hex(GREY), "")
    assert assurance == (matplotlib.colors.to_hex(NHS_BLUE), "P")
    plt.close(fig)

    trial = S.xmr([10, 11] * 4)
    fig = xmr_chart(trial, "Trial", "Value", money=True)
    ax = fig.axes[0]
    assert len(ax.lines) == 1 + 3
    assert ax.lines[2].get_linestyle() == "--"  # trial limits dashed
    assert len(icons(ax)) == 1  # no target: no assurance icon
    plt.close(fig)

    empty = xmr_chart(trial.iloc[:0], "Nothing yet", "Value")
    assert not empty.axes[0].axison
    plt.close(empty)


def icons(ax) -> list[tuple[str, str]]:
    """Each drawn icon's circle colour and letter, left to right."""
    from matplotlib.patches import Circle

    found = []
    for child in sorted(ax.child_axes, key=lambda a: a.get_position().x0):
        circle = next(p for p in child.patches if isinstance(p, Circle))
        found.append((matplotlib.colors.to_hex(circle.get_edgecolor()), "".join(t.get_text() for t in child.texts)))
    return found


@pytest.mark.parametrize(("values", "direction", "colour", "letter"), [
    ([10, 11] * 6 + [10, 30], "increase", "NHS_BLUE", "H"),  # a jump up, where up is better
    ([10, 11] * 6 + [10, 30], "decrease", "ORANGE", "H"),  # the same jump where down is better
    ([10, 11] * 6 + [10, -10], "increase", "ORANGE", "L"),
    ([10, 11] * 6 + [10, -10], "neutral", "PURPLE", "L"),
])
def test_variation_icons_are_drawn_in_their_colour_and_letter(values, direction, colour, letter):
    import matplotlib.pyplot as plt

    from ipcreport.report import charts

    frame = S.xmr(values, improvement_direction=direction)
    fig = charts.xmr_chart(frame, "Title", "Value")
    assert icons(fig.axes[0]) == [(matplotlib.colors.to_hex(getattr(charts, colour)), letter)]
    plt.close(fig)


@pytest.mark.parametrize(("target", "colour", "letter"), [(5, "ORANGE", "F"), (10.5, "GREY", "?"), (30, "NHS_BLUE", "P")])
def test_assurance_icons_are_drawn(target, colour, letter):
    import matplotlib.pyplot as plt

    from ipcreport.report import charts

    # mean 10.5, limits 10.5 +/- 2.66: a target of 30 is above the upper limit, so with
    # "decrease" the process passes every month; 5 is below the lower limit: it always fails
    frame = S.xmr([10, 11] * 7, improvement_direction="decrease", target=target)
    fig = charts.xmr_chart(frame, "Title", "Value")
    assert icons(fig.axes[0])[-1] == (matplotlib.colors.to_hex(getattr(charts, colour)), letter)
    plt.close(fig)

"""Disclosure control: hand cases, and properties (hypothesis) that no published table reveals a
hidden count, even to someone who uses the total and every visible cell."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ipcreport.report.disclosure import SUPPRESSED, Policy, enough, publish_counts, publish_total, safe_count

POLICY = Policy(threshold=7, rounding=5)
EXACT = Policy(threshold=7, rounding=1)  # no rounding: the strongest test of secondary suppression


def test_primary_suppression_and_rounding_by_hand():
    counts = pd.Series({"a": 0, "b": 3, "c": 8, "d": 12, "e": 13, "f": 1_002})
    published = publish_counts(counts, POLICY, with_total=False)
    assert published.to_dict() == {"a": "0", "b": SUPPRESSED, "c": "10", "d": "10", "e": "15", "f": "1,000"}


def test_secondary_suppression_by_hand():
    # 3 alone could be recovered from the total: the smallest other cell goes too.
    assert publish_counts(pd.Series([3, 40, 50]), EXACT).tolist() == [SUPPRESSED, SUPPRESSED, "50"]
    # 1 and 1 hide each other's value but not their sum (2, a small count): hide more.
    assert publish_counts(pd.Series([1, 1, 30, 50]), EXACT).tolist() == [SUPPRESSED] * 3 + ["50"]
    # Eight 1s add up to 8, but each would have to be 1: hide a larger cell with them.
    published = publish_counts(pd.Series([1] * 8 + [20, 50]), EXACT)
    assert published.tolist() == [SUPPRESSED] * 9 + ["50"]
    # A single cell that is small: nothing else to hide, so the total goes.
    assert publish_total(pd.Series([5]), EXACT) == SUPPRESSED
    assert publish_total(pd.Series([0, 5, 0]), EXACT) == SUPPRESSED


def test_sentences_and_summaries():
    assert safe_count(4) == "fewer than 8" and safe_count(9) == "10"
    assert not enough(7) and enough(8)


def attacker_bounds(published: list[str], total: str, rounding: int) -> list[tuple[int, int]]:
    """What someone can deduce about each hidden cell from the visible cells and the total."""
    half = rounding // 2
    visible = [int(v.replace(",", "")) for v in published if v != SUPPRESSED]
    k = published.count(SUPPRESSED)
    t = int(total.replace(",", ""))
    low_sum = max(0, (t - half) - sum(v + half for v in visible))
    high_sum = (t + half) - sum(max(0, v - half) for v in visible)
    # Every hidden cell is at least 1 (zeros are never hidden).
    return [(max(1, low_sum - (k - 1) * high_sum), high_sum - (k - 1)) for _ in range(k)]


count_lists = st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=12)


@settings(max_examples=400, deadline=None)
@given(count_lists, st.sampled_from([EXACT, POLICY]))
def test_no_published_count_is_small_and_no_hidden_cell_is_recoverable(values, policy):
    counts = pd.Series(values)
    published = publish_counts(counts, policy).tolist()
    total = publish_total(counts, policy)
    for shown in published + [total]:
        if shown != SUPPRESSED:
            assert not 1 <= int(shown.replace(",", "")) <= policy.threshold
    if total == SUPPRESSED or SUPPRESSED not in published:
        return
    hidden = [v for v, p in zip(values, published) if p == SUPPRESSED]
    assert len(hidden) >= 2 and sum(hidden) > policy.threshold
    for low, high in attacker_bounds(published, total, policy.rounding):
        assert high > low, f"a hidden cell is pinned to {low} in {values} -> {published} total {total}"


@settings(max_examples=200, deadline=None)
@given(count_lists)
def test_hidden_values_really_are_small_or_protect_a_small_one(values):
    counts = pd.Series(values)
    published = publish_counts(counts, POLICY)
    primary = [v for v in values if 1 <= v <= POLICY.threshold]
    secondary = [v for v, p in zip(values, published) if p == SUPPRESSED and v > POLICY.threshold]
    if not primary:
        assert not secondary  # nothing is hidden without a reason


def test_counts_of_people_in_sentences_are_rounded_or_hidden():
    from ipcreport.report.disclosure import scrub

    assert scrub("too few people for a stable estimate (7 budget holders, 199 comparison)") == \
        "too few people for a stable estimate (fewer than 8 budget holders, 200 comparison)"
    assert scrub("rate ratio 0.86 (95% CI 0.72 to 1.02), from 1,591 people.") == \
        "rate ratio 0.86 (95% CI 0.72 to 1.02), from 1,590 people."
    assert scrub("fewest in any group and period: 4; at least 10 needed") == \
        "fewest in any group and period: fewer than 8; at least 10 needed"
    # Percentages, intervals, p-values and money are not counts of people.
    unchanged = "21% of budget holders; p = 0.64; 95% CI 0.72 to 1.02; £4,500 per person"
    assert scrub(unchanged) == unchanged

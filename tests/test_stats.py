"""vislab.stats: Wilson intervals, Newcombe's difference interval, verdicts."""

import pytest

from vislab import stats


def test_wilson_interval_matches_the_textbook_value():
    low, high = stats.accuracy_interval(946, 1000)
    assert low == pytest.approx(0.9302, abs=1e-4) and high == pytest.approx(0.9584, abs=1e-4)
    assert stats.accuracy_interval(0, 10)[0] == 0.0 and stats.accuracy_interval(10, 10)[1] == pytest.approx(1.0)


def test_newcombe_interval_contains_the_difference_and_shrinks_with_n():
    low, high = stats.difference_interval(90, 100, 80, 100)
    assert low < 0.10 < high
    wide = high - low
    low, high = stats.difference_interval(900, 1000, 800, 1000)
    assert high - low < wide / 2


def test_verdicts_call_a_tie_inside_the_interval():
    assert stats.verdict(95, 100, 93, 100, names=("ViT", "notes")) == "tie"
    assert stats.verdict(950, 1000, 770, 1000, names=("ViT", "notes")) == "ViT above notes"
    assert stats.verdict(770, 1000, 950, 1000, names=("ViT", "notes")) == "notes above ViT"


def test_format_accuracy():
    assert stats.format_accuracy(946, 1000) == "94.6% [93.0, 95.8]"


@pytest.mark.parametrize("args, error, fragment", [
    ((0.946, 1000), TypeError, "pass counts"),
    ((5, 0), ValueError, "at least 1"),
    ((11, 10), ValueError, "between 0 and n=10"),
    ((True, 10), TypeError, "whole number"),
])
def test_bad_counts_are_refused(args, error, fragment):
    with pytest.raises(error, match=fragment):
        stats.accuracy_interval(*args)


def test_bad_confidence_is_refused():
    with pytest.raises(ValueError, match="confidence must be a number in"):
        stats.accuracy_interval(5, 10, confidence=95)

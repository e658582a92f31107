"""Tests for vislab.check: learning bars and exercise self-checks pass, print, and raise."""

import numpy as np
import pytest
import torch

from vislab import check


# ---- at_least / at_most -------------------------------------------------------------------------

def test_at_least_passes_prints_and_returns(capsys):
    assert check.at_least(0.91, 0.9, "shape accuracy") == pytest.approx(0.91)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "✓ shape accuracy" in out and "0.91" in out and "0.9" in out
    check.at_least(0.9, 0.9, "equal to the bar passes")


def test_at_least_raises_below_the_bar():
    with pytest.raises(AssertionError, match="shape accuracy: 0.5 is below the bar 0.9"):
        check.at_least(0.5, 0.9, "shape accuracy")


def test_at_most():
    assert check.at_most(0.2, 0.25, "pixel baseline") == pytest.approx(0.2)
    check.at_most(0.25, 0.25, "equal passes")
    with pytest.raises(AssertionError, match="pixel baseline: 0.3 is above the bar 0.25"):
        check.at_most(0.3, 0.25, "pixel baseline")


@pytest.mark.parametrize("value", [np.float32(0.95), np.float64(0.95), torch.tensor(0.95), torch.tensor([0.95]),
                                   np.int64(1), 1])
def test_numbers_of_every_kind(value):
    check.at_least(value, 0.9, "x")


def test_nan_raises_even_against_a_trivial_bar():
    for fn, bar in ((check.at_least, -np.inf), (check.at_most, np.inf)):
        with pytest.raises(AssertionError, match="NaN"):
            fn(float("nan"), bar, "loss")
        with pytest.raises(AssertionError, match="NaN"):
            fn(torch.tensor(float("nan")), bar, "loss")
        with pytest.raises(AssertionError, match="NaN"):
            fn(0.5, float("nan"), "bar")


def test_inf_is_compared_not_hidden():
    with pytest.raises(AssertionError):
        check.at_most(float("inf"), 10.0, "loss")
    check.at_least(float("inf"), 10.0, "big")


@pytest.mark.parametrize("bad", ["0.9", None, [0.9], torch.zeros(2), True])
def test_non_numbers_raise_type_error(bad):
    with pytest.raises(TypeError, match="acc"):
        check.at_least(bad, 0.5, "acc")


def test_big_numbers_are_formatted_readably(capsys):
    check.at_least(86_567_656, 1e6, "parameters")
    assert "86,567,656" in capsys.readouterr().out


# ---- close ---------------------------------------------------------------------------------------

def test_close_passes_and_returns_the_worst_difference(capsys):
    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    worst = check.close(a + 1e-7, a, "conv == linear")
    assert worst == pytest.approx(1e-7, rel=0.1)
    out = capsys.readouterr().out
    assert "✓ conv == linear: equal within atol=1e-06, rtol=1e-05" in out
    assert "e-07" not in out and "e-08" not in out        # no round-off digits in the pass line
    check.close(1.0, 1.0 + 1e-9, "numbers")
    check.close(np.ones(3), torch.ones(3), "numpy and torch")
    check.close(torch.ones(2, dtype=torch.float16), torch.ones(2), "dtypes")
    check.close(torch.zeros(0), torch.zeros(0), "empty")


def test_close_tolerances():
    check.close(torch.tensor([100.0]), torch.tensor([100.001]), "relative", atol=0, rtol=1e-4)
    with pytest.raises(AssertionError, match="exceeds atol"):
        check.close(torch.tensor([100.0]), torch.tensor([100.1]), "relative", atol=0, rtol=1e-4)
    check.close(torch.tensor([0.0]), torch.tensor([0.01]), "absolute", atol=0.02)


def test_close_raises_on_difference_shape_and_nan():
    with pytest.raises(AssertionError, match="max \\|difference\\| 0.1"):
        check.close(torch.tensor([1.0, 2.1]), torch.tensor([1.0, 2.0]), "x")
    with pytest.raises(AssertionError, match="shapes differ"):
        check.close(torch.zeros(2, 3), torch.zeros(3, 2), "x")
    with pytest.raises(AssertionError):
        check.close(torch.tensor([float("nan")]), torch.tensor([1.0]), "x")
    with pytest.raises(AssertionError):
        check.close(torch.tensor([float("nan")]), torch.tensor([float("nan")]), "x")


# ---- equal ---------------------------------------------------------------------------------------

def test_equal_values(capsys):
    assert check.equal(197, 197, "tokens") == 197
    assert "✓ tokens: 197" in capsys.readouterr().out
    check.equal((14, 14), (14, 14), "grid")
    check.equal("abc", "abc", "text")
    with pytest.raises(AssertionError, match="tokens: got 196, expected 197"):
        check.equal(196, 197, "tokens")
    with pytest.raises(AssertionError):
        check.equal([1, 2], [2, 1], "order")


def test_equal_tensors():
    t = torch.arange(6).reshape(2, 3)
    check.equal(t, t.clone(), "same")
    check.equal(torch.Size([2, 3]), (2, 3), "a shape against a tuple")
    check.equal(t, t.float(), "same values in another dtype")
    with pytest.raises(AssertionError):
        check.equal(t, t.reshape(3, 2), "shape differs")
    with pytest.raises(AssertionError):
        check.equal(t, t + 1, "values differ")


def test_equal_tensors_do_not_round_the_expected_value():
    with pytest.raises(AssertionError):
        check.equal(torch.tensor([1]), torch.tensor([1.5]), "int against float")
    with pytest.raises(AssertionError):
        check.equal(torch.tensor([1, 2]), [1.25, 2.0], "int tensor against floats")
    with pytest.raises(AssertionError):
        check.equal(torch.tensor([True, False]), torch.tensor([2, 0]), "bool against ints")


# ---- exercise ------------------------------------------------------------------------------------

def reference(x, n):
    return x * n


def test_exercise_not_attempted_prints_a_hint_and_does_not_raise(capsys):
    def todo(x, n):
        raise NotImplementedError("fill me in")

    assert check.exercise("scale", todo, reference, [(torch.ones(2), 3)]) is False
    out = capsys.readouterr().out
    assert "not attempted yet" in out and "scale" in out


def test_exercise_wrong_answer_raises_with_the_case():
    def wrong(x, n):
        return x * n if n < 3 else x + n

    with pytest.raises(AssertionError, match="scale, case 1: values differ"):
        check.exercise("scale", wrong, reference, [(torch.ones(2), 2), (torch.ones(2), 3)])
    with pytest.raises(AssertionError, match="shape"):
        check.exercise("scale", lambda x, n: (x * n)[None], reference, [(torch.ones(2), 2)])
    with pytest.raises(AssertionError, match="expected a tensor"):
        check.exercise("scale", lambda x, n: (x * n).tolist(), reference, [(torch.ones(2), 2)])
    with pytest.raises(AssertionError, match="got 5, expected 6"):
        check.exercise("count", lambda n: n + 2, lambda n: n * 2, [3])
    with pytest.raises(AssertionError):
        check.exercise("nan", lambda x, n: x * float("nan"), reference, [(torch.ones(2), 2)])


def test_exercise_right_answer_returns_true(capsys):
    def mine(x, n):
        return torch.stack([v * n for v in x])

    cases = [(torch.arange(4.0), 2), (torch.rand(3), -1)]
    assert check.exercise("scale", mine, reference, cases) is True
    assert "all 2 cases match" in capsys.readouterr().out
    # single arguments need no tuple; tiny float differences are tolerated; dtypes may differ
    assert check.exercise("double", lambda n: n * 2, lambda n: n + n, [1, 2, 3]) is True
    assert check.exercise("sum", lambda x: x.sum() + 1e-7, lambda x: x.sum(), [torch.ones(3)]) is True
    assert check.exercise("dtype", lambda x: x.double(), lambda x: x, [torch.ones(3)]) is True


def test_exercise_errors_other_than_not_implemented_propagate():
    def broken(x):
        raise KeyError("oops")

    with pytest.raises(KeyError):
        check.exercise("broken", broken, lambda x: x, [1])


def test_exercise_needs_cases():
    with pytest.raises(ValueError, match="at least one test case"):
        check.exercise("x", lambda: 1, lambda: 1, [])

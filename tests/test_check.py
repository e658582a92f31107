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


# ---- exercise self-checks: shared fixtures -------------------------------------------------------

@pytest.fixture(autouse=True)
def _fresh_record():
    check.reset_record()
    yield
    check.reset_record()


def reference(x, n):
    return x * n


def todo(*args):
    raise NotImplementedError("fill me in")


def one_line(out: str) -> str:
    assert out.count("\n") == 1, out
    return out


# ---- exercise ------------------------------------------------------------------------------------

def test_exercise_not_attempted_prints_a_hint_and_returns_false(capsys):
    assert check.exercise("Exercise 1: scale", todo, reference, [(torch.ones(2), 3)], hint="multiply") is False
    out = one_line(capsys.readouterr().out)
    assert out.startswith("… Exercise 1: scale: not attempted yet") and "hint: multiply" in out


def test_exercise_wrong_answer_prints_the_case_and_returns_false(capsys):
    def wrong(x, n):
        return x * n if n < 3 else x + n

    assert check.exercise("Exercise 1: scale", wrong, reference, [(torch.ones(2), 2), (torch.ones(2), 3)],
                          hint="check n = 3") is False
    out = one_line(capsys.readouterr().out)
    assert out.startswith("✗ Exercise 1: scale, case 2 of 2 (a float32 tensor of shape (2,), 3): values differ")
    assert "got 4, expected 3" in out and "Hint: check n = 3" in out


@pytest.mark.parametrize("candidate, message", [
    (lambda x, n: (x * n)[None], "shape (1, 2), expected (2,)"),
    (lambda x, n: (x * n).tolist(), "expected a tensor, got list"),
    (lambda x, n: x * float("nan"), "contains NaN"),
    (lambda x, n: {}["oops"], "your function raised KeyError"),
])
def test_exercise_misses_of_every_form(capsys, candidate, message):
    assert check.exercise("Exercise 2: scale", candidate, reference, [(torch.ones(2), 2)]) is False
    assert message in one_line(capsys.readouterr().out)


def test_exercise_compares_numbers_tuples_and_dicts(capsys):
    assert check.exercise("Exercise 1: count", lambda n: n + 2, lambda n: n * 2, [3]) is False
    assert "got 5, expected 6" in capsys.readouterr().out
    assert check.exercise("Exercise 1: grid", lambda n: (n, n + 1), lambda n: (n, n), [3]) is False
    assert "item 1: got 4, expected 3" in capsys.readouterr().out
    assert check.exercise("Exercise 1: d", lambda n: {"a": n}, lambda n: {"a": n, "b": 1}, [3]) is False
    assert check.exercise("Exercise 1: arr", lambda n: np.ones(n), lambda n: np.zeros(n), [3]) is False
    assert check.exercise("Exercise 1: b", lambda n: 1, lambda n: True, [3]) is False   # 1 is not True
    assert check.exercise("Exercise 1: f", lambda n: n / 3 + 1e-9, lambda n: n / 3, [3]) is True
    assert check.exercise("Exercise 1: t", lambda n: (torch.ones(n), n), lambda n: (torch.ones(n), n), [2]) is True
    assert check.exercise("Exercise 1: s", lambda n: torch.Size([n]), lambda n: (n,), [2]) is True


def test_exercise_right_answer_returns_true(capsys):
    def mine(x, n):
        return torch.stack([v * n for v in x])

    cases = [(torch.arange(4.0), 2), (torch.rand(3), -1)]
    assert check.exercise("Exercise 1: scale", mine, reference, cases) is True
    assert "✓ Exercise 1: scale: all 2 cases match vislab" in one_line(capsys.readouterr().out)
    # single arguments need no tuple; tiny float differences are tolerated; dtypes may differ
    assert check.exercise("Exercise 1: d", lambda n: n * 2, lambda n: n + n, [1, 2, 3]) is True
    assert check.exercise("Exercise 1: s", lambda x: x.sum() + 1e-7, lambda x: x.sum(), [torch.ones(3)]) is True
    assert check.exercise("Exercise 1: t", lambda x: x.double(), lambda x: x, [torch.ones(3)]) is True


def test_exercise_solution_raises_on_a_miss_and_on_no_answer():
    with pytest.raises(AssertionError, match="case 1 of 1.*solution itself is wrong"):
        check.exercise("Exercise 1: scale", lambda x, n: x, reference, [(torch.ones(2), 2)], solution=True)
    with pytest.raises(AssertionError, match="NotImplementedError"):
        check.exercise("Exercise 1: scale", todo, reference, [(torch.ones(2), 2)], solution=True)
    with pytest.raises(AssertionError, match="the solution raised KeyError"):
        check.exercise("Exercise 1: scale", lambda x, n: {}["k"], reference, [(torch.ones(2), 2)], solution=True)
    # old style: "(solution)" in the name is a solution call
    with pytest.raises(AssertionError):
        check.exercise("Exercise 1 (solution)", lambda x, n: x, reference, [(torch.ones(2), 2)])
    assert check.exercise("Exercise 1 (solution)", reference, reference, [(torch.ones(2), 2)]) is True


def test_errors_of_the_reference_propagate():
    with pytest.raises(ZeroDivisionError):
        check.exercise("Exercise 1: x", lambda x: x, lambda x: 1 / 0, [1])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(cases=[]), ValueError, "at least one test case"),
    (dict(cases=5), TypeError, "cases"),
    (dict(what="scale"), ValueError, "Exercise N"),
    (dict(what="exercise 1: scale"), ValueError, "Exercise N"),
    (dict(what="Exercise one"), ValueError, "Exercise N"),
    (dict(what=3), TypeError, "what"),
    (dict(kind="implement"), ValueError, "kind must be one of"),
    (dict(candidate=3), TypeError, "functions"),
    (dict(hint=3), TypeError, "hint"),
    (dict(solution="yes"), TypeError, "solution"),
])
def test_exercise_bad_use_raises(kwargs, error, match):
    args = dict(what="Exercise 1: x", candidate=lambda x: x, reference=lambda x: x, cases=[1])
    args.update(kwargs)
    with pytest.raises(error, match=match):
        check.exercise(**args)


# ---- debug ---------------------------------------------------------------------------------------

def softmax_rows(x):
    return x.softmax(-1)


def test_debug_shows_the_symptom_until_fixed(capsys):
    planted = lambda x: x.softmax(0)                    # noqa: E731  (the planted bug: wrong axis)
    cases = [torch.randn(3, 4, generator=torch.Generator().manual_seed(0))]
    assert check.debug("Exercise 4: softmax axis", planted, softmax_rows, cases,
                       symptom="the rows do not sum to 1", hint="which axis are the keys?") is False
    out = one_line(capsys.readouterr().out)
    assert out.startswith("✗ Exercise 4: softmax axis, case 1 of 1 (a float32 tensor of shape (3, 4))")
    assert "values differ" in out and "first at index (0, 0)" in out
    assert "Symptom: the rows do not sum to 1" in out and "Hint: which axis are the keys?" in out
    assert check.debug("Exercise 4: softmax axis", softmax_rows, softmax_rows, cases, solution=True) is True
    assert "✓ Exercise 4: softmax axis: the bug is fixed" in capsys.readouterr().out
    assert [c.kind for c in check.recorded()] == ["debug", "debug"]


def test_debug_crash_is_a_symptom_not_a_stop(capsys):
    assert check.debug("Exercise 4: t", lambda x: x @ x, lambda x: x @ x.T, [torch.ones(2, 3)],
                       symptom="a shape error") is False
    out = one_line(capsys.readouterr().out)
    assert "your function raised RuntimeError" in out and "Symptom: a shape error" in out
    assert check.debug("Exercise 4: t", todo, lambda x: x, [1]) is False
    assert "not attempted yet" in capsys.readouterr().out
    with pytest.raises(AssertionError):
        check.debug("Exercise 4: t", lambda x: x @ x, lambda x: x @ x.T, [torch.ones(2, 3)], solution=True)
    with pytest.raises(TypeError, match="symptom"):
        check.debug("Exercise 4: t", lambda x: x, lambda x: x, [1], symptom=None)
    with pytest.raises(ValueError, match="Exercise N"):
        check.debug("debug 4", lambda x: x, lambda x: x, [1])


# ---- predict -------------------------------------------------------------------------------------

def test_predict_untouched_and_explain_kept_back(capsys):
    assert check.predict("Exercise 2: tokens", None, 197, explain="196 patches + CLS") is False
    out = one_line(capsys.readouterr().out)
    assert out.startswith("… Exercise 2: tokens: not attempted yet") and "CLS" not in out
    with pytest.raises(AssertionError, match="None"):
        check.predict("Exercise 2: tokens", None, 197, solution=True)


def test_predict_numbers_within_an_absolute_tolerance(capsys):
    assert check.predict("Exercise 2: tokens", 196, 197, explain="196 patches + CLS") is False
    out = one_line(capsys.readouterr().out)
    assert out == "✗ Exercise 2: tokens: you predicted 196, measured 197 (gap 1, tolerance ±0). 196 patches + CLS\n"
    assert check.predict("Exercise 2: tokens", 197, 197) is True
    assert check.predict("Exercise 3: loss", 2.0, torch.tensor(2.079), tol=0.1) is True
    assert "gap 0.079" in capsys.readouterr().out.splitlines()[-1]
    assert check.predict("Exercise 3: loss", 2.0, np.float32(2.2), tol=0.1) is False
    with pytest.raises(AssertionError, match="solution itself is wrong"):
        check.predict("Exercise 3: loss", 2.0, 2.2, tol=0.1, solution=True)


def test_predict_strings_tuples_and_type_misses(capsys):
    assert check.predict("Exercise 5: grid", (2, 3), (2, 3)) is True
    assert check.predict("Exercise 5: grid", [2, 3], torch.Size([2, 3])) is True
    assert check.predict("Exercise 5: grid", (3, 2), (2, 3)) is False
    assert check.predict("Exercise 5: grid", (2, 3, 1), (2, 3)) is False
    assert "expected 2 values" in capsys.readouterr().out.splitlines()[-1]
    assert check.predict("Exercise 6: axis", "  The Rows ", "the rows") is True
    assert check.predict("Exercise 6: axis", "columns", "rows") is False
    assert check.predict("Exercise 2: tokens", "197", 197) is False
    assert "your prediction is a str, the measured value is a number" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, error", [
    (dict(tol=-1), ValueError), (dict(tol="1"), TypeError), (dict(actual=None), ValueError),
    (dict(what="predict 2"), ValueError), (dict(explain=1), TypeError), (dict(solution=1), TypeError)])
def test_predict_bad_use_raises(kwargs, error):
    args = dict(what="Exercise 2: x", guess=1, actual=1)
    args.update(kwargs)
    with pytest.raises(error):
        check.predict(**args)


# ---- answer --------------------------------------------------------------------------------------

def test_answer_untouched_wrong_and_right(capsys):
    assert check.answer("Exercise 7: no centering", None, "collapse", hint="watch the entropy") is False
    out = one_line(capsys.readouterr().out)
    assert out.startswith("… Exercise 7: no centering: not attempted yet") and "watch the entropy" in out
    assert check.answer("Exercise 7: no centering", "it learns", "collapse", explain="one prototype wins",
                        hint="watch the entropy") is False
    out = one_line(capsys.readouterr().out)
    assert "you answered 'it learns'; expected 'collapse'" in out and "one prototype wins" in out
    assert "Hint: watch the entropy" in out
    assert check.answer("Exercise 7: no centering", "  COLLAPSE ", "collapse") is True
    with pytest.raises(AssertionError):
        check.answer("Exercise 7: no centering", "it learns", "collapse", solution=True)
    with pytest.raises(AssertionError):
        check.answer("Exercise 7: no centering", None, "collapse", solution=True)


def test_answer_accepted_collections_and_predicates(capsys):
    assert check.answer("Exercise 8: b", "lower", ("smaller", "lower")) is True
    assert check.answer("Exercise 8: b", "Smaller", {"smaller", "lower"}) is True
    assert check.answer("Exercise 8: b", "higher", ["smaller", "lower"]) is False
    # a tuple of numbers is one answer, a tuple of tuples lists accepted ones
    assert check.answer("Exercise 8: grid", (2, 3), (2, 3), kind="predict") is True
    assert check.answer("Exercise 8: grid", 2, (2, 3), kind="predict") is False
    assert check.answer("Exercise 8: grid", (3, 2), ((2, 3), (3, 2)), kind="predict") is True
    assert check.answer("Exercise 8: n", 4, 4.0) is True

    def in_range(v):
        """a drop between 0.1 and 0.3"""
        return 0.1 <= v <= 0.3

    assert check.answer("Exercise 9: drop", 0.2, in_range) is True
    assert check.answer("Exercise 9: drop", 0.5, in_range) is False
    assert "expected a drop between 0.1 and 0.3" in capsys.readouterr().out.splitlines()[-1]
    assert check.answer("Exercise 9: drop", "a lot", in_range) is False    # the predicate cannot read it
    assert "could not be checked: TypeError" in capsys.readouterr().out
    assert check.answer("Exercise 9: drop", torch.tensor(0.2), in_range, solution=True) is True


@pytest.mark.parametrize("kwargs, error", [
    (dict(expected=None), ValueError), (dict(kind="choice"), ValueError), (dict(what="Ex 1"), ValueError),
    (dict(hint=None), TypeError), (dict(explain=b"x"), TypeError)])
def test_answer_bad_use_raises(kwargs, error):
    args = dict(what="Exercise 2: x", given="a", expected="a")
    args.update(kwargs)
    with pytest.raises(error):
        check.answer(**args)


# ---- the record and the proof --------------------------------------------------------------------

def test_every_call_is_recorded_with_its_id_kind_and_outcome():
    check.exercise("Exercise 3b: scale", todo, reference, [(torch.ones(2), 2)], kind="ablate")
    check.predict("Exercise 12: n", 3, 3)
    with pytest.raises(AssertionError):
        check.answer("Exercise 1 (solution)", "x", "y")
    assert [(c.exercise, c.kind, c.solution, c.passed) for c in check.recorded()] == [
        ("3b", "ablate", False, False), ("12", "predict", False, True), ("1", "ablate", True, False)]
    check.reset_record()
    assert check.recorded() == () and check.proof_problems() == []


def test_a_proper_exercise_is_proven_in_both_styles():
    check.exercise("Exercise 1: scale", todo, reference, [(torch.ones(2), 2)])
    check.exercise("Exercise 1: scale", reference, reference, [(torch.ones(2), 2)], solution=True)
    check.exercise("Exercise 2: scale", todo, reference, [(torch.ones(2), 2)])
    check.exercise("Exercise 2 (solution)", reference, reference, [(torch.ones(2), 2)])
    check.predict("Exercise 3: n", None, 3)
    check.predict("Exercise 3: n", 3, 3, solution=True)
    check.debug("Exercise 4: d", lambda x: x.softmax(0), softmax_rows, [torch.randn(2, 3)])
    check.debug("Exercise 4: d", softmax_rows, softmax_rows, [torch.randn(2, 3)], solution=True)
    check.answer("Exercise 5: a", None, "up")
    check.answer("Exercise 5: a", "up", "up", solution=True)
    assert check.proof_problems() == []


def test_proof_reports_a_solution_without_the_untouched_run_first():
    check.exercise("Exercise 1: scale", reference, reference, [(torch.ones(2), 2)], solution=True)
    check.exercise("Exercise 1: scale", todo, reference, [(torch.ones(2), 2)])        # too late
    problems = check.proof_problems()
    assert len(problems) == 1 and problems[0].startswith("Exercise 1:") and "never checked before" in problems[0]


def test_proof_reports_an_untouched_exercise_that_passes():
    check.predict("Exercise 2: n", 3, 3)                  # the exercise cell already holds the answer
    check.predict("Exercise 2: n", 3, 3, solution=True)
    problems = check.proof_problems()
    assert len(problems) == 1 and "already passes" in problems[0]


def test_proof_reports_missing_failed_and_mixed_solutions():
    check.answer("Exercise 1: a", None, "up")             # no solution call at all
    check.answer("Exercise 2: a", None, "up")
    with pytest.raises(AssertionError):
        check.answer("Exercise 2: a", "down", "up", solution=True)
    check.answer("Exercise 3: a", None, "up")
    check.predict("Exercise 3: a", 1, 1, solution=True)   # another kind under the same id
    problems = check.proof_problems()
    assert any(p.startswith("Exercise 1:") and "no solution call" in p for p in problems)
    assert any(p.startswith("Exercise 2:") and "never passed" in p for p in problems)
    assert any(p.startswith("Exercise 3:") and "ablate and predict" in p for p in problems)
    assert len(problems) == 3


# ---- the nbval item "exercises proven" (tests/nbval_plugin.py) ------------------------------------

def _chapter(tmp_path, name, solution_source):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    cells = [new_code_cell("from vislab import check\n"
                           "def my_double(x):\n    raise NotImplementedError  # TODO\n"),
             new_code_cell('check.exercise("Exercise 1: double", my_double, lambda x: 2 * x, [1, 2])'),
             new_code_cell(solution_source)]
    path = tmp_path / name
    nbformat.write(new_notebook(cells=cells), path)
    return path


def test_the_nbval_item_fails_a_chapter_whose_exercise_is_not_proven(tmp_path):
    import subprocess
    import sys
    import xml.etree.ElementTree as ET
    from pathlib import Path

    proven = _chapter(tmp_path, "proven.ipynb",
                      'check.exercise("Exercise 1: double", lambda x: x + x, lambda x: 2 * x, [1, 2], solution=True)')
    unproven = _chapter(tmp_path, "unproven.ipynb",     # the old style, and an exercise with no solution call
                        'check.exercise("Exercise 1 (solution)", lambda x: x + x, lambda x: 2 * x, [1, 2])\n'
                        'check.predict("Exercise 2: tokens", None, 197)')
    root = Path(__file__).resolve().parents[1]
    report = tmp_path / "report.xml"
    run = subprocess.run([sys.executable, "-m", "pytest", str(proven), str(unproven), f"--junit-xml={report}",
                          "-c", str(root / "pyproject.toml"), "--rootdir", str(root)],
                         cwd=root, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    outcomes = [(case.get("name"), "failed" if case.find("failure") is not None or case.find("error") is not None
                 else "passed") for case in ET.parse(report).iter("testcase")
                if case.get("name") != "claims"]               # in the order of the files; claims: another item
    items = ["Cell 0", "Cell 1", "Cell 2", "exercises proven", "peak memory"]
    assert [name for name, _ in outcomes] == items * 2, out
    assert [status for _, status in outcomes] == ["passed"] * 8 + ["failed", "passed"], out
    assert "unproven.ipynb: exercises not proven:\n  Exercise 2: checked, but no solution call" in out, out
    assert run.returncode == 1, out

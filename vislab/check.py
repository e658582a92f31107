"""Visible checks for chapters: learning bars and exercise self-checks.

Learning bars (``at_least``, ``at_most``, ``close``, ``equal``): a chapter asserts every
learning result with one of them. Each prints one line that says what was checked and the
measured value, and raises ``AssertionError`` when the result misses its bar, so that nbval
fails when learning regresses.

Exercise self-checks (``exercise``, ``debug``, ``predict``, ``answer``): for the learner they
never raise on a wrong or untouched answer. They print one line of feedback (✓ right, ✗ wrong,
… not attempted yet) that says what was expected, what came and what to try, and return
True or False. The same call with ``solution=True`` (in the hidden solution cell) raises
``AssertionError`` on a miss, so a broken solution fails CI. Bad use of the API itself (no
cases, a name that does not start with "Exercise N", wrong types) raises ``ValueError`` or
``TypeError``.

Every self-check is recorded in this kernel, keyed by the exercise id in its name
("Exercise 3b: ..." -> "3b"). ``proof_problems()`` reads the record: an exercise is proven
when its untouched check ran first and did not pass, and then its solution passed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["KINDS", "answer", "at_least", "at_most", "close", "debug", "equal", "exercise", "predict",
           "proof_problems", "recorded", "reset_record"]

PASS, FAIL, TODO = "✓", "✗", "…"


def _number(value, what: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"{what}: expected a single number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what}: expected a number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise AssertionError(f"{FAIL} {what}: the value is NaN (training diverged?)")
    return value


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def at_least(value, bar, what: str) -> float:
    """Pass if ``value >= bar``; print a pass line, else raise AssertionError."""
    v, b = _number(value, what), _number(bar, what)
    if v < b:
        raise AssertionError(f"{FAIL} {what}: {_fmt(v)} is below the bar {_fmt(b)}")
    print(f"{PASS} {what}: {_fmt(v)} ≥ {_fmt(b)}")
    return v


def at_most(value, bar, what: str) -> float:
    """Pass if ``value <= bar``; print a pass line, else raise AssertionError."""
    v, b = _number(value, what), _number(bar, what)
    if v > b:
        raise AssertionError(f"{FAIL} {what}: {_fmt(v)} is above the bar {_fmt(b)}")
    print(f"{PASS} {what}: {_fmt(v)} ≤ {_fmt(b)}")
    return v


def close(actual, expected, what: str, atol: float = 1e-6, rtol: float = 1e-5) -> float:
    """Pass if two tensors (or numbers) agree elementwise within ``atol + rtol·|expected|``.

    The pass line states the tolerance, not the difference: the digits of a round-off
    difference depend on the CPU's kernels, the thread count and the device, so printing
    them would make a checked output machine-dependent. Returns the largest absolute
    difference (for a plot or a table of its own, never for a checked output).
    """
    a = torch.as_tensor(actual).detach().double().cpu()
    e = torch.as_tensor(expected).detach().double().cpu()
    if a.shape != e.shape:
        raise AssertionError(f"{FAIL} {what}: shapes differ, {tuple(a.shape)} vs {tuple(e.shape)}")
    diff = (a - e).abs()
    worst = float(diff.max()) if diff.numel() else 0.0
    if not torch.all(diff <= atol + rtol * e.abs()):
        raise AssertionError(f"{FAIL} {what}: max |difference| {worst:.3g} exceeds atol={atol:g}, rtol={rtol:g}")
    print(f"{PASS} {what}: equal within atol={atol:g}, rtol={rtol:g}")
    return worst


def equal(actual, expected, what: str):
    """Pass if two values are equal (tensors: same shape and every element equal)."""
    if isinstance(actual, torch.Tensor) or isinstance(expected, torch.Tensor):
        a, e = torch.as_tensor(actual), torch.as_tensor(expected)
        common = torch.promote_types(a.dtype, e.dtype)          # never round one side to the other's dtype
        ok = a.shape == e.shape and bool(torch.equal(a.cpu().to(common), e.cpu().to(common)))
        shown = f"tensor of shape {tuple(a.shape)}"
    else:
        ok = actual == expected
        shown = repr(actual)
    if not ok:
        raise AssertionError(f"{FAIL} {what}: got {actual!r}, expected {expected!r}")
    print(f"{PASS} {what}: {shown}")
    return actual


# ----------------------------------------------------------------------------- exercise self-checks
KINDS = ("build", "debug", "predict", "ablate")   # the course's four kinds of exercise
RTOL = ATOL = 1e-5                                # how close a learner's tensor or float must come

_WHAT = re.compile(r"^Exercise (\d+[a-z]?)\b")
_NUMBER = (int, float, np.integer, np.floating)


@dataclass(frozen=True)
class Call:
    """One self-check call as the record keeps it."""

    exercise: str        # "3b"
    kind: str            # one of KINDS
    solution: bool       # a call from the solution cell
    passed: bool
    what: str


_record: list = []


def recorded() -> tuple:
    """The self-check calls made in this kernel so far, in order (``Call`` objects)."""
    return tuple(_record)


def reset_record() -> None:
    """Forget every recorded self-check call."""
    _record.clear()


def proof_problems() -> list:
    """What keeps this kernel's exercises from being proven; an empty list means proven.

    An exercise is proven when its check ran without ``solution=True`` (the learner's
    untouched cell) and did *not* pass, and afterwards ran with ``solution=True`` and passed:
    the check can tell no answer from a right one. An exercise checked only by the learner's
    call, never by a solution, is reported too, and so is one checked under two kinds.
    """
    calls: dict = {}
    for c in _record:
        calls.setdefault(c.exercise, []).append(c)
    problems = []
    for ex, cs in calls.items():
        name = f"Exercise {ex}"
        kinds = sorted({c.kind for c in cs})
        if len(kinds) > 1:
            problems.append(f"{name}: checked as {' and '.join(kinds)}; one exercise has one kind")
        first_pass = next((i for i, c in enumerate(cs) if c.solution and c.passed), None)
        if first_pass is None:
            if any(c.solution for c in cs):
                problems.append(f"{name}: its solution never passed its self-check")
            else:
                problems.append(f"{name}: checked, but no solution call (solution=True) proves the check")
            continue
        before = [c for c in cs[:first_pass] if not c.solution]
        if not before:
            problems.append(f"{name}: the solution passed, but the untouched exercise was never checked "
                            "before it (call the check without solution=True after the exercise cell)")
        elif any(c.passed for c in before):
            problems.append(f"{name}: the untouched exercise already passes its self-check, so the check "
                            "cannot tell no answer from a right one")
    return problems


def _exercise_id(what) -> str:
    if not isinstance(what, str):
        raise TypeError(f"what must be a string like 'Exercise 3: patchify', got {type(what).__name__}")
    m = _WHAT.match(what)
    if not m:
        raise ValueError(f"what must start with 'Exercise N' (e.g. 'Exercise 3: patchify', "
                         f"'Exercise 3b: ...'), got {what!r}")
    return m.group(1)


def _text(value, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return value


def _start(what, solution, kind) -> tuple:
    """Validate the common arguments; returns (exercise id, solution flag)."""
    ex = _exercise_id(what)
    if not isinstance(solution, bool):
        raise TypeError(f"solution must be True or False, got {type(solution).__name__}")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    return ex, solution or "(solution)" in what       # old style: "Exercise 1 (solution)"


def _finish(ex, kind, solution, what, passed: bool, line: str) -> bool:
    _record.append(Call(ex, kind, solution, passed, what))
    if not passed and solution:
        raise AssertionError(line + " (this is the solution cell: the solution itself is wrong)")
    print(line)
    return passed


def _todo(what, hint="") -> str:
    return (f"{TODO} {what}: not attempted yet. Fill in the TODO above and run the cell again"
            f"{'; hint: ' + hint if hint else ''} (the hidden solution cell below shows one answer).")


def _short(value, limit: int = 60) -> str:
    if isinstance(value, torch.Tensor):
        if value.numel() == 1:
            return _short(value.item(), limit)
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
        return _fmt(float(value))
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_number(x) -> bool:
    return isinstance(x, _NUMBER) and not isinstance(x, bool)


def _values(got, want, where: str):
    """Compare arrays of values (float64 tensors of one shape); a message or None."""
    if got.shape != want.shape:
        return f"{where}shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    if torch.isnan(got).any() and not torch.isnan(want).any():
        return f"{where}the result contains NaN"
    diff = (got - want).abs()
    bad = ~(diff <= ATOL + RTOL * want.abs())
    if not bad.any():
        return None
    idx = tuple(int(i) for i in bad.nonzero()[0])
    at = f" at index {idx}" if idx else ""
    return (f"{where}values differ (max |difference| {float(diff[bad].max()):.3g}); first{at}: "
            f"got {_fmt(float(got[idx]))}, expected {_fmt(float(want[idx]))}")


def _mismatch(got, want, where: str = ""):
    """Why ``got`` is not ``want`` (a short message), or None when they agree."""
    if isinstance(want, (torch.Tensor, np.ndarray)):
        kind = "tensor" if isinstance(want, torch.Tensor) else "numpy array"
        if not isinstance(got, (torch.Tensor, np.ndarray)):
            return f"{where}expected a {kind}, got {type(got).__name__}"
        g = torch.as_tensor(np.asarray(got) if isinstance(got, np.ndarray) else got.detach().cpu()).double()
        w = torch.as_tensor(np.asarray(want) if isinstance(want, np.ndarray) else want.detach().cpu()).double()
        return _values(g, w, where)
    if isinstance(want, bool) or isinstance(got, bool):
        return None if got is want or (type(got) is type(want) and got == want) else \
            f"{where}got {_short(got)}, expected {_short(want)}"
    if _is_number(want):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not _is_number(got):
            return f"{where}expected a number, got {type(got).__name__}"
        if isinstance(want, (int, np.integer)) and isinstance(got, (int, np.integer)):
            return None if got == want else f"{where}got {got}, expected {want}"
        g, w = float(got), float(want)
        if math.isnan(g) and not math.isnan(w):
            return f"{where}got NaN, expected {_fmt(w)}"
        return None if abs(g - w) <= ATOL + RTOL * abs(w) else f"{where}got {_fmt(g)}, expected {_fmt(w)}"
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return f"{where}expected a {type(want).__name__} of {len(want)}, got {type(got).__name__}"
        if len(got) != len(want):
            return f"{where}expected {len(want)} items, got {len(got)}"
        for k, (g, w) in enumerate(zip(got, want)):
            msg = _mismatch(g, w, f"{where}item {k}: ")
            if msg:
                return msg
        return None
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{where}expected a dict, got {type(got).__name__}"
        if set(got) != set(want):
            return f"{where}keys {sorted(map(str, got))}, expected {sorted(map(str, want))}"
        for k in want:
            msg = _mismatch(got[k], want[k], f"{where}[{k!r}]: ")
            if msg:
                return msg
        return None
    try:
        same = bool(got == want)
    except Exception:              # e.g. an array against a scalar: not the same value
        same = False
    return None if same else f"{where}got {_short(got)}, expected {_short(want)}"


def _describe(args) -> str:
    return ", ".join(_short(a, 30) for a in args)


def _compare_calls(what, candidate, reference, cases, kind, solution, ex, extra) -> bool:
    """Run ``candidate`` and ``reference`` on every case; print and record one line."""
    if not callable(candidate) or not callable(reference):
        raise TypeError("candidate and reference must be functions")
    if isinstance(cases, (str, bytes)) or not hasattr(cases, "__iter__"):
        raise TypeError(f"cases must be a list of argument tuples, got {type(cases).__name__}")
    cases = [args if isinstance(args, tuple) else (args,) for args in cases]
    if not cases:
        raise ValueError("exercise needs at least one test case")
    for i, args in enumerate(cases):
        label = f"{what}, case {i + 1} of {len(cases)} ({_describe(args)})"
        try:
            got = candidate(*args)
        except NotImplementedError:
            line = _todo(what, extra.get("hint", ""))
            if solution:
                line = f"{FAIL} {what}: the solution raised NotImplementedError"
            return _finish(ex, kind, solution, what, False, line)
        except Exception as err:   # a learner's function that crashes is a wrong answer, not a stop
            if solution:
                _record.append(Call(ex, kind, solution, False, what))
                raise AssertionError(f"{FAIL} {label}: the solution raised {type(err).__name__}: {err}") from err
            return _finish(ex, kind, solution, what, False,
                           f"{FAIL} {label}: your function raised {type(err).__name__}: {err}{_tail(extra)}")
        msg = _mismatch(got, reference(*args))
        if msg:
            return _finish(ex, kind, solution, what, False, f"{FAIL} {label}: {msg}.{_tail(extra)}")
    done = "the bug is fixed: " if kind == "debug" else ""
    matched = "the case matches" if len(cases) == 1 else f"all {len(cases)} cases match"
    return _finish(ex, kind, solution, what, True, f"{PASS} {what}: {done}{matched} vislab")


def _tail(extra) -> str:
    out = ""
    if extra.get("symptom"):
        out += f" Symptom: {extra['symptom']}"
    if extra.get("hint"):
        out += f" Hint: {extra['hint']}"
    return out


def exercise(what, candidate, reference, cases, kind="build", hint="", solution=False) -> bool:
    """Self-check for a build-from-the-math exercise: ``candidate(*args)`` against ``reference(*args)``.

    Args:
        what: the exercise's name, starting with "Exercise N" ("Exercise 3b: patchify").
        candidate: the learner's function. ``NotImplementedError`` counts as not attempted.
        reference: vislab's function, the ground truth.
        cases: argument tuples (a single argument needs no tuple), at least one.
        kind: one of ``KINDS`` ("build" by default).
        hint: printed on a miss, something the learner can try.
        solution: the call from the solution cell; a miss then raises ``AssertionError``.
    Returns:
        True when every case matches (tensors and floats within 1e-5), else False.
        Tensors, numpy arrays, numbers, tuples, lists and dicts are compared item by item.
    """
    ex, solution = _start(what, solution, kind)
    return _compare_calls(what, candidate, reference, cases, kind, solution, ex, {"hint": _text(hint, "hint")})


def debug(what, candidate, reference, cases, symptom="", hint="", solution=False) -> bool:
    """Self-check for a debug exercise: the learner fixes a planted bug in a copy of a vislab piece.

    While the bug is there the check prints the symptom: the first case that differs, what
    came against what vislab gives, and ``symptom`` (what the learner would see in practice,
    e.g. "the attention rows do not sum to 1"). Arguments and return as in ``exercise``.
    """
    ex, solution = _start(what, solution, "debug")
    extra = {"symptom": _text(symptom, "symptom"), "hint": _text(hint, "hint")}
    return _compare_calls(what, candidate, reference, cases, "debug", solution, ex, extra)


def _plain(value):
    """A tensor or array as a number or nested list, for predictions and answers."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        size = value.size if isinstance(value, np.ndarray) else value.numel()
        value = value.item() if size == 1 else value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _gap(guess, actual, tol):
    """(within tolerance, largest numeric gap or None, why not) for a prediction."""
    guess, actual = _plain(guess), _plain(actual)
    if _is_number(actual):
        if not _is_number(guess):
            return False, None, f"your prediction is a {type(guess).__name__}, the measured value is a number"
        gap = abs(float(guess) - float(actual))
        return gap <= tol, gap, ""
    if isinstance(actual, str):
        if not isinstance(guess, str):
            return False, None, f"your prediction is a {type(guess).__name__}, the measured value is text"
        return _norm(guess) == _norm(actual), None, ""
    if isinstance(actual, (tuple, list)):
        if not isinstance(guess, (tuple, list)) or len(guess) != len(actual):
            n = len(guess) if isinstance(guess, (tuple, list)) else None
            return False, None, f"expected {len(actual)} values, your prediction has {n if n is not None else 'one'}"
        ok, worst = True, None
        for g, a in zip(guess, actual):
            o, gap, why = _gap(g, a, tol)
            if why:
                return False, None, why
            ok = ok and o
            if gap is not None:
                worst = gap if worst is None else max(worst, gap)
        return ok, worst, ""
    return guess == actual, None, ""


def predict(what, guess, actual, tol=0.0, explain="", solution=False) -> bool:
    """Predict, then run: compare the learner's ``guess`` with the measured ``actual``.

    Args:
        what: "Exercise N: ..." as for ``exercise``.
        guess: the learner's prediction (a number, a string, a tuple of numbers...);
            ``None`` means not attempted yet.
        actual: the value the chapter measured.
        tol: numbers agree when ``|guess - actual| <= tol`` (absolute; tuples item by item).
            Strings are compared ignoring case and spacing.
        explain: why the value is what it is; printed once the learner has committed.
        solution: the call from the solution cell; a miss raises ``AssertionError``.
    Returns True when the prediction is within the tolerance.
    """
    ex, solution = _start(what, solution, "predict")
    explain = _text(explain, "explain")
    if isinstance(tol, bool) or not isinstance(tol, _NUMBER):
        raise TypeError(f"tol must be a number, got {type(tol).__name__}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if actual is None:
        raise ValueError(f"{what}: actual is None; pass the measured value")
    if guess is None:
        line = (f"{TODO} {what}: not attempted yet. Write your prediction in the cell above "
                "(replace None), then run this cell to compare it with the measurement.")
        if solution:
            line = f"{FAIL} {what}: the solution's prediction is None"
        return _finish(ex, "predict", solution, what, False, line)
    ok, gap, why = _gap(guess, actual, tol)
    shown = f"you predicted {_short(_plain(guess))}, measured {_short(_plain(actual))}"
    if gap is not None:
        shown += f" (gap {_fmt(gap)}, tolerance ±{_fmt(float(tol))})"
    elif why:
        shown += f": {why}"
    if not ok and not why and gap is None:
        shown += ": not the same"
    line = f"{PASS if ok else FAIL} {what}: {shown}." + (f" {explain}" if explain else "")
    return _finish(ex, "predict", solution, what, ok, line)


def _same_answer(given, accepted) -> bool:
    given, accepted = _plain(given), _plain(accepted)
    if isinstance(accepted, str) or isinstance(given, str):
        return isinstance(accepted, str) and isinstance(given, str) and _norm(given) == _norm(accepted)
    if _is_number(accepted) and _is_number(given):
        return math.isclose(float(given), float(accepted), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(accepted, (tuple, list)) and isinstance(given, (tuple, list)):
        return len(given) == len(accepted) and all(_same_answer(g, a) for g, a in zip(given, accepted))
    try:
        return bool(given == accepted)
    except Exception:
        return False


def _accepted(expected) -> list:
    """The accepted answers: a list, set or frozenset lists them; a tuple of strings or of tuples
    lists them too; any other value (a number, a string, a tuple of numbers) is the one answer."""
    if isinstance(expected, (list, set, frozenset)):
        return list(expected)
    if isinstance(expected, tuple) and expected and all(isinstance(e, (str, tuple)) for e in expected):
        return list(expected)
    return [expected]


def answer(what, given, expected, explain="", hint="", kind="ablate", solution=False) -> bool:
    """The learner's answer to an ablation (what did the knob do?) or a choice question.

    Args:
        what: "Exercise N: ..." as for ``exercise``.
        given: the learner's answer; ``None`` means not attempted yet.
        expected: the right answer; or accepted answers (a list, set or frozenset, or a tuple
            of strings); or a predicate ``expected(given) -> bool`` (e.g. a measured range).
            Strings are compared ignoring case and spacing; numbers exactly (to rounding).
        explain: why; printed once the learner has answered.
        hint: printed on a miss and while not attempted.
        kind: one of ``KINDS`` ("ablate" by default; "predict" for a choice made before running).
        solution: the call from the solution cell; a miss raises ``AssertionError``.
    Returns True when the answer is accepted.
    """
    ex, solution = _start(what, solution, kind)
    explain, hint = _text(explain, "explain"), _text(hint, "hint")
    if expected is None:
        raise ValueError(f"{what}: expected is None; pass the right answer, the accepted answers or a predicate")
    if given is None:
        line = (f"{TODO} {what}: not attempted yet. Write your answer in the cell above (replace None) "
                f"and run this cell again{'; hint: ' + hint if hint else ''}.")
        if solution:
            line = f"{FAIL} {what}: the solution's answer is None"
        return _finish(ex, kind, solution, what, False, line)
    if callable(expected):
        try:
            ok = bool(expected(given))
        except Exception as err:   # the learner's answer is of a form the predicate cannot read
            if solution:
                raise
            ok, why = False, f" (it could not be checked: {type(err).__name__}: {err})"
        else:
            why = ""
        want = (expected.__doc__ or "").strip().splitlines()[0] if expected.__doc__ else "the measured outcome"
    else:
        accepted = _accepted(expected)
        ok, why = any(_same_answer(given, a) for a in accepted), ""
        want = " or ".join(_short(_plain(a)) for a in accepted)
    if ok:
        line = f"{PASS} {what}: {_short(_plain(given))} is right." + (f" {explain}" if explain else "")
    else:
        line = (f"{FAIL} {what}: you answered {_short(_plain(given))}{why}; expected {want}."
                + (f" {explain}" if explain else "") + (f" Hint: {hint}" if hint else ""))
    return _finish(ex, kind, solution, what, ok, line)

"""Visible checks for chapters: learning bars and exercise self-checks.

A chapter asserts every learning result with one of these helpers. Each prints one line
that says what was checked and the measured value, and raises ``AssertionError`` when the
result misses its bar, so that nbval fails when learning regresses.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["at_least", "at_most", "close", "equal", "exercise"]

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



def exercise(what: str, candidate, reference, cases) -> bool:
    """Self-check for an exercise: compare ``candidate(*args)`` with ``reference(*args)``.

    Args:
        what: the exercise's name, printed.
        candidate: the learner's function. If it raises ``NotImplementedError`` the
            exercise counts as not attempted: a hint is printed and nothing is raised.
        reference: vislab's function, the ground truth.
        cases: an iterable of argument tuples.
    Returns:
        True when every case matches, False when not attempted. A wrong answer raises
        ``AssertionError`` with the first failing case.
    """
    cases = list(cases)
    if not cases:
        raise ValueError("exercise needs at least one test case")
    for i, args in enumerate(cases):
        if not isinstance(args, tuple):
            args = (args,)
        try:
            got = candidate(*args)
        except NotImplementedError:
            print(f"{TODO} {what}: not attempted yet. Fill in the TODO above and run the cell again "
                  "(the hidden solution cell below shows one answer).")
            return False
        want = reference(*args)
        if isinstance(want, torch.Tensor):
            if not isinstance(got, torch.Tensor):
                raise AssertionError(f"{FAIL} {what}, case {i}: expected a tensor, got {type(got).__name__}")
            if got.shape != want.shape:
                raise AssertionError(f"{FAIL} {what}, case {i}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
            if not torch.allclose(got.double(), want.double(), atol=1e-5, rtol=1e-5):
                worst = float((got.double() - want.double()).abs().max())
                raise AssertionError(f"{FAIL} {what}, case {i}: values differ (max |difference| {worst:.3g})")
        elif got != want:
            raise AssertionError(f"{FAIL} {what}, case {i}: got {got!r}, expected {want!r}")
    print(f"{PASS} {what}: all {len(cases)} cases match vislab")
    return True

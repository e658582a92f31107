"""Uncertainty for the course's comparisons: binomial intervals and honest verdicts.

An accuracy measured on ``n`` test images is a binomial proportion; its 95% interval says how
far another draw of test images could move it. Two methods are called different only when the
interval of their *difference* excludes zero; otherwise the verdict is "tie".

- :func:`accuracy_interval`: the Wilson score interval (scipy's ``binomtest(...).proportion_ci``).
- :func:`difference_interval`: Newcombe's hybrid score interval for the difference of two
  independent proportions (Newcombe 1998, method 10), built from the two Wilson intervals.
- :func:`verdict`: "A above B", "B above A" or "tie", from that interval.
- :func:`format_accuracy`: ``"94.6% [93.0, 95.8]"`` for a table.
"""

from __future__ import annotations

import math

__all__ = ["accuracy_interval", "difference_interval", "verdict", "format_accuracy"]


def _counts(correct, n) -> tuple:
    for name, value in (("correct", correct), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int) and not (hasattr(value, "__index__")):
            raise TypeError(f"{name} must be a whole number of test examples, got {value!r}; "
                            "pass counts (e.g. int(round(accuracy * n))), not an accuracy")
    correct, n = int(correct), int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1 test example, got {n}")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must be between 0 and n={n}, got {correct}")
    return correct, n


def _confidence(confidence) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number in (0, 1), e.g. 0.95; got {confidence!r}")
    return float(confidence)


def accuracy_interval(correct: int, n: int, confidence: float = 0.95) -> tuple:
    """Wilson score interval ``(low, high)`` of an accuracy of ``correct`` out of ``n``."""
    from scipy.stats import binomtest

    correct, n = _counts(correct, n)
    ci = binomtest(correct, n).proportion_ci(confidence_level=_confidence(confidence), method="wilson")
    return float(ci.low), float(ci.high)


def difference_interval(correct_a: int, n_a: int, correct_b: int, n_b: int, confidence: float = 0.95) -> tuple:
    """Newcombe's interval ``(low, high)`` for accuracy A minus accuracy B (independent samples)."""
    ca, na = _counts(correct_a, n_a)
    cb, nb = _counts(correct_b, n_b)
    pa, pb = ca / na, cb / nb
    la, ua = accuracy_interval(ca, na, confidence)
    lb, ub = accuracy_interval(cb, nb, confidence)
    d = pa - pb
    low = d - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    high = d + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    return low, high


def verdict(correct_a: int, n_a: int, correct_b: int, n_b: int, names=("A", "B"), confidence: float = 0.95) -> str:
    """``"A above B"`` / ``"B above A"`` when the difference's interval excludes 0, else ``"tie"``."""
    a, b = names
    low, high = difference_interval(correct_a, n_a, correct_b, n_b, confidence)
    if low > 0:
        return f"{a} above {b}"
    if high < 0:
        return f"{b} above {a}"
    return "tie"


def format_accuracy(correct: int, n: int, confidence: float = 0.95, digits: int = 1) -> str:
    """``"94.6% [93.0, 95.8]"``: the accuracy and its Wilson interval, in per cent."""
    correct, n = _counts(correct, n)
    low, high = accuracy_interval(correct, n, confidence)
    return f"{100 * correct / n:.{digits}f}% [{100 * low:.{digits}f}, {100 * high:.{digits}f}]"

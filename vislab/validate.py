"""Argument checks shared by vislab's modules: one line in the function, a clear message out.

Every check raises ``TypeError`` (wrong kind of thing) or ``ValueError`` (right kind, wrong
value) with what was expected, what came, and how to fix it. They read only Python scalars
and tensor *shapes*: none of them scans a tensor's values or syncs a device, so they cost
nothing inside a training loop. The one that does look at values, :func:`check_finite`, is
meant for loaders, metrics and scalar arguments.

``vislab.show_source`` folds calls to ``check_*`` away by default, so the lines a chapter
shows stay the paper's.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = [
    "MAX_TOKENS", "MAX_ELEMENTS", "check_int", "check_number", "check_probability", "check_range_pair",
    "check_choice", "check_tensor", "check_finite", "check_tokens", "check_elements", "check_names",
    "check_bool", "check_scale",
]

# Size caps: beyond these a call would run for minutes or need more memory than a laptop has.
MAX_TOKENS = 16_384            # tokens per image (2048x2048 at P=16, 512x512 at P=4); attention is N^2
MAX_ELEMENTS = 2 ** 31         # elements of one tensor a function is asked to allocate (8 GB of float32)


def check_bool(name: str, value) -> None:
    """``value`` is a bool (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> None:
    """``value`` is an int (not a bool, not a float) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__}); pass a whole number")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")


def check_number(name: str, value, minimum: float | None = None, maximum: float | None = None,
                 strict_min: bool = False, strict_max: bool = False) -> None:
    """``value`` is a finite real number (a Python or 0-d tensor scalar) in the given range.

    ``strict_min=True`` makes the lower bound exclusive (``> minimum``), e.g. a temperature.
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"{name} must be a number, got a tensor of shape {tuple(value.shape)}")
        if value.is_floating_point() and value.device.type == "meta":
            return
        value = value.detach().reshape(()).cpu().item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict_min else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict_min else '>='} {minimum}, got {value}")
    if maximum is not None and (value >= maximum if strict_max else value > maximum):
        raise ValueError(f"{name} must be {'<' if strict_max else '<='} {maximum}, got {value}")


def check_probability(name: str, value) -> None:
    """``value`` is a probability in ``[0, 1]``."""
    check_number(name, value, 0.0, 1.0)


def check_range_pair(name: str, value, minimum: float | None = None, maximum: float | None = None) -> None:
    """``value`` is a ``(low, high)`` pair of finite numbers with ``low <= high`` inside the bounds."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a (low, high) pair, got {value!r}")
    low, high = value
    check_number(f"{name}[0]", low, minimum, maximum)
    check_number(f"{name}[1]", high, minimum, maximum)
    if low > high:
        raise ValueError(f"{name} is reversed: low {low} > high {high}; pass ({high}, {low})")


def check_choice(name: str, value, choices) -> None:
    """``value`` is one of ``choices``."""
    if value not in tuple(choices):
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_tensor(name: str, x, ndim: int | tuple | None = None, floating: bool | None = None,
                 shape: tuple | None = None) -> None:
    """``x`` is a tensor with ``ndim`` dimensions (an int or a tuple of allowed counts),
    a floating dtype when ``floating`` is True, and ``shape`` where given (None = any size)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; wrap it with torch.as_tensor(...)")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(x.shape)}")
    if floating is True and not (x.is_floating_point() or x.is_complex()):
        raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}; convert it with .float()")
    if shape is not None:
        if len(shape) != x.dim() or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            want = tuple("any" if s is None else s for s in shape)
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")


def check_finite(name: str, x) -> None:
    """Every value of ``x`` is finite (scans the tensor: for loaders and metrics, not forwards)."""
    if isinstance(x, torch.Tensor):
        if (x.is_floating_point() or x.is_complex()) and x.device.type != "meta" and not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"{name} holds {bad} non-finite value(s) (NaN or inf) out of {x.numel()}")
        return
    check_number(name, x)


def check_tokens(what: str, n: int, limit: int | None = None) -> None:
    """Refuse a token count above ``limit`` (default :data:`MAX_TOKENS`) before anything is allocated."""
    limit = MAX_TOKENS if limit is None else limit
    if n > limit:
        raise ValueError(f"{what} gives {n:,} tokens, above the limit of {limit:,}: attention over them needs "
                         f"{n * n * 4 / 2**30:,.1f} GB per head and image. Use a smaller image or a larger patch.")


def check_elements(what: str, n: int, limit: int | None = None, bytes_per: int = 4) -> None:
    """Refuse a tensor of ``n`` elements above ``limit`` (default :data:`MAX_ELEMENTS`) before it is allocated."""
    limit = MAX_ELEMENTS if limit is None else limit
    if n > limit:
        raise ValueError(f"{what} would allocate {n:,} elements ({n * bytes_per / 2**30:,.1f} GB), above the "
                         f"limit of {limit:,}; ask for less")


def check_names(name: str, names, allow_empty: bool = False) -> list:
    """``names`` is an ordered sequence (list or tuple) of distinct non-empty strings; returns it as a list.

    A ``set`` is refused: its order changes from run to run, and with it every column index.
    """
    if isinstance(names, (set, frozenset)):
        raise TypeError(f"{name} is a set, whose order changes from run to run (and so would the class "
                        f"indices); pass a list, e.g. sorted({name})")
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of strings, got {type(names).__name__}")
    if not names and not allow_empty:
        raise ValueError(f"{name} is empty: pass at least one name")
    for n in names:
        if not isinstance(n, str) or not n.strip():
            raise TypeError(f"{name} must hold non-empty strings, got {n!r}")
    seen, dup = set(), []
    for n in names:
        if n in seen and n not in dup:
            dup.append(n)
        seen.add(n)
    if dup:
        raise ValueError(f"{name} has duplicates {dup}: two identical classes cannot be told apart; "
                         "remove the repeats")
    return list(names)


def check_scale(name: str, value, positive: bool = True) -> None:
    """A loss's scalar multiplier (1/tau) must be finite and, with ``positive``, > 0 (0 makes every
    logit equal; below 0 ranks backwards). Values are read only from Python numbers and CPU
    tensors, so a training step on a GPU never waits for a sync."""
    if isinstance(value, torch.Tensor):
        if value.device.type != "cpu" or value.numel() != 1:
            return
        v = float(value.detach().reshape(()))
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
    else:
        raise TypeError(f"{name} must be a number or a scalar tensor, got {type(value).__name__}")
    if not math.isfinite(v) or (positive and v <= 0):
        want = "a finite number > 0 (the multiplier exp(t) = 1/tau)" if positive else "finite"
        raise ValueError(f"{name} must be {want}, got {v}" + ("; pass model.logit_scale.exp(), not t itself"
                                                              if positive else ""))

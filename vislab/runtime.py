"""Runtime: device choice, explicit seeding and thread count.

Nothing here runs at import time. A chapter calls :func:`setup` once in its first
code cell; library functions that draw random numbers take a ``generator`` (or a
``seed``) argument instead of relying on global state.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "make_generator", "set_threads", "setup", "on_colab", "budget_scale",
           "scaled_steps", "GPU_BUDGET_SCALE"]

# Measured by benchmarks/threads.py on the course's 2-core reference machine: a tiny
# ViT training step runs faster and far less noisily with one intra-op thread than with
# torch's default of one thread per core, because tensors at the course's sizes are
# too small to split profitably and the second core is usually busy (kernel, browser).
DEFAULT_CPU_THREADS = 1


def get_device(prefer: str | None = None) -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then CPU.

    ``prefer`` ("cpu", "cuda", "mps") forces a choice; asking for an accelerator that
    is not there raises ``ValueError`` instead of silently falling back.
    """
    if prefer is not None:
        if not isinstance(prefer, str):
            raise TypeError(f"prefer must be a string such as 'cpu' or 'cuda', got {type(prefer).__name__}")
        kind = prefer.split(":")[0]
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError("prefer='cuda' but torch sees no CUDA device; use prefer=None or 'cpu'")
        if kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError("prefer='mps' but Apple MPS is not available; use prefer=None or 'cpu'")
        if kind not in ("cpu", "cuda", "mps"):
            raise ValueError(f"unknown device {prefer!r}; expected 'cpu', 'cuda' or 'mps'")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a fresh ``torch.Generator`` seeded alike.

    Prefer passing the returned generator to functions that take one: it keeps a
    chapter's random streams independent of how many other cells drew numbers.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return make_generator(seed)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


_BLAS_LIMIT = None


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads and NumPy/scikit-learn's BLAS and OpenMP pools to ``n``
    (default: :data:`DEFAULT_CPU_THREADS`).

    The BLAS limit matters as much as torch's: on a busy 2-core machine a scikit-learn
    logistic regression on raw pixels took 24 s with OpenBLAS's 2 threads and 1.3 s with 1.
    """
    global _BLAS_LIMIT
    n = DEFAULT_CPU_THREADS if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"thread count must be a positive int, got {n!r}")
    torch.set_num_threads(n)
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT = threadpool_limits(limits=n)
    return n


GPU_BUDGET_SCALE = 4   # a Colab T4 runs the course's small models about 10-30x faster than 2 CPU cores


def budget_scale(device) -> int:
    """How many times the CPU step budget a training gets on ``device``: 1 on CPU (and MPS),
    :data:`GPU_BUDGET_SCALE` on CUDA.

    Budgets are counted in steps, so that a run is reproducible; on a GPU the same steps take a
    fraction of the time, and a longer schedule (same batch, learning rate and warm-up fraction,
    more steps) buys a better model in about the wall time the CPU run needs. Chapters that
    assert a learning result assert what the CPU budget reaches, so the bar holds on both.
    """
    if isinstance(device, str):
        device = torch.device(device)
    if not isinstance(device, torch.device):
        raise TypeError(f"device must be a torch.device or a string such as 'cuda', got {type(device).__name__}")
    return GPU_BUDGET_SCALE if device.type == "cuda" else 1


def scaled_steps(steps: int, device) -> int:
    """``steps`` times :func:`budget_scale` of ``device`` (the CPU budget on CPU)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    return steps * budget_scale(device)


def on_colab() -> bool:
    """True inside Google Colab."""
    return "COLAB_RELEASE_TAG" in os.environ or "google.colab" in __import__("sys").modules


def setup(seed: int = 0, threads: int | None = None, device: str | None = None,
          verbose: bool = True) -> torch.device:
    """The first line of every chapter: seed, threads, device; prints one line.

    Returns the device that the chapter should use.
    """
    seed_everything(seed)
    dev = get_device(device)
    n = set_threads(threads) if dev.type == "cpu" else torch.get_num_threads()
    if verbose:
        extra = f", {n} CPU thread{'s' if n != 1 else ''}" if dev.type == "cpu" else ""
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
        print(f"vislab: device={name}{extra}, seed={seed}, torch {torch.__version__}")
    return dev

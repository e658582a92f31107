"""Frozen-feature evaluation with scikit-learn: k-NN, linear probes, retrieval.

The encoder is frozen; these functions only read its features. Features are numpy arrays
or tensors of shape ``(n, D)``; labels ``(n,)``.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from vislab.validate import check_choice, check_finite, check_int, check_number

__all__ = ["knn_accuracy", "linear_probe_accuracy", "retrieval_recall", "pixel_features", "extract_features"]


def _threads():
    """Limit BLAS/OpenMP to torch's thread count (set by ``vislab.runtime.setup``) while
    scikit-learn fits: scipy's OpenBLAS is loaded lazily, so a limit set before importing
    scikit-learn would miss it, and oversubscribed BLAS threads made a raw-pixel probe 20x
    slower on a busy 2-core machine."""
    return threadpool_limits(limits=torch.get_num_threads())


def _np(x, name: str, ndim: int) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}): pass at least one example")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values: the encoder diverged or the input is damaged")
    if ndim == 2 and x.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
    return x


def _xy(train_x, train_y, test_x, test_y):
    tx, ty = _np(train_x, "train_x", 2), _np(train_y, "train_y", 1)
    vx, vy = _np(test_x, "test_x", 2), _np(test_y, "test_y", 1)
    if tx.shape[0] != ty.shape[0] or vx.shape[0] != vy.shape[0]:
        raise ValueError(f"features and labels differ in length: train {tx.shape[0]} vs {ty.shape[0]}, "
                         f"test {vx.shape[0]} vs {vy.shape[0]}")
    if tx.shape[1] != vx.shape[1]:
        raise ValueError(f"train and test features differ in width: {tx.shape[1]} vs {vx.shape[1]}")
    return tx, ty, vx, vy


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 20, metric: str = "cosine") -> float:
    """Accuracy of a k-nearest-neighbour classifier (distance-weighted vote), as DINO evaluates."""
    tx, ty, vx, vy = _xy(train_x, train_y, test_x, test_y)
    check_choice("metric", metric, ("cosine", "euclidean", "l2", "l1", "manhattan", "minkowski"))
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= tx.shape[0]:
        raise ValueError(f"k must be an int between 1 and the number of training points ({tx.shape[0]}), got {k!r}")
    clf = KNeighborsClassifier(n_neighbors=k, metric=metric, weights="distance", algorithm="brute")
    with _threads():
        clf.fit(tx, ty)
        return float((clf.predict(vx) == vy).mean())


def linear_probe_accuracy(train_x, train_y, test_x, test_y, max_iter: int = 1000, C: float = 1.0) -> float:
    """Accuracy of a logistic-regression probe on standardised features."""
    tx, ty, vx, vy = _xy(train_x, train_y, test_x, test_y)
    check_int("max_iter", max_iter, minimum=1)
    check_number("C", C, 0.0, strict_min=True)
    if len(np.unique(ty)) < 2:
        raise ValueError(f"train_y holds a single class ({ty[0]!r}): a linear probe needs at least two")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=C))
    with _threads():
        clf.fit(tx, ty)
        return float((clf.predict(vx) == vy).mean())


def retrieval_recall(similarity, ks=(1, 5, 10)) -> dict:
    """Recall@K for a square similarity matrix whose diagonal holds the true pairs.

    Ties are counted honestly: a candidate that ties with the true one is ranked in random
    order with it, and the recall is the expected value under that random tie-breaking. So
    a collapsed encoder (every similarity equal) scores chance, ``k / n``, not 100%.

    Args:
        similarity: ``(n, n)``; row i = query i against every candidate.
    Returns:
        ``{"R@1": ..., "R@5": ..., ...}`` for row→column retrieval. Transpose the matrix
        for the other direction.
    """
    s = torch.as_tensor(similarity).detach().float().cpu()
    if s.dim() != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"similarity must be a square (n, n) matrix, got {tuple(s.shape)}")
    check_finite("similarity", s)
    if isinstance(ks, int) or not ks:
        raise TypeError(f"ks must be a non-empty sequence of positive ints such as (1, 5), got {ks!r}")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"ks must hold positive ints, got {k!r}")
    n = s.shape[0]
    true = s.diagonal()[:, None]                            # (n, 1)
    above = (s > true).sum(dim=1)                           # (n,) candidates that beat the true one
    tied = (s == true).sum(dim=1) - 1                       # (n,) others that tie with it
    out = {}
    for k in ks:
        hit = ((k - above) / (tied + 1)).clamp(0, 1)        # (n,) P(true one in the top k), ties in random order
        out[f"R@{k}"] = float(hit.mean()) if n else 0.0
    return out


def _describe(x) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else f"a {type(x).__name__}"


def pixel_features(images: torch.Tensor) -> np.ndarray:
    """The raw-pixel baseline: each image flattened to one vector, ``(n, C*H*W)``."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a (n, C, H, W) tensor, got {_describe(images)}")
    return images.reshape(images.shape[0], -1).float().numpy()


@torch.no_grad()
def extract_features(fn, images: torch.Tensor, batch_size: int = 256, device=None) -> np.ndarray:
    """Apply a frozen feature function ``fn(images) -> (b, D)`` in batches; returns ``(n, D)``."""
    if not callable(fn):
        raise TypeError(f"fn must be a callable fn(images) -> (b, D) features, got {type(fn).__name__}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (n, C, H, W) tensor, got {_describe(images)}")
    check_int("batch_size", batch_size, minimum=1)
    outs = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i:i + batch_size]
        if device is not None:
            x = x.to(device)
        f = fn(x)
        if not isinstance(f, torch.Tensor) or f.dim() != 2 or f.shape[0] != x.shape[0]:
            raise ValueError(f"the feature function must return (b, D) = ({x.shape[0]}, D), got {_describe(f)}")
        outs.append(f.float().cpu())
    return torch.cat(outs).numpy()

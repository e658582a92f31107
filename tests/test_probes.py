"""Tests for vislab.probes: k-NN and linear probes, retrieval recall, feature helpers."""

import numpy as np
import pytest
import torch

from vislab.probes import extract_features, knn_accuracy, linear_probe_accuracy, pixel_features, retrieval_recall


def blobs(n_per_class=60, classes=3, dim=10, spread=0.3, seed=0):
    """Well separated Gaussian blobs: (train_x, train_y, test_x, test_y)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 3
    y = np.repeat(np.arange(classes), n_per_class)
    x = centres[y] + spread * rng.normal(size=(len(y), dim))
    order = rng.permutation(len(y))
    x, y = x[order].astype(np.float32), y[order]
    half = len(y) // 2
    return x[:half], y[:half], x[half:], y[half:]


def noise(n=400, classes=4, dim=20, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, dim)).astype(np.float32), rng.integers(0, classes, n),
            rng.normal(size=(n, dim)).astype(np.float32), rng.integers(0, classes, n))


# ---- probes ---------------------------------------------------------------------------------------

def test_probes_solve_separable_data():
    data = blobs()
    assert knn_accuracy(*data, k=5) >= 0.97
    assert linear_probe_accuracy(*data) >= 0.97


def test_probes_are_near_chance_on_random_labels():
    data = noise()
    chance = 1 / 4
    assert abs(knn_accuracy(*data, k=20) - chance) < 0.1
    assert abs(linear_probe_accuracy(*data) - chance) < 0.1


def test_probes_accept_tensors_and_arrays_alike():
    tx, ty, vx, vy = blobs(seed=1)
    as_t = [torch.from_numpy(a) for a in (tx, ty, vx, vy)]
    assert knn_accuracy(*as_t, k=3) == knn_accuracy(tx, ty, vx, vy, k=3)
    assert linear_probe_accuracy(*as_t) == linear_probe_accuracy(tx, ty, vx, vy)
    grad = torch.from_numpy(tx).requires_grad_()
    assert knn_accuracy(grad, ty, vx, vy, k=3) == knn_accuracy(tx, ty, vx, vy, k=3)


def test_knn_uses_cosine_by_default():
    """The query points in class 0's direction but lies nearer to class 1's point in space."""
    tx = np.array([[1.0, 0.0], [5.0, 5.0]], dtype=np.float32)
    ty = np.array([0, 1])
    vx = np.array([[10.0, 0.5]], dtype=np.float32)
    assert knn_accuracy(tx, ty, vx, np.array([0]), k=1) == 1.0
    assert knn_accuracy(tx, ty, vx, np.array([0]), k=1, metric="euclidean") == 0.0


def test_knn_returns_a_fraction():
    acc = knn_accuracy(*blobs(), k=1)
    assert isinstance(acc, float) and 0.0 <= acc <= 1.0


@pytest.mark.parametrize("fn", [knn_accuracy, linear_probe_accuracy])
def test_probe_bad_shapes(fn):
    tx, ty, vx, vy = blobs()
    extra = dict(k=3) if fn is knn_accuracy else {}
    with pytest.raises(ValueError, match="train_x must have 2 dimension"):
        fn(tx[:, 0], ty, vx, vy, **extra)
    with pytest.raises(ValueError, match="train_y must have 1 dimension"):
        fn(tx, ty[:, None], vx, vy, **extra)
    with pytest.raises(ValueError, match="differ in length"):
        fn(tx, ty[:-1], vx, vy, **extra)
    with pytest.raises(ValueError, match="differ in length"):
        fn(tx, ty, vx, vy[:-1], **extra)
    with pytest.raises(ValueError, match="differ in width: 10 vs 9"):
        fn(tx, ty, vx[:, :9], vy, **extra)


@pytest.mark.parametrize("k", [0, -1, 91, 2.0, None])
def test_knn_bad_k(k):
    tx, ty, vx, vy = blobs()                  # 90 training points
    with pytest.raises(ValueError, match="k must be an int between 1 and the number of training points"):
        knn_accuracy(tx, ty, vx, vy, k=k)


# ---- retrieval ------------------------------------------------------------------------------------

def brute_force_recall(s, k):
    s = np.asarray(s)
    hits = [i in np.argsort(-s[i], kind="stable")[:k] or (s[i] > s[i, i]).sum() < k for i in range(len(s))]
    return float(np.mean(hits))


def test_retrieval_identity_is_perfect():
    assert retrieval_recall(torch.eye(20)) == {"R@1": 1.0, "R@5": 1.0, "R@10": 1.0}


def test_retrieval_permuted_identity():
    n = 20
    perm = torch.roll(torch.arange(n), 1)                        # no fixed point
    s = 2 * torch.eye(n)[perm] + torch.eye(n) - 1               # each true pair (0) is beaten by exactly one (1)
    r = retrieval_recall(s, ks=(1, 2, 5))
    assert r == {"R@1": 0.0, "R@2": 1.0, "R@5": 1.0}
    # half the rows permuted, half right
    mixed = torch.eye(n)
    mixed[:10] = torch.eye(n)[torch.roll(torch.arange(10), 1)].new_zeros(10, n)
    mixed[:10, :10] = torch.eye(10)[torch.roll(torch.arange(10), 1)]
    assert retrieval_recall(mixed, ks=(1,))["R@1"] == 0.5


def test_retrieval_matches_brute_force_on_random_scores():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(50, 50, generator=g)
    s += 2 * torch.eye(50)                                       # some, not all, true pairs rank first
    r = retrieval_recall(s, ks=(1, 3, 10))
    for k in (1, 3, 10):
        assert r[f"R@{k}"] == pytest.approx(brute_force_recall(s.numpy(), k))
    assert 0 < r["R@1"] < r["R@3"] <= r["R@10"] <= 1
    # transposing gives the other direction
    assert retrieval_recall(s.T, ks=(1,))["R@1"] == pytest.approx(brute_force_recall(s.T.numpy(), 1))


def test_retrieval_accepts_numpy_and_counts_ties_as_chance():
    # a collapsed encoder (all similarities equal) scores chance, k / n, not perfect retrieval
    assert retrieval_recall(np.ones((4, 4)), ks=(1, 2, 4)) == {"R@1": 0.25, "R@2": 0.5, "R@4": 1.0}


def test_retrieval_bad_input():
    with pytest.raises(ValueError, match="square"):
        retrieval_recall(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="square"):
        retrieval_recall(torch.zeros(3))
    for ks in ((0,), (1.5,), (-1,)):
        with pytest.raises(ValueError, match="positive ints"):
            retrieval_recall(torch.eye(3), ks=ks)


# ---- features -------------------------------------------------------------------------------------

def test_pixel_features():
    x = torch.rand(5, 3, 4, 6)
    f = pixel_features(x)
    assert isinstance(f, np.ndarray) and f.shape == (5, 72) and f.dtype == np.float32
    assert np.array_equal(f[2], x[2].flatten().numpy())
    assert pixel_features(x.double()).dtype == np.float32
    for bad in (x[0], x.numpy(), [[1.0]]):
        with pytest.raises(ValueError, match=r"\(n, C, H, W\)"):
            pixel_features(bad)


def test_extract_features_in_batches():
    calls = []

    def fn(images):
        calls.append(images.shape[0])
        return images.mean(dim=(2, 3))                           # (b, C)

    x = torch.rand(10, 3, 4, 4)
    f = extract_features(fn, x, batch_size=4, device="cpu")
    assert calls == [4, 4, 2]
    assert f.shape == (10, 3) and isinstance(f, np.ndarray)
    np.testing.assert_allclose(f, x.mean(dim=(2, 3)).numpy(), rtol=1e-6)
    with torch.enable_grad():
        w = torch.ones(3, requires_grad=True)
        out = extract_features(lambda im: im.mean(dim=(2, 3)) * w, x)   # no_grad inside: no graph
        assert out.shape == (10, 3)


def test_extract_features_bad_input():
    with pytest.raises(ValueError, match=r"\(n, C, H, W\)"):
        extract_features(lambda x: x, torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match=r"must return \(b, D\)"):
        extract_features(lambda x: x, torch.rand(2, 3, 4, 4))

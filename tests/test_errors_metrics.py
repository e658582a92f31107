"""Metrics, training and zero-shot refuse nonsense and treat ties honestly (issue 21)."""

import numpy as np
import pytest
import torch
from torch import nn

from vislab import clip, probes, train
from vislab.text import shapeworld_tokenizer


# ---- probes.retrieval_recall ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 5, 10])
def test_a_collapsed_encoder_scores_chance_not_perfect_retrieval(n):
    r = probes.retrieval_recall(torch.zeros(n, n), ks=(1, 2))
    assert r["R@1"] == pytest.approx(1 / n)
    assert r["R@2"] == pytest.approx(min(1.0, 2 / n))


def test_partial_ties_are_a_fraction_of_a_hit():
    s = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 0.0], [3.0, 0.0, 1.0]])
    # row 0: true ties with one other -> 1/2 at k=1; row 1: alone at the top -> 1; row 2: one above -> 0
    assert probes.retrieval_recall(s, ks=(1, 2)) == {"R@1": pytest.approx(0.5), "R@2": pytest.approx(1.0)}


def test_without_ties_the_recall_is_unchanged():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(30, 30, generator=g)
    rank = (s > s.diagonal()[:, None]).sum(1)
    for k in (1, 5):
        assert probes.retrieval_recall(s, ks=(k,))[f"R@{k}"] == pytest.approx(float((rank < k).float().mean()))


@pytest.mark.parametrize("bad, err, fragment", [
    (torch.full((3, 3), float("nan")), ValueError, "non-finite"),
    (torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), ValueError, "non-finite"),
])
def test_retrieval_refuses_non_finite_scores(bad, err, fragment):
    with pytest.raises(err, match=fragment):
        probes.retrieval_recall(bad)


@pytest.mark.parametrize("ks", [3, (), (True,)])
def test_retrieval_refuses_bad_ks(ks):
    with pytest.raises((TypeError, ValueError), match="ks"):
        probes.retrieval_recall(torch.eye(3), ks=ks)


# ---- probes: k-NN, linear probe, features ----------------------------------------------------------------

def _blobs(n=20):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long()


def test_probes_refuse_nan_features_empty_sets_and_bad_arguments():
    x, y = _blobs()
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        probes.knn_accuracy(bad, y, x, y, k=3)
    with pytest.raises(ValueError, match="empty"):
        probes.knn_accuracy(x, y, x[:0], y[:0], k=3)
    with pytest.raises(ValueError, match="metric"):
        probes.knn_accuracy(x, y, x, y, k=3, metric="cosin")
    with pytest.raises(ValueError, match="k must be an int"):
        probes.knn_accuracy(x, y, x, y, k=True)
    with pytest.raises(ValueError, match="C must be >"):
        probes.linear_probe_accuracy(x, y, x, y, C=0)
    with pytest.raises(ValueError, match="C must be finite"):
        probes.linear_probe_accuracy(x, y, x, y, C=float("inf"))
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        probes.linear_probe_accuracy(x, y, x, y, max_iter=0)
    with pytest.raises(ValueError, match="single class"):
        probes.linear_probe_accuracy(x, torch.zeros(20, dtype=torch.long), x, y)


def test_extract_features_refuses_bad_batch_sizes_and_functions():
    x = torch.rand(4, 3, 2, 2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        probes.extract_features(lambda t: t.mean((2, 3)), x, batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        probes.extract_features(lambda t: t.mean((2, 3)), x, batch_size=2.5)
    with pytest.raises(TypeError, match="fn must be a callable"):
        probes.extract_features("encoder", x)
    with pytest.raises(ValueError, match=r"must return \(b, D\)"):
        probes.extract_features(lambda t: t.mean((1, 2, 3)), x)          # (b,), not (b, D)
    with pytest.raises(ValueError, match="non-empty"):
        probes.extract_features(lambda t: t, x[:0])


# ---- train -------------------------------------------------------------------------------------------------

def _model():
    torch.manual_seed(0)
    return nn.Linear(4, 3)


def test_evaluate_accuracy_checks_label_shapes_instead_of_returning_more_than_one():
    model, x = _model(), torch.randn(8, 4)
    y = torch.randint(0, 3, (8,))
    assert 0 <= train.evaluate_accuracy(model, x, y) <= 1
    with pytest.raises(ValueError, match=r"labels must be \(B,\) class indices, got shape \(8, 1\)"):
        train.evaluate_accuracy(model, x, y[:, None])
    with pytest.raises(TypeError, match="integer class indices"):
        train.evaluate_accuracy(model, x, y.float())
    with pytest.raises(ValueError, match="8 images but 7 labels"):
        train.evaluate_accuracy(model, x, y[:7])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        train.evaluate_accuracy(model, x, y, batch_size=0)
    with pytest.raises(TypeError, match="images must be a torch.Tensor"):
        train.evaluate_accuracy(model, x.numpy(), y)


def test_evaluate_accuracy_checks_the_logits_shape():
    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 1)

        def forward(self, x):
            return self.lin(x)[:, 0]                                     # (B,), not (B, K)

    with pytest.raises(ValueError, match=r"must return \(B, K\)"):
        train.evaluate_accuracy(Flat(), torch.randn(5, 4), torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("clip_value, err", [(-1, ValueError), (0, ValueError), (float("nan"), ValueError),
                                             ("1", TypeError)])
def test_fit_refuses_a_gradient_clip_that_is_not_positive(clip_value, err):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.clone()
    with pytest.raises(err, match="grad_clip"):
        train.fit(model, lambda m, b: m(b).pow(2).mean(), [torch.randn(2, 4)], opt, steps=3,
                  grad_clip=clip_value, progress=False)
    assert torch.equal(model.weight, before)                             # refused before any step


def test_fit_refuses_what_is_not_a_model_a_loss_or_an_optimizer():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = lambda m, b: m(b).sum()                                       # noqa: E731
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        train.fit(lambda x: x, loss, [torch.randn(2, 4)], opt, steps=1, progress=False)
    with pytest.raises(TypeError, match="loss_fn must be a callable"):
        train.fit(model, "mse", [torch.randn(2, 4)], opt, steps=1, progress=False)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        train.fit(model, loss, [torch.randn(2, 4)], {"lr": 0.1}, steps=1, progress=False)
    with pytest.raises(TypeError, match="history must be"):
        train.fit(model, loss, [torch.randn(2, 4)], opt, steps=1, progress=False, history={})


# ---- clip: losses, zero-shot, retrieval --------------------------------------------------------------------

@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf"), torch.tensor(0.0), torch.tensor(-2.0)])
def test_losses_and_logits_refuse_a_non_positive_scale(scale):
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    with pytest.raises(ValueError, match="logit_scale must be a finite number > 0"):
        clip.clip_loss(a, b, scale)
    with pytest.raises(ValueError, match="logit_scale must be a finite number > 0"):
        clip.clip_loss_explicit(a, b, scale)
    with pytest.raises(ValueError, match="logit_scale must be a finite number > 0"):
        clip.zero_shot_logits(a, b, scale)


def test_the_scale_check_keeps_gradients_and_valid_values():
    t = torch.tensor(2.0, requires_grad=True)
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    clip.clip_loss(a, b, t.exp()).backward()
    assert t.grad is not None
    with pytest.raises(TypeError, match="logit_scale must be a number"):
        clip.clip_loss(a, b, "10")


class _TextModel(nn.Module):
    """encode_text = a bag of word embeddings, enough to build zero-shot weights."""

    def __init__(self, vocab):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(vocab, 8)

    def encode_text(self, ids):
        return self.emb(ids).sum(1)


def test_zero_shot_refuses_duplicate_unknown_and_unordered_class_names():
    tok = shapeworld_tokenizer()
    model = _TextModel(tok.vocab_size)
    w = clip.zero_shot_classifier(model, tok, ["circle", "square"])
    assert w.shape == (2, 8)
    with pytest.raises(ValueError, match=r"duplicates \['circle'\]"):
        clip.zero_shot_classifier(model, tok, ["circle", "square", "circle"])
    with pytest.raises(ValueError, match=r"does not know: \['okapi', 'zebra'\]"):
        clip.zero_shot_classifier(model, tok, ["zebra", "okapi", "circle"])
    with pytest.raises(TypeError, match="is a set"):
        clip.zero_shot_classifier(model, tok, {"circle", "square"})
    with pytest.raises(TypeError, match="is a set"):
        clip.zero_shot_classifier(model, tok, ["circle"], templates={"a photo of a {}"})
    with pytest.raises(TypeError, match="non-empty strings"):
        clip.zero_shot_classifier(model, tok, ["circle", 3])
    with pytest.raises(ValueError, match="non-empty list"):
        clip.zero_shot_classifier(model, tok, [])


def test_clip_retrieval_counts_ties_as_chance():
    z = torch.ones(6, 4)                                                 # every embedding identical
    r = clip.retrieval_recall(z, z, ks=(1, 3))
    assert r["image_to_text_R@1"] == pytest.approx(1 / 6)
    assert r["text_to_image_R@3"] == pytest.approx(3 / 6)
    # two positives among four tied candidates: P(a positive in the top 1) = 1/2
    pos = torch.tensor([[1, 1, 0, 0]] * 4, dtype=torch.bool).t().contiguous()[:, :4] | torch.eye(4, dtype=torch.bool)
    r = clip.retrieval_recall(torch.ones(4, 4), torch.ones(4, 4), ks=(1,), positives=pos)
    expected = sum(p.sum().item() / 4 for p in pos) / 4
    assert r["image_to_text_R@1"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="non-finite"):
        clip.retrieval_recall(torch.full((3, 4), float("nan")), torch.ones(3, 4))
    with pytest.raises(ValueError, match="positive ints"):
        clip.retrieval_recall(torch.eye(3), torch.eye(3), ks=(1.5,))


def test_clip_retrieval_without_ties_matches_the_argsort_rule():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(20, 8, generator=g), torch.randn(20, 8, generator=g)
    pos = torch.eye(20, dtype=torch.bool) | (torch.rand(20, 20, generator=g) < 0.1)
    r = clip.retrieval_recall(a, b, ks=(1, 5), positives=pos)
    sim = nn.functional.normalize(a, dim=-1) @ nn.functional.normalize(b, dim=-1).t()
    hits = pos.gather(1, sim.argsort(1, descending=True))
    first = hits.float().argmax(1)
    for k in (1, 5):
        assert r[f"image_to_text_R@{k}"] == pytest.approx((first < k).float().mean().item())


@pytest.mark.parametrize("field, value, fragment", [
    ("norm_eps", 0.0, "norm_eps must be >"), ("norm_eps", -1e-5, "norm_eps"), ("mlp_ratio", 0.01, "zero-width MLP"),
    ("mlp_ratio", float("nan"), "mlp_ratio must be finite"), ("mlp_ratio", -1.0, "mlp_ratio must be >")])
def test_text_config_refuses_nonsense(field, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        clip.TextConfig(**{field: value})


def test_clip_config_refuses_non_finite_logit_scales():
    with pytest.raises(ValueError, match="init_logit_scale must be finite"):
        clip.CLIPConfig(init_logit_scale=float("nan"))

"""Tests of vislab.clip: text tower, CLIP loss, CLIP model, zero-shot and retrieval."""

import math

import pytest
import torch
import torch.nn.functional as F

from vislab.clip import (INIT_LOGIT_SCALE, MAX_LOGIT_SCALE, TextConfig, TextTransformer, clip_loss,
                         clip_loss_explicit, fill_template, retrieval_recall, same_text_positives,
                         zero_shot_classifier, zero_shot_logits)
from vislab.text import shapeworld_tokenizer


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- loss
def test_clip_loss_equals_explicit_cross_entropy():
    img, txt = torch.randn(8, 16, generator=gen(0)), torch.randn(8, 16, generator=gen(1))
    for scale in (1.0, 1 / 0.07, 100.0):
        a = clip_loss(img, txt, scale)
        b = clip_loss_explicit(img, txt, scale)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # and written out with loops, the notes' formula
    s = 1 / 0.07
    I, T = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    l_i2t = l_t2i = 0.0
    for i in range(8):
        l_i2t -= math.log(math.exp(s * I[i] @ T[i]) / sum(math.exp(s * I[i] @ T[j]) for j in range(8)))
        l_t2i -= math.log(math.exp(s * T[i] @ I[i]) / sum(math.exp(s * T[i] @ I[j]) for j in range(8)))
    assert clip_loss(img, txt, s).item() == pytest.approx((l_i2t + l_t2i) / 16, rel=1e-4)


def test_clip_loss_is_symmetric_and_scale_invariant_inputs():
    img, txt = torch.randn(6, 8, generator=gen(2)), torch.randn(6, 8, generator=gen(3))
    torch.testing.assert_close(clip_loss(img, txt, 10.0), clip_loss(txt, img, 10.0))
    torch.testing.assert_close(clip_loss(3 * img, 0.5 * txt, 10.0), clip_loss(img, txt, 10.0))  # normalised inside


def test_clip_loss_bounds():
    B = 16
    x = F.normalize(torch.randn(B, 32, generator=gen(4)), dim=-1)
    assert clip_loss(x, x, 100.0).item() < 1e-3          # perfect pairs, sharp softmax
    same = torch.ones(B, 32)
    assert clip_loss(same, same, 10.0).item() == pytest.approx(math.log(B), rel=1e-5)  # chance: log B


def test_clip_loss_gradient_reaches_logit_scale():
    t = torch.tensor(INIT_LOGIT_SCALE, requires_grad=True)
    img, txt = torch.randn(4, 8, generator=gen(5)), torch.randn(4, 8, generator=gen(6))
    clip_loss(img, txt, t.exp()).backward()
    assert t.grad is not None and torch.isfinite(t.grad)


def test_clip_loss_bad_input():
    with pytest.raises(ValueError, match="at least 2 pairs"):
        clip_loss(torch.randn(1, 8), torch.randn(1, 8), 10.0)
    with pytest.raises(ValueError, match="3 images but 4 captions"):
        clip_loss(torch.randn(3, 8), torch.randn(4, 8), 10.0)
    with pytest.raises(ValueError, match="same width"):
        clip_loss(torch.randn(3, 8), torch.randn(3, 4), 10.0)
    with pytest.raises(ValueError, match=r"\(B, E\)"):
        clip_loss(torch.randn(3, 8, 2), torch.randn(3, 8), 10.0)
    with pytest.raises(TypeError):
        clip_loss([[1.0]], torch.randn(1, 8), 10.0)
    with pytest.raises(ValueError, match="scalar"):
        clip_loss(torch.randn(3, 8), torch.randn(3, 8), torch.ones(2))


def test_temperature_constants():
    assert math.exp(INIT_LOGIT_SCALE) == pytest.approx(1 / 0.07)
    assert math.exp(MAX_LOGIT_SCALE) == pytest.approx(100.0)


# ----------------------------------------------------------------------------- text tower
@pytest.fixture(scope="module")
def tok():
    return shapeworld_tokenizer(context_length=16)


def small_text(tok, **kw):
    cfg = dict(vocab_size=tok.vocab_size, context_length=16, width=32, depth=2, heads=4, eot_token_id=tok.eot_id)
    cfg.update(kw)
    torch.manual_seed(0)
    return TextTransformer(TextConfig(**cfg)).eval()


def test_text_tower_shapes_and_paths(tok):
    m = small_text(tok)
    ids = tok(["a red circle", "a small blue star in the center", "a cyan cross below a magenta ring"])
    pooled = m(ids)
    assert pooled.shape == (3, 32)
    out = m(ids, return_attention=True)
    assert out["tokens"].shape == (3, 16, 32)
    assert len(out["attentions"]) == 2 and out["attentions"][0].shape == (3, 4, 16, 16)
    torch.testing.assert_close(out["pooled"], pooled, rtol=1e-5, atol=1e-5)   # explicit == fused
    attn = out["attentions"][0]
    assert torch.all(attn.triu(1) == 0)                                       # causal
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 4, 16))


def test_text_tower_reads_eot_and_ignores_padding(tok):
    m = small_text(tok)
    ids = tok(["a red circle"])
    eot = ids[0].tolist().index(tok.eot_id)
    out = m(ids, return_tokens=True)
    torch.testing.assert_close(out["pooled"][0], out["tokens"][0, eot])
    other = ids.clone()
    other[0, eot + 1:] = tok.vocab.index("star")          # change what comes after EOT
    torch.testing.assert_close(m(other), m(ids))           # causal: EOT never sees it
    shorter = ids[:, :eot + 1]                               # no padding at all
    torch.testing.assert_close(m(shorter), m(ids), rtol=1e-5, atol=1e-6)


def test_text_tower_argmax_pooling(tok):
    m = small_text(tok, pool="argmax", eot_token_id=0)
    ids = torch.tensor([[2, 5, 9, 40, 3, 0, 0]])
    out = m(ids, return_tokens=True)
    torch.testing.assert_close(out["pooled"][0], out["tokens"][0, 3])


def test_text_tower_bad_input(tok):
    m = small_text(tok)
    with pytest.raises(ValueError, match="no end-of-text"):
        m(torch.tensor([[2, 5, 6]]))
    with pytest.raises(ValueError, match="context length"):
        m(torch.full((1, 17), 3))
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        m(torch.tensor([[2, 500, 3]]))
    with pytest.raises(TypeError, match="integer"):
        m(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        m(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        TextConfig(width=30, heads=4)
    with pytest.raises(ValueError, match="pool"):
        TextConfig(pool="mean")
    with pytest.raises(ValueError, match="activation"):
        TextConfig(activation="relu6")


# ----------------------------------------------------------------------------- zero-shot
def test_fill_template():
    assert fill_template("a photo of a {}", "star") == "a photo of a star"
    assert fill_template("a photo of a {shape}, a type of shape", "star") == "a photo of a star, a type of shape"
    with pytest.raises(ValueError, match="exactly one placeholder"):
        fill_template("a photo", "star")
    with pytest.raises(ValueError, match="exactly one placeholder"):
        fill_template("a {color} {shape}", "star")


class BagOfWords(torch.nn.Module):
    """A stand-in text encoder: the one-hot count of the ids (so prompts are easy to reason about)."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode_text(self, ids):
        return F.one_hot(ids, self.vocab).sum(1).float()[:, 4:]   # drop the specials


def test_zero_shot_classifier_ensembles_templates(tok):
    model = BagOfWords(tok.vocab_size)
    names = ["circle", "star"]
    one = zero_shot_classifier(model, tok, names, ["a {}"])
    assert one.shape == (2, tok.vocab_size - 4)
    torch.testing.assert_close(one.norm(dim=-1), torch.ones(2))
    templates = ["a {}", "a photo of a {shape}"]
    ens = zero_shot_classifier(model, tok, names, templates)
    by_hand = []
    for n in names:
        e = F.normalize(model.encode_text(tok([fill_template(t, n) for t in templates])), dim=-1)
        by_hand.append(F.normalize(e.mean(0), dim=-1))
    torch.testing.assert_close(ens, torch.stack(by_hand))
    # an image embedding equal to the "star" word is classified as star
    img = torch.zeros(1, tok.vocab_size - 4)
    img[0, tok.vocab.index("star") - 4] = 1.0
    assert zero_shot_logits(img, ens).argmax().item() == 1


def test_zero_shot_bad_input(tok):
    model = BagOfWords(tok.vocab_size)
    with pytest.raises(ValueError, match="non-empty"):
        zero_shot_classifier(model, tok, [])
    with pytest.raises(ValueError, match="templates is empty"):
        zero_shot_classifier(model, tok, ["star"], [])
    with pytest.raises(ValueError, match="widths differ"):
        zero_shot_logits(torch.randn(2, 4), torch.randn(3, 5))


# ----------------------------------------------------------------------------- retrieval
def test_retrieval_recall_by_hand():
    img = torch.eye(4)
    txt = torch.eye(4)[[0, 1, 3, 2]]        # captions 2 and 3 swapped
    r = retrieval_recall(img, txt, ks=(1, 2))
    assert r["image_to_text_R@1"] == 0.5 and r["text_to_image_R@1"] == 0.5
    txt2 = txt + 0.1 * torch.eye(4)         # make the right caption second best for images 2, 3
    r = retrieval_recall(img, txt2, ks=(1, 2, 4))
    assert r["image_to_text_R@1"] == 0.5 and r["image_to_text_R@2"] == 1.0 and r["image_to_text_R@4"] == 1.0


def test_retrieval_recall_matches_sklearn_style_count():
    g = gen(7)
    img, txt = torch.randn(64, 16, generator=g), torch.randn(64, 16, generator=g)
    txt = txt + 2 * img
    r = retrieval_recall(img, txt)
    sim = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
    for k in (1, 5, 10):
        i2t = (sim.topk(k, dim=1).indices == torch.arange(64)[:, None]).any(1).float().mean().item()
        t2i = (sim.t().topk(k, dim=1).indices == torch.arange(64)[:, None]).any(1).float().mean().item()
        assert r[f"image_to_text_R@{k}"] == pytest.approx(i2t)
        assert r[f"text_to_image_R@{k}"] == pytest.approx(t2i)


def test_same_text_positives():
    caps = ["a red circle", "a blue star", "a red circle"]
    pos = same_text_positives(caps)
    assert pos.tolist() == [[True, False, True], [False, True, False], [True, False, True]]
    img = torch.eye(3)
    txt = torch.eye(3)[[2, 1, 0]]           # images 0 and 2 get each other's identical caption
    assert retrieval_recall(img, txt, ks=(1,))["image_to_text_R@1"] == pytest.approx(1 / 3)
    assert retrieval_recall(img, txt, ks=(1,), positives=pos)["image_to_text_R@1"] == 1.0


def test_retrieval_bad_input():
    with pytest.raises(ValueError, match="pass positives"):
        retrieval_recall(torch.randn(3, 4), torch.randn(4, 4))
    with pytest.raises(ValueError, match="widths differ"):
        retrieval_recall(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="at least one positive"):
        retrieval_recall(torch.randn(2, 4), torch.randn(2, 4), positives=torch.zeros(2, 2, dtype=torch.bool))


# ----------------------------------------------------------------------------- the model
from vislab.clip import CLIP, CLIPConfig, clamp_logit_scale  # noqa: E402
from vislab.vit import ViTConfig  # noqa: E402


def tiny_clip(tok, seed=0):
    torch.manual_seed(seed)
    cfg = CLIPConfig(vision=ViTConfig(image_size=32, patch_size=8, dim=32, depth=1, heads=4),
                     text=TextConfig(vocab_size=tok.vocab_size, context_length=16, width=32, depth=1, heads=4,
                                     eot_token_id=tok.eot_id),
                     embed_dim=16)
    return CLIP(cfg)


def test_clip_forward_is_scaled_cosine(tok):
    m = tiny_clip(tok).eval()
    images = torch.rand(3, 3, 32, 32, generator=gen(8))
    ids = tok(["a red circle", "a blue star", "a small green ring in the center", "a cross"])
    logits = m(images, ids)
    assert logits.shape == (3, 4)
    I, T = m.encode_image(images), m.encode_text(ids)
    assert I.shape == (3, 16) and T.shape == (4, 16)
    expected = (1 / 0.07) * F.normalize(I, dim=-1) @ F.normalize(T, dim=-1).t()
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m.encode_image(images, normalize=True).norm(dim=-1), torch.ones(3))
    assert m.temperature == pytest.approx(0.07)


def test_clip_loss_from_model_trains_both_towers(tok):
    m = tiny_clip(tok)
    images = torch.rand(4, 3, 32, 32, generator=gen(9))
    ids = tok(["a red circle", "a blue star", "a green ring", "a cross"])
    loss = clip_loss(m.encode_image(images), m.encode_text(ids), m.logit_scale.exp())
    loss.backward()
    for name in ("visual.patch_embed.proj.weight", "text.token_embed.weight", "visual_projection.weight",
                 "text_projection.weight", "logit_scale"):
        g = dict(m.named_parameters())[name].grad
        assert g is not None and g.abs().sum() > 0, name


def test_clamp_logit_scale(tok):
    m = tiny_clip(tok)
    with torch.no_grad():
        m.logit_scale.fill_(7.0)
    assert clamp_logit_scale(m, 0) == pytest.approx(100.0)
    assert m.logit_scale.item() == pytest.approx(MAX_LOGIT_SCALE)
    with torch.no_grad():
        m.logit_scale.fill_(-1.0)
    assert clamp_logit_scale(m) == pytest.approx(1.0)
    with torch.no_grad():
        m.logit_scale.fill_(3.0)
    assert clamp_logit_scale(m) == pytest.approx(math.exp(3.0))      # inside the range: unchanged


def test_clip_config_round_trip_and_checkpoint(tok, tmp_path):
    from vislab.checkpoints import load_checkpoint, save_checkpoint
    m = tiny_clip(tok, seed=1).eval()
    cfg = CLIPConfig.from_dict(m.config.to_dict())
    assert cfg == m.config
    save_checkpoint(tmp_path / "c", m, {"config": m.config.to_dict()})
    other = tiny_clip(tok, seed=2).eval()
    load_checkpoint(tmp_path / "c", other)
    images, ids = torch.rand(2, 3, 32, 32, generator=gen(3)), tok(["a red circle", "a cross"])
    torch.testing.assert_close(other(images, ids), m(images, ids))


def test_clip_bad_config():
    with pytest.raises(ValueError, match="no classification head"):
        CLIPConfig(vision=ViTConfig(image_size=32, patch_size=8, dim=32, depth=1, heads=4, num_classes=10))
    with pytest.raises(TypeError):
        CLIP({"embed_dim": 3})
    with pytest.raises(ValueError, match="embed_dim"):
        CLIPConfig(embed_dim=0)
    with pytest.raises(ValueError, match="unknown CLIPConfig fields"):
        CLIPConfig.from_dict({"embed": 3})


def test_short_training_lowers_the_loss(tok):
    """Twenty steps on one fixed ShapeWorld batch: the contrastive loss must fall."""
    from vislab.shapes import ShapeWorld
    torch.manual_seed(0)
    m = tiny_clip(tok)
    batch = ShapeWorld().sample(32, seed=0)
    ids = tok(batch.captions)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for step in range(20):
        loss = clip_loss(m.encode_image(batch.images), m.encode_text(ids), m.logit_scale.exp())
        opt.zero_grad()
        loss.backward()
        opt.step()
        clamp_logit_scale(m, step)
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


# ----------------------------------------------------------------------------- the recipe
def test_recipe_registered_and_consistent():
    from vislab import recipes
    from vislab.recipes import clip as R
    r = recipes.get("clip_shapes")
    assert r.build is R.build and r.dtype == "float16"
    model = R.build(R.CONFIG)
    tok = R.tokenizer(R.CONFIG)
    assert model.config.text.vocab_size == tok.vocab_size
    assert model.config.text.eot_token_id == tok.eot_id
    assert model.config.text.context_length == tok.context_length
    assert sum(p.numel() for p in model.parameters()) * 2 < 3 * 2 ** 20     # fp16 file under 3 MB
    assert R.world(R.CONFIG).opts["holdout_idx"]


def test_varied_captions():
    from vislab.recipes import clip as R
    from vislab.shapes import SHAPES as NAMES
    batch = R.world().sample(200, seed=0)
    a = R.varied_captions(batch, seed=3)
    assert a == R.varied_captions(batch, seed=3)
    assert a != R.varied_captions(batch, seed=4)
    assert R.varied_captions(batch, seed=3, p_full=1.0) == batch.captions
    none_full = R.varied_captions(batch, seed=3, p_full=0.0)
    assert sum(c == f for c, f in zip(none_full, batch.captions)) < 20     # only by chance (all four kept)
    for cap, shape in zip(a, batch.labels["shape"].tolist()):
        assert NAMES[shape] in cap.split()
    assert R.tokenizer().unknown_words(a) == []
    assert any(c.startswith("a photo of") for c in a) and any(len(c.split()) == 2 for c in a)
    with pytest.raises(ValueError, match="p_full"):
        R.varied_captions(batch, seed=0, p_full=1.5)


def test_recipe_batches_and_schedule():
    from vislab.recipes import clip as R
    cfg = dict(R.CONFIG, batch_size=8)
    images, ids = R.batches(cfg, seed=0)(3)
    assert images.shape == (8, 3, 32, 32) and ids.shape == (8, 16)
    torch.testing.assert_close(R.batches(cfg, seed=0)(3)[1], ids)
    assert R.lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert R.lr_at(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert R.lr_at(99, 100, 1.0, 10) < 0.01


def test_recipe_evaluate_keys():
    from vislab.recipes import clip as R
    torch.manual_seed(0)
    model = R.build(R.CONFIG)
    out = R.evaluate(model, R.CONFIG, n=64)
    for key in ("zero_shot_shape", "shape_heldout", "pair_seen", "pair_heldout", "i2t_R@1", "i2t_R@5",
                "i2t_R@10", "t2i_R@1", "i2t_R@1_same_text"):
        assert 0.0 <= out[key] <= 1.0, key
    assert out["logit_scale"] == pytest.approx(1 / 0.07, rel=1e-3)


# ----------------------------------------------------------------------------- the viewer
def test_similarity_viewer_and_figure():
    import matplotlib
    matplotlib.use("Agg")
    from vislab.shapes import ShapeWorld
    from vislab.widgets.similarity import DIRECTIONS, similarity_figure, similarity_viewer
    batch = ShapeWorld().sample(5, seed=0)
    sim = torch.eye(5) * 0.5 + 0.05 * torch.randn(5, 5, generator=gen(0))
    sim[2, 3] = 0.9                                    # image 2's best caption is not its own
    fig = similarity_figure(sim, batch.images, batch.captions, selected=1, logit_scale=20)
    assert len(fig.axes) >= 3
    box = similarity_viewer(sim, batch.images, batch.captions, logit_scale=20.0)
    controls, info, picture = box.children
    direction, index = controls.children
    assert "image 0" in info.value and "✓" in info.value and len(picture.value) > 1000
    index.value = 2
    assert "best caption 3" in info.value and "✗" in info.value
    direction.value = DIRECTIONS[1]
    assert info.value.startswith("<b>caption 2</b>")
    with pytest.raises(ValueError, match="captions"):
        similarity_viewer(sim, batch.images, batch.captions[:4])
    with pytest.raises(ValueError, match="rows"):
        similarity_figure(sim, batch.images[:4], batch.captions)
    with pytest.raises(ValueError, match="selected"):
        similarity_figure(sim, batch.images, batch.captions, selected=7)

"""Tests of vislab.siglip: the sigmoid loss, the chunked ring, the SigLIP model."""

import math

import pytest
import torch
import torch.nn.functional as F

from vislab.clip import CLIP, CLIPConfig, TextConfig
from vislab.siglip import (INIT_LOGIT_BIAS, INIT_LOGIT_SCALE, SigLIP, prior_bias, SigLIPConfig, SigLIPTextTransformer,
                           chunked_sigmoid_loss, loss_memory_floats, ring_schedule, siglip_from_clip, sigmoid_loss,
                           sigmoid_loss_explicit)
from vislab.text import shapeworld_tokenizer
from vislab.vit import ViTConfig


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def feats(B=8, E=16, seed=0, dtype=torch.float64, grad=False):
    g = gen(seed)
    x = torch.randn(B, E, generator=g, dtype=dtype)
    y = torch.randn(B, E, generator=g, dtype=dtype)
    return x.requires_grad_(grad), y.requires_grad_(grad)


# ----------------------------------------------------------------------------- loss
def test_sigmoid_loss_matches_the_formula_written_out():
    x, y = feats(6, 8)
    t, b = 7.0, -2.5
    X, Y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    total = 0.0
    for i in range(6):
        for j in range(6):
            z = 1.0 if i == j else -1.0
            logit = t * float(X[i] @ Y[j]) + b
            total -= math.log(1 / (1 + math.exp(-z * logit)))
    assert sigmoid_loss(x, y, t, b).item() == pytest.approx(total / 6, rel=1e-10)
    assert sigmoid_loss(x, y, t, b, normalize_by="pairs").item() == pytest.approx(total / 36, rel=1e-10)
    assert sigmoid_loss_explicit(x, y, t, b).item() == pytest.approx(total / 6, rel=1e-10)


def test_sigmoid_loss_normalises_inputs_and_is_not_symmetric_in_bias_sign():
    x, y = feats(5, 4, seed=1)
    torch.testing.assert_close(sigmoid_loss(3 * x, 0.1 * y, 10.0, -10.0), sigmoid_loss(x, y, 10.0, -10.0))
    torch.testing.assert_close(sigmoid_loss(x, y, 10.0, -10.0), sigmoid_loss(y, x, 10.0, -10.0))   # swap towers
    assert sigmoid_loss(x, y, 10.0, 10.0).item() > sigmoid_loss(x, y, 10.0, -10.0).item()


def test_bias_at_init_matches_the_negatives():
    # random features: cosines near 0, so logits ~ b. With b = -10 each of the B-1 negatives costs
    # ~e^-10 and the positive ~10; with b = 0 every pair costs log 2.
    B = 256
    x, y = feats(B, 2048, seed=2)            # cosines ~ N(0, 1/2048): logits ~ b
    with_bias = sigmoid_loss(x, y, math.exp(INIT_LOGIT_SCALE), INIT_LOGIT_BIAS).item()
    without = sigmoid_loss(x, y, math.exp(INIT_LOGIT_SCALE), 0.0).item()
    assert without == pytest.approx(B * math.log(2), rel=0.05)
    assert 9 < with_bias < 12
    assert without > 10 * with_bias


def test_prior_bias_minimises_the_loss_at_init():
    for B in (2, 8, 128):
        grid = torch.linspace(-12, 3, 30001, dtype=torch.float64)
        row = F.softplus(-grid) + (B - 1) * F.softplus(grid)          # one row with all cosines 0
        assert prior_bias(B) == pytest.approx(grid[row.argmin()].item(), abs=1e-3)
    assert prior_bias(1 + round(math.exp(10))) == pytest.approx(-10, abs=1e-4)
    with pytest.raises(ValueError):
        prior_bias(1)


def test_sigmoid_loss_bad_input():
    x, y = feats(4, 8)
    with pytest.raises(ValueError, match="4 images but 3 captions"):
        sigmoid_loss(x, y[:3], 10.0, -10.0)
    with pytest.raises(ValueError, match="same width"):
        sigmoid_loss(x, y[:, :4], 10.0, -10.0)
    with pytest.raises(ValueError, match=r"\(B, E\)"):
        sigmoid_loss(x[None], y, 10.0, -10.0)
    with pytest.raises(TypeError):
        sigmoid_loss(x.tolist(), y, 10.0, -10.0)
    with pytest.raises(TypeError, match="floating"):
        sigmoid_loss(torch.ones(4, 8, dtype=torch.long), y, 10.0, -10.0)
    with pytest.raises(ValueError, match="logit_scale must be a scalar"):
        sigmoid_loss(x, y, torch.ones(2), -10.0)
    with pytest.raises(ValueError, match="logit_bias must be a scalar"):
        sigmoid_loss(x, y, 10.0, torch.ones(3))
    with pytest.raises(ValueError, match="normalize_by"):
        sigmoid_loss(x, y, 10.0, -10.0, normalize_by="mean")


def test_gradients_reach_scale_and_bias():
    x, y = feats(4, 8, grad=True)
    tp = torch.tensor(INIT_LOGIT_SCALE, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(INIT_LOGIT_BIAS, dtype=torch.float64, requires_grad=True)
    sigmoid_loss(x, y, tp.exp(), b).backward()
    assert torch.isfinite(tp.grad) and torch.isfinite(b.grad) and b.grad.item() < 0   # the bias must rise


# ----------------------------------------------------------------------------- the ring
def test_ring_schedule_visits_every_chunk_once():
    for D in (1, 2, 3, 5):
        sched = ring_schedule(D)
        assert len(sched) == D and sched[0] == list(range(D))
        for d in range(D):
            assert sorted(step[d] for step in sched) == list(range(D))
        for k in range(1, D):                       # the chunk on d at step k came from d - 1
            assert all(sched[k][d] == sched[k - 1][(d - 1) % D] for d in range(D))
    with pytest.raises(ValueError):
        ring_schedule(0)


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize("D", [1, 2, 3, 4, 12])
def test_chunked_equals_full_in_value_and_gradients(D, recompute):
    x, y = feats(12, 8, seed=3, grad=True)
    t = torch.tensor(9.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)

    def run(fn):
        for p in (x, y, t, b):
            p.grad = None
        loss = fn()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in (x, y, t, b)]

    ref, ref_g = run(lambda: sigmoid_loss(x, y, t, b))
    got, got_g = run(lambda: chunked_sigmoid_loss(x, y, t, b, D, recompute=recompute))
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    for a, e in zip(got_g, ref_g):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


def test_chunked_uneven_split_is_a_clear_error():
    x, y = feats(10, 4)
    with pytest.raises(ValueError, match="does not split evenly over 4 devices.*8 or 12"):
        chunked_sigmoid_loss(x, y, 10.0, -10.0, 4)
    with pytest.raises(ValueError, match="positive int"):
        chunked_sigmoid_loss(x, y, 10.0, -10.0, 0)


def test_loss_memory_floats():
    assert loss_memory_floats("full", 8, 1, 4) == 4 * 8 * 4 + 3 * 64
    # the recomputing ring holds the same per device however many devices join (fixed chunk)
    per = [loss_memory_floats("sigmoid_ring_recompute", 64 * D, D, 32) for D in (2, 4, 8)]
    assert len(set(per)) == 1
    # with one device every method is the full loss, give or take its bookkeeping
    assert loss_memory_floats("sigmoid_ring", 64, 1, 32) < loss_memory_floats("full", 64, 1, 32)
    assert loss_memory_floats("clip_allgather_local", 64, 1, 32) == loss_memory_floats("clip_allgather", 64, 1, 32)
    allg = [loss_memory_floats("clip_allgather", 64 * D, D, 32) for D in (1, 2, 4, 8)]
    assert allg == sorted(allg) and allg[-1] > 30 * allg[0]
    with pytest.raises(ValueError, match="method"):
        loss_memory_floats("ring", 8, 2, 4)
    with pytest.raises(ValueError, match="split evenly"):
        loss_memory_floats("full", 9, 2, 4)


# ----------------------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def tok():
    return shapeworld_tokenizer(context_length=16)


def small_config(tok, **kw):
    return SigLIPConfig(vision=ViTConfig(image_size=16, patch_size=4, dim=32, depth=2, heads=4, mlp="gelu_tanh",
                                         class_token=False, pooling="map"),
                        text=TextConfig(vocab_size=tok.vocab_size, width=24, depth=2, heads=4,
                                        activation="gelu_tanh"),
                        embed_dim=32, **kw)


def test_siglip_forward_is_scaled_cosine_plus_bias(tok):
    torch.manual_seed(0)
    m = SigLIP(small_config(tok)).eval()
    assert m.logit_scale.item() == pytest.approx(math.log(10)) and m.logit_bias.item() == -10
    images = torch.rand(3, 3, 16, 16)
    ids = tok(["a red circle", "a blue square", "a green star", "a ring"])
    logits = m(images, ids)
    assert logits.shape == (3, 4)
    cos = F.normalize(m.encode_image(images), dim=-1) @ F.normalize(m.encode_text(ids), dim=-1).t()
    torch.testing.assert_close(logits, 10 * cos - 10, rtol=1e-5, atol=1e-5)
    assert m.encode_image(images).shape == (3, 32) and m.encode_text(ids).shape == (4, 32)
    assert isinstance(m.text, SigLIPTextTransformer) and m.visual.attn_pool is not None


def test_siglip_loss_method_and_training_step(tok):
    torch.manual_seed(1)
    m = SigLIP(small_config(tok))
    images, ids = torch.rand(4, 3, 16, 16), tok(["a red circle", "a blue square", "a green star", "a ring"])
    loss = m.loss(images, ids)
    ref = sigmoid_loss(m.encode_image(images), m.encode_text(ids), m.logit_scale.exp(), m.logit_bias)
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert m.logit_bias.grad is not None and m.visual.attn_pool.probe.grad is not None


def test_bidirectional_text_tower_sees_the_future(tok):
    torch.manual_seed(2)
    c = small_config(tok)
    bi = SigLIP(c).text.eval()
    causal = SigLIP(c.replace(text_tower="causal")).text.eval()
    a, b = tok(["a red circle"]), tok(["a red square"])
    # the first token's feature changes with later words only without the causal mask
    assert not torch.allclose(bi(a, return_tokens=True)["tokens"][:, 0], bi(b, return_tokens=True)["tokens"][:, 0])
    torch.testing.assert_close(causal(a, return_tokens=True)["tokens"][:, 0],
                               causal(b, return_tokens=True)["tokens"][:, 0])
    out = bi(a, return_attention=True)
    maps = out["attentions"]
    assert len(maps) == 2 and maps[0].shape == (1, 4, 16, 16)
    assert (maps[0][0, :, 0, 1:] > 0).any()                      # token 0 attends to later tokens
    torch.testing.assert_close(out["pooled"], bi(a))             # the explicit path equals the fused one


def test_siglip_config_validation(tok):
    with pytest.raises(ValueError, match="embed_dim must equal"):
        small_config(tok).replace(embed_dim=16)
    small_config(tok).replace(embed_dim=16, image_projection=True)
    with pytest.raises(ValueError, match="text_tower"):
        small_config(tok).replace(text_tower="gpt")
    with pytest.raises(TypeError):
        SigLIP(CLIPConfig())
    c = small_config(tok)
    assert SigLIPConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown SigLIPConfig fields"):
        SigLIPConfig.from_dict({**c.to_dict(), "temperature": 1})


def test_siglip_from_clip_copies_the_towers(tok):
    torch.manual_seed(3)
    clip = CLIP(CLIPConfig(text=TextConfig(vocab_size=tok.vocab_size))).eval()
    sig = siglip_from_clip(clip).eval()
    images, ids = torch.rand(2, 3, 32, 32), tok(["a red circle", "a ring"])
    torch.testing.assert_close(sig.encode_image(images), clip.encode_image(images))
    torch.testing.assert_close(sig.encode_text(ids), clip.encode_text(ids))
    assert sig.logit_bias.item() == INIT_LOGIT_BIAS
    with pytest.raises(TypeError):
        siglip_from_clip(sig)


# ----------------------------------------------------------------------------- the ring viewer
def test_ring_figure_and_viewer():
    import matplotlib

    matplotlib.use("Agg")
    from vislab.widgets.ring import ring_figure, ring_viewer

    fig = ring_figure(3, 1)
    assert len(fig.axes) == 2 and "step 2 of 3: 6 of 9 blocks done" in fig.axes[0].get_title()
    ring_figure(4, 3, batch_size=16)
    ring_figure(1, 0)
    with pytest.raises(ValueError, match="step"):
        ring_figure(3, 3)
    with pytest.raises(ValueError, match="multiple"):
        ring_figure(3, 0, batch_size=10)
    box = ring_viewer(3)
    (devices, step), image = box.children[0].children, box.children[1]
    first = image.value
    step.value = 2
    assert image.value != first and step.max == 2
    devices.value = 4
    assert step.max == 3


# ----------------------------------------------------------------------------- the scalars' own learning rate
def _tiny_siglip():
    tok = shapeworld_tokenizer()
    return SigLIP(SigLIPConfig(vision=ViTConfig(image_size=32, patch_size=8, dim=16, depth=1, heads=2,
                                                class_token=False, pooling="map"),
                               text=TextConfig(vocab_size=tok.vocab_size, width=16, depth=1, heads=2),
                               embed_dim=16))


def test_param_groups_put_the_scalars_in_their_own_group_exactly_once():
    from vislab.recipes.siglip import param_groups
    model = _tiny_siglip()
    scalars = {id(model.logit_scale), id(model.logit_bias)}
    for scalar_lr in (None, 0.05):
        groups = param_groups(model, 1e-3, scalar_lr)
        ids = [id(p) for g in groups for p in g["params"]]
        assert sorted(ids) == sorted(id(p) for p in model.parameters())       # every parameter, once
        assert all(p.dim() >= 2 for p in groups[0]["params"]) and groups[0]["weight_decay"] == 0.05
        assert groups[0]["lr"] == groups[1]["lr"] == 1e-3 and groups[1]["weight_decay"] == 0.0
        if scalar_lr is None:
            assert len(groups) == 2 and scalars <= {id(p) for p in groups[1]["params"]}
        else:
            assert len(groups) == 3 and {id(p) for p in groups[2]["params"]} == scalars
            assert groups[2]["lr"] == scalar_lr and groups[2]["weight_decay"] == 0.0
    clip = CLIP(CLIPConfig(vision=ViTConfig(image_size=32, patch_size=8, dim=16, depth=1, heads=2),
                           text=TextConfig(vocab_size=40, width=16, depth=1, heads=2), embed_dim=8))
    groups = param_groups(clip, 1e-3, 0.1)                                        # CLIP: t' only
    assert [id(p) for p in groups[2]["params"]] == [id(clip.logit_scale)]


def test_scalar_lr_lets_the_bias_move_while_the_default_keeps_it_near_its_init():
    from vislab.recipes.siglip import train_contrastive
    moved = {}
    for scalar_lr in (None, 0.5):
        torch.manual_seed(0)
        model = _tiny_siglip()
        b0, t0 = model.logit_bias.item(), model.logit_scale.item()
        train_contrastive(model, "sigmoid", 8, 32, seed=0, lr=1e-3, scalar_lr=scalar_lr, log_every=1)
        moved[scalar_lr] = (abs(model.logit_bias.item() - b0), abs(model.logit_scale.item() - t0))
    assert max(moved[None]) < 4 * 1e-3 + 1e-6          # Adam: at most about lr per step, 4 steps
    assert moved[0.5][0] > 0.4                         # first step alone moves b by scalar_lr (Adam's sign step)
    for bad in ("fast", 0.0, -0.1, float("nan"), True):
        with pytest.raises(ValueError, match="scalar_lr"):
            train_contrastive(_tiny_siglip(), "sigmoid", 8, 32, seed=0, scalar_lr=bad)

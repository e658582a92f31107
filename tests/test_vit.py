"""Tests for vislab.vit: shapes, bad input, the two attention paths, positions, rollout, counts."""

import math

import pytest
import torch
from torch import nn

from vislab.vit import (PRESETS, AxialRoPE, ViT, ViTConfig, attention_rollout, count_parameters,
                        interpolate_pos_embed)

TINY = dict(image_size=32, patch_size=8, dim=32, depth=2, heads=4, num_classes=7)


def tiny(**over):
    return ViT(ViTConfig(**{**TINY, **over}))


def images(b=2, size=32, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = (size, size) if isinstance(size, int) else size
    return torch.rand(b, c, h, w, generator=g)


# ---- presets and parameter counts -------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [("B/16", 86_567_656), ("L/14", 304_203_752), ("H/14", 632_045_800)])
def test_preset_parameter_counts(name, expected):
    with torch.device("meta"):
        model = ViT(ViTConfig.preset(name, num_classes=1000))
    assert count_parameters(model) == expected


@pytest.mark.parametrize("name,dim,depth,heads,patch", [("B/16", 768, 12, 12, 16), ("L/14", 1024, 24, 16, 14),
                                                          ("H/14", 1280, 32, 16, 14), ("Ti/16", 192, 12, 3, 16),
                                                          ("S/16", 384, 12, 6, 16)])
def test_presets_match_papers(name, dim, depth, heads, patch):
    c = ViTConfig.preset(name)
    assert (c.dim, c.depth, c.heads, c.patch_size, c.image_size) == (dim, depth, heads, patch, 224)
    assert c.num_tokens == (224 // patch) ** 2 + 1


def test_preset_unknown_and_overrides():
    with pytest.raises(ValueError, match="unknown preset"):
        ViTConfig.preset("X/3")
    assert ViTConfig.preset("B/16", image_size=384).grid == (24, 24)
    assert set(PRESETS) >= {"Ti/16", "S/16", "B/16", "L/14", "H/14"}


def test_config_is_frozen_and_round_trips():
    c = ViTConfig(**{**TINY, "image_size": (32, 48)})
    with pytest.raises(dataclasses_frozen_error()):
        c.dim = 3
    assert ViTConfig.from_dict(c.to_dict()) == c
    assert c.replace(depth=5).depth == 5


def dataclasses_frozen_error():
    import dataclasses
    return dataclasses.FrozenInstanceError


# ---- shapes ---------------------------------------------------------------------------------

def test_forward_shapes():
    m = tiny().eval()
    x = images()
    assert m(x).shape == (2, 7)
    tokens = m.forward_features(x)
    assert tokens.shape == (2, 1 + 16, 32)
    tokens2, maps = m.forward_features(x, return_attention=True)
    assert len(maps) == 2 and maps[0].shape == (2, 4, 17, 17)
    assert torch.allclose(maps[0].sum(-1), torch.ones(2, 4, 17), atol=1e-5)


def test_no_head_returns_pooled_features():
    m = tiny(num_classes=0).eval()
    assert m(images()).shape == (2, 32)
    assert m.head is None


def test_explicit_and_fused_paths_agree():
    torch.manual_seed(0)
    for over in ({}, {"pos_embed": "rope"}, {"num_registers": 2, "layerscale_init": 0.5, "mlp": "swiglu"}):
        m = tiny(**over).eval()
        with torch.no_grad():
            for p in m.parameters():          # non-trivial weights (the head and init are zeros)
                p.add_(0.1 * torch.randn_like(p))
            fused = m.forward_features(images(size=(32, 48)))
            explicit, _ = m.forward_features(images(size=(32, 48)), return_attention=True)
        assert torch.allclose(fused, explicit, atol=1e-5), (over, (fused - explicit).abs().max())


def test_gradients_agree_between_paths():
    torch.manual_seed(0)
    m = tiny()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = images()
    m.forward_features(x).square().mean().backward()
    body = [p for n, p in m.named_parameters() if not n.startswith("head")]
    g1 = [p.grad.clone() for p in body]
    m.zero_grad()
    m.forward_features(x, return_attention=True)[0].square().mean().backward()
    for a, p in zip(g1, body):
        assert torch.allclose(a, p.grad, atol=1e-5)


def test_registers_kept_apart():
    m = tiny(num_registers=3).eval()
    out = m.forward_intermediates(images(), return_attention=True)
    assert out["tokens"].shape == (2, 1 + 3 + 16, 32)
    assert out["cls"].shape == (2, 32)
    assert out["registers"].shape == (2, 3, 32)
    assert out["patches"].shape == (2, 16, 32)
    assert torch.equal(out["cls"], out["tokens"][:, 0])
    assert torch.equal(out["patches"], out["tokens"][:, 4:])
    assert out["logits"].shape == (2, 7)
    assert sorted(out["layers"]) == [0, 1] and out["layers"][1].shape == (2, 20, 32)
    assert out["layer_patches"][0].shape == (2, 16, 32)
    assert len(out["attention"]) == 2 and out["grid"] == (4, 4)
    # registers carry no position: the table still has 1 + N rows
    assert m.pos_embed.shape == (1, 17, 32)


def test_forward_intermediates_layers_and_norm():
    m = tiny(depth=3).eval()
    out = m.forward_intermediates(images(), layers=[-1, 0], norm=True)
    assert sorted(out["layers"]) == [0, 2]
    assert torch.allclose(out["layers"][2], out["tokens"], atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        m.forward_intermediates(images(), layers=[3])


def test_pooling_options():
    x = images()
    m = tiny(pooling="mean", class_token=False, num_classes=0).eval()
    t = m.forward_features(x)
    assert t.shape == (2, 16, 32) and m.split_tokens(t)["cls"] is None
    assert torch.allclose(m(x), t.mean(1))
    m = tiny(pooling="map", class_token=False, num_classes=5).eval()
    assert m(x).shape == (2, 5)


@pytest.mark.parametrize("mlp", ["gelu", "gelu_tanh", "quick_gelu", "relu", "swiglu"])
def test_mlp_kinds(mlp):
    m = tiny(mlp=mlp)
    assert m(images()).shape == (2, 7)


def test_layerscale_norm_pre_mask_token():
    m = tiny(layerscale_init=1e-5, norm_pre=True, use_mask_token=True, patch_bias=False)
    assert torch.allclose(m.blocks[0].ls1.gamma, torch.full((32,), 1e-5))
    assert m.patch_embed.proj.bias is None
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :5] = True
    tokens, grid = m.embed(images(), mask=mask)
    # a masked patch token is mask_token + its position
    assert torch.allclose(tokens[0, 1], m.mask_token[0, 0] + m.pos_embed[0, 1])
    with pytest.raises(ValueError, match="mask must be"):
        m.embed(images(), mask=mask[:, :3])
    with pytest.raises(ValueError, match="use_mask_token"):
        tiny().embed(images(), mask=mask)


# ---- bad input -------------------------------------------------------------------------------

def test_heads_must_divide_dim():
    with pytest.raises(ValueError, match="does not divide"):
        ViTConfig(dim=30, heads=4)


def test_wrong_channels():
    m = tiny()
    with pytest.raises(ValueError, match="expects 3 input channels, got 1"):
        m(images(c=1))
    with pytest.raises(ValueError, match="channels-last"):
        m(torch.rand(2, 32, 32, 3))
    with pytest.raises(ValueError, match="unsqueeze"):
        m(torch.rand(3, 32, 32))
    with pytest.raises(TypeError):
        m([1, 2, 3])


def test_size_errors():
    m = tiny()
    with pytest.raises(ValueError, match="not divisible by patch size"):
        m(images(size=30))
    with pytest.raises(ValueError, match="interpolate_pos=False"):
        m(images(size=64), interpolate_pos=False)
    with pytest.raises(ValueError, match="not divisible"):
        ViTConfig(image_size=30, patch_size=8)


def test_config_validation():
    for bad in (dict(mlp="tanh"), dict(pos_embed="sin"), dict(pooling="max"), dict(num_registers=-1),
                dict(pooling="cls", class_token=False), dict(num_classes=-1), dict(depth=0),
                dict(pos_embed="rope", dim=24, heads=4)):
        with pytest.raises(ValueError):
            ViTConfig(**{**TINY, **bad})
    with pytest.raises(TypeError, match="ViTConfig"):
        ViT(dict(TINY))


# ---- positions ---------------------------------------------------------------------------------

def test_interpolate_identity_and_prefix():
    pe = torch.randn(1, 1 + 16, 8)
    assert interpolate_pos_embed(pe, (4, 4)) is pe
    out = interpolate_pos_embed(pe, (8, 6))
    assert out.shape == (1, 1 + 48, 8)
    assert torch.equal(out[:, :1], pe[:, :1])
    pe2 = torch.randn(1, 2 + 12, 8)
    out2 = interpolate_pos_embed(pe2, (6, 8), num_prefix_tokens=2, old_grid=(3, 4))
    assert out2.shape == (1, 2 + 48, 8) and torch.equal(out2[:, :2], pe2[:, :2])


def test_interpolate_constant_table_stays_constant():
    pe = torch.ones(1, 1 + 16, 4) * 3.0
    assert torch.allclose(interpolate_pos_embed(pe, (7, 5)), torch.full((1, 36, 4), 3.0), atol=1e-5)


def test_interpolate_round_trip_on_smooth_table():
    # a table that is linear in (row, col) survives up- then down-sampling approximately
    g = 8
    r, c = torch.meshgrid(torch.linspace(0, 1, g), torch.linspace(0, 1, g), indexing="ij")
    pe = torch.stack([r, c], -1).reshape(1, g * g, 2)
    pe = torch.cat([torch.zeros(1, 1, 2), pe], 1)
    back = interpolate_pos_embed(interpolate_pos_embed(pe, (16, 16)), (8, 8), old_grid=(16, 16))
    assert (back - pe)[:, 1:].abs().max() < 0.05


def test_interpolate_bad_input():
    with pytest.raises(ValueError, match="square"):
        interpolate_pos_embed(torch.randn(1, 1 + 12, 4), (4, 4))
    with pytest.raises(ValueError, match="shape"):
        interpolate_pos_embed(torch.randn(17, 4), (4, 4))
    with pytest.raises(ValueError, match="cells"):
        interpolate_pos_embed(torch.randn(1, 1 + 12, 4), (4, 4), old_grid=(2, 2))


def test_model_runs_at_other_sizes_nonsquare():
    m = tiny().eval()
    for size in (16, 64, (32, 64), (48, 24)):
        out = m.forward_features(images(size=size))
        gh, gw = (size, size) if isinstance(size, int) else size
        assert out.shape == (2, 1 + (gh // 8) * (gw // 8), 32)


def test_rope_is_relative():
    # with RoPE, q_i . k_j depends only on the offset between patches i and j
    rope = AxialRoPE(8, theta=10.0)
    cos, sin = rope((5, 5), num_prefix_tokens=1)
    assert cos.shape == (26, 8) and torch.equal(cos[0], torch.ones(8)) and torch.equal(sin[0], torch.zeros(8))
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    qq = AxialRoPE.rotate(q.expand(1, 1, 26, 8), cos, sin)[0, 0]
    kk = AxialRoPE.rotate(k.expand(1, 1, 26, 8), cos, sin)[0, 0]
    idx = lambda r, c: 1 + r * 5 + c  # noqa: E731
    a = qq[idx(1, 2)] @ kk[idx(2, 4)]
    b = qq[idx(2, 1)] @ kk[idx(3, 3)]
    assert torch.allclose(a, b, atol=1e-5)
    # rotation keeps norms
    assert torch.allclose(qq.norm(dim=-1), q.norm().expand(26), atol=1e-5)


def test_rope_model_has_no_table_and_runs_anywhere():
    m = tiny(pos_embed="rope").eval()
    assert m.pos_embed is None
    assert m.forward_features(images(size=(48, 64)), interpolate_pos=False).shape == (2, 1 + 48, 32)
    both = tiny(pos_embed="learned+rope")
    assert both.pos_embed is not None and both.rope is not None


# ---- rollout -----------------------------------------------------------------------------------

def test_rollout_identity_and_rows():
    T = 5
    eye = torch.eye(T).expand(2, 3, T, T)
    assert torch.allclose(attention_rollout([eye, eye]), torch.eye(T).expand(2, T, T))
    m = tiny().eval()
    _, maps = m.forward_features(images(), return_attention=True)
    r = attention_rollout(maps)
    assert r.shape == (2, 17, 17)
    assert torch.allclose(r.sum(-1), torch.ones(2, 17), atol=1e-5)
    assert torch.allclose(attention_rollout(torch.stack(maps)), r)


def test_rollout_matches_hand_product():
    g = torch.Generator().manual_seed(1)
    maps = [torch.rand(1, 2, 3, 3, generator=g).softmax(-1) for _ in range(2)]
    hat = [(a.mean(1) + torch.eye(3)) / 2 for a in maps]
    hat = [h / h.sum(-1, keepdim=True) for h in hat]
    assert torch.allclose(attention_rollout(maps), hat[1] @ hat[0], atol=1e-6)
    with pytest.raises(ValueError):
        attention_rollout([])
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(maps, head_fusion="median")


def test_init_is_deterministic_under_seed():
    torch.manual_seed(3)
    a = tiny()
    torch.manual_seed(3)
    b = tiny()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert torch.count_nonzero(a.head.weight) == 0
    assert math.isclose(float(a.pos_embed.detach().std()), 0.02, rel_tol=0.3)


def test_trains_on_a_toy_task():
    # the CLS token must learn which half of the image is bright
    torch.manual_seed(0)
    m = tiny(num_classes=2, depth=1)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        y = torch.randint(0, 2, (32,), generator=g)
        x = torch.rand(32, 3, 32, 32, generator=g) * 0.2
        x[y == 0, :, :, :16] += 0.8
        x[y == 1, :, :, 16:] += 0.8
        loss = nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1


# ---- the notes' version ------------------------------------------------------------------------

def test_notes_vit_has_the_same_parameter_count():
    from vislab.vit import NotesViT
    with torch.device("meta"):
        notes = NotesViT(224, 16, 768, 12, 12, 4.0, 1000)
    assert count_parameters(notes) == 86_567_656
    small = NotesViT(32, 8, 32, 2, 4, 4.0, 7)
    assert small(images()).shape == (2, 7)
    layer = small.transformer.layers[0]
    assert layer.norm_first is False and layer.dropout.p == 0.1      # post-LN, dropout 0.1: PyTorch defaults


# ---- the attention viewer (takes outputs, computes no forward pass) ------------------------------

def test_attention_viewer_and_figure():
    import matplotlib
    matplotlib.use("Agg")
    from vislab.widgets.attention import attention_figure, attention_viewer, query_map
    m = tiny(num_registers=1).eval()
    x = images(3)
    with torch.no_grad():
        _, maps = m.forward_features(x, return_attention=True)
    heat = query_map(maps, 1, 0, "mean", 0, False, (4, 4), 2)
    assert heat.shape == (4, 4) and abs(heat.sum() - maps[0][1].mean(0)[0, 2:].sum().item()) < 1e-5
    roll = query_map(maps, 1, 1, "mean", 0, True, (4, 4), 2)
    assert roll.shape == (4, 4)
    fig = attention_figure(x, maps, (4, 4), index=2, layer=1, head=3, query=5, num_prefix_tokens=2)
    assert len(fig.axes) == 3
    box = attention_viewer(x, maps, (4, 4), num_prefix_tokens=2, labels=["a", "b", "c"])
    assert box.children[-1].value[:4] == b"\x89PNG"
    pick, lay, head = box.children[0].children
    info, picture = box.children[2], box.children[3]
    assert "image 1/3" in info.value and "layer 2/2" in info.value and "head mean" in info.value
    before = picture.value
    pick.value, head.value = 3, 1                               # sliders count from 1, as the text
    assert "image 3/3" in info.value and "head 2" in info.value and picture.value != before
    box.children[1].children[1].value = True                    # rollout
    assert "rollout" in info.value and head.disabled
    with pytest.raises(ValueError, match="do not fit"):
        attention_viewer(x, maps, (4, 4), num_prefix_tokens=1)
    with pytest.raises(ValueError, match="empty"):
        attention_viewer(x, [], (4, 4))


def test_notes_vit_with_vit_options_equals_vit():
    from vislab.vit import NotesViT
    torch.manual_seed(0)
    vit = tiny(norm_eps=1e-5).eval()            # nn.LayerNorm's default eps, as in NotesViT
    with torch.no_grad():
        for p in vit.parameters():
            p.add_(0.1 * torch.randn_like(p))
    fixed = NotesViT(32, 8, 32, 2, 4, 4.0, 7, norm_first=True, activation="gelu", dropout=0.0).load_vit_weights(vit)
    as_notes = NotesViT(32, 8, 32, 2, 4, 4.0, 7).load_vit_weights(vit)
    x = images()
    with torch.no_grad():
        assert torch.allclose(fixed.eval()(x), vit(x), atol=1e-5)
        assert not torch.allclose(as_notes.eval()(x), vit(x), atol=1e-2)
    with pytest.raises(ValueError):
        NotesViT(32, 8, 32, 3, 4, 4.0, 7).load_vit_weights(vit)


# ---- the recipes (no training here: only their parts) --------------------------------------------

def test_vit_recipes_build_and_batches():
    from vislab import recipes
    from vislab.recipes.vit import MODEL, make_batches, wsd_schedule
    r = recipes.get("vit_shapes")
    m = r.build(r.config)
    assert isinstance(m, ViT) and m.config == MODEL
    rope = recipes.get("vit_shapes_rope")
    assert rope.build(rope.config).config.pos_embed == "rope"
    b = make_batches(batch_size=8, seed=0, chunk=16)
    x0, y0 = b(0)
    assert x0.shape == (8, 3, 32, 32) and y0.shape == (8,)
    assert torch.equal(make_batches(batch_size=8, seed=0, chunk=16)(1)[0], b(1)[0])   # deterministic
    assert not torch.equal(b(2)[0], x0)                                               # a new chunk
    pool = (torch.rand(20, 3, 32, 32), torch.arange(20))
    pb = make_batches(batch_size=4, seed=1, pool=pool)
    xs, ys = pb(3)
    assert torch.equal(xs, pool[0][ys]) and torch.equal(pb(3)[1], ys)
    with pytest.raises(ValueError, match="pool"):
        make_batches(batch_size=64, pool=pool)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = wsd_schedule(opt, steps=100, warmup=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0) and lrs[50] == pytest.approx(1.0)
    assert lrs[75] == pytest.approx(1.0) and lrs[99] == pytest.approx(0.04) and lrs[87] < 1.0


def test_where_recipes_build_four_way_classifiers():
    from vislab import recipes
    from vislab.recipes.vit import WHERE_MODEL
    r = recipes.get("vit_where")
    assert r.build(r.config).config == WHERE_MODEL and WHERE_MODEL.num_classes == 4
    rope = recipes.get("vit_where_rope").build(recipes.get("vit_where_rope").config)
    assert rope.config.pos_embed == "rope" and rope.pos_embed is None

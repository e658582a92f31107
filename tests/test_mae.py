"""Tests for vislab.mae: sin-cos table, random masking, the MAE model and its loss.

Parity: MAE's reference ``get_2d_sincos_pos_embed`` (numpy, copied below), transformers'
``ViTMAEEmbeddings.random_masking`` and a whole ``ViTMAEForPreTraining`` built from a tiny
random config (offline), with its weights copied into vislab's MAE.
"""

import math

import numpy as np
import pytest
import torch

from vislab.mae import (MAE, MAEConfig, mae_loss, mask_to_image, masked_patch_mse, patch_targets, random_masking,
                        set_sincos_pos_embed, sincos_pos_embed_2d, visible_mean_baseline)
from vislab.patching import patchify
from vislab.vit import ViT, ViTConfig


# ---------------------------------------------------------------- MAE's reference code (numpy)
def _ref_1d(embed_dim, pos):
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def _ref_2d(embed_dim, grid_size, cls_token=False):
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape([2, 1, grid_size, grid_size])
    emb = np.concatenate([_ref_1d(embed_dim // 2, grid[0]), _ref_1d(embed_dim // 2, grid[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return emb


def tiny_config(**kw):
    enc = ViTConfig(image_size=16, patch_size=4, dim=32, depth=2, heads=4)
    return MAEConfig(encoder=enc, decoder_dim=16, decoder_depth=1, decoder_heads=2, **kw)


# ---------------------------------------------------------------- sin-cos
@pytest.mark.parametrize("dim,grid", [(32, 4), (64, 8), (16, 2)])
def test_sincos_matches_mae_reference(dim, grid):
    ours = sincos_pos_embed_2d(dim, grid, cls_token=True)
    ref = torch.from_numpy(_ref_2d(dim, grid, cls_token=True)).float()
    assert ours.shape == (1 + grid * grid, dim)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)


def test_sincos_matches_transformers_layout():
    from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

    hf = build_2d_sinusoidal_position_embedding(8, 8, embed_dim=32, cls_token=True)
    half = hf.shape[-1] // 2
    hf = torch.cat([hf[..., half:], hf[..., :half]], dim=-1)     # transformers' rotation to MAE's layout
    torch.testing.assert_close(sincos_pos_embed_2d(32, 8), hf.float(), atol=1e-6, rtol=1e-6)


def test_sincos_rectangular_and_bad_input():
    t = sincos_pos_embed_2d(16, (2, 3), cls_token=False)
    assert t.shape == (6, 16)
    assert torch.equal(t[0, 4:8], torch.ones(4))                   # column 0: cos(0) = 1
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_pos_embed_2d(18, 4)


def test_set_sincos_freezes_table():
    vit = ViT(ViTConfig(image_size=16, patch_size=4, dim=32, depth=1, heads=4))
    set_sincos_pos_embed(vit)
    assert not vit.pos_embed.requires_grad
    torch.testing.assert_close(vit.pos_embed[0], sincos_pos_embed_2d(32, 4))
    with pytest.raises(ValueError, match="no learned position table"):
        set_sincos_pos_embed(ViT(ViTConfig(image_size=16, patch_size=4, dim=32, depth=1, heads=4, pos_embed="rope")))


# ---------------------------------------------------------------- random masking
def test_random_masking_semantics():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 16, 8, generator=g)
    kept, mask, ids_restore = random_masking(tokens, 0.75, generator=g)
    assert kept.shape == (3, 4, 8) and mask.shape == (3, 16) and ids_restore.shape == (3, 16)
    assert torch.equal(mask.sum(1), torch.full((3,), 12.0))       # 12 of 16 removed
    # every kept token is one of the image's tokens at a position where mask == 0
    for b in range(3):
        visible = tokens[b][mask[b] == 0]                          # (4, 8) in patch order
        assert sorted(visible.sum(1).tolist()) == sorted(kept[b].sum(1).tolist())
    # ids_restore undoes the shuffle: kept tokens + the rest, gathered back, are the original
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    shuffled = torch.gather(tokens, 1, ids_shuffle.unsqueeze(-1).expand(-1, -1, 8))
    assert torch.equal(shuffled[:, :4], kept)
    restored = torch.gather(shuffled, 1, ids_restore.unsqueeze(-1).expand(-1, -1, 8))
    assert torch.equal(restored, tokens)


def test_random_masking_reproducible_from_noise_and_generator():
    tokens = torch.randn(2, 16, 4)
    noise = torch.rand(2, 16)
    a = random_masking(tokens, 0.5, noise=noise)
    b = random_masking(tokens, 0.5, noise=noise.clone())
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    c = random_masking(tokens, 0.5, generator=torch.Generator().manual_seed(3))
    d = random_masking(tokens, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(c[1], d[1])
    # the smallest noise values are the kept patches
    keep = noise.argsort(1)[:, :8]
    assert torch.equal(a[1].gather(1, keep), torch.zeros(2, 8))


def test_random_masking_matches_transformers():
    from transformers import ViTMAEConfig
    from transformers.models.vit_mae.modeling_vit_mae import ViTMAEEmbeddings

    cfg = ViTMAEConfig(image_size=16, patch_size=4, hidden_size=8, mask_ratio=0.75)
    emb = ViTMAEEmbeddings(cfg)
    tokens = torch.randn(4, 16, 8)
    noise = torch.rand(4, 16)
    theirs = emb.random_masking(tokens, noise=noise)
    ours = random_masking(tokens, 0.75, noise=noise)
    for name, x, y in zip(("kept", "mask", "ids_restore"), ours, theirs):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("ratio", [0.0, 0.4, 0.9])
def test_random_masking_counts(ratio):
    kept, mask, _ = random_masking(torch.randn(2, 64, 3), ratio, generator=torch.Generator().manual_seed(1))
    k = int(64 * (1 - ratio))
    assert kept.shape[1] == k and int(mask[0].sum()) == 64 - k


def test_random_masking_bad_input():
    with pytest.raises(ValueError, match=r"\(B, N, D\)"):
        random_masking(torch.randn(16, 8), 0.5)
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        random_masking(torch.randn(1, 16, 8), 1.0)
    with pytest.raises(ValueError, match="at least one patch"):
        random_masking(torch.randn(1, 4, 8), 0.9)
    with pytest.raises(ValueError, match="noise must have shape"):
        random_masking(torch.randn(2, 16, 8), 0.5, noise=torch.rand(2, 15))


# ---------------------------------------------------------------- loss and baseline
def test_mae_loss_only_counts_removed_patches():
    images = torch.rand(2, 3, 16, 16)
    mask = torch.zeros(2, 16)
    mask[:, :5] = 1
    pred = torch.randn(2, 16, 48)
    base = mae_loss(pred, images, mask, 4)
    pred2 = pred.clone()
    pred2[:, 5:] += 100.0                                          # change only visible patches
    assert torch.equal(mae_loss(pred2, images, mask, 4), base)
    target = patchify(images, 4)
    manual = ((pred - target) ** 2).mean(-1)[:, :5].mean()
    torch.testing.assert_close(base, manual)
    assert masked_patch_mse(target, images, mask, 4).item() == 0.0


def test_norm_pix_targets():
    images = torch.rand(2, 3, 8, 8)
    t = patch_targets(images, 4, norm_pix_loss=True)
    torch.testing.assert_close(t.mean(-1), torch.zeros(2, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(t.var(-1), torch.ones(2, 4), atol=1e-3, rtol=0)


def test_mae_loss_bad_input():
    images = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="removes no patch"):
        mae_loss(torch.zeros(1, 4, 48), images, torch.zeros(1, 4), 4)
    with pytest.raises(ValueError, match="pred has shape"):
        mae_loss(torch.zeros(1, 4, 47), images, torch.ones(1, 4), 4)
    with pytest.raises(ValueError, match="mask must be"):
        mae_loss(torch.zeros(1, 4, 48), images, torch.ones(4), 4)


def test_visible_mean_baseline():
    images = torch.zeros(1, 3, 8, 8)
    images[..., :4, :4] = 1.0                                      # patch 0 white, others black
    mask = torch.tensor([[0.0, 0.0, 1.0, 1.0]])                    # patches 0, 1 visible
    base = visible_mean_baseline(images, mask, 4)
    assert base.shape == (1, 4, 48)
    torch.testing.assert_close(base, torch.full((1, 4, 48), 0.5))
    pix = mask_to_image(mask, 4, 8)
    assert pix.shape == (1, 3, 8, 8) and pix[0, 0, 0, 0] == 0 and pix[0, 0, 7, 0] == 1


# ---------------------------------------------------------------- the model
def test_mae_shapes_and_reconstruct():
    torch.manual_seed(0)
    model = MAE(tiny_config())
    images = torch.rand(2, 3, 16, 16)
    out = model(images, generator=torch.Generator().manual_seed(0))
    assert out["pred"].shape == (2, 16, 48)
    assert out["latent"].shape == (2, 1 + 4, 32)                   # CLS + 25% of 16 patches
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    rec = model.reconstruct(images, mask_ratio=0.5, generator=torch.Generator().manual_seed(1))
    for k in ("masked", "reconstruction", "pasted", "baseline"):
        assert rec[k].shape == images.shape, k
    keep = mask_to_image(rec["mask"], 4, 16) == 0
    assert torch.equal(rec["pasted"][keep], images[keep])          # visible patches are the original
    assert rec["mse"].shape == (2,)
    assert model.features(images).shape == (2, 32)
    assert not model.encoder.pos_embed.requires_grad


def test_mae_bad_input():
    model = MAE(tiny_config())
    with pytest.raises(ValueError, match="built for 16x16"):
        model(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="plain ViT"):
        MAEConfig(encoder=ViTConfig(image_size=16, patch_size=4, dim=32, depth=1, heads=4, num_registers=2))
    with pytest.raises(ValueError, match="mask_ratio"):
        tiny_config(mask_ratio=1.0)
    with pytest.raises(TypeError):
        MAE({"decoder_dim": 16})


def test_config_round_trip_and_preset():
    cfg = tiny_config(norm_pix_loss=True)
    assert MAEConfig.from_dict(cfg.to_dict()) == cfg
    b16 = MAEConfig.preset("B/16")
    assert (b16.encoder.dim, b16.decoder_dim, b16.decoder_depth, b16.mask_ratio) == (768, 512, 8, 0.75)
    with pytest.raises(ValueError, match="unknown MAE preset"):
        MAEConfig.preset("S/8")


def test_mae_learns_a_batch():
    torch.manual_seed(0)
    model = MAE(tiny_config())
    images = torch.rand(4, 3, 16, 16)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(40):
        loss = model(images, generator=g)["loss"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


# ---------------------------------------------------------------- parity with transformers
def _hf_to_vislab(hf) -> dict:
    """ViTMAEForPreTraining's state dict → vislab MAE names (5.x layout, 4.x as fallback)."""
    src = {k: v.detach().float() for k, v in hf.state_dict().items()}
    depth, ddepth = hf.config.num_hidden_layers, hf.config.decoder_num_hidden_layers

    def pick(*names):
        for n in names:
            if n in src:
                return src[n]
        raise KeyError(names)

    def block(prefix_new, prefix_old, i, dst):
        p5, p4 = f"{prefix_new}.{i}", f"{prefix_old}.{i}"
        out = {}
        for part in ("weight", "bias"):
            out[f"attn.qkv.{part}"] = torch.cat([
                pick(f"{p5}.attention.{a}_proj.{part}", f"{p4}.attention.attention.{b}.{part}")
                for a, b in (("q", "query"), ("k", "key"), ("v", "value"))])
            out[f"attn.proj.{part}"] = pick(f"{p5}.attention.o_proj.{part}", f"{p4}.attention.output.dense.{part}")
            out[f"norm1.{part}"] = pick(f"{p5}.layernorm_before.{part}", f"{p4}.layernorm_before.{part}")
            out[f"norm2.{part}"] = pick(f"{p5}.layernorm_after.{part}", f"{p4}.layernorm_after.{part}")
            out[f"mlp.fc1.{part}"] = pick(f"{p5}.mlp.fc1.{part}", f"{p4}.intermediate.dense.{part}")
            out[f"mlp.fc2.{part}"] = pick(f"{p5}.mlp.fc2.{part}", f"{p4}.output.dense.{part}")
        return {f"{dst}.{i}.{k}": v for k, v in out.items()}

    w = {"encoder.cls_token": src["vit.embeddings.cls_token"],
         "encoder.pos_embed": src["vit.embeddings.position_embeddings"],
         "encoder.patch_embed.proj.weight": src["vit.embeddings.patch_embeddings.projection.weight"],
         "encoder.patch_embed.proj.bias": src["vit.embeddings.patch_embeddings.projection.bias"],
         "encoder.norm.weight": src["vit.layernorm.weight"], "encoder.norm.bias": src["vit.layernorm.bias"],
         "mask_token": src["decoder.mask_token"],
         "decoder_embed.weight": src["decoder.decoder_embed.weight"],
         "decoder_embed.bias": src["decoder.decoder_embed.bias"],
         "decoder_norm.weight": src["decoder.decoder_norm.weight"],
         "decoder_norm.bias": src["decoder.decoder_norm.bias"],
         "decoder_pred.weight": src["decoder.decoder_pred.weight"],
         "decoder_pred.bias": src["decoder.decoder_pred.bias"]}
    for i in range(depth):
        w.update(block("vit.layers", "vit.encoder.layer", i, "encoder.blocks"))
    for i in range(ddepth):
        w.update(block("decoder.decoder_layers", "decoder.decoder_layers", i, "decoder_blocks"))
    return w


@pytest.mark.parametrize("norm_pix", [False, True])
def test_parity_with_transformers_vitmae(norm_pix):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    torch.manual_seed(0)
    hf_cfg = ViTMAEConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=128, decoder_hidden_size=16, decoder_num_hidden_layers=1,
                          decoder_num_attention_heads=2, decoder_intermediate_size=64, mask_ratio=0.75,
                          layer_norm_eps=1e-6, norm_pix_loss=norm_pix, hidden_act="gelu")
    hf = ViTMAEForPreTraining(hf_cfg).eval()
    with torch.no_grad():
        # the fixed tables, built by transformers' own function (its constructor leaves them at
        # zero in some versions; released checkpoints carry them)
        from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

        for table in (hf.vit.embeddings.position_embeddings, hf.decoder.decoder_pos_embed):
            t = build_2d_sinusoidal_position_embedding(4, 4, embed_dim=table.shape[-1], cls_token=True)
            half = t.shape[-1] // 2
            table.copy_(torch.cat([t[..., half:], t[..., :half]], dim=-1)[None])
        # random (non-default) LayerNorms too
        for name, p in hf.named_parameters():
            if "layernorm" in name or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    ours = MAE(MAEConfig(encoder=ViTConfig(image_size=16, patch_size=4, dim=32, depth=2, heads=4),
                         decoder_dim=16, decoder_depth=1, decoder_heads=2, mask_ratio=0.75,
                         norm_pix_loss=norm_pix)).eval()
    weights = _hf_to_vislab(hf)
    own = ours.state_dict()
    assert set(weights) == set(own), (set(weights) ^ set(own))
    ours.load_state_dict(weights)
    torch.testing.assert_close(ours.decoder_pos_embed, hf.decoder.decoder_pos_embed.float())
    images = torch.rand(3, 3, 16, 16)
    noise = torch.rand(3, 16)
    with torch.no_grad():
        theirs = hf(pixel_values=images, noise=noise)
        mine = ours(images, noise=noise)
    assert torch.equal(mine["mask"], theirs.mask)
    assert torch.equal(mine["ids_restore"], theirs.ids_restore)
    torch.testing.assert_close(mine["pred"], theirs.logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mine["loss"], theirs.loss, atol=1e-5, rtol=1e-4)
    assert math.isfinite(mine["loss"].item())


# ---------------------------------------------------------------- the masking viewer
def test_masking_viewer_and_figure():
    from vislab.runtime import make_generator
    from vislab.widgets.masking import masking_figure, masking_viewer

    torch.manual_seed(0)
    model = MAE(tiny_config()).eval()
    images = torch.rand(3, 3, 16, 16)

    def reconstruct(x, ratio, seed):
        return model.reconstruct(x, mask_ratio=ratio, generator=make_generator(seed))

    fig = masking_figure(images[0], reconstruct(images[:1], 0.5, 0), ratio=0.5)
    assert len(fig.axes) == 5
    box = masking_viewer(images, reconstruct, ratio=0.5, captions=["a", "b", "c"])
    slider_index, slider_ratio, _ = box.children[0].children
    png = box.children[1].value
    slider_ratio.value = 25                                    # re-renders
    assert box.children[1].value != png
    slider_index.value = 2
    with pytest.raises(ValueError, match="captions"):
        masking_viewer(images, reconstruct, captions=["a"])
    with pytest.raises(ValueError, match=r"\(n, 3, H, W\)"):
        masking_viewer(images[0], reconstruct)
    with pytest.raises(ValueError, match="missing"):
        masking_figure(images[0], {"masked": images[:1]})

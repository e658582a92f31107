"""Tests for vislab.patching: patchify/unpatchify, token counts, sizes, PatchEmbed."""

import pytest
import torch
from torch import nn

from vislab.patching import PatchEmbed, as_size, grid_size, num_tokens, patchify, unpatchify


def images(b=2, c=3, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g)


def mae_patchify_einsum(imgs, p):
    """MAE's models_mae.py patchify, written independently with einsum (square images)."""
    B, C, H, W = imgs.shape
    h = w = H // p
    x = imgs.reshape(B, C, h, p, w, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(B, h * w, p * p * C)


def loop_patchify(imgs, p):
    """The definition, one patch and one pixel at a time: row-major grid, (row, col, channel)."""
    B, C, H, W = imgs.shape
    gh, gw = H // p, W // p
    out = torch.empty(B, gh * gw, p * p * C)
    for b in range(B):
        for i in range(gh):
            for j in range(gw):
                vec = []
                for r in range(p):
                    for c in range(p):
                        for ch in range(C):
                            vec.append(imgs[b, ch, i * p + r, j * p + c])
                out[b, i * gw + j] = torch.stack(vec)
    return out


# ---- sizes ------------------------------------------------------------------------------------

def test_as_size():
    assert as_size(32) == (32, 32)
    assert as_size((24, 48)) == (24, 48)
    assert as_size([24, 48]) == (24, 48)
    assert as_size(torch.Size([5, 7])) == (5, 7)


@pytest.mark.parametrize("bad,err", [(True, TypeError), ("32", TypeError), ((1, 2, 3), TypeError),
                                     (None, TypeError), ((0, 4), ValueError), (-3, ValueError),
                                     ((4.0, 4), ValueError)])
def test_as_size_bad_input(bad, err):
    with pytest.raises(err, match="image_size"):
        as_size(bad)


@pytest.mark.parametrize("size,p,n", [(224, 16, 197), (224, 14, 257), (336, 14, 577), (448, 14, 1025),
                                      (384, 16, 577), (32, 8, 17), (32, 4, 65), ((224, 336), 16, 14 * 21 + 1)])
def test_num_tokens(size, p, n):
    assert num_tokens(size, p) == n
    assert num_tokens(size, p, cls_token=False) == n - 1


def test_grid_size_non_square():
    assert grid_size((32, 48), 8) == (4, 6)
    assert grid_size(224, 14) == (16, 16)


@pytest.mark.parametrize("size,p,names", [(30, 16, ["16 or 32"]), (225, 16, ["224 or 240"]),
                                          ((224, 230), 16, ["224 or 240"]), (10, 16, ["16"])])
def test_non_divisible_sizes_name_the_nearest_valid_ones(size, p, names):
    with pytest.raises(ValueError) as info:
        grid_size(size, p)
    msg = str(info.value)
    assert f"patch size {p}" in msg
    for n in names:
        assert f"nearest valid: {n}" in msg
    h, w = as_size(size)
    assert f"{h}x{w}" in msg
    with pytest.raises(ValueError, match="not divisible"):
        num_tokens(size, p)
    with pytest.raises(ValueError, match="not divisible"):
        patchify(images(1, 3, *as_size(size)), p)


def test_non_divisible_names_only_the_bad_side():
    with pytest.raises(ValueError) as info:
        grid_size((32, 30), 8)
    msg = str(info.value)
    assert "width 30" in msg and "24 or 32" in msg
    assert "height" not in msg


@pytest.mark.parametrize("bad,err", [(0, ValueError), (-2, ValueError), (2.0, TypeError), (True, TypeError),
                                     ("4", TypeError)])
def test_bad_patch_size(bad, err):
    with pytest.raises(err, match="patch_size"):
        grid_size(32, bad)
    with pytest.raises(err, match="patch_size"):
        patchify(images(), bad)


# ---- patchify / unpatchify ----------------------------------------------------------------------

@pytest.mark.parametrize("c,h,w,p", [(3, 32, 32, 8), (3, 32, 32, 4), (3, 24, 40, 8), (1, 12, 18, 6),
                                     (5, 16, 8, 4), (3, 7, 7, 7), (3, 8, 8, 1)])
def test_round_trip(c, h, w, p):
    x = images(2, c, h, w)
    patches = patchify(x, p)
    assert patches.shape == (2, (h // p) * (w // p), p * p * c)
    assert torch.equal(unpatchify(patches, p, (h, w)), x)
    # and the other way: patches -> image -> patches
    q = torch.randn_like(patches)
    assert torch.equal(patchify(unpatchify(q, p, (h, w)), p), q)


def test_unpatchify_accepts_an_int_for_square_images():
    x = images(1, 3, 16, 16)
    assert torch.equal(unpatchify(patchify(x, 4), 4, 16), x)


@pytest.mark.parametrize("p", [2, 4, 8, 16])
def test_same_layout_as_mae(p):
    x = images(2, 3, 32, 32, seed=p)
    assert torch.equal(patchify(x, p), mae_patchify_einsum(x, p))


@pytest.mark.parametrize("c,h,w,p", [(3, 8, 12, 4), (2, 6, 4, 2)])
def test_layout_matches_the_definition_loop(c, h, w, p):
    x = images(2, c, h, w, seed=1)
    assert torch.equal(patchify(x, p), loop_patchify(x, p))


def test_patch_order_is_row_major():
    """Patch k of a 2x3 grid is the block at row k // 3, column k % 3."""
    p = 2
    x = torch.zeros(1, 1, 4, 6)
    for k in range(6):
        r, c = divmod(k, 3)
        x[0, 0, r * p:(r + 1) * p, c * p:(c + 1) * p] = k
    patches = patchify(x, p)[0]
    assert torch.equal(patches, torch.arange(6.0)[:, None].expand(6, 4))


def test_patchify_keeps_dtype_and_gradient():
    x = images(1, 3, 8, 8).double().requires_grad_()
    patches = patchify(x, 4)
    assert patches.dtype == torch.float64
    patches.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_patchify_bad_input():
    with pytest.raises(TypeError, match="torch.Tensor"):
        patchify([[1.0]], 4)
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        patchify(torch.rand(3, 32, 32), 8)


def test_unpatchify_bad_input():
    p = patchify(images(2, 3, 32, 32), 8)                # (2, 16, 192)
    with pytest.raises(TypeError):
        unpatchify(p.numpy(), 8, 32)
    with pytest.raises(ValueError, match=r"\(B, N, P\*P\*C\)"):
        unpatchify(p[0], 8, 32)
    with pytest.raises(ValueError, match="16 patches cannot tile"):
        unpatchify(p, 8, (32, 64))
    with pytest.raises(ValueError, match="multiple of P"):
        unpatchify(p[..., :-1], 8, 32)
    with pytest.raises(ValueError, match="not divisible"):
        unpatchify(p, 8, 30)


# ---- PatchEmbed ---------------------------------------------------------------------------------

def test_patch_embed_shapes_and_attributes():
    pe = PatchEmbed(image_size=32, patch_size=8, in_channels=3, dim=16)
    assert isinstance(pe.proj, nn.Conv2d)
    assert pe.grid == (4, 4) and pe.num_patches == 16
    assert pe(images(2)).shape == (2, 16, 16)
    # any size divisible by P
    assert pe(images(2, 3, 24, 40)).shape == (2, 15, 16)


@pytest.mark.parametrize("c,h,w,p,bias", [(3, 32, 32, 8, True), (3, 24, 40, 4, True), (1, 16, 16, 4, False)])
def test_patch_embed_equals_patchify_plus_linear(c, h, w, p, bias):
    torch.manual_seed(0)
    pe = PatchEmbed(image_size=(h, w), patch_size=p, in_channels=c, dim=24, bias=bias)
    x = images(3, c, h, w)
    lin = pe.as_linear()
    assert isinstance(lin, nn.Linear) and lin.in_features == p * p * c and lin.out_features == 24
    assert (lin.bias is None) == (not bias)
    torch.testing.assert_close(pe(x), lin(patchify(x, p)), atol=1e-5, rtol=1e-5)


def test_patch_embed_equals_an_independent_linear():
    """A Linear whose weight is built by hand from the definition, not by as_linear."""
    torch.manual_seed(1)
    c, p, d = 3, 4, 8
    pe = PatchEmbed(image_size=8, patch_size=p, in_channels=c, dim=d)
    w = torch.empty(d, p * p * c)
    for o in range(d):
        w[o] = torch.stack([pe.proj.weight[o, ch, r, col] for r in range(p) for col in range(p) for ch in range(c)])
    x = images(2, c, 8, 8)
    ref = patchify(x, p) @ w.T + pe.proj.bias
    torch.testing.assert_close(pe(x), ref, atol=1e-5, rtol=1e-5)


def test_patch_embed_bad_input():
    pe = PatchEmbed(image_size=32, patch_size=8, in_channels=3, dim=16)
    with pytest.raises(ValueError, match="expected 3 input channels, got 1"):
        pe(images(2, 1, 32, 32))
    with pytest.raises(ValueError, match="nearest valid"):
        pe(images(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        pe(torch.rand(3, 32, 32))
    strict = PatchEmbed(image_size=32, patch_size=8, in_channels=3, dim=16, strict_size=True)
    assert strict(images(1)).shape == (1, 16, 16)
    with pytest.raises(ValueError, match="expected images of size"):
        strict(images(1, 3, 40, 40))


@pytest.mark.parametrize("kwargs,err", [(dict(image_size=30, patch_size=8), ValueError),
                                        (dict(patch_size=0), ValueError),
                                        (dict(in_channels=0), ValueError),
                                        (dict(dim=-1), ValueError),
                                        (dict(dim=8.0), ValueError)])
def test_patch_embed_bad_construction(kwargs, err):
    args = dict(image_size=32, patch_size=8, in_channels=3, dim=16)
    with pytest.raises(err):
        PatchEmbed(**{**args, **kwargs})

"""Model configs, losses and augmentations refuse nonsense with clear errors (issue 21)."""

import pytest
import torch

from vislab import dino, siglip
from vislab.validate import MAX_TOKENS
from vislab.vit import AxialRoPE, ViT, ViTConfig, interpolate_pos_embed


def small(**kw):
    base = dict(image_size=16, patch_size=8, dim=16, depth=1, heads=2)
    base.update(kw)
    return ViTConfig(**base)


# ---- ViTConfig -------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, err, fragment", [
    ("norm_eps", 0.0, ValueError, "norm_eps must be >"),
    ("norm_eps", -1e-6, ValueError, "norm_eps must be >"),
    ("norm_eps", float("nan"), ValueError, "norm_eps must be finite"),
    ("rope_theta", 0.0, ValueError, "rope_theta must be >"),
    ("rope_theta", -100.0, ValueError, "rope_theta must be >"),
    ("mlp_ratio", 0.01, ValueError, "zero-width MLP"),
    ("mlp_ratio", float("inf"), ValueError, "mlp_ratio must be finite"),
    ("layerscale_init", float("nan"), ValueError, "layerscale_init must be finite"),
    ("qkv_bias", "False", TypeError, "qkv_bias must be True or False"),
    ("class_token", 1, TypeError, "class_token must be True or False"),
])
def test_vit_config_refuses_nonsense(field, value, err, fragment):
    with pytest.raises(err, match=fragment):
        small(**{field: value})


def test_a_zero_width_mlp_is_fine_when_mlp_dim_is_given():
    assert small(mlp_ratio=0.01, mlp_dim=8).hidden_dim == 8


def test_a_position_table_for_too_many_tokens_is_refused():
    with pytest.raises(ValueError, match="tokens, above the limit"):
        ViTConfig(image_size=4096, patch_size=4, dim=16, depth=1, heads=2)


def test_a_million_token_image_is_refused_before_the_patch_embedding():
    model = ViT(small(pos_embed="none", class_token=False, pooling="mean", patch_size=4))
    big = torch.empty(1, 3, 4096, 4096, device="meta")                 # a shape without memory: refused from it alone
    with pytest.raises(ValueError, match=r"1,048,576 tokens, above the limit of 16,384"):
        model(big)
    side = int(MAX_TOKENS ** 0.5) * 4                                   # exactly at the limit is allowed
    assert ViT(small(pos_embed="none", class_token=False, pooling="mean", patch_size=4))._check_images(
        torch.zeros(1, 3, side, side)) is not None


def test_interpolate_pos_embed_refuses_tables_that_cannot_be_allocated():
    table = torch.zeros(1, 1 + 16, 8)
    with pytest.raises(ValueError, match="would allocate 80,000,000,000 elements"):
        interpolate_pos_embed(table, new_grid=10 ** 5)
    with pytest.raises(TypeError, match="num_prefix_tokens must be an int"):
        interpolate_pos_embed(table, new_grid=4, num_prefix_tokens=1.0)
    with pytest.raises(ValueError, match="num_prefix_tokens must be >= 0"):
        interpolate_pos_embed(table, new_grid=4, num_prefix_tokens=-1)
    assert interpolate_pos_embed(table, new_grid=8).shape == (1, 65, 8)


def test_axial_rope_refuses_a_non_positive_theta():
    with pytest.raises(ValueError, match="theta must be >"):
        AxialRoPE(8, theta=0.0)
    with pytest.raises(TypeError, match="head_dim must be an int"):
        AxialRoPE(8.0)


# ---- SigLIP ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [siglip.sigmoid_loss, siglip.sigmoid_loss_explicit])
@pytest.mark.parametrize("scale", [0.0, -10.0, float("nan"), torch.tensor(-1.0)])
def test_sigmoid_losses_refuse_a_non_positive_scale(fn, scale):
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    with pytest.raises(ValueError, match="logit_scale must be a finite number > 0"):
        fn(a, b, scale, -10.0)


def test_sigmoid_losses_refuse_a_non_finite_bias():
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    with pytest.raises(ValueError, match="logit_bias must be finite"):
        siglip.sigmoid_loss(a, b, 10.0, float("inf"))
    with pytest.raises(ValueError, match="logit_scale must be a finite number > 0"):
        siglip.chunked_sigmoid_loss(a, b, 0.0, -10.0, num_devices=2)


def test_siglip_config_and_memory_model_refuse_nonsense():
    with pytest.raises(ValueError, match="init_logit_bias must be finite"):
        siglip.SigLIPConfig(init_logit_bias=float("nan"))
    with pytest.raises(TypeError, match="batch_size must be an int"):
        siglip.loss_memory_floats("full", 8.5, 1, 16)
    with pytest.raises(ValueError, match="embed_dim must be >= 1"):
        siglip.loss_memory_floats("full", 8, 1, 0)


# ---- DINO: augmentations, losses, config -------------------------------------------------------------------

IMAGES = torch.rand(2, 3, 16, 16)


@pytest.mark.parametrize("call, fragment", [
    (lambda: dino.random_resized_crop(IMAGES, 8, flip_p=1.5), "flip_p must be <= 1"),
    (lambda: dino.random_resized_crop(IMAGES, 8, flip_p=-0.1), "flip_p must be >= 0"),
    (lambda: dino.random_resized_crop(IMAGES, 8, scale=(0.9, 0.2)), "scale is reversed"),
    (lambda: dino.random_resized_crop(IMAGES, 8, ratio=(4 / 3, 3 / 4)), "ratio is reversed"),
    (lambda: dino.random_resized_crop(IMAGES, 8, ratio=(0.0, 1.0)), "ratio must be positive"),
    (lambda: dino.random_resized_crop(IMAGES, 10 ** 6), "would allocate"),
    (lambda: dino.color_jitter(IMAGES, p=2.0), "p must be <= 1"),
    (lambda: dino.color_jitter(IMAGES, brightness=-0.4), "brightness must be >= 0"),
    (lambda: dino.color_jitter(IMAGES, hue=0.7), "hue must be <= 0.5"),
    (lambda: dino.random_grayscale(IMAGES, p=-1), "p must be >= 0"),
    (lambda: dino.random_grayscale(IMAGES[:, :1]), "needs RGB images"),
    (lambda: dino.gaussian_blur(IMAGES, p=1.2), "p must be <= 1"),
    (lambda: dino.gaussian_blur(IMAGES, sigma=(2.0, 0.1)), "sigma is reversed"),
    (lambda: dino.solarize(IMAGES, p=float("nan")), "p must be finite"),
    (lambda: dino.block_mask(2, 4, probability=1.5), "probability must be <= 1"),
    (lambda: dino.block_mask(2, 4, aspect=(3.0, 0.3)), "aspect is reversed"),
    (lambda: dino.block_mask(2, 4, min_block=0), "min_block must be >= 1"),
    (lambda: dino.block_mask(10 ** 7, 4), "ask for fewer"),
])
def test_augmentations_refuse_bad_probabilities_and_reversed_ranges(call, fragment):
    with pytest.raises((ValueError, TypeError), match=fragment):
        call()


@pytest.mark.parametrize("field, value, fragment", [
    ("flip_p", 1.1, "flip_p must be <= 1"), ("jitter_p", -0.5, "jitter_p must be >= 0"),
    ("blur_p", (1.0, 0.1, 2.0), r"blur_p\[2\] must be <= 1"), ("local_scale", (0.4, 0.05), "local_scale is reversed"),
    ("global_scale", (0.0, 1.0), "area fractions"), ("blur_sigma", (1.0, 0.1), "blur_sigma is reversed"),
    ("jitter", (0.4, 0.4, 0.2), "holds 4 values"), ("invert_p", 3, "invert_p must be <= 1"),
    ("global_size", 10 ** 6, "global_size must be <= 4096"),
])
def test_multicrop_config_refuses_nonsense(field, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        dino.MultiCropConfig(**{field: value})


def test_dino_losses_refuse_non_finite_temperatures():
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        dino.sinkhorn_knopp(torch.randn(4, 8), float("inf"))
    with pytest.raises(ValueError, match="student_temp must be a finite number > 0"):
        dino.DINOLoss(8, student_temp=float("inf"))
    with pytest.raises(ValueError, match="teacher_temp must be a finite number > 0"):
        dino.DINOLoss(8).teacher_targets(torch.randn(2, 8), float("inf"))


@pytest.mark.parametrize("field, value, fragment", [
    ("teacher_temp", float("inf"), "teacher_temp must be a finite"), ("center_momentum", 1.0, "center_momentum must be <"),
    ("koleo_weight", -0.1, "koleo_weight must be >= 0"), ("mask_probability", 1.5, "mask_probability must be <= 1"),
    ("mask_ratio", (0.5, 0.1), "mask_ratio is reversed"), ("out_dim", 0, "out_dim must be >= 1"),
    ("multicrop", "big", "multicrop must be a MultiCropConfig"),
])
def test_dino_config_refuses_nonsense(field, value, fragment):
    with pytest.raises((ValueError, TypeError), match=fragment):
        dino.DINOConfig(**{field: value})

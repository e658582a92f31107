"""MAE, EVA, VQ, ConvNeXt and early-fusion helpers refuse nonsense (issue 21)."""

import pytest
import torch

from vislab import convnet, eva, fusion, mae, vq


@pytest.mark.parametrize("call, err, fragment", [
    (lambda: mae.sincos_pos_embed_2d(8, 4, temperature=0.0), ValueError, "temperature must be >"),
    (lambda: mae.sincos_pos_embed_2d(8, 4, cls_token="yes"), TypeError, "cls_token must be True or False"),
    (lambda: mae.sincos_pos_embed_2d(8, 10 ** 5), ValueError, "would allocate"),
    (lambda: mae.random_masking(torch.zeros(1, 4, 8), 0.5, generator=0), TypeError, "generator must be"),
    (lambda: mae.random_masking(torch.zeros(1, 4, 8), float("nan")), ValueError, "mask_ratio must be"),
    (lambda: mae.mae_loss([1.0], torch.rand(1, 3, 8, 8), torch.ones(1, 4), 4), TypeError, "pred must be a torch.Tensor"),
    (lambda: mae.mask_to_image(torch.ones(4), 4, 8), ValueError, "mask must have 2 dimensions"),
    (lambda: mae.MAEConfig(decoder_mlp_ratio=0.001), ValueError, "zero-width MLP"),
    (lambda: mae.MAEConfig(decoder_mlp_ratio=-1.0), ValueError, "decoder_mlp_ratio must be >"),
    (lambda: mae.MAEConfig(norm_pix_loss=1), TypeError, "norm_pix_loss must be True or False"),
])
def test_mae_refuses_nonsense(call, err, fragment):
    with pytest.raises(err, match=fragment):
        call()


@pytest.mark.parametrize("call, err, fragment", [
    (lambda: eva.block_masking(2, 4, generator="seed"), TypeError, "generator must be"),
    (lambda: eva.block_masking(2, 4, min_block=0), ValueError, "min_block must be >= 1"),
    (lambda: eva.block_masking(2, (4, 0)), ValueError, "grid width must be >= 1"),
    (lambda: eva.block_masking(10 ** 7, 4), ValueError, "ask for fewer"),
    (lambda: eva.resample_patch_features(torch.zeros(1, 16, 8), (4, 4), (10 ** 5, 10 ** 5)), ValueError, "would allocate"),
    (lambda: eva.resample_patch_features(torch.zeros(1, 16, 8), (4, 4), (4,)), ValueError, "to_grid must be a"),
    (lambda: eva.negative_cosine_loss(torch.zeros(1, 4), torch.zeros(1, 4), torch.ones(1, 4)), ValueError,
     "pred must have 3 dimensions"),
    (lambda: eva.EVAConfig(min_block=0), ValueError, "min_block must be >= 1"),
])
def test_eva_refuses_nonsense(call, err, fragment):
    with pytest.raises(err, match=fragment):
        call()


@pytest.mark.parametrize("kw, err, fragment", [
    (dict(beta=-0.25), ValueError, "beta must be >= 0"), (dict(decay=1.0), ValueError, "decay must be < 1"),
    (dict(decay=float("nan")), ValueError, "decay must be finite"),
    (dict(restart_threshold=0.0), ValueError, "restart_threshold must be >"),
    (dict(restart_every=-1), ValueError, "restart_every must be >= 0"), (dict(ema="no"), TypeError, "ema must be"),
    (dict(image_size=8192, downsample=2), ValueError, "image_size must be <= 4096"),
])
def test_vqvae_config_refuses_nonsense(kw, err, fragment):
    with pytest.raises(err, match=fragment):
        vq.VQVAEConfig(**kw)


@pytest.mark.parametrize("kw, fragment", [(dict(disc_weight=-1.0), "disc_weight must be >= 0"),
                                          (dict(perceptual_widths=()), "perceptual_widths must be a non-empty"),
                                          (dict(disc_start=-5), "disc_start must be >= 0")])
def test_vqgan_config_refuses_nonsense(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        vq.VQGANConfig(**kw)


def test_psnr_refuses_nan_images():
    x = torch.rand(1, 3, 4, 4)
    y = x.clone()
    y[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        vq.psnr(x, y)


@pytest.mark.parametrize("kw, err, fragment", [
    (dict(norm_eps=0.0), ValueError, "norm_eps must be >"), (dict(mlp_ratio=0.001), ValueError, "zero-width MLP"),
    (dict(depths=(1.5, 2)), TypeError, "depths must be an int"), (dict(kernel_size=7.0), TypeError, "kernel_size must be an int"),
    (dict(layerscale_init=float("inf")), ValueError, "layerscale_init must be finite"),
])
def test_convnet_config_refuses_nonsense(kw, err, fragment):
    with pytest.raises(err, match=fragment):
        convnet.ConvNetConfig(**kw)


@pytest.mark.parametrize("kw, err, fragment", [
    (dict(heads=0), ValueError, "heads must be >= 1"),                # was a ZeroDivisionError
    (dict(dropout=1.0), ValueError, "dropout must be < 1"), (dict(context_length=2), ValueError, "context_length must be >= 3"),
    (dict(mlp_ratio=2.5), TypeError, "mlp_ratio must be an int"),
])
def test_fusion_config_refuses_nonsense(kw, err, fragment):
    with pytest.raises(err, match=fragment):
        fusion.FusionConfig(**kw)


def test_fusion_sampling_refuses_a_negative_temperature_and_bad_top_k():
    logits = torch.randn(2, 5)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        fusion._sample(logits, -1.0, None, None)
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        fusion._sample(logits, 1.0, 0, None)
    assert fusion._sample(logits, 0.0, None, None).shape == (2,)
    with pytest.raises(ValueError, match="pad_id must be <="):
        fusion.FusionVocab(text_size=4, num_codes=8, pad_id=4)

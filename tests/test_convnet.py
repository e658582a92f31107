"""vislab.convnet: shapes, bad input, presets, parity with transformers' ConvNeXt, the recipe."""

import re

import pytest
import torch

from vislab.convnet import ConvNet, ConvNetConfig, ConvNeXtBlock, LayerNorm2d
from vislab.vit import count_parameters


def test_forward_features_shapes():
    net = ConvNet(ConvNetConfig.preset("shapes", num_classes=7))
    x = torch.rand(3, 3, 32, 32)
    out = net.forward_features(x)
    assert [tuple(s.shape) for s in out["stages"]] == [(3, 48, 8, 8), (3, 96, 4, 4)]
    assert out["spatial"].shape == (3, 96, 4, 4)
    assert out["patches"].shape == (3, 16, 96)
    assert torch.equal(out["patches"][:, 5], out["spatial"][:, :, 1, 1])        # row-major token order
    assert out["pooled"].shape == (3, 96)
    assert net(x).shape == (3, 7)
    assert ConvNet(ConvNetConfig.preset("shapes"))(x).shape == (3, 96)         # no head: pooled features
    assert net.config.grid == (4, 4) and net.config.reduction == 8 and net.config.dim == 96


def test_other_sizes_and_head_init():
    net = ConvNet(ConvNetConfig.preset("shapes", num_classes=5))
    assert net.forward_features(torch.rand(1, 3, 64, 48))["spatial"].shape == (1, 96, 8, 6)
    assert torch.count_nonzero(net(torch.rand(2, 3, 32, 32))) == 0             # zero-initialised head


def test_block_is_residual_with_layer_scale():
    torch.manual_seed(0)
    block = ConvNeXtBlock(8, layerscale_init=1e-6)
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(block(x), x, atol=1e-4)                               # near identity at 1e-6
    assert count_parameters(block) == 8 * 49 + 8 + 2 * 8 + 8 * 32 + 32 + 32 * 8 + 8 + 8


def test_layernorm2d_normalises_channels():
    ln = LayerNorm2d(4, eps=1e-6)
    y = ln(torch.randn(2, 4, 3, 3) * 5 + 2)
    assert torch.allclose(y.mean(1), torch.zeros(2, 3, 3), atol=1e-5)


def test_paper_preset_parameter_count():
    # ConvNeXt-T: 28.6M parameters with a 1000-class head (paper table, timm's convnext_tiny)
    n = count_parameters(ConvNet(ConvNetConfig.preset("T", image_size=224, num_classes=1000)))
    assert n == 28_589_128


@pytest.mark.parametrize("kwargs", [dict(depths=(1, 2), dims=(8,)), dict(depths=(), dims=()),
                                    dict(kernel_size=4), dict(image_size=30), dict(depths=(0, 1), dims=(8, 8)),
                                    dict(layerscale_init=0.0), dict(stem=0)])
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        ConvNetConfig(**kwargs)


def test_bad_input():
    net = ConvNet(ConvNetConfig.preset("shapes"))
    with pytest.raises(ValueError, match="unsqueeze"):
        net(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="channels"):
        net(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.rand(1, 3, 30, 32))
    with pytest.raises(TypeError):
        net(torch.rand(1, 3, 32, 32).numpy())
    with pytest.raises(TypeError):
        ConvNet({"depths": (1,)})
    with pytest.raises(ValueError):
        ConvNetConfig.preset("XXL")
    with pytest.raises(ValueError):
        ConvNetConfig.from_dict({"depth": 3})


def test_config_round_trip():
    c = ConvNetConfig.preset("shapes", num_classes=7)
    assert ConvNetConfig.from_dict(c.to_dict()) == c
    assert c.replace(kernel_size=5).kernel_size == 5


def _hf_to_vislab(key: str) -> str:
    rules = [(r"^embeddings\.patch_embeddings\.", "stem.0."), (r"^embeddings\.layernorm\.", "stem.1."),
             (r"^encoder\.stages\.(\d+)\.downsampling_layer\.", r"downsample.\1."),
             (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer_scale_parameter$", r"stages.\1.\2.gamma"),
             (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layernorm\.", r"stages.\1.\2.norm."),
             (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.", r"stages.\1.\2."), (r"^layernorm\.", "norm.")]
    for pattern, repl in rules:
        if re.search(pattern, key):
            return re.sub(pattern, repl, key)
    raise KeyError(key)


def test_parity_with_transformers_convnext():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_config = transformers.ConvNextConfig(num_channels=3, patch_size=4, num_stages=2, hidden_sizes=[8, 16],
                                            depths=[1, 2], layer_scale_init_value=0.5, drop_path_rate=0.0,
                                            image_size=16, layer_norm_eps=1e-6)
    hf = transformers.ConvNextModel(hf_config).eval()
    with torch.no_grad():                                      # non-trivial norms and layer scales
        for name, p in hf.named_parameters():
            if "layernorm" in name or "layer_scale" in name or "downsampling_layer.0" in name:
                p.add_(0.1 * torch.randn_like(p))
    ours = ConvNet(ConvNetConfig(image_size=16, depths=(1, 2), dims=(8, 16), stem=4, layerscale_init=0.5)).eval()
    state = {_hf_to_vislab(k): v for k, v in hf.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        want = hf(pixel_values=x)
        got = ours.forward_features(x)
    assert torch.allclose(got["spatial"], want.last_hidden_state, atol=1e-5)
    assert torch.allclose(got["pooled"], want.pooler_output, atol=1e-5)


def test_recipe_builds_and_checkpoint_is_small():
    from vislab import recipes
    from vislab.checkpoints import checkpoint_path

    recipe = recipes.get("convnext_shapes")
    model = recipe.build(recipe.config)
    assert isinstance(model, ConvNet) and model.config.num_classes == 7
    path = checkpoint_path("convnext_shapes")
    st = path.with_name(path.name + ".safetensors")
    if st.exists():
        assert st.stat().st_size <= 3 * 2**20
        from vislab.pretrain import load_or_train

        loaded, meta = load_or_train("convnext_shapes")
        assert meta["metrics"]["test_acc"] >= 0.97
        from vislab.recipes.vit import test_set

        x, y = test_set(200)
        with torch.no_grad():
            assert (loaded(x).argmax(1) == y).float().mean() >= 0.95

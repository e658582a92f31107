"""vislab.pretrained.dinov2: transformers' DINOv2 (plain, SwiGLU, registers) into vislab's ViT.

Parity against tiny random transformers models (offline, no download): ``forward_features``
equals ``last_hidden_state`` to 1e-4 at the training size, at another size (bicubic position
resampling) and with a mask token.
"""

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel  # noqa: E402

from tests.online_cells import chapter_cells, offline_run  # noqa: E402
from vislab.pretrained import from_hf  # noqa: E402
from vislab.pretrained.dinov2 import WeightMismatchError, config_from_hf, convert  # noqa: E402
from vislab.vit import ViT  # noqa: E402

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=28, patch_size=7,
            layerscale_value=0.5)


def _randomize(model, seed=0):
    """Move every parameter off its initial value, so that a swapped tensor cannot hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def _models():
    torch.manual_seed(0)
    return {
        "plain": _randomize(Dinov2Model(Dinov2Config(**TINY))),
        "swiglu": _randomize(Dinov2Model(Dinov2Config(**TINY, use_swiglu_ffn=True))),
        "registers": _randomize(Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**TINY, num_register_tokens=4))),
    }


MODELS = _models()


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("size", [28, 42, (35, 21)])
def test_forward_features_equal_last_hidden_state(kind, size):
    hf = MODELS[kind]
    ours = convert(hf)
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(pixel_values=x).last_hidden_state
        got = ours.forward_features(x)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", list(MODELS))
def test_mask_token_matches_bool_masked_pos(kind):
    hf = MODELS[kind]
    ours = convert(hf)
    x = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, :5] = True
    mask[1, 7:12] = True
    with torch.no_grad():
        ref = hf(pixel_values=x, bool_masked_pos=mask).last_hidden_state
        tokens, grid = ours.embed(x, mask=mask)
        got, _, _ = ours.encode(tokens, grid)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_config_options_carried_over():
    c = config_from_hf(MODELS["registers"].config)
    assert (c.num_registers, c.layerscale_init, c.use_mask_token, c.pos_interp_antialias) == (4, 0.5, True, True)
    c = config_from_hf(MODELS["swiglu"].config)
    assert c.mlp == "swiglu" and c.num_registers == 0 and not c.pos_interp_antialias
    ours = convert(MODELS["swiglu"])
    assert ours.blocks[0].mlp.w12.weight.shape == (2 * 88, 32)       # F' = ceil8(2/3 * 4 * 32) = 88


def test_registers_are_split_from_patches():
    ours = convert(MODELS["registers"])
    out = ours.forward_intermediates(torch.rand(1, 3, 28, 28))
    assert out["registers"].shape == (1, 4, 32)
    assert out["patches"].shape == (1, 16, 32)
    assert out["cls"].shape == (1, 32)


def test_from_hf_dispatches():
    assert isinstance(from_hf(MODELS["plain"]), ViT)
    assert isinstance(from_hf(MODELS["registers"]), ViT)


def test_bad_inputs():
    with pytest.raises(TypeError):
        convert(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError):
        config_from_hf(transformers.ViTConfig())
    hf = Dinov2Model(Dinov2Config(**TINY))
    hf.register_buffer("stray", torch.zeros(3))
    with pytest.raises(WeightMismatchError, match="stray"):
        convert(hf)


def test_classifier_model_is_refused_with_a_hint():
    from transformers import Dinov2ForImageClassification

    clf = Dinov2ForImageClassification(Dinov2Config(**TINY, num_labels=3))
    with pytest.raises(TypeError, match="model.dinov2"):
        convert(clf)


# ----------------------------------------------------------------------------- chapter 5's online cell
def test_chapter5_online_cell_runs_with_a_tiny_model(monkeypatch):
    """Chapter 5's `online` cell with the hub 'reachable' and `AutoModel.from_pretrained` answered
    by a tiny random Dinov2Model (14 px patches): it converts, checks against transformers and
    draws the PCA picture and the attention viewer."""
    import matplotlib

    matplotlib.use("Agg")
    first, online = chapter_cells("05_dino.py")
    assert online and all("hub_available(" in src for src in online)
    torch.manual_seed(0)
    hf = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                  image_size=448, patch_size=14)).eval()
    monkeypatch.setattr("vislab.online.hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", classmethod(lambda cls, *a, **k: hf))
    namespace = {"__name__": "chapter05"}
    exec(compile(first, "05_dino.py:first cell", "exec"), namespace)
    for i, src in enumerate(online):
        exec(compile(src, f"05_dino.py:online cell {i}", "exec"), namespace)
    assert isinstance(namespace["dinov2_small"], ViT)
    assert namespace["out_small"]["grid"] == (32, 32)
    assert namespace["rgb_photo"].shape[:2] == (2, 32 * 32)


def test_chapter5_online_cell_offline_prints_one_line(monkeypatch, capsys):
    namespace = offline_run("05_dino.py", monkeypatch, capsys, transformers.AutoModel)
    assert "dinov2_small" not in namespace

"""vislab.pretrained.vit: parity with transformers' ViT built from tiny random configs (offline)."""

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from tests.online_cells import chapter_cells, offline_run, run_cells  # noqa: E402
from vislab.pretrained import from_hf  # noqa: E402
from vislab.pretrained.vit import WeightMismatchError, assign_weights, config_from_hf, convert  # noqa: E402
from vislab.vit import ViT  # noqa: E402


def hf_config(**over):
    kw = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=48, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_channels=3)
    kw.update(over)
    return transformers.ViTConfig(**kw)


def randomise(model, seed=0):
    """transformers initialises LayerNorms to (1, 0); perturb everything so parity means something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


def pixels(size, b=2, seed=1):
    h, w = (size, size) if isinstance(size, int) else size
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


SIZES = [32, 64, (32, 48), (48, 24), 16]


@pytest.mark.parametrize("size", SIZES)
def test_features_match_last_hidden_state(size):
    torch.manual_seed(0)
    hf = randomise(transformers.ViTModel(hf_config()))
    ours = convert(hf)
    x = pixels(size)
    with torch.no_grad():
        ref = hf(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state
        got = ours.forward_features(x)
        got_explicit, maps = ours.forward_features(x, return_attention=True)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-4), (got - ref).abs().max()
    assert torch.allclose(got_explicit, ref, atol=1e-4)
    assert len(maps) == 2


def test_attention_maps_match_eager():
    torch.manual_seed(0)
    hf = randomise(transformers.ViTModel(hf_config(), add_pooling_layer=False))
    hf.config._attn_implementation = "eager"
    ours = convert(hf)
    x = pixels(32)
    with torch.no_grad():
        out = hf(pixel_values=x, output_attentions=True)
        _, maps = ours.forward_features(x, return_attention=True)
    for a, b in zip(maps, out.attentions):
        assert torch.allclose(a, b, atol=1e-5)


def test_classifier_logits_and_from_hf_dispatch():
    torch.manual_seed(0)
    hf = randomise(transformers.ViTForImageClassification(hf_config(num_labels=5)))
    ours = from_hf(hf)
    assert isinstance(ours, ViT) and ours.config.num_classes == 5
    x = pixels((32, 48))
    with torch.no_grad():
        ref = hf(pixel_values=x, interpolate_pos_encoding=True).logits
        assert torch.allclose(ours(x), ref, atol=1e-4)


@pytest.mark.parametrize("over", [dict(qkv_bias=False), dict(hidden_act="gelu_pytorch_tanh"),
                                  dict(layer_norm_eps=1e-6, num_channels=1), dict(hidden_act="relu")])
def test_config_variants(over):
    torch.manual_seed(0)
    hf = randomise(transformers.ViTModel(hf_config(**over)))
    ours = convert(hf)
    x = pixels(32)[:, : over.get("num_channels", 3)]
    with torch.no_grad():
        assert torch.allclose(ours.forward_features(x), hf(pixel_values=x).last_hidden_state, atol=1e-4)


def test_config_mapping():
    c = config_from_hf(hf_config(hidden_act="quick_gelu", intermediate_size=50))
    assert (c.dim, c.depth, c.heads, c.mlp_dim, c.mlp, c.norm_eps) == (32, 2, 4, 50, "quick_gelu", 1e-12)
    with pytest.raises(ValueError, match="hidden_act"):
        config_from_hf(hf_config(hidden_act="swish"))
    with pytest.raises(TypeError):
        config_from_hf(transformers.CLIPVisionConfig())


class _OldLayout(nn.Module):
    """A stand-in with transformers 4.x parameter names (encoder.layer.i.attention.attention.query...)."""

    RENAME = {"layers.": "encoder.layer.", "attention.q_proj": "attention.attention.query",
              "attention.k_proj": "attention.attention.key", "attention.v_proj": "attention.attention.value",
              "attention.o_proj": "attention.output.dense", "mlp.fc1": "intermediate.dense",
              "mlp.fc2": "output.dense"}

    def __init__(self, hf):
        super().__init__()
        self.config = hf.config
        self.embeddings = hf.embeddings
        self._sd = {}
        for k, v in hf.state_dict().items():
            for a, b in self.RENAME.items():
                k = k.replace(a, b)
            self._sd[k] = v

    def state_dict(self, *args, **kwargs):
        return dict(self._sd)


def test_transformers_4_layout():
    torch.manual_seed(0)
    hf = randomise(transformers.ViTModel(hf_config()))
    old = _OldLayout(hf)
    assert any(k.startswith("encoder.layer.0.attention.attention.query") for k in old.state_dict())
    ours = convert(old)
    x = pixels(64)
    with torch.no_grad():
        ref = hf(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state
        assert torch.allclose(ours.forward_features(x), ref, atol=1e-4)


def test_mismatches_are_refused_with_names():
    torch.manual_seed(0)
    hf = randomise(transformers.ViTModel(hf_config()))
    old = _OldLayout(hf)
    old._sd["encoder.layer.1.output.dense.weight"] = torch.zeros(32, 7)
    with pytest.raises(WeightMismatchError, match=r"blocks\.1\.mlp\.fc2\.weight"):
        convert(old)
    del old._sd["encoder.layer.1.output.dense.weight"]
    with pytest.raises(WeightMismatchError, match=r"missing.*blocks\.1\.mlp\.fc2\.weight"):
        convert(old)
    old._sd["encoder.layer.1.output.dense.weight"] = hf.state_dict()["layers.1.mlp.fc2.weight"]
    old._sd["encoder.layer.1.extra.weight"] = torch.zeros(3)
    with pytest.raises(WeightMismatchError, match=r"extra\.weight"):
        convert(old)


def test_assign_weights_is_strict():
    m = ViT(config_from_hf(hf_config()))
    w = {k: v.clone() for k, v in m.state_dict().items()}
    assign_weights(m, w)
    w["norm.weight"] = torch.ones(5)
    with pytest.raises(WeightMismatchError, match=r"norm\.weight: checkpoint \(5,\) vs vislab \(32,\)"):
        assign_weights(m, w)


def test_convert_refuses_other_models():
    with pytest.raises(TypeError):
        convert(nn.Linear(2, 2))


# ----------------------------------------------------------------------------- chapters 1 and 2's online cells
def test_chapter1_online_cell_runs_offline(monkeypatch):
    """Chapter 1's `online` cell, with `from_pretrained` answered by a random ViTModel of the real
    patch embedding's shape (768 wide, patch 16, one small layer): its check passes."""
    hf = transformers.ViTModel(hf_config(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=1,
                                         num_attention_heads=12, intermediate_size=64)).eval()
    monkeypatch.setattr(transformers.ViTModel, "from_pretrained", classmethod(lambda cls, *a, **k: hf))
    monkeypatch.setattr("vislab.online.hub_reachable", lambda *a, **k: True)
    first, online = chapter_cells("01_patching.py")
    ns = run_cells("01_patching.py", first, online, {"__name__": "chapter01", "x": torch.rand(1, 3, 224, 224)})
    assert torch.equal(ns["ours"].proj.weight, hf.embeddings.patch_embeddings.projection.weight)


def test_chapter2_online_cells_run_offline(monkeypatch):
    """Chapter 2's `online` cells against a tiny random ViTForImageClassification (224 px, patch 16):
    conversion, logits, the attention viewer and the non-square photo all run and check."""
    torch.manual_seed(0)
    hf = randomise(transformers.ViTForImageClassification(hf_config(image_size=224, patch_size=16, num_labels=6)))
    monkeypatch.setattr(transformers.ViTForImageClassification, "from_pretrained",
                        classmethod(lambda cls, *a, **k: hf))
    monkeypatch.setattr("vislab.online.hub_reachable", lambda *a, **k: True)
    first, online = chapter_cells("02_vit.py")
    ns = run_cells("02_vit.py", first, online, {"__name__": "chapter02"})
    assert isinstance(ns["real"], ViT) and ns["ours"].shape == (1, 6)
    assert len(ns["real_maps"]) == 2 and ns["a"].shape == ns["b"].shape == (1, 1 + 14 * 21, 32)


def test_online_cells_end_quietly_offline(monkeypatch, capsys):
    """Offline, each online cell of chapters 1 and 2 prints one line and ends without an error."""
    for name, loader in (("01_patching.py", transformers.ViTModel),
                         ("02_vit.py", transformers.ViTForImageClassification)):
        offline_run(name, monkeypatch, capsys, loader)

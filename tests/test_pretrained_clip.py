"""vislab.pretrained.clip: transformers' CLIPModel → vislab's CLIP, checked on tiny random models (offline)."""

import dataclasses

import pytest
import torch

transformers = pytest.importorskip("transformers")

from vislab.clip import CLIP  # noqa: E402
from vislab.pretrained import from_hf  # noqa: E402
from vislab.pretrained.clip import config_from_hf, convert  # noqa: E402
from vislab.pretrained.vit import WeightMismatchError  # noqa: E402

VOCAB, CTX = 99, 12


def tiny_clip(eos_token_id: int, hidden_act: str = "quick_gelu", seed: int = 0):
    torch.manual_seed(seed)
    cfg = transformers.CLIPConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=CTX, eos_token_id=eos_token_id,
                         bos_token_id=1, pad_token_id=0, hidden_act=hidden_act),
        vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, hidden_act=hidden_act),
        projection_dim=24, logit_scale_init_value=2.6592)
    model = transformers.CLIPModel(cfg).eval()
    with torch.no_grad():                       # random LayerNorm affine too, so a swapped norm shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def inputs(eot: int, pad: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(3, 3, 32, 32, generator=g)
    ids = torch.randint(4, VOCAB - 1, (4, CTX), generator=g)
    lengths = [3, 6, 9, 12]
    for b, n in enumerate(lengths):
        ids[b, 0] = 1
        ids[b, n - 1] = eot
        ids[b, n:] = pad
    mask = (torch.arange(CTX)[None] < torch.tensor(lengths)[:, None]).long()
    return pixels, ids, mask


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("legacy", [True, False])
def test_logits_per_image_match(legacy):
    # legacy configs say eos_token_id=2 and pool at argmax(ids): EOT has the largest id (here 98);
    # new configs pool at the first eos_token_id.
    eos = 2 if legacy else 3
    hf = tiny_clip(eos)
    ours = from_hf(hf)
    assert isinstance(ours, CLIP) and not ours.training
    assert ours.config.text.pool == ("argmax" if legacy else "eot")
    pixels, ids, mask = inputs(eot=VOCAB - 1 if legacy else eos, pad=VOCAB - 1 if legacy else eos)
    with torch.no_grad():
        ref = hf(input_ids=ids, pixel_values=pixels, attention_mask=mask)
        got = ours(pixels, ids)
        assert got.shape == (3, 4)
        assert rel_err(got, ref.logits_per_image) < 1e-4
        assert rel_err(ours.encode_image(pixels), hf.get_image_features(pixel_values=pixels).pooler_output) < 1e-4
        text_ref = hf.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        assert rel_err(ours.encode_text(ids), text_ref) < 1e-4
        # the explicit-softmax path gives the same image features
        feats, maps = ours.visual.forward_features(pixels, return_attention=True)
        assert len(maps) == 2
        assert rel_err(ours.visual_projection(feats[:, 0]), ours.encode_image(pixels)) < 1e-5


def test_pooling_rule_matters():
    """Read at the wrong token, the logits differ: the pooling rule is part of the conversion."""
    hf = tiny_clip(3)
    ours = convert(hf)
    pixels, ids, mask = inputs(eot=3, pad=3)
    ids[:, 1] = VOCAB - 1          # a large id before EOT: argmax pooling would read here
    with torch.no_grad():
        ref = hf(input_ids=ids, pixel_values=pixels, attention_mask=mask).logits_per_image
        assert rel_err(ours(pixels, ids), ref) < 1e-4
        wrong = CLIP(dataclasses.replace(ours.config, text=dataclasses.replace(ours.config.text, pool="argmax")))
        wrong.load_state_dict(ours.state_dict())
        assert rel_err(wrong(pixels, ids), ref) > 1e-3


def test_config_mapping():
    hf = tiny_clip(3)
    c = config_from_hf(hf.config)
    assert c.vision.norm_pre and not c.vision.patch_bias and c.vision.mlp == "quick_gelu"
    assert (c.vision.dim, c.vision.depth, c.vision.patch_size, c.vision.hidden_dim) == (48, 2, 8, 96)
    assert (c.text.width, c.text.context_length, c.text.vocab_size, c.text.activation) == (32, CTX, VOCAB, "quick_gelu")
    assert c.embed_dim == 24 and c.init_logit_scale == pytest.approx(2.6592)


def test_gelu_variant_converts():
    hf = tiny_clip(3, hidden_act="gelu")
    ours = convert(hf)
    assert ours.config.vision.mlp == "gelu"
    pixels, ids, mask = inputs(eot=3, pad=3)
    with torch.no_grad():
        assert rel_err(ours(pixels, ids), hf(input_ids=ids, pixel_values=pixels, attention_mask=mask).logits_per_image) < 1e-4


def test_bad_input():
    with pytest.raises(TypeError, match="CLIPModel"):
        convert(torch.nn.Linear(2, 2))
    vit = transformers.ViTModel(transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                                       intermediate_size=64, image_size=32, patch_size=8))
    with pytest.raises(TypeError, match="CLIPModel"):
        convert(vit)
    with pytest.raises(TypeError, match="CLIP config"):
        config_from_hf(vit.config)
    hf = tiny_clip(3)
    with pytest.raises(ValueError, match="hidden_act"):
        hf.config.vision_config.hidden_act = "swish"
        config_from_hf(hf.config)


def test_missing_tensor_is_named():
    hf = tiny_clip(3)

    class Crippled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = hf.config
            self.vision_model, self.text_model = hf.vision_model, hf.text_model
            self.visual_projection = hf.visual_projection
            self.logit_scale = hf.logit_scale          # text_projection missing

    with pytest.raises(WeightMismatchError, match="text_projection"):
        convert(Crippled())


# ----------------------------------------------------------------------------- chapter 3's online cell
def _tiny_processor():
    """A CLIPProcessor built offline: a character-level CLIP BPE (no merges; <|endoftext|> has
    the largest id, as in OpenAI's vocabulary) and an image processor for 32 px."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())                                  # the 256 byte-level symbols
    vocab = {tok: i for i, tok in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    tok = transformers.CLIPTokenizer(vocab=vocab, merges=[])
    images = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return transformers.CLIPProcessor(image_processor=images, tokenizer=tok), len(vocab)


def test_chapter_online_cell_runs_offline(monkeypatch):
    """Chapter 3's `online` cell, with `from_pretrained` answered by a tiny random CLIPModel (legacy
    eos id 2, argmax pooling, like openai/clip-vit-base-patch32): its loading code runs and its
    check (vislab's probabilities == the notes' transformers code) passes."""
    from pathlib import Path

    jupytext = pytest.importorskip("jupytext")
    processor, vocab_size = _tiny_processor()
    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, eos_token_id=2, bos_token_id=0,
                         pad_token_id=1, hidden_act="quick_gelu"),
        vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, hidden_act="quick_gelu"),
        projection_dim=24)
    hf = transformers.CLIPModel(cfg).eval()
    monkeypatch.setattr(transformers.CLIPModel, "from_pretrained", classmethod(lambda cls, *a, **k: hf))
    monkeypatch.setattr(transformers.CLIPProcessor, "from_pretrained", classmethod(lambda cls, *a, **k: processor))
    monkeypatch.setattr("vislab.online.hub_reachable", lambda *a, **k: True)     # the cell's hub_available guard

    chapter = jupytext.read(Path(__file__).resolve().parents[1] / "chapters" / "03_clip.py")
    code = [c for c in chapter.cells if c.cell_type == "code"]
    online = [c.source for c in code if "online" in c.metadata.get("tags", [])]
    assert online, "chapter 3 has no cell tagged 'online'"
    assert any("from_hf(" in src for src in online)
    namespace = {"__name__": "chapter03"}
    exec(compile(code[0].source, "03_clip.py:first cell", "exec"), namespace)     # imports, setup
    for i, src in enumerate(online):
        exec(compile(src, f"03_clip.py:online cell {i}", "exec"), namespace)
    ours = namespace["ours"]
    assert ours.shape == (2, len(namespace["class_names"]))
    assert torch.allclose(ours.sum(-1), torch.ones(2), atol=1e-5)
    assert isinstance(namespace["real"], CLIP) and namespace["real"].config.text.pool == "argmax"

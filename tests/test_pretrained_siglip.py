"""vislab.pretrained.siglip: transformers' SiglipModel → vislab's SigLIP, on tiny random models (offline)."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tests.online_cells import chapter_cells, offline_run  # noqa: E402
from vislab.pretrained import from_hf  # noqa: E402
from vislab.pretrained.siglip import config_from_hf, convert  # noqa: E402
from vislab.pretrained.vit import WeightMismatchError  # noqa: E402
from vislab.siglip import SigLIP, SigLIPTextTransformer, sigmoid_loss  # noqa: E402

VOCAB, CTX = 99, 12


def tiny_siglip(seed: int = 0, text_mlp: int = 64, vision_mlp: int = 96, image_size: int = 32, **vision):
    torch.manual_seed(seed)
    cfg = transformers.SiglipConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=48, intermediate_size=text_mlp, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=CTX, eos_token_id=VOCAB - 1,
                         bos_token_id=VOCAB - 2, pad_token_id=1),
        vision_config=dict(hidden_size=48, intermediate_size=vision_mlp, num_hidden_layers=2, num_attention_heads=4,
                           image_size=image_size, patch_size=8, **vision))
    model = transformers.SiglipModel(cfg).eval()
    with torch.no_grad():      # transformers zero-initialises some of these; randomise so a swap shows
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias") or "probe" in name:
                p.add_(0.1 * torch.randn_like(p))
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-3.0)
    return model


def inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(3, 3, 32, 32, generator=g)
    ids = torch.randint(2, VOCAB, (4, CTX), generator=g)
    ids[:, -3:] = 1                              # padded to max_length, as the released models expect
    return pixels, ids


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_logits_per_image_match():
    hf = tiny_siglip()
    ours = from_hf(hf)
    assert isinstance(ours, SigLIP) and not ours.training
    assert isinstance(ours.text, SigLIPTextTransformer) and ours.config.vision.pooling == "map"
    pixels, ids = inputs()
    with torch.no_grad():
        ref = hf(input_ids=ids, pixel_values=pixels)
        got = ours(pixels, ids)
    assert got.shape == ref.logits_per_image.shape == (3, 4)
    assert rel_err(got, ref.logits_per_image) < 1e-4
    with torch.no_grad():
        img_ref = hf.get_image_features(pixel_values=pixels)
        txt_ref = hf.get_text_features(input_ids=ids)
        img_ref = getattr(img_ref, "pooler_output", img_ref)
        txt_ref = getattr(txt_ref, "pooler_output", txt_ref)
        assert rel_err(ours.encode_image(pixels), img_ref) < 1e-4
        assert rel_err(ours.encode_text(ids), txt_ref) < 1e-4


def test_scale_and_bias_are_the_sources():
    hf = tiny_siglip(seed=3)
    ours = convert(hf)
    assert ours.logit_scale.item() == pytest.approx(2.3) and ours.logit_bias.item() == pytest.approx(-3.0)
    assert ours.logit_scale.shape == () and ours.logit_bias.shape == ()


def test_loss_matches_transformers_return_loss():
    hf = tiny_siglip(seed=4)
    ours = convert(hf)
    pixels, ids = inputs(seed=2)
    ids = ids[:3]
    with torch.no_grad():
        ref = hf(input_ids=ids, pixel_values=pixels, return_loss=True).loss
        got = sigmoid_loss(ours.encode_image(pixels), ours.encode_text(ids), ours.logit_scale.exp(), ours.logit_bias)
    assert got.item() == pytest.approx(ref.item(), rel=1e-4)


def test_other_sizes_and_odd_mlp_widths():
    # So400m's MLP width 4304 is not a round multiple of its width 1152: odd widths must survive
    hf = tiny_siglip(seed=5, text_mlp=83, vision_mlp=71)
    ours = convert(hf)
    assert ours.text.blocks[0].mlp.fc1.out_features == 83
    assert ours.visual.blocks[0].mlp.fc1.out_features == 71
    pixels, ids = inputs(seed=3)
    with torch.no_grad():
        assert rel_err(ours(pixels, ids), hf(input_ids=ids, pixel_values=pixels).logits_per_image) < 1e-4


def test_image_size_not_a_multiple_of_the_patch():
    # like so400m-patch14-384 (27 patches of 14 and 6 pixels the convolution never reads)
    hf = tiny_siglip(seed=9, image_size=36)
    ours = convert(hf)
    assert ours.config.vision.image_size == 32
    g = torch.Generator().manual_seed(4)
    pixels = torch.randn(2, 3, 36, 36, generator=g)
    _, ids = inputs(seed=4)
    with torch.no_grad():
        ref = hf(input_ids=ids, pixel_values=pixels).logits_per_image
        assert rel_err(ours(pixels[..., :32, :32], ids), ref) < 1e-4


def test_config_and_bad_input():
    hf = tiny_siglip(seed=6)
    c = config_from_hf(hf.config)
    assert c.vision.class_token is False and c.vision.mlp == "gelu_tanh" and c.text.activation == "gelu_tanh"
    assert c.embed_dim == 48 and not c.image_projection and c.text_projection_bias
    with pytest.raises(TypeError, match="SiglipModel"):
        convert(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="SigLIP config"):
        config_from_hf(transformers.CLIPConfig())
    with pytest.raises(TypeError, match="one tower only"):
        convert(transformers.SiglipVisionModel(hf.config.vision_config))
    no_head = tiny_siglip(seed=7, vision_use_head=False)
    with pytest.raises(ValueError, match="vision_use_head"):
        convert(no_head)


def test_missing_tensor_is_named():
    hf = tiny_siglip(seed=8)
    state = hf.state_dict()

    class Fake:
        config = hf.config
        vision_model = hf.vision_model
        text_model = hf.text_model

        def state_dict(self):
            return {k: v for k, v in state.items() if k != "text_model.head.bias"}

    with pytest.raises(WeightMismatchError, match="text_model.head.bias"):
        convert(Fake())


# ----------------------------------------------------------------------------- chapter 4's online cell
class _FakeProcessor:
    """Stands in for SiglipProcessor (whose tokenizer needs a downloaded SentencePiece model):
    token ids padded to the tiny model's context and 32 px pixel values."""

    def __call__(self, text, images, padding, return_tensors):
        assert padding == "max_length" and return_tensors == "pt"
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(2, VOCAB, (len(text), CTX), generator=g)
        ids[:, -3:] = 1
        return {"input_ids": ids, "pixel_values": torch.randn(len(images), 3, 32, 32, generator=g)}


def test_chapter4_online_cell_runs_with_a_tiny_model(monkeypatch):
    """Chapter 4's `online` cell with the hub 'reachable' and `from_pretrained` answered by a tiny
    random SiglipModel: it converts, checks vislab's logits against transformers', prints one
    probability per photo and caption."""
    first, online = chapter_cells("04_siglip.py")
    assert online and all("hub_available(" in src for src in online)
    hf = tiny_siglip()
    monkeypatch.setattr("vislab.online.hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(transformers.SiglipModel, "from_pretrained", classmethod(lambda cls, *a, **k: hf))
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", classmethod(lambda cls, *a, **k: _FakeProcessor()))
    namespace = {"__name__": "chapter04"}
    exec(compile(first, "04_siglip.py:first cell", "exec"), namespace)
    for i, src in enumerate(online):
        exec(compile(src, f"04_siglip.py:online cell {i}", "exec"), namespace)
    assert isinstance(namespace["real"], SigLIP)
    assert namespace["our_logits"].shape == (2, 4)


def test_chapter4_online_cell_offline_prints_one_line(monkeypatch, capsys):
    namespace = offline_run("04_siglip.py", monkeypatch, capsys, transformers.SiglipModel)
    assert "real" not in namespace

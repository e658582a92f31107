"""Tests for vislab.fusion: the shared vocabulary, sequences, the causal Transformer and generation."""

import pytest
import torch

from vislab import fusion, vq


def _tiny(**kw):
    tok = vq.VQVAEConfig(image_size=16, hidden=8, res_blocks=1, downsample=2, dim=4, num_codes=16)
    base = dict(context_length=12, tokenizer=tok, dim=32, depth=2, heads=2)
    base.update(kw)
    torch.manual_seed(0)
    return fusion.EarlyFusion(fusion.FusionConfig(**base))


def test_vocab_layout_and_round_trip():
    v = fusion.FusionVocab(text_size=10, num_codes=4)
    assert (v.image_offset, v.boi, v.eoi, v.size) == (10, 14, 15, 16)
    codes = torch.tensor([[0, 3], [2, 1]])
    toks = v.image_tokens(codes)
    assert torch.equal(v.image_codes(toks), codes)
    assert v.is_image(toks).all() and not v.is_image(torch.tensor([9, 14, 15])).any()
    with pytest.raises(ValueError):
        v.image_tokens(torch.tensor([4]))
    with pytest.raises(ValueError):
        v.image_codes(torch.tensor([3]))
    with pytest.raises(ValueError):
        fusion.FusionVocab(0, 4)


def test_gan_config_is_reduced_to_vqvae_fields():
    cfg = fusion.FusionConfig(tokenizer=vq.VQGANConfig(num_codes=64))
    assert type(cfg.tokenizer) is vq.VQVAEConfig and cfg.tokenizer.num_codes == 64
    assert fusion.FusionConfig.from_dict(cfg.to_dict()) == cfg


def test_build_sequences_both_orders():
    v = fusion.FusionVocab(text_size=10, num_codes=4)
    caps = torch.tensor([[2, 5, 6, 3, 0, 0], [2, 7, 3, 0, 0, 0]])      # <sot> w w <eot> pad pad
    codes = torch.tensor([[1, 2], [3, 0]])
    seq = fusion.build_sequences(v, caps, codes, torch.tensor([True, False]))
    assert seq.shape == (2, 6 + 2 + 2)
    assert seq[0].tolist() == [2, 5, 6, 3, 14, 11, 12, 15, 0, 0]
    assert seq[1].tolist() == [14, 13, 10, 15, 2, 7, 3, 0, 0, 0]
    with pytest.raises(ValueError):
        fusion.build_sequences(v, caps, codes[:1], True)


def test_transformer_is_causal():
    m = fusion.FusionTransformer(vocab_size=20, max_len=12, dim=16, depth=2, heads=2).eval()
    x = torch.randint(0, 20, (2, 10))
    y = x.clone()
    y[:, 6:] = torch.randint(0, 20, (2, 4))
    torch.testing.assert_close(m(x)[:, :6], m(y)[:, :6])
    assert not torch.allclose(m(x)[:, 6:], m(y)[:, 6:])


def test_kv_cache_equals_full_forward():
    m = fusion.FusionTransformer(vocab_size=20, max_len=12, dim=16, depth=2, heads=2).eval()
    x = torch.randint(0, 20, (3, 9))
    full = m(x)
    caches = [dict() for _ in m.blocks]
    parts = [m(x[:, :5], caches)] + [m(x[:, t:t + 1], caches) for t in range(5, 9)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


def test_explicit_attention_equals_fused():
    m = fusion.FusionTransformer(vocab_size=20, max_len=12, dim=16, depth=2, heads=2).eval()
    x = torch.randint(0, 20, (2, 8))
    torch.testing.assert_close(m(x, explicit=True), m(x), atol=1e-5, rtol=1e-5)
    att = m.blocks[0].attn.last_attention
    assert att.shape == (2, 2, 8, 8)
    assert torch.all(att.triu(1) == 0)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 2, 8))


def test_fusion_loss_ignores_padding():
    m = fusion.FusionTransformer(vocab_size=20, max_len=12, dim=16, depth=1, heads=2)
    x = torch.randint(1, 20, (2, 8))
    padded = torch.cat([x, torch.zeros(2, 3, dtype=torch.long)], 1)
    la, _ = fusion.fusion_loss(m, x)
    lb, _ = fusion.fusion_loss(m, padded)
    torch.testing.assert_close(la, lb)


def test_too_long_sequence_raises():
    m = fusion.FusionTransformer(vocab_size=20, max_len=6, dim=16, depth=1, heads=2)
    with pytest.raises(ValueError, match="max_len"):
        m(torch.zeros(1, 7, dtype=torch.long))


def test_generation_shapes_and_constraints():
    model = _tiny()
    g = torch.Generator().manual_seed(0)
    codes = model.generate_codes(["a red circle", "a small blue square in the center"], generator=g)
    assert codes.shape == (2, 4, 4) and codes.min() >= 0 and codes.max() < 16
    imgs = model.generate_images(["a red circle"], generator=g)
    assert imgs.shape == (1, 3, 16, 16) and imgs.min() >= 0 and imgs.max() <= 1
    caps = model.generate_captions(torch.rand(3, 3, 16, 16))
    assert isinstance(caps, list) and len(caps) == 3 and all(isinstance(c, str) for c in caps)
    assert not any("<" in c for c in caps)   # no specials in a caption


def test_overfits_two_pairs_both_directions():
    model = _tiny(dim=48, depth=2)
    torch.manual_seed(0)
    images = torch.zeros(2, 3, 16, 16)
    images[0, 0, 2:8, 2:8] = 1.0
    images[1, 2, 8:14, 8:14] = 1.0
    captions = ["a red square in the top left", "a blue square in the bottom right"]
    with torch.no_grad():  # codes on encoder outputs, so that the untrained tokenizer tells the images apart
        z = model.tokenizer.encode(images).permute(0, 2, 3, 1).reshape(-1, 4)          # (32, D)
        model.tokenizer.quantizer.codebook.weight.copy_(z[torch.randperm(32)[:16]])
    want = model.tokenizer.tokenize(images)
    assert not torch.equal(want[0], want[1])
    opt = torch.optim.Adam(model.transformer.parameters(), lr=3e-3)
    seqs = torch.cat([model.sequences(images, captions, True), model.sequences(images, captions, False)])
    for _ in range(150):
        loss, _ = fusion.fusion_loss(model.transformer, seqs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    got = model.generate_codes(captions, temperature=0.0)
    assert torch.equal(got, want)
    assert model.generate_captions(images) == captions

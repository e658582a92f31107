"""Tests for vislab.vq: the quantiser, its statistics, VQ-VAE and the VQ-GAN parts."""

import math

import pytest
import torch
import torch.nn.functional as F

from vislab import vq


def _quantizer(K=8, D=4, **kw):
    torch.manual_seed(0)
    q = vq.VectorQuantizer(K, D, **kw)
    with torch.no_grad():
        q.codebook.weight.copy_(torch.randn(K, D))
        q.embed_sum.copy_(q.codebook.weight)
    return q


# -- the quantiser -------------------------------------------------------------------------------

def test_shapes_any_leading_dims():
    q = _quantizer()
    z = torch.randn(2, 3, 5, 4)
    z_q, idx, loss = q(z)
    assert z_q.shape == z.shape and idx.shape == (2, 3, 5) and idx.dtype == torch.long
    assert loss.dim() == 0


def test_nearest_code_by_brute_force():
    q = _quantizer(K=16, D=3)
    z = torch.randn(50, 3)
    _, idx, _ = q(z)
    e = q.codebook.weight.detach()
    brute = torch.tensor([min(range(16), key=lambda k: float(((zi - e[k]) ** 2).sum())) for zi in z])
    assert torch.equal(idx, brute)


def test_z_q_value_is_the_code():
    q = _quantizer()
    z = torch.randn(10, 4)
    z_q, idx, _ = q(z)
    torch.testing.assert_close(z_q, q.codebook.weight[idx])


def test_straight_through_gradient_reaches_z_unchanged():
    q = _quantizer(beta=0.0)  # no commitment term: only the straight-through path reaches z
    z = torch.randn(6, 4, requires_grad=True)
    z_q, _, _ = q(z)
    upstream = torch.randn(6, 4)
    (z_q * upstream).sum().backward()
    torch.testing.assert_close(z.grad, upstream)


def test_loss_formula_and_its_gradients():
    q = _quantizer(beta=0.25)
    z = torch.randn(7, 4, requires_grad=True)
    z_q, idx, loss = q(z)
    e = q.codebook.weight[idx].detach()
    expected = F.mse_loss(e, z.detach()) + 0.25 * F.mse_loss(z.detach(), e)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    # commitment pulls z towards e with weight beta; the codebook term moves only the codes
    torch.testing.assert_close(z.grad, 0.25 * 2 * (z.detach() - e) / z.numel())
    g = torch.zeros_like(q.codebook.weight)
    g.index_add_(0, idx, 2 * (e - z.detach()) / z.numel())
    torch.testing.assert_close(q.codebook.weight.grad, g)


def test_ema_update_matches_formula():
    K, D, decay, eps = 4, 2, 0.9, 1e-5
    q = _quantizer(K, D, ema=True, decay=decay, eps=eps)
    assert not q.codebook.weight.requires_grad
    z = torch.randn(20, D)
    with torch.no_grad():
        idx = q.distances(z).argmin(-1)
    N0, m0 = q.cluster_size.clone(), q.embed_sum.clone()
    _, idx2, loss = q(z)
    assert torch.equal(idx, idx2)
    counts = torch.bincount(idx, minlength=K).float()
    sums = torch.zeros(K, D).index_add_(0, idx, z)
    N = decay * N0 + (1 - decay) * counts
    m = decay * m0 + (1 - decay) * sums
    n = N.sum()
    Ns = (N + eps) / (n + K * eps) * n
    torch.testing.assert_close(q.cluster_size, N)
    torch.testing.assert_close(q.codebook.weight, m / Ns[:, None])
    # only the commitment term remains in the loss
    assert torch.isclose(loss, 0.25 * F.mse_loss(z, m0[idx]))   # codes before the update


def test_ema_converges_to_cluster_means():
    q = _quantizer(2, 1, ema=True, decay=0.5)
    with torch.no_grad():
        q.codebook.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        q.embed_sum.copy_(q.codebook.weight)
    z = torch.tensor([[-3.0], [-2.0], [2.0], [4.0]])
    for _ in range(60):
        q(z)
    torch.testing.assert_close(q.codebook.weight, torch.tensor([[-2.5], [3.0]]), atol=1e-3, rtol=0)


def test_no_updates_in_eval_mode():
    q = _quantizer(ema=True, restart_every=1)
    q.eval()
    w = q.codebook.weight.clone()
    q(torch.randn(30, 4))
    assert torch.equal(w, q.codebook.weight) and int(q.restarts) == 0


@pytest.mark.parametrize("ema", [False, True])
def test_dead_code_restart(ema):
    q = _quantizer(K=4, D=2, ema=ema, restart_every=2)
    with torch.no_grad():
        q.codebook.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [100.0, 100.0], [-100.0, 50.0]]))
        q.embed_sum.copy_(q.codebook.weight)
    z = torch.randn(32, 2) * 0.3
    q(z)
    assert int(q.restarts) == 0                         # not yet a check step
    assert q.codebook.weight[2, 0] == 100.0 or ema      # untouched by the first step (no EMA)
    q(z)
    assert int(q.restarts) >= 2
    w = q.codebook.weight
    for k in (2, 3):  # the far codes now sit exactly on vectors of the batch
        assert torch.cdist(w[k:k + 1], z).min() < 1e-5
    if ema:
        assert torch.all(q.cluster_size[2:] == 1.0)


def test_restart_is_reproducible_from_seed():
    outs = []
    for _ in range(2):
        q = _quantizer(K=16, D=2, restart_every=1, seed=3)
        q(torch.arange(40.0).reshape(20, 2))
        outs.append(q.codebook.weight.clone())
    assert torch.equal(outs[0], outs[1])


def test_lookup_round_trip():
    q = _quantizer()
    z_q, idx, _ = q(torch.randn(3, 5, 4))
    torch.testing.assert_close(q.lookup(idx), z_q)


def test_quantizer_bad_input():
    q = _quantizer(D=4)
    with pytest.raises(ValueError, match="D=4"):
        q(torch.randn(3, 5))
    with pytest.raises(TypeError):
        q(torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(TypeError):
        q([[0.0] * 4])
    with pytest.raises(ValueError, match="empty"):
        q(torch.randn(0, 4))
    with pytest.raises(ValueError, match="0..7"):
        q.lookup(torch.tensor([8]))
    with pytest.raises(ValueError):
        vq.VectorQuantizer(0, 4)
    with pytest.raises(ValueError):
        vq.VectorQuantizer(8, 4, decay=1.0)
    with pytest.raises(ValueError):
        vq.VectorQuantizer(8, 4, restart_every=-1)


# -- statistics ----------------------------------------------------------------------------------

def test_perplexity_and_usage_edge_cases():
    one = torch.zeros(100, dtype=torch.long)
    assert vq.perplexity(one, 8) == pytest.approx(1.0)
    assert vq.codebook_usage(one, 8) == pytest.approx(1 / 8)
    uniform = torch.arange(8).repeat(5)
    assert vq.perplexity(uniform, 8) == pytest.approx(8.0)
    assert vq.codebook_usage(uniform, 8) == 1.0
    half = torch.tensor([0, 0, 0, 1])
    p = torch.tensor([0.75, 0.25])
    assert vq.perplexity(half, 4) == pytest.approx(math.exp(-(p * p.log()).sum().item()))
    assert vq.perplexity(torch.tensor([[3]]), 4) == pytest.approx(1.0)   # any shape, one element
    assert vq.code_counts(torch.tensor([1, 1, 3]), 4).tolist() == [0, 2, 0, 1]


def test_statistics_bad_input():
    with pytest.raises(ValueError, match="empty"):
        vq.perplexity(torch.tensor([], dtype=torch.long), 4)
    with pytest.raises(ValueError, match="0..3"):
        vq.codebook_usage(torch.tensor([4]), 4)
    with pytest.raises(ValueError):
        vq.codebook_usage(torch.tensor([-1]), 4)
    with pytest.raises(TypeError):
        vq.perplexity(torch.tensor([0.5]), 4)
    with pytest.raises(TypeError):
        vq.perplexity([0, 1], 4)
    with pytest.raises(ValueError):
        vq.perplexity(torch.tensor([0]), 0)


def test_bits_per_image():
    assert vq.bits_per_image(8, 512) == 8 * 8 * 9
    assert vq.bits_per_image((32, 32), 8192) == 1024 * 13
    with pytest.raises(TypeError):
        vq.bits_per_image("8", 512)


# -- VQ-VAE --------------------------------------------------------------------------------------

def _tiny_cfg(**kw):
    base = dict(image_size=16, hidden=8, res_blocks=1, downsample=2, dim=4, num_codes=16)
    base.update(kw)
    return vq.VQVAEConfig(**base)


def test_vqvae_shapes_and_round_trip():
    torch.manual_seed(0)
    model = vq.VQVAE(_tiny_cfg())
    x = torch.rand(3, 3, 16, 16)
    out = model(x)
    assert out["recon"].shape == x.shape
    assert out["indices"].shape == (3, 4, 4)
    assert out["z_e"].shape == out["z_q"].shape == (3, 4, 4, 4)
    assert model.config.grid == (4, 4) and model.config.tokens_per_image == 16
    model.eval()
    ids = model.tokenize(x)
    torch.testing.assert_close(model.decode_indices(ids), model(x)["recon"])


def test_vqvae_tokenize_has_no_side_effects():
    model = vq.VQVAE(_tiny_cfg(ema=True, restart_every=1))
    model.train()
    w = model.quantizer.codebook.weight.clone()
    model.tokenize(torch.rand(2, 3, 16, 16))
    assert torch.equal(w, model.quantizer.codebook.weight) and model.training


def test_vqvae_trains_gradients_reach_encoder():
    torch.manual_seed(0)
    model = vq.VQVAE(_tiny_cfg(ema=False))
    x = torch.rand(4, 3, 16, 16)
    loss, metrics = vq.vqvae_loss(model, x)
    loss.backward()
    assert model.encoder.net[0].weight.grad.abs().sum() > 0
    assert model.quantizer.codebook.weight.grad is not None
    assert set(metrics) >= {"rec", "vq", "usage", "perplexity"}


def test_vqvae_overfits_a_batch():
    torch.manual_seed(0)
    model = vq.VQVAE(_tiny_cfg(ema=True, num_codes=32))
    x = torch.rand(2, 3, 16, 16) * 0.2 + torch.linspace(0, 0.8, 16).view(1, 1, 1, 16)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for _ in range(150):
        loss, m = vq.vqvae_loss(model, x)
        first = m["rec"] if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert m["rec"] < 0.5 * first


def test_continuous_baseline_has_no_codebook_step():
    torch.manual_seed(0)
    model = vq.VQVAE(_tiny_cfg(quantize=False))
    x = torch.rand(2, 3, 16, 16)
    out = model(x)
    assert out["indices"] is None and out["vq_loss"].item() == 0.0
    torch.testing.assert_close(out["z_q"], out["z_e"])
    loss, metrics = vq.vqvae_loss(model, x)
    assert "usage" not in metrics
    with pytest.raises(ValueError, match="no codebook"):
        model.tokenize(x)


def test_vqvae_bad_input():
    model = vq.VQVAE(_tiny_cfg())
    with pytest.raises(ValueError, match="B, C, H, W"):
        model(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="channels"):
        model(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        model(torch.rand(1, 3, 18, 18))
    with pytest.raises(ValueError):
        model.decode_indices(torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(ValueError):
        vq.VQVAEConfig(image_size=30, downsample=2)
    with pytest.raises(TypeError):
        vq.VQVAE({"image_size": 16})


# -- VQ-GAN --------------------------------------------------------------------------------------

def test_patch_discriminator_output_grid():
    d = vq.PatchDiscriminator(3, 8, n_layers=2)
    assert d(torch.rand(2, 3, 32, 32)).shape == (2, 1, 6, 6)
    d3 = vq.PatchDiscriminator(3, 8, n_layers=3)
    assert d3(torch.rand(1, 3, 256, 256)).shape == (1, 1, 30, 30)   # pix2pix's 70x70 PatchGAN


def test_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert vq.hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.5))
    assert vq.hinge_g_loss(fake).item() == pytest.approx(1.0)


def test_adaptive_weight_is_gradient_norm_ratio():
    w = torch.randn(5, requires_grad=True)
    rec = (3 * w).sum()          # gradient 3 per entry
    gan = (0.5 * w).sum()        # gradient 0.5 per entry
    lam = vq.adaptive_weight(rec, gan, w, delta=0.0)
    assert lam.item() == pytest.approx(6.0, rel=1e-5) and not lam.requires_grad
    with pytest.raises(ValueError):
        vq.adaptive_weight(rec, gan, torch.randn(5))


def test_disc_factor_switch():
    assert vq.disc_factor(9, 10) == 0.0 and vq.disc_factor(10, 10) == 1.0


def test_perceptual_distance():
    torch.manual_seed(0)
    net = vq.PerceptualNet(widths=(4, 8), num_outputs=5)
    x = torch.rand(3, 3, 16, 16)
    assert vq.perceptual_distance(net, x, x).item() == pytest.approx(0.0, abs=1e-6)
    d = vq.perceptual_distance(net, x, x.flip(-1), reduction="none")
    assert d.shape == (3,) and torch.all(d > 0)
    assert net(x).shape == (3, 5)
    with pytest.raises(ValueError):
        vq.perceptual_distance(net, x, x[:, :, :8])


def test_vqgan_losses_and_disc_start():
    torch.manual_seed(0)
    cfg = vq.VQGANConfig(image_size=16, hidden=8, res_blocks=1, dim=4, num_codes=16, disc_channels=4,
                         disc_start=5, perceptual_widths=(4, 8))
    model = vq.VQGAN(cfg)
    assert not any(p.requires_grad for p in model.perceptual.parameters())
    x = torch.rand(2, 3, 16, 16)
    loss, out, m = model.generator_loss(x, step=0)
    assert m["lambda"] == 0.0 and m["g_loss"] == 0.0
    loss.backward()
    assert all(p.grad is None for p in model.discriminator.parameters())
    d_loss, _ = model.discriminator_loss(x, out["recon"], step=0)
    assert d_loss.item() == 0.0
    loss, out, m = model.generator_loss(x, step=5)
    assert m["lambda"] > 0
    d_loss, dm = model.discriminator_loss(x, out["recon"], step=5)
    assert d_loss.item() > 0
    gen = {id(p) for p in model.generator_parameters()}
    assert gen.isdisjoint(id(p) for p in model.discriminator.parameters())
    assert gen.isdisjoint(id(p) for p in model.perceptual.parameters())


# -- measures ------------------------------------------------------------------------------------

def test_psnr_and_sharpness():
    x = torch.rand(2, 3, 8, 8)
    assert vq.psnr(x, x) == float("inf")
    assert vq.psnr(x, (x + 0.1).clamp(0, 1)) > 15
    blur = F.avg_pool2d(x, 3, stride=1, padding=1)
    assert torch.all(vq.sharpness(blur) < vq.sharpness(x))
    assert torch.all(vq.sharpness(torch.zeros(2, 3, 8, 8)) == 0)


def test_edge_agreement_cannot_be_won_by_noise():
    torch.manual_seed(0)
    x = torch.zeros(4, 3, 16, 16)
    x[:, :, 4:12, 4:12] = torch.rand(4, 3, 1, 1) * 0.8 + 0.2                # one flat square per image
    assert vq.gradient_magnitude(x).shape == (4, 15, 15)
    torch.testing.assert_close(vq.edge_agreement(x, x), torch.ones(4))
    noise = torch.randn_like(x)
    noisy, noisier = (x + 0.1 * noise).clamp(0, 1), (x + 0.3 * noise).clamp(0, 1)
    blur = F.avg_pool2d(x, 3, stride=1, padding=1)
    assert torch.all(vq.sharpness(noisy) > vq.sharpness(x))               # the old score rewards noise ...
    assert torch.all(vq.edge_agreement(noisier, x) < vq.edge_agreement(noisy, x))   # ... edge agreement
    assert torch.all(vq.edge_agreement(noisy, x) < 0.99)                              # falls with it
    assert torch.all(vq.edge_agreement(blur, x) < 1.0)
    shifted = x.roll(3, dims=-1)                                         # edges in the wrong place
    assert torch.all(vq.edge_agreement(shifted, x) < vq.edge_agreement(blur, x))
    assert torch.all(vq.edge_agreement(2 * x, x) > 0.999)                # a contrast change keeps the edges
    with pytest.raises(ValueError):
        vq.edge_agreement(x, x[:, :, :8])


# -- the codebook viewer -------------------------------------------------------------------------

def test_codebook_stats_and_figure():
    import matplotlib
    matplotlib.use("Agg")
    from vislab.widgets import codebook

    idx = torch.tensor([[[0, 0], [1, 2]], [[0, 3], [3, 3]]])
    stats = codebook.codebook_stats(idx, 6)
    assert stats["counts"].tolist() == [3, 1, 1, 3, 0, 0] and stats["dead"] == 2
    assert stats["usage"] == pytest.approx(4 / 6)
    images = torch.rand(2, 3, 8, 8)
    hist = {"step": [0, 10], "perplexity": [1.0, 3.0], "usage": [0.2, 0.6]}
    fig = codebook.codebook_figure(images, idx, 6, history=hist, image_index=1, code=3)
    assert len(fig.axes) >= 5
    two_runs = {"plain": hist, "fixed": hist}
    codebook.codebook_figure(images, idx, 6, history=two_runs)
    with pytest.raises(ValueError):
        codebook.codebook_figure(images, idx[:1], 6)
    with pytest.raises(ValueError):
        codebook.codebook_figure(images, idx, 6, code=7)
    with pytest.raises(ValueError):
        codebook.codebook_figure(torch.rand(2, 3, 9, 9), idx, 6)


def test_codebook_viewer_builds_a_widget():
    import matplotlib
    matplotlib.use("Agg")
    from vislab.widgets import codebook

    idx = torch.randint(0, 5, (3, 4, 4))
    box = codebook.codebook_viewer(torch.rand(3, 3, 16, 16), idx, 5)
    slider, menu = box.children[0].children
    picture = box.children[1]
    before = picture.value
    slider.value = 2
    assert {k for _, k in menu.options} == set(idx[2].flatten().tolist())
    assert picture.value != before


# -- the recipes (built, not trained) ------------------------------------------------------------

def test_recipes_build_from_json_configs():
    import json

    from vislab import recipes
    from vislab.fusion import EarlyFusion

    for name in ("vqvae_shapes", "vqgan_shapes", "vq_sweep_shapes", "fusion_shapes"):
        r = recipes.get(name)
        config = json.loads(json.dumps(r.config))          # what the checkpoint's JSON stores
        model = r.build(config)
        assert isinstance(model, torch.nn.Module)
    sweep = recipes.get("vq_sweep_shapes").build(recipes.get("vq_sweep_shapes").config)
    assert set(sweep) == {"g4_k16", "g4_k128", "g4_k1024", "g4_cont", "g8_k16", "g8_k128", "g8_k1024", "g8_cont"}
    assert sweep["g4_k16"].config.grid == (4, 4) and not sweep["g8_cont"].config.quantize
    fusion = recipes.get("fusion_shapes").build(recipes.get("fusion_shapes").config)
    assert isinstance(fusion, EarlyFusion) and fusion.tokens_per_image == 64


def test_tokenizer_batches_are_deterministic_and_mixed():
    from vislab.recipes.vq import tokenizer_batch

    a = tokenizer_batch(3, 8, seed=1)
    assert a.shape == (8, 3, 32, 32) and torch.equal(a, tokenizer_batch(3, 8, seed=1))
    assert not torch.equal(a, tokenizer_batch(4, 8, seed=1))
    corner = a[:, :, :2, :2].flatten(1).abs().sum(1)     # clean scenes have black corners more often
    assert corner[:4].sum() < corner[4:].sum()
    images, labels = tokenizer_batch(0, 6, labels=True, max_shapes=1)
    assert set(labels) == {"shape", "color", "size", "position"} and labels["shape"].shape == (6,)


def test_fusion_recipe_uses_the_shipped_tokenizer_and_the_vits_sizes():
    from vislab import recipes
    from vislab.fusion import EarlyFusion, FusionConfig
    from vislab.pretrain import load_or_train
    from vislab.recipes.vq import fusion_world, load_fusion_tokenizer

    r = recipes.get("fusion_shapes")
    model = r.build(r.config)
    meta = load_fusion_tokenizer(model)
    assert meta["name"] == "vqvae_shapes" and not any(p.requires_grad for p in model.tokenizer.parameters())
    source, _ = load_or_train("vqvae_shapes", device="cpu")
    torch.testing.assert_close(model.tokenizer.quantizer.codebook.weight, source.quantizer.codebook.weight)
    bad = EarlyFusion(FusionConfig.from_dict(dict(r.config, tokenizer=dict(r.config["tokenizer"], num_codes=256))))
    with pytest.raises(ValueError, match="vqvae_shapes"):
        load_fusion_tokenizer(bad)
    labels = fusion_world().sample(64, "train", seed=0).labels
    assert set(labels["size"].tolist()) == {1, 2} and set(labels["count"].tolist()) == {1}


def test_vqgan_recipe_starts_from_the_vqvae_and_can_freeze_the_encoder():
    from vislab import recipes
    from vislab.pretrain import load_or_train
    from vislab.recipes.vq import load_vq_warmup, train_vqgan

    r = recipes.get("vqgan_shapes")
    model = r.build(r.config)
    assert load_vq_warmup(model)["name"] == "vqvae_shapes"
    source, _ = load_or_train("vqvae_shapes", device="cpu")
    torch.testing.assert_close(model.quantizer.codebook.weight, source.quantizer.codebook.weight)
    torch.testing.assert_close(model.decoder.last_layer, source.decoder.last_layer)

    torch.manual_seed(0)
    tiny = vq.VQGAN(vq.VQGANConfig(image_size=32, hidden=8, res_blocks=1, dim=4, num_codes=16, disc_channels=4,
                                   disc_start=1, perceptual_widths=(4, 8)))
    enc = {k: v.clone() for k, v in tiny.encoder.state_dict().items()}
    book = tiny.quantizer.codebook.weight.detach().clone()
    dec = tiny.decoder.last_layer.detach().clone()
    res = train_vqgan(tiny, steps=3, batch_size=4, freeze_encoder=True)
    assert res["steps"] == 3
    assert all(torch.equal(v, tiny.encoder.state_dict()[k]) for k, v in enc.items())
    assert torch.equal(book, tiny.quantizer.codebook.weight)
    assert not torch.equal(dec, tiny.decoder.last_layer)

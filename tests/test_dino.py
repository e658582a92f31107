"""vislab.dino: multi-crop, the head, the losses (DINO, Sinkhorn, KoLeo, iBOT), schedules, student/teacher."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vislab.dino import (DINO, DINOConfig, DINOHead, DINOLoss, MultiCropConfig, block_mask, color_jitter, entropy,
                         gaussian_blur, iBOTPatchLoss, koleo_loss, momentum_schedule, multi_crop, random_grayscale,
                         random_resized_crop, sinkhorn_knopp, solarize, teacher_temperature)
from vislab.vit import ViTConfig


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n=4, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=gen(seed))


TINY = DINOConfig(backbone=ViTConfig(image_size=16, patch_size=4, dim=16, depth=1, heads=2, use_mask_token=True),
                  out_dim=12, hidden_dim=16, bottleneck_dim=8, multicrop=MultiCropConfig.shapes(16, n_local=2))


# ------------------------------------------------------------------ augmentation
def test_full_crop_without_flip_is_identity_and_flip_mirrors():
    x = images()
    crop, boxes = random_resized_crop(x, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, generator=gen())
    torch.testing.assert_close(crop, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(4, 4))
    flipped, boxes = random_resized_crop(x, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0, generator=gen())
    torch.testing.assert_close(flipped, x.flip(-1), atol=1e-5, rtol=0)
    assert (boxes[:, 0] > boxes[:, 2]).all()                  # x0 > x1 marks a flip


def test_crop_shapes_boxes_and_determinism():
    x = images(8, 32)
    a, ba = random_resized_crop(x, 12, scale=(0.05, 0.4), generator=gen(3))
    b, bb = random_resized_crop(x, 12, scale=(0.05, 0.4), generator=gen(3))
    assert a.shape == (8, 3, 12, 12)
    assert torch.equal(a, b) and torch.equal(ba, bb)
    assert ba.min() >= 0 and ba.max() <= 1
    w = (ba[:, 2] - ba[:, 0]).abs()
    h = ba[:, 3] - ba[:, 1]
    assert ((w * h) <= 0.4 + 1e-5).all()
    c, _ = random_resized_crop(x, 12, scale=(0.05, 0.4), generator=gen(4))
    assert not torch.equal(a, c)


def test_crop_bad_input():
    with pytest.raises(ValueError):
        random_resized_crop(torch.rand(3, 16, 16), 8)
    with pytest.raises(ValueError):
        random_resized_crop(images(), 0)
    with pytest.raises(ValueError):
        random_resized_crop(images(), 8, scale=(0.5, 1.5))
    with pytest.raises(TypeError):
        random_resized_crop(images(), 8, generator=0)


def test_color_jitter_identity_cases_and_range():
    x = images()
    torch.testing.assert_close(color_jitter(x, p=0.0, generator=gen()), x)
    same = color_jitter(x, 0.0, 0.0, 0.0, 0.0, p=1.0, generator=gen())
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    y = color_jitter(x, p=1.0, generator=gen())
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.allclose(y, x)
    with pytest.raises(ValueError):
        color_jitter(torch.rand(2, 1, 8, 8))


def test_grayscale_blur_solarize():
    x = images()
    g = random_grayscale(x, p=1.0)
    assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 1], g[:, 2])
    torch.testing.assert_close(random_grayscale(x, p=0.0), x)
    torch.testing.assert_close(gaussian_blur(x, p=0.0, generator=gen()), x)
    flat = torch.full((2, 3, 16, 16), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, (1.0, 2.0), p=1.0, generator=gen()), flat)
    blurred = gaussian_blur(x, (1.5, 2.0), p=1.0, generator=gen())
    assert blurred.std() < x.std()                             # blur removes high frequencies
    s = solarize(x, p=1.0)
    torch.testing.assert_close(s, torch.where(x >= 0.5, 1 - x, x))
    with pytest.raises(ValueError):
        gaussian_blur(x, (0.0, 1.0))


def test_multi_crop_views():
    cfg = MultiCropConfig.shapes(32, n_local=3)
    v = multi_crop(images(5, 32), cfg, generator=gen())
    assert len(v) == 5 and len(v.views) == 5 and len(v.boxes) == 5
    assert [t.shape for t in v.globals] == [(5, 3, 32, 32)] * 2
    assert [t.shape for t in v.locals] == [(5, 3, 16, 16)] * 3
    w = multi_crop(images(5, 32), cfg, generator=gen())
    assert all(torch.equal(a, b) for a, b in zip(v.views, w.views))
    with pytest.raises(TypeError):
        multi_crop(images(), {"global_size": 16})
    with pytest.raises(ValueError):
        MultiCropConfig(n_local=-1)


# ------------------------------------------------------------------ head
def test_head_shapes_and_normalisation():
    torch.manual_seed(0)
    head = DINOHead(16, 10, hidden_dim=24, bottleneck_dim=8)
    x = torch.randn(5, 7, 16)
    logits, z = head(x, return_bottleneck=True)
    assert logits.shape == (5, 7, 10) and z.shape == (5, 7, 8)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(5, 7))
    assert logits.abs().max() <= 1 + 1e-5                      # cosines
    with torch.no_grad():
        head.prototypes.mul_(7.0)                              # only directions matter (weight norm, g = 1)
    torch.testing.assert_close(head(x), logits)
    assert not head.gain.requires_grad                         # norm_last_layer=True: gains fixed at 1
    free = DINOHead(16, 10, hidden_dim=24, bottleneck_dim=8, norm_last_layer=False)
    assert free.gain.requires_grad
    with torch.no_grad():
        before = free(x)
        free.gain.mul_(3.0)
    torch.testing.assert_close(free(x), 3.0 * before)           # learned gains sharpen the logits
    with pytest.raises(ValueError):
        DINOHead(16, 0)


# ------------------------------------------------------------------ losses
def test_dino_loss_matches_the_formula_and_skips_same_view():
    torch.manual_seed(0)
    B, K, V = 3, 6, 4
    s = [torch.randn(B, K) for _ in range(V)]
    t = [F.softmax(torch.randn(B, K) / 0.04, -1) for _ in range(2)]
    loss = DINOLoss(K, student_temp=0.1)(s, t)
    terms = [-(t[i] * F.log_softmax(s[v] / 0.1, -1)).sum(-1).mean() for i in range(2) for v in range(V) if v != i]
    torch.testing.assert_close(loss, torch.stack(terms).mean())
    assert len(terms) == 2 * (V - 1)


def test_centering_and_sharpening():
    K = 5
    crit = DINOLoss(K, center_momentum=0.9)
    logits = torch.tensor([[2.0, 0, 0, 0, 0], [1.0, 1, 0, 0, 0]])
    crit.update_center(logits)
    torch.testing.assert_close(crit.center, 0.1 * logits.mean(0, keepdim=True))
    crit.center.copy_(logits.mean(0, keepdim=True))
    t = crit.teacher_targets(logits, 1.0, "center")
    torch.testing.assert_close(t, F.softmax(logits - logits.mean(0), -1))
    sharp = crit.teacher_targets(logits, 0.05, "none")
    soft = crit.teacher_targets(logits, 1.0, "none")
    assert (entropy(sharp) < entropy(soft)).all()
    rows = crit.teacher_targets(torch.randn(8, K), 0.1, "sinkhorn")
    torch.testing.assert_close(rows.sum(-1), torch.ones(8))
    with pytest.raises(ValueError):
        crit.teacher_targets(logits, 0.1, "mean")


def test_sinkhorn_rows_sum_to_one_and_columns_equalise():
    torch.manual_seed(0)
    logits = torch.randn(32, 8)
    logits[:, 0] += 3.0                                       # one prototype would take everything
    q = sinkhorn_knopp(logits, 0.1, iterations=3)
    assert q.shape == (32, 8)
    torch.testing.assert_close(q.sum(1), torch.ones(32), atol=1e-5, rtol=0)
    q50 = sinkhorn_knopp(logits, 0.1, iterations=50)
    torch.testing.assert_close(q50.sum(0), torch.full((8,), 32 / 8), atol=1e-3, rtol=1e-3)
    plain = F.softmax(logits / 0.1, -1)
    assert plain.sum(0)[0] > 20 and q.sum(0)[0] < 10          # equipartition undoes the dominant prototype
    with pytest.raises(ValueError):
        sinkhorn_knopp(torch.randn(3), 0.1)
    with pytest.raises(ValueError):
        sinkhorn_knopp(logits, 0.0)
    with pytest.raises(ValueError):
        sinkhorn_knopp(logits, 0.1, iterations=0)


def test_koleo_matches_brute_force_and_prefers_spread():
    torch.manual_seed(0)
    x = torch.randn(10, 4)
    xn = F.normalize(x, dim=-1)
    d = torch.cdist(xn, xn) + torch.eye(10) * 10
    torch.testing.assert_close(koleo_loss(x), -torch.log(d.min(1).values + 1e-8).mean(), atol=1e-5, rtol=1e-5)
    spread = torch.eye(4)
    clustered = torch.tensor([[1.0, 0.01, 0, 0], [1.0, 0, 0.01, 0], [1.0, 0, 0, 0.01], [1.0, 0.01, 0.01, 0]])
    assert koleo_loss(spread) < koleo_loss(clustered)
    with pytest.raises(ValueError):
        koleo_loss(torch.randn(1, 4))


def test_block_mask():
    m = block_mask(50, (8, 8), ratio=(0.1, 0.5), probability=0.5, generator=gen())
    assert m.shape == (50, 64) and m.dtype == torch.bool
    masked = m.any(1)
    assert 10 < int(masked.sum()) < 40
    frac = m[masked].float().mean(1)
    assert frac.min() >= 4 / 64 and frac.max() <= 0.75
    assert torch.equal(m, block_mask(50, (8, 8), ratio=(0.1, 0.5), probability=0.5, generator=gen()))
    assert not block_mask(5, 4, probability=0.0).any()
    with pytest.raises(ValueError):
        block_mask(0, 4)
    with pytest.raises(ValueError):
        block_mask(4, 4, ratio=(0.5, 1.0))


def test_ibot_loss_formula():
    torch.manual_seed(0)
    B, N, K = 3, 5, 7
    mask = torch.zeros(B, N, dtype=torch.bool)
    mask[0, :2] = True
    mask[2, 1:4] = True
    s = torch.randn(B, N, K)
    t = F.softmax(torch.randn(int(mask.sum()), K), -1)
    crit = iBOTPatchLoss(K, student_temp=0.1)
    per = -(t * F.log_softmax(s[mask] / 0.1, -1)).sum(-1)
    # per image over its masked patches, summed, divided by ALL B crops (DINOv2's forward_masked);
    # the old vislab divided by the 2 masked crops only, which this fails
    want = (per[:2].mean() + per[2:].mean()) / B
    torch.testing.assert_close(crit(s, t, mask), want)
    torch.testing.assert_close(crit(s[mask], t, mask), want)
    assert float(crit(s, t[:0], torch.zeros(B, N, dtype=torch.bool))) == 0.0
    with pytest.raises(ValueError):
        crit(s, t, mask[:, :3])


def test_schedules():
    assert momentum_schedule(0, 100, 0.996) == pytest.approx(0.996)
    assert momentum_schedule(100, 100, 0.996) == pytest.approx(1.0)
    assert momentum_schedule(50, 100, 0.996) == pytest.approx(0.998)
    assert teacher_temperature(0, 10, 0.04, 0.07) == pytest.approx(0.04)
    assert teacher_temperature(50, 10, 0.04, 0.07) == pytest.approx(0.07)
    # DINO's and DINOv2's warm-up is np.linspace(start, end, W): `end` already at step W - 1
    # (the old vislab gave 0.067 there, and 0.055 at step 5 instead of 0.0567)
    ref = np.linspace(0.04, 0.07, 10)
    assert [teacher_temperature(s, 10, 0.04, 0.07) for s in range(10)] == pytest.approx(ref.tolist())
    assert teacher_temperature(0, 1, 0.04, 0.07) == pytest.approx(0.04)   # linspace(a, b, 1) = [a]
    with pytest.raises(ValueError):
        momentum_schedule(0, 0)


# ------------------------------------------------------------------ student and teacher
def test_teacher_starts_equal_and_gets_no_gradient():
    torch.manual_seed(0)
    m = DINO(TINY)
    for pt, ps in zip(m.teacher.parameters(), m.student.parameters()):
        assert torch.equal(pt, ps) and not pt.requires_grad
    v = multi_crop(images(4, 16), TINY.multicrop, generator=gen())
    masks = block_mask(8, TINY.backbone.grid, probability=1.0, generator=gen())
    loss, metrics = m.loss(v.views, masks, teacher_temp=0.04)
    assert torch.isfinite(loss)
    assert {"dino", "ibot", "koleo", "teacher_entropy", "batch_entropy", "kl"} <= set(metrics)
    loss.backward()
    assert all(p.grad is None for p in m.teacher.parameters())
    assert m.student["backbone"].mask_token.grad is not None      # iBOT reaches the mask token
    assert m.dino_loss.center.abs().sum() > 0 and m.ibot_loss.center.abs().sum() > 0


def test_koleo_is_summed_over_the_two_global_crops():
    """DINOv2 adds the KoLeo terms of the two global crops (ssl_meta_arch.forward_backward);
    the old vislab averaged them (half the term), which this fails."""
    torch.manual_seed(0)
    m = DINO(TINY.replace(ibot_weight=0.0, koleo_weight=0.1))
    v = multi_crop(images(6, 16), TINY.multicrop, generator=gen())
    _, metrics = m.loss(v.views, None, teacher_temp=0.04)
    with torch.no_grad():
        c1, _ = m._run(m.student, v.views[0])
        c2, _ = m._run(m.student, v.views[1])
    want = float(koleo_loss(c1) + koleo_loss(c2))
    assert metrics["koleo"] == pytest.approx(want, rel=1e-5)


def test_ema_update():
    torch.manual_seed(0)
    m = DINO(TINY)
    with torch.no_grad():
        for p in m.student.parameters():
            p.add_(1.0)
    before = [p.clone() for p in m.teacher.parameters()]
    m.update_teacher(1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, m.teacher.parameters()))
    m.update_teacher(0.75)
    for a, t, s in zip(before, m.teacher.parameters(), m.student.parameters()):
        torch.testing.assert_close(t, 0.75 * a + 0.25 * s)
    with pytest.raises(ValueError):
        m.update_teacher(1.5)


def test_config_round_trip_and_validation():
    d = TINY.to_dict()
    assert DINOConfig.from_dict(d) == TINY
    assert DINO(d).config == TINY
    with pytest.raises(ValueError):
        DINOConfig(centering="mean")
    with pytest.raises(ValueError):
        DINOConfig.from_dict({**d, "bogus": 1})
    assert DINOConfig(backbone=ViTConfig(image_size=16, patch_size=4, dim=16, depth=1, heads=2)).backbone.use_mask_token
    with pytest.raises(TypeError):
        DINO(ViTConfig())


def test_train_dino_runs_and_moves_the_teacher():
    from vislab.recipes.dino import train_dino
    from vislab.shapes import ShapeWorld

    torch.manual_seed(0)
    m = DINO(TINY)
    start = [p.clone() for p in m.teacher.parameters()]
    hist = train_dino(m, 3, batch_size=4, source=ShapeWorld(image_size=16), progress=False)
    assert hist.steps_done == 3 and math.isfinite(hist.last("loss"))
    assert any(not torch.equal(a, b) for a, b in zip(start, m.teacher.parameters()))
    assert hist.metrics["teacher_temp"][0] == pytest.approx(TINY.warmup_teacher_temp)


def test_invert_views():
    cfg = MultiCropConfig.shapes(16, n_local=1, jitter_p=0.0, grayscale_p=0.0, blur_p=(0.0, 0.0, 0.0), solarize_p=0.0,
                                 global_scale=(1.0, 1.0), flip_p=0.0, invert_p=1.0)
    x = images(2, 16)
    inverted = multi_crop(x, cfg, generator=gen()).globals[0]
    plain = multi_crop(x, MultiCropConfig(**{**cfg.__dict__, "invert_p": 0.0}), generator=gen()).globals[0]
    torch.testing.assert_close(inverted, 1 - plain)            # the first view draws the same crop


def test_patch_pca():
    from vislab.dino import patch_pca

    torch.manual_seed(0)
    feats = torch.randn(3, 16, 8)
    feats[:, :4] += 5.0                                          # a minority "object" direction
    rgb, fg = patch_pca(feats)
    assert rgb.shape == (3, 16, 3) and rgb.min() >= 0 and rgb.max() <= 1 and fg.all()
    rgb, fg = patch_pca(feats, foreground_threshold=0.5)
    assert fg[:, :4].all() and not fg[:, 4:].any()               # the threshold keeps the minority side
    assert (rgb[~fg] == 0).all()
    with pytest.raises(ValueError):
        patch_pca(torch.randn(16, 8))


def test_foreground_iou():
    from vislab.dino import foreground_iou

    pred = torch.tensor([[True, True, False, False], [False, False, False, False], [True, False, False, False]])
    true = torch.tensor([[True, False, False, False], [False, False, False, False], [False, True, False, False]])
    torch.testing.assert_close(foreground_iou(pred, true), torch.tensor([0.5, 1.0, 0.0]))
    with pytest.raises(TypeError, match="bool"):
        foreground_iou(pred.float(), true)
    with pytest.raises(ValueError, match="same"):
        foreground_iou(pred[:, :3], true)


def test_viewers_build_and_draw():
    import matplotlib

    matplotlib.use("Agg")
    from vislab.vit import ViT
    from vislab.widgets.dino import (cls_attention_figure, cls_attention_maps, cls_attention_viewer, crops_figure,
                                     multicrop_viewer, pca_figure)
    from vislab.dino import patch_pca

    x = images(2, 16)
    assert crops_figure(x[0], TINY.multicrop, seed=1) is not None
    assert multicrop_viewer({"a": x[0], "b": x[1]}, TINY.multicrop) is not None
    torch.manual_seed(0)
    vit = ViT(TINY.backbone).eval()
    out = vit.forward_intermediates(x, return_attention=True)
    maps = cls_attention_maps(out["attention"][-1], out["grid"])
    assert maps.shape == (2, 2, 4, 4)
    torch.testing.assert_close(maps.sum((-1, -2)), 1 - out["attention"][-1][:, :, 0, 0])   # CLS row minus itself
    assert cls_attention_figure(x[0], maps[0]) is not None
    assert cls_attention_viewer(x, out["attention"], out["grid"]) is not None
    rgb, _ = patch_pca(out["patches"])
    assert pca_figure(x, [rgb, rgb], out["grid"], titles=["a", "b"]) is not None
    with pytest.raises(ValueError):
        cls_attention_maps(out["attention"][-1], (3, 3))
    with pytest.raises(ValueError):
        pca_figure(x, rgb[:, :5], out["grid"])
    with pytest.raises(TypeError):
        multicrop_viewer(x[0], {"global_size": 16})

"""Tests for vislab.eva: block masking, the negative-cosine loss, teacher targets, the EVA
student, and stage 2 (a CLIP whose image tower starts from a pretrained encoder)."""

import pytest
import torch

from vislab.clip import CLIP, CLIPConfig, TextConfig, clip_loss
from vislab.eva import (EVA, EVAConfig, block_masking, clip_from_encoder, clip_patch_targets, copy_encoder,
                        negative_cosine_loss, resample_patch_features)
from vislab.mae import MAE, MAEConfig, sincos_pos_embed_2d
from vislab.vit import ViT, ViTConfig

ENC = ViTConfig(image_size=16, patch_size=4, dim=32, depth=2, heads=4)
TEXT = TextConfig(vocab_size=20, context_length=8, width=32, depth=1, heads=4)


def tiny_clip(vision=None, embed_dim=24):
    return CLIP(CLIPConfig(vision=vision or ViTConfig(image_size=16, patch_size=4, dim=32, depth=1, heads=4),
                           text=TEXT, embed_dim=embed_dim)).eval()


def ids(B, L=8):
    t = torch.randint(4, 20, (B, L))
    t[:, -1] = TEXT.eot_token_id
    return t


# ---------------------------------------------------------------- block masking
@pytest.mark.parametrize("grid,ratio", [(8, 0.4), ((8, 8), 0.5), ((6, 10), 0.3), (14, 0.4)])
def test_block_masking_counts(grid, ratio):
    mask = block_masking(16, grid, ratio, generator=torch.Generator().manual_seed(0))
    gh, gw = (grid, grid) if isinstance(grid, int) else grid
    assert mask.shape == (16, gh * gw) and mask.dtype == torch.bool
    target = round(gh * gw * ratio)
    counts = mask.sum(1)
    assert (counts <= target).all()                      # never more than asked
    assert counts.float().mean() >= 0.85 * target        # and close to it on average


def test_block_masking_makes_blocks_and_is_reproducible():
    a = block_masking(8, 8, 0.4, generator=torch.Generator().manual_seed(5))
    b = block_masking(8, 8, 0.4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    # blocks: a masked patch usually has a masked 4-neighbour (random masking at 40% would give ~1 - 0.6^4 = 87%;
    # blocks of >= 4 patches give far more)
    m = a.reshape(8, 8, 8).float()
    neigh = torch.zeros_like(m)
    neigh[:, 1:] += m[:, :-1]
    neigh[:, :-1] += m[:, 1:]
    neigh[:, :, 1:] += m[:, :, :-1]
    neigh[:, :, :-1] += m[:, :, 1:]
    share = ((neigh > 0) & (m > 0)).sum() / m.sum()
    assert share > 0.95


def test_block_masking_bad_input():
    with pytest.raises(ValueError, match="mask_ratio"):
        block_masking(2, 8, 1.2)
    with pytest.raises(ValueError, match="batch"):
        block_masking(0, 8, 0.4)


# ---------------------------------------------------------------- loss
def test_negative_cosine_loss():
    t = torch.randn(2, 6, 5)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, :3] = True
    torch.testing.assert_close(negative_cosine_loss(3.0 * t, t, mask), torch.tensor(-1.0))   # scale-free, perfect
    torch.testing.assert_close(negative_cosine_loss(-t, t, mask), torch.tensor(1.0))
    pred = torch.randn(2, 6, 5)
    pred2 = pred.clone()
    pred2[:, 3:] = 7.0                                    # unmasked positions do not count
    assert torch.equal(negative_cosine_loss(pred, t, mask), negative_cosine_loss(pred2, t, mask))
    manual = -torch.nn.functional.cosine_similarity(pred[:, :3], t[:, :3], dim=-1).mean()
    torch.testing.assert_close(negative_cosine_loss(pred, t, mask), manual)


def test_negative_cosine_loss_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        negative_cosine_loss(torch.randn(1, 4, 3), torch.randn(1, 4, 5), torch.ones(1, 4))
    with pytest.raises(ValueError, match="selects no patch"):
        negative_cosine_loss(torch.randn(1, 4, 3), torch.randn(1, 4, 3), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="mask must be"):
        negative_cosine_loss(torch.randn(1, 4, 3), torch.randn(1, 4, 3), torch.ones(4))


# ---------------------------------------------------------------- teacher targets
def test_clip_patch_targets_are_projected_patch_tokens():
    torch.manual_seed(0)
    clip = tiny_clip()
    images = torch.rand(3, 3, 16, 16)
    targets = clip_patch_targets(clip, images, grid=(4, 4))
    assert targets.shape == (3, 16, 24)
    manual = clip.visual_projection(clip.visual.forward_features(images)[:, 1:])
    torch.testing.assert_close(targets, manual)
    # the mean of the patch targets is not the CLIP image embedding (that is the CLS token), but both live in E
    assert clip.encode_image(images).shape == (3, 24)


def test_clip_patch_targets_resize_and_resample():
    torch.manual_seed(0)
    clip = tiny_clip(ViTConfig(image_size=32, patch_size=8, dim=32, depth=1, heads=4))   # 4x4 grid at 32 px
    out = clip_patch_targets(clip, torch.rand(2, 3, 16, 16), grid=(8, 8))              # images resized to 32
    assert out.shape == (2, 64, 24)
    feats = torch.randn(2, 4, 3)
    same = resample_patch_features(feats, (2, 2), (2, 2))
    assert same is feats
    up = resample_patch_features(torch.ones(1, 4, 3), (2, 2), (4, 4))
    torch.testing.assert_close(up, torch.ones(1, 16, 3))
    with pytest.raises(TypeError, match="vislab CLIP"):
        clip_patch_targets(ViT(ENC), torch.rand(1, 3, 16, 16))


# ---------------------------------------------------------------- the student
def test_eva_forward_loss_and_features():
    torch.manual_seed(0)
    model = EVA(EVAConfig(encoder=ENC, teacher_dim=24))
    assert model.config.encoder.use_mask_token and model.encoder.mask_token is not None
    assert not model.encoder.pos_embed.requires_grad
    torch.testing.assert_close(model.encoder.pos_embed[0], sincos_pos_embed_2d(32, 4))
    images = torch.rand(2, 3, 16, 16)
    mask = model.sample_mask(2, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (2, 16) and mask.sum(1).max() <= round(16 * 0.4)
    out = model(images, mask)
    assert out.shape == (2, 16, 24)
    assert not torch.allclose(out, model(images))          # masking changes what the student sees
    loss = model.loss(images, torch.randn(2, 16, 24), mask)
    loss.backward()
    assert model.encoder.mask_token.grad is not None and model.encoder.mask_token.grad.abs().sum() > 0
    assert model.features(images).shape == (2, 32) and model.features(images, "cls").shape == (2, 32)
    with pytest.raises(ValueError, match="pool"):
        model.features(images, "max")


def test_eva_learns_teacher_features():
    torch.manual_seed(0)
    teacher = tiny_clip()
    model = EVA(EVAConfig(encoder=ENC, teacher_dim=24))
    images = torch.rand(8, 3, 16, 16)
    targets = clip_patch_targets(teacher, images, (4, 4))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(40):
        loss = model.loss(images, targets, model.sample_mask(8, generator=g))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.2                     # cosine up by more than 0.2


def test_eva_config_round_trip_and_bad_input():
    cfg = EVAConfig(encoder=ENC, teacher_dim=24)
    assert EVAConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="plain ViT"):
        EVAConfig(encoder=ENC.replace(class_token=False, pooling="mean"))
    with pytest.raises(ValueError, match="teacher_dim"):
        EVAConfig(encoder=ENC, teacher_dim=0)
    with pytest.raises(TypeError):
        EVA(ENC)


# ---------------------------------------------------------------- stage 2
def test_clip_from_eva_encoder_keeps_its_features():
    torch.manual_seed(0)
    eva = EVA(EVAConfig(encoder=ENC, teacher_dim=24)).eval()
    clip = clip_from_encoder(eva.encoder, TEXT, embed_dim=16).eval()
    images = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(clip.visual.forward_features(images), eva.encoder.forward_features(images))
        logits = clip(images, ids(2))
    assert logits.shape == (2, 2)
    assert clip.visual.mask_token is None and clip.visual.pos_embed.requires_grad
    loss = clip_loss(clip.encode_image(images), clip.encode_text(ids(2)), clip.logit_scale.exp())
    loss.backward()
    assert clip.visual.blocks[0].attn.qkv.weight.grad is not None


def test_clip_from_mae_encoder_and_scratch():
    torch.manual_seed(0)
    mae = MAE(MAEConfig(encoder=ENC, decoder_dim=16, decoder_depth=1, decoder_heads=2))
    clip = clip_from_encoder(mae.encoder, TEXT)
    torch.testing.assert_close(clip.visual.patch_embed.proj.weight, mae.encoder.patch_embed.proj.weight)
    scratch = clip_from_encoder(None, TEXT, vision=ENC)
    torch.testing.assert_close(scratch.visual.pos_embed[0], sincos_pos_embed_2d(32, 4))
    assert scratch.visual.pos_embed.requires_grad
    with pytest.raises(ValueError, match="from scratch"):
        clip_from_encoder(None, TEXT)


def test_copy_encoder_refuses_mismatch():
    with pytest.raises(ValueError, match="encoders differ"):
        copy_encoder(ViT(ENC), ViT(ENC.replace(depth=3)))
    with pytest.raises(TypeError):
        copy_encoder(torch.nn.Linear(2, 2), ViT(ENC))


# ---------------------------------------------------------------- chapter 6's recipes
def test_recipes_build_and_match_the_teacher():
    from vislab import recipes
    from vislab.recipes import mae as R

    names = ("mae_shapes", "eva_shapes", "mim_finetune_shapes", "eva_clip_shapes")
    models = {n: recipes.get(n).build(recipes.get(n).config) for n in names}
    # every encoder in the chapter has the same architecture and the same fixed sin-cos start
    mae_enc, eva_enc = models["mae_shapes"].encoder, models["eva_shapes"].encoder
    torch.testing.assert_close(mae_enc.pos_embed, eva_enc.pos_embed)
    for clip in models["eva_clip_shapes"].values():
        assert clip.visual.config == mae_enc.config
        torch.testing.assert_close(clip.visual.pos_embed, mae_enc.pos_embed)
    for clf in models["mim_finetune_shapes"].values():
        assert clf.config.replace(num_classes=0, pooling="cls") == mae_enc.config
    # EVA's head must have the teacher's embedding width
    teacher = recipes.get(R.TEACHER)
    assert teacher.build(teacher.config).config.embed_dim == R.EVA_CONFIG["teacher_dim"]
    # the scenes: one shape, black background, continuous positions
    batch = R.world().sample(4, "test", seed=0)
    assert batch.images.shape == (4, 3, 32, 32) and batch.labels["count"].eq(1).all()


def test_teacher_recipe_is_clip_shapes_on_the_chapter_scenes():
    from vislab import recipes
    from vislab.recipes import clip as C
    from vislab.recipes import eva as E
    from vislab.recipes import mae as R

    assert R.TEACHER == "eva_teacher_shapes" and E.TEACHER_CONFIG["init"] == "clip_shapes"
    teacher, clip3 = recipes.get("eva_teacher_shapes"), recipes.get("clip_shapes")
    assert teacher.build(teacher.config).config == clip3.build(clip3.config).config      # same architecture
    assert C.tokenizer(teacher.config).vocab_size == C.tokenizer(clip3.config).vocab_size
    w = C.world(teacher.config)
    assert w.opts["position"] == "continuous" and w == R.world()                      # the student's scenes

"""Chapter 6's checkpoints: MAE, EVA, their fine-tuned classifiers, and CLIP alignment from them.

    python -m vislab.pretrain mae_shapes            # MAE, 75% random masking, pixel targets
    python -m vislab.pretrain eva_teacher_shapes    # EVA's teacher: clip_shapes adapted to these scenes
    python -m vislab.pretrain eva_shapes            # EVA: 40% block masking, the teacher's patch features
    python -m vislab.pretrain mim_finetune_shapes   # shape classifiers fine-tuned from scratch / MAE / EVA
    python -m vislab.pretrain eva_clip_shapes       # stage 2: CLIP from scratch / MAE / EVA, zero-shot curves

Order: ``eva_teacher_shapes`` starts from chapter 3's ``clip_shapes`` (see
:mod:`vislab.recipes.eva`), ``eva_shapes`` needs that teacher; the last two need
``mae_shapes`` and ``eva_shapes``. Each run is budgeted in steps; one thread.

Data: 32×32 ShapeWorld, one upright shape at a continuous position on a black background (chapter
3's scenes without the 3×3 grid, see :func:`world`), so that a caption names one shape and
zero-shot shape classification is well defined. All encoders share one architecture
(:data:`ENCODER`: patch 4, width 64, 4 blocks) and one initialisation rule (ViT init, fixed
sin-cos position table), so the comparisons change only the pretraining objective.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vislab.clip import TextConfig, clamp_logit_scale, clip_loss, zero_shot_classifier, zero_shot_logits
from vislab.eva import EVA, EVAConfig, clip_from_encoder, clip_patch_targets, copy_encoder
from vislab.mae import MAE, MAEConfig, set_sincos_pos_embed, visible_mean_baseline, masked_patch_mse
from vislab.probes import extract_features, linear_probe_accuracy
from vislab.recipes import Recipe, register
from vislab.shapes import SHAPES, ShapeWorld
from vislab.text import shapeworld_tokenizer
from vislab.train import fit
from vislab.vit import ViT, ViTConfig

__all__ = ["IMAGE_SIZE", "ENCODER", "world", "image_batches", "probe_sets", "encoder_features",
           "probe_table", "finetune_sets", "reconstruction_errors", "TEACHER", "load_teacher", "zero_shot_accuracy",
           "warmup_cosine", "FINETUNE_STEPS", "ALIGN_STEPS", "MIM_STEPS", "EVA_STEPS"]

IMAGE_SIZE = 32
ENCODER = dict(image_size=IMAGE_SIZE, patch_size=4, dim=64, depth=4, heads=4)
TEACHER = "eva_teacher_shapes"          # chapter 3's clip_shapes adapted to these scenes (recipes/eva.py)
MIM_STEPS = 2400                        # MAE's steps
EVA_STEPS = MIM_STEPS                   # EVA's: the same steps and images (its steps cost ~1.5x: all 64
                                        # tokens through the encoder); at 1000 steps its shape probe was 38%
MIM_BATCH = 64
POOL_SIZE = 12288                       # pretraining images (labels never used)
FINETUNE_STEPS = 600
FINETUNE_BATCH = 64
FINETUNE_TRAIN = 8000                   # labelled scenes for fine-tuning (and the probe it is compared with)
ALIGN_STEPS = 400
ALIGN_BATCH = 64
ALIGN_EVAL_EVERY = 25
PROBE_TRAIN, PROBE_TEST = 2000, 1000
PROBE_LABELS = ("shape", "color", "size", "position")


def world() -> ShapeWorld:
    """The chapter's scenes: 32×32, one upright shape on a black background, as in chapter 3's
    ``clip_shapes``, but at a *continuous* position instead of the 3×3 grid.

    Why: with grid positions a linear probe on raw pixels already reads the shape (~88%), so no
    encoder could show what it adds; continuous positions bring that down to ~23%. That shift is
    enough to blind ``clip_shapes`` (zero-shot shape ~38% here, 99% on its own scenes), so EVA's
    teacher is ``clip_shapes`` continued on these scenes (``eva_teacher_shapes``,
    :mod:`vislab.recipes.eva`). Textured backgrounds and pixel noise are
    left out too: their pixel-level detail cannot be predicted from neighbouring patches, so even a
    perfect predictor of each hidden patch's mean colour keeps more than half of the visible-mean
    baseline's error there (chapter 6, section 5).
    """
    return ShapeWorld(image_size=IMAGE_SIZE, nuisance="none", position="continuous", max_shapes=1)


def image_batches(images: torch.Tensor, batch_size: int, seed: int, device="cpu", captions=None):
    """``batches(step)`` for :func:`vislab.train.fit`: a random batch of ``images`` (and the same rows
    of ``captions``, any tensor with one row per image: token ids, teacher targets), deterministic
    in ``(seed, step)``."""
    def batches(step):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(len(images), (batch_size,), generator=g)
        x = images[idx].to(device)
        return x if captions is None else (x, captions[idx].to(device))
    return batches


def warmup_cosine(optimizer, steps: int, warmup: int):
    """Linear warmup for ``warmup`` steps, then cosine decay to zero (MAE, CLIP, EVA all use it)."""
    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _adamw(model, lr, wd=0.05, betas=(0.9, 0.95)):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, betas=betas,
                             weight_decay=wd)


# ----------------------------------------------------------------------------------------------
# Evaluation shared by the recipes and the chapter
# ----------------------------------------------------------------------------------------------

def probe_sets(seed: int = 0) -> dict:
    """Labelled probe data: ``{"train": ShapeBatch (2000), "test": ShapeBatch (1000)}``."""
    w = world()
    return {"train": w.sample(PROBE_TRAIN, "train", seed=seed + 1), "test": w.sample(PROBE_TEST, "test", seed=seed)}


def finetune_sets(seed: int = 0) -> dict:
    """Labelled data of the linear-probe vs fine-tuning comparison: ``{"train": ShapeBatch (8000),
    "test": ShapeBatch (1000, the probes' test scenes)}``. With 2000 labels, 300 steps fine-tuning
    a ViT this small from any start stayed near its linear probe (26-41% shape accuracy from scratch,
    mae_shapes, and a 1000-step eva_shapes)."""
    w = world()
    return {"train": w.sample(FINETUNE_TRAIN, "train", seed=seed + 1), "test": w.sample(PROBE_TEST, "test", seed=seed)}


def encoder_features(encoder: ViT, images: torch.Tensor, device="cpu", pool: str = "mean"):
    """Frozen features ``(n, D)`` of a ViT: mean of the final-normed patch tokens (or CLS)."""
    def fn(x):
        tokens = encoder.forward_features(x)                                  # (b, 1 + N, D)
        return tokens[:, 1:].mean(1) if pool == "mean" else tokens[:, 0]     # (b, D)
    was = encoder.training
    encoder.eval()
    out = extract_features(fn, images, device=device)
    encoder.train(was)
    return out


def probe_table(features: dict, sets: dict, labels=PROBE_LABELS) -> dict:
    """``{name: {label: linear-probe accuracy}}`` for ``features = {name: (train (n, D), test (m, D))}``."""
    out = {}
    for name, (tr, te) in features.items():
        out[name] = {lab: round(linear_probe_accuracy(tr, sets["train"].labels[lab], te, sets["test"].labels[lab],
                                                      max_iter=500), 4) for lab in labels}
    return out


@torch.no_grad()
def reconstruction_errors(model: MAE, images: torch.Tensor, seed: int = 0, device="cpu", chunk: int = 256,
                          mask_ratio: float | None = None) -> dict:
    """Masked-patch pixel MSE of the MAE and of the visible-mean baseline, same masks (seeded);
    ``mask_ratio`` defaults to the model's."""
    g = torch.Generator().manual_seed(seed)
    model.eval()
    err, base, n = 0.0, 0.0, 0
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].to(device)
        out = model(x, mask_ratio=mask_ratio, generator=g)
        pix = model.pixels(out["pred"], x)
        err += masked_patch_mse(pix, x, out["mask"], model.patch_size).item() * len(x)
        base += masked_patch_mse(visible_mean_baseline(x, out["mask"], model.patch_size), x, out["mask"],
                                 model.patch_size).item() * len(x)
        n += len(x)
    return {"mae_mse": err / n, "baseline_mse": base / n, "ratio": err / base}


def load_teacher(device="cpu"):
    """EVA's teacher, frozen: chapter 3's CLIP adapted to these scenes (``eva_teacher_shapes``,
    :mod:`vislab.recipes.eva`): ``(clip, meta)``."""
    from vislab.pretrain import load_or_train

    teacher, meta = load_or_train(TEACHER, device=device)
    teacher.requires_grad_(False)
    return teacher.eval(), meta


@torch.no_grad()
def zero_shot_accuracy(clip, tokenizer, images: torch.Tensor, labels: torch.Tensor,
                       templates=("a photo of a {}",), device="cpu") -> float:
    """Zero-shot shape accuracy of a CLIP on ``images`` with ``SHAPES`` prompts."""
    was = clip.training
    clip.eval()
    classifier = zero_shot_classifier(clip, tokenizer, SHAPES, templates, device=device)   # (7, E)
    feats = extract_features(clip.encode_image, images, device=device)                     # (n, E)
    pred = zero_shot_logits(torch.from_numpy(feats), classifier.cpu()).argmax(1)
    clip.train(was)
    return float((pred == labels.cpu()).float().mean())


# ----------------------------------------------------------------------------------------------
# mae_shapes
# ----------------------------------------------------------------------------------------------

MAE_CONFIG = dict(encoder=ENCODER, decoder_dim=64, decoder_depth=2, decoder_heads=4, mask_ratio=0.75,
                  norm_pix_loss=False)


def _build_mae(config: dict) -> MAE:
    return MAE(MAEConfig.from_dict(config))


def _pool(seed: int) -> torch.Tensor:
    return world().sample(POOL_SIZE, "train", seed=seed + 100).images          # (n, 3, 32, 32)


def _train_mae(model: MAE, seed, device, max_seconds, steps=MIM_STEPS, scale=1):
    # scale: a multiple of the step budget (4 on a GPU via `python -m vislab.pretrain`)
    steps = steps * scale
    pool = _pool(seed)
    opt = _adamw(model, 1e-3)
    g = torch.Generator().manual_seed(seed)
    hist = fit(model, lambda m, x: m(x, generator=g)["loss"], image_batches(pool, MIM_BATCH, seed, device), opt,
               steps, scheduler=warmup_cosine(opt, steps, steps // 20), grad_clip=1.0, max_seconds=max_seconds,
               desc="MAE", progress=False, log_every=10)
    test = world().sample(1024, "test", seed=seed + 7).images
    metrics = {k: round(v, 6) for k, v in reconstruction_errors(model, test, seed=123, device=device).items()}
    metrics.update(steps=hist.steps_done, stopped_early=hist.stopped_early, images_seen=hist.steps_done * MIM_BATCH,
                   final_loss=round(hist.smoothed("loss")[-1], 5), loss_curve=_curve(hist))
    return metrics


def _curve(hist, every: int = 10) -> dict:
    sm = hist.smoothed("loss")
    return {"step": hist.steps[::every], "loss": [round(v, 5) for v in sm[::every]]}


register(Recipe(
    name="mae_shapes", build=_build_mae, train=_train_mae, config=MAE_CONFIG, seed=0, dtype="float16",
    description="MAE on 32 px ShapeWorld: ViT (P4, D64, 4 blocks) encoder, 2-block decoder, 75% masking, pixels"))


# ----------------------------------------------------------------------------------------------
# eva_shapes
# ----------------------------------------------------------------------------------------------

EVA_CONFIG = dict(encoder=ENCODER, teacher_dim=64, mask_ratio=0.4, min_block=4)


def _build_eva(config: dict) -> EVA:
    return EVA(EVAConfig.from_dict(config))


def _train_eva(model: EVA, seed, device, max_seconds, steps=EVA_STEPS, scale=1):
    # scale: a multiple of the step budget (4 on a GPU via `python -m vislab.pretrain`)
    steps = steps * scale
    teacher, tmeta = load_teacher(device)
    if teacher.config.embed_dim != model.config.teacher_dim:
        raise ValueError(f"the teacher's embedding width is {teacher.config.embed_dim}, the recipe's teacher_dim "
                         f"{model.config.teacher_dim}: update EVA_CONFIG")
    pool = _pool(seed)
    grid = model.config.encoder.grid
    # The teacher is frozen and sees intact images, so its targets are computed once per pool
    # image (kept in float16) rather than for every batch: 12288 teacher passes instead of 76800.
    with torch.no_grad():
        targets = torch.cat([clip_patch_targets(teacher, pool[i:i + 512].to(device), grid).half().cpu()
                             for i in range(0, len(pool), 512)])                 # (n, N, E)
    g = torch.Generator().manual_seed(seed)

    def loss_fn(m, batch):
        x, t = batch
        mask = m.sample_mask(x.shape[0], generator=g).to(x.device)            # (B, N)
        loss = m.loss(x, t.float(), mask)
        return loss, {"cosine": -loss.item()}

    opt = _adamw(model, 1e-3)
    hist = fit(model, loss_fn, image_batches(pool, MIM_BATCH, seed, device, captions=targets), opt, steps,
               scheduler=warmup_cosine(opt, steps, steps // 20), grad_clip=1.0, max_seconds=max_seconds,
               desc="EVA", progress=False, log_every=10)
    model.eval()
    test = world().sample(512, "test", seed=seed + 7).images.to(device)
    with torch.no_grad():
        mask = model.sample_mask(len(test), generator=torch.Generator().manual_seed(123)).to(device)
        cos = -model.loss(test, clip_patch_targets(teacher, test, grid), mask).item()
    return {"steps": hist.steps_done, "stopped_early": hist.stopped_early, "images_seen": hist.steps_done * MIM_BATCH,
            "test_masked_cosine": round(cos, 4), "final_loss": round(hist.smoothed("loss")[-1], 5),
            "loss_curve": _curve(hist), "teacher": TEACHER, "teacher_seconds": tmeta.get("seconds"),
            "teacher_command": tmeta.get("command")}


register(Recipe(
    name="eva_shapes", build=_build_eva, train=_train_eva, config=EVA_CONFIG, seed=0, dtype="float16",
    description="EVA on 32 px ShapeWorld: same ViT, 40% block masking, predicts eva_teacher_shapes' patch features, "
                "2400 steps"))


# ----------------------------------------------------------------------------------------------
# mim_finetune_shapes: linear probe vs fine-tuning needs fine-tuned encoders
# ----------------------------------------------------------------------------------------------

INITS = ("scratch", "mae", "eva")
FINETUNE_CONFIG = dict(encoder=ENCODER, num_classes=len(SHAPES), pooling="mean", inits=list(INITS),
                       steps=FINETUNE_STEPS, batch=FINETUNE_BATCH, lr=1e-3, label="shape",
                       train_images=FINETUNE_TRAIN, eval_every=100)


def _classifier_config(config: dict) -> ViTConfig:
    return ViTConfig(**config["encoder"], num_classes=config["num_classes"], pooling=config["pooling"])


def _build_finetune(config: dict) -> nn.ModuleDict:
    models = nn.ModuleDict({name: ViT(_classifier_config(config)) for name in config["inits"]})
    for m in models.values():
        set_sincos_pos_embed(m, trainable=True)
    return models


def pretrained_encoder(name: str, device="cpu") -> ViT | None:
    """The encoder of ``mae_shapes`` / ``eva_shapes`` (loaded or trained), None for "scratch"."""
    if name == "scratch":
        return None
    from vislab.pretrain import load_or_train

    model, _ = load_or_train({"mae": "mae_shapes", "eva": "eva_shapes"}[name], device=device)
    return model.encoder


def _train_finetune(models: nn.ModuleDict, seed, device, max_seconds, scale=1):
    # scale: a multiple of the step budget (4 on a GPU via `python -m vislab.pretrain`)
    cfg = dict(FINETUNE_CONFIG, steps=FINETUNE_CONFIG["steps"] * scale)
    sets = finetune_sets(seed)
    x_tr, y_tr = sets["train"].images, sets["train"].labels[cfg["label"]]
    x_te, y_te = sets["test"].images, sets["test"].labels[cfg["label"]]
    share = None if max_seconds is None else max_seconds / len(models)
    metrics = {}
    for name, model in models.items():
        enc = pretrained_encoder(name, device)
        if enc is not None:
            src = {k: v for k, v in enc.state_dict().items() if k != "mask_token"}
            missing = model.load_state_dict(src, strict=False)
            if missing.unexpected_keys or set(missing.missing_keys) != {"head.weight", "head.bias"}:
                raise ValueError(f"fine-tuning {name}: unexpected weight layout {missing}")
            model.pos_embed.requires_grad_(True)
        torch.manual_seed(seed)

        def batches(step, g=torch.Generator()):
            g.manual_seed(seed * 1_000_003 + step)
            idx = torch.randint(len(x_tr), (cfg["batch"],), generator=g)
            return x_tr[idx].to(device), y_tr[idx].to(device)

        def loss_fn(m, batch):
            x, y = batch
            logits = m(x)
            return F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean().item()}

        def eval_fn(m):
            with torch.no_grad():
                logits = torch.cat([m(x_te[i:i + 500].to(device)) for i in range(0, len(x_te), 500)])
            return {"test_acc": (logits.argmax(1).cpu() == y_te).float().mean().item()}

        opt = _adamw(model, cfg["lr"])
        hist = fit(model, loss_fn, batches, opt, cfg["steps"], scheduler=warmup_cosine(opt, cfg["steps"], 30),
                   grad_clip=1.0, eval_fn=eval_fn, eval_every=cfg["eval_every"], max_seconds=share,
                   desc=f"fine-tune {name}",
                   progress=False, log_every=10)
        metrics[name] = {"test_acc": round(hist.evals["test_acc"][-1], 4), "steps": hist.steps_done,
                         "stopped_early": hist.stopped_early, "eval_steps": hist.eval_steps,
                         "test_acc_curve": [round(v, 4) for v in hist.evals["test_acc"]]}
    return metrics


register(Recipe(
    name="mim_finetune_shapes", build=_build_finetune, train=_train_finetune, config=FINETUNE_CONFIG, seed=0,
    dtype="float16",
    description="shape classifiers fine-tuned for 600 steps on 8000 labels from scratch / mae_shapes / eva_shapes"))


# ----------------------------------------------------------------------------------------------
# eva_clip_shapes: stage 2, CLIP alignment from scratch / MAE / EVA at equal budget
# ----------------------------------------------------------------------------------------------

ALIGN_CONFIG = dict(encoder=ENCODER, inits=list(INITS), embed_dim=64, context_length=16, text_width=64,
                    text_depth=2, text_heads=4, steps=ALIGN_STEPS, batch=ALIGN_BATCH, lr=5e-4,
                    eval_every=ALIGN_EVAL_EVERY, pairs=POOL_SIZE, templates=["a photo of a {}"],
                    p_full=0.2, p_attr=0.33)     # chapter 3's caption mix (clip_shapes)


def align_text_config(config: dict = ALIGN_CONFIG) -> TextConfig:
    tok = shapeworld_tokenizer(context_length=config["context_length"])
    return TextConfig(vocab_size=tok.vocab_size, context_length=config["context_length"], width=config["text_width"],
                      depth=config["text_depth"], heads=config["text_heads"], eot_token_id=tok.eot_id)


def _build_align(config: dict) -> nn.ModuleDict:
    text = align_text_config(config)
    vision = ViTConfig(**config["encoder"])
    return nn.ModuleDict({name: clip_from_encoder(None, text, config["embed_dim"], vision=vision)
                          for name in config["inits"]})


def _train_align(models: nn.ModuleDict, seed, device, max_seconds, scale=1):
    # scale: a multiple of the step budget (4 on a GPU via `python -m vislab.pretrain`)
    cfg = dict(ALIGN_CONFIG, steps=ALIGN_CONFIG["steps"] * scale)
    tok = shapeworld_tokenizer(context_length=cfg["context_length"])
    data = world().sample(cfg["pairs"], "train", seed=seed + 200)
    # chapter 3's alt-text-like captions (full description, or the shape with some attributes,
    # sometimes "a photo of ..."): with full captions only, "a photo of a {shape}" is unseen text
    from vislab.recipes.clip import varied_captions

    ids = tok(varied_captions(data, seed=seed + 200, p_full=cfg["p_full"], p_attr=cfg["p_attr"]))  # (n, L)
    test = world().sample(512, "test", seed=seed + 9)
    share = None if max_seconds is None else max_seconds / len(models)
    metrics = {}
    for name, model in models.items():
        enc = pretrained_encoder(name, device)
        torch.manual_seed(seed)                                   # the same text tower and projections for all
        model.text.init_weights()
        with torch.no_grad():                                     # CLIP's init (vislab.clip.CLIP.__init__)
            nn.init.normal_(model.text_projection.weight, std=model.config.text.width ** -0.5)
            nn.init.normal_(model.visual_projection.weight, std=model.config.vision.dim ** -0.5)
        if enc is not None:
            copy_encoder(enc, model.visual)

        def loss_fn(m, batch):
            x, t = batch
            loss = clip_loss(m.encode_image(x), m.encode_text(t), m.logit_scale.exp())
            return loss, {"logit_scale": m.logit_scale.exp().item()}

        def eval_fn(m):
            return {"zero_shot": zero_shot_accuracy(m, tok, test.images, test.labels["shape"],
                                                    tuple(cfg["templates"]), device=device)}

        start = {"zero_shot": zero_shot_accuracy(model, tok, test.images, test.labels["shape"],
                                                 tuple(cfg["templates"]), device=device)}
        opt = _adamw(model, cfg["lr"], wd=0.1, betas=(0.9, 0.98))
        hist = fit(model, loss_fn, image_batches(data.images, cfg["batch"], seed, device, captions=ids), opt,
                   cfg["steps"], scheduler=warmup_cosine(opt, cfg["steps"], cfg["steps"] // 20),
                   after_step=clamp_logit_scale, grad_clip=1.0, eval_fn=eval_fn, eval_every=cfg["eval_every"],
                   max_seconds=share, desc=f"CLIP from {name}", progress=False, log_every=5)
        metrics[name] = {"zero_shot": round(hist.evals["zero_shot"][-1], 4), "steps": hist.steps_done,
                         "stopped_early": hist.stopped_early,
                         "eval_steps": [0] + hist.eval_steps,
                         "zero_shot_curve": [round(start["zero_shot"], 4)] + [round(v, 4) for v in
                                                                               hist.evals["zero_shot"]],
                         "loss_curve": _curve(hist, every=5)}
    return metrics


register(Recipe(
    name="eva_clip_shapes", build=_build_align, train=_train_align, config=ALIGN_CONFIG, seed=0, dtype="float16",
    description="stage 2: CLIP on ShapeWorld captions, image tower from scratch / mae_shapes / eva_shapes, equal steps"))

"""Chapter 5's training loop and its shipped checkpoint ``dino_shapes``.

    python -m vislab.pretrain dino_shapes      # writes data/checkpoints/dino_shapes.*

Data: 32×32 ShapeWorld scenes with the "hard" nuisance preset (continuous position, scale and
rotation jitter, colour jitter, textured backgrounds, noise, distractor strokes), one shape
each, drawn fresh at every step (no labels are ever read by the training). The evaluation task
is the shape of the object (7 classes, chance 14%), on which raw pixels do poorly.

:func:`train_dino` is the loop the chapter also runs for its short ablations (collapse without
centering or without sharpening): multi-crop views, iBOT masks, the DINOv2 objective, the EMA
teacher with its cosine momentum schedule and the teacher-temperature warm-up, on top of
:func:`vislab.train.fit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vislab.dino import DINO, DINOConfig, MultiCropConfig, block_mask, momentum_schedule, multi_crop, teacher_temperature
from vislab.probes import extract_features, knn_accuracy, linear_probe_accuracy
from vislab.recipes import Recipe, register
from vislab.shapes import ShapeWorld
from vislab.train import fit
from vislab.vit import ViT, ViTConfig

__all__ = ["IMAGE_SIZE", "NUISANCE", "world", "DINOBatch", "dino_batches", "train_dino", "cls_features",
           "probe_set", "evaluate", "CONFIG", "STEPS", "BATCH_SIZE", "build", "train"]

IMAGE_SIZE = 32
NUISANCE = "hard"


def world(max_shapes: int = 1, nuisance: str = NUISANCE) -> ShapeWorld:
    """The training (and shape-probe) distribution: 32 px ShapeWorld, "hard" nuisance."""
    return ShapeWorld(image_size=IMAGE_SIZE, nuisance=nuisance, max_shapes=max_shapes)


@dataclass
class DINOBatch:
    """One step's input: the multi-crop views, the iBOT masks of the two global crops, the step."""

    views: list
    masks: torch.Tensor | None
    step: int
    images: torch.Tensor | None = None


def dino_batches(config: DINOConfig, batch_size: int = 64, seed: int = 0, source: ShapeWorld | None = None,
                 keep_images: bool = False):
    """``batches(step) -> DINOBatch``: fresh ShapeWorld images, their views and masks.

    Deterministic in ``(seed, step)``: the images come from ``source.sample(batch_size,
    seed=...)`` and the augmentations and masks from a generator seeded with the same pair.
    """
    source = world() if source is None else source
    grid = config.backbone.grid

    def batches(step: int) -> DINOBatch:
        s = seed * 1_000_003 + step
        images = source.sample(batch_size, "train", seed=s).images                     # (B, 3, H, W)
        g = torch.Generator().manual_seed(s)
        views = multi_crop(images, config.multicrop, generator=g)
        masks = None
        if config.ibot_weight > 0:
            masks = block_mask(2 * batch_size, grid, config.mask_ratio, config.mask_probability, generator=g)  # (2B, N)
        return DINOBatch(views.views, masks, step, images if keep_images else None)

    return batches


def train_dino(model: DINO, steps: int, batch_size: int = 64, lr: float = 1e-3, min_lr: float = 1e-5,
               warmup_steps: int | None = None, weight_decay: float = 0.04, seed: int = 0,
               source: ShapeWorld | None = None, centering: str | None = None, teacher_temp: float | None = None,
               eval_fn=None, eval_every: int | None = None, callback=None, max_seconds: float | None = None,
               progress: bool = True, device=None, desc: str = "DINO"):
    """Train ``model`` (student by AdamW, teacher by EMA) for ``steps`` steps.

    Schedules (DINO, section 3.1 and appendix): learning rate linear warm-up then cosine to
    ``min_lr``; teacher temperature ``warmup_teacher_temp → teacher_temp`` over the config's
    warm-up steps; EMA momentum cosine from ``momentum_base`` to 1.

    Args:
        centering: override the config's centering ("center", "sinkhorn", "none").
        teacher_temp: a constant teacher temperature instead of the warm-up schedule (the
            chapter's "no sharpening" ablation sets it to the student's).
        eval_fn, eval_every, callback, max_seconds, progress: passed to :func:`vislab.train.fit`.
    Returns:
        the :class:`vislab.train.History` (metrics: loss, dino, ibot, koleo, teacher_entropy,
        batch_entropy, kl, lr, momentum, teacher_temp).
    """
    if not isinstance(model, DINO):
        raise TypeError(f"train_dino trains a vislab.dino.DINO, got {type(model).__name__}")
    c = model.config
    device = torch.device(device) if device is not None else next(model.parameters()).device
    warmup_steps = max(1, steps // 10) if warmup_steps is None else warmup_steps
    optimizer = torch.optim.AdamW(model.student_parameters(), lr=lr, weight_decay=weight_decay)

    def lr_at(step):
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, steps - warmup_steps)
        return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * t)) / 2

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s) / lr)
    get = dino_batches(c, batch_size, seed, source)

    def batches(step):
        b = get(step)
        b.views = [v.to(device) for v in b.views]
        b.masks = b.masks.to(device) if b.masks is not None else None
        return b

    def loss_fn(m, batch):
        tau = teacher_temp if teacher_temp is not None else teacher_temperature(
            batch.step, c.teacher_temp_warmup_steps, c.warmup_teacher_temp, c.teacher_temp)
        loss, metrics = m.loss(batch.views, batch.masks, teacher_temp=tau, centering=centering)
        metrics["teacher_temp"] = tau
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        return loss, metrics

    def after_step(m, step):
        m.update_teacher(momentum_schedule(step, steps, c.momentum_base))

    return fit(model, loss_fn, batches, optimizer, steps, scheduler=scheduler, after_step=after_step,
               grad_clip=3.0, eval_fn=eval_fn, eval_every=eval_every, callback=callback, max_seconds=max_seconds,
               progress=progress, desc=desc)


@torch.no_grad()
def cls_features(encoder: ViT, images: torch.Tensor, batch_size: int = 256):
    """The frozen encoder's final-normed CLS token for each image, ``(n, D)`` numpy."""
    encoder.eval()
    device = next(encoder.parameters()).device
    return extract_features(lambda x: encoder.forward_features(x)[:, 0], images, batch_size, device)


def probe_set(n_train: int = 2000, n_test: int = 1000, seed: int = 0, label: str = "shape"):
    """``(train_images, train_labels, test_images, test_labels)`` for the shape probe."""
    w = world()
    tr, te = w.sample(n_train, "train", seed=10_000 + seed), w.sample(n_test, "test", seed=10_000 + seed)
    return tr.images, tr.labels[label], te.images, te.labels[label]


def evaluate(encoder: ViT, data=None, linear: bool = True) -> dict:
    """k-NN (k=20) and linear-probe accuracy of the encoder's CLS features on the shape task."""
    tx, ty, vx, vy = probe_set() if data is None else data
    ftr, fte = cls_features(encoder, tx), cls_features(encoder, vx)
    out = {"knn_shape": knn_accuracy(ftr, ty, fte, vy, k=20)}
    if linear:
        out["linear_shape"] = linear_probe_accuracy(ftr, ty, fte, vy, max_iter=1000)
    return out


# ---------------------------------------------------------------------------------------------
# The shipped checkpoint
# ---------------------------------------------------------------------------------------------

CONFIG = DINOConfig(
    backbone=ViTConfig(image_size=IMAGE_SIZE, patch_size=4, dim=64, depth=4, heads=4, use_mask_token=True),
    out_dim=256, hidden_dim=256, bottleneck_dim=64, multicrop=MultiCropConfig.shapes(IMAGE_SIZE),
    teacher_temp_warmup_steps=200).to_dict()
STEPS = 1000
BATCH_SIZE = 64
LR = 1e-3


def build(config: dict) -> DINO:
    """A fresh DINO model (student, teacher, centres) from the recipe's config dict."""
    return DINO(DINOConfig.from_dict(config))


def train(model: DINO, seed: int, device, max_seconds: float | None) -> dict:
    """Train for :data:`STEPS` steps and measure the teacher's shape probes."""
    hist = train_dino(model, STEPS, BATCH_SIZE, lr=LR, seed=seed, max_seconds=max_seconds, device=device,
                      progress=False)
    metrics = {k: round(v, 4) for k, v in evaluate(model.encoder).items()}
    metrics.update(steps=hist.steps_done, final_loss=round(hist.last("loss"), 4),
                   teacher_entropy=round(hist.last("teacher_entropy"), 4))
    return metrics


register(Recipe(name="dino_shapes", build=build, train=train, config=CONFIG, seed=0, dtype="float16",
                description="DINOv2-style ViT (dim 64, depth 4, patch 4) on 32 px 'hard' ShapeWorld; "
                            "k-NN / linear shape probes"))

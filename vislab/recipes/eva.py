"""Recipe "eva_teacher_shapes": chapter 3's CLIP adapted to chapter 6's scenes, EVA's teacher.

    python -m vislab.pretrain eva_teacher_shapes

EVA's student can only learn what its teacher sees in the student's images. Chapter 3's
``clip_shapes`` was trained on shapes centred on a 3×3 grid; chapter 6's scenes put the shape
at a *continuous* position (:func:`vislab.recipes.mae.world`), and there the CLIP reads shape
poorly (measured in chapter 6: a linear probe on its features ~48%, zero-shot ~38%, against
99% on its own scenes). A student that regresses those features inherits the blind spot.

So the teacher here is ``clip_shapes`` *continued* for a few hundred steps on chapter 6's
scenes with the same caption recipe (:func:`vislab.recipes.clip.varied_captions`), the same
architecture and the same tokenizer: still chapter 3's CLIP, adapted to the student's images,
as EVA's teacher (OpenAI's CLIP) had seen web images like EVA's. Captions are used here, by
the teacher only; the EVA student never sees one.

Shape legend: B batch, L context length, E embedding width.
"""

from __future__ import annotations

import time

import torch

from vislab.clip import CLIP
from vislab.recipes import Recipe, register
from vislab.recipes import clip as clip_recipe
from vislab.recipes.mae import world as chapter_world
from vislab.recipes.mae import zero_shot_accuracy

__all__ = ["TEACHER_CONFIG", "build_teacher", "train_teacher"]

_WORLD = chapter_world()
TEACHER_CONFIG = {
    **clip_recipe.CONFIG,
    "init": "clip_shapes",
    # chapter 6's scenes: one shape, black background, continuous position, no held-out pairs
    "world": {"image_size": _WORLD.image_size, "min_shapes": 1, "max_shapes": 1, "nuisance": "none",
              "position": "continuous", "holdout": []},
    "steps": 600, "lr": 1e-3, "warmup": 30, "ablation": False,
}


def build_teacher(config: dict = TEACHER_CONFIG) -> CLIP:
    """A CLIP with ``clip_shapes``' architecture (the weights come from training or the checkpoint)."""
    return clip_recipe.build(config)


def train_teacher(model: CLIP, seed: int, device, max_seconds: float | None, scale: int = 1) -> dict:
    """Start from ``clip_shapes``' weights, continue :func:`vislab.recipes.clip.train_clip` on the
    chapter's scenes, and measure zero-shot shape accuracy there before and after. ``scale``
    multiplies the step budget (4 on a GPU via ``python -m vislab.pretrain``)."""
    from vislab.pretrain import load_or_train

    cfg = TEACHER_CONFIG
    start, start_meta = load_or_train(cfg["init"], device=device)
    model.load_state_dict(start.state_dict())
    tok = clip_recipe.tokenizer(cfg)
    test = chapter_world().sample(1000, "test", seed=seed + 9)
    before = zero_shot_accuracy(model, tok, test.images, test.labels["shape"], device=device)
    t0 = time.perf_counter()
    hist = clip_recipe.train_clip(model, cfg, seed=seed + 300, device=device, steps=cfg["steps"] * scale,
                                  max_seconds=max_seconds,
                                  log_every=5, progress=False)
    seconds = time.perf_counter() - t0
    after = zero_shot_accuracy(model, tok, test.images, test.labels["shape"], device=device)
    return {"zero_shot_shape_before": round(before, 4), "zero_shot_shape": round(after, 4),
            "steps": hist.steps_done, "stopped_early": hist.stopped_early, "train_seconds": round(seconds, 1),
            "final_loss": round(hist.smoothed("loss", 10)[-1], 4), "init": cfg["init"],
            "init_command": start_meta.get("command"), "init_seconds": start_meta.get("seconds")}


register(Recipe(
    name="eva_teacher_shapes", build=build_teacher, train=train_teacher, config=TEACHER_CONFIG, seed=0,
    dtype="float16",
    description="EVA's teacher: clip_shapes continued 600 steps on chapter 6's continuous-position scenes"))

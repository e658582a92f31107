"""Recipe "clip_shapes": a small CLIP trained on ShapeWorld captions (chapter 3).

    python -m vislab.pretrain clip_shapes

The data are single-shape ShapeWorld scenes at 32 px. Seven (colour, shape) combinations,
one per shape (:data:`HOLDOUT`), never appear in training, so that chapter 3 can test
compositional generalisation on them.

**The model.** A ViT with 8×8 patches (16 patches + CLS), width 64, 3 blocks, and a 2-block
causal text tower of width 64; shared space E = 64; 276k parameters. In our runs on a busy
2-core machine, 8×8 patches reached the zero-shot bar in fewer seconds than 4×4 patches
(64 patches, four times the compute per step) and, at 1,500 steps, a higher accuracy too.

**The captions.** ShapeWorld writes one full caption per image ("a small red circle in the
top left"). Trained on those alone, the text tower never sees a caption that names only a
shape, and "a photo of a circle" lands nowhere near circle images (zero-shot near chance,
measured in chapter 3). Web alt-text, CLIP's training data, describes images at every level
of detail; :func:`varied_captions` imitates that: each training caption keeps the full
description with probability ``p_full``, otherwise a random subset of its attributes (the
shape always; each other attribute kept with probability ``p_attr``), sometimes framed as
"a photo of ...", "a picture of ...", "an image of ...". Captions that name fewer attributes
make the shape carry more of the matching, which is what zero-shot shape prompts need:
keeping each attribute with probability 1/3 instead of 1/2 (and the full caption 20% of the
time instead of 30%) raised zero-shot accuracy at 1,000 steps from 50% to 86% with 4×4 patches.
The prompt templates "a rendering of ..." and "..., a type of shape" never occur in training:
chapter 3 measures what that does.

Shape legend: B batch, L context length, E embedding width.
"""

from __future__ import annotations

import math
import random
import time

import torch

from vislab.clip import (CLIP, CLIPConfig, TextConfig, clamp_logit_scale, clip_loss, retrieval_recall,
                         same_text_positives, zero_shot_classifier, zero_shot_logits)
from vislab.recipes import Recipe, register
from vislab.shapes import COLORS, POSITION_PHRASES, SHAPES, SIZES, ShapeWorld
from vislab.text import CaptionTokenizer, shapeworld_vocabulary
from vislab.vit import ViTConfig

__all__ = ["HOLDOUT", "FRAMES", "CONFIG", "build", "tokenizer", "world", "varied_captions", "batches",
           "loss_fn", "make_optimizer", "lr_at", "train_clip", "evaluate", "train", "TEMPLATES"]

# One held-out colour per shape (and a different shape per colour): 7 of the 56 combinations.
HOLDOUT = (("green", "triangle"), ("red", "star"), ("blue", "heart"), ("yellow", "circle"),
           ("magenta", "square"), ("cyan", "ring"), ("orange", "cross"))

# How varied captions are framed ("{}" = the description); repeated entries are more frequent.
FRAMES = ("{}", "{}", "a photo of {}", "a picture of {}", "an image of {}")

# Templates chapter 3 compares; the first is the bar.
TEMPLATES = {
    "a photo of a {shape}": ("a photo of a {shape}",),
    "a {shape}": ("a {shape}",),
    "a photo of a {shape}, a type of shape": ("a photo of a {shape}, a type of shape",),
    "a rendering of a {shape}": ("a rendering of a {shape}",),
    "ensemble of 4 seen framings": ("a photo of a {shape}", "a {shape}", "a picture of a {shape}",
                                    "an image of a {shape}"),
    "ensemble of all 6": ("a photo of a {shape}", "a {shape}", "a picture of a {shape}", "an image of a {shape}",
                          "a rendering of a {shape}", "a photo of a {shape}, a type of shape"),
}

_MODEL = CLIPConfig(
    vision=ViTConfig(image_size=32, patch_size=8, dim=64, depth=3, heads=4, norm_eps=1e-5),
    text=TextConfig(vocab_size=4 + len(shapeworld_vocabulary()), context_length=16, width=64, depth=2, heads=4,
                    eot_token_id=CaptionTokenizer.eot_id),
    embed_dim=64)

CONFIG = {
    "model": _MODEL.to_dict(),
    "words": list(shapeworld_vocabulary()),
    "world": {"image_size": 32, "min_shapes": 1, "max_shapes": 1, "nuisance": "none",
              "holdout": [list(p) for p in HOLDOUT]},
    "steps": 1500, "batch_size": 128, "lr": 2e-3, "warmup": 30, "weight_decay": 0.1, "p_full": 0.2, "p_attr": 0.33,
    "betas": [0.9, 0.999], "eps": 1e-8, "decay_all": True, "ablation": True,
}


def build(config: dict = CONFIG) -> CLIP:
    """A fresh CLIP from a recipe config (``config["model"]``)."""
    return CLIP(CLIPConfig.from_dict(config["model"]))


def tokenizer(config: dict = CONFIG) -> CaptionTokenizer:
    """The tokenizer the model was trained with (its vocabulary is stored in the config)."""
    ctx = config["model"]["text"]["context_length"]
    return CaptionTokenizer(tuple(config["words"]), context_length=ctx)


def world(config: dict = CONFIG) -> ShapeWorld:
    """The ShapeWorld generator of the recipe (held-out pairs included)."""
    w = dict(config["world"])
    w["holdout"] = tuple(tuple(p) for p in w.get("holdout", ()))
    return ShapeWorld(**w)


def _a(text: str) -> str:
    return f"an {text}" if text[0] in "aeiou" else f"a {text}"


def varied_captions(batch, seed: int, p_full: float = 0.3, p_attr: float = 0.5) -> list:
    """Alt-text-like captions for a single-shape ShapeWorld batch (see the module docstring).

    With probability ``p_full`` the full ShapeWorld caption; otherwise the shape with each
    of size, colour and position kept with probability ``p_attr``, in one of :data:`FRAMES`.
    Images with more than one shape keep their full caption. Deterministic given ``seed``.
    """
    for name, p in (("p_full", p_full), ("p_attr", p_attr)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    rng = random.Random(seed)
    lab = batch.labels
    out = []
    for i in range(len(batch)):
        if rng.random() < p_full or int(lab["count"][i]) > 1:
            out.append(batch.captions[i])
            continue
        words = []
        if rng.random() < p_attr:
            words.append(SIZES[int(lab["size"][i])])
        if rng.random() < p_attr:
            words.append(COLORS[int(lab["color"][i])])
        words.append(SHAPES[int(lab["shape"][i])])
        text = _a(" ".join(words))
        if rng.random() < p_attr:
            text += " " + POSITION_PHRASES[int(lab["position"][i])]
        out.append(rng.choice(FRAMES).format(text))
    return out


def batches(config: dict = CONFIG, seed: int = 0, vary: bool = True, device="cpu"):
    """``batches(step) -> (images (B, 3, H, W), token ids (B, L))``, a fresh ShapeWorld batch per step."""
    sw, tok = world(config), tokenizer(config)
    B, p_full, p_attr = config["batch_size"], config["p_full"], config.get("p_attr", 0.5)

    def get(step):
        b = sw.sample(B, split="train", seed=seed * 1_000_003 + step)
        caps = varied_captions(b, seed=seed * 1_000_003 + step, p_full=p_full, p_attr=p_attr) if vary else b.captions
        return b.images.to(device), tok(caps).to(device)

    return get


def loss_fn(model: CLIP, batch):
    """CLIP loss of one ``(images, ids)`` batch, and the logit scale exp(t) as a metric."""
    images, ids = batch
    loss = clip_loss(model.encode_image(images), model.encode_text(ids), model.logit_scale.exp())
    return loss, {"logit_scale": model.logit_scale.exp().item()}


def make_optimizer(model: CLIP, config: dict = CONFIG) -> torch.optim.Optimizer:
    """AdamW with the config's ``lr``, ``weight_decay``, ``betas``, ``eps``; with
    ``decay_all=False`` gains, biases and the logit scale are exempt from decay (open_clip's
    rule, ``p.ndim < 2``)."""
    wd = config["weight_decay"]
    kw = dict(lr=config["lr"], betas=tuple(config.get("betas", (0.9, 0.999))), eps=config.get("eps", 1e-8))
    if config.get("decay_all", True):
        return torch.optim.AdamW(model.parameters(), weight_decay=wd, **kw)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}], **kw)


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 0 (CLIP's schedule)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_clip(model: CLIP, config: dict = CONFIG, seed: int = 0, device="cpu", steps: int | None = None,
               max_seconds: float | None = None, vary: bool = True, callback=None, eval_fn=None,
               eval_every=None, progress: bool = True, log_every: int = 1):
    """Train ``model`` in place with :func:`vislab.train.fit`; returns the History.

    After every step the log temperature is clamped (:func:`~vislab.clip.clamp_logit_scale`).
    """
    from vislab.train import fit

    steps = config["steps"] if steps is None else steps
    opt = make_optimizer(model, config)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, steps, 1.0, config["warmup"]))
    return fit(model, loss_fn, batches(config, seed=seed, vary=vary, device=device), opt, steps,
               after_step=clamp_logit_scale, scheduler=sched, callback=callback, eval_fn=eval_fn,
               eval_every=eval_every, max_seconds=max_seconds, desc="clip", progress=progress, log_every=log_every)


@torch.no_grad()
def _embed_images(model: CLIP, images: torch.Tensor, device, batch_size: int = 500) -> torch.Tensor:
    out = [model.encode_image(images[i:i + batch_size].to(device)).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)                                                     # (n, E)


@torch.no_grad()
def evaluate(model: CLIP, config: dict = CONFIG, device="cpu", n: int = 1000, seed: int = 1) -> dict:
    """The chapter's numbers on held-out images (the "test" split: scenes never trained on):

    - ``zero_shot_shape``: 7-way shape accuracy with "a photo of a {shape}";
    - ``zero_shot_<template>``: the same for each of :data:`TEMPLATES`;
    - ``i2t_R@k`` / ``t2i_R@k``: retrieval among the first 256 test pairs (exact pairs), and
      ``i2t_R@1_same_text``: counting a word-for-word identical caption as a hit;
    - compositional: ``shape_seen`` / ``shape_heldout`` (zero-shot shape accuracy on seen vs
      held-out colour-shape combinations) and ``pair_seen`` / ``pair_heldout`` (56-way
      "a photo of a {colour} {shape}").
    """
    was = model.training
    model.eval()
    sw, tok = world(config), tokenizer(config)
    test = sw.sample(n, split="test", seed=seed)
    held = sw.sample(n, split="holdout", seed=seed)
    f_test = _embed_images(model, test.images, device)                      # (n, E)
    f_held = _embed_images(model, held.images, device)                      # (n, E)
    out = {}
    names = {"a photo of a {shape}": "zero_shot_shape"}
    for key, templates in TEMPLATES.items():
        W = zero_shot_classifier(model, tok, SHAPES, templates, device=device).cpu()   # (7, E)
        acc = (zero_shot_logits(f_test, W).argmax(1) == test.labels["shape"]).float().mean().item()
        out[names.get(key, "zero_shot[" + key + "]")] = acc
    W = zero_shot_classifier(model, tok, SHAPES, ["a photo of a {}"], device=device).cpu()
    out["shape_seen"] = out["zero_shot_shape"]
    out["shape_heldout"] = (zero_shot_logits(f_held, W).argmax(1) == held.labels["shape"]).float().mean().item()
    pairs = [f"{c} {s}" for c in COLORS for s in SHAPES]
    Wp = zero_shot_classifier(model, tok, pairs, ["a photo of a {}"], device=device).cpu()   # (56, E)
    for name, batch, feats in (("seen", test, f_test), ("heldout", held, f_held)):
        y = batch.labels["color"] * len(SHAPES) + batch.labels["shape"]
        out[f"pair_{name}"] = (zero_shot_logits(feats, Wp).argmax(1) == y).float().mean().item()
    k = min(256, n)
    f_txt = torch.cat([model.encode_text(tok(test.captions[i:i + 256]).to(device)).float().cpu()
                       for i in range(0, k, 256)])                           # (k, E)
    r = retrieval_recall(f_test[:k], f_txt)
    for key, v in r.items():
        out[key.replace("image_to_text", "i2t").replace("text_to_image", "t2i")] = v
    out["i2t_R@1_same_text"] = retrieval_recall(f_test[:k], f_txt, ks=(1,),
                                                positives=same_text_positives(test.captions[:k]))["image_to_text_R@1"]
    out["logit_scale"] = float(model.logit_scale.exp())
    model.train(was)
    return {key: round(v, 4) for key, v in out.items()}


def _curves(hist, every: int = 10) -> dict:
    """Loss and logit scale every ``every`` logged steps (JSON-sized)."""
    idx = list(range(0, len(hist.steps), every))
    if idx and idx[-1] != len(hist.steps) - 1:
        idx.append(len(hist.steps) - 1)
    loss = hist.smoothed("loss", every)
    return {"step": [hist.steps[i] for i in idx], "loss": [round(loss[i], 4) for i in idx],
            "logit_scale": [round(hist.metrics["logit_scale"][i], 3) for i in idx]}


def train(model: CLIP, seed: int, device, max_seconds: float | None, scale: int = 1) -> dict:
    """The recipe: :func:`train_clip` with :data:`CONFIG`, then :func:`evaluate`.

    ``scale`` multiplies the step budget (``python -m vislab.pretrain`` passes 4 on a GPU).

    With ``CONFIG["ablation"]`` it then trains a twin (same initial weights, seed and steps)
    on ShapeWorld's full captions only and stores its evaluation under
    ``"full_captions_only"``: chapter 3's evidence that zero-shot needs prompt-like captions.
    """
    twin_state = {k: v.clone() for k, v in model.state_dict().items()}
    share = None if max_seconds is None else max_seconds / (2 if CONFIG.get("ablation") else 1)
    t0 = time.perf_counter()
    steps = CONFIG["steps"] * scale
    hist = train_clip(model, CONFIG, seed=seed, device=device, steps=steps, max_seconds=share, log_every=1,
                      progress=True)
    seconds = time.perf_counter() - t0
    metrics = evaluate(model, CONFIG, device=device)
    metrics.update(train_seconds=round(seconds, 1), steps=hist.steps_done, stopped_early=hist.stopped_early,
                   final_loss=round(hist.smoothed("loss", 20)[-1], 4), curves=_curves(hist))
    if CONFIG.get("ablation"):
        twin = build(CONFIG).to(device)
        twin.load_state_dict(twin_state)
        t1 = time.perf_counter()
        th = train_clip(twin, CONFIG, seed=seed, device=device, steps=steps, max_seconds=share, vary=False,
                        log_every=10, progress=True)
        metrics["full_captions_only"] = {**evaluate(twin, CONFIG, device=device), "steps": th.steps_done,
                                         "train_seconds": round(time.perf_counter() - t1, 1),
                                         "final_loss": round(th.smoothed("loss", 2)[-1], 4)}
    return metrics


register(Recipe(name="clip_shapes", build=build, train=train, config=CONFIG, seed=0, dtype="float16",
                description="CLIP (ViT 32px/8, text 2 layers) on ShapeWorld captions, 7 colour-shape pairs held out"))

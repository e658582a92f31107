"""Recipe ``convnext_shapes``: the small ConvNeXt-style ConvNet on chapter 2's shape task.

    python -m vislab.pretrain convnext_shapes

Supervised, like ``vit_shapes``: the same 32-pixel ShapeWorld scenes (one shape at a continuous
position, 7 classes), the same training loop (:func:`vislab.recipes.vit.train_shapes`: AdamW,
warm-up / stable / decay schedule, fresh scenes every step) and the same fixed test split, so
that chapter 10 compares a ConvNet and a ViT that differ only in architecture.

Shape legend: B batch, K = 7 classes.
"""

from __future__ import annotations

from vislab.convnet import ConvNet, ConvNetConfig
from vislab.recipes import Recipe, register
from vislab.recipes.vit import TASK, test_set, train_shapes
from vislab.shapes import SHAPES
from vislab.train import evaluate_accuracy

__all__ = ["MODEL", "TRAIN", "build"]

MODEL = ConvNetConfig.preset("shapes", image_size=TASK["image_size"], num_classes=len(SHAPES))
TRAIN = dict(steps=900, batch_size=64, lr=2e-3, weight_decay=0.05, warmup=50)


def build(config: dict) -> ConvNet:
    """A fresh ConvNet from the recipe config's ``model`` part."""
    return ConvNet(ConvNetConfig.from_dict(config["model"]))


def _train(model, seed, device, max_seconds, scale: int = 1):
    """Train in place; ``scale`` multiplies the step budget (``python -m vislab.pretrain --scale``)."""
    t = TRAIN
    hist = train_shapes(model, t["steps"] * scale, batch_size=t["batch_size"], lr=t["lr"], weight_decay=t["weight_decay"],
                        warmup=t["warmup"], seed=seed, device=device, max_seconds=max_seconds, desc="convnext")
    tx, ty = test_set()
    metrics = {"test_acc": round(evaluate_accuracy(model, tx.to(device), ty.to(device)), 4),
               "test_size": len(ty), "steps": hist.steps_done, "images_seen": hist.steps_done * t["batch_size"],
               "final_train_loss": round(hist.metrics["loss"][-1], 4)}
    if hist.stopped_early:
        metrics["stopped_early"] = True
    return metrics


register(Recipe(name="convnext_shapes", build=build, train=_train,
                config={"model": MODEL.to_dict(), "task": dict(TASK), "train": dict(TRAIN)}, seed=0, dtype="float16",
                description="small ConvNeXt-style ConvNet (4x4 stem, stages 48/96): ShapeWorld shape, 7 classes"))

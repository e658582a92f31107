"""Chapter 4's training runs: CLIP loss against sigmoid loss on ShapeWorld captions.

One stream of examples, cut into batches of any size: example k of the stream is the same
image and caption whatever the batch size, so runs at batch sizes 8, 32 and 128 see exactly
the same examples in the same order (``benchmarks/siglip_batch.py`` compares them). The two
losses train identical towers: the sigmoid run starts from :func:`vislab.siglip.siglip_from_clip`
of the CLIP run's initial model.

Evaluation, on 1,024 test scenes (single shapes, so every caption is "size colour shape position"):

- ``caption_top1``: zero-shot over all 1,512 captions ShapeWorld can write (3 sizes x 8 colours
  x 7 shapes x 9 positions): the image's most similar caption must be exactly right;
- ``shape_acc``, ``color_acc``, ``size_acc``, ``position_acc``: the attributes of that caption;
- ``i2t_R@1``, ``t2i_R@1``, ``i2t_R@5``, ``t2i_R@5``: retrieval among the 1,024 test pairs, an
  identical caption counting as a hit (:func:`vislab.clip.same_text_positives`).

The recipe ``siglip_shapes`` ships the SigLIP model chapter 4 looks at (MAP head, bidirectional
text tower, tanh-GELU, learned scale and bias):

    python -m vislab.pretrain siglip_shapes
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import torch

from vislab.clip import CLIP, CLIPConfig, clamp_logit_scale, clip_loss, retrieval_recall, same_text_positives
from vislab.recipes import Recipe, register
from vislab.shapes import COLORS, POSITION_PHRASES, SHAPES, SIZES, ShapeWorld
from vislab.siglip import SigLIP, SigLIPConfig, sigmoid_loss, siglip_from_clip
from vislab.text import shapeworld_tokenizer
from vislab.train import fit
from vislab.vit import ViTConfig

__all__ = ["WORLD", "BLOCK", "ExampleStream", "all_captions", "test_set", "evaluate", "clip_config",
           "make_pair", "SCALARS", "param_groups", "train_contrastive", "CONFIG", "build", "train"]

WORLD = dict(image_size=32, nuisance="none", max_shapes=1)
BLOCK = 1024                 # examples generated at a time; every batch size used divides it
TEST_SEED = 12345


def _world() -> ShapeWorld:
    return ShapeWorld(**WORLD)


class ExampleStream:
    """An endless, deterministic stream of (image, caption ids) pairs, batched on demand.

    ``stream.batch(step, batch_size)`` is examples ``step*B .. (step+1)*B - 1`` of the stream,
    generated in blocks of :data:`BLOCK` with seed ``seed * 100_003 + block``.
    """

    def __init__(self, seed: int, tokenizer=None):
        self.seed = int(seed)
        self.tokenizer = tokenizer or shapeworld_tokenizer()
        self.world = _world()
        self._cache = (None, None, None)

    def _block(self, i: int):
        if self._cache[0] != i:
            b = self.world.sample(BLOCK, split="train", seed=self.seed * 100_003 + i)
            self._cache = (i, b.images, self.tokenizer(b.captions))
        return self._cache[1], self._cache[2]

    def batch(self, step: int, batch_size: int):
        if BLOCK % batch_size:
            raise ValueError(f"batch_size must divide {BLOCK} so that batches never straddle blocks, got {batch_size}")
        start = step * batch_size
        images, ids = self._block(start // BLOCK)
        s = start % BLOCK
        return images[s:s + batch_size], ids[s:s + batch_size]     # (B, 3, H, W), (B, L)


def all_captions() -> tuple:
    """Every caption a single-shape ShapeWorld scene can have, with its attribute indices."""
    caps, attrs = [], []
    for size, color, shape, pos in itertools.product(range(len(SIZES)), range(len(COLORS)), range(len(SHAPES)),
                                                     range(len(POSITION_PHRASES))):
        word = SIZES[size]
        article = "an" if word[0] in "aeiou" else "a"
        caps.append(f"{article} {word} {COLORS[color]} {SHAPES[shape]} {POSITION_PHRASES[pos]}")
        attrs.append((size, color, shape, pos))
    return caps, torch.tensor(attrs)                                  # 1512 captions, (1512, 4)


def test_set(n: int = 1024, seed: int = TEST_SEED):
    """The fixed test scenes."""
    return _world().sample(n, split="test", seed=seed)


@torch.no_grad()
def evaluate(model, test=None, tokenizer=None, batch_size: int = 256) -> dict:
    """Zero-shot caption choice and retrieval (see the module docstring). Works for CLIP and SigLIP."""
    tokenizer = tokenizer or shapeworld_tokenizer()
    test = test if test is not None else test_set()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    img = torch.cat([model.encode_image(test.images[i:i + batch_size].to(device), normalize=True)
                     for i in range(0, len(test), batch_size)]).cpu()                  # (n, E)
    ids = tokenizer(test.captions)
    txt = torch.cat([model.encode_text(ids[i:i + batch_size].to(device), normalize=True)
                     for i in range(0, len(test), batch_size)]).cpu()                  # (n, E)
    caps, attrs = all_captions()
    cids = tokenizer(list(caps))
    emb = torch.cat([model.encode_text(cids[i:i + batch_size].to(device), normalize=True)
                     for i in range(0, len(caps), batch_size)]).cpu()                  # (1512, E)
    pred = attrs[(img @ emb.t()).argmax(dim=1)]                                        # (n, 4)
    lab = torch.stack([test.labels["size"], test.labels["color"], test.labels["shape"], test.labels["position"]], 1)
    out = {"caption_top1": (pred == lab).all(1).float().mean().item()}
    for k, name in enumerate(("size", "color", "shape", "position")):
        out[f"{name}_acc"] = (pred[:, k] == lab[:, k]).float().mean().item()
    r = retrieval_recall(img, txt, ks=(1, 5), positives=same_text_positives(test.captions))
    out.update({"i2t_R@1": r["image_to_text_R@1"], "t2i_R@1": r["text_to_image_R@1"],
                "i2t_R@5": r["image_to_text_R@5"], "t2i_R@5": r["text_to_image_R@5"]})
    model.train(was_training)
    return out


def clip_config(tokenizer=None) -> CLIPConfig:
    """The towers both losses train (chapter 3's small CLIP: ViT 32 px / patch 4, width 64)."""
    tokenizer = tokenizer or shapeworld_tokenizer()
    base = CLIPConfig()
    return CLIPConfig(vision=base.vision, text=dataclasses.replace(base.text, vocab_size=tokenizer.vocab_size),
                      embed_dim=base.embed_dim)


def make_pair(seed: int, tokenizer=None):
    """``(clip_model, siglip_model)`` with identical towers and projections (same seed, copied)."""
    torch.manual_seed(seed)
    clip = CLIP(clip_config(tokenizer))
    return clip, siglip_from_clip(clip)


def _loss_fn(kind: str):
    def clip_fn(model, batch):
        images, ids = batch
        loss = clip_loss(model.encode_image(images), model.encode_text(ids), model.logit_scale.exp())
        return loss, {"t": model.logit_scale.exp().item()}

    def sig_fn(model, batch):
        images, ids = batch
        loss = sigmoid_loss(model.encode_image(images), model.encode_text(ids), model.logit_scale.exp(),
                            model.logit_bias)
        return loss, {"t": model.logit_scale.exp().item(), "b": model.logit_bias.item()}

    if kind not in ("clip", "sigmoid"):
        raise ValueError(f"loss must be 'clip' or 'sigmoid', got {kind!r}")
    return clip_fn if kind == "clip" else sig_fn


SCALARS = ("logit_scale", "logit_bias")   # t' (and SigLIP's b): the loss's own scalars


def param_groups(model, lr: float, scalar_lr: float | None = None, weight_decay: float = 0.05) -> list:
    """AdamW parameter groups: matrices with weight decay, other tensors without, and, when
    ``scalar_lr`` is given, the loss scalars t' = ``logit_scale`` and b = ``logit_bias`` in a group of
    their own at learning rate ``scalar_lr`` (no decay).

    Adam moves every parameter by about its learning rate per step whatever the gradient's size, so
    a scalar trained at the towers' lr = 1e-3 moves at most about steps x 1e-3 in a run: 0.2 in 200
    steps, nowhere near the distance from b = -10 to a useful bias. The paper's runs are long enough
    (hundreds of thousands of steps) for that not to matter; short runs need the scalars' own lr.
    The schedule (a ``LambdaLR``) scales every group alike.
    """
    if scalar_lr is not None and (isinstance(scalar_lr, bool) or not isinstance(scalar_lr, (int, float))
                                  or not math.isfinite(scalar_lr) or scalar_lr <= 0):
        raise ValueError(f"scalar_lr must be None or a positive finite number, got {scalar_lr!r}")
    named = dict(model.named_parameters())
    scalars = [named[n] for n in SCALARS if n in named] if scalar_lr is not None else []
    ids = {id(p) for p in scalars}
    decay = [p for p in model.parameters() if p.dim() >= 2 and id(p) not in ids]
    rest = [p for p in model.parameters() if p.dim() < 2 and id(p) not in ids]
    groups = [{"params": decay, "weight_decay": weight_decay, "lr": lr}, {"params": rest, "weight_decay": 0.0, "lr": lr}]
    if scalars:
        groups.append({"params": scalars, "weight_decay": 0.0, "lr": float(scalar_lr)})
    return groups


def train_contrastive(model, loss: str, batch_size: int, examples: int, seed: int, lr: float = 1e-3,
                      warmup: float = 0.05, device=None, max_seconds=None, progress: bool = False,
                      log_every: int = 10, callback=None, scalar_lr: float | None = None):
    """Train ``model`` on ``examples`` examples of the stream ``seed`` in batches of ``batch_size``.

    AdamW (weight decay 0.05 on matrices only), linear warm-up over ``warmup`` of the steps then
    cosine decay to 0; CLIP's logit scale is clamped at log 100 after every step (open_clip).
    ``scalar_lr``: the learning rate of t' (and b) in their own group (:func:`param_groups`);
    ``None`` trains them at ``lr`` like every other parameter.
    Returns the :class:`vislab.train.History`.
    """
    if examples % batch_size:
        raise ValueError(f"examples ({examples}) must be a multiple of batch_size ({batch_size})")
    steps = examples // batch_size
    device = torch.device(device) if device is not None else next(model.parameters()).device
    stream = ExampleStream(seed)
    opt = torch.optim.AdamW(param_groups(model, lr, scalar_lr), lr=lr, betas=(0.9, 0.98))
    n_warm = max(1, int(warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / n_warm if s < n_warm else 0.5 * (1 + math.cos(math.pi * (s - n_warm) / max(1, steps - n_warm))))

    def batches(step):
        images, ids = stream.batch(step, batch_size)
        return images.to(device), ids.to(device)

    return fit(model, _loss_fn(loss), batches, opt, steps, scheduler=sched,
               after_step=clamp_logit_scale if loss == "clip" else None, max_seconds=max_seconds,
               progress=progress, log_every=log_every, callback=callback, desc=f"{loss} B={batch_size}")


# ----------------------------------------------------------------------------- shipped checkpoint
CONFIG = {"examples": 49152, "batch_size": 32, "lr": 1e-3,
          "model": SigLIPConfig(vision=ViTConfig(image_size=32, patch_size=4, dim=64, depth=3, heads=4,
                                                 mlp="gelu_tanh", class_token=False, pooling="map"),
                                text=dataclasses.replace(clip_config().text, activation="gelu_tanh"),
                                embed_dim=64).to_dict()}


def build(config: dict) -> SigLIP:
    return SigLIP(SigLIPConfig.from_dict(config["model"]))


def train(model, seed: int, device, max_seconds=None, scale: int = 1) -> dict:
    """Train on :data:`CONFIG`'s examples (times ``scale``: ``python -m vislab.pretrain`` passes 4 on
    a GPU), then evaluate."""
    train_contrastive(model, "sigmoid", CONFIG["batch_size"], CONFIG["examples"] * scale, seed, lr=CONFIG["lr"],
                      device=device, max_seconds=max_seconds, progress=True)
    metrics = evaluate(model)
    metrics.update({"logit_scale": model.logit_scale.exp().item(), "logit_bias": model.logit_bias.item()})
    return {k: round(v, 4) for k, v in metrics.items()}


register(Recipe(name="siglip_shapes", build=build, train=train, config=CONFIG, seed=0, dtype="float16",
                description="chapter 4: SigLIP (MAP head, bidirectional text) on ShapeWorld captions, sigmoid loss"))

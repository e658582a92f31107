"""Chapter 10: one probe suite for every encoder the course trained.

Every shipped encoder is wrapped in an :class:`Encoder` that gives, for a batch of images, the
same three things: a **global** feature ``(B, D)`` (the pooled / CLS feature the model itself
uses), **patch** features on the model's own grid ``(B, D, gh, gw)``, and, where the model has a
text tower, **aligned** image and text embeddings for zero-shot classification and retrieval.
The encoder is frozen; the probes are scikit-learn's (:mod:`vislab.probes`).

The suite (:data:`PROBES`), on one family of 32-pixel ShapeWorld scenes (black background,
continuous positions, medium and large shapes, the union of what the encoders were trained on):

- semantic: the shape (7) and the colour (8) of a single shape, by a linear probe and by k-NN;
  the shape again on scenes whose shape sits on the 3x3 grid of positions (CLIP's and SigLIP's
  training distribution: how much of a gap is distribution shift); zero-shot shape (text towers
  only, on those grid scenes, by the nearest prompt: see :func:`zero_shot_prompts`); image →
  caption retrieval R@1 (text towers only);
- spatial: the 3x3 cell of a single shape (linear); the left/right relation of two *named*
  shapes among a distractor (:data:`RELATION_PAIR`: "is the circle left of the star?", in
  three-shape scenes at continuous positions, the third shape any other one), read linearly from
  the global feature (``relation``) and from the patch tokens pooled to the 4x4 grid and kept in
  their layout (``relation_dense``); the number of shapes, 1 to 3 (linear);
- dense: the shape a patch belongs to, from that patch's feature alone, on a common 4x4 grid of
  8x8-pixel cells (features of finer grids are average-pooled to it; linear, cells with at least
  30% foreground);
- cost: parameters of the image tower, tokens in its sequence, CPU milliseconds per image.

Every accuracy is a binomial proportion on a known number of test items (:func:`probe_sizes`);
:func:`interval_table` prints each with its 95% Wilson interval and :func:`versus_controls` calls
each encoder above, level with ("tie", Newcombe's interval of the difference contains 0) or below
each control.

Baselines: raw pixels (``pixels``) and the supervised ViT's architecture at random init
(``random_vit``). Cambrian-1 (Tong et al., arXiv:2406.16860) combines encoders; :func:`ensemble`
concatenates per-encoder L2-normalised features, the simplest form of that idea.

Shape legend: B batch, n images, D feature width, E aligned embedding width, gh gw an encoder's
patch grid, G the common probe grid (4), L token ids per caption.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vislab.checkpoints import checkpoint_path
from vislab.probes import knn_accuracy, linear_probe_accuracy, retrieval_recall
from vislab.shapes import COLORS, POSITION_PHRASES, SHAPES, SIZES, ShapeWorld

__all__ = ["ENCODERS", "BASELINES", "PROBES", "PROBE_GROUPS", "WORLD", "GRID", "Encoder", "ProbeData",
           "available", "load_encoder", "vit_encoder", "pixel_encoder", "random_vit_encoder", "probe_data", "patch_labels",
           "relation_labels", "relation_scenes", "mirror", "features", "run_probes", "concat_normalized", "ensemble", "measure_cost", "format_table",
           "zero_shot_prompts", "RELATION_PAIR", "probe_sizes", "interval_table", "versus_controls"]

# Shipped checkpoints the suite knows, in the course's order: name -> (label, kind of training).
ENCODERS: dict[str, tuple[str, str]] = {
    "vit_shapes": ("ViT (supervised)", "supervised labels"),
    "convnext_shapes": ("ConvNeXt (supervised)", "supervised labels"),
    "clip_shapes": ("CLIP", "contrastive image-text (softmax)"),
    "siglip_shapes": ("SigLIP", "contrastive image-text (sigmoid)"),
    "dino_shapes": ("DINO", "self-distillation, no labels"),
    "mae_shapes": ("MAE", "masked pixel reconstruction"),
    "eva_shapes": ("EVA", "masked prediction of CLIP features"),
}
BASELINES = ("pixels", "random_vit")

# The evaluation scenes: what every encoder saw in training, or close to it (module docstring).
WORLD = dict(image_size=32, nuisance="none", position="continuous", sizes=(1, 2))
GRID = 4               # the common dense-probe grid: 4x4 cells of 8x8 pixels
RELATION_PAIR = ("circle", "star")     # the relation probe's two named shapes (the third is a distractor)

# probe name -> (group, what it measures); the order of the table's columns.
PROBES: dict[str, tuple[str, str]] = {
    "shape_linear": ("semantic", "shape of one object (7), linear probe"),
    "shape_knn": ("semantic", "shape of one object (7), 20-NN"),
    "color_linear": ("semantic", "colour of one object (8), linear probe"),
    "color_knn": ("semantic", "colour of one object (8), 20-NN"),
    "shape_grid": ("semantic", "shape of one object on the 3x3 grid of positions (7), linear probe"),
    "zero_shot": ("semantic", "shape from text prompts alone, nearest prompt, 3x3 grid scenes (text towers)"),
    "retrieval": ("semantic", "image -> its caption among the test captions, R@1 (text towers)"),
    "position": ("spatial", "3x3 cell of one object (9), linear probe"),
    "relation": ("spatial", "is the circle left of the star, among a distractor (2), linear probe on the global feature"),
    "relation_dense": ("spatial", "the same, linear probe on the 4x4 grid of patch features (layout kept)"),
    "count": ("spatial", "number of objects, 1-3 (3), linear probe"),
    "dense_shape": ("dense", "shape under each 8x8 cell, from that cell's feature (7), linear probe"),
}
PROBE_GROUPS = ("semantic", "spatial", "dense")


# ----------------------------------------------------------------------------------------------
# encoders
# ----------------------------------------------------------------------------------------------
@dataclass
class Encoder:
    """A frozen image encoder seen through one interface.

    Attributes:
        name: checkpoint name (or a baseline's name). label: for tables.
        training: how it was trained, in words.
        module: the image tower (what the cost counts).
        forward_fn: ``images (B, 3, H, W) -> (global (B, D), patches (B, D, gh, gw))``: the global
            feature and the patch features on the encoder's own grid, from one forward pass.
        tokens: length of the token sequence the image tower processes at 32 px (CLS included);
            for the ConvNet, positions of its last stage.
        embed_fn: ``global features (B, D) -> (B, E)`` aligned image embeddings, unnormalised
            (the tower's projection; text towers only), else None.
        text_embed_fn: ``list[str] -> (n, E)`` (text towers only), else None.
    """

    name: str
    label: str
    training: str
    module: nn.Module | None
    forward_fn: Callable
    tokens: int
    embed_fn: Callable | None = None
    text_embed_fn: Callable | None = None
    meta: dict = field(default_factory=dict)

    @property
    def has_text(self) -> bool:
        return self.text_embed_fn is not None

    @property
    def parameters(self) -> int:
        return 0 if self.module is None else sum(p.numel() for p in self.module.parameters())


def available(name: str) -> bool:
    """True when ``data/checkpoints/NAME.safetensors`` exists (the suite never trains an encoder)."""
    if name in BASELINES:
        return True
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; known: {list(ENCODERS) + list(BASELINES)}")
    p = checkpoint_path(name)
    return p.with_name(f"{p.name}.safetensors").exists()


def _vit_forward(vit, pool: str | None = None):
    """ViT-based towers: the model's own pooled feature (CLS or MAP; ``pool="mean"``: the mean of
    the patch tokens) and the patch tokens as a grid."""
    def fn(images):
        tokens = vit.forward_features(images)                                # (B, T, D)
        p = vit.split_tokens(tokens)["patches"]                              # (B, N, D)
        g = p.mean(dim=1) if pool == "mean" else vit.pool(tokens)            # (B, D)
        gh, gw = images.shape[-2] // vit.config.patch_size, images.shape[-1] // vit.config.patch_size
        return g, p.transpose(1, 2).reshape(p.shape[0], p.shape[2], gh, gw)  # (B, D), (B, D, gh, gw)
    return fn


def vit_encoder(vit, name: str, label: str, training: str = "", pool: str | None = None, mean=None,
                std=None) -> Encoder:
    """Any vislab :class:`~vislab.vit.ViT` as an :class:`Encoder` (e.g. a real DINOv2 or CLIP image tower
    from :func:`vislab.pretrained.from_hf`). ``mean``/``std`` (3 floats): normalise the [0, 1] images
    first, as the checkpoint's preprocessing does; ``pool="mean"``: average the patch tokens."""
    fwd = _vit_forward(vit, pool)
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is not None:
        m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        sd = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        inner = fwd

        def fwd(images):
            return inner((images - m.to(images.device)) / sd.to(images.device))
    return Encoder(name=name, label=label, training=training, module=vit, forward_fn=fwd,
                   tokens=vit.config.num_tokens)


def _convnet_forward(net):
    def fn(images):
        out = net.forward_features(images)
        return out["pooled"], out["spatial"]                                 # (B, D), (B, D, h, w)
    return fn


def _text_fns(model, tokenizer):
    def image_embed(pooled):
        return model.visual_projection(pooled)                               # (B, E), as encode_image

    def text_embed(texts):
        ids = tokenizer(list(texts))                                         # (n, L)
        dev = next(model.parameters()).device
        out = [model.encode_text(ids[i:i + 512].to(dev), normalize=True) for i in range(0, len(ids), 512)]
        return torch.cat(out).float().cpu()                                  # (n, E)
    return image_embed, text_embed


def load_encoder(name: str, device="cpu", use_checkpoint: bool = True) -> Encoder:
    """Wrap shipped checkpoint ``name`` (or a baseline) as an :class:`Encoder`, frozen, in eval mode.

    Raises FileNotFoundError when the checkpoint is not shipped (see :func:`available`): the suite
    loads, it never trains a missing encoder. ``use_checkpoint=False`` retrains a shipped one now
    (:func:`vislab.pretrain.load_or_train`; minutes per encoder).
    """
    if name == "pixels":
        return pixel_encoder()
    if name == "random_vit":
        return random_vit_encoder(device=device)
    if not available(name):
        raise FileNotFoundError(f"no shipped checkpoint for {name!r} (data/checkpoints/{name}.safetensors); "
                                f"train it with `python -m vislab.pretrain {name}`")
    from vislab.pretrain import load_or_train

    model, meta = load_or_train(name, device=device, use_checkpoint=use_checkpoint)
    model.requires_grad_(False).eval()
    label, training = ENCODERS[name]
    kw = dict(name=name, label=label, training=training, meta=meta)
    if name == "vit_shapes":
        return Encoder(module=model, forward_fn=_vit_forward(model), tokens=model.config.num_tokens, **kw)
    if name == "convnext_shapes":
        return Encoder(module=model, forward_fn=_convnet_forward(model),
                       tokens=model.config.grid[0] * model.config.grid[1], **kw)
    if name in ("clip_shapes", "siglip_shapes"):
        if name == "clip_shapes":
            from vislab.recipes.clip import tokenizer as clip_tokenizer
            tok = clip_tokenizer()
        else:
            from vislab.text import shapeworld_tokenizer
            tok = shapeworld_tokenizer(context_length=model.config.text.context_length)
        image_embed, text_embed = _text_fns(model, tok)
        vit = model.visual
        return Encoder(module=vit, forward_fn=_vit_forward(vit), tokens=vit.config.num_tokens,
                       embed_fn=image_embed, text_embed_fn=text_embed, **kw)
    if name == "dino_shapes":
        vit = model.encoder
        return Encoder(module=vit, forward_fn=_vit_forward(vit), tokens=vit.config.num_tokens, **kw)
    if name in ("mae_shapes", "eva_shapes"):
        vit = model.encoder        # MIM encoders are read by the mean of their patch tokens (MAE, sec. 4)
        return Encoder(module=vit, forward_fn=_vit_forward(vit, "mean"), tokens=vit.config.num_tokens, **kw)
    raise ValueError(f"no adapter for {name!r}")  # pragma: no cover (ENCODERS and the branches agree)


def pixel_encoder(patch: int = 8) -> Encoder:
    """Raw pixels: the global feature is the flattened image; a patch's is its flattened 8x8x3 pixels."""
    def fn(images):
        B, C, H, W = images.shape
        x = F.unfold(images, patch, stride=patch)                              # (B, C*P*P, N)
        return images.flatten(1), x.reshape(B, C * patch * patch, H // patch, W // patch)   # (B, CHW), (B, D, gh, gw)
    return Encoder(name="pixels", label="raw pixels", training="none", module=None, forward_fn=fn, tokens=0)


def random_vit_encoder(seed: int = 0, device="cpu") -> Encoder:
    """The supervised ViT's architecture (``vit_shapes``' config) at random initialisation."""
    from vislab.recipes.vit import MODEL
    from vislab.vit import ViT

    torch.manual_seed(seed)
    vit = ViT(MODEL.replace(num_classes=0)).to(device).eval().requires_grad_(False)
    return vit_encoder(vit, "random_vit", "ViT, random init", "none")


# ----------------------------------------------------------------------------------------------
# data and labels
# ----------------------------------------------------------------------------------------------
@dataclass
class ProbeData:
    """The suite's scenes: ``single`` (one shape), ``grid`` (one shape on the 3x3 grid of positions),
    ``multi`` (1-3 shapes), ``pairs`` (the relation probe's three-shape scenes, :func:`relation_scenes`), each a dict ``{"train": ShapeBatch, "test": ShapeBatch}``; ``relation``
    and ``dense`` hold the derived labels ``{"train": (n,), "test": (n,)}`` / ``(n, G, G)``."""

    single: dict
    grid: dict
    multi: dict
    pairs: dict
    relation: dict
    dense: dict


def relation_labels(batch, pair=RELATION_PAIR) -> torch.Tensor:
    """For scenes of two or more shapes: 1 if the shape ``pair[0]`` is left of the shape ``pair[1]``
    (its centre has the smaller x), 0 if right of it, -1 where either named shape is missing or
    appears more than once.

    The label needs *which* shape is where: a feature that knows "a circle, a star and a square"
    and where the three shapes are, but not which one is where, gets 50%.
    """
    obj, x = batch.objects["shape"], batch.objects["x"]                        # (n, S), (n, S)
    if obj.shape[1] < 2:
        raise ValueError("relation_labels needs scenes with two or more shapes (ShapeWorld(max_shapes>=2))")
    if len(pair) != 2 or pair[0] == pair[1] or any(p not in SHAPES for p in pair):
        raise ValueError(f"pair must name two different shapes of {SHAPES}, got {pair!r}")
    a, b = SHAPES.index(pair[0]), SHAPES.index(pair[1])
    is_a, is_b = obj == a, obj == b                                            # (n, S)
    ok = (is_a.sum(1) == 1) & (is_b.sum(1) == 1)                               # (n,)
    xa = torch.where(is_a, x, torch.zeros_like(x)).sum(1)                      # (n,) the named shapes' x
    xb = torch.where(is_b, x, torch.zeros_like(x)).sum(1)
    return torch.where(ok, (xa < xb).long(), torch.full_like(a * ok.long(), -1))


def mirror(batch):
    """The scenes flipped left-right, with their objects' x, their relation labels and their
    captions' left/right mirrored. Every ShapeWorld shape is left-right symmetric, so a mirrored
    scene is a scene ShapeWorld could have drawn; it flips :func:`relation_labels`."""
    from vislab.shapes import RELATIONS, ShapeBatch

    swap = {"left": "right", "right": "left"}
    caps = [re.sub(r"\b(left|right)\b", lambda m: swap[m.group(1)], c) for c in batch.captions]
    objects = dict(batch.objects, x=1 - batch.objects["x"])
    labels = dict(batch.labels, x=1 - batch.labels["x"])
    pos = batch.labels["position"]
    labels["position"] = pos - pos % 3 + (2 - pos % 3)                         # column 0 <-> 2
    rel = batch.labels["relation"]
    lr = {RELATIONS.index("left of"): RELATIONS.index("right of"), RELATIONS.index("right of"): RELATIONS.index("left of")}
    labels["relation"] = rel.clone().apply_(lambda r: lr.get(r, r))
    return ShapeBatch(batch.images.flip(-1).contiguous(), caps, labels, objects)


def relation_scenes(n: int, split: str, seed: int, world: dict | None = None, pair=RELATION_PAIR,
                    chunk: int = 2000):
    """``n`` three-shape scenes holding exactly one ``pair[0]``, one ``pair[1]`` and one other shape
    (the distractor), drawn from ShapeWorld by rejection (about 1 scene in 11 qualifies), and their
    :func:`relation_labels` ``(n,)``. Deterministic in ``(split, seed)``."""
    w = ShapeWorld(**{**(WORLD if world is None else world), "min_shapes": 3, "max_shapes": 3})
    kept, labs, got, i = [], [], 0, 0
    while got < n:
        b = w.sample(chunk, split, seed=seed * 1000 + i)
        rel = relation_labels(b, pair)
        keep = torch.nonzero(rel >= 0).flatten()
        kept.append(b[keep])
        labs.append(rel[keep])
        got += len(keep)
        i += 1
        if i > 1000:                                                           # pragma: no cover
            raise RuntimeError("relation_scenes: rejection sampling found too few scenes")
    out = kept[0] if len(kept) == 1 else _cat(kept)
    return out[:n], torch.cat(labs)[:n]


def _cat(batches):
    from vislab.shapes import ShapeBatch

    return ShapeBatch(torch.cat([b.images for b in batches]), [c for b in batches for c in b.captions],
                      {k: torch.cat([b.labels[k] for b in batches]) for k in batches[0].labels},
                      {k: torch.cat([b.objects[k] for b in batches]) for k in batches[0].objects})


def patch_labels(batch, grid: int = GRID, min_fraction: float = 0.3, threshold: float = 0.1) -> torch.Tensor:
    """The shape under each cell of a ``grid x grid`` partition of the image: ``(n, G, G)`` long,
    -1 where less than ``min_fraction`` of the cell is foreground.

    Scenes on a black background only (the suite's): a pixel is foreground when its brightest
    channel exceeds ``threshold``, and it belongs to the object whose centre is nearest (ShapeWorld
    never lets objects overlap). A cell takes the shape of the object owning most of its pixels.
    """
    images = batch.images                                                      # (n, 3, H, W)
    n, _, H, W = images.shape
    if H % grid or W % grid:
        raise ValueError(f"image size {(H, W)} is not divisible by grid={grid}")
    fg = images.amax(dim=1) > threshold                                        # (n, H, W)
    xs = (torch.arange(W) + 0.5) / W
    ys = (torch.arange(H) + 0.5) / H
    ox, oy = batch.objects["x"], batch.objects["y"]                            # (n, S), nan where absent
    d = (xs[None, None, None, :] - ox[:, :, None, None]) ** 2 + (ys[None, None, :, None] - oy[:, :, None, None]) ** 2
    d = torch.nan_to_num(d, nan=float("inf"))                                  # (n, S, H, W)
    owner = d.argmin(dim=1)                                                    # (n, H, W)
    shape_px = torch.gather(batch.objects["shape"], 1, owner.flatten(1)).reshape(n, H, W)   # (n, H, W)
    shape_px = torch.where(fg, shape_px, torch.full_like(shape_px, len(SHAPES)))            # background = 7
    ch, cw = H // grid, W // grid
    cells = shape_px.reshape(n, grid, ch, grid, cw).permute(0, 1, 3, 2, 4).reshape(n, grid, grid, ch * cw)
    counts = F.one_hot(cells, len(SHAPES) + 1).sum(dim=3)                      # (n, G, G, 8)
    frac = counts[..., :len(SHAPES)].sum(-1).float() / (ch * cw)               # (n, G, G)
    label = counts[..., :len(SHAPES)].argmax(-1)                               # (n, G, G)
    return torch.where(frac >= min_fraction, label, torch.full_like(label, -1))


def probe_data(n_train: int = 2000, n_test: int = 1000, seed: int = 0, world: dict | None = None,
               relation_train: int | None = None, relation_test: int | None = None) -> ProbeData:
    """Draw the suite's scenes (deterministic in ``seed``): ``n_train``/``n_test`` single-shape
    scenes, as many on the grid, as many 1-3-shape scenes, and for the relation probe
    ``relation_test`` (default ``n_test``) test and ``relation_train`` (default ``n_train // 2``)
    training scenes of :func:`relation_scenes`, the training ones together with their mirror
    images (:func:`mirror`: twice the data, labels exactly balanced)."""
    if n_train < 50 or n_test < 20:
        raise ValueError(f"n_train must be >= 50 and n_test >= 20, got {n_train}, {n_test}")
    for nm, v in (("relation_train", relation_train), ("relation_test", relation_test)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 10):
            raise ValueError(f"{nm} must be an int >= 10, got {v!r}")
    w = dict(WORLD if world is None else world)
    single = ShapeWorld(**w, max_shapes=1)
    on_grid = ShapeWorld(**{**w, "position": "grid"}, max_shapes=1)
    multi = ShapeWorld(**w, min_shapes=1, max_shapes=3)
    out = {"single": {}, "grid": {}, "multi": {}, "pairs": {}, "relation": {}, "dense": {}}
    for split, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        out["single"][split] = single.sample(n, split, seed=s)
        out["grid"][split] = on_grid.sample(n, split, seed=s)
        out["multi"][split] = multi.sample(n, split, seed=s)
        if split == "train":
            p, rel = relation_scenes(n_train // 2 if relation_train is None else relation_train, split, s, w)
            p, rel = _cat([p, mirror(p)]), torch.cat([rel, 1 - rel])
        else:
            p, rel = relation_scenes(n_test if relation_test is None else relation_test, split, s, w)
        out["pairs"][split] = p
        out["relation"][split] = rel
        out["dense"][split] = patch_labels(out["multi"][split])
    return ProbeData(**out)


# ----------------------------------------------------------------------------------------------
# features and probes
# ----------------------------------------------------------------------------------------------
def _grid_pool(patches: torch.Tensor, grid: int = GRID) -> torch.Tensor:
    """``(B, D, gh, gw)`` → ``(B, G*G, D)``: average-pool (finer grids) or repeat (coarser) to G x G."""
    if patches.shape[-1] >= grid:
        x = F.adaptive_avg_pool2d(patches, grid)                              # (B, D, G, G)
    else:
        x = F.interpolate(patches, size=(grid, grid), mode="nearest")         # (B, D, G, G)
    return x.flatten(2).transpose(1, 2)                                       # (B, G*G, D)


@torch.no_grad()
def _extract(encoder: Encoder, images: torch.Tensor, batch_size: int, device, dense: bool, layout: bool = False):
    """Global features ``(n, D)`` and, with ``dense``, cell features ``(n*G*G, D)`` (``layout``:
    ``(n, G*G*D)``, each image's cells side by side, row-major) in one pass."""
    g_out, d_out = [], []
    for i in range(0, images.shape[0], batch_size):
        g, p = encoder.forward_fn(images[i:i + batch_size].to(device))      # (b, D), (b, D, gh, gw)
        g_out.append(g.float().cpu())
        if dense:
            cells = _grid_pool(p)                                             # (b, G*G, D)
            d_out.append((cells.flatten(1) if layout else cells.flatten(0, 1)).float().cpu())
    return torch.cat(g_out).numpy(), (torch.cat(d_out).numpy() if dense else None)


@torch.no_grad()
def features(encoder: Encoder, data: ProbeData, batch_size: int = 250, device="cpu") -> dict:
    """Every feature the probes read, as numpy arrays: ``{set: {split: (n, D)}}`` for
    ``single``, ``grid``, ``multi``, ``pairs`` (global features), ``dense`` (``(n*G*G, D)``, cells in row-major
    order, from the ``multi`` scenes), ``pairs_cells`` (``(n, G*G*D)``: the ``pairs`` scenes' cell
    features side by side, the layout kept), ``embed`` and ``embed_grid`` (aligned image embeddings of ``single``
    and of ``grid``, text towers only)."""
    if not isinstance(encoder, Encoder):
        raise TypeError(f"expected an Encoder (vislab.compare.load_encoder), got {type(encoder).__name__}")
    out = {"single": {}, "grid": {}, "multi": {}, "pairs": {}, "pairs_cells": {}, "dense": {}}
    if encoder.has_text:
        out["embed"], out["embed_grid"] = {}, {}
    for split in ("train", "test"):
        out["single"][split], _ = _extract(encoder, data.single[split].images, batch_size, device, False)
        out["grid"][split], _ = _extract(encoder, data.grid[split].images, batch_size, device, False)
        out["pairs"][split], out["pairs_cells"][split] = _extract(encoder, data.pairs[split].images, batch_size,
                                                                  device, True, layout=True)
        out["multi"][split], out["dense"][split] = _extract(encoder, data.multi[split].images, batch_size, device,
                                                            True)
        if encoder.has_text:
            for key, src in (("embed", "single"), ("embed_grid", "grid")):
                g = torch.as_tensor(out[src][split])
                out[key][split] = encoder.embed_fn(g.to(device)).float().cpu().numpy()   # (n, E)
    return out


def zero_shot_prompts() -> dict:
    """shape -> the prompts its zero-shot class embedding averages: every full single-shape caption
    that names it (sizes x colours x positions, ShapeWorld's own wording) and "a photo of a {shape}".
    (SigLIP's tower was trained on full captions only, so a bare "a photo of a star" is text it
    never saw.) The zero-shot probe gives each shape the score of its *nearest* prompt, the rule
    of chapters 3 and 4's caption choice. CLIP's prompt ensembling (arXiv:2103.00020 sec. 3.1.4)
    averages the prompts' embeddings instead; that assumes the captions of one class cluster
    around one direction, which holds for our CLIP but not for our SigLIP, whose caption
    embeddings spread out (the norm of a class's mean embedding is about half CLIP's), so an
    averaged prototype put SigLIP below chance while its nearest caption names the right shape."""
    out = {}
    for s in SHAPES:
        caps = [f"a photo of a {s}"]
        for size in (SIZES[i] for i in WORLD["sizes"]):
            article = "an" if size[0] in "aeiou" else "a"
            caps += [f"{article} {size} {c} {s} {p}" for c in COLORS for p in POSITION_PHRASES]
        out[s] = caps
    return out


def _zero_shot(encoder: Encoder, feats: dict, data: ProbeData) -> float:
    prompts = zero_shot_prompts()
    img = F.normalize(torch.as_tensor(feats["embed_grid"]["test"]), dim=-1)  # (n, E), grid scenes
    scores = torch.stack([(img @ F.normalize(encoder.text_embed_fn(prompts[s]), dim=-1).t()).amax(dim=1)
                          for s in SHAPES], dim=1)                            # (n, 7): nearest prompt per shape
    pred = scores.argmax(dim=1)                                               # (n,)
    return float((pred == data.grid["test"].labels["shape"]).float().mean())


def _retrieval(encoder: Encoder, feats: dict, data: ProbeData) -> float:
    img = F.normalize(torch.as_tensor(feats["embed"]["test"]), dim=-1)       # (n, E)
    txt = F.normalize(encoder.text_embed_fn(data.single["test"].captions), dim=-1)   # (n, E)
    return retrieval_recall(img @ txt.t(), ks=(1,))["R@1"]


def run_probes(encoder: Encoder, feats: dict, data: ProbeData, probes=None, k: int = 20) -> dict:
    """Accuracies (fractions) of ``probes`` (default: all of :data:`PROBES`) for one encoder;
    probes that need a text tower are NaN for encoders without one."""
    probes = list(PROBES) if probes is None else list(probes)
    bad = [p for p in probes if p not in PROBES]
    if bad:
        raise ValueError(f"unknown probes {bad}; known: {list(PROBES)}")
    s, m, p = data.single, data.multi, data.pairs
    res = {}
    for name in probes:
        if name in ("zero_shot", "retrieval") and not encoder.has_text:
            res[name] = float("nan")
        elif name == "zero_shot":
            res[name] = _zero_shot(encoder, feats, data)
        elif name == "retrieval":
            res[name] = _retrieval(encoder, feats, data)
        elif name in ("shape_linear", "shape_knn", "color_linear", "color_knn"):
            label = name.split("_")[0]
            args = (feats["single"]["train"], s["train"].labels[label], feats["single"]["test"], s["test"].labels[label])
            res[name] = linear_probe_accuracy(*args) if name.endswith("linear") else knn_accuracy(*args, k=k)
        elif name == "shape_grid":
            res[name] = linear_probe_accuracy(feats["grid"]["train"], data.grid["train"].labels["shape"],
                                              feats["grid"]["test"], data.grid["test"].labels["shape"])
        elif name == "position":
            res[name] = linear_probe_accuracy(feats["single"]["train"], s["train"].labels["position"],
                                              feats["single"]["test"], s["test"].labels["position"])
        elif name == "count":
            res[name] = linear_probe_accuracy(feats["multi"]["train"], m["train"].labels["count"],
                                              feats["multi"]["test"], m["test"].labels["count"])
        elif name in ("relation", "relation_dense"):
            key = "pairs" if name == "relation" else "pairs_cells"
            res[name] = linear_probe_accuracy(feats[key]["train"], data.relation["train"],
                                              feats[key]["test"], data.relation["test"])
        elif name == "dense_shape":
            ytr, yte = data.dense["train"].flatten(), data.dense["test"].flatten()    # (n*G*G,)
            ktr, kte = ytr >= 0, yte >= 0
            res[name] = linear_probe_accuracy(feats["dense"]["train"][ktr.numpy()], ytr[ktr],
                                              feats["dense"]["test"][kte.numpy()], yte[kte])
    return res


def concat_normalized(*blocks) -> np.ndarray:
    """``(n, D_1), (n, D_2), ...`` → ``(n, D_1 + D_2 + ...)``: each row of each block divided by its L2
    norm, then the blocks side by side, so that every encoder weighs the same in a distance."""
    if len(blocks) < 1:
        raise ValueError("give at least one (n, D) block")
    parts = [np.asarray(x, dtype=np.float32) for x in blocks]
    if any(x.ndim != 2 for x in parts) or len({x.shape[0] for x in parts}) != 1:
        raise ValueError(f"blocks must be 2-D with the same number of rows, got {[x.shape for x in parts]}")
    parts = [x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8) for x in parts]
    return np.concatenate(parts, axis=1)                                      # (n, D_1 + D_2 + ...)


def ensemble(feature_sets: list) -> dict:
    """Cambrian-1-style combination: the per-encoder features, each L2-normalised per row, concatenated.

    Args:
        feature_sets: the :func:`features` dicts of two or more encoders (same :class:`ProbeData`).
    Returns:
        a dict of the same layout as :func:`features`, widths summed (``embed`` dropped).
    """
    if len(feature_sets) < 2:
        raise ValueError("ensemble needs the features of at least two encoders")
    out = {}
    for key in ("single", "grid", "multi", "pairs", "pairs_cells", "dense"):
        out[key] = {}
        for split in ("train", "test"):
            parts = [f[key][split] for f in feature_sets]
            if len({len(x) for x in parts}) != 1:
                raise ValueError(f"the encoders' {key}/{split} features differ in length: use the same ProbeData")
            out[key][split] = concat_normalized(*parts)                       # (n, D_1 + D_2 + ...)
    return out


@torch.no_grad()
def measure_cost(encoder: Encoder, images: torch.Tensor, repeats: int = 3) -> dict:
    """``{"params": int, "tokens": int, "ms_per_image": float}``: CPU time of the global feature of
    ``images`` (best of ``repeats``, at torch's current thread count), per image."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] < 1:
        raise ValueError("images must be a non-empty (B, C, H, W) tensor")
    encoder.forward_fn(images[:8])                                            # warm-up
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        encoder.forward_fn(images)
        best = min(best, time.perf_counter() - t0)
    return {"params": encoder.parameters, "tokens": encoder.tokens, "ms_per_image": 1000 * best / images.shape[0]}


def format_table(results: dict, probes=None, percent: bool = True) -> str:
    """A plain-text table: one row per encoder (``results[label] = {probe: value}``), one column
    per probe; NaN prints as "-"."""
    probes = list(PROBES) if probes is None else list(probes)
    width = max([len(str(r)) for r in results] + [10])
    cols = [max(len(p), 6) for p in probes]
    lines = [" " * width + " | " + " ".join(p.rjust(c) for p, c in zip(probes, cols))]
    lines.append("-" * len(lines[0]))
    for row, vals in results.items():
        cells = []
        for p, c in zip(probes, cols):
            v = vals.get(p, float("nan"))
            txt = "-" if v is None or (isinstance(v, float) and np.isnan(v)) else (f"{100 * v:.1f}" if percent else f"{v}")
            cells.append(txt.rjust(c))
        lines.append(str(row).ljust(width) + " | " + " ".join(cells))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# uncertainty
# ----------------------------------------------------------------------------------------------
def probe_sizes(data: ProbeData) -> dict:
    """probe -> the number of test items its accuracy is a proportion of (scenes, or cells for
    ``dense_shape``; retrieval: the test captions)."""
    n_single, n_grid = len(data.single["test"]), len(data.grid["test"])
    sizes = {p: n_single for p in ("shape_linear", "shape_knn", "color_linear", "color_knn", "position",
                                   "retrieval")}
    sizes.update(shape_grid=n_grid, zero_shot=n_grid, count=len(data.multi["test"]),
                 relation=len(data.pairs["test"]), relation_dense=len(data.pairs["test"]),
                 dense_shape=int((data.dense["test"] >= 0).sum()))
    return sizes


def _count(acc: float, n: int) -> int:
    return int(round(float(acc) * n))


def interval_table(results: dict, sizes: dict, probes=None) -> str:
    """One row per probe, one column per encoder: ``acc [low, high]`` in per cent, the 95% Wilson
    interval on ``sizes[probe]`` test items; "-" where a probe does not apply (NaN)."""
    from vislab.stats import accuracy_interval

    probes = [p for p in (list(PROBES) if probes is None else list(probes))]
    names = list(results)
    cells = {}
    for p in probes:
        for r in names:
            v = results[r].get(p, float("nan"))
            if v is None or np.isnan(v):
                cells[p, r] = "-"
            else:
                lo, hi = accuracy_interval(_count(v, sizes[p]), sizes[p])
                cells[p, r] = f"{100 * v:.0f} [{100 * lo:.0f},{100 * hi:.0f}]"
    wp = max(len(p) for p in probes) + 1
    wc = {r: max(len(str(r)[:12]), max(len(cells[p, r]) for p in probes)) for r in names}
    lines = [" " * wp + " | " + " ".join(str(r)[:12].rjust(wc[r]) for r in names)]
    lines.append("-" * len(lines[0]))
    lines += [f"{p:<{wp}} | " + " ".join(cells[p, r].rjust(wc[r]) for r in names) for p in probes]
    return "\n".join(lines)


def versus_controls(results: dict, sizes: dict, name: str, probe: str, controls=("ViT, random init", "raw pixels"),
                    confidence: float = 0.95) -> dict:
    """control -> ``"above"``, ``"below"`` or ``"tie"``: encoder ``name``'s accuracy on ``probe``
    against each control's (rows of ``results``), by Newcombe's interval of the difference
    (:func:`vislab.stats.difference_interval`): a tie where it contains 0."""
    from vislab.stats import difference_interval

    n = sizes[probe]
    out = {}
    for c in controls:
        a, b = results[name][probe], results[c][probe]
        if np.isnan(a) or np.isnan(b):
            raise ValueError(f"{probe!r} has no accuracy for {name if np.isnan(a) else c!r} (NaN): nothing to compare")
        lo, hi = difference_interval(_count(a, n), n, _count(b, n), n, confidence)
        out[c] = "above" if lo > 0 else ("below" if hi < 0 else "tie")
    return out

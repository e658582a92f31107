"""The high-resolution detail task of chapters 7 and 9, and the checkpoint it ships.

Each canvas is a ShapeWorld scene drawn at half the canvas resolution and blown up (one
big, soft shape on a textured background) with one small, sharp white *glyph* (a ShapeWorld
shape on a 24 px stamp) pasted away from it. Two questions:

- ``glyph``: which of the 7 shapes is the small glyph? Needs detail: downscaled to one
  32 px view, the glyph is 2-4 px across.
- ``relation``: is the glyph left of, right of, above or below the big shape? Needs the
  layout: the two are usually in different 32 px tiles.

The encoder is :class:`vislab.internvit.MiniInternVL` (a small ViT, pixel shuffle, MLP
projector) with one head per question, each with an extra "none" class. It is trained on
32 px *views*: random native-resolution crops (labelled with what they contain) and
downscaled whole canvases, so that it has seen both kinds of input the pipelines give it.
At test time a pipeline turns a canvas into views (one downscaled view; InternVL's dynamic
tiles + thumbnail; LLaVA-NeXT's AnyRes tiles + thumbnail) and :func:`read_views` answers
each question with the most confident view.

    python -m vislab.pretrain detail_glyphs      # writes data/checkpoints/detail_glyphs.*
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from vislab import anyres, internvit
from vislab.recipes import Recipe, register
from vislab.shapes import RELATIONS, SHAPES, ShapeWorld
from vislab.train import fit
from vislab.vit import ViTConfig

__all__ = ["NONE", "CANVAS_SIZES", "DetailCanvases", "make_canvases", "training_views", "flip_views", "views_for",
           "read_views", "evaluate", "CONTROLS", "equal_token_views", "evaluate_equal_tokens", "CONFIG", "build",
           "train"]

NONE = len(SHAPES)          # the glyph head's extra "no glyph in this view" class (index 7)
TILE = 32                   # the encoder's input side, S (InternVL: 448)
GLYPH = 24                  # side of the stamp the small glyph is drawn on
# Canvas sizes (width, height). InternVL's rule with 32 px tiles and at most 12 tiles maps every
# one of them onto a grid of whole tiles, so tiles are at native resolution.
CANVAS_SIZES = ((128, 96), (96, 128), (128, 64), (64, 128), (96, 96), (192, 64))


@dataclass
class DetailCanvases:
    """A batch of canvases of one size.

    Attributes:
        images: ``(n, 3, H, W)`` in [0, 1].
        glyph, big: ``(n,)`` shape indices (into ``vislab.shapes.SHAPES``).
        relation: ``(n,)`` where the glyph is relative to the big shape, an index into
            ``vislab.shapes.RELATIONS`` (left of, right of, above, below; the larger offset wins).
        glyph_xy, big_xy: ``(n, 2)`` centres in pixels (x, y).
        big_radius: ``(n,)`` radius of the big shape in pixels.
    """

    images: torch.Tensor
    glyph: torch.Tensor
    big: torch.Tensor
    relation: torch.Tensor
    glyph_xy: torch.Tensor
    big_xy: torch.Tensor
    big_radius: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]


def make_canvases(n: int, size=(128, 96), seed: int = 0, split: str = "train") -> DetailCanvases:
    """Draw ``n`` canvases of ``size = (width, height)``; deterministic given the arguments."""
    W, H = size
    if W % 4 or H % 4 or W < 2 * GLYPH or H < 2 * GLYPH:
        raise ValueError(f"canvas size must be multiples of 4 and at least {2 * GLYPH} px, got {size}")
    base = 1000 * seed + 17 * W + H
    world = ShapeWorld(image_size=(H // 2, W // 2), nuisance="medium", sizes=(1, 2), distractors=0, noise=0.0)
    scene = world.sample(n, split, seed=base)
    images = F.interpolate(scene.images, size=(H, W), mode="bilinear", align_corners=False)   # (n, 3, H, W)
    # ShapeWorld's x, y are fractions of the width and height; radii are fractions of the shorter side
    big_xy = torch.stack([scene.labels["x"] * W, scene.labels["y"] * H], 1)                    # (n, 2) px
    radius = torch.tensor([0.11, 0.16, 0.22])[scene.labels["size"]] * min(H, W)               # (n,) px
    stamp = ShapeWorld(image_size=GLYPH, position="continuous", sizes=(2,), rotation=True, scale_jitter=0.1,
                       background="black", noise=0.0, distractors=0, color_jitter=0.0)
    glyphs = stamp.sample(n, split, seed=base + 1)
    ink = glyphs.images.amax(1, keepdim=True)                                                  # (n, 1, G, G)
    ink = ink / ink.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    g = torch.Generator().manual_seed(base + 2)
    # glyph position: away from the big shape (rejection sampling, vectorised)
    xs = torch.randint(0, W - GLYPH + 1, (n,), generator=g)
    ys = torch.randint(0, H - GLYPH + 1, (n,), generator=g)
    for _ in range(50):
        cx, cy = xs + GLYPH / 2, ys + GLYPH / 2
        clash = torch.hypot(cx - big_xy[:, 0], cy - big_xy[:, 1]) < radius * 1.2 + GLYPH / 2
        if not clash.any():
            break
        m = int(clash.sum())
        xs[clash] = torch.randint(0, W - GLYPH + 1, (m,), generator=g)
        ys[clash] = torch.randint(0, H - GLYPH + 1, (m,), generator=g)
    for i in range(n):
        y, x = int(ys[i]), int(xs[i])
        patch = images[i, :, y:y + GLYPH, x:x + GLYPH]
        images[i, :, y:y + GLYPH, x:x + GLYPH] = patch * (1 - ink[i]) + ink[i]                # white ink
    images = (images + 0.03 * torch.randn(images.shape, generator=g)).clamp(0, 1)
    glyph_xy = torch.stack([xs + GLYPH / 2, ys + GLYPH / 2], 1).float()
    dx, dy = glyph_xy[:, 0] - big_xy[:, 0], glyph_xy[:, 1] - big_xy[:, 1]
    relation = torch.where(dx.abs() >= dy.abs(), (dx >= 0).long(), 2 + (dy >= 0).long())   # RELATIONS order
    return DetailCanvases(images, glyphs.labels["shape"], scene.labels["shape"], relation, glyph_xy, big_xy, radius)


def _downscale(images: torch.Tensor, side: int = TILE) -> torch.Tensor:
    return F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def training_views(canvases: DetailCanvases, crops_per_canvas: int = 4, seed: int = 0):
    """Views the encoder learns from, with labels for both questions.

    Per canvas: ``crops_per_canvas`` random 32 px crops at native resolution (every other
    one placed to contain the glyph's centre) and the whole canvas downscaled to 32 px. A crop's
    ``glyph`` label is the glyph's shape if the glyph's centre is inside it, else "none" (7);
    its ``relation`` label is the relation if the crop holds both centres, else "none" (4).
    The downscaled canvas carries both labels.

    Returns:
        ``(views (m, 3, 32, 32), {"glyph": (m,), "relation": (m,)})``.
    """
    g = torch.Generator().manual_seed(seed)
    n, _, H, W = canvases.images.shape
    S = TILE
    views, lab_g, lab_b = [], [], []
    for i in range(n):
        for k in range(crops_per_canvas):
            if k % 2 == 0:                                         # a crop around the glyph
                cx, cy = (int(v) for v in canvases.glyph_xy[i])
                x0 = int(torch.randint(max(0, cx - S + 1), min(W - S, cx) + 1, (1,), generator=g))
                y0 = int(torch.randint(max(0, cy - S + 1), min(H - S, cy) + 1, (1,), generator=g))
            else:                                                  # anywhere
                x0 = int(torch.randint(0, W - S + 1, (1,), generator=g))
                y0 = int(torch.randint(0, H - S + 1, (1,), generator=g))
            views.append(canvases.images[i, :, y0:y0 + S, x0:x0 + S])
            inside = lambda xy: bool(x0 <= xy[0] < x0 + S and y0 <= xy[1] < y0 + S)  # noqa: E731
            lab_g.append(int(canvases.glyph[i]) if inside(canvases.glyph_xy[i]) else NONE)
            both = inside(canvases.glyph_xy[i]) and inside(canvases.big_xy[i])
            lab_b.append(int(canvases.relation[i]) if both else len(RELATIONS))
    views = torch.cat([torch.stack(views), _downscale(canvases.images)])           # (m, 3, S, S)
    labels = {"glyph": torch.cat([torch.tensor(lab_g), canvases.glyph]),
              "relation": torch.cat([torch.tensor(lab_b), canvases.relation])}
    return views, labels


def flip_views(views: torch.Tensor, labels: dict, generator: torch.Generator):
    """Mirror each view left-right and/or top-bottom with probability 1/2 (data augmentation).

    Shapes are drawn at random rotations, so a mirrored glyph is still a glyph of its class;
    the relation flips with the image: "left of" <-> "right of", "above" <-> "below".
    Returns ``(views, labels)``, new tensors.
    """
    n = views.shape[0]
    fh = (torch.rand(n, generator=generator) < 0.5).to(views.device)
    fv = (torch.rand(n, generator=generator) < 0.5).to(views.device)
    views = torch.where(fh[:, None, None, None], views.flip(-1), views)             # (n, 3, S, S)
    views = torch.where(fv[:, None, None, None], views.flip(-2), views)
    rel = labels["relation"].clone()
    horizontal, vertical = (rel < 2) & fh, (rel >= 2) & (rel < 4) & fv             # 4 is "none"
    rel[horizontal] = 1 - rel[horizontal]                                          # left <-> right
    rel[vertical] = 5 - rel[vertical]                                              # above <-> below
    return views, {**labels, "relation": rel}


def views_for(image: torch.Tensor, pipeline: str, max_num: int = 12,
              grids=None) -> torch.Tensor:
    """The 32 px views a pipeline makes of one canvas ``(3, H, W)``.

    Pipelines: ``"downscale"`` (the whole image squashed to one view: InternVL with
    max_num=1), ``"internvl"`` (dynamic tiles + thumbnail), ``"internvl_tiles"`` (tiles only),
    ``"anyres"`` (LLaVA-NeXT: thumbnail + resize-and-pad tiles over ``grids``),
    ``"anyres_tiles"`` (tiles only); ``grids`` (canvas sizes) is used by the AnyRes pipelines
    only (default: every grid of 32 px tiles with at most ``max_num`` tiles).
    Returns ``(T, 3, 32, 32)``.
    """
    if image.dim() != 3:
        raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
    H, W = int(image.shape[1]), int(image.shape[2])
    if pipeline == "downscale":
        return _downscale(image[None])                                            # (1, 3, S, S)
    if pipeline in ("internvl", "internvl_tiles"):
        grid = internvit.tile_grid(W, H, 1, max_num, TILE)
        return internvit.tile_tensor(image, grid, TILE, use_thumbnail=pipeline == "internvl")
    if pipeline in ("anyres", "anyres_tiles"):
        grids = grids if grids is not None else anyres.grid_resolutions(TILE, 6, 6, max_tiles=max_num)
        out = anyres.anyres_tiles(image, grids, TILE)
        return torch.stack(out if pipeline == "anyres" else out[1:])               # (T, 3, S, S)
    raise ValueError(f"unknown pipeline {pipeline!r}; use downscale, internvl, internvl_tiles, anyres "
                     "or anyres_tiles")


@torch.no_grad()
def read_views(model, views: torch.Tensor) -> dict:
    """Answer each question from a set of views: the answer whose probability is highest in
    any single view ("the most confident view wins"); the "none" class (last) is never answered.

    Returns ``{name: predicted class index}``.
    """
    logits = model(views)                                                         # {name: (T, K + 1)}
    return {name: int(lg.softmax(-1)[:, :-1].amax(0).argmax()) for name, lg in logits.items()}


def _score(model, canvases: DetailCanvases, views_of) -> dict:
    """Accuracy of each question (and of both at once) when canvas ``i`` is read through
    ``views_of(i)`` (a ``(T, 3, S, S)`` stack), plus views per image."""
    model.eval()
    hits = {"glyph": 0, "relation": 0, "both": 0}
    n_views = 0
    for i in range(len(canvases)):
        views = views_of(i)
        n_views += views.shape[0]
        pred = read_views(model, views)
        ok_g = pred["glyph"] == int(canvases.glyph[i])
        ok_r = pred["relation"] == int(canvases.relation[i])
        hits["glyph"] += ok_g
        hits["relation"] += ok_r
        hits["both"] += ok_g and ok_r
    n = len(canvases)
    return {**{k: v / n for k, v in hits.items()}, "views": n_views / n}


@torch.no_grad()
def evaluate(model, canvases: DetailCanvases, pipeline: str, **kwargs) -> dict:
    """Accuracy of each question (and of both at once) under a pipeline, plus views per image."""
    return _score(model, canvases, lambda i: views_for(canvases.images[i], pipeline, **kwargs))


# ------------------------------------------------------------------------- equal-token controls

CONTROLS = ("jitter", "blur")      # the equal-token controls of chapter 7, section 7


def equal_token_views(image: torch.Tensor, control: str, pipeline: str = "internvl", max_num: int = 12,
                      jitter: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """As many 32 px views as ``views_for(image, pipeline, max_num)`` makes, without its detail.

    The tiled pipelines give the model more views (more tokens) *and* native-resolution
    detail; these controls keep the first and remove the second, from the same canvas:

    - ``"jitter"``: view 0 is the whole canvas downscaled to one view (the ``"downscale"``
      pipeline's view, InternVL's thumbnail); each other view is the canvas with 0 to
      ``jitter`` px cut from each of its four sides at random, downscaled the same way: the
      kind of view the encoder was trained on, shifted and zoomed by a pixel or two.
    - ``"blur"``: the pipeline's own views of the canvas after a round trip through one view
      (downscaled to 32 px, then upsampled bilinearly to ``(H, W)``): the same grid and layout
      as the tiles, holding only the detail of the downscaled view.

    Returns ``(T, 3, 32, 32)`` with the same T as ``views_for(image, pipeline, max_num=max_num)``.
    """
    if control not in CONTROLS:
        raise ValueError(f"unknown control {control!r}; use {' or '.join(CONTROLS)}")
    if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
        raise ValueError(f"jitter must be an int >= 0 (pixels), got {jitter!r}")
    views = views_for(image, pipeline, max_num=max_num)                       # (T, 3, S, S): validates image
    H, W = int(image.shape[1]), int(image.shape[2])
    if control == "blur":
        low = _downscale(image[None])                                          # (1, 3, S, S)
        blurred = F.interpolate(low, size=(H, W), mode="bilinear", align_corners=False)[0]   # (3, H, W)
        return views_for(blurred, pipeline, max_num=max_num)
    if 2 * jitter >= min(H, W):
        raise ValueError(f"jitter {jitter} px would cut a {W}x{H} canvas away")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    out = [_downscale(image[None])[0]]                                         # (3, S, S): the thumbnail
    for _ in range(views.shape[0] - 1):
        left, top, right, bottom = (int(v) for v in torch.randint(0, jitter + 1, (4,), generator=g))
        out.append(_downscale(image[None, :, top:H - bottom, left:W - right])[0])
    return torch.stack(out)                                                    # (T, 3, S, S)


@torch.no_grad()
def evaluate_equal_tokens(model, canvases: DetailCanvases, control: str, pipeline: str = "internvl",
                          seed: int = 0, **kwargs) -> dict:
    """:func:`evaluate` with :func:`equal_token_views` in place of the pipeline's views.

    Canvas ``i`` draws its jitter from ``torch.Generator().manual_seed(seed + i)``, so the result
    is deterministic; ``kwargs`` go to :func:`equal_token_views` (``max_num``, ``jitter``).
    Returns the same keys as :func:`evaluate`; ``"views"`` equals the pipeline's own.
    """
    return _score(model, canvases, lambda i: equal_token_views(
        canvases.images[i], control, pipeline, generator=torch.Generator().manual_seed(seed + i), **kwargs))


# ----------------------------------------------------------------------------------- recipe

CONFIG = {
    "vit": {"image_size": TILE, "patch_size": 8, "dim": 64, "depth": 3, "heads": 4, "num_classes": 0},
    "llm_dim": 64,
    "heads": {"glyph": len(SHAPES) + 1, "relation": len(RELATIONS) + 1},
    "scale_factor": 0.5,
    "train": {"canvases_per_size": 1000, "crops_per_canvas": 2, "steps": 3000, "batch_size": 128, "lr": 2e-3,
              "weight_decay": 0.05, "flips": True},
}


def build(config: dict) -> internvit.MiniInternVL:
    """A fresh :class:`~vislab.internvit.MiniInternVL` from ``CONFIG``-like dict."""
    return internvit.MiniInternVL(ViTConfig(**config["vit"]), config["llm_dim"], dict(config["heads"]),
                                  config["scale_factor"])


def train(model, seed: int, device, max_seconds=None, config: dict = CONFIG, progress: bool = True,
          callback=None, scale: int = 1) -> dict:
    """Train on views of fresh canvases of every size; return test accuracies per pipeline.

    ``scale`` multiplies the step budget (``python -m vislab.pretrain`` passes 4 on a GPU)."""
    t = config["train"]
    steps = t["steps"] * scale
    views, labels = [], {"glyph": [], "relation": []}
    for k, size in enumerate(CANVAS_SIZES):
        c = make_canvases(t["canvases_per_size"], size, seed=seed * 100 + k, split="train")
        v, lab = training_views(c, t["crops_per_canvas"], seed=seed * 100 + k)
        views.append(v)
        for name in labels:
            labels[name].append(lab[name])
    views = torch.cat(views).to(device)
    labels = {k: torch.cat(v).to(device) for k, v in labels.items()}
    g = torch.Generator().manual_seed(seed)
    B = t["batch_size"]

    def batches(step):
        idx = torch.randint(0, views.shape[0], (B,), generator=g).to(device)
        x, y = views[idx], {k: v[idx] for k, v in labels.items()}
        return flip_views(x, y, g) if t.get("flips") else (x, y)

    def loss_fn(m, batch):
        x, y = batch
        out = m(x)
        losses = {k: F.cross_entropy(out[k], y[k]) for k in out}
        acc = {f"acc_{k}": (out[k].argmax(-1) == y[k]).float().mean().item() for k in out}
        return sum(losses.values()), acc

    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t["lr"], total_steps=steps, pct_start=0.1)
    hist = fit(model, loss_fn, batches, opt, steps, scheduler=sched, max_seconds=max_seconds,
               desc="detail_glyphs", progress=progress, callback=callback, log_every=10)
    model.cpu().eval()
    metrics = {"train_seconds": round(hist.seconds, 1), "steps": hist.steps_done,
               "stopped_early": hist.stopped_early}
    test = make_canvases(100, (128, 96), seed=seed + 12345, split="test")
    for pipeline in ("downscale", "internvl"):
        r = evaluate(model, test, pipeline)
        metrics[f"{pipeline}_glyph"] = round(r["glyph"], 4)
        metrics[f"{pipeline}_relation"] = round(r["relation"], 4)
    model.to(device)
    return metrics


register(Recipe(
    name="detail_glyphs",
    build=build,
    train=train,
    config=CONFIG,
    seed=0,
    description="chapters 7/9: MiniInternVL (ViT 32px/8, pixel shuffle, MLP projector) on glyph + relation canvases",
))

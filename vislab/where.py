""""Where is the shape?": a ShapeWorld task that needs positions, and ways to run a ViT at 2x.

Chapter 2 asks what a ViT trained at 32x32 can do with a 64x64 image. On a task that asks
*which* shape is shown, a bag of patches without positions is enough, so every way of handling
positions at the new resolution scores the same. This module's task asks *where* it is: one
shape (any of 7, 8 colours, medium or large) at a continuous position on a black 32 px canvas,
labelled by the quadrant that holds its centre (:data:`QUADRANTS`, 4 balanced classes, chance
25%). Nothing in a patch says where the patch is (shapes never touch the border), so a model
with its positions removed is at chance (:func:`positions_zeroed`).

The ways of feeding a 64 px image to a model trained at 32 px, each a function here:

- :func:`table_kept`: the learned table keeps its trained entries on the top-left patches and
  the new patches get none (the closest thing to "no change");
- bicubic interpolation of the table: what :class:`vislab.vit.ViT` does by default;
- 2D RoPE as is: patch positions 0..7 where training saw 0..3 (extrapolated angles);
- :func:`rope_interpolated`: 2D RoPE with position interpolation (positions scaled by 32/64,
  so 0, 0.5, ..., 3.5: inside the trained range; Chen et al. 2023, arXiv:2306.15595, for text);
- :func:`tiled_probs`: four 32 px tiles, each classified on its own, distributions summed.

:func:`resolution_strategies` gathers them (plus the downscaled reference, :func:`thumbnail`)
under the names of :data:`STRATEGIES`; :func:`strategy_hits` counts each one's correct answers.

Shape legend: n images, B batch, K = 4 classes, H W image side.
"""

from __future__ import annotations

import copy

import torch

from vislab.shapes import ShapeWorld
from vislab.validate import check_int, check_number
from vislab.vit import AxialRoPE, ViT

__all__ = ["QUADRANTS", "TASK", "where_world", "quadrant", "where_set", "where_pool", "table_kept",
           "InterpolatedRoPE", "rope_interpolated", "positions_zeroed", "tiles_of", "tiled_probs", "probs",
           "majority_share", "thumbnail", "STRATEGIES", "resolution_strategies", "strategy_hits"]

QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
TASK = dict(image_size=32, nuisance="none", position="continuous", sizes=(1, 2))


def where_world(image_size: int = TASK["image_size"]) -> ShapeWorld:
    """The task's ShapeWorld at any image size (scenes scale with the image)."""
    return ShapeWorld(**{**TASK, "image_size": image_size})


def quadrant(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(n,)`` long: the quadrant (index into :data:`QUADRANTS`) of centres ``x, y`` in [0, 1], y down."""
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)) or x.shape != y.shape:
        raise ValueError("x and y must be tensors of the same shape")
    return (y >= 0.5).long() * 2 + (x >= 0.5).long()


def where_set(n: int, split: str = "test", image_size: int = TASK["image_size"], seed: int = 0):
    """``(images (n, 3, H, H), labels (n,))``: scenes and their quadrants. The same ``(n, split,
    seed)`` gives the same scenes at every ``image_size`` (rendered with more pixels)."""
    check_int("n", n, minimum=1)
    b = where_world(image_size).sample(n, split, seed=seed)
    return b.images, quadrant(b.labels["x"], b.labels["y"])


def where_pool(n: int = 8000, seed: int = 0):
    """A fixed pool of training scenes ``(images (n, 3, 32, 32), labels (n,))``."""
    return where_set(n, "train", seed=seed)


def majority_share(labels: torch.Tensor) -> float:
    """The trivial strategy's accuracy: always answer the most frequent label."""
    return torch.bincount(labels).max().item() / max(1, labels.numel())


def table_kept(model: ViT, image_size: int) -> ViT:
    """A copy of ``model`` for ``image_size`` whose table keeps its trained entries on the same
    top-left patches; the new patches get no position (zeros)."""
    check_int("image_size", image_size, minimum=1)
    if model.pos_embed is None:
        raise ValueError("table_kept needs a model with a learned position table")
    big = ViT(model.config.replace(image_size=image_size)).to(model.pos_embed.device).eval()
    state = model.state_dict()
    (g0h, g0w), (gh, gw) = model.config.grid, big.config.grid
    if gh < g0h or gw < g0w:
        raise ValueError(f"image_size {image_size} gives a {gh}x{gw} grid, smaller than the trained {g0h}x{g0w}")
    p = int(model.config.class_token)
    old = state["pos_embed"]                                               # (1, p + g0h*g0w, D)
    table = old.new_zeros(1, p + gh * gw, old.shape[-1])                   # (1, p + gh*gw, D)
    table[:, :p] = old[:, :p]
    table[:, p:].view(1, gh, gw, -1)[:, :g0h, :g0w] = old[:, p:].view(1, g0h, g0w, -1)
    state["pos_embed"] = table
    big.load_state_dict(state)
    return big


class InterpolatedRoPE(AxialRoPE):
    """2D RoPE whose patch coordinates are multiplied by ``scale`` (position interpolation):
    with ``scale = 32/64`` a 64 px image's rows 0..7 become 0, 0.5, ..., 3.5, the range the
    model was trained on."""

    def __init__(self, head_dim: int, theta: float, scale: float):
        super().__init__(head_dim, theta)
        check_number("scale", scale, 0.0, strict_min=True)
        self.scale = float(scale)

    def forward(self, grid, num_prefix_tokens: int, device=None, dtype=torch.float32):
        gh, gw = grid
        inv_freq = self.inv_freq.to(device) if device is not None else self.inv_freq
        rows = torch.arange(gh, device=inv_freq.device, dtype=torch.float32) * self.scale
        cols = torch.arange(gw, device=inv_freq.device, dtype=torch.float32) * self.scale
        ang_r = torch.outer(rows, inv_freq)[:, None, :].expand(gh, gw, -1)   # (gh, gw, Dh/4)
        ang_c = torch.outer(cols, inv_freq)[None, :, :].expand(gh, gw, -1)   # (gh, gw, Dh/4)
        ang = torch.cat([ang_r, ang_r, ang_c, ang_c], dim=-1).reshape(gh * gw, -1)  # (N, Dh)
        ang = torch.cat([ang.new_zeros(num_prefix_tokens, self.head_dim), ang])     # (T, Dh)
        return ang.cos().to(dtype), ang.sin().to(dtype)


def rope_interpolated(model: ViT, scale: float) -> ViT:
    """A copy of a RoPE ``model`` whose rotary positions are scaled by ``scale``."""
    if model.rope is None:
        raise ValueError("rope_interpolated needs a model built with pos_embed='rope'")
    out = copy.deepcopy(model)
    out.rope = InterpolatedRoPE(model.config.head_dim, model.config.rope_theta, scale).to(model.rope.inv_freq.device)
    return out


def positions_zeroed(model: ViT) -> ViT:
    """A copy of ``model`` without position information: the table set to zero (a learned
    table) or every rotation the identity (RoPE)."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        if out.pos_embed is not None:
            out.pos_embed.zero_()
    if out.rope is not None:
        out.rope = InterpolatedRoPE(model.config.head_dim, model.config.rope_theta, 1e-12).to(model.rope.inv_freq.device)
    return out


@torch.no_grad()
def probs(model, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """``(n, K)`` softmax of ``model``'s logits, on the model's device, returned on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(images[i:i + batch_size].to(device)).softmax(-1).cpu()
                      for i in range(0, len(images), batch_size)])


def tiles_of(images: torch.Tensor, size: int = 32) -> list:
    """``(B, 3, H, W)`` -> the ``(H/size)*(W/size)`` tiles ``(B, 3, size, size)``, row-major."""
    if images.dim() != 4 or images.shape[2] % size or images.shape[3] % size:
        raise ValueError(f"images must be (B, 3, H, W) with H and W multiples of {size}, got {tuple(images.shape)}")
    return [images[:, :, r:r + size, c:c + size] for r in range(0, images.shape[2], size)
            for c in range(0, images.shape[3], size)]


def tiled_probs(model, images: torch.Tensor, size: int = 32) -> torch.Tensor:
    """``(B, K)``: the sum of the tiles' predicted distributions (each tile at the trained size)."""
    return sum(probs(model, t) for t in tiles_of(images, size))


def thumbnail(images: torch.Tensor, size: int = TASK["image_size"]) -> torch.Tensor:
    """``(B, 3, H, W) -> (B, 3, size, size)``: the image downscaled to the trained size (antialiased)."""
    check_int("size", size, minimum=1)
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    return torch.nn.functional.interpolate(images, size=size, mode="bilinear", antialias=True)


STRATEGIES = ("downscaled to 32 px (reference)", "no change: table kept on the top-left patches",
              "bicubic interpolation of the table", "2D RoPE as is (rows and columns 0..7)",
              "2D RoPE + position interpolation (0, 0.5, .., 3.5)", "tiling: 4 tiles of 32 px",
              "tiling: 4 tiles + thumbnail")


def resolution_strategies(learned: ViT, rope: ViT, image_size: int = 64) -> dict:
    """The ways of feeding an ``image_size`` image to models trained at 32 px, by name
    (:data:`STRATEGIES`): each maps ``(B, 3, image_size, image_size)`` images to ``(B, K)`` probabilities.

    ``learned`` has a learned position table, ``rope`` 2D RoPE (both trained at the task's 32 px).
    """
    check_int("image_size", image_size, minimum=TASK["image_size"])
    if not isinstance(learned, ViT) or learned.pos_embed is None:
        raise ValueError("learned must be a ViT with a learned position table (pos_embed='learned')")
    if not isinstance(rope, ViT) or rope.rope is None:
        raise ValueError("rope must be a ViT built with pos_embed='rope'")
    size = learned.config.image_size
    if image_size % size:
        raise ValueError(f"image_size must be a multiple of the trained size {size} (for the tiles), got {image_size}")
    kept, interpolated = table_kept(learned, image_size), rope_interpolated(rope, size / image_size)
    fns = (lambda x: probs(learned, thumbnail(x, size)),
           lambda x: probs(kept, x),
           lambda x: probs(learned, x),
           lambda x: probs(rope, x),
           lambda x: probs(interpolated, x),
           lambda x: tiled_probs(learned, x, size),
           lambda x: tiled_probs(learned, x, size) + probs(learned, thumbnail(x, size)))
    return dict(zip(STRATEGIES, fns))


def strategy_hits(strategies: dict, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """``{name: number of correct answers}`` of each strategy on ``images`` with quadrant ``labels``."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(f"labels must be a (n,) tensor with one label per image, got "
                         f"{getattr(labels, 'shape', type(labels))} for {len(images)} images")
    return {name: int((fn(images).argmax(-1) == labels).sum()) for name, fn in strategies.items()}

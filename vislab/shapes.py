"""ShapeWorld: the course's procedural dataset of coloured shapes with captions.

Every chapter builds its task from this one generator: classification (shape, colour,
size), captions for CLIP/SigLIP, spatial relations and counts for probes, and held-out
(colour, shape) combinations for compositional tests. Generation is vectorised over the
batch and deterministic given ``(seed, split)``.

Nuisance variation (continuous position, scale jitter, rotation, colour jitter, textured
or noisy backgrounds, distractor strokes) keeps raw-pixel baselines weak, so that what an
encoder learns actually matters (``benchmarks/shapeworld.py`` measures those baselines).

Shape legend: n images, H W height/width, S max shapes per image.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

from vislab.validate import check_bool, check_elements, check_int, check_number

__all__ = ["SHAPES", "COLORS", "SIZES", "POSITIONS", "POSITION_PHRASES", "RELATIONS", "NUISANCE", "ShapeWorld", "ShapeBatch"]

SHAPES = ("circle", "square", "triangle", "star", "cross", "heart", "ring")
COLORS = ("red", "green", "blue", "yellow", "magenta", "cyan", "orange", "white")
SIZES = ("small", "medium", "large")
POSITIONS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")
RELATIONS = ("left of", "right of", "above", "below")
POSITION_PHRASES = ("in the top left", "at the top", "in the top right", "on the left", "in the center",
                    "on the right", "in the bottom left", "at the bottom", "in the bottom right")

_RGB = np.array([
    [0.90, 0.12, 0.12],   # red
    [0.15, 0.80, 0.20],   # green
    [0.20, 0.35, 0.95],   # blue
    [0.95, 0.90, 0.15],   # yellow
    [0.90, 0.20, 0.85],   # magenta
    [0.15, 0.85, 0.90],   # cyan
    [0.98, 0.55, 0.10],   # orange
    [0.95, 0.95, 0.95],   # white
], dtype=np.float32)

# Radius (half the extent) of each size class, as a fraction of the image side.
_RADIUS = np.array([0.11, 0.16, 0.22], dtype=np.float32)

# Preset nuisance levels; every field can also be set on its own.
NUISANCE = {
    "none": dict(position="grid", scale_jitter=0.0, rotation=False, color_jitter=0.0,
                 background="black", noise=0.0, distractors=0),
    "medium": dict(position="continuous", scale_jitter=0.15, rotation=True, color_jitter=0.08,
                   background="texture", noise=0.04, distractors=1),
    "hard": dict(position="continuous", scale_jitter=0.2, rotation=True, color_jitter=0.12,
                 background="texture", noise=0.08, distractors=3),
}

_SPLITS = ("train", "test", "holdout")
MAX_SAMPLE_ELEMENTS = 2 ** 30        # pixels x channels of one sample() call: 4 GB of float32
MAX_SIDE = 2048                      # the image side ShapeWorld draws at (vectorised: n x H x W arrays)


def _check_options(opts: dict, size_hw) -> None:
    """The numeric nuisance options: jitters and noise finite and in range, counts small ints."""
    check_number("scale_jitter", opts["scale_jitter"], 0.0, 1.0, strict_max=True)
    check_number("color_jitter", opts["color_jitter"], 0.0, 1.0)
    check_number("noise", opts["noise"], 0.0, 1.0)
    check_bool("rotation", opts["rotation"])
    check_int("distractors", opts["distractors"], 0, 32)
    for side in size_hw:
        check_int("image side", side, 1, MAX_SIDE)


@dataclass(frozen=True)
class ShapeBatch:
    """A batch of ShapeWorld scenes.

    Attributes:
        images: ``(n, 3, H, W)`` float32 in [0, 1].
        captions: n strings, e.g. "a small red circle in the top left" or
            "a red circle left of a blue square".
        labels: dict of ``(n,)`` tensors for the primary object (object 0): ``shape``,
            ``color``, ``size`` (long indices into SHAPES/COLORS/SIZES), ``x``, ``y``
            (float centre in [0, 1], y down), ``position`` (0..8 over a 3x3 grid, see
            POSITIONS), ``count`` (number of shapes), ``relation`` (object 0 relative to
            object 1, index into RELATIONS, -1 with a single shape).
        objects: dict of ``(n, S)`` tensors ``shape, color, size, x, y`` for every object,
            -1 (or nan for x, y) where a slot is empty.
    """

    images: torch.Tensor
    captions: list
    labels: dict
    objects: dict

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, idx) -> "ShapeBatch":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1) if idx != -1 else slice(idx, None)
        if isinstance(idx, slice):
            caps = self.captions[idx]
        else:
            idx = torch.as_tensor(idx)
            if idx.dtype == torch.bool:
                idx = idx.nonzero().flatten()
            caps = [self.captions[int(i)] for i in idx]
        return ShapeBatch(self.images[idx], caps, {k: v[idx] for k, v in self.labels.items()},
                          {k: v[idx] for k, v in self.objects.items()})

    def to(self, device) -> "ShapeBatch":
        return ShapeBatch(self.images.to(device), self.captions, {k: v.to(device) for k, v in self.labels.items()},
                          {k: v.to(device) for k, v in self.objects.items()})


@dataclass(frozen=True)
class ShapeWorld:
    """Generator of ShapeWorld scenes.

    Args:
        image_size: int or ``(H, W)``.
        min_shapes, max_shapes: number of shapes per image (1..3 by default 1).
        nuisance: "none", "medium" or "hard": a preset for the options below; an option
            given explicitly overrides the preset.
        holdout: (colour, shape) pairs never drawn in "train"/"test"; ``split="holdout"``
            draws a primary object from these pairs only.
        position: "grid" (centres on the 3x3 grid, small jitter) or "continuous".
        scale_jitter: relative uniform jitter of the radius within its size class.
        rotation: random rotation of every shape.
        color_jitter: per-object uniform jitter of each RGB channel.
        background: "black", "noise" (grey noise) or "texture" (smooth random pattern).
        noise: std of pixel noise added at the end.
        distractors: number of thin grey strokes per image (not shapes, not counted).
        sizes: which size classes may be drawn (indices into SIZES).
    """

    image_size: int | tuple = 32
    min_shapes: int = 1
    max_shapes: int = 1
    nuisance: str = "none"
    holdout: tuple = ()
    position: str | None = None
    scale_jitter: float | None = None
    rotation: bool | None = None
    color_jitter: float | None = None
    background: str | None = None
    noise: float | None = None
    distractors: int | None = None
    sizes: tuple = (0, 1, 2)
    opts: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        from vislab.patching import as_size

        as_size(self.image_size)
        if self.nuisance not in NUISANCE:
            raise ValueError(f"nuisance must be one of {list(NUISANCE)}, got {self.nuisance!r}")
        if not (isinstance(self.min_shapes, int) and isinstance(self.max_shapes, int)
                and 1 <= self.min_shapes <= self.max_shapes <= 3):
            raise ValueError(f"need 1 <= min_shapes <= max_shapes <= 3, got {self.min_shapes}, {self.max_shapes}")
        opts = dict(NUISANCE[self.nuisance])
        for f in ("position", "scale_jitter", "rotation", "color_jitter", "background", "noise", "distractors"):
            v = getattr(self, f)
            if v is not None:
                opts[f] = v
        if opts["position"] not in ("grid", "continuous"):
            raise ValueError(f"position must be 'grid' or 'continuous', got {opts['position']!r}")
        if opts["background"] not in ("black", "noise", "texture"):
            raise ValueError(f"background must be 'black', 'noise' or 'texture', got {opts['background']!r}")
        if not self.sizes or any(s not in (0, 1, 2) for s in self.sizes):
            raise ValueError(f"sizes must be a non-empty subset of (0, 1, 2), got {self.sizes!r}")
        pairs = []
        for pair in self.holdout:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise ValueError(f"holdout holds (colour, shape) pairs, got {pair!r}")
            c, s = pair
            if c not in COLORS or s not in SHAPES:
                raise ValueError(f"unknown holdout pair {pair!r}: colours are {COLORS}, shapes are {SHAPES}")
            pairs.append((COLORS.index(c), SHAPES.index(s)))
        if len(pairs) >= len(COLORS) * len(SHAPES):
            raise ValueError("holdout removes every (colour, shape) combination")
        opts["holdout_idx"] = tuple(pairs)
        _check_options(opts, self.size_hw)
        object.__setattr__(self, "opts", opts)

    @property
    def size_hw(self) -> tuple:
        from vislab.patching import as_size

        return as_size(self.image_size)

    def with_options(self, **changes) -> "ShapeWorld":
        """A copy with some fields changed."""
        names = {f.name for f in fields(self) if f.init}
        bad = set(changes) - names
        if bad:
            raise TypeError(f"unknown ShapeWorld option(s) {sorted(bad)}; known: {sorted(names)}")
        return replace(self, **changes)

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, split: str = "train", seed: int = 0) -> ShapeBatch:
        """Draw ``n`` scenes. The same ``(n, split, seed)`` gives the same batch, and
        different splits use independent random streams."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        if split == "holdout" and not self.opts["holdout_idx"]:
            raise ValueError("split='holdout' needs ShapeWorld(holdout=((colour, shape), ...))")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        H, W = self.size_hw
        check_elements(f"ShapeWorld.sample({n:,}) of {H}x{W} images", n * 3 * H * W, limit=MAX_SAMPLE_ELEMENTS)
        key = zlib.crc32(f"{split}:{int(seed)}".encode())
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, key])
        return self._generate(n, split, rng)

    def _draw_attributes(self, n, S, split, rng):
        o = self.opts
        count = rng.integers(self.min_shapes, self.max_shapes + 1, size=n)
        present = np.arange(S)[None, :] < count[:, None]                       # (n, S)
        shape = rng.integers(0, len(SHAPES), size=(n, S))
        color = rng.integers(0, len(COLORS), size=(n, S))
        size = np.asarray(self.sizes)[rng.integers(0, len(self.sizes), size=(n, S))]
        hold = o["holdout_idx"]
        if hold:
            hold_c = np.array([c for c, _ in hold])
            hold_s = np.array([s for _, s in hold])
            if split == "holdout":                       # primary object from the held-out pairs
                pick = rng.integers(0, len(hold), size=n)
                color[:, 0], shape[:, 0] = hold_c[pick], hold_s[pick]
            # every other object (all objects outside the holdout split) avoids those pairs
            def held_out():
                bad = np.zeros((n, S), dtype=bool)
                for c, s in hold:
                    bad |= (color == c) & (shape == s)
                if split == "holdout":
                    bad[:, 0] = False
                return bad

            for _ in range(100):
                bad = held_out()
                if not bad.any():
                    break
                color[bad] = rng.integers(0, len(COLORS), size=int(bad.sum()))
            else:
                # recolouring cannot help when every colour of a shape is held out: redraw both
                while (bad := held_out()).any():
                    m = int(bad.sum())
                    shape[bad] = rng.integers(0, len(SHAPES), size=m)
                    color[bad] = rng.integers(0, len(COLORS), size=m)
        return count, present, shape, color, size

    def _draw_positions(self, n, S, radius, present, rng):
        o = self.opts
        if o["position"] == "grid":
            cell = rng.integers(0, 9, size=(n, S))
            # distinct cells for the objects of one image
            for j in range(1, S):
                for _ in range(50):
                    clash = np.zeros(n, dtype=bool)
                    for i in range(j):
                        clash |= cell[:, j] == cell[:, i]
                    if not clash.any():
                        break
                    cell[clash, j] = rng.integers(0, 9, size=int(clash.sum()))
            cx = (cell % 3 + 0.5) / 3 + rng.uniform(-0.03, 0.03, size=(n, S))
            cy = (cell // 3 + 0.5) / 3 + rng.uniform(-0.03, 0.03, size=(n, S))
            return cx, cy
        lo, hi = radius + 0.01, 1 - radius - 0.01
        cx = rng.uniform(lo, hi)
        cy = rng.uniform(lo, hi)
        # rejection sampling so that shapes do not overlap (vectorised over the batch)
        for j in range(1, S):
            for _ in range(100):
                clash = np.zeros(n, dtype=bool)
                for i in range(j):
                    d = np.hypot(cx[:, j] - cx[:, i], cy[:, j] - cy[:, i])
                    clash |= d < radius[:, j] + radius[:, i] + 0.02
                clash &= present[:, j]
                if not clash.any():
                    break
                m = int(clash.sum())
                cx[clash, j] = rng.uniform(lo[clash, j], hi[clash, j], size=m)
                cy[clash, j] = rng.uniform(lo[clash, j], hi[clash, j], size=m)
        return cx, cy

    def _generate(self, n, split, rng) -> ShapeBatch:
        o = self.opts
        H, W = self.size_hw
        S = self.max_shapes
        count, present, shape, color, size = self._draw_attributes(n, S, split, rng)
        radius = _RADIUS[size] * (1 + o["scale_jitter"] * rng.uniform(-1, 1, size=(n, S)))
        radius = radius.astype(np.float32)
        cx, cy = self._draw_positions(n, S, radius, present, rng)
        angle = rng.uniform(0, 2 * np.pi, size=(n, S)) if o["rotation"] else np.zeros((n, S))
        rgb = _RGB[color] + o["color_jitter"] * rng.uniform(-1, 1, size=(n, S, 3))   # (n, S, 3)

        canvas = self._background(n, H, W, rng)                                      # (n, H, W, 3)
        if o["distractors"]:
            canvas = self._strokes(canvas, o["distractors"], rng)
        # pixel-centre coordinates in [0, 1], y down; the unit is the shorter side
        side = min(H, W)
        ys = ((np.arange(H, dtype=np.float32) + 0.5) / side)[None, :, None]         # (1, H, 1)
        xs = ((np.arange(W, dtype=np.float32) + 0.5) / side)[None, None, :]         # (1, 1, W)
        sx, sy = W / side, H / side
        for j in range(S):
            for k in range(len(SHAPES)):
                sel = np.nonzero(present[:, j] & (shape[:, j] == k))[0]
                if sel.size == 0:
                    continue
                r = radius[sel, j][:, None, None]
                dx = xs - (cx[sel, j] * sx)[:, None, None]                           # (m, 1, W)
                dy = ys - (cy[sel, j] * sy)[:, None, None]                           # (m, H, 1)
                ca = np.cos(angle[sel, j]).astype(np.float32)[:, None, None]
                sa = np.sin(angle[sel, j]).astype(np.float32)[:, None, None]
                u = (ca * dx + sa * dy) / r                                          # (m, H, W) in radii
                v = (-sa * dx + ca * dy) / r
                dist = _shape_distance(SHAPES[k], u, v)                              # (m, H, W), <0 inside
                alpha = np.clip(0.5 - dist * (r * side), 0.0, 1.0)[..., None]       # anti-aliased edge
                canvas[sel] = canvas[sel] * (1 - alpha) + alpha * rgb[sel, j][:, None, None, :]
        if o["noise"]:
            canvas = canvas + o["noise"] * rng.standard_normal(canvas.shape, dtype=np.float32)
        canvas = np.clip(canvas, 0.0, 1.0)
        images = torch.from_numpy(np.ascontiguousarray(canvas.transpose(0, 3, 1, 2)))  # (n, 3, H, W)

        position = (np.minimum((cy[:, 0] * 3).astype(int), 2) * 3 + np.minimum((cx[:, 0] * 3).astype(int), 2))
        relation = np.full(n, -1)
        if S > 1:
            dx = cx[:, 0] - cx[:, 1]
            dy = cy[:, 0] - cy[:, 1]
            horiz = np.abs(dx) >= np.abs(dy)
            rel = np.where(horiz, np.where(dx < 0, 0, 1), np.where(dy < 0, 2, 3))
            relation = np.where(count > 1, rel, -1)
        captions = [_caption(shape[i], color[i], size[i], position[i], relation[i], count[i]) for i in range(n)]

        def obj(a, fill):
            a = np.where(present, a, fill)
            return torch.from_numpy(np.ascontiguousarray(a))

        objects = {"shape": obj(shape, -1).long(), "color": obj(color, -1).long(), "size": obj(size, -1).long(),
                   "x": obj(cx, np.nan).float(), "y": obj(cy, np.nan).float()}
        labels = {"shape": objects["shape"][:, 0].clone(), "color": objects["color"][:, 0].clone(),
                  "size": objects["size"][:, 0].clone(), "x": objects["x"][:, 0].clone(),
                  "y": objects["y"][:, 0].clone(), "position": torch.from_numpy(position).long(),
                  "count": torch.from_numpy(count).long(), "relation": torch.from_numpy(relation).long()}
        return ShapeBatch(images, captions, labels, objects)

    def _background(self, n, H, W, rng):
        kind = self.opts["background"]
        if kind == "black":
            return np.zeros((n, H, W, 3), dtype=np.float32)
        if kind == "noise":
            g = rng.uniform(0.0, 0.25, size=(n, H, W, 1)).astype(np.float32)
            return np.repeat(g, 3, axis=3)
        # texture: a smooth random field (bilinear upsampling of a coarse 4x4 grid), dim colours
        coarse = rng.uniform(0.0, 0.35, size=(n, 3, 4, 4)).astype(np.float32)
        t = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(H, W), mode="bilinear",
                                            align_corners=False)                     # (n, 3, H, W)
        return t.permute(0, 2, 3, 1).numpy().copy()

    def _strokes(self, canvas, k, rng):
        n, H, W, _ = canvas.shape
        ys = np.arange(H, dtype=np.float32)[None, :, None]
        xs = np.arange(W, dtype=np.float32)[None, None, :]
        canvas = canvas.astype(np.float32, copy=False)
        for _ in range(k):
            x0 = rng.uniform(0, W, size=n).astype(np.float32)[:, None, None]
            y0 = rng.uniform(0, H, size=n).astype(np.float32)[:, None, None]
            th = rng.uniform(0, np.pi, size=n)
            half = (rng.uniform(0.2, 0.5, size=n) * min(H, W) / 2).astype(np.float32)[:, None, None]
            c, s = np.cos(th).astype(np.float32)[:, None, None], np.sin(th).astype(np.float32)[:, None, None]
            dx, dy = xs - x0, ys - y0                                          # (n, 1, W), (n, H, 1)
            on = (np.abs(dx * c + dy * s) < half) & (np.abs(dy * c - dx * s) < 0.6)   # (n, H, W)
            grey = rng.uniform(0.3, 0.6, size=n).astype(np.float32)[:, None, None, None]
            np.copyto(canvas, np.broadcast_to(grey, canvas.shape), where=on[..., None])
        return canvas


def _shape_distance(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """An approximate signed distance (in radii, < 0 inside) of a unit-radius shape."""
    r = np.sqrt(u * u + v * v)
    if name == "circle":
        return r - 1.0
    if name == "ring":
        return np.abs(r - 0.75) - 0.25
    if name == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.78
    if name == "cross":
        a, b = 1.0, 0.33
        arm1 = np.maximum(np.abs(u) - a, np.abs(v) - b)
        arm2 = np.maximum(np.abs(u) - b, np.abs(v) - a)
        return np.minimum(arm1, arm2)
    theta = np.arctan2(v, u)
    if name == "triangle":
        k = 3
        sector = 2 * math.pi / k
        phi = np.mod(theta + math.pi / 2, sector) - sector / 2            # apex up
        return r * np.cos(phi) - 0.55                                     # inradius 0.55 -> circumradius 1.1
    if name == "star":
        k = 5
        sector = 2 * math.pi / k
        phi = np.abs(np.mod(theta + math.pi / 2, sector) - sector / 2) / (sector / 2)   # 0 at tip, 1 between
        boundary = 1.05 - 0.6 * phi
        return r - boundary
    if name == "heart":
        x, y = u * 1.1, -(v * 1.1) + 0.25                                # y up, centred
        f = (x * x + y * y - 1) ** 3 - x * x * y ** 3
        return np.cbrt(f) * 0.5
    raise ValueError(f"unknown shape {name!r}")


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _caption(shape, color, size, position, relation, count) -> str:
    """"a small red circle in the top left"; "a red circle left of a blue square [and a ...]"."""
    if count == 1:
        return f"{_a(SIZES[size[0]])} {COLORS[color[0]]} {SHAPES[shape[0]]} {POSITION_PHRASES[position]}"
    text = f"{_a(COLORS[color[0]])} {SHAPES[shape[0]]} {RELATIONS[relation]} {_a(COLORS[color[1]])} {SHAPES[shape[1]]}"
    if count == 3:
        text += f" and {_a(COLORS[color[2]])} {SHAPES[shape[2]]}"
    return text

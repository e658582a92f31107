"""Chapter 9: AnyRes, LLaVA-NeXT's way of feeding a high-resolution image to a language model.

LLaVA-NeXT (Liu et al., "LLaVA-NeXT: Improved reasoning, OCR, and world knowledge", 2024;
the idea in "Improved Baselines with Visual Instruction Tuning", arXiv:2310.03744, sec. 4
"Scaling to higher resolutions") keeps a ViT trained at 336 px and:

1. picks, among a fixed list of canvas resolutions (e.g. 672x672, 336x1008 ...), the one
   that keeps the most of the image's pixels after an aspect-preserving resize
   (:func:`select_best_resolution`);
2. resizes the image into that canvas *keeping its aspect ratio* and pads the rest
   (:func:`resize_and_pad`), then cuts the canvas into 336 x 336 tiles, row-major
   (:func:`divide_to_patches`);
3. encodes each tile and a 336 x 336 thumbnail ("base image", put *first*) separately;
4. stitches the tile features back into one big feature grid, removes the rows or
   columns that only saw padding (:func:`unpad`) and appends a learned "newline"
   token at the end of every feature row, so the LLM can tell where rows end.

All sizes in this module are ``(width, height)``, like PIL's ``Image.size`` and LLaVA's
original code. ``transformers`` orders them ``(height, width)``; the tests check both agree
once the order is swapped.

Shape legend: C channels, H W heights/widths (pixels or feature cells), S tile side in
pixels, g = S / P feature cells per tile side, rows cols the tile grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from PIL import Image
from torch.nn import functional as F

from vislab.validate import check_bool, check_elements, check_int

__all__ = [
    "LLAVA_NEXT_GRIDS", "grid_resolutions", "score_resolutions", "select_best_resolution",
    "resized_size", "pad_box", "resize_and_pad", "divide_to_patches", "anyres_tiles",
    "anyres_grid_shape", "unpadded_shape", "unpad", "AnyResTokens", "anyres_num_tokens",
]

# LLaVA-v1.6 (LLaVA-NeXT) "image_grid_pinpoints": 2x1, 1x2, 2x2, 3x1, 1x3 tiles of 336 px,
# as (width, height). The list is symmetric, so the (width, height) / (height, width) mix-up
# between LLaVA's code and transformers' goes unnoticed with it.
LLAVA_NEXT_GRIDS: tuple[tuple[int, int], ...] = ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))


def _as_wh(size, name: str = "image_size") -> tuple[int, int]:
    if isinstance(size, torch.Tensor):
        size = tuple(int(v) for v in size.tolist())
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise TypeError(f"{name} must be a (width, height) pair, got {size!r}")
    w, h = size
    if isinstance(w, bool) or isinstance(h, bool) or not (isinstance(w, int) and isinstance(h, int)):
        raise TypeError(f"{name} must hold two ints (width, height), got {size!r}")
    if w <= 0 or h <= 0:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return w, h


def _as_resolutions(possible_resolutions) -> list[tuple[int, int]]:
    if isinstance(possible_resolutions, (set, frozenset, dict)) or isinstance(possible_resolutions, str):
        raise TypeError(f"possible_resolutions must be a list of (width, height) pairs, got a "
                        f"{type(possible_resolutions).__name__} (a set's order changes from run to run, and ties "
                        "go to the first candidate)")
    res = [_as_wh(r, "each possible resolution") for r in possible_resolutions]
    if not res:
        raise ValueError("possible_resolutions is empty; e.g. use LLAVA_NEXT_GRIDS")
    return res


def grid_resolutions(tile_size: int = 336, max_cols: int = 3, max_rows: int = 3,
                     max_tiles: int | None = None) -> list[tuple[int, int]]:
    """Canvas resolutions ``(cols*S, rows*S)`` for every grid up to ``max_cols x max_rows``.

    LLaVA-OneVision's "anyres_max_9" uses such a list (grids up to 6x6 of 384 px);
    ``max_tiles`` keeps only grids with at most that many tiles.
    """
    for v, n in ((tile_size, "tile_size"), (max_cols, "max_cols"), (max_rows, "max_rows")):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{n} must be a positive int, got {v!r}")
    _check_grid_bounds(max_cols, max_rows, max_tiles)
    out = [(c * tile_size, r * tile_size) for r in range(1, max_rows + 1) for c in range(1, max_cols + 1)
           if max_tiles is None or r * c <= max_tiles]
    return out


def _check_grid_bounds(max_cols, max_rows, max_tiles) -> None:
    if max_tiles is not None:
        check_int("max_tiles", max_tiles, minimum=1)
    if max_cols * max_rows > 10_000:
        raise ValueError(f"a {max_cols}x{max_rows} grid list has {max_cols * max_rows:,} canvases, above 10,000: "
                         "LLaVA-OneVision goes up to 6x6; ask for fewer")


def score_resolutions(image_size, possible_resolutions, cap_upscaling: bool = True) -> list[dict]:
    """The numbers :func:`select_best_resolution` compares, one dict per candidate.

    For a W x H image and a candidate canvas (w, h): ``scale = min(w/W, h/H)`` (fit inside,
    keep the aspect ratio), ``effective = int(W*scale) * int(H*scale)`` capped at ``W*H``
    (upscaling adds no information), ``wasted = w*h - effective``.
    """
    W, H = _as_wh(image_size)
    check_bool("cap_upscaling", cap_upscaling)
    rows = []
    for w, h in _as_resolutions(possible_resolutions):
        scale = min(w / W, h / H)
        effective = int(W * scale) * int(H * scale)
        if cap_upscaling:
            effective = min(effective, W * H)
        rows.append({"resolution": (w, h), "scale": scale, "effective": effective,
                     "wasted": w * h - effective})
    return rows


def select_best_resolution(image_size, possible_resolutions=LLAVA_NEXT_GRIDS,
                           cap_upscaling: bool = True) -> tuple[int, int]:
    """LLaVA-NeXT's canvas choice.

    Args:
        image_size: ``(width, height)`` of the image.
        possible_resolutions: candidate canvases ``[(width, height), ...]``.
        cap_upscaling: cap the effective resolution at the image's own area, as LLaVA's
            code does; ``False`` reproduces the course notes' version, which lacks the cap
            and so sends a small image to the largest canvas.
    Returns:
        The ``(width, height)`` with the largest effective resolution; ties go to the least
        wasted area, and a full tie to the first candidate in the list.
    """
    best, best_eff, best_waste = None, 0, float("inf")
    for row in score_resolutions(image_size, possible_resolutions, cap_upscaling):
        eff, waste = row["effective"], row["wasted"]
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = row["resolution"], eff, waste
    if best is None:   # every candidate had effective 0 (a canvas thinner than one pixel of the image)
        best = _as_resolutions(possible_resolutions)[0]
    return best


def resized_size(image_size, target_resolution) -> tuple[int, int]:
    """``(new_width, new_height)`` of the image inside the canvas: the side that limits the
    scale fills the canvas, the other is ``ceil(side * scale)`` (never more than the canvas)."""
    W, H = _as_wh(image_size)
    tw, th = _as_wh(target_resolution, "target_resolution")
    sw, sh = tw / W, th / H
    if sw < sh:
        return tw, min(math.ceil(H * sw), th)
    return min(math.ceil(W * sh), tw), th


def pad_box(image_size, target_resolution) -> tuple[int, int, int, int]:
    """Where the resized image sits in the canvas: ``(left, top, right, bottom)`` padding;
    the image is centred, an odd leftover pixel goes right/bottom."""
    tw, th = _as_wh(target_resolution, "target_resolution")
    nw, nh = resized_size(image_size, target_resolution)
    left, top = (tw - nw) // 2, (th - nh) // 2
    return left, top, tw - nw - left, th - nh - top


def resize_and_pad(image, target_resolution, fill=0):
    """Resize keeping the aspect ratio, then pad to ``target_resolution`` (centred).

    Args:
        image: a PIL image, or a ``(C, H, W)`` tensor.
        target_resolution: ``(width, height)`` of the canvas.
        fill: padding value (LLaVA pads black, 0).
    Returns:
        The same type as ``image``: a PIL image of size ``target_resolution`` or a
        ``(C, height, width)`` tensor.
    """
    _check_canvas(image, target_resolution)
    if isinstance(image, Image.Image):
        size = image.size
        nw, nh = resized_size(size, target_resolution)
        left, top, _, _ = pad_box(size, target_resolution)
        canvas = Image.new(image.mode, _as_wh(target_resolution, "target_resolution"),
                           (fill,) * len(image.getbands()) if isinstance(fill, int) else fill)
        canvas.paste(image.resize((nw, nh), Image.BICUBIC), (left, top))
        return canvas
    if isinstance(image, torch.Tensor):
        if image.dim() != 3:
            raise ValueError(f"a tensor image must be (C, H, W), got {tuple(image.shape)}")
        size = (int(image.shape[2]), int(image.shape[1]))
        nw, nh = resized_size(size, target_resolution)
        left, top, right, bottom = pad_box(size, target_resolution)
        x = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False,
                          antialias=True)[0]                                   # (C, nh, nw)
        return F.pad(x, (left, right, top, bottom), value=float(fill))          # (C, th, tw)
    raise TypeError(f"image must be a PIL.Image or a (C, H, W) tensor, got {type(image).__name__}")


def _check_canvas(image, target_resolution) -> None:
    tw, th = _as_wh(target_resolution, "target_resolution")
    check_elements(f"a {tw}x{th} canvas", tw * th * 4)
    if isinstance(image, torch.Tensor) and not image.is_floating_point():
        raise TypeError(f"a tensor image must be floating point (C, H, W) in [0, 1], got {image.dtype}; "
                        "use image.float() / 255")


def divide_to_patches(image, patch_size: int) -> list:
    """Cut a canvas into ``patch_size`` squares, row-major (left to right, top to bottom).

    Args:
        image: a PIL image or a ``(C, H, W)`` tensor whose sides are multiples of patch_size
            (a canvas from :func:`resize_and_pad`).
    Returns:
        A list of PIL images or ``(C, S, S)`` tensors.
    """
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size <= 0:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    if isinstance(image, Image.Image):
        W, H = image.size
    elif isinstance(image, torch.Tensor) and image.dim() == 3:
        H, W = int(image.shape[1]), int(image.shape[2])
    else:
        raise TypeError(f"image must be a PIL.Image or a (C, H, W) tensor, got "
                        f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    if W % patch_size or H % patch_size:
        raise ValueError(f"a {W}x{H} canvas is not a whole number of {patch_size}-px tiles; "
                         f"make it with resize_and_pad first")
    tiles = []
    for top in range(0, H, patch_size):
        for left in range(0, W, patch_size):
            if isinstance(image, Image.Image):
                tiles.append(image.crop((left, top, left + patch_size, top + patch_size)))
            else:
                tiles.append(image[:, top:top + patch_size, left:left + patch_size])   # (C, S, S)
    return tiles


def anyres_tiles(image, possible_resolutions=LLAVA_NEXT_GRIDS, tile_size: int = 336) -> list:
    """LLaVA-NeXT's ``process_anyres_image``: ``[thumbnail] + tiles``.

    The thumbnail ("base image") is the whole image squashed to S x S and comes *first*
    (InternVL puts it last). Works on a PIL image or a ``(C, H, W)`` tensor.
    """
    check_int("tile_size", tile_size, minimum=1)
    if isinstance(image, Image.Image):
        size = image.size
        thumb = image.resize((tile_size, tile_size), Image.BICUBIC)
    elif isinstance(image, torch.Tensor) and image.dim() == 3:
        size = (int(image.shape[2]), int(image.shape[1]))
        thumb = F.interpolate(image[None], size=(tile_size, tile_size), mode="bilinear",
                              align_corners=False, antialias=True)[0]        # (C, S, S)
    else:
        raise TypeError("image must be a PIL.Image or a (C, H, W) tensor")
    best = select_best_resolution(size, possible_resolutions)
    return [thumb] + divide_to_patches(resize_and_pad(image, best), tile_size)


def anyres_grid_shape(image_size, possible_resolutions=LLAVA_NEXT_GRIDS, tile_size: int = 336) -> tuple[int, int]:
    """The tile grid ``(cols, rows)`` chosen for a ``(width, height)`` image."""
    check_int("tile_size", tile_size, minimum=1)
    w, h = select_best_resolution(image_size, possible_resolutions)
    return w // tile_size, h // tile_size


def unpadded_shape(feature_hw, original_size) -> tuple[int, int]:
    """``(height, width)`` of a feature grid after :func:`unpad`, without building it.

    Args:
        feature_hw: ``(H, W)`` of the stitched feature grid (``rows*g``, ``cols*g``).
        original_size: ``(width, height)`` of the original image.
    """
    Wc, Hc = _as_wh(tuple(feature_hw)[::-1] if isinstance(feature_hw, (tuple, list)) else feature_hw, "feature_hw")
    W0, H0 = _as_wh(original_size, "original_size")
    if W0 / H0 > Wc / Hc:                     # image wider than the grid: padding above and below
        new_h = int(round(H0 * (Wc / W0), 7))
        pad = (Hc - new_h) // 2
        return Hc - 2 * pad, Wc
    new_w = int(round(W0 * (Hc / H0), 7))      # taller (or equal): padding left and right
    pad = (Wc - new_w) // 2
    return Hc, Wc - 2 * pad


def unpad(features: torch.Tensor, original_size) -> torch.Tensor:
    """Drop the feature rows/columns that only saw padding.

    Args:
        features: ``(C, H, W)`` stitched feature grid of the padded canvas.
        original_size: ``(width, height)`` of the original image.
    Returns:
        ``(C, H', W')`` centred crop with the image's aspect ratio (``unpadded_shape``).
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 3:
        raise ValueError(f"features must be a (C, H, W) tensor, got "
                         f"{tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__}")
    Hc, Wc = int(features.shape[1]), int(features.shape[2])
    h, w = unpadded_shape((Hc, Wc), original_size)
    top, left = (Hc - h) // 2, (Wc - w) // 2
    return features[:, top:top + h, left:left + w]                          # (C, H', W')


@dataclass(frozen=True)
class AnyResTokens:
    """LLM tokens for one image under AnyRes.

    Attributes:
        grid: ``(cols, rows)`` of tiles.
        base: thumbnail tokens (``g*g``).
        tiles: tile tokens after (optional) unpadding.
        newline: one per feature row of the stitched grid (0 if disabled).
        feature_hw: ``(H, W)`` of the stitched feature grid after (optional) unpadding.
    """

    grid: tuple[int, int]
    base: int
    tiles: int
    newline: int
    feature_hw: tuple[int, int]

    @property
    def total(self) -> int:
        return self.base + self.tiles + self.newline


def anyres_num_tokens(image_size, possible_resolutions=LLAVA_NEXT_GRIDS, tile_size: int = 336,
                      patch_size: int = 14, unpad: bool = True, newline: bool = True) -> AnyResTokens:
    """Count LLaVA-NeXT's image tokens (CLS tokens dropped, as LLaVA does).

    ``total = g*g (thumbnail) + H'*W' (stitched tile features, unpadded) + H' (newlines)``
    with ``g = tile_size / patch_size`` (336/14 = 24, so the thumbnail is 576 tokens).
    """
    check_int("tile_size", tile_size, minimum=1)
    check_int("patch_size", patch_size, minimum=1)
    if tile_size % patch_size:
        raise ValueError(f"tile_size {tile_size} is not a multiple of patch_size {patch_size}")
    g = tile_size // patch_size
    cols, rows = anyres_grid_shape(image_size, possible_resolutions, tile_size)
    hw = (rows * g, cols * g)
    if unpad:
        hw = unpadded_shape(hw, image_size)
    return AnyResTokens(grid=(cols, rows), base=g * g, tiles=hw[0] * hw[1],
                        newline=hw[0] if newline else 0, feature_hw=hw)

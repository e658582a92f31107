"""Chapter 7: how InternVL feeds a high-resolution image to a language model.

Three pieces sit between InternViT and the LLM in InternVL 1.5 / 2 / 2.5
(Chen et al., "How Far Are We to GPT-4V?", arXiv:2404.16821, sec. 3.2-3.3):

1. **Dynamic high resolution**: the image is resized to the grid of 448 x 448 tiles
   (i columns x j rows, min_num <= i*j <= max_num, max_num = 12 by default) whose aspect
   ratio i/j is closest to the image's, cut into those tiles row-major, and a 448 x 448
   thumbnail of the whole image is appended when there is more than one tile.
2. **Pixel shuffle** (space-to-depth): each 2 x 2 block of neighbouring patch features
   becomes one token with 4x the channels, so a 448 px tile at patch 14
   (32 x 32 = 1024 tokens) gives 16 x 16 = 256 tokens. It only moves numbers, so it is
   exactly invertible.
3. **MLP projector** ("mlp1"): LayerNorm -> Linear(4C, D) -> GELU -> Linear(D, D) maps the
   shuffled features to the LLM's width D.

The reference implementation these functions reproduce is InternVL's
``internvl_chat/internvl/train/dataset.py`` (``find_closest_aspect_ratio``,
``dynamic_preprocess``) and ``modeling_internvl_chat.py`` (``pixel_shuffle`` with
``ps_version="v2"``, ``mlp1``); the tests compare against ``transformers``' InternVL port.

Shape legend: B batch, T tiles, C channels (ViT width), W H the two grid axes in
InternVL's naming (InternVL calls the first spatial axis "w"; it holds the *rows* of a
row-major token grid), r = 1/scale_factor (2 for InternVL), S tile side in pixels,
N tokens, D language-model width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from vislab.validate import check_bool, check_elements
from vislab.vit import ViT, ViTConfig

__all__ = [
    "TilingConfig", "PRESETS", "candidate_grids", "find_closest_aspect_ratio", "tile_grid",
    "dynamic_preprocess", "tile_tensor", "tokens_per_tile", "num_image_tokens",
    "pixel_shuffle", "inverse_pixel_shuffle", "shuffle_tokens", "MLPProjector", "MiniInternVL",
]


@dataclass(frozen=True)
class TilingConfig:
    """InternVL's tiling and token settings.

    Attributes:
        image_size: S, the tile side (and the thumbnail side) in pixels.
        patch_size: the ViT patch size P.
        min_num, max_num: bounds on the number of tiles i*j.
        use_thumbnail: append a global S x S view when there is more than one tile.
        scale_factor: pixel-shuffle factor (InternVL's ``downsample_ratio``, 0.5).
    """

    image_size: int = 448
    patch_size: int = 14
    min_num: int = 1
    max_num: int = 12
    use_thumbnail: bool = True
    scale_factor: float = 0.5

    def __post_init__(self):
        _check_pos_int(self.image_size, "image_size")
        _check_pos_int(self.patch_size, "patch_size")
        _check_tile_bounds(self.min_num, self.max_num)
        check_bool("use_thumbnail", self.use_thumbnail)
        tokens_per_tile(self.image_size, self.patch_size, self.scale_factor)   # S % P, shuffle factor


MAX_TILES = 256          # candidate_grids is cubic in max_num (InternVL's own loop): 256 takes about 0.5 s


def _check_pos_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_tile_bounds(min_num, max_num) -> tuple[int, int]:
    _check_pos_int(min_num, "min_num")
    _check_pos_int(max_num, "max_num")
    if min_num > max_num:
        raise ValueError(f"min_num ({min_num}) must be <= max_num ({max_num})")
    if max_num > MAX_TILES:
        raise ValueError(f"max_num={max_num} tiles is above the limit of {MAX_TILES} (InternVL uses 12 at inference, "
                         f"at most 40): the candidate search is cubic in max_num and every tile is a full "
                         "ViT pass. Ask for fewer tiles")
    return min_num, max_num


# --------------------------------------------------------------------------------------
# 1. Dynamic high resolution
# --------------------------------------------------------------------------------------

def candidate_grids(min_num: int = 1, max_num: int = 12) -> list[tuple[int, int]]:
    """All tile grids ``(i, j)`` = (columns, rows) with ``min_num <= i*j <= max_num``.

    Sorted by tile count, in exactly InternVL's order: InternVL builds a Python ``set`` and
    sorts it by ``i*j`` (a stable sort), so grids with the same count keep the set's
    iteration order. That order only matters for exact ties between mirrored grids
    ``(i, j)``/``(j, i)``, which can only win when ``min_num > 1`` (with ``(1, 1)`` among the
    candidates it is always strictly closer; chapter 7 shows why).

    >>> candidate_grids(1, 4)
    [(1, 1), (1, 2), (2, 1), (3, 1), (1, 3), (4, 1), (1, 4), (2, 2)]
    """
    min_num, max_num = _check_tile_bounds(min_num, max_num)
    grids = set((i, j) for n in range(min_num, max_num + 1)
                for i in range(1, n + 1) for j in range(1, n + 1)
                if min_num <= i * j <= max_num)
    return sorted(grids, key=lambda g: g[0] * g[1])


def find_closest_aspect_ratio(aspect_ratio: float, target_ratios, width: int, height: int,
                              image_size: int = 448) -> tuple[int, int]:
    """InternVL's grid choice: the grid whose aspect ratio i/j is closest to the image's.

    Args:
        aspect_ratio: the image's width / height.
        target_ratios: candidate grids ``(i, j)`` (columns, rows) in the order to scan,
            as :func:`candidate_grids` returns them.
        width, height: the image size in pixels (only its area is used, for ties).
        image_size: the tile side S.
    Returns:
        ``(i, j)``. Scanning in order, a strictly closer ratio always wins; on an exact tie
        the later (larger) grid wins only if the image's area exceeds half the area of that
        grid, ``W*H > 0.5 * S^2 * i * j`` — so a small image is not blown up to many tiles.
    """
    if not isinstance(aspect_ratio, (int, float)) or not aspect_ratio > 0 or math.isinf(aspect_ratio):
        raise ValueError(f"aspect_ratio must be a positive finite number (width / height), got {aspect_ratio!r}")
    _check_pos_int(width, "width")
    _check_pos_int(height, "height")
    _check_pos_int(image_size, "image_size")
    target_ratios = list(target_ratios)
    if not target_ratios:
        raise ValueError("target_ratios is empty; build it with candidate_grids(min_num, max_num)")
    best_diff = float("inf")
    best = (1, 1)
    area = width * height
    for i, j in target_ratios:
        diff = abs(aspect_ratio - i / j)
        if diff < best_diff:
            best_diff, best = diff, (i, j)
        elif diff == best_diff and area > 0.5 * image_size * image_size * i * j:
            best = (i, j)
    return best


def tile_grid(width: int, height: int, min_num: int = 1, max_num: int = 12,
              image_size: int = 448) -> tuple[int, int]:
    """The grid ``(columns, rows)`` that :func:`dynamic_preprocess` uses for a W x H image."""
    _check_pos_int(width, "width")
    _check_pos_int(height, "height")
    return find_closest_aspect_ratio(width / height, candidate_grids(min_num, max_num),
                                     width, height, image_size)


def dynamic_preprocess(image: Image.Image, min_num: int = 1, max_num: int = 12, image_size: int = 448,
                       use_thumbnail: bool = True) -> list[Image.Image]:
    """Cut a PIL image into InternVL's dynamic-resolution tiles.

    Args:
        image: a PIL image of any size (``image.size`` is ``(W, H)``).
        min_num, max_num: bounds on the number of tiles.
        image_size: S, the tile side.
        use_thumbnail: append the whole image resized to S x S when there is more than one
            tile (InternVL's chat models call it with ``True``).
    Returns:
        ``i*j`` tiles of S x S in row-major order (left to right, then top to bottom), then
        the thumbnail if any. The image is *stretched* to ``(i*S, j*S)`` (bicubic), not padded:
        the aspect ratio is bent slightly, no pixel is wasted.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL.Image (use vislab.images.to_pil for tensors), "
                        f"got {type(image).__name__}")
    _check_pos_int(image_size, "image_size")
    check_elements(f"tiles of {image_size} px", max_num * 3 * image_size ** 2 if isinstance(max_num, int) else 0)
    width, height = image.size
    cols, rows = tile_grid(width, height, min_num, max_num, image_size)
    resized = image.resize((cols * image_size, rows * image_size), Image.BICUBIC)
    tiles = []
    for k in range(cols * rows):                      # row-major: k = row * cols + col
        row, col = divmod(k, cols)
        box = (col * image_size, row * image_size, (col + 1) * image_size, (row + 1) * image_size)
        tiles.append(resized.crop(box))
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size), Image.BICUBIC))
    return tiles


def tile_tensor(image: torch.Tensor, grid: tuple[int, int], image_size: int,
                use_thumbnail: bool = True, antialias: bool = True) -> torch.Tensor:
    """The tensor version of :func:`dynamic_preprocess` for a given grid (for training).

    Args:
        image: ``(C, H, W)``.
        grid: ``(columns, rows)``, e.g. from :func:`tile_grid`.
        image_size: S.
        use_thumbnail: append the S x S thumbnail when there is more than one tile.
    Returns:
        ``(T, C, S, S)`` with T = cols*rows (+1): tiles row-major, then the thumbnail.
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        raise ValueError(f"image must be a (C, H, W) tensor, got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    cols, rows = grid
    _check_pos_int(cols, "grid columns")
    _check_pos_int(rows, "grid rows")
    _check_pos_int(image_size, "image_size")
    check_elements(f"{cols}x{rows} tiles of {image_size} px", (cols * rows + 1) * image.shape[0] * image_size ** 2)
    S = image_size
    x = image[None]                                                    # (1, C, H, W)
    big = F.interpolate(x, size=(rows * S, cols * S), mode="bilinear",
                        align_corners=False, antialias=antialias)      # (1, C, rows*S, cols*S)
    C = image.shape[0]
    tiles = big.reshape(C, rows, S, cols, S).permute(1, 3, 0, 2, 4)   # (rows, cols, C, S, S)
    tiles = tiles.reshape(rows * cols, C, S, S)                        # (T, C, S, S)
    if use_thumbnail and rows * cols != 1:
        thumb = F.interpolate(x, size=(S, S), mode="bilinear", align_corners=False,
                              antialias=antialias)                     # (1, C, S, S)
        tiles = torch.cat([tiles, thumb], dim=0)                       # (T+1, C, S, S)
    return tiles


def tokens_per_tile(image_size: int = 448, patch_size: int = 14, scale_factor: float = 0.5) -> int:
    """Tokens one tile sends to the LLM: ``(S/P)^2 * scale_factor^2`` (1024 * 1/4 = 256)."""
    _check_pos_int(image_size, "image_size")
    _check_pos_int(patch_size, "patch_size")
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    side = image_size // patch_size
    r = _ratio(scale_factor)
    if side % r:
        raise ValueError(f"a {side}x{side} patch grid cannot be pixel-shuffled by {scale_factor}: "
                         f"its side must be a multiple of {r}")
    return (side // r) ** 2


def num_image_tokens(width: int, height: int, min_num: int = 1, max_num: int = 12,
                     image_size: int = 448, patch_size: int = 14, scale_factor: float = 0.5,
                     use_thumbnail: bool = True) -> int:
    """LLM tokens for a W x H image: ``(tiles [+ thumbnail]) * tokens_per_tile``."""
    cols, rows = tile_grid(width, height, min_num, max_num, image_size)
    tiles = cols * rows + (1 if use_thumbnail and cols * rows > 1 else 0)
    return tiles * tokens_per_tile(image_size, patch_size, scale_factor)


# --------------------------------------------------------------------------------------
# 2. Pixel shuffle
# --------------------------------------------------------------------------------------

def _ratio(scale_factor) -> int:
    """r = 1/scale_factor, which must be a positive integer (0.5 -> 2)."""
    if isinstance(scale_factor, bool) or not isinstance(scale_factor, (int, float)) or not 0 < scale_factor <= 1:
        raise ValueError(f"scale_factor must be in (0, 1] with 1/scale_factor an integer (e.g. 0.5), "
                         f"got {scale_factor!r}")
    r = round(1 / scale_factor)
    if abs(r * scale_factor - 1) > 1e-9:
        raise ValueError(f"1/scale_factor must be an integer, got scale_factor={scale_factor} "
                         f"(1/scale_factor = {1 / scale_factor:g}); use 0.5, 1/3, 0.25, ...")
    return r


def _check_features(x, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of shape (B, W, H, C), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{what} must have shape (B, W, H, C) (a grid of features, channels last), "
                         f"got {tuple(x.shape)}; reshape (B, N, C) tokens with shuffle_tokens instead")
    return x


def pixel_shuffle(x: torch.Tensor, scale_factor: float = 0.5, version: str = "v2") -> torch.Tensor:
    """InternVL's pixel shuffle: r x r neighbouring features -> one feature with r^2 x channels.

    Args:
        x: ``(B, W, H, C)`` patch features on their grid (InternVL's names; for a row-major
            token grid the first spatial axis holds the rows).
        scale_factor: 1/r (InternVL: 0.5, so r = 2).
        version: ``"v2"`` (InternVL's ``ps_version="v2"``, used by every released model) keeps the
            grid's orientation; ``"v1"`` is the original code, which returns it transposed.
    Returns:
        ``(B, W/r, H/r, r*r*C)`` for v2 (``(B, H/r, W/r, r*r*C)`` for v1). Output channel
        ``(a*r + b)*C + c`` holds input channel c at offset (a, b) inside the r x r block:
        ``out[n, u, v, (a*r + b)*C + c] = x[n, r*u + a, r*v + b, c]``.
    Raises:
        ValueError if W or H is not a multiple of r (e.g. a 7 x 7 grid), with the fix.

    This is what PyTorch calls *pixel_unshuffle* (space-to-depth); PyTorch's channel order
    is ``c*r*r + a*r + b`` instead (chapter 7 shows the permutation).
    """
    x = _check_features(x, "x")
    r = _ratio(scale_factor)
    if version not in ("v1", "v2"):
        raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")
    B, W, H, C = x.shape
    if W % r or H % r:
        raise ValueError(f"pixel_shuffle with scale_factor={scale_factor} needs both grid sides to be "
                         f"multiples of {r}, got a {W}x{H} grid. Choose an image size whose patch grid "
                         f"is a multiple of {r} (448/14 = 32 works; 224/16 = 14 works, 112/16 = 7 does "
                         f"not) or pad the grid.")
    x = x.reshape(B, W // r, r, H // r, r, C)             # (B, W/r, a, H/r, b, C)
    x = x.permute(0, 1, 3, 2, 4, 5)                       # (B, W/r, H/r, a, b, C)
    x = x.reshape(B, W // r, H // r, r * r * C)           # (B, W/r, H/r, r*r*C)
    if version == "v1":
        x = x.transpose(1, 2)                             # (B, H/r, W/r, r*r*C)
    return x.contiguous()


def inverse_pixel_shuffle(y: torch.Tensor, scale_factor: float = 0.5, version: str = "v2") -> torch.Tensor:
    """The exact inverse of :func:`pixel_shuffle`: ``(B, W/r, H/r, r*r*C)`` -> ``(B, W, H, C)``."""
    y = _check_features(y, "y")
    r = _ratio(scale_factor)
    if version not in ("v1", "v2"):
        raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")
    if version == "v1":
        y = y.transpose(1, 2)                             # (B, W/r, H/r, r*r*C)
    B, Wr, Hr, Cr = y.shape
    if Cr % (r * r):
        raise ValueError(f"the channel count {Cr} is not a multiple of r*r = {r * r}; "
                         f"was this tensor made by pixel_shuffle(scale_factor={scale_factor})?")
    C = Cr // (r * r)
    x = y.reshape(B, Wr, Hr, r, r, C)                     # (B, W/r, H/r, a, b, C)
    x = x.permute(0, 1, 3, 2, 4, 5)                       # (B, W/r, a, H/r, b, C)
    return x.reshape(B, Wr * r, Hr * r, C).contiguous()   # (B, W, H, C)


def shuffle_tokens(tokens: torch.Tensor, grid: tuple[int, int] | None = None,
                   scale_factor: float = 0.5) -> torch.Tensor:
    """Pixel-shuffle a sequence of patch tokens, as InternVL does after the ViT.

    Args:
        tokens: ``(B, N, C)`` patch tokens in row-major grid order, CLS already removed.
        grid: ``(rows, cols)``; None means a square grid (N must be a perfect square).
        scale_factor: 1/r.
    Returns:
        ``(B, N/r^2, r*r*C)``, the shuffled tokens in row-major order.
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3:
        raise ValueError(f"tokens must be a (B, N, C) tensor, got "
                         f"{tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__}")
    B, N, C = tokens.shape
    if grid is None:
        side = math.isqrt(N)
        if side * side != N:
            raise ValueError(f"{N} tokens do not form a square grid; pass grid=(rows, cols) "
                             f"(did you forget to drop the CLS token?)")
        grid = (side, side)
    rows, cols = grid
    if rows * cols != N:
        raise ValueError(f"grid {rows}x{cols} holds {rows * cols} tokens, got N={N}")
    x = tokens.reshape(B, rows, cols, C)                  # (B, W, H, C)
    y = pixel_shuffle(x, scale_factor)                    # (B, W/r, H/r, r*r*C)
    return y.reshape(B, -1, y.shape[-1])                  # (B, N/r^2, r*r*C)


# --------------------------------------------------------------------------------------
# 3. MLP projector
# --------------------------------------------------------------------------------------

class MLPProjector(nn.Module):
    """InternVL's ``mlp1``: LayerNorm -> Linear(r^2 C, D) -> GELU -> Linear(D, D).

    Args:
        vision_dim: C, the ViT width before pixel shuffle (1024 for InternViT-300M).
        llm_dim: D, the language model's width.
        scale_factor: the pixel-shuffle factor; the input width is ``C / scale_factor^2``.
    Forward:
        ``(B, N, r*r*C)`` -> ``(B, N, D)``.

    Initialisation: PyTorch's defaults (LayerNorm weight 1, bias 0; Linear Kaiming-uniform),
    as InternVL builds it with plain ``nn.Sequential``; attribute names follow
    ``transformers``' ``InternVLMultiModalProjector`` so weights map one to one.
    """

    def __init__(self, vision_dim: int, llm_dim: int, scale_factor: float = 0.5):
        super().__init__()
        _check_pos_int(vision_dim, "vision_dim")
        _check_pos_int(llm_dim, "llm_dim")
        r = _ratio(scale_factor)
        self.in_dim = vision_dim * r * r
        self.layer_norm = nn.LayerNorm(self.in_dim)
        self.linear_1 = nn.Linear(self.in_dim, llm_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(llm_dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"expected features of width {self.in_dim} (4 x the ViT width after pixel "
                             f"shuffle), got {tuple(x.shape)}")
        x = self.layer_norm(x)                            # (B, N, r*r*C)
        x = self.linear_1(x)                              # (B, N, D)
        return self.linear_2(self.act(x))                 # (B, N, D)


# --------------------------------------------------------------------------------------
# The pieces together, in miniature
# --------------------------------------------------------------------------------------

class MiniInternVL(nn.Module):
    """InternVL's vision path at the course's scale, with linear read-outs per view.

    ``views (T, C, S, S)`` -> ViT (one pass per view) -> patch tokens (CLS dropped) ->
    pixel shuffle -> :class:`MLPProjector` -> ``(T, n, D)`` "LLM tokens". A real InternVL hands
    all these tokens to a language model; the course's stand-in for it is one linear head
    per question on the mean token of each view, so a task decides how to combine the views
    (chapter 7: the most confident view wins).

    Args:
        vit: a :class:`vislab.vit.ViTConfig` with ``num_classes=0`` and a CLS token; its
            patch grid must be a multiple of 1/scale_factor.
        llm_dim: D.
        heads: ``{name: number of classes}``, one linear head each.
        scale_factor: pixel-shuffle factor (0.5).
    """

    def __init__(self, vit: ViTConfig, llm_dim: int, heads: dict, scale_factor: float = 0.5):
        super().__init__()
        if not isinstance(vit, ViTConfig):
            raise TypeError(f"vit must be a vislab.vit.ViTConfig, got {type(vit).__name__}")
        if vit.num_classes or not vit.class_token or vit.num_registers:
            raise ValueError("MiniInternVL needs a ViTConfig with num_classes=0, a CLS token and no registers")
        r = _ratio(scale_factor)
        if vit.grid[0] % r or vit.grid[1] % r:
            raise ValueError(f"the ViT's {vit.grid[0]}x{vit.grid[1]} patch grid cannot be pixel-shuffled by "
                             f"{scale_factor}; pick image_size/patch_size as a multiple of {r}")
        if not heads or not all(isinstance(k, int) and k > 0 for k in heads.values()):
            raise ValueError(f"heads must map names to positive class counts, got {heads!r}")
        self.scale_factor = scale_factor
        self.vit = ViT(vit)
        self.projector = MLPProjector(vit.dim, llm_dim, scale_factor)
        self.heads = nn.ModuleDict({name: nn.Linear(llm_dim, k) for name, k in heads.items()})

    def encode(self, views: torch.Tensor) -> torch.Tensor:
        """``(T, C, S, S)`` -> ``(T, n, D)`` with ``n = (S/P)^2 * scale_factor^2``.

        Other sizes divisible by P work too (the ViT resamples its position table), which
        chapter 9 uses to compare tiling with one large view."""
        P = self.vit.config.patch_size
        grid = (views.shape[-2] // P, views.shape[-1] // P)             # the trained grid for S x S views
        tokens = self.vit.forward_features(views)                       # (T, 1+N, C)
        patches = self.vit.split_tokens(tokens)["patches"]              # (T, N, C)
        shuffled = shuffle_tokens(patches, grid, self.scale_factor)     # (T, n, 4C)
        return self.projector(shuffled)                                 # (T, n, D)

    def forward(self, views: torch.Tensor) -> dict:
        """``(T, C, S, S)`` -> ``{name: logits (T, K)}``."""
        pooled = self.encode(views).mean(dim=1)                         # (T, D)
        return {name: head(pooled) for name, head in self.heads.items()}


# Presets as the model cards set them: InternVL-Chat-V1.5 / InternVL2 / InternVL2.5 all use
# 448 px tiles, patch 14, pixel shuffle 0.5 and (for inference) up to 12 tiles + thumbnail.
PRESETS = {
    "InternVL-1.5": TilingConfig(),
    "InternVL2": TilingConfig(),
    "InternVL2.5": TilingConfig(),
}

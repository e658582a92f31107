"""Chapter 1: cutting an image into patches and embedding them as tokens.

ViT (Dosovitskiy et al., arXiv:2010.11929, eq. 1) turns an image x in R^{H x W x C}
into a sequence of N = HW / P^2 flattened patches x_p in R^{N x (P^2 C)} and maps each
with one shared linear layer E in R^{(P^2 C) x D}.

Shape legend: B batch, C channels, H W image height/width, P patch size,
gh gw grid height/width (gh = H/P), N = gh*gw tokens, D embedding width.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["as_size", "grid_size", "num_tokens", "patchify", "unpatchify", "PatchEmbed"]


def as_size(size, name: str = "image_size") -> tuple[int, int]:
    """Normalise an int or ``(H, W)`` pair to a tuple of two positive ints."""
    if isinstance(size, bool):
        raise TypeError(f"{name} must be an int or an (H, W) pair, got a bool")
    if isinstance(size, int):
        size = (size, size)
    if not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2:
        raise TypeError(f"{name} must be an int or an (H, W) pair, got {size!r}")
    h, w = size
    if not (isinstance(h, int) and isinstance(w, int)) or h <= 0 or w <= 0:
        raise ValueError(f"{name} must hold two positive ints, got {size!r}")
    return int(h), int(w)


def _check_patch(patch_size) -> int:
    if isinstance(patch_size, bool) or not isinstance(patch_size, int):
        raise TypeError(f"patch_size must be an int, got {type(patch_size).__name__}")
    if patch_size <= 0:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    return patch_size


def _nearest_multiples(n: int, p: int) -> str:
    lo, hi = (n // p) * p, (n // p + 1) * p
    return f"{lo} or {hi}" if lo > 0 else f"{hi}"


def grid_size(image_size, patch_size: int) -> tuple[int, int]:
    """The patch grid ``(gh, gw)`` of an image; raises if a side is not divisible by P."""
    h, w = as_size(image_size)
    p = _check_patch(patch_size)
    bad = [(name, n) for name, n in (("height", h), ("width", w)) if n % p]
    if bad:
        parts = ", ".join(f"{name} {n} (nearest valid: {_nearest_multiples(n, p)})" for name, n in bad)
        raise ValueError(f"image size {h}x{w} is not divisible by patch size {p}: {parts}. "
                         f"Resize or crop the image to a multiple of {p}.")
    return h // p, w // p


def num_tokens(image_size, patch_size: int, cls_token: bool = True) -> int:
    """Number of tokens a ViT sees: N = HW / P^2 patches, plus one if there is a CLS token.

    >>> num_tokens(224, 16)
    197
    """
    gh, gw = grid_size(image_size, patch_size)
    return gh * gw + (1 if cls_token else 0)


def _check_images(images) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}; "
                         "add a batch dimension with images.unsqueeze(0) for a single image")
    return images


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches, MAE's layout.

    Args:
        images: ``(B, C, H, W)``.
        patch_size: P; H and W must be multiples of P.
    Returns:
        ``(B, N, P*P*C)`` with patches in row-major order over the grid and each patch
        flattened in (row, column, channel) order.
    """
    images = _check_images(images)
    B, C, H, W = images.shape
    gh, gw = grid_size((H, W), patch_size)
    p = patch_size
    x = images.reshape(B, C, gh, p, gw, p)          # (B, C, gh, P, gw, P)
    x = x.permute(0, 2, 4, 3, 5, 1)                 # (B, gh, gw, P, P, C)
    return x.reshape(B, gh * gw, p * p * C)         # (B, N, P*P*C)


def unpatchify(patches: torch.Tensor, patch_size: int, image_size) -> torch.Tensor:
    """Exact inverse of :func:`patchify`.

    Args:
        patches: ``(B, N, P*P*C)``.
        patch_size: P.
        image_size: ``H`` (square) or ``(H, W)`` of the original image.
    Returns:
        ``(B, C, H, W)``.
    """
    if not isinstance(patches, torch.Tensor):
        raise TypeError(f"patches must be a torch.Tensor of shape (B, N, P*P*C), got {type(patches).__name__}")
    if patches.dim() != 3:
        raise ValueError(f"patches must have shape (B, N, P*P*C), got {tuple(patches.shape)}")
    H, W = as_size(image_size)
    gh, gw = grid_size((H, W), patch_size)
    p = patch_size
    B, N, L = patches.shape
    if N != gh * gw:
        raise ValueError(f"{N} patches cannot tile a {H}x{W} image with patch {p}: expected {gh * gw} "
                         f"({gh}x{gw} grid)")
    if L % (p * p):
        raise ValueError(f"patch length {L} is not a multiple of P*P={p * p}")
    C = L // (p * p)
    x = patches.reshape(B, gh, gw, p, p, C)         # (B, gh, gw, P, P, C)
    x = x.permute(0, 5, 1, 3, 2, 4)                 # (B, C, gh, P, gw, P)
    return x.reshape(B, C, H, W)                    # (B, C, H, W)


class PatchEmbed(nn.Module):
    """Patch embedding: ``Conv2d(C, D, kernel=P, stride=P)``, then flatten to tokens.

    The convolution is the same linear map as ``patchify`` followed by
    ``nn.Linear(P*P*C, D)`` (chapter 1 proves it numerically); a strided convolution
    is simply the fastest way to apply it.

    Args:
        image_size: int or ``(H, W)``: the size the module is built for (used to check
            inputs when ``strict_size``, and to report the grid).
        patch_size: P.
        in_channels: C.
        dim: D.
        strict_size: if True, inputs must have exactly ``image_size``; otherwise any
            size divisible by P is accepted (the grid is then different).
    """

    def __init__(self, image_size=224, patch_size: int = 16, in_channels: int = 3, dim: int = 768,
                 bias: bool = True, strict_size: bool = False):
        super().__init__()
        self.image_size = as_size(image_size)
        self.patch_size = _check_patch(patch_size)
        self.grid = grid_size(self.image_size, patch_size)
        self.num_patches = self.grid[0] * self.grid[1]
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self.in_channels = in_channels
        self.strict_size = strict_size
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, N, D)``."""
        images = _check_images(images)
        if images.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {images.shape[1]} "
                             f"(images of shape {tuple(images.shape)}; channels come second: B, C, H, W)")
        size = tuple(images.shape[-2:])
        if self.strict_size and size != self.image_size:
            raise ValueError(f"expected images of size {self.image_size}, got {size}")
        grid_size(size, self.patch_size)                 # clear error if not divisible
        x = self.proj(images)                            # (B, D, gh, gw)
        return x.flatten(2).transpose(1, 2)              # (B, N, D)

    def as_linear(self) -> nn.Linear:
        """The equivalent ``nn.Linear(P*P*C, D)`` acting on :func:`patchify` output.

        The conv weight ``(D, C, P, P)`` is reordered to the (row, column, channel)
        layout of a flattened patch.
        """
        D = self.proj.out_channels
        lin = nn.Linear(self.proj.in_channels * self.patch_size ** 2, D, bias=self.proj.bias is not None)
        with torch.no_grad():
            w = self.proj.weight.permute(0, 2, 3, 1).reshape(D, -1)   # (D, P*P*C)
            lin.weight.copy_(w)
            if self.proj.bias is not None:
                lin.bias.copy_(self.proj.bias)
        return lin

"""Real photos for the chapters' pictures, from a dependency the course already has.

scikit-learn ships two colour photos ("china", a temple, and "flower", a dahlia), both
640x427 JPEGs released under a Creative Commons licence (see sklearn.datasets.load_sample_image).
Nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from vislab.validate import check_elements

__all__ = ["PHOTOS", "sample_photos", "load_photo", "to_tensor", "to_pil", "resize_tensor"]

PHOTOS = ("china", "flower")


def sample_photos() -> dict:
    """``{"china": PIL.Image, "flower": PIL.Image}``, each 640x427 RGB."""
    return {name: load_photo(name) for name in PHOTOS}


def load_photo(name: str, size=None) -> Image.Image:
    """One of scikit-learn's sample photos as an RGB ``PIL.Image``.

    Args:
        name: "china" or "flower".
        size: None (original 640x427), an int (square), or ``(width, height)`` as PIL counts.
    """
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; available: {PHOTOS}")
    from sklearn.datasets import load_sample_image

    img = Image.fromarray(load_sample_image(f"{name}.jpg")).convert("RGB")
    if size is not None:
        if isinstance(size, int):
            size = (size, size)
        if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
            raise ValueError(f"size must be None, a positive int or (width, height), got {size!r}")
        check_elements(f"a {size[0]}x{size[1]} photo", size[0] * size[1] * 3, limit=2 ** 28, bytes_per=1)
        img = img.resize(tuple(size), Image.BICUBIC)
    return img


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image → ``(3, H, W)`` float32 in [0, 1]."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image, got {type(image).__name__}")
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0     # (H, W, 3)
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()            # (3, H, W)


def to_pil(image: torch.Tensor) -> Image.Image:
    """``(3, H, W)`` (or ``(1, 3, H, W)``) float in [0, 1] → PIL image (values clipped)."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(image).__name__}")
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected (3, H, W) or (1, H, W), got {tuple(image.shape)}")
    arr = (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)


def resize_tensor(images: torch.Tensor, size, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(B, C, H, W)`` or ``(C, H, W)`` to ``size`` (int or ``(H, W)``), antialiased."""
    from vislab.patching import as_size

    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4):
        raise ValueError("images must be a (B, C, H, W) or (C, H, W) tensor")
    if mode not in ("nearest", "nearest-exact", "bilinear", "bicubic", "area"):
        raise ValueError(f"mode must be 'nearest', 'nearest-exact', 'bilinear', 'bicubic' or 'area', got {mode!r}")
    h, w = as_size(size)
    lead = images.shape[0] * images.shape[1] if images.dim() == 4 else images.shape[0]
    check_elements(f"images resized to {h}x{w}", lead * h * w)
    single = images.dim() == 3
    x = images[None] if single else images
    antialias = mode in ("bilinear", "bicubic")
    out = torch.nn.functional.interpolate(x.float(), size=as_size(size), mode=mode,
                                          **({"antialias": True, "align_corners": False} if antialias else {}))
    if mode == "bicubic":
        out = out.clamp(0, 1)
    return out[0] if single else out

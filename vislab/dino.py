"""Chapter 5: DINO and DINOv2, self-distillation with no labels.

A *student* network learns to predict, from any view of an image, what a *teacher* network
says about the two large views of the same image. The teacher is not trained by gradients:
it is an exponential moving average (EMA) of the student. Nothing tells the two apart except
the views they see, their temperatures and the teacher's centering.

DINO (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers",
arXiv:2104.14294), eqs. 1-4 and algorithm 1:

    P_s(x) = softmax(g_s(x) / tau_s)                         student, tau_s = 0.1          (1)
    P_t(x) = softmax((g_t(x) - c) / tau_t)                   teacher: centred, sharpened
    L = sum_{x in {x1g, x2g}} sum_{x' in V, x' != x} H(P_t(x), P_s(x')),  H(a, b) = -a . log b   (3)
    theta_t <- m theta_t + (1 - m) theta_s                   EMA, m: cosine 0.996 -> 1       (2)
    c <- m_c c + (1 - m_c) mean_batch g_t(x)                 centre, m_c = 0.9               (4)

Centering alone would drive the teacher to the uniform distribution; sharpening alone (a low
tau_t) to a one-hot on one prototype. Together they balance (the paper's section 5.3).

DINOv2 (Oquab et al., arXiv:2304.07193, section 4) adds:
    - iBOT's masked-patch loss (Zhou et al., arXiv:2111.07832, eq. 2): the student sees a global
      crop with some patches replaced by a learned ``mask_token`` and predicts, at each masked
      patch, the teacher's distribution for the *unmasked* patch;
    - Sinkhorn-Knopp centering of the teacher (SwAV, Caron et al., arXiv:2006.09882, sec. 3.1)
      instead of the EMA centre;
    - the KoLeo regulariser (Sablayrolles et al., arXiv:1806.03198, eq. 4) on the student's
      CLS features: L_koleo = -1/n sum_i log(min_{j != i} ||x_i - x_j||);
    - LayerScale, SwiGLU and (later) register tokens in the backbone: options of
      :class:`vislab.vit.ViTConfig`.

Built in that order: the multi-crop augmentation (:class:`MultiCropConfig`, :func:`multi_crop`),
:class:`DINOHead`, the losses (:class:`DINOLoss`, :func:`sinkhorn_knopp`, :func:`koleo_loss`,
:func:`block_mask`, :class:`iBOTPatchLoss`), the schedules, and :class:`DINO`, which holds the
student, the EMA teacher and the losses' state. The training loop lives in
:mod:`vislab.recipes.dino` (models do not import training code).

Shape legend: B batch, C channels, S crop side, V views, N patch tokens, gh gw patch grid,
D backbone width, Hd head hidden width, Db bottleneck width, K prototypes (head output), M masked patches.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vislab.validate import (check_elements, check_int, check_number, check_probability, check_range_pair,
                             check_scale)
from vislab.vit import ViT, ViTConfig

__all__ = [
    "MultiCropConfig", "MultiCropViews", "random_resized_crop", "color_jitter", "random_grayscale",
    "gaussian_blur", "solarize", "multi_crop", "DINOHead", "DINOLoss", "sinkhorn_knopp", "koleo_loss",
    "block_mask", "iBOTPatchLoss", "entropy", "momentum_schedule", "teacher_temperature",
    "DINOConfig", "DINO", "patch_pca", "foreground_iou",
]


# =============================================================================================
# 1. Multi-crop augmentation (DINO, section 3.1 and appendix; all in torch, batched)
# =============================================================================================

def _check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (B, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"{name} must be (B, C, H, W), got shape {tuple(images.shape)}; "
                         "use images.unsqueeze(0) for one image")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be floating point in [0, 1], got {images.dtype}")
    return images


def _check_generator(generator):
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _check_augment(p=None, **ranges) -> None:
    """An augmentation's probability in [0, 1] and its ``(low, high)`` ranges, in order and finite."""
    if p is not None:
        check_probability("p", p)
    for name, (value, low) in ranges.items():
        check_range_pair(name, value, minimum=low)


def _uniform(n: int, lo: float, hi: float, generator, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, device=device)           # (n,)


def _bernoulli(n: int, p: float, generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) < p                          # (n,) bool


def random_resized_crop(images: torch.Tensor, size: int, scale=(0.4, 1.0), ratio=(3 / 4, 4 / 3),
                        flip_p: float = 0.5, generator: torch.Generator | None = None):
    """Crop a random box of each image and resize it to ``size`` (torchvision's RandomResizedCrop
    followed by RandomHorizontalFlip, batched with one ``grid_sample``).

    The box covers a fraction ``s ~ U(scale)`` of the image's area with aspect ratio
    ``r ~ logU(ratio)`` (width ``sqrt(s r)``, height ``sqrt(s / r)``, clipped to the image),
    at a uniformly random place; with probability ``flip_p`` it is mirrored left-right.

    Args:
        images: ``(B, C, H, W)``.
        size: S, the output side in pixels.
        scale: range of the area fraction (DINO: global (0.4, 1.0), local (0.05, 0.4)).
        ratio: range of the aspect ratio.
        flip_p: probability of a horizontal flip.
        generator: the random stream.
    Returns:
        ``(crops (B, C, S, S), boxes (B, 4))``: boxes are ``(x0, y0, x1, y1)`` in [0, 1] of the
        source image, and ``x0 > x1`` marks a flipped crop.
    """
    images = _check_images(images)
    _check_generator(generator)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int (the crop side in pixels), got {size!r}")
    _check_augment(None, scale=(scale, 0.0), ratio=(ratio, 0.0))
    check_probability("flip_p", flip_p)
    if not (0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"scale must satisfy 0 < lo <= hi <= 1 (fractions of the image area), got {scale}")
    if ratio[0] <= 0:
        raise ValueError(f"ratio must be positive aspect ratios (width / height), got {ratio}")
    check_elements(f"{images.shape[0]} crops of {size}x{size}", images.shape[0] * images.shape[1] * size * size)
    B, dev = images.shape[0], images.device
    area = _uniform(B, scale[0], scale[1], generator, dev)                                  # (B,)
    log_r = _uniform(B, math.log(ratio[0]), math.log(ratio[1]), generator, dev)
    r = log_r.exp()
    w = (area * r).sqrt().clamp(max=1.0)                                                     # (B,) fraction of width
    h = (area / r).sqrt().clamp(max=1.0)                                                     # (B,) fraction of height
    x0 = torch.rand(B, generator=generator, device=dev) * (1 - w)
    y0 = torch.rand(B, generator=generator, device=dev) * (1 - h)
    flip = _bernoulli(B, flip_p, generator, dev)
    sign = 1.0 - 2.0 * flip.float()                                                          # (B,) +1 or -1
    # affine map from output coordinates in [-1, 1] to input coordinates in [-1, 1]
    theta = torch.zeros(B, 2, 3, device=dev, dtype=images.dtype)
    theta[:, 0, 0] = w * sign
    theta[:, 0, 2] = 2 * (x0 + w / 2) - 1
    theta[:, 1, 1] = h
    theta[:, 1, 2] = 2 * (y0 + h / 2) - 1
    grid = F.affine_grid(theta, (B, images.shape[1], size, size), align_corners=False)     # (B, S, S, 2)
    crops = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)  # (B, C, S, S)
    left, right = torch.where(flip, x0 + w, x0), torch.where(flip, x0, x0 + w)
    boxes = torch.stack([left, y0, right, y0 + h], dim=1)                                   # (B, 4)
    return crops, boxes


def _gray(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, as torchvision's rgb_to_grayscale: ``(B, 3, H, W)`` → ``(B, 1, H, W)``."""
    w = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * w).sum(dim=1, keepdim=True)


def color_jitter(images: torch.Tensor, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.2,
                 hue: float = 0.1, p: float = 0.8, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue, each image with its own factors.

    As torchvision's ``ColorJitter(0.4, 0.4, 0.2, 0.1)`` applied with probability 0.8 (DINO's
    recipe), in a fixed order (brightness, contrast, saturation, hue). The hue shift is a
    rotation of the chroma plane in YIQ space by ``2 pi h`` with ``h ~ U(-hue, hue)``, a close
    and cheap approximation of the HSV shift.

    Args:
        images: ``(B, 3, H, W)`` in [0, 1].
    Returns:
        ``(B, 3, H, W)`` in [0, 1].
    """
    images = _check_images(images)
    _check_generator(generator)
    if images.shape[1] != 3:
        raise ValueError(f"color_jitter needs RGB images (3 channels), got {images.shape[1]}")
    _check_jitter(brightness, contrast, saturation, hue, p)
    B, dev = images.shape[0], images.device
    apply = _bernoulli(B, p, generator, dev).view(B, 1, 1, 1)
    b = _uniform(B, 1 - brightness, 1 + brightness, generator, dev).view(B, 1, 1, 1)
    c = _uniform(B, 1 - contrast, 1 + contrast, generator, dev).view(B, 1, 1, 1)
    s = _uniform(B, 1 - saturation, 1 + saturation, generator, dev).view(B, 1, 1, 1)
    h = _uniform(B, -hue, hue, generator, dev)
    x = (images * b).clamp(0, 1)                                                             # brightness
    mean = _gray(x).mean(dim=(2, 3), keepdim=True)                                           # (B, 1, 1, 1)
    x = ((x - mean) * c + mean).clamp(0, 1)                                                  # contrast
    g = _gray(x)
    x = ((x - g) * s + g).clamp(0, 1)                                                        # saturation
    to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    from_yiq = torch.linalg.inv(to_yiq)
    cos, sin = torch.cos(2 * math.pi * h), torch.sin(2 * math.pi * h)                       # (B,)
    rot = torch.zeros(B, 3, 3, device=dev, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    m = from_yiq @ rot @ to_yiq                                                              # (B, 3, 3)
    x = torch.einsum("bij,bjhw->bihw", m, x).clamp(0, 1)                                     # hue
    return torch.where(apply, x, images)


def _check_jitter(brightness, contrast, saturation, hue, p) -> None:
    for name, v in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
        check_number(name, v, 0.0)                          # factors are drawn from [1 - v, 1 + v]
    check_number("hue", hue, 0.0, 0.5)                      # a shift of at most half a turn
    check_probability("p", p)


def random_grayscale(images: torch.Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """With probability ``p`` per image, replace it by its luma (on all 3 channels)."""
    images = _check_images(images)
    _check_generator(generator)
    _check_rgb(images, "random_grayscale")
    check_probability("p", p)
    apply = _bernoulli(images.shape[0], p, generator, images.device).view(-1, 1, 1, 1)
    return torch.where(apply, _gray(images).expand_as(images), images)


def gaussian_blur(images: torch.Tensor, sigma=(0.1, 2.0), p: float = 0.5,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """With probability ``p`` per image, blur it with a Gaussian of ``sigma ~ U(sigma)`` pixels.

    DINO blurs global view 1 always, global view 2 with p = 0.1 and local views with p = 0.5,
    with sigma in [0.1, 2.0] px for 224-px crops. One separable depthwise convolution for
    the whole batch (each image its own kernel), reflect padding.

    Returns:
        ``(B, C, H, W)``.
    """
    images = _check_images(images)
    _check_generator(generator)
    _check_augment(p, sigma=(sigma, 0.0))
    if not 0 < sigma[0] <= sigma[1]:
        raise ValueError(f"sigma must be a range 0 < lo <= hi in pixels, got {sigma}")
    B, C, H, W = images.shape
    dev = images.device
    apply = _bernoulli(B, p, generator, dev).view(B, 1, 1, 1)
    s = _uniform(B, sigma[0], sigma[1], generator, dev)                                      # (B,)
    radius = min(int(math.ceil(3 * sigma[1])), (min(H, W) - 1) // 2)
    if radius < 1:
        return images
    t = torch.arange(-radius, radius + 1, device=dev, dtype=images.dtype)                   # (k,)
    k = torch.exp(-t[None] ** 2 / (2 * s[:, None] ** 2))
    k = k / k.sum(dim=1, keepdim=True)                                                       # (B, k)
    k = k.repeat_interleave(C, dim=0)                                                        # (B*C, k)
    x = images.reshape(1, B * C, H, W)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k[:, None, None, :], groups=B * C)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k[:, None, :, None], groups=B * C)
    x = x.reshape(B, C, H, W)                                                                # (B, C, H, W)
    return torch.where(apply, x, images)


def solarize(images: torch.Tensor, p: float = 0.2, threshold: float = 0.5,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """With probability ``p`` per image, invert every pixel above ``threshold`` (BYOL, DINO view 2)."""
    images = _check_images(images)
    _check_generator(generator)
    check_probability("p", p)
    check_number("threshold", threshold)
    apply = _bernoulli(images.shape[0], p, generator, images.device).view(-1, 1, 1, 1)
    return torch.where(apply & (images >= threshold), 1 - images, images)


def _check_rgb(images, what: str) -> None:
    if images.shape[1] != 3:
        raise ValueError(f"{what} needs RGB images (3 channels), got {images.shape[1]}")


def _check_multicrop(c) -> None:
    """Probabilities in [0, 1], ranges in order, sizes a laptop can crop."""
    for name in ("flip_p", "jitter_p", "grayscale_p", "solarize_p", "invert_p"):
        check_probability(f"MultiCropConfig.{name}", getattr(c, name))
    for i, p in enumerate(c.blur_p):
        check_probability(f"MultiCropConfig.blur_p[{i}]", p)
    for name in ("global_scale", "local_scale"):
        check_range_pair(f"MultiCropConfig.{name}", getattr(c, name), 0.0, 1.0)
        if getattr(c, name)[0] <= 0:
            raise ValueError(f"MultiCropConfig.{name} must be area fractions in (0, 1], got {getattr(c, name)}")
    check_range_pair("MultiCropConfig.blur_sigma", c.blur_sigma, 0.0)
    if len(c.jitter) != 4:
        raise ValueError(f"MultiCropConfig.jitter holds 4 values (brightness, contrast, saturation, hue), got {c.jitter}")
    _check_jitter(*c.jitter, c.jitter_p)
    check_int("MultiCropConfig.n_local", c.n_local, 0, 64)
    for name in ("global_size", "local_size"):
        check_int(f"MultiCropConfig.{name}", getattr(c, name), 1, 4096)


@dataclass(frozen=True)
class MultiCropConfig:
    """DINO's multi-crop recipe (paper appendix, "data augmentation"), scaled to small images.

    Args:
        global_size: side of the 2 global crops (DINO: 224 px).
        local_size: side of the local crops (DINO: 96 px).
        n_local: number of local crops (DINO: 6 or 10; DINOv2: 8).
        global_scale: area fraction of global crops (DINO: (0.4, 1.0); DINOv2: (0.32, 1.0)).
        local_scale: area fraction of local crops (DINO: (0.05, 0.4)).
        flip_p: horizontal flip probability.
        jitter: (brightness, contrast, saturation, hue); jitter_p: its probability.
        grayscale_p: probability of a grey view.
        blur_sigma: blur strength range in pixels (DINO: 0.1-2.0 px at 224 px).
        blur_p: (global 1, global 2, local) blur probabilities (DINO: 1.0, 0.1, 0.5).
        solarize_p: solarisation probability of global crop 2 (DINO: 0.2).
        invert_p: probability of inverting a view (1 - x), every view (not in DINO's recipe:
            0; it removes "brighter or darker than the background" as a shared cue).
    """

    global_size: int = 224
    local_size: int = 96
    n_local: int = 6
    global_scale: tuple = (0.4, 1.0)
    local_scale: tuple = (0.05, 0.4)
    flip_p: float = 0.5
    jitter: tuple = (0.4, 0.4, 0.2, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_sigma: tuple = (0.1, 2.0)
    blur_p: tuple = (1.0, 0.1, 0.5)
    solarize_p: float = 0.2
    invert_p: float = 0.0

    def __post_init__(self):
        for name in ("global_size", "local_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"MultiCropConfig.{name} must be a positive int, got {v!r}")
        if isinstance(self.n_local, bool) or not isinstance(self.n_local, int) or self.n_local < 0:
            raise ValueError(f"n_local must be an int >= 0, got {self.n_local!r}")
        for name in ("global_scale", "local_scale", "jitter", "blur_sigma", "blur_p"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.blur_p) != 3:
            raise ValueError(f"blur_p holds 3 probabilities (global 1, global 2, local), got {self.blur_p}")
        _check_multicrop(self)

    @classmethod
    def shapes(cls, image_size: int = 32, **overrides) -> "MultiCropConfig":
        """DINO's recipe for ShapeWorld: global crops at the image size, local crops at half.

        Blur scaled with the crop (sigma up to 2 px at 224 px is about 0.3 px at 32 px; we keep
        up to 1 px so that blur still does something); local crops 0.1-0.4 of the area so that
        a 16-px local crop still holds part of a shape.
        """
        fields = dict(global_size=image_size, local_size=image_size // 2, n_local=4,
                      global_scale=(0.4, 1.0), local_scale=(0.1, 0.4), blur_sigma=(0.1, 1.0))
        fields.update(overrides)
        return cls(**fields)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass
class MultiCropViews:
    """The views of one batch: 2 global crops, then the local crops.

    Attributes:
        globals: 2 tensors ``(B, C, S_g, S_g)``.
        locals: ``n_local`` tensors ``(B, C, S_l, S_l)``.
        boxes: one ``(B, 4)`` tensor per view (globals first), ``(x0, y0, x1, y1)`` in [0, 1].
    """

    globals: list
    locals: list
    boxes: list = field(default_factory=list)

    @property
    def views(self) -> list:
        """All views, globals first (the order :class:`DINOLoss` expects)."""
        return list(self.globals) + list(self.locals)

    def __len__(self) -> int:
        return len(self.globals) + len(self.locals)


def multi_crop(images: torch.Tensor, config: MultiCropConfig, generator: torch.Generator | None = None) -> MultiCropViews:
    """DINO's multi-crop: 2 global views and ``n_local`` local views of each image.

    Global view 1: crop, flip, colour jitter, grey, blur (p = blur_p[0]). Global view 2: the
    same with blur p = blur_p[1] and solarisation. Local views: crop, flip, jitter, grey,
    blur (p = blur_p[2]). Every view of image b comes from image b.

    Args:
        images: ``(B, 3, H, W)`` in [0, 1].
        config: a :class:`MultiCropConfig`.
        generator: the random stream (the same generator state gives the same views).
    Returns:
        :class:`MultiCropViews`.
    """
    images = _check_images(images)
    if not isinstance(config, MultiCropConfig):
        raise TypeError(f"config must be a MultiCropConfig, got {type(config).__name__}")
    c = config

    def view(size, scale, blur_p, solar_p):
        x, box = random_resized_crop(images, size, scale, flip_p=c.flip_p, generator=generator)  # (B, 3, S, S)
        x = color_jitter(x, *c.jitter, p=c.jitter_p, generator=generator)
        x = random_grayscale(x, c.grayscale_p, generator=generator)
        x = gaussian_blur(x, c.blur_sigma, p=blur_p, generator=generator)
        if solar_p > 0:
            x = solarize(x, solar_p, generator=generator)
        if c.invert_p > 0:
            x = solarize(x, c.invert_p, threshold=0.0, generator=generator)       # threshold 0: invert all
        return x, box

    g1, b1 = view(c.global_size, c.global_scale, c.blur_p[0], 0.0)
    g2, b2 = view(c.global_size, c.global_scale, c.blur_p[1], c.solarize_p)
    locs, lboxes = [], []
    for _ in range(c.n_local):
        x, b = view(c.local_size, c.local_scale, c.blur_p[2], 0.0)
        locs.append(x)
        lboxes.append(b)
    return MultiCropViews([g1, g2], locs, [b1, b2] + lboxes)


# =============================================================================================
# 2. The projection head
# =============================================================================================

class DINOHead(nn.Module):
    """DINO's projection head (paper section 3.1, appendix "projection head").

        z = MLP(x)  (Linear-GELU-Linear-GELU-Linear to Db)
        z = z / ||z||                                  (L2 normalisation, the bottleneck)
        g(x)_k = s_k (v_k / ||v_k||) . z               (weight-normalised prototypes, no bias)

    Weight normalisation (Salimans & Kingma, arXiv:1602.07868) splits each prototype into a
    direction v_k / ||v_k|| and a gain s_k. With ``norm_last_layer=True`` (DINO's default for
    ViT-B) the gains stay 1: each logit is the cosine between the bottleneck and a prototype,
    bounded by 1, so the temperatures alone set how peaked the softmax can be. With ``False``
    (DINO's choice for ViT-S: "better performance but can make the training unstable") the
    gains are learned, starting at 1, and the head can sharpen its own outputs.

    Args:
        in_dim: D, the backbone width.
        out_dim: K, the number of prototypes (DINO: 65536; the course: a few hundred).
        hidden_dim: Hd (DINO: 2048).
        bottleneck_dim: Db (DINO: 256).
        layers: number of Linear layers in the MLP (DINO: 3).
        norm_last_layer: keep the prototype gains fixed at 1.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256, layers: int = 3,
                 norm_last_layer: bool = True):
        super().__init__()
        for name, v in (("in_dim", in_dim), ("out_dim", out_dim), ("hidden_dim", hidden_dim),
                        ("bottleneck_dim", bottleneck_dim), ("layers", layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"DINOHead {name} must be a positive int, got {v!r}")
        mods, d = [], in_dim
        for _ in range(layers - 1):
            mods += [nn.Linear(d, hidden_dim), nn.GELU()]
            d = hidden_dim
        mods.append(nn.Linear(d, bottleneck_dim))
        self.mlp = nn.Sequential(*mods)
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck_dim))    # v_k, normalised in forward
        self.gain = nn.Parameter(torch.ones(out_dim), requires_grad=not norm_last_layer)   # s_k
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Linear weights truncated normal std 0.02, biases 0 (DINO's ``_init_weights``);
        prototype directions the same (their norm does not matter); gains 1 (DINO's
        ``weight_g.data.fill_(1)``)."""
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.prototypes, std=0.02)
        self.gain.fill_(1.0)

    def forward(self, x: torch.Tensor, return_bottleneck: bool = False):
        """``(..., D)`` → logits ``(..., K)`` (and the unit bottleneck ``(..., Db)``)."""
        z = F.normalize(self.mlp(x), dim=-1)                                     # (..., Db)
        w = F.normalize(self.prototypes, dim=-1) * self.gain[:, None]            # (K, Db)
        logits = z @ w.t()                                                       # (..., K)
        return (logits, z) if return_bottleneck else logits


# =============================================================================================
# 3. The losses
# =============================================================================================

def entropy(probs: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy in nats, ``-sum p log p`` along ``dim`` (0 log 0 = 0)."""
    return -(probs * probs.clamp_min(1e-12).log()).sum(dim)


@torch.no_grad()
def sinkhorn_knopp(teacher_logits: torch.Tensor, temperature: float, iterations: int = 3) -> torch.Tensor:
    """Sinkhorn-Knopp centering (SwAV sec. 3.1; DINOv2 ``sinkhorn_knopp_teacher``).

    Q = exp(logits / tau), then alternately rescale so that every prototype receives the same
    total mass (1/K) and every sample carries the same mass (1/B). The result is an
    (approximately) *equipartitioned* soft assignment: no prototype can take the whole batch,
    which is what centering aims at, computed per batch instead of with an EMA.

    Args:
        teacher_logits: ``(B, K)``.
        temperature: tau_t.
        iterations: number of (columns, rows) rescaling rounds (DINOv2: 3).
    Returns:
        ``(B, K)`` targets; each row sums to one.
    """
    if not isinstance(teacher_logits, torch.Tensor) or teacher_logits.dim() != 2:
        raise ValueError(f"teacher_logits must be (B, K), got "
                         f"{tuple(teacher_logits.shape) if isinstance(teacher_logits, torch.Tensor) else type(teacher_logits).__name__}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    check_scale("temperature", temperature)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    logits = teacher_logits.float()
    # subtracting the global max does not change Q after normalisation and avoids overflow
    Q = torch.exp((logits - logits.max()) / temperature).t()                    # (K, B)
    K, B = Q.shape
    Q = Q / Q.sum()
    for _ in range(iterations):
        Q = Q / Q.sum(dim=1, keepdim=True) / K                                   # each prototype: mass 1/K
        Q = Q / Q.sum(dim=0, keepdim=True) / B                                   # each sample: mass 1/B
    return (Q * B).t()                                                           # (B, K), rows sum to 1


def koleo_loss(features: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """KoLeo regulariser (Sablayrolles et al., arXiv:1806.03198; DINOv2 ``KoLeoLoss``).

        L = -1/n sum_i log(d_i),   d_i = min_{j != i} || x_i/|x_i| - x_j/|x_j| ||

    The Kozachenko-Leonenko estimator of differential entropy, up to constants: pushing up
    each point's distance to its nearest neighbour spreads the batch uniformly over the sphere.

    Args:
        features: ``(n, D)``, n >= 2 (L2-normalised here).
    Returns:
        a scalar.
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"koleo_loss needs features of shape (n, D) with n >= 2, got "
                         f"{tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__}")
    x = F.normalize(features.float(), dim=-1, eps=eps)                         # (n, D)
    with torch.no_grad():
        dots = x @ x.t()                                                         # (n, n)
        dots.fill_diagonal_(-2.0)                                                # never pick oneself
        nearest = dots.argmax(dim=1)                                             # (n,)
    d = F.pairwise_distance(x, x[nearest], eps=eps)                              # (n,)
    return -torch.log(d + eps).mean()


class DINOLoss(nn.Module):
    """DINO's cross-view distillation loss with the teacher centre in a buffer (eqs. 1, 3, 4).

    ``teacher_targets`` turns teacher logits into targets (centred and sharpened, or Sinkhorn,
    or neither); ``forward`` averages ``H(P_t(x_i), P_s(x_v))`` over all pairs of a global view i
    and another view v != i; ``update_center`` moves the centre towards the batch mean.

    Args:
        out_dim: K.
        student_temp: tau_s (0.1).
        center_momentum: m_c (0.9).
    """

    CENTERINGS = ("center", "sinkhorn", "none")

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__()
        if not student_temp > 0:
            raise ValueError(f"student_temp must be positive, got {student_temp}")
        if not 0 <= center_momentum < 1:
            raise ValueError(f"center_momentum must be in [0, 1), got {center_momentum}")
        check_scale("student_temp", student_temp)
        check_int("out_dim", out_dim, minimum=1)
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))                  # (1, K), c

    @torch.no_grad()
    def teacher_targets(self, teacher_logits: torch.Tensor, teacher_temp: float, centering: str = "center") -> torch.Tensor:
        """Targets ``(..., K)`` from teacher logits ``(..., K)``.

        "center": softmax((g_t - c) / tau_t)   (DINO);  "sinkhorn": :func:`sinkhorn_knopp`
        (DINOv2); "none": softmax(g_t / tau_t), the ablation that collapses.
        """
        if centering not in self.CENTERINGS:
            raise ValueError(f"centering must be one of {self.CENTERINGS}, got {centering!r}")
        if not teacher_temp > 0:
            raise ValueError(f"teacher_temp must be positive, got {teacher_temp}")
        check_scale("teacher_temp", teacher_temp)
        if centering == "sinkhorn":
            shape = teacher_logits.shape
            return sinkhorn_knopp(teacher_logits.reshape(-1, shape[-1]), teacher_temp).reshape(shape)
        c = self.center if centering == "center" else 0.0
        return F.softmax((teacher_logits.float() - c) / teacher_temp, dim=-1)

    def forward(self, student_logits: list, teacher_targets: list) -> torch.Tensor:
        """Eq. 3, averaged over the pairs.

        Args:
            student_logits: V tensors ``(B, K)``, the global views first, in the teacher's order.
            teacher_targets: G tensors ``(B, K)`` (G = 2 global views), from :meth:`teacher_targets`.
        Returns:
            a scalar: mean over the G (V - 1) pairs of the batch-mean cross-entropy.
        """
        if not teacher_targets or len(student_logits) < 2:
            raise ValueError("DINOLoss needs at least one teacher target and two student views")
        total, pairs = 0.0, 0
        for i, t in enumerate(teacher_targets):
            for v, s in enumerate(student_logits):
                if v == i:                                   # same view: nothing to learn
                    continue
                logp = F.log_softmax(s.float() / self.student_temp, dim=-1)      # (B, K)
                total = total + (-(t * logp).sum(dim=-1)).mean()
                pairs += 1
        return total / pairs

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        """Eq. 4: c <- m c + (1 - m) mean over the batch (and views) of the teacher logits ``(..., K)``."""
        batch_center = teacher_logits.float().reshape(-1, teacher_logits.shape[-1]).mean(dim=0, keepdim=True)  # (1, K)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)


def block_mask(n: int, grid, ratio=(0.1, 0.5), probability: float = 0.5, min_block: int = 4,
               aspect=(0.3, 1 / 0.3), generator: torch.Generator | None = None) -> torch.Tensor:
    """BEiT's blockwise masking (arXiv:2106.08254, algorithm 1), as iBOT and DINOv2 use it.

    A fraction ``probability`` of the images is masked (DINOv2: 0.5); for each of them a target
    ratio r ~ U(ratio) of the patches is covered by random rectangles (area >= ``min_block``
    patches, aspect ratio log-uniform in ``aspect``) until the target is reached.

    Args:
        n: number of images.
        grid: ``(gh, gw)`` patch grid.
    Returns:
        ``(n, gh*gw)`` bool, True = masked (replaced by the mask token in the student's input).
    """
    _check_generator(generator)
    gh, gw = (grid, grid) if isinstance(grid, int) else tuple(grid)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not 0 <= ratio[0] <= ratio[1] < 1:
        raise ValueError(f"ratio must satisfy 0 <= lo <= hi < 1, got {ratio}")
    _check_block_mask(n, gh, gw, ratio, probability, min_block, aspect)
    N = gh * gw
    masks = torch.zeros(n, gh, gw, dtype=torch.bool)
    chosen = torch.rand(n, generator=generator) < probability
    log_a = (math.log(aspect[0]), math.log(aspect[1]))
    for b in range(n):
        if not chosen[b]:
            continue
        r = ratio[0] + (ratio[1] - ratio[0]) * float(torch.rand((), generator=generator))
        target = int(round(r * N))
        tries = 0
        while int(masks[b].sum()) < target and tries < 50:
            tries += 1
            left = target - int(masks[b].sum())
            area = min_block + (max(left, min_block) - min_block) * float(torch.rand((), generator=generator))
            a = math.exp(log_a[0] + (log_a[1] - log_a[0]) * float(torch.rand((), generator=generator)))
            h = max(1, min(gh, int(round(math.sqrt(area * a)))))
            w = max(1, min(gw, int(round(math.sqrt(area / a)))))
            top = int(torch.randint(0, gh - h + 1, (), generator=generator))
            lft = int(torch.randint(0, gw - w + 1, (), generator=generator))
            masks[b, top:top + h, lft:lft + w] = True
    return masks.reshape(n, N)                                                   # (n, N)


def _check_block_mask(n, gh, gw, ratio, probability, min_block, aspect) -> None:
    check_int("grid height", gh, minimum=1)
    check_int("grid width", gw, minimum=1)
    check_range_pair("ratio", ratio, 0.0, 1.0)
    check_probability("probability", probability)
    check_int("min_block", min_block, minimum=1)
    check_range_pair("aspect", aspect, 0.0)
    if aspect[0] <= 0:
        raise ValueError(f"aspect must be positive ratios (height / width), got {aspect}")
    check_elements(f"{n} masks of {gh}x{gw} patches", n * gh * gw)
    if n > 1_000_000:
        raise ValueError(f"n={n:,} masks are drawn one image at a time in Python (minutes); ask for fewer "
                         "than 1,000,000")


class iBOTPatchLoss(nn.Module):
    """iBOT's masked-image-modelling loss (arXiv:2111.07832, eq. 2; DINOv2 ``iBOTPatchLoss``).

        L_MIM = - sum_{masked i} P_t(u_i)^T log P_s(u_hat_i)

    The teacher sees the clean crop u, the student the masked crop u_hat (mask token at the
    masked patches); at each masked patch the student predicts the teacher's (centred,
    sharpened) distribution over the prototypes. The patch tokens have their own centre.
    Averaged per image over its masked patches, summed over the images, and divided by the
    number of *all* crops B, masked or not, as DINOv2 does (``iBOTPatchLoss.forward_masked``:
    ``-loss.sum() / student_masks_flat.shape[0]``, with ``masks_weight`` = 1 / masked patches
    of the crop): with half the crops masked the term is half the mean over masked crops
    (checked against ``dinov2/loss/ibot_patch_loss.py`` @81b2b64, lines 117-126, and the weights
    of ``dinov2/data/collate.py`` @fc49f49, line 40).

    Args:
        out_dim: K.
        student_temp: tau_s.
        center_momentum: m_c.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))                  # (1, K)

    @torch.no_grad()
    def teacher_targets(self, teacher_logits: torch.Tensor, teacher_temp: float, centering: str = "center") -> torch.Tensor:
        """As :meth:`DINOLoss.teacher_targets`, with the patch centre; ``(M, K)`` → ``(M, K)``."""
        if centering == "sinkhorn":
            return sinkhorn_knopp(teacher_logits, teacher_temp)
        if centering not in ("center", "none"):
            raise ValueError(f"centering must be one of {DINOLoss.CENTERINGS}, got {centering!r}")
        c = self.center if centering == "center" else 0.0
        return F.softmax((teacher_logits.float() - c) / teacher_temp, dim=-1)

    def forward(self, student_logits: torch.Tensor, teacher_targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """
        Args:
            student_logits: ``(M, K)``, the student's logits at the masked patches (``x[mask]``,
                so only those go through the head, as in DINOv2), or ``(B, N, K)`` for all patches.
            teacher_targets: ``(M, K)``, the targets at ``mask`` (in ``mask.nonzero()`` order).
            mask: ``(B, N)`` bool, M True entries.
        Returns:
            a scalar (0 when nothing is masked).
        """
        if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or mask.dtype != torch.bool:
            raise ValueError("mask must be a (B, N) bool tensor (True = masked)")
        if student_logits.dim() == 3:
            if student_logits.shape[:2] != mask.shape:
                raise ValueError(f"mask must be (B, N) = {tuple(student_logits.shape[:2])}, got {tuple(mask.shape)}")
            student_logits = student_logits[mask]                                        # (M, K)
        M = int(mask.sum())
        if student_logits.shape[0] != M or teacher_targets.shape != student_logits.shape:
            raise ValueError(f"the mask has {M} masked patches but the logits are {tuple(student_logits.shape)} "
                             f"and the targets {tuple(teacher_targets.shape)}; both must be (M, K)")
        if M == 0:
            return student_logits.sum() * 0.0
        logp = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)         # (M, K)
        per_patch = -(teacher_targets * logp).sum(dim=-1)                                # (M,)
        per_image = mask.sum(dim=1).clamp_min(1).float()                                 # (B,)
        weight = (1.0 / per_image)[:, None].expand_as(mask)[mask]                        # (M,)
        return (per_patch * weight).sum() / mask.shape[0]                                # / all B crops

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        """c <- m c + (1 - m) mean of the masked patches' teacher logits ``(M, K)``."""
        if teacher_logits.shape[0] == 0:
            return
        self.center.mul_(self.center_momentum).add_(teacher_logits.float().mean(dim=0, keepdim=True),
                                                    alpha=1 - self.center_momentum)


# =============================================================================================
# 4. Schedules
# =============================================================================================

def momentum_schedule(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """EMA momentum m at ``step``: cosine from ``base`` to ``final`` over ``total_steps`` (DINO sec. 3.1).

        m(t) = final - (final - base) (cos(pi t / T) + 1) / 2
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    t = min(max(step, 0), total_steps) / total_steps
    return final - (final - base) * (math.cos(math.pi * t) + 1) / 2


def teacher_temperature(step: int, warmup_steps: int, start: float = 0.04, end: float = 0.07) -> float:
    """tau_t at ``step``: linear warm-up from ``start`` to ``end``, then constant (DINO sec. 3.1:
    0.04 → 0.07 over the first 30 epochs; a higher start makes early training unstable).

    The warm-up is ``np.linspace(start, end, warmup_steps)``, as in both reference codes (DINO's
    ``DINOLoss.teacher_temp_schedule`` in ``main_dino.py``, per epoch; DINOv2's
    ``CosineScheduler`` warm-up, per iteration): ``end`` is reached at step ``warmup_steps - 1``.
    Checked against facebookresearch/dino ``main_dino.py`` @cc72fe9, lines 374-378 and 388, and
    facebookresearch/dinov2 ``dinov2/utils/utils.py`` @7d704d5, lines 75 and 83-87 (built in
    ``dinov2/train/train.py`` @fc49f49, lines 85-96).
    """
    if warmup_steps <= 0 or step >= warmup_steps:
        return end
    if warmup_steps == 1:                                                        # linspace(a, b, 1) = [a]
        return start
    return start + (end - start) * max(step, 0) / (warmup_steps - 1)


# =============================================================================================
# 5. Student and teacher
# =============================================================================================

def _check_dino_config(c) -> None:
    """The fields the checks in ``__post_init__`` leave open."""
    for name in ("out_dim", "hidden_dim", "bottleneck_dim", "head_layers"):
        check_int(f"DINOConfig.{name}", getattr(c, name), minimum=1)
    check_int("DINOConfig.teacher_temp_warmup_steps", c.teacher_temp_warmup_steps, minimum=0)
    for name in ("student_temp", "teacher_temp", "warmup_teacher_temp"):
        check_scale(f"DINOConfig.{name}", getattr(c, name))
    check_number("DINOConfig.center_momentum", c.center_momentum, 0.0, 1.0, strict_max=True)
    for name in ("koleo_weight", "ibot_weight"):
        check_number(f"DINOConfig.{name}", getattr(c, name), 0.0)
    check_probability("DINOConfig.mask_probability", c.mask_probability)
    check_range_pair("DINOConfig.mask_ratio", c.mask_ratio, 0.0, 1.0)
    if not isinstance(c.multicrop, MultiCropConfig):
        raise TypeError(f"DINOConfig.multicrop must be a MultiCropConfig, got {type(c.multicrop).__name__}")


@dataclass(frozen=True)
class DINOConfig:
    """A DINO / DINOv2 model and its losses (defaults: DINOv2's, heads scaled down).

    Args:
        backbone: the ViT (``use_mask_token=True`` is set for iBOT when ``ibot_weight > 0``).
        out_dim: K prototypes.
        hidden_dim, bottleneck_dim, head_layers, norm_last_layer: :class:`DINOHead`.
        student_temp: tau_s.
        teacher_temp: tau_t after warm-up; warmup_teacher_temp: at step 0.
        teacher_temp_warmup_steps: length of the warm-up.
        center_momentum: m_c.
        centering: "center" (DINO), "sinkhorn" (DINOv2), "none" (ablation).
        momentum_base: the EMA's starting momentum (cosine to 1).
        koleo_weight: weight of the KoLeo term (DINOv2: 0.1; 0 = off).
        ibot_weight: weight of the masked-patch term (DINOv2: 1.0; 0 = off).
        mask_probability: fraction of global crops that are masked.
        mask_ratio: range of the masked fraction of patches.
        multicrop: the :class:`MultiCropConfig`.
    """

    backbone: ViTConfig = field(default_factory=lambda: ViTConfig(image_size=32, patch_size=4, dim=64, depth=4,
                                                                  heads=4, use_mask_token=True))
    out_dim: int = 256
    hidden_dim: int = 256
    bottleneck_dim: int = 64
    head_layers: int = 3
    norm_last_layer: bool = True
    student_temp: float = 0.1
    teacher_temp: float = 0.07
    warmup_teacher_temp: float = 0.04
    teacher_temp_warmup_steps: int = 100
    center_momentum: float = 0.9
    centering: str = "center"
    momentum_base: float = 0.996
    koleo_weight: float = 0.1
    ibot_weight: float = 1.0
    mask_probability: float = 0.5
    mask_ratio: tuple = (0.1, 0.5)
    multicrop: MultiCropConfig = field(default_factory=MultiCropConfig.shapes)

    def __post_init__(self):
        if isinstance(self.backbone, dict):
            object.__setattr__(self, "backbone", ViTConfig.from_dict(self.backbone))
        if isinstance(self.multicrop, dict):
            object.__setattr__(self, "multicrop", MultiCropConfig(**self.multicrop))
        object.__setattr__(self, "mask_ratio", tuple(self.mask_ratio))
        if not isinstance(self.backbone, ViTConfig):
            raise TypeError(f"backbone must be a ViTConfig, got {type(self.backbone).__name__}")
        if self.backbone.num_classes:
            raise ValueError("the DINO backbone must have no classification head (num_classes=0)")
        if not self.backbone.class_token:
            raise ValueError("DINO distils the CLS token: the backbone needs class_token=True")
        if self.ibot_weight > 0 and not self.backbone.use_mask_token:
            object.__setattr__(self, "backbone", self.backbone.replace(use_mask_token=True))
        if self.centering not in DINOLoss.CENTERINGS:
            raise ValueError(f"centering must be one of {DINOLoss.CENTERINGS}, got {self.centering!r}")
        for name in ("student_temp", "teacher_temp", "warmup_teacher_temp"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.momentum_base <= 1:
            raise ValueError(f"momentum_base must be in [0, 1], got {self.momentum_base}")
        _check_dino_config(self)

    def replace(self, **changes) -> "DINOConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["backbone"] = self.backbone.to_dict()
        d["multicrop"] = self.multicrop.to_dict()
        d["mask_ratio"] = list(self.mask_ratio)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DINOConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DINOConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)


class DINO(nn.Module):
    """Student and EMA teacher (each a ViT + :class:`DINOHead`) and the losses' centres.

    Attributes:
        student, teacher: ``nn.ModuleDict(backbone=ViT, head=DINOHead)``; the teacher starts as
            an exact copy and never receives gradients.
        dino_loss: :class:`DINOLoss` (CLS centre); ibot_loss: :class:`iBOTPatchLoss` (patch centre).

    ``loss(views, masks, teacher_temp)`` computes the training objective and a dict of
    diagnostics; ``update_teacher(momentum)`` is the EMA step; ``encoder`` is the teacher's
    backbone, the network DINO evaluates and ships.
    """

    def __init__(self, config: DINOConfig | None = None):
        super().__init__()
        config = DINOConfig() if config is None else config
        if isinstance(config, dict):
            config = DINOConfig.from_dict(config)
        if not isinstance(config, DINOConfig):
            raise TypeError(f"DINO expects a DINOConfig, got {type(config).__name__}")
        self.config = c = config
        self.student = nn.ModuleDict({
            "backbone": ViT(c.backbone),
            "head": DINOHead(c.backbone.dim, c.out_dim, c.hidden_dim, c.bottleneck_dim, c.head_layers,
                             c.norm_last_layer)})
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.dino_loss = DINOLoss(c.out_dim, c.student_temp, c.center_momentum)
        self.ibot_loss = iBOTPatchLoss(c.out_dim, c.student_temp, c.center_momentum)

    @property
    def encoder(self) -> ViT:
        """The teacher's backbone: what DINO evaluates (k-NN, linear probe) and ships."""
        return self.teacher["backbone"]

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()                 # the teacher has no dropout/BN, but say so
        return self

    def student_parameters(self):
        """The parameters the optimiser updates (the teacher is EMA only)."""
        return self.student.parameters()

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """Eq. 2: theta_t <- m theta_t + (1 - m) theta_s, parameter by parameter."""
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        for pt, ps in zip(self.teacher.parameters(), self.student.parameters()):
            pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)

    def _run(self, net, images, mask=None):
        vit = net["backbone"]
        x, grid = vit.embed(images, mask=mask)                                   # (B, T, D)
        tokens, _, _ = vit.encode(x, grid)                                       # (B, T, D)
        parts = vit.split_tokens(tokens)
        return parts["cls"], parts["patches"]                                    # (B, D), (B, N, D)

    def loss(self, views: list, masks: torch.Tensor | None = None, teacher_temp: float | None = None,
             centering: str | None = None, update_centers: bool = True):
        """The DINOv2 objective on one batch of multi-crop views.

            L = L_DINO + ibot_weight L_iBOT + koleo_weight (L_KoLeo(crop 1) + L_KoLeo(crop 2))

        KoLeo is applied to each global crop's batch separately (never between two crops of one
        image) and the two terms are *added*, as DINOv2's ``SSLMetaArch.forward_backward`` does
        (``koleo_loss_weight * sum(self.koleo_loss(p) for p in student_cls_tokens.chunk(2))``;
        ``dinov2/train/ssl_meta_arch.py`` @fc49f49, lines 317-319).

        Args:
            views: V tensors, the 2 global crops ``(B, C, S_g, S_g)`` first, then local crops.
            masks: ``(2B, N_g)`` bool iBOT masks for the two global crops (stacked), or None.
            teacher_temp: tau_t for this step (default: the config's final value).
            centering: override the config's centering (the chapter's ablations).
            update_centers: move the EMA centres after computing the targets.
        Returns:
            ``(loss, metrics)``; metrics: ``dino``, ``ibot``, ``koleo`` (the terms),
            ``teacher_entropy`` (mean per-sample entropy of the teacher targets, nats),
            ``batch_entropy`` (entropy of their batch mean) and ``kl`` (teacher ‖ student).
        """
        c = self.config
        if not isinstance(views, (list, tuple)) or len(views) < 2:
            raise ValueError("views must be a list of at least the 2 global crops (MultiCropViews.views)")
        tau_t = c.teacher_temp if teacher_temp is None else teacher_temp
        centering = c.centering if centering is None else centering
        g = torch.cat(views[:2])                                                 # (2B, C, S_g, S_g)
        B = views[0].shape[0]
        # ---- teacher: the two global crops, unmasked, no gradient
        with torch.no_grad():
            t_cls, t_patch = self._run(self.teacher, g)                          # (2B, D), (2B, N, D)
            t_logits = self.teacher["head"](t_cls)                               # (2B, K)
            t_targets = self.dino_loss.teacher_targets(t_logits, tau_t, centering)   # (2B, K)
        # ---- student: global crops (masked for iBOT), then local crops
        use_ibot = c.ibot_weight > 0 and masks is not None and bool(masks.any())
        s_cls, s_patch = self._run(self.student, g, mask=masks if use_ibot else None)   # (2B, D), (2B, N, D)
        s_logits = [self.student["head"](s_cls)]                                 # [(2B, K)]
        if len(views) > 2:
            loc = torch.cat(views[2:])                                           # ((V-2)B, C, S_l, S_l)
            l_cls, _ = self._run(self.student, loc)
            s_logits.append(self.student["head"](l_cls))                         # ((V-2)B, K)
        s_all = torch.cat(s_logits).split(B)                                     # V x (B, K)
        dino = self.dino_loss(list(s_all), list(t_targets.split(B)))
        total = dino
        metrics = {"dino": float(dino.detach())}
        # ---- iBOT: the masked patches
        if use_ibot:
            with torch.no_grad():
                t_plog = self.teacher["head"](t_patch[masks])                    # (M, K)
                t_ptarget = self.ibot_loss.teacher_targets(t_plog, tau_t, centering)
            s_plog = self.student["head"](s_patch[masks])                        # (M, K): masked patches only
            ibot = self.ibot_loss(s_plog, t_ptarget, masks)
            total = total + c.ibot_weight * ibot
            metrics["ibot"] = float(ibot.detach())
        # ---- KoLeo on the student's (final-normed) CLS of each global crop
        if c.koleo_weight > 0:
            koleo = sum(koleo_loss(x) for x in s_cls.split(B))                  # summed over the 2 crops
            total = total + c.koleo_weight * koleo
            metrics["koleo"] = float(koleo.detach())
        with torch.no_grad():
            p_s = F.softmax(s_all[0].float() / c.student_temp, dim=-1)          # student on view 1
            t2 = t_targets[B:]                                                   # teacher on view 2
            metrics["teacher_entropy"] = float(entropy(t_targets).mean())
            metrics["batch_entropy"] = float(entropy(t_targets.mean(0)))
            metrics["kl"] = float((t2 * (t2.clamp_min(1e-12).log() - p_s.clamp_min(1e-12).log())).sum(-1).mean())
            if update_centers:
                self.dino_loss.update_center(t_logits)
                if use_ibot:
                    self.ibot_loss.update_center(t_plog)
        return total, metrics


# =============================================================================================
# 6. Reading the features: PCA of patch tokens (the DINOv2 figure)
# =============================================================================================

@torch.no_grad()
def patch_pca(patch_features: torch.Tensor, n_components: int = 3, foreground_threshold: float | None = None):
    """Project patch features on their first principal components, scaled to [0, 1] (DINOv2, fig. 1).

    One PCA is fitted jointly on the patches of all images, so that a colour means the same
    direction of feature space in every picture. With ``foreground_threshold`` the DINOv2
    recipe is followed: the first component separates object from background (its sign is
    chosen so that the *smaller* side, the objects, is positive), patches whose normalised
    first component is below the threshold are painted black, and a second PCA on the
    remaining patches gives the colours.

    Args:
        patch_features: ``(B, N, D)``.
        n_components: 3 for an RGB picture.
        foreground_threshold: None (no background removal) or a value in [0, 1].
    Returns:
        ``(rgb (B, N, n_components) in [0, 1], foreground (B, N) bool)``; reshape to ``(B, gh, gw, 3)``.
    """
    if not isinstance(patch_features, torch.Tensor) or patch_features.dim() != 3:
        raise ValueError("patch_features must be a (B, N, D) tensor, e.g. model.forward_intermediates(x)['patches']")
    B, N, D = patch_features.shape
    if not 1 <= n_components <= min(B * N, D):
        raise ValueError(f"n_components must be between 1 and min(B*N, D) = {min(B * N, D)}, got {n_components}")
    x = patch_features.reshape(B * N, D).double()                                # (B*N, D)

    def project(rows, k):
        centred = rows - rows.mean(0, keepdim=True)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)                # (min, D)
        comps = vh[:k]                                                           # (k, D)
        # sign convention (scikit-learn's svd_flip): the largest loading of each component is positive
        sign = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
        comps = comps * sign
        return centred @ comps.t()                                               # (rows, k)

    def unit(p):
        lo, hi = p.min(0, keepdim=True).values, p.max(0, keepdim=True).values
        return (p - lo) / (hi - lo).clamp_min(1e-12)

    foreground = torch.ones(B * N, dtype=torch.bool)
    if foreground_threshold is not None:
        first = unit(project(x, 1))[:, 0]                                        # (B*N,)
        if (first > 0.5).float().mean() > 0.5:                                   # objects are the minority
            first = 1 - first
        foreground = first > foreground_threshold
        if int(foreground.sum()) <= n_components:
            raise ValueError(f"foreground_threshold={foreground_threshold} keeps {int(foreground.sum())} patches; "
                             "lower it")
    rgb = torch.zeros(B * N, n_components, dtype=torch.float64)
    rgb[foreground] = unit(project(x[foreground], n_components))
    return rgb.reshape(B, N, n_components).float(), foreground.reshape(B, N)


def foreground_iou(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Intersection over union of two patch masks, one value per image.

    Scores an unsupervised foreground mask (``patch_pca``'s second output) against the patches
    that hold an object: 1 is a perfect match, 0 no overlap. An image where both masks are empty
    scores 1 (nothing to find, nothing found).

    Args:
        predicted: ``(B, N)`` bool, e.g. ``patch_pca(feats, foreground_threshold=0.6)[1]``.
        target: ``(B, N)`` bool, the patches covered by an object.
    Returns:
        ``(B,)`` float tensor in [0, 1].
    """
    for name, m in (("predicted", predicted), ("target", target)):
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or m.dim() != 2:
            raise TypeError(f"{name} must be a (B, N) bool tensor, got "
                            f"{type(m).__name__ if not isinstance(m, torch.Tensor) else f'{m.dtype} {tuple(m.shape)}'}"
                            "; compare a score with a threshold (e.g. fraction > 0.5) to get one")
    if predicted.shape != target.shape:
        raise ValueError(f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} must have the same "
                         "(B, N) shape: one entry per patch of each image")
    inter = (predicted & target).sum(1).float()
    union = (predicted | target).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))

"""Chapter 10: a small ConvNet in the ConvNeXt style, the course's one non-transformer encoder.

ConvNeXt (Liu et al., "A ConvNet for the 2020s", arXiv:2201.03545) modernises a ResNet step by
step towards a Swin Transformer's design and keeps it a pure ConvNet. Its block (fig. 4, right):

    x' = DWConv7x7(x)                        depthwise 7x7: spatial mixing, one filter per channel
    x' = LN(x')                              one LayerNorm over channels (not BatchNorm)
    x' = W_2 GELU(W_1 x')                    inverted bottleneck: D -> 4D -> D, pointwise (1x1)
    y  = x + DropPath(gamma * x')            layer scale gamma (init 1e-6 in the paper)

Around the blocks (sec. 2): a "patchify" stem (a k x k convolution with stride k, like ViT's patch
embedding, then LN), stages of blocks at decreasing resolution, and between stages a separate
downsampling layer (LN, then a 2x2 convolution with stride 2). The paper's ConvNeXt-T has stages
(3, 3, 9, 3) of widths (96, 192, 384, 768) and a 4x4 stem; the course's 32-pixel images keep the
4x4 stem and get two short stages (1 and 2 blocks, widths 48 and 96: an 8x8 grid, then 4x4), so the
last stage is a 4x4 grid, like a ViT with 8x8 patches. (Measured on one CPU thread, batch 64: a
three-stage net with a 2x2 stem took 0.3-0.5 s per training step, this one 0.2 s, the tiny ViT 0.16 s.)

Built in that order: :class:`ConvNetConfig` → :class:`LayerNorm2d` → :class:`ConvNeXtBlock`
→ :class:`ConvNet` (``forward_features`` gives the spatial map and the pooled vector).

Shape legend: B batch, C input channels, H W image height/width, D channels of a stage,
h w the feature grid of a stage, K classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vislab.validate import check_int, check_number

__all__ = ["ConvNetConfig", "PRESETS", "LayerNorm2d", "ConvNeXtBlock", "ConvNet"]

# Paper presets (table in sec. 3 / appendix A) and the course's tiny one.
PRESETS: dict[str, dict] = {
    "T": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), stem=4),
    "S": dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768), stem=4),
    "B": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024), stem=4),
    "shapes": dict(depths=(1, 2), dims=(48, 96), stem=4),
}


def _check_convnet_config(c) -> None:
    for name in ("image_size", "in_channels", "stem", "kernel_size"):
        check_int(f"ConvNetConfig.{name}", getattr(c, name), minimum=1)
    check_int("ConvNetConfig.num_classes", c.num_classes, minimum=0)
    for name in ("depths", "dims"):
        if not isinstance(getattr(c, name), (tuple, list)):
            raise TypeError(f"ConvNetConfig.{name} must be a tuple of ints, got {getattr(c, name)!r}")
        for v in getattr(c, name):
            check_int(f"each of ConvNetConfig.{name}", v, minimum=1)
    check_number("ConvNetConfig.norm_eps", c.norm_eps, 0.0, strict_min=True)
    check_number("ConvNetConfig.layerscale_init", c.layerscale_init, 0.0, strict_min=True)
    check_number("ConvNetConfig.mlp_ratio", c.mlp_ratio, 0.0, strict_min=True)
    if c.dims and int(min(c.dims) * c.mlp_ratio) < 1:
        raise ValueError(f"mlp_ratio={c.mlp_ratio} gives a zero-width MLP for {min(c.dims)} channels; raise it")


@dataclass(frozen=True)
class ConvNetConfig:
    """A ConvNeXt-style ConvNet.

    Args:
        image_size: input side in pixels (any multiple of ``stem * 2**(stages-1)`` works).
        in_channels: C.
        depths: blocks per stage.
        dims: channels per stage (same length as ``depths``).
        stem: the patchify stem's kernel = stride (the paper: 4).
        kernel_size: the depthwise kernel (the paper: 7, sec. 2.5 "increasing the kernel size").
        mlp_ratio: the inverted bottleneck's expansion (the paper: 4, sec. 2.4).
        layerscale_init: gamma's initial value (the paper: 1e-6). The course uses 0.1: on a
            3-stage net trained for a few thousand steps, 1e-6 leaves the blocks near identity
            for most of the budget.
        num_classes: K for a linear head on the pooled features (0: no head).
        norm_eps: LayerNorm epsilon (the paper's code: 1e-6).
    """

    image_size: int = 32
    in_channels: int = 3
    depths: tuple = (1, 2)
    dims: tuple = (48, 96)
    stem: int = 4
    kernel_size: int = 7
    mlp_ratio: float = 4.0
    layerscale_init: float = 0.1
    num_classes: int = 0
    norm_eps: float = 1e-6

    def __post_init__(self):
        _check_convnet_config(self)
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "dims", tuple(int(d) for d in self.dims))
        if not self.depths or len(self.depths) != len(self.dims):
            raise ValueError(f"depths and dims must be non-empty and of equal length, got {self.depths} and {self.dims}")
        if any(d < 1 for d in self.depths) or any(d < 1 for d in self.dims):
            raise ValueError(f"depths and dims must be positive, got {self.depths} and {self.dims}")
        if self.stem < 1 or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"stem must be >= 1 and kernel_size odd, got stem={self.stem}, kernel_size={self.kernel_size}")
        if self.image_size % self.reduction:
            raise ValueError(f"image_size {self.image_size} must be a multiple of the total stride {self.reduction} "
                             f"(stem {self.stem} x 2^{len(self.dims) - 1})")
        if self.num_classes < 0 or self.layerscale_init <= 0:
            raise ValueError("num_classes must be >= 0 and layerscale_init > 0")

    @property
    def reduction(self) -> int:
        """Total stride from pixels to the last stage's grid."""
        return self.stem * 2 ** (len(self.dims) - 1)

    @property
    def grid(self) -> tuple[int, int]:
        """The last stage's ``(h, w)`` at ``image_size``."""
        g = self.image_size // self.reduction
        return (g, g)

    @property
    def dim(self) -> int:
        """Width of the output features (the last stage's channels)."""
        return self.dims[-1]

    @classmethod
    def preset(cls, name: str, **overrides) -> "ConvNetConfig":
        """``ConvNetConfig.preset("T")`` (the paper's ConvNeXt-T) or ``"shapes"`` (the course's)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {list(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def replace(self, **changes) -> "ConvNetConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["depths"], d["dims"] = list(self.depths), list(self.dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ConvNetConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        bad = set(d) - names
        if bad:
            raise ValueError(f"unknown ConvNetConfig fields {sorted(bad)}")
        return cls(**d)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, D, h, w)`` map (the paper's "channels_first" LN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)                                        # (B, h, w, D)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)                                     # (B, D, h, w)


class ConvNeXtBlock(nn.Module):
    """One ConvNeXt block (fig. 4): depthwise 7x7 → LN → 1x1 (4D) → GELU → 1x1 (D) → gamma → + x.

    The pointwise convolutions are Linear layers on channels-last tensors, as in the paper's code.
    """

    def __init__(self, dim: int, kernel_size: int = 7, mlp_ratio: float = 4.0, layerscale_init: float = 1e-6,
                 eps: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        hidden = int(dim * mlp_ratio)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layerscale_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)`` → ``(B, D, h, w)``."""
        y = self.dwconv(x)                                               # (B, D, h, w)
        y = y.permute(0, 2, 3, 1)                                        # (B, h, w, D)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))           # (B, h, w, 4D) -> (B, h, w, D)
        y = self.gamma * y
        return x + y.permute(0, 3, 1, 2)                                 # (B, D, h, w)


class ConvNet(nn.Module):
    """A ConvNeXt-style ConvNet (arXiv:2201.03545): stem, stages with downsampling, pooled LN, head.

    ``forward_features(images)`` → dict with ``spatial`` (B, D, h, w) (the last stage's map),
    ``patches`` (B, h*w, D) (the same map as a token list, ViT-style), ``pooled`` (B, D)
    (global average pool + LayerNorm, the paper's head input) and ``stages`` [(B, D_s, h_s, w_s)].
    ``forward(images)`` → logits ``(B, K)`` or the pooled features when ``num_classes == 0``.
    """

    def __init__(self, config: ConvNetConfig):
        super().__init__()
        if not isinstance(config, ConvNetConfig):
            raise TypeError(f"ConvNet expects a ConvNetConfig, got {type(config).__name__}; "
                            "e.g. ConvNet(ConvNetConfig.preset('shapes'))")
        self.config = c = config
        self.stem = nn.Sequential(nn.Conv2d(c.in_channels, c.dims[0], c.stem, stride=c.stem),
                                  LayerNorm2d(c.dims[0], eps=c.norm_eps))
        self.downsample = nn.ModuleList([nn.Identity()] + [
            nn.Sequential(LayerNorm2d(c.dims[i - 1], eps=c.norm_eps), nn.Conv2d(c.dims[i - 1], c.dims[i], 2, stride=2))
            for i in range(1, len(c.dims))])
        self.stages = nn.ModuleList([
            nn.Sequential(*[ConvNeXtBlock(d, c.kernel_size, c.mlp_ratio, c.layerscale_init, c.norm_eps)
                            for _ in range(n)]) for n, d in zip(c.depths, c.dims)])
        self.norm = nn.LayerNorm(c.dims[-1], eps=c.norm_eps)
        self.head = nn.Linear(c.dims[-1], c.num_classes) if c.num_classes else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The paper's code: conv and Linear weights truncated normal (std 0.02), biases zero;
        LayerNorm 1/0; gamma = ``layerscale_init``; the head zero-initialised (as vislab's ViT)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, ConvNeXtBlock):
                m.gamma.fill_(self.config.layerscale_init)
        if self.head is not None:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def _check_images(self, images) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor (B, C, H, W), got {type(images).__name__}")
        if images.dim() != 4:
            raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}"
                             + ("; use images.unsqueeze(0) for one image" if images.dim() == 3 else ""))
        c = self.config
        if images.shape[1] != c.in_channels:
            raise ValueError(f"this ConvNet expects {c.in_channels} input channels, got {images.shape[1]}")
        H, W = images.shape[-2:]
        if H % c.reduction or W % c.reduction:
            raise ValueError(f"image height and width must be multiples of {c.reduction}, got {(H, W)}")
        return images

    def forward_features(self, images: torch.Tensor) -> dict:
        """Named features of ``images`` ``(B, C, H, W)`` (see the class docstring)."""
        x = self.stem(self._check_images(images))                        # (B, D_0, H/stem, W/stem)
        stages = []
        for down, stage in zip(self.downsample, self.stages):
            x = stage(down(x))                                           # (B, D_s, h_s, w_s)
            stages.append(x)
        patches = x.flatten(2).transpose(1, 2)                           # (B, h*w, D)
        pooled = self.norm(x.mean(dim=(2, 3)))                           # (B, D)
        return {"spatial": x, "patches": patches, "pooled": pooled, "stages": stages}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)``, or pooled features ``(B, D)`` without a head."""
        pooled = self.forward_features(images)["pooled"]                 # (B, D)
        return self.head(pooled) if self.head is not None else pooled    # (B, K)

"""Chapter 5's viewers: the multi-crop views of an image, PCA of patch features as colours,
and the CLS token's attention per head.

Each viewer takes tensors (images, features, attention maps) and draws them; none trains.
"""

from __future__ import annotations

import numpy as np
import torch

from vislab.dino import MultiCropConfig, multi_crop
from vislab.widgets.core import fig_to_png, show

__all__ = ["crops_figure", "multicrop_viewer", "pca_figure", "cls_attention_maps", "cls_attention_figure",
           "cls_attention_viewer"]


def _hwc(img: torch.Tensor) -> np.ndarray:
    return img.detach().float().cpu().permute(1, 2, 0).clamp(0, 1).numpy()


def _check_image(image):
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be a (3, H, W) tensor in [0, 1], got {getattr(image, 'shape', type(image))}")


def crops_figure(image: torch.Tensor, config: MultiCropConfig, seed: int = 0):
    """The image with every crop's box drawn on it (solid: global, dashed: local; an arrow
    for a flip), then the 2 global and the local views as the networks see them."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    _check_image(image)
    views = multi_crop(image[None], config, generator=torch.Generator().manual_seed(seed))
    n = len(views)
    H, W = image.shape[-2:]
    fig, axes = plt.subplots(1, n + 1, figsize=(1.6 * (n + 1) + 0.6, 2.1),
                             gridspec_kw={"width_ratios": [1.6] + [1.0] * 2 + [0.7] * (n - 2)})
    axes[0].imshow(_hwc(image))
    colours = plt.cm.tab10(np.arange(n) % 10)
    for k, box in enumerate(views.boxes):
        x0, y0, x1, y1 = box[0].tolist()
        left, right = min(x0, x1), max(x0, x1)
        axes[0].add_patch(Rectangle((left * W - 0.5, y0 * H - 0.5), (right - left) * W, (y1 - y0) * H, fill=False,
                                    lw=1.5 if k < 2 else 1.0, ls="-" if k < 2 else "--", color=colours[k]))
        axes[0].text(left * W, y0 * H, ("G" if k < 2 else "L") + str(k + 1 if k < 2 else k - 1) + ("↔" if x0 > x1 else ""),
                     color=colours[k], fontsize=6, va="bottom")
    axes[0].set_title(f"original {H}×{W}", fontsize=8)
    for k, (ax, v) in enumerate(zip(axes[1:], views.views)):
        ax.imshow(_hwc(v[0]))
        side = v.shape[-1]
        ax.set_title(("global " if k < 2 else "local ") + f"{side}px", fontsize=7, color=colours[k])
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def multicrop_viewer(images, config: MultiCropConfig, seed: int = 0):
    """Multi-crop viewer: pick an image and a random seed; see the crops and the views.

    Args:
        images: name → ``(3, H, W)`` tensor, or one ``(3, H, W)`` tensor.
        config: the :class:`~vislab.dino.MultiCropConfig` to draw views with.
        seed: the initial seed.
    Returns the widget.
    """
    import ipywidgets as W

    if isinstance(images, torch.Tensor):
        images = {"image": images}
    if not isinstance(images, dict) or not images:
        raise ValueError("images must be a (3, H, W) tensor or a non-empty dict of name -> (3, H, W) tensor")
    for img in images.values():
        _check_image(img)
    if not isinstance(config, MultiCropConfig):
        raise TypeError(f"config must be a MultiCropConfig, got {type(config).__name__}")
    names = list(images)
    pick = W.Dropdown(options=names, value=names[0], description="image")
    seed_slider = W.IntSlider(value=seed, min=0, max=99, description="seed", continuous_update=False)
    picture = W.Image(format="png")

    def render(*_):
        picture.value = fig_to_png(crops_figure(images[pick.value], config, seed_slider.value), dpi=100)

    pick.observe(render, names="value")
    seed_slider.observe(render, names="value")
    render()
    box = W.VBox([W.HBox([pick, seed_slider]), picture])
    show(box, png=picture.value, title="multi-crop: 2 global + local views")
    return box


def pca_figure(images: torch.Tensor, rgb: torch.Tensor, grid, titles=None, row_titles=("image", "PCA of patches")):
    """Images above their patch-feature PCA pictures.

    Args:
        images: ``(B, 3, H, W)``.
        rgb: ``(B, N, 3)`` from :func:`vislab.dino.patch_pca` (N = gh*gw), or a list of such
            tensors for several rows (e.g. random init vs trained).
        grid: ``(gh, gw)``.
        titles: optional B column titles.
        row_titles: one title per row (image first).
    """
    import matplotlib.pyplot as plt

    rows = [rgb] if isinstance(rgb, torch.Tensor) else list(rgb)
    B = images.shape[0]
    gh, gw = grid
    for r in rows:
        if r.shape[:2] != (B, gh * gw):
            raise ValueError(f"each rgb must be (B, gh*gw, 3) = ({B}, {gh * gw}, 3), got {tuple(r.shape)}")
    fig, axes = plt.subplots(1 + len(rows), B, figsize=(1.3 * B, 1.35 * (1 + len(rows))), squeeze=False)
    for b in range(B):
        axes[0, b].imshow(_hwc(images[b]))
        if titles is not None:
            axes[0, b].set_title(titles[b], fontsize=6)
        for i, r in enumerate(rows):
            axes[i + 1, b].imshow(r[b].reshape(gh, gw, -1).clamp(0, 1).numpy(), interpolation="nearest")
    for i, t in enumerate(row_titles[:1 + len(rows)]):
        axes[i, 0].set_ylabel(t, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def cls_attention_maps(attention: torch.Tensor, grid, num_prefix_tokens: int = 1) -> torch.Tensor:
    """The CLS row of attention maps over the patches: ``(B, h, T, T)`` → ``(B, h, gh, gw)``."""
    if not isinstance(attention, torch.Tensor) or attention.dim() != 4:
        raise ValueError("attention must be (B, h, T, T), e.g. forward_intermediates(x, return_attention=True)"
                         "['attention'][-1]")
    gh, gw = grid
    T = attention.shape[-1]
    if T != num_prefix_tokens + gh * gw:
        raise ValueError(f"T = {T} tokens but the grid {gh}x{gw} with {num_prefix_tokens} prefix tokens needs "
                         f"{num_prefix_tokens + gh * gw}")
    return attention[:, :, 0, num_prefix_tokens:].reshape(*attention.shape[:2], gh, gw)   # (B, h, gh, gw)


def cls_attention_figure(image: torch.Tensor, maps: torch.Tensor, title: str = ""):
    """One image and its CLS attention per head (``maps`` ``(h, gh, gw)``), each head with its own scale."""
    import matplotlib.pyplot as plt

    _check_image(image)
    h = maps.shape[0]
    fig, axes = plt.subplots(1, h + 1, figsize=(1.5 * (h + 1), 1.8))
    axes[0].imshow(_hwc(image))
    axes[0].set_title(title or "image", fontsize=7)
    for k in range(h):
        axes[k + 1].imshow(maps[k].detach().cpu().numpy(), cmap="inferno", interpolation="nearest")
        axes[k + 1].set_title(f"head {k}", fontsize=7)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def cls_attention_viewer(images: torch.Tensor, attentions, grid, num_prefix_tokens: int = 1, titles=None):
    """Viewer: choose an image and a layer; see where the CLS token looks, head by head.

    Args:
        images: ``(B, 3, H, W)``.
        attentions: list of L maps ``(B, h, T, T)`` (``forward_intermediates(..., return_attention=True)``).
        grid: ``(gh, gw)`` of the patch tokens.
        num_prefix_tokens: CLS + registers.
        titles: optional B image titles.
    Returns the widget; the static picture is the last layer of the first image.
    """
    import ipywidgets as W

    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a (B, 3, H, W) tensor")
    if not attentions:
        raise ValueError("attentions must hold at least one (B, h, T, T) map")
    maps = [cls_attention_maps(a, grid, num_prefix_tokens) for a in attentions]     # L x (B, h, gh, gw)
    B, L = images.shape[0], len(maps)
    image_slider = W.IntSlider(value=0, min=0, max=B - 1, description="image", continuous_update=False)
    layer_slider = W.IntSlider(value=L - 1, min=0, max=L - 1, description="layer", continuous_update=False)
    picture = W.Image(format="png")

    def render(*_):
        b, layer = image_slider.value, layer_slider.value
        t = titles[b] if titles is not None else f"image {b}"
        picture.value = fig_to_png(cls_attention_figure(images[b], maps[layer][b], f"{t}, layer {layer}"), dpi=100)

    image_slider.observe(render, names="value")
    layer_slider.observe(render, names="value")
    render()
    box = W.VBox([W.HBox([image_slider, layer_slider]), picture])
    show(box, png=picture.value, title="CLS attention per head")
    return box

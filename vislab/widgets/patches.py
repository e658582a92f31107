"""Chapter 1's viewers: an image cut into patches, the token sequence, and attention's cost."""

from __future__ import annotations

import math

import numpy as np
import torch

from vislab.patching import grid_size, patchify
from vislab.widgets.core import fig_to_png, show

__all__ = ["valid_patch_sizes", "token_summary", "layer_cost", "patch_figure", "patch_viewer"]


def valid_patch_sizes(image_size, smallest: int = 2) -> list:
    """Patch sizes that tile an image exactly (divisors of both sides), at least 2x2 patches."""
    from vislab.patching import as_size

    h, w = as_size(image_size)
    g = math.gcd(h, w)
    return [p for p in range(smallest, min(h, w) // 2 + 1) if g % p == 0]


def token_summary(image_size, patch_size: int, cls_token: bool = True) -> str:
    """One line: grid, patches, tokens and the size of the attention matrix."""
    from vislab.patching import as_size

    h, w = as_size(image_size)
    gh, gw = grid_size((h, w), patch_size)
    n = gh * gw
    t = n + (1 if cls_token else 0)
    return (f"{h}×{w} image, patch {patch_size}×{patch_size} → grid {gh}×{gw} = {n} patches"
            f"{' + 1 CLS' if cls_token else ''} = {t} tokens; each patch is a vector of "
            f"{patch_size}·{patch_size}·3 = {patch_size * patch_size * 3} numbers; "
            f"one attention map has {t}² = {t * t:,} entries")


def layer_cost(n_tokens, dim: int = 768, mlp_ratio: float = 4.0) -> dict:
    """Multiply-adds of one Transformer layer, split into the parts that scale as N·D² and N²·D.

    linear: qkv (3ND²) + output projection (ND²) + MLP (2·mlp_ratio·ND²);
    attention: QKᵀ (N²D) + attention·V (N²D).
    """
    n = np.asarray(n_tokens, dtype=np.float64)
    linear = n * dim * dim * (4 + 2 * mlp_ratio)
    attention = 2 * n * n * dim
    return {"linear": linear, "attention": attention}


def patch_figure(image: torch.Tensor, patch_size: int, n_show: int = 12, dim: int = 768, title: str = ""):
    """The viewer's picture: image with its patch grid, the first patches as a sequence, and
    how one layer's cost grows with the token count (current N marked)."""
    import matplotlib.pyplot as plt

    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        raise ValueError("image must be a (3, H, W) tensor")
    _, H, W = image.shape
    gh, gw = grid_size((H, W), patch_size)
    patches = patchify(image[None], patch_size)[0]                     # (N, P*P*3)
    fig = plt.figure(figsize=(12, 3.6))
    gs = fig.add_gridspec(2, 3, width_ratios=[1.1, 1.6, 1.2], height_ratios=[1, 1])
    ax = fig.add_subplot(gs[:, 0])
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    for k in range(1, gw):
        ax.axvline(k * patch_size - 0.5, color="white", lw=0.6)
    for k in range(1, gh):
        ax.axhline(k * patch_size - 0.5, color="white", lw=0.6)
    for idx in range(min(n_show, gh * gw)):
        r, c = divmod(idx, gw)
        ax.text(c * patch_size + patch_size / 2, r * patch_size + patch_size / 2, str(idx), color="yellow",
                ha="center", va="center", fontsize=7 if patch_size >= 16 else 5)
    ax.set_title(title or f"{H}×{W}, P={patch_size}: {gh}×{gw} grid")
    ax.axis("off")
    # the sequence: first patches as little images, then the same as flattened vectors
    k = min(n_show, gh * gw)
    ax1 = fig.add_subplot(gs[0, 1])
    strip = patches[:k].reshape(k, patch_size, patch_size, 3)          # (k, P, P, 3)
    gap = np.ones((patch_size, max(1, patch_size // 4), 3))
    row = np.concatenate([np.concatenate([s.numpy(), gap], axis=1) for s in strip], axis=1)
    ax1.imshow(row.clip(0, 1))
    ax1.set_title(f"tokens 0…{k - 1} in row-major order (of {gh * gw})")
    ax1.axis("off")
    ax2 = fig.add_subplot(gs[1, 1])
    ax2.imshow(patches[:k].numpy(), aspect="auto", cmap="gray", interpolation="nearest")
    ax2.set_title(f"flattened: {k} rows × {patches.shape[1]} numbers (P·P·C)")
    ax2.set_ylabel("token")
    ax2.set_xticks([])
    # cost of one layer versus N
    ax3 = fig.add_subplot(gs[:, 2])
    ns = np.unique(np.geomspace(4, 8192, 60).astype(int))
    cost = layer_cost(ns, dim)
    ax3.loglog(ns, cost["linear"], label="linear layers ∝ N·D²")
    ax3.loglog(ns, cost["attention"], label="attention ∝ N²·D")
    n_now = gh * gw + 1
    now = layer_cost(n_now, dim)
    ax3.plot([n_now, n_now], [now["linear"], now["attention"]], "ko")
    ax3.axvline(n_now, color="k", lw=0.5, ls=":")
    ax3.set_xlabel("tokens N")
    ax3.set_ylabel(f"multiply-adds per layer (D={dim})")
    ax3.set_title(f"N = {n_now}: attention is {now['attention'] / (now['linear'] + now['attention']):.0%} of a layer")
    ax3.legend(fontsize=7)
    fig.tight_layout()
    return fig


def patch_viewer(images: dict, patch_size: int | None = None, dim: int = 768):
    """Patch viewer: choose an image and a patch size; see the grid, the token sequence,
    the token count, and where this N sits on the attention-cost curve.

    Args:
        images: name → ``(3, H, W)`` tensor in [0, 1].
        patch_size: initial patch size (default: the middle valid one).
        dim: model width used for the cost plot.
    Returns the widget (a VBox).
    """
    import ipywidgets as W

    if not isinstance(images, dict) or not images:
        raise ValueError("images must be a non-empty dict of name -> (3, H, W) tensor")
    for name, img in images.items():
        if not isinstance(img, torch.Tensor) or img.dim() != 3 or img.shape[0] != 3:
            raise ValueError(f"image {name!r} must be a (3, H, W) tensor, got {getattr(img, 'shape', type(img))}")
    names = list(images)

    def sizes_for(name):
        return valid_patch_sizes(tuple(images[name].shape[-2:]))

    first = sizes_for(names[0])
    if not first:
        raise ValueError(f"image {names[0]!r} has no valid patch size")
    p0 = patch_size if patch_size in first else first[len(first) // 2]
    pick = W.Dropdown(options=names, value=names[0], description="image")
    slider = W.SelectionSlider(options=first, value=p0, description="patch size", continuous_update=False)
    info = W.HTML()
    picture = W.Image(format="png")

    def render(*_):
        img = images[pick.value]
        picture.value = fig_to_png(patch_figure(img, slider.value, dim=dim))
        info.value = f"<b>{token_summary(tuple(img.shape[-2:]), slider.value)}</b>"

    def on_image(change):
        opts = sizes_for(change["new"])
        keep = slider.value if slider.value in opts else opts[len(opts) // 2]
        slider.unobserve(render, names="value")
        slider.options = opts
        slider.value = keep
        slider.observe(render, names="value")
        render()

    pick.observe(on_image, names="value")
    slider.observe(render, names="value")
    render()
    box = W.VBox([W.HBox([pick, slider]), info, picture])
    show(box, png=picture.value, title=token_summary(tuple(images[names[0]].shape[-2:]), p0))
    return box

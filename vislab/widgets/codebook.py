"""Chapter 8's viewer: what a tokenizer's codebook is doing.

One picture, five views: the usage histogram (codes sorted by how often they occur, dead codes
counted), perplexity and usage over training, one image with its grid of code ids, and the
regions of several images where a selected code occurs. The widget lets you pick the image
and the code; it takes tensors (images, code ids, a training log) and never trains.
"""

from __future__ import annotations

import numpy as np
import torch

from vislab.vq import code_counts, codebook_usage, perplexity
from vislab.widgets.core import fig_to_png, show

__all__ = ["codebook_stats", "codebook_figure", "codebook_viewer"]


def _check(images, indices, num_codes):
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a (B, 3, H, W) tensor")
    if not isinstance(indices, torch.Tensor) or indices.dim() != 3:
        raise ValueError("indices must be a (B, h, w) tensor of code ids (what VQVAE.tokenize returns)")
    if images.shape[0] != indices.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {indices.shape[0]} code maps")
    H, W = images.shape[-2:]
    h, w = indices.shape[-2:]
    if H % h or W % w:
        raise ValueError(f"a {h}x{w} code grid does not tile {H}x{W} images")
    if not isinstance(num_codes, int) or num_codes <= 0:
        raise ValueError(f"num_codes must be a positive int, got {num_codes!r}")


def codebook_stats(indices: torch.Tensor, num_codes: int) -> dict:
    """Counts per code, codes sorted by use, usage, perplexity and the number of dead codes."""
    counts = code_counts(indices, num_codes)                                   # (K,)
    order = torch.argsort(counts, descending=True, stable=True)
    return {"counts": counts, "order": order, "usage": codebook_usage(indices, num_codes),
            "perplexity": perplexity(indices, num_codes), "dead": int((counts == 0).sum())}


def _code_colors(num_codes: int) -> np.ndarray:
    rng = np.random.default_rng(0)                          # fixed palette: one colour per code id
    return rng.uniform(0.15, 1.0, size=(num_codes, 3))


def codebook_figure(images: torch.Tensor, indices: torch.Tensor, num_codes: int, history: dict | None = None,
                    image_index: int = 0, code: int | None = None, n_where: int = 6, title: str = ""):
    """The viewer's picture.

    Args:
        images: ``(B, 3, H, W)`` in [0, 1]; indices: their codes ``(B, h, w)``.
        num_codes: K.
        history: optional training log ``{"step": [...], "perplexity": [...], "usage": [...]}``
            (or several runs: ``{"run name": {"step": ..., ...}}``).
        image_index: which image to show with its code map.
        code: the code whose regions are shown (default: the most used code of that image
            other than the image's most common one, i.e. usually a code on the object).
        n_where: how many images to show for "where does this code occur".
    """
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec

    _check(images, indices, num_codes)
    B, _, H, W = images.shape
    h, w = indices.shape[-2:]
    if not 0 <= image_index < B:
        raise ValueError(f"image_index must be in 0..{B - 1}, got {image_index}")
    stats = codebook_stats(indices, num_codes)
    counts = stats["counts"]
    own = indices[image_index]                                                 # (h, w)
    if code is None:
        ids, n = own.unique(return_counts=True)
        ranked = ids[torch.argsort(n, descending=True)]
        code = int(ranked[1] if len(ranked) > 1 else ranked[0])
    if not 0 <= code < num_codes:
        raise ValueError(f"code must be in 0..{num_codes - 1}, got {code}")

    fig = plt.figure(figsize=(13, 6.2))
    gs = GridSpec(2, max(4, n_where), figure=fig, height_ratios=[1, 1])
    ax = fig.add_subplot(gs[0, :2])
    sorted_counts = counts[stats["order"]].numpy()
    ax.bar(np.arange(num_codes), np.maximum(sorted_counts, 0), width=1.0, color="tab:blue")
    ax.set_yscale("symlog")
    ax.set_xlim(-0.5, num_codes - 0.5)
    ax.set_xlabel("codes, sorted by use")
    ax.set_ylabel("occurrences")
    ax.set_title(f"usage {stats['usage']:.0%} of {num_codes} codes · perplexity {stats['perplexity']:.1f} · "
                 f"{stats['dead']} dead", fontsize=9)
    rank = int((stats["order"] == code).nonzero()[0, 0])
    ax.axvline(rank, color="tab:red", lw=1)
    ax.text(rank, max(1, sorted_counts.max()), f" code {code}", color="tab:red", fontsize=8, va="top")

    ax = fig.add_subplot(gs[0, 2:])
    if history:
        runs = history if all(isinstance(v, dict) for v in history.values()) else {"": history}
        ax2 = ax.twinx()
        for (name, run), color in zip(runs.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
            if "perplexity" in run:
                ax.plot(run["step"], run["perplexity"], color=color, label=f"{name} perplexity".strip())
            if "usage" in run:
                ax2.plot(run["step"], np.asarray(run["usage"]) * 100, color=color, ls="--",
                         label=f"{name} usage %".strip())
        ax.set_xlabel("training step")
        ax.set_ylabel("perplexity (solid)")
        ax2.set_ylabel("usage % (dashed)")
        ax2.set_ylim(0, 105)
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="center right")
        ax.set_title("over training", fontsize=9)
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "no training log given", ha="center", va="center")

    img = images[image_index].permute(1, 2, 0).clamp(0, 1).numpy()
    ax = fig.add_subplot(gs[1, 0])
    ax.imshow(img)
    ax.set_title(f"image {image_index}", fontsize=9)
    ax.axis("off")
    ax = fig.add_subplot(gs[1, 1])
    palette = _code_colors(num_codes)
    ax.imshow(palette[own.numpy()], interpolation="nearest")
    for r in range(h):
        for c in range(w):
            k = int(own[r, c])
            ax.text(c, r, str(k), ha="center", va="center", fontsize=6 if h <= 8 else 4,
                    color="black", fontweight="bold" if k == code else "normal")
    ax.set_title(f"its {h}×{w} code map", fontsize=9)
    ax.axis("off")

    # where does `code` occur? images that contain it (this one first), with the cells marked
    where = [image_index] if bool((own == code).any()) else []
    where += [i for i in (indices == code).flatten(1).any(1).nonzero().flatten().tolist() if i != image_index]
    where = where[:max(0, n_where - 2)]
    fy, fx = H // h, W // w
    for j in range(max(4, n_where) - 2):
        ax = fig.add_subplot(gs[1, 2 + j])
        ax.axis("off")
        if j >= len(where):
            continue
        i = where[j]
        mask = (indices[i] == code).float()                                    # (h, w)
        mask = mask.repeat_interleave(fy, 0).repeat_interleave(fx, 1).numpy()  # (H, W)
        shown = images[i].permute(1, 2, 0).clamp(0, 1).numpy() * (0.35 + 0.65 * mask[..., None])
        ax.imshow(shown)
        ax.contour(mask, levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"code {code} in image {i}" if j == 0 else f"image {i}", fontsize=8)
    fig.suptitle(title or f"codebook of {num_codes} codes over {B} images ({counts.sum().item():,} code slots; "
                 f"code {code} used {int(counts[code])}×)", fontsize=10)
    fig.tight_layout()
    return fig


def codebook_viewer(images: torch.Tensor, indices: torch.Tensor, num_codes: int, history: dict | None = None,
                    image_index: int = 0, title: str = ""):
    """Interactive :func:`codebook_figure`: pick the image and one of its codes."""
    import ipywidgets as widgets

    _check(images, indices, num_codes)
    counts = code_counts(indices, num_codes)

    def code_options(i):
        ids = indices[i].unique().tolist()
        ids.sort(key=lambda k: -int(counts[k]))
        return [(f"code {k} ({int(counts[k])}× in all, {int((indices[i] == k).sum())}× here)", k) for k in ids]

    image_slider = widgets.IntSlider(value=image_index, min=0, max=images.shape[0] - 1, description="image")
    code_menu = widgets.Dropdown(options=code_options(image_index), description="code")
    if len(code_menu.options) > 1:   # the second most used code: usually one on the object, not background
        code_menu.value = code_menu.options[1][1]
    first = codebook_figure(images, indices, num_codes, history, image_index, code_menu.value, title=title)
    picture = widgets.Image(value=fig_to_png(first), format="png")
    default_png = picture.value
    busy = {"on": False}

    def redraw(*_):
        if busy["on"]:
            return
        fig = codebook_figure(images, indices, num_codes, history, image_slider.value, code_menu.value, title=title)
        picture.value = fig_to_png(fig)

    def new_image(change):
        busy["on"] = True
        code_menu.options = code_options(change["new"])
        opts = code_menu.options
        code_menu.value = opts[1][1] if len(opts) > 1 else opts[0][1]
        busy["on"] = False
        redraw()

    image_slider.observe(new_image, names="value")
    code_menu.observe(redraw, names="value")
    box = widgets.VBox([widgets.HBox([image_slider, code_menu]), picture])
    show(box, png=default_png, title="codebook viewer (interactive in JupyterLab/Colab)")
    return box

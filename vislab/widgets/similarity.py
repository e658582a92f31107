"""Chapter 3's viewer: CLIP's image × caption similarity matrix, one pair at a time.

The matrix is what the contrastive loss trains: row i should peak on column i (its own
caption), column j on row j. The viewer shows the whole matrix with thumbnails and
captions, and, for a selected image (or caption), the softmax over the other side: the
probabilities CLIP's zero-shot classifier and its loss use.
"""

from __future__ import annotations

import textwrap

import numpy as np
import torch

from vislab.widgets.core import fig_to_png, show

__all__ = ["similarity_figure", "similarity_viewer"]

DIRECTIONS = ("image → captions", "caption → images")


def _check(similarity, images, captions):
    if not isinstance(similarity, torch.Tensor) or similarity.dim() != 2:
        raise ValueError(f"similarity must be a (B_img, B_txt) tensor, got "
                         f"{getattr(similarity, 'shape', type(similarity).__name__)}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a (B_img, 3, H, W) tensor, got {getattr(images, 'shape', type(images).__name__)}")
    if images.shape[0] != similarity.shape[0]:
        raise ValueError(f"{images.shape[0]} images but the similarity matrix has {similarity.shape[0]} rows")
    if len(captions) != similarity.shape[1]:
        raise ValueError(f"{len(captions)} captions but the similarity matrix has {similarity.shape[1]} columns")
    if similarity.shape[0] == 0 or similarity.shape[1] == 0:
        raise ValueError("the similarity matrix is empty")


def similarity_figure(similarity: torch.Tensor, images: torch.Tensor, captions, selected: int = 0,
                      direction: str = DIRECTIONS[0], logit_scale: float = 1.0, top_k: int = 5,
                      title: str = ""):
    """The viewer's picture.

    Left: the similarity matrix (rows = images, shown as thumbnails; columns = captions),
    the true pairs (the diagonal, when square) outlined, the selected row or column framed.
    Right: for the selected image, the softmax over captions of ``logit_scale * similarity``
    (its top ``top_k``); for a selected caption, the same over images.

    Args:
        similarity: ``(B_img, B_txt)`` cosine similarities (or logits with ``logit_scale=1``).
        images: ``(B_img, 3, H, W)`` in [0, 1].  captions: B_txt strings.
        selected: index of the selected image (or caption).
        direction: one of ``DIRECTIONS``.
        logit_scale: multiplier before the softmax (CLIP's exp(t) = 1/tau).
    Returns:
        a matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage
    from matplotlib.patches import Rectangle

    _check(similarity, images, captions)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    sim = similarity.detach().float().cpu()
    Bi, Bt = sim.shape
    by_image = direction == DIRECTIONS[0]
    n_sel = Bi if by_image else Bt
    if not 0 <= selected < n_sel:
        raise ValueError(f"selected must be in [0, {n_sel}), got {selected}")

    fig = plt.figure(figsize=(11, 4.8))
    gs = fig.add_gridspec(1, 2, width_ratios=[1.35, 1])
    ax = fig.add_subplot(gs[0, 0])
    im = ax.imshow(sim.numpy(), cmap="viridis", aspect="equal")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="cosine similarity" if logit_scale != 1 else "logit")
    ax.set_xticks(range(Bt))
    ax.set_xticklabels([textwrap.shorten(c, 28, placeholder="…") for c in captions], rotation=60, ha="right",
                       fontsize=7)
    ax.set_yticks(range(Bi))
    ax.set_yticklabels([""] * Bi)
    zoom = 0.85 * (8 / max(Bi, 8)) * 32 / max(images.shape[-2:])   # a thumbnail about one row high
    for i in range(Bi):
        thumb = OffsetImage(images[i].permute(1, 2, 0).clamp(0, 1).numpy(), zoom=zoom)
        ax.add_artist(AnnotationBbox(thumb, (-0.5, i), xybox=(-4, 0), xycoords="data", boxcoords="offset points",
                                     frameon=False, box_alignment=(1.0, 0.5), annotation_clip=False))
    if Bi == Bt:
        for i in range(Bi):
            ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, ec="white", lw=0.8, ls=":"))
    if by_image:
        ax.add_patch(Rectangle((-0.5, selected - 0.5), Bt, 1, fill=False, ec="red", lw=2))
    else:
        ax.add_patch(Rectangle((selected - 0.5, -0.5), 1, Bi, fill=False, ec="red", lw=2))
    row_best = sim.argmax(1)
    for i in range(Bi):
        ax.plot(row_best[i].item(), i, marker="o", ms=3, color="red" if row_best[i] != i else "white")
    ax.set_title(title or "similarity: rows = images, columns = captions\n(dotted: true pairs; dot: each row's best)",
                 fontsize=9)

    right = gs[0, 1].subgridspec(2, 1, height_ratios=[1, 1.4])
    ax_q = fig.add_subplot(right[0])
    ax_b = fig.add_subplot(right[1])
    scores = sim[selected] if by_image else sim[:, selected]                    # (B_txt,) or (B_img,)
    probs = torch.softmax(logit_scale * scores, dim=0)
    k = min(top_k, probs.numel())
    top = probs.topk(k)
    if by_image:
        ax_q.imshow(images[selected].permute(1, 2, 0).clamp(0, 1).numpy())
        ax_q.set_title(f"image {selected}" + (f": “{captions[selected]}”" if Bi == Bt else ""), fontsize=8)
        labels = [textwrap.shorten(captions[j], 40, placeholder="…") for j in top.indices.tolist()]
    else:
        ax_q.text(0.5, 0.5, "\n".join(textwrap.wrap(f"“{captions[selected]}”", 30)), ha="center", va="center",
                  fontsize=10)
        ax_q.set_title(f"caption {selected}", fontsize=8)
        labels = [f"image {i}" for i in top.indices.tolist()]
    ax_q.axis("off")
    colors = ["tab:green" if (Bi == Bt and j == selected) else "tab:gray" for j in top.indices.tolist()]
    ax_b.barh(range(k)[::-1], top.values.numpy(), color=colors)
    ax_b.set_yticks(range(k)[::-1])
    ax_b.set_yticklabels(labels, fontsize=7)
    ax_b.set_xlim(0, 1)
    ax_b.set_xlabel(f"softmax({logit_scale:.3g} · similarity)" + ("; green = true pair" if Bi == Bt else ""),
                    fontsize=8)
    ax_b.set_title(f"top {k} {'captions' if by_image else 'images'}", fontsize=8)
    fig.tight_layout()
    return fig


def similarity_viewer(similarity: torch.Tensor, images: torch.Tensor, captions, logit_scale: float = 1.0,
                      top_k: int = 5, title: str = ""):
    """Similarity-matrix viewer: pick a direction and an image (or caption) to see its row
    (or column) as probabilities, with the matrix beside it.

    Args:
        similarity: ``(B_img, B_txt)`` cosine similarities; keep B small (<= 16) to read it.
        images: ``(B_img, 3, H, W)`` in [0, 1].  captions: B_txt strings.
        logit_scale: CLIP's multiplier for the softmax (``model.logit_scale.exp()``).
        top_k: bars shown.
    Returns the widget (a VBox); :func:`~vislab.widgets.core.show` displays it with a static picture.
    """
    import ipywidgets as W

    _check(similarity, images, captions)
    logit_scale = float(logit_scale)
    direction = W.ToggleButtons(options=list(DIRECTIONS), value=DIRECTIONS[0], description="query")
    index = W.IntSlider(value=0, min=0, max=similarity.shape[0] - 1, description="index", continuous_update=False)
    info = W.HTML()
    picture = W.Image(format="png")

    def render(*_):
        by_image = direction.value == DIRECTIONS[0]
        n = similarity.shape[0] if by_image else similarity.shape[1]
        if index.max != n - 1:
            index.max = n - 1
        i = min(index.value, n - 1)
        scores = similarity[i] if by_image else similarity[:, i]
        best = int(scores.argmax())
        what = "caption" if by_image else "image"
        hit = (best == i) if similarity.shape[0] == similarity.shape[1] else None
        info.value = (f"<b>{'image' if by_image else 'caption'} {i}</b>: best {what} {best}"
                      + ("" if hit is None else (" ✓ (its own pair)" if hit else " ✗ (not its pair)")))
        picture.value = fig_to_png(similarity_figure(similarity, images, captions, i, direction.value,
                                                     logit_scale, top_k, title))

    direction.observe(render, names="value")
    index.observe(render, names="value")
    render()
    box = W.VBox([W.HBox([direction, index]), info, picture])
    show(box, png=picture.value, title=f"similarity viewer: {similarity.shape[0]} images × "
                                       f"{similarity.shape[1]} captions")
    return box

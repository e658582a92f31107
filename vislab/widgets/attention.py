"""Chapter 2's viewer: where a ViT looks, per layer and head, and rolled out over layers.

The viewer takes what a model returned (``tokens, maps = model.forward_features(images,
return_attention=True)``): it computes no forward pass and trains nothing.

Shape legend: B images, L layers, h heads, T tokens (prefix + N), N = gh*gw patches.
"""

from __future__ import annotations

import html

import numpy as np
import torch

from vislab.vit import attention_rollout
from vislab.widgets.core import fig_to_png, show

__all__ = ["query_map", "attention_figure", "attention_viewer"]


def _check(images, attentions, grid, num_prefix_tokens):
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (B, 3, H, W), got {getattr(images, 'shape', type(images).__name__)}")
    if not attentions:
        raise ValueError("attentions is empty: pass the maps of forward_features(images, return_attention=True)")
    B, _, T, T2 = attentions[0].shape
    gh, gw = grid
    if T != T2 or T != num_prefix_tokens + gh * gw:
        raise ValueError(f"maps of shape {tuple(attentions[0].shape)} do not fit a {gh}x{gw} grid with "
                         f"{num_prefix_tokens} prefix token(s): expected T = {num_prefix_tokens + gh * gw}")
    if B != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but maps for {B}")


def query_map(attentions, index: int, layer: int, head="mean", query: int = 0, rollout: bool = False,
              grid=None, num_prefix_tokens: int = 1) -> np.ndarray:
    """The attention of one query token over the patches, as a ``(gh, gw)`` array.

    Args:
        attentions: list of L maps ``(B, h, T, T)``.
        index: which image of the batch.
        layer: 0-based layer (with ``rollout``: roll out layers 0..layer).
        head: a head index, or "mean" (rollout always fuses heads by their mean).
        query: the query token (0 = CLS; ``num_prefix_tokens + k`` = patch k).
        grid: ``(gh, gw)``.
    """
    if rollout:
        r = attention_rollout([a[index:index + 1] for a in attentions[: layer + 1]])[0]   # (T, T)
        row = r[query]
    else:
        a = attentions[layer][index]                                                      # (h, T, T)
        row = a.mean(0)[query] if head == "mean" else a[int(head), query]                 # (T,)
    gh, gw = grid
    return row[num_prefix_tokens:].reshape(gh, gw).detach().float().cpu().numpy()       # (gh, gw)


def attention_figure(images, attentions, grid, index: int = 0, layer: int | None = None, head="mean",
                     query: int = 0, rollout: bool = False, num_prefix_tokens: int = 1, labels=None):
    """Three panels: the image with the query patch outlined; the query's attention over the
    patches overlaid on the image; the whole ``T x T`` map of that layer and head."""
    import matplotlib.pyplot as plt

    _check(images, attentions, grid, num_prefix_tokens)
    L = len(attentions)
    layer = L - 1 if layer is None else layer
    gh, gw = grid
    img = images[index].detach().float().cpu()
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    img = img.permute(1, 2, 0).clamp(0, 1).numpy()                                    # (H, W, 3)
    H, W, _ = img.shape
    heat = query_map(attentions, index, layer, head, query, rollout, grid, num_prefix_tokens)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    qname = "CLS" if query == 0 and num_prefix_tokens >= 1 else (
        f"patch {query - num_prefix_tokens}" if query >= num_prefix_tokens else f"prefix token {query}")
    axes[0].imshow(img)
    if query >= num_prefix_tokens:
        r, c = divmod(query - num_prefix_tokens, gw)
        ph, pw = H / gh, W / gw
        axes[0].add_patch(plt.Rectangle((c * pw - 0.5, r * ph - 0.5), pw, ph, fill=False, ec="yellow", lw=2))
    title = labels[index] if labels is not None else f"image {index}"
    axes[0].set_title(f"{title}\nquery: {qname}", fontsize=9)
    axes[1].imshow(img)
    axes[1].imshow(heat, cmap="inferno", alpha=0.65, extent=(-0.5, W - 0.5, H - 0.5, -0.5),
                   interpolation="nearest")
    what = (f"rollout of layers 1-{layer + 1}" if rollout else
            f"layer {layer + 1}, {'mean of heads' if head == 'mean' else f'head {int(head) + 1}'}")
    axes[1].set_title(f"{qname}'s attention to the patches\n{what} (max {heat.max():.2f})", fontsize=9)
    if rollout:
        full = attention_rollout([a[index:index + 1] for a in attentions[: layer + 1]])[0]
    else:
        a = attentions[layer][index]
        full = a.mean(0) if head == "mean" else a[int(head)]
    axes[2].imshow(full.detach().float().cpu().numpy(), cmap="viridis")
    axes[2].axhline(query, color="yellow", lw=0.8)
    axes[2].set_title(f"the whole map, {full.shape[0]}×{full.shape[1]}\n(row = query, column = key)", fontsize=9)
    axes[2].set_xlabel("key token")
    axes[2].set_ylabel("query token")
    for ax in axes[:2]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def attention_viewer(images, attentions, grid, num_prefix_tokens: int = 1, labels=None, layer: int | None = None):
    """Attention viewer: choose image, layer, head and query patch; toggle rollout.

    Args:
        images: ``(B, 3, H, W)`` in [0, 1] (what the model saw, or a display version of it).
        attentions: list of L maps ``(B, h, T, T)`` from ``forward_features(..., return_attention=True)``.
        grid: ``(gh, gw)`` of the patch tokens.
        num_prefix_tokens: CLS + registers before the patches.
        labels: optional B strings (captions, predictions).
        layer: initial layer (default: the last).
    Returns the widget (a VBox); its default state (last layer, mean of heads, CLS query) is
    also shown as a static picture.
    """
    import ipywidgets as W

    _check(images, attentions, grid, num_prefix_tokens)
    B = images.shape[0]
    L, h = len(attentions), attentions[0].shape[1]
    gh, gw = grid
    layer = L - 1 if layer is None else layer
    if not 0 <= layer < L:
        raise ValueError(f"layer must be in 0..{L - 1}, got {layer}")
    queries = [("CLS" if num_prefix_tokens else "token 0", 0)] if num_prefix_tokens else []
    queries += [(f"patch {k} (row {k // gw}, col {k % gw})", num_prefix_tokens + k) for k in range(gh * gw)]
    pick = W.IntSlider(value=1, min=1, max=B, description="image", continuous_update=False)
    lay = W.IntSlider(value=layer + 1, min=1, max=L, description="layer", continuous_update=False)
    head = W.Dropdown(options=[("mean", "mean")] + [(str(i + 1), i) for i in range(h)], value="mean",
                      description="head")
    query = W.Dropdown(options=queries, value=queries[0][1], description="query")
    roll = W.Checkbox(value=False, description="rollout (layers 1..layer)")
    picture = W.Image(format="png")
    info = W.HTML()

    def render(*_):
        fig = attention_figure(images, attentions, grid, pick.value - 1, lay.value - 1, head.value, query.value,
                               roll.value, num_prefix_tokens, labels)
        picture.value = fig_to_png(fig)
        head.disabled = roll.value
        state = (f"<b>image {pick.value}/{B} · layer {lay.value}/{L} · "
                 + ("rollout" if roll.value else f"head {head.label}") + f" · query {html.escape(query.label)}</b><br>")
        info.value = state + ("<small>Rollout (Abnar &amp; Zuidema 2020) multiplies the head-averaged maps of layers "
                      "1..layer, each mixed half-and-half with the identity for the residual path.</small>"
                      if roll.value else
                      "<small>One row of one softmax: how much this query token takes from each patch.</small>")

    for w in (pick, lay, head, query, roll):
        w.observe(render, names="value")
    render()
    box = W.VBox([W.HBox([pick, lay, head]), W.HBox([query, roll]), info, picture])
    show(box, png=picture.value, title=f"attention viewer: {B} image(s), {L} layers, {h} heads")
    return box

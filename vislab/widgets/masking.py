"""Chapter 6's viewer: an image, its masked version, and what a masked autoencoder makes of it.

The viewer never runs a model of its own: it takes the images and a ``reconstruct`` callable
(for example ``lambda x, ratio, seed: mae.reconstruct(x, mask_ratio=ratio,
generator=make_generator(seed))``) that returns :meth:`vislab.mae.MAE.reconstruct`'s dict.
"""

from __future__ import annotations

import torch

from vislab.widgets.core import fig_to_png, show

__all__ = ["masking_figure", "masking_viewer"]

PANELS = (("image", "original"), ("masked", "masked (grey = removed)"), ("reconstruction", "model output"),
          ("pasted", "visible + predicted"), ("baseline", "visible + visible mean"))


def _check_out(out: dict) -> None:
    missing = [k for k, _ in PANELS[1:4] if k not in out]
    if missing:
        raise ValueError(f"reconstruct must return a dict with {[k for k, _ in PANELS[1:]]}; missing {missing}")


def masking_figure(image: torch.Tensor, out: dict, ratio: float | None = None, title: str = ""):
    """Original / masked / reconstructed (and the visible-mean baseline when given) side by side.

    Args:
        image: ``(3, H, W)`` or ``(1, 3, H, W)`` in [0, 1].
        out: a :meth:`~vislab.mae.MAE.reconstruct` dict for this one image (tensors with a batch
            dimension of 1): ``masked``, ``reconstruction``, ``pasted``, optionally ``baseline``,
            ``mse`` and ``baseline_mse``.
        ratio: the mask ratio, for the title.
    """
    import matplotlib.pyplot as plt

    _check_out(out)
    image = image[0] if image.dim() == 4 else image
    pics = {"image": image, **{k: v[0] for k, v in out.items() if isinstance(v, torch.Tensor) and v.dim() == 4}}
    panels = [(k, t) for k, t in PANELS if k in pics]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 2.8))
    for ax, (key, label) in zip(axes, panels):
        ax.imshow(pics[key].detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    parts = [title] if title else []
    if ratio is not None:
        parts.append(f"{ratio:.0%} of the patches removed")
    if "mse" in out and "baseline_mse" in out:
        m, b = float(out["mse"][0]), float(out["baseline_mse"][0])
        parts.append(f"masked-patch MSE: model {m:.4f}, visible mean {b:.4f} ({m / b:.0%} of it)")
    fig.suptitle(" · ".join(parts), fontsize=9)
    fig.tight_layout()
    return fig


def masking_viewer(images: torch.Tensor, reconstruct, ratio: float = 0.75, seed: int = 0, captions=None):
    """Pick an image, a mask ratio and a mask seed; see original / masked / reconstruction.

    Args:
        images: ``(n, 3, H, W)`` in [0, 1].
        reconstruct: ``reconstruct(image (1, 3, H, W), ratio, seed) -> dict`` (see module doc).
        ratio: the initial mask ratio (the slider moves in steps of 5%).
        seed: the initial mask seed.
        captions: optional n strings shown as titles.
    Returns the widget (a VBox).
    """
    import ipywidgets as W

    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be an (n, 3, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if not callable(reconstruct):
        raise TypeError("reconstruct must be a callable (image, ratio, seed) -> dict")
    if not 0 < ratio < 1:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    n = images.shape[0]
    if captions is not None and len(captions) != n:
        raise ValueError(f"{len(captions)} captions for {n} images")
    index = W.IntSlider(value=0, min=0, max=n - 1, description="image", continuous_update=False)
    percent = W.IntSlider(value=int(round(ratio * 100)), min=5, max=95, step=5, description="masked %",
                          continuous_update=False)
    seed_box = W.IntSlider(value=seed, min=0, max=20, description="mask seed", continuous_update=False)
    picture = W.Image(format="png")

    def figure():
        i, r = index.value, percent.value / 100
        x = images[i:i + 1]
        out = reconstruct(x, r, seed_box.value)
        return masking_figure(x, out, r, title=captions[i] if captions is not None else f"image {i}")

    def render(*_):
        picture.value = fig_to_png(figure())

    for w in (index, percent, seed_box):
        w.observe(render, names="value")
    render()
    box = W.VBox([W.HBox([index, percent, seed_box]), picture])
    show(box, png=picture.value, title="masking viewer: original / masked / reconstructed")
    return box

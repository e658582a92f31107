"""Chapter 4's viewer: SigLIP's chunked loss, who holds which block at each step of the ring.

The ``(B, B)`` matrix of image-caption pairs is cut into D x D blocks of c x c (c = B/D).
Device d keeps the images of row block d for the whole computation; at step k it holds the
text chunk ``ring_schedule(D)[k][d]`` and computes that one block. The picture shows the
blocks done so far (pale), the blocks being computed now (bright, one per device), the
positive pairs (the diagonal, all inside the step-0 blocks), and the ring of devices with
the chunks they hold.
"""

from __future__ import annotations

import math

from vislab.siglip import ring_schedule
from vislab.widgets.core import fig_to_png, show

__all__ = ["ring_figure", "ring_viewer"]


def _check(num_devices, step, batch_size):
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or not 1 <= num_devices <= 8:
        raise ValueError(f"num_devices must be an int from 1 to 8, got {num_devices!r}")
    if not isinstance(step, int) or not 0 <= step < num_devices:
        raise ValueError(f"step must be an int in [0, {num_devices - 1}], got {step!r}")
    if batch_size % num_devices:
        raise ValueError(f"batch_size {batch_size} must be a multiple of num_devices {num_devices}")


def ring_figure(num_devices: int = 3, step: int = 0, batch_size: int | None = None):
    """The picture for D devices at step k (default B = 4D, the paper's fig. 1 has D=3, B=12).

    Returns a matplotlib figure: left, the B x B pair matrix (rows: images, columns: texts);
    right, the devices in a ring with the image and text chunks each one holds.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Rectangle

    D = num_devices
    B = 4 * D if batch_size is None else batch_size
    _check(D, step, B)
    c = B // D
    sched = ring_schedule(D)
    colors = plt.get_cmap("tab10").colors
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.6), gridspec_kw={"width_ratios": [1.1, 1]})
    # left: the matrix
    for k in range(step + 1):
        for d in range(D):
            j = sched[k][d]
            now = k == step
            ax.add_patch(Rectangle((j * c, d * c), c, c, facecolor=colors[d % 10], alpha=0.85 if now else 0.22,
                                   edgecolor="black" if now else "none", linewidth=2 if now else 0))
            if now:
                ax.text(j * c + c / 2, d * c + c / 2, f"device {d}\nI{d} · T{j}", ha="center", va="center",
                        fontsize=8 if D <= 4 else 6, color="white", weight="bold")
    for i in range(B):                          # positives: one per image, on the diagonal
        ax.plot(i + 0.5, i + 0.5, marker="+", color="black", markersize=5 if B <= 24 else 3)
    for g in range(D + 1):
        ax.axhline(g * c, color="grey", lw=0.8)
        ax.axvline(g * c, color="grey", lw=0.8)
    ax.set_xlim(0, B)
    ax.set_ylim(B, 0)
    ax.set_aspect("equal")
    ax.set_xticks([(j + 0.5) * c for j in range(D)], [f"T{j}" for j in range(D)])
    ax.set_yticks([(d + 0.5) * c for d in range(D)], [f"I{d}" for d in range(D)])
    ax.set_xlabel("text chunks")
    ax.set_ylabel("image chunks (stay on their device)")
    done = (step + 1) * D
    ax.set_title(f"step {step + 1} of {D}: {done} of {D * D} blocks done\n"
                 f"each device holds one {c}×{c} block (+ = positive pair)", fontsize=9)
    # right: the ring
    ax2.set_xlim(-1.6, 1.6)
    ax2.set_ylim(-1.6, 1.6)
    ax2.set_aspect("equal")
    ax2.axis("off")
    pos = [(math.cos(math.pi / 2 - 2 * math.pi * d / D), math.sin(math.pi / 2 - 2 * math.pi * d / D)) for d in range(D)]
    if D == 1:
        pos = [(0.0, 0.0)]
    for d, (x, y) in enumerate(pos):
        ax2.add_patch(Rectangle((x - 0.38, y - 0.24), 0.76, 0.48, facecolor=colors[d % 10], alpha=0.85,
                                edgecolor="black"))
        ax2.text(x, y, f"device {d}\nI{d} | T{sched[step][d]}", ha="center", va="center", fontsize=9,
                 color="white", weight="bold")
    if D > 1:
        for d in range(D):
            (x0, y0), (x1, y1) = pos[d], pos[(d + 1) % D]
            ax2.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle="arc3,rad=-0.25", arrowstyle="-|>",
                                          mutation_scale=14, shrinkA=26, shrinkB=26, color="black", lw=1.2))
    nxt = "texts move to the next device" if step < D - 1 else "every block computed: no all-gather, no B×B matrix"
    ax2.set_title(f"who holds what at step {step + 1}\n{nxt}", fontsize=9)
    fig.tight_layout()
    return fig


def ring_viewer(num_devices: int = 3, batch_size: int | None = None):
    """Slider over the steps of the ring and a choice of device count; returns the widget."""
    import ipywidgets as widgets

    devices = widgets.Dropdown(options=[1, 2, 3, 4, 6, 8], value=num_devices, description="devices")
    step = widgets.IntSlider(value=0, min=0, max=num_devices - 1, description="step (0-based)")
    out = widgets.Image(format="png")

    def redraw(*_):
        step.max = devices.value - 1
        B = batch_size if batch_size is not None and batch_size % devices.value == 0 else 4 * devices.value
        out.value = fig_to_png(ring_figure(devices.value, min(step.value, devices.value - 1), B))

    devices.observe(redraw, names="value")
    step.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([devices, step]), out])
    show(box, ring_figure(num_devices, 0, batch_size), title="SigLIP's ring: who holds which block")
    return box

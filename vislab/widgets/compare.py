"""Chapter 10's viewers: every encoder on every probe of :mod:`vislab.compare`.

``results_figure``: the encoders x probes table as a heat map with the numbers written in.
``bar_figure``: one probe across encoders, or one encoder across probes.
``probe_viewer``: pick "by probe" or "by encoder" and the item; the bar chart redraws.

The viewers take the measured results (``{row label: {probe: fraction}}``); they never run probes.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from vislab.compare import PROBES
from vislab.widgets.core import fig_to_png, show

__all__ = ["results_figure", "bar_figure", "probe_viewer"]

_GROUP_COLORS = {"semantic": "tab:blue", "spatial": "tab:orange", "dense": "tab:green"}


def _check(results: dict) -> list:
    if not isinstance(results, dict) or not results or not all(isinstance(v, dict) for v in results.values()):
        raise ValueError("results must be a non-empty dict {encoder label: {probe: accuracy}}")
    probes = [p for p in PROBES if any(p in v for v in results.values())]
    probes += [p for v in results.values() for p in v if p not in probes]
    return probes


def _value(v) -> float:
    return float("nan") if v is None else float(v)


def results_figure(results: dict, probes=None, title: str = "frozen features, probe accuracy (%)"):
    """Heat map: rows = encoders, columns = probes (grouped semantic | spatial | dense), NaN blank."""
    probes = list(probes) if probes is not None else _check(results)
    rows = list(results)
    M = np.array([[_value(results[r].get(p)) for p in probes] for r in rows]) * 100      # (rows, probes)
    fig, ax = plt.subplots(figsize=(1.0 * len(probes) + 2.5, 0.42 * len(rows) + 1.6))
    ax.imshow(np.ma.masked_invalid(M), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(probes)):
            if not math.isnan(M[i, j]):
                ax.text(j, i, f"{M[i, j]:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if M[i, j] < 60 else "black")
    ax.set_xticks(range(len(probes)), probes, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for j, p in enumerate(probes):
        group = PROBES.get(p, ("other",))[0]
        ax.get_xticklabels()[j].set_color(_GROUP_COLORS.get(group, "black"))
    ax.set_title(title + " · probe names: blue semantic, orange spatial, green dense", fontsize=9)
    fig.tight_layout()
    return fig


def bar_figure(results: dict, probe: str | None = None, encoder: str | None = None, chance: dict | None = None):
    """One probe across encoders (``probe=``), or one encoder across probes (``encoder=``)."""
    probes = _check(results)
    if (probe is None) == (encoder is None):
        raise ValueError("give exactly one of probe= or encoder=")
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if probe is not None:
        if probe not in probes:
            raise ValueError(f"unknown probe {probe!r}; measured: {probes}")
        names = list(results)
        vals = [_value(results[n].get(probe)) * 100 for n in names]
        color = _GROUP_COLORS.get(PROBES.get(probe, ("other",))[0], "gray")
        ax.barh(range(len(names)), [0 if math.isnan(v) else v for v in vals], color=color)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        for i, v in enumerate(vals):
            ax.text(1 if math.isnan(v) else v + 1, i, "n/a (no text tower)" if math.isnan(v) else f"{v:.1f}",
                    va="center", fontsize=8)
        if chance and probe in chance:
            ax.axvline(100 * chance[probe], color="k", ls="--", lw=1)
            ax.text(100 * chance[probe], -0.7, " chance", fontsize=7, va="bottom")
        ax.set_title(f"{probe}: {PROBES.get(probe, ('', ''))[1]}", fontsize=9)
    else:
        if encoder not in results:
            raise ValueError(f"unknown encoder {encoder!r}; measured: {list(results)}")
        vals = [_value(results[encoder].get(p)) * 100 for p in probes]
        colors = [_GROUP_COLORS.get(PROBES.get(p, ("other",))[0], "gray") for p in probes]
        ax.bar(range(len(probes)), [0 if math.isnan(v) else v for v in vals], color=colors)
        ax.set_xticks(range(len(probes)), probes, rotation=40, ha="right", fontsize=8)
        for j, v in enumerate(vals):
            ax.text(j, 1 if math.isnan(v) else v + 1, "n/a" if math.isnan(v) else f"{v:.0f}", ha="center", fontsize=8)
        if chance:
            ax.scatter([j for j, p in enumerate(probes) if p in chance], [100 * chance[p] for p in probes if p in chance],
                       marker="_", s=300, color="k", label="chance")
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        ax.set_title(f"{encoder}: every probe (blue semantic, orange spatial, green dense)", fontsize=9)
    ax.set_xlim(0, 110) if probe is not None else ax.set_ylim(0, 110)
    fig.tight_layout()
    return fig


def probe_viewer(results: dict, chance: dict | None = None, probe: str | None = None):
    """Interactive: "by probe" (all encoders on one probe) or "by encoder" (one encoder on all
    probes). Returns the widget; displays it with a static picture of its first view."""
    import ipywidgets as W

    probes = _check(results)
    encoders = list(results)
    mode = W.ToggleButtons(options=["by probe", "by encoder"], value="by probe", description="view")
    pick = W.Dropdown(options=probes, value=probe if probe in probes else probes[0], description="probe")
    picture = W.Image(format="png")
    info = W.HTML()

    def render(*_):
        if mode.value == "by probe":
            fig = bar_figure(results, probe=pick.value, chance=chance)
            info.value = f"<i>{PROBES.get(pick.value, ('', ''))[0]}</i>: {PROBES.get(pick.value, ('', ''))[1]}"
        else:
            fig = bar_figure(results, encoder=pick.value, chance=chance)
            info.value = f"<i>{pick.value}</i> on every probe"
        picture.value = fig_to_png(fig)

    def on_mode(change):
        pick.unobserve(render, names="value")
        if change["new"] == "by probe":
            pick.options, pick.description = probes, "probe"
            pick.value = probes[0]
        else:
            pick.options, pick.description = encoders, "encoder"
            pick.value = encoders[0]
        pick.observe(render, names="value")
        render()

    mode.observe(on_mode, names="value")
    pick.observe(render, names="value")
    render()
    box = W.VBox([W.HBox([mode, pick]), info, picture])
    show(box, png=picture.value, title=f"probe viewer: {pick.value} across {len(encoders)} encoders")
    return box



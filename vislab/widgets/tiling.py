"""Chapters 7 and 9's viewers: how InternVL and LLaVA-NeXT cut a large image into tiles.

``tiling_viewer``: a photo at any width x height and InternVL's ``max_num`` → the grid
``dynamic_preprocess`` chooses, drawn on the image, the tiles and the thumbnail, and the
token count before and after pixel shuffle.

``anyres_viewer``: a photo at any width x height → every candidate canvas of LLaVA-NeXT
scored (effective and wasted pixels) → the chosen canvas with its padding → thumbnail +
tiles → the token count with and without unpadding (and InternVL's count beside it).

Pictures show tiles at a reduced size (``display_tile`` pixels) so that the viewers stay
fast; the grid, the counts and the pixels' arrangement are those of the real algorithms.
"""

from __future__ import annotations

import html

import numpy as np
from PIL import Image

from vislab import anyres, internvit
from vislab.widgets.core import fig_to_png, show, upload_button

__all__ = ["internvl_summary", "internvl_figure", "tiling_viewer", "anyres_table", "anyres_summary",
           "anyres_figure", "anyres_viewer"]


def _check_image(image) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL.Image (e.g. from vislab.images.load_photo), got {type(image).__name__}")
    return image.convert("RGB")


# ------------------------------------------------------------------------------ InternVL

def internvl_summary(width: int, height: int, max_num: int = 12, image_size: int = 448, patch_size: int = 14,
                     scale_factor: float = 0.5) -> dict:
    """The numbers behind the InternVL viewer for a ``width x height`` image."""
    cols, rows = internvit.tile_grid(width, height, 1, max_num, image_size)
    tiles = cols * rows
    views = tiles + (1 if tiles > 1 else 0)
    patches = (image_size // patch_size) ** 2
    after = internvit.tokens_per_tile(image_size, patch_size, scale_factor)
    return {"grid": (cols, rows), "tiles": tiles, "views": views, "thumbnail": tiles > 1,
            "patches_per_view": patches, "tokens_per_view": after,
            "vit_tokens": views * patches, "llm_tokens": views * after,
            "resized_to": (cols * image_size, rows * image_size),
            "stretch": (cols / rows) / (width / height)}


def _summary_text(s: dict, width: int, height: int, max_num: int) -> str:
    cols, rows = s["grid"]
    thumb = " + 1 thumbnail" if s["thumbnail"] else " (no thumbnail for a single tile)"
    return (f"{width}×{height}, max {max_num} tiles → grid {cols}×{rows} = {s['tiles']} tile(s){thumb}; "
            f"image resized to {s['resized_to'][0]}×{s['resized_to'][1]} (aspect ×{s['stretch']:.2f}); "
            f"ViT tokens {s['views']}×{s['patches_per_view']} = {s['vit_tokens']:,} → after pixel shuffle "
            f"{s['views']}×{s['tokens_per_view']} = {s['llm_tokens']:,} LLM tokens")


def _draw_grid(ax, W, H, cols, rows, color="yellow", lw=1.5):
    for c in range(1, cols):
        ax.axvline(c * W / cols - 0.5, color=color, lw=lw)
    for r in range(1, rows):
        ax.axhline(r * H / rows - 0.5, color=color, lw=lw)


def internvl_figure(image, max_num: int = 12, image_size: int = 448, patch_size: int = 14,
                    scale_factor: float = 0.5, display_tile: int = 96, title: str = ""):
    """The picture: the image with InternVL's grid, the tiles row-major and the thumbnail."""
    import matplotlib.pyplot as plt

    image = _check_image(image)
    W, H = image.size
    s = internvl_summary(W, H, max_num, image_size, patch_size, scale_factor)
    cols, rows = s["grid"]
    # The real tiles are crops of the image resized to (cols*S, rows*S); the same crops at
    # display_tile instead of S look identical and cost far less.
    small = internvit.dynamic_preprocess(image, 1, max_num, display_tile, use_thumbnail=True) \
        if internvit.tile_grid(W, H, 1, max_num, display_tile) == (cols, rows) else None
    if small is None:   # the tie rule depends on image_size; cut the chosen grid directly
        resized = image.resize((cols * display_tile, rows * display_tile), Image.BICUBIC)
        small = [resized.crop((c * display_tile, r * display_tile, (c + 1) * display_tile, (r + 1) * display_tile))
                 for r in range(rows) for c in range(cols)]
        if cols * rows > 1:
            small.append(image.resize((display_tile, display_tile), Image.BICUBIC))
    fig = plt.figure(figsize=(11, 3.8))
    gs = fig.add_gridspec(1, 3, width_ratios=[1.2, 1.2, 0.5])
    ax = fig.add_subplot(gs[0])
    ax.imshow(np.asarray(image.resize((min(W, 640), max(1, round(H * min(W, 640) / W))))),
              extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    _draw_grid(ax, W, H, cols, rows)
    ax.set_title(title or f"{W}×{H}: grid {cols}×{rows}")
    ax.axis("off")
    ax2 = fig.add_subplot(gs[1])
    gap = 4
    mosaic = np.ones((rows * (display_tile + gap), cols * (display_tile + gap), 3), dtype=np.uint8) * 255
    for k in range(cols * rows):
        r, c = divmod(k, cols)
        y, x = r * (display_tile + gap), c * (display_tile + gap)
        mosaic[y:y + display_tile, x:x + display_tile] = np.asarray(small[k])
    ax2.imshow(mosaic)
    for k in range(cols * rows):
        r, c = divmod(k, cols)
        ax2.text(c * (display_tile + gap) + 4, r * (display_tile + gap) + 12, str(k), color="yellow", fontsize=8)
    ax2.set_title(f"{s['tiles']} tiles of {image_size}² (row-major)")
    ax2.axis("off")
    ax3 = fig.add_subplot(gs[2])
    if s["thumbnail"]:
        ax3.imshow(np.asarray(small[-1]))
        ax3.set_title(f"thumbnail {image_size}²")
    else:
        ax3.text(0.5, 0.5, "one tile:\nno thumbnail", ha="center", va="center")
    ax3.axis("off")
    fig.suptitle(f"ViT tokens {s['vit_tokens']:,} → pixel shuffle → {s['llm_tokens']:,} LLM tokens", fontsize=10)
    fig.tight_layout()
    return fig


def _add_uploads(photos: dict, pick, info):
    """A button that adds uploaded images to ``photos`` and the dropdown, and selects the first."""
    def on_images(images, errors):
        for name, img in images.items():
            photos[name] = img
        if images:
            pick.options = list(photos)
            pick.value = next(iter(images))
        if errors:
            info.value = "<b>" + html.escape("; ".join(errors)) + "</b>"

    return upload_button(on_images, description="your image")


def _size_sliders(W, width: int, height: int):
    common = dict(min=64, max=4096, step=16, continuous_update=False)
    return (W.IntSlider(value=width, description="width", **common),
            W.IntSlider(value=height, description="height", **common))


def tiling_viewer(photos: dict, max_num: int = 12, image_size: int = 448, patch_size: int = 14,
                  scale_factor: float = 0.5, width: int | None = None, height: int | None = None):
    """InternVL's dynamic tiling, interactively.

    Args:
        photos: name → PIL image (e.g. ``vislab.images.sample_photos()``, or ShapeWorld canvases).
        max_num: initial tile cap (InternVL: 12).
        width, height: initial size the photo is resized to (default: the first photo's own).
    Controls: the photo (or one you upload), its width and height (any aspect ratio: the photo is
    stretched to it), and the tile cap. Returns the widget.
    """
    import ipywidgets as W

    if not isinstance(photos, dict) or not photos:
        raise ValueError("photos must be a non-empty dict of name -> PIL.Image")
    photos = {k: _check_image(v) for k, v in photos.items()}
    names = list(photos)
    w0, h0 = photos[names[0]].size
    pick = W.Dropdown(options=names, value=names[0], description="photo")
    w_slider, h_slider = _size_sliders(W, width or w0, height or h0)
    cap = W.IntSlider(value=max_num, min=1, max=40, description="max tiles", continuous_update=False)
    info = W.HTML()
    picture = W.Image(format="png")

    def render(*_):
        img = photos[pick.value].resize((w_slider.value, h_slider.value), Image.BICUBIC)
        s = internvl_summary(w_slider.value, h_slider.value, cap.value, image_size, patch_size, scale_factor)
        picture.value = fig_to_png(internvl_figure(img, cap.value, image_size, patch_size, scale_factor))
        info.value = f"<b>{html.escape(_summary_text(s, w_slider.value, h_slider.value, cap.value))}</b>"

    def on_photo(change):
        w, h = photos[change["new"]].size
        for sl, v in ((w_slider, w), (h_slider, h)):
            sl.unobserve(render, names="value")
            sl.value = v
            sl.observe(render, names="value")
        render()

    pick.observe(on_photo, names="value")
    for c in (w_slider, h_slider, cap):
        c.observe(render, names="value")
    render()
    upload = _add_uploads(photos, pick, info)
    box = W.VBox([W.HBox([pick, upload, cap]), W.HBox([w_slider, h_slider]), info, picture])
    show(box, png=picture.value, title=_summary_text(
        internvl_summary(w_slider.value, h_slider.value, cap.value, image_size, patch_size, scale_factor),
        w_slider.value, h_slider.value, cap.value))
    return box


# ------------------------------------------------------------------------------ AnyRes

def anyres_table(width: int, height: int, resolutions=anyres.LLAVA_NEXT_GRIDS, tile_size: int = 336,
                 cap_upscaling: bool = True) -> list:
    """One row per candidate canvas: grid, scale, effective and wasted pixels, chosen or not."""
    rows = anyres.score_resolutions((width, height), resolutions, cap_upscaling)
    best = anyres.select_best_resolution((width, height), resolutions, cap_upscaling)
    out = []
    for r in rows:
        w, h = r["resolution"]
        out.append({"canvas": f"{w}×{h}", "grid": f"{w // tile_size}×{h // tile_size}", "scale": round(r["scale"], 3),
                    "effective": r["effective"], "wasted": r["wasted"], "chosen": r["resolution"] == best})
    return out


def _table_html(rows) -> str:
    head = "".join(f"<th style='padding:2px 8px'>{k}</th>" for k in ("canvas", "grid", "scale", "effective px",
                                                                     "wasted px", "chosen"))
    body = ""
    for r in rows:
        style = " style='background:#ffe9a8'" if r["chosen"] else ""
        body += (f"<tr{style}><td>{r['canvas']}</td><td>{r['grid']}</td><td>{r['scale']}</td>"
                 f"<td>{r['effective']:,}</td><td>{r['wasted']:,}</td><td>{'✓' if r['chosen'] else ''}</td></tr>")
    return f"<table style='border-collapse:collapse;font-size:12px'><tr>{head}</tr>{body}</table>"


def anyres_summary(width: int, height: int, resolutions=anyres.LLAVA_NEXT_GRIDS, tile_size: int = 336,
                   patch_size: int = 14) -> str:
    """One line: the chosen canvas, the tokens with and without unpadding, InternVL's count."""
    best = anyres.select_best_resolution((width, height), resolutions)
    full = anyres.anyres_num_tokens((width, height), resolutions, tile_size, patch_size, unpad=False)
    cut = anyres.anyres_num_tokens((width, height), resolutions, tile_size, patch_size, unpad=True)
    ivl = internvit.num_image_tokens(width, height)
    cols, rows = cut.grid
    return (f"{width}×{height} → canvas {best[0]}×{best[1]} ({cols}×{rows} tiles + thumbnail); "
            f"tokens without unpadding {full.total:,} (= {full.base} + {full.tiles:,} + {full.newline} newlines), "
            f"with unpadding {cut.total:,} (= {cut.base} + {cut.tiles:,} + {cut.newline} newlines); "
            f"InternVL (max 12 tiles, pixel shuffle): {ivl:,}")


def anyres_figure(image, resolutions=anyres.LLAVA_NEXT_GRIDS, tile_size: int = 336, patch_size: int = 14,
                  display_tile: int = 96, title: str = ""):
    """The picture: the padded canvas with its tiles, thumbnail + tiles, and the feature grid
    with the cells that unpadding removes greyed out."""
    import matplotlib.pyplot as plt

    image = _check_image(image)
    W, H = image.size
    best = anyres.select_best_resolution((W, H), resolutions)
    cols, rows = best[0] // tile_size, best[1] // tile_size
    f = display_tile / tile_size
    small_canvas = (cols * display_tile, rows * display_tile)
    # resize-and-pad at display scale, with the real algorithm's geometry scaled down
    canvas = anyres.resize_and_pad(image, best)
    shown = canvas.resize(small_canvas, Image.BICUBIC)
    left, top, right, bottom = anyres.pad_box((W, H), best)
    tiles = anyres.divide_to_patches(shown, display_tile)
    thumb = image.resize((display_tile, display_tile), Image.BICUBIC)
    g = tile_size // patch_size
    fh, fw = rows * g, cols * g
    uh, uw = anyres.unpadded_shape((fh, fw), (W, H))
    fig = plt.figure(figsize=(12, 3.8))
    gs = fig.add_gridspec(1, 3, width_ratios=[1.2, 1.4, 1.0])
    ax = fig.add_subplot(gs[0])
    ax.imshow(np.asarray(shown))
    _draw_grid(ax, small_canvas[0], small_canvas[1], cols, rows)
    pad_color = dict(color="red", alpha=0.25, lw=0)
    if top or bottom:
        ax.axhspan(-0.5, top * f - 0.5, **pad_color)
        ax.axhspan(small_canvas[1] - bottom * f - 0.5, small_canvas[1] - 0.5, **pad_color)
    if left or right:
        ax.axvspan(-0.5, left * f - 0.5, **pad_color)
        ax.axvspan(small_canvas[0] - right * f - 0.5, small_canvas[0] - 0.5, **pad_color)
    wasted = best[0] * best[1] - (best[0] - left - right) * (best[1] - top - bottom)
    ax.set_title(title or f"{W}×{H} → canvas {best[0]}×{best[1]}, padding {wasted / (best[0] * best[1]):.0%}")
    ax.axis("off")
    ax2 = fig.add_subplot(gs[1])
    gap = 4
    n = len(tiles) + 1
    strip = np.ones((display_tile, n * (display_tile + gap), 3), dtype=np.uint8) * 255
    for k, t in enumerate([thumb] + tiles):
        strip[:, k * (display_tile + gap):k * (display_tile + gap) + display_tile] = np.asarray(t)
    ax2.imshow(strip)
    ax2.text(4, 12, "thumb", color="yellow", fontsize=8)
    for k in range(len(tiles)):
        ax2.text((k + 1) * (display_tile + gap) + 4, 12, str(k), color="yellow", fontsize=8)
    ax2.set_title("the encoder's inputs: thumbnail first, then tiles row-major")
    ax2.axis("off")
    ax3 = fig.add_subplot(gs[2])
    grid = np.zeros((fh, fw))
    t0, l0 = (fh - uh) // 2, (fw - uw) // 2
    grid[t0:t0 + uh, l0:l0 + uw] = 1
    ax3.imshow(grid, cmap="Greys_r", vmin=-0.5, vmax=1, interpolation="nearest")
    _draw_grid(ax3, fw, fh, cols, rows, color="orange", lw=1)
    ax3.set_title(f"features {fh}×{fw} → unpadded {uh}×{uw}", fontsize=9)
    ax3.set_xticks([])
    ax3.set_yticks([])
    fig.tight_layout()
    return fig


def anyres_viewer(photos: dict, resolutions=anyres.LLAVA_NEXT_GRIDS, tile_size: int = 336, patch_size: int = 14,
                  width: int | None = None, height: int | None = None):
    """LLaVA-NeXT's AnyRes, interactively: width/height → candidate scores → chosen canvas →
    thumbnail + tiles → tokens with and without unpadding. Returns the widget."""
    import ipywidgets as W

    if not isinstance(photos, dict) or not photos:
        raise ValueError("photos must be a non-empty dict of name -> PIL.Image")
    photos = {k: _check_image(v) for k, v in photos.items()}
    names = list(photos)
    w0, h0 = photos[names[0]].size
    pick = W.Dropdown(options=names, value=names[0], description="photo")
    w_slider, h_slider = _size_sliders(W, width or w0, height or h0)
    table = W.HTML()
    info = W.HTML()
    picture = W.Image(format="png")

    def render(*_):
        w, h = w_slider.value, h_slider.value
        img = photos[pick.value].resize((w, h), Image.BICUBIC)
        table.value = _table_html(anyres_table(w, h, resolutions, tile_size))
        info.value = f"<b>{html.escape(anyres_summary(w, h, resolutions, tile_size, patch_size))}</b>"
        picture.value = fig_to_png(anyres_figure(img, resolutions, tile_size, patch_size))

    def on_photo(change):
        w, h = photos[change["new"]].size
        for sl, v in ((w_slider, w), (h_slider, h)):
            sl.unobserve(render, names="value")
            sl.value = v
            sl.observe(render, names="value")
        render()

    pick.observe(on_photo, names="value")
    for c in (w_slider, h_slider):
        c.observe(render, names="value")
    render()
    upload = _add_uploads(photos, pick, info)
    box = W.VBox([W.HBox([pick, upload]), W.HBox([w_slider, h_slider]), table, info, picture])
    show(box, png=picture.value,
         title=anyres_summary(w_slider.value, h_slider.value, resolutions, tile_size, patch_size))
    return box

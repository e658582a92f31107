# %% [markdown] tags=["slide"]
# # Chapter 9 · AnyRes: how LLaVA-NeXT feeds a high-resolution image to a language model
#
# LLaVA-1.5 shows its language model one 336×336 view of every image. LLaVA-NeXT (Liu et al.,
# *LLaVA-NeXT: Improved reasoning, OCR, and world knowledge*, 2024; the idea in *Improved
# Baselines with Visual Instruction Tuning*, arXiv:2310.03744, section 4) keeps the same CLIP
# ViT-L/14@336 and shows it more: it picks a **canvas** from a short list of tile grids, fits the
# image into it without changing its aspect ratio, **pads** the rest, cuts the canvas into 336²
# **tiles**, adds a 336² **thumbnail** ("base image"), and finally **unpads** the stitched
# features and marks the end of every row with a learned newline token. This "AnyRes" recipe and
# InternVL's dynamic resolution (chapter 7) answer the same question differently.
#
# **You will**
# 1. run `select_best_resolution` by hand: effective pixels, wasted pixels, the tie rules, and a
#    cap that the notes' version of the code lacks;
# 2. resize-and-pad, cut into tiles, and count tokens with and without unpadding;
# 3. put AnyRes and InternVL side by side on the same inputs: tiles, tokens, wasted pixels;
# 4. measure what the thumbnail adds on a ShapeWorld task that needs both detail and layout;
# 5. answer the notes' position-embedding question from the tiling side, with a measurement.
#
# The code lives in `vislab.anyres`; this notebook imports it and shows it.

# %%
# --- Colab bootstrap (written from book.yml by `python -m vislab.book sync`; does nothing elsewhere) ---
import sys

if "google.colab" in sys.modules:  # pragma: no cover - runs on Colab only
    import os
    import subprocess

    if not os.path.isdir("/content/vision-encoders"):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "-b", "main",
                        "https://github.com/vision-encoders-course/vision-encoders", "/content/vision-encoders"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", "/content/vision-encoders"], check=True)
    sys.path.insert(0, "/content/vision-encoders")
    os.chdir("/content/vision-encoders/chapters")
    from google.colab import output

    output.enable_custom_widget_manager()
# --- end of the Colab bootstrap ---

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from scipy.stats import binomtest

import vislab
from vislab import check
from vislab.anyres import (LLAVA_NEXT_GRIDS, anyres_grid_shape, anyres_num_tokens, divide_to_patches, grid_resolutions,
                           pad_box, resize_and_pad, resized_size, score_resolutions, select_best_resolution, unpad,
                           unpadded_shape)
from vislab.images import load_photo, to_pil, to_tensor
from vislab.internvit import num_image_tokens, shuffle_tokens, tile_grid
from vislab.pretrain import load_or_train
from vislab.recipes import detail
from vislab.runtime import setup
from vislab.stats import accuracy_interval, format_accuracy

device = setup(seed=0)

# %% [markdown] tags=["slide"]
# ## 1. Intuition: keep the aspect ratio, pay with padding
#
# InternVL *stretches* the image to the closest grid (a 4:3 photo on a 1:1 grid is squeezed).
# LLaVA-NeXT never distorts: it scales the image until it just fits the canvas and fills the
# rest with black. Which canvas? The one that keeps the most of the image's pixels; among equals,
# the one that wastes the fewest. Its default list (`image_grid_pinpoints` of LLaVA-v1.6) has five
# canvases of 336 px tiles: 2×1, 1×2, 2×2, 3×1 and 1×3. Every tile and the thumbnail go through the
# ViT separately (576 tokens each at patch 14), then the tile features are stitched back into one
# large grid.

# %%
from vislab.widgets.tiling import anyres_figure

photo = load_photo("china")                                         # PIL, 640×427
anyres_figure(photo)
plt.show()

# %% [markdown]
# ## 2. The math
#
# For an image of $W \times H$ pixels and a candidate canvas $(w, h)$:
#
# $$ s = \min\left(\frac{w}{W}, \frac{h}{H}\right), \qquad
#    e = \min\big(\lfloor sW \rfloor \lfloor sH \rfloor,\ WH\big), \qquad
#    \text{waste} = wh - e .$$
#
# $s$ fits the image inside the canvas; $e$, the *effective* resolution, counts the image pixels
# that survive, capped at $WH$ because upscaling adds no information; the rest of the canvas is
# padding (or interpolated pixels). The chosen canvas maximises $e$; ties go to the smaller
# waste, and a full tie to the first candidate in the list.
#
# The image is resized to $\big(w, \min(\lceil sH\rceil, h)\big)$ or $\big(\min(\lceil sW\rceil, w), h\big)$
# (the limiting side fills the canvas), centred, and padded. With tiles of $S$ px and patch $P$,
# each view gives $g^2$ features, $g = S/P$ (24 for 336/14). The tile features are stitched into a
# $(g \cdot \text{rows}) \times (g \cdot \text{cols})$ grid; unpadding removes the rows (or
# columns) that only saw padding, leaving $H' \times W'$ with the image's aspect ratio; one newline
# token closes each of the $H'$ rows:
#
# $$ T = \underbrace{g^2}_{\text{thumbnail}} + \underbrace{H' W'}_{\text{tiles}} + \underbrace{H'}_{\text{newlines}} .$$

# %% [markdown] tags=["slide"]
# ## 3. The code
#
# All sizes in `vislab.anyres` are `(width, height)`, like PIL and LLaVA's own code.

# %%
vislab.show_source(score_resolutions)
vislab.show_source(select_best_resolution)

# %%
vislab.show_source(resized_size)
vislab.show_source(resize_and_pad)

# %%
vislab.show_source(unpadded_shape)
vislab.show_source(anyres_num_tokens)

# %% [markdown] tags=["slide"]
# ## 4. Step by step on a few sizes

# %%
# NBVAL_CHECK_OUTPUT
def show_scores(size, candidates=LLAVA_NEXT_GRIDS, cap_upscaling=True):
    best = select_best_resolution(size, candidates, cap_upscaling)
    print(f"image {size[0]}×{size[1]}" + ("" if cap_upscaling else "  (notes' version: no cap)"))
    for row in score_resolutions(size, candidates, cap_upscaling):
        w, h = row["resolution"]
        mark = "  ← chosen" if row["resolution"] == best else ""
        print(f"   canvas {w:>4}×{h:<4} scale {row['scale']:.3f}  effective {row['effective']:>9,}"
              f"  wasted {row['wasted']:>9,}{mark}")


for size in [(640, 427), (1000, 500), (3000, 1000), (500, 1000)]:
    show_scores(size)

# %% [markdown]
# The 640×427 photo fits 672×672 at scale 1.05: all its 273,280 pixels survive (the cap makes
# it exactly $WH$), so 2×2 beats 2×1 even though two fifths of the canvas (178,304 of its
# $672^2$ pixels) are padding. A 1000×500
# image keeps 672×336 pixels in both 2×1 and 2×2 (2×2 cannot hold it any larger without
# cropping); the tie goes to 2×1, which wastes nothing.
#
# **The notes' version.** The notes' `select_best_resolution` computes `effective =
# downscaled_width * downscaled_height` without the `min(…, W·H)` of LLaVA's code. For any image
# smaller than a canvas that changes the answer: every canvas can hold the whole image, and
# without the cap the biggest canvas "keeps" the most (upscaled) pixels.

# %%
# NBVAL_CHECK_OUTPUT
show_scores((300, 300))
show_scores((300, 300), cap_upscaling=False)
with_cap = anyres_num_tokens((300, 300)).total
canvas = select_best_resolution((300, 300), cap_upscaling=False)
notes_tokens = anyres_num_tokens((300, 300), [canvas]).total    # the same image on the canvas the notes pick
print(f"tokens: LLaVA's rule {with_cap:,}, the notes' rule {notes_tokens:,} for a 300×300 icon")

# %% [markdown]
# `transformers` implements the same function but orders every size `(height, width)`. With
# LLaVA-NeXT's default list the mix-up cannot show: the list is symmetric (2×1 and 1×2, 3×1 and
# 1×3). With an asymmetric list it does. If `transformers` is installed, the cell checks that
# vislab agrees with it once the pairs are swapped, and shows what happens if they are not.

# %%
try:
    from transformers.image_processing_utils import select_best_resolution as hf_select
except ImportError:
    print("transformers is not installed: comparison skipped")
else:
    asymmetric = [(336, 672), (1008, 336), (672, 672)]                     # (width, height)
    sizes = [(640, 427), (1000, 500), (3000, 1000), (500, 1000), (300, 300), (1920, 1080)]
    swap = lambda pairs: [(b, a) for a, b in pairs]                          # noqa: E731
    ours = [select_best_resolution(s, asymmetric) for s in sizes]
    theirs = [hf_select((h, w), swap(asymmetric))[::-1] for w, h in sizes]
    check.equal(ours, theirs, "vislab (width, height) == transformers (height, width), swapped")
    unswapped = [hf_select((h, w), asymmetric)[::-1] for w, h in sizes]       # the list passed as LLaVA writes it
    for size, right, wrong in zip(sizes, ours, unswapped):
        print(f"{size[0]}×{size[1]}: canvas {right[0]}×{right[1]}" +
              ("" if right == wrong else f", but {wrong[0]}×{wrong[1]} if the list is not swapped"))

# %% [markdown] tags=["slide"]
# ## 5. Resize, pad, tile, unpad
#
# The photo again, through the whole pipeline. The canvas is 672×672; the image is resized to
# 672×449 and centred, so 111 rows of black sit above and 112 below it (the odd row goes to the
# bottom). The 2×2 tiles and the thumbnail are the encoder's five views. After encoding, the
# stitched feature grid is 48×48; unpadding keeps the 32 rows that saw the image.

# %%
# NBVAL_CHECK_OUTPUT
W, H = photo.size
best = select_best_resolution((W, H))
canvas_img = resize_and_pad(photo, best)
tiles = divide_to_patches(canvas_img, 336)
print("canvas          ", best, " grid (cols, rows):", anyres_grid_shape((W, H)))
print("resized to      ", resized_size((W, H), best), " padding (left, top, right, bottom):", pad_box((W, H), best))
print("views           ", ["thumbnail 336x336"] + [f"tile {k} {t.size[0]}x{t.size[1]}" for k, t in enumerate(tiles)])
features = torch.randn(8, 48, 48)                        # (C, rows*24, cols*24): stand-in for stitched tile features
print("stitched        ", tuple(features.shape), "→ unpadded", tuple(unpad(features, (W, H)).shape))
for flag in (False, True):
    t = anyres_num_tokens((W, H), unpad=flag)
    print(f"tokens unpad={flag!s:<5}  {t.base} + {t.tiles:,} + {t.newline} newlines = {t.total:,}")
_ = check.equal(unpad(features, (W, H)), features[:, 8:40, :], "unpad keeps the 32 middle rows")

# %% [markdown]
# The padding is where the geometry says: canvas rows $0$ to $110$ and $111 + 449 = 560$ to $671$ are black. Cutting the
# canvas into tiles and re-assembling them loses nothing:

# %%
# NBVAL_CHECK_OUTPUT
canvas_t = to_tensor(canvas_img)                                   # (3, 672, 672)
tiles_t = divide_to_patches(canvas_t, 336)                          # 4 x (3, 336, 336), row-major
rebuilt = torch.cat([torch.cat(tiles_t[0:2], dim=2), torch.cat(tiles_t[2:4], dim=2)], dim=1)
check.equal(rebuilt, canvas_t, "tiles reassembled row-major == the canvas")
print("rows of pure padding at the top:", int((canvas_t.sum(dim=(0, 2)) == 0)[:200].sum()),
      " at the bottom:", int((canvas_t.sum(dim=(0, 2)) == 0)[400:].sum()))

# %% [markdown] tags=["slide"]
# ## 6. The AnyRes viewer
#
# Width and height sliders (the photo is stretched to them) → the score of every candidate
# canvas (the chosen one highlighted) → the canvas with its padding (red) and tiles → the
# thumbnail and tiles the encoder sees → the stitched feature grid, greyed where unpadding
# removes it, and the token counts with and without unpadding, with InternVL's count beside them.
# Try 336×336, 1000×300, 300×1000, 4032×3024, or upload a photo of your own with **your image**.
# (Without a live kernel you see the default view.)

# %%
# NBVAL_IGNORE_OUTPUT
from vislab.widgets.tiling import anyres_viewer

viewer = anyres_viewer({"china": photo, "flower": load_photo("flower")})

# %% [markdown] tags=["slide"]
# ## 7. AnyRes and InternVL on the same inputs
#
# The same inputs as chapter 7's budget table. "Wasted" is the share of the canvas that carries
# no original pixel: padding, or interpolation when a small image is upscaled, i.e. LLaVA's
# $(wh - e)/wh$; for InternVL the canvas is the grid of tiles it resizes the image to, which it
# stretches instead of padding ("stretch" is how much the aspect ratio is bent). "Kept" is the
# linear resolution the tiles keep. Thumbnails are counted in "views" and tokens, not in waste.

# %%
# NBVAL_CHECK_OUTPUT
inputs = [("phone photo 12 MP", 4032, 3024), ("document page A4 @300 dpi", 2480, 3508),
          ("panorama 6:1", 12000, 2000), ("screenshot 1080p", 1920, 1080),
          ("receipt", 800, 3000), ("sklearn photo", 640, 427), ("icon", 256, 256)]


def compare(w, h):
    cw, ch = select_best_resolution((w, h))
    t = anyres_num_tokens((w, h))
    e = score_resolutions((w, h), [(cw, ch)])[0]["effective"]
    llava = {"grid": f"{cw // 336}x{ch // 336}", "views": cw // 336 * ch // 336 + 1, "tokens": t.total,
             "wasted": 1 - e / (cw * ch), "kept": min(cw / w, ch / h, 1.0)}
    i, j = tile_grid(w, h)
    area = i * j * 448 * 448
    internvl = {"grid": f"{i}x{j}", "views": i * j + (i * j > 1), "tokens": num_image_tokens(w, h),
                "wasted": 1 - min(area, w * h) / area, "kept": min(i * 448 / w, j * 448 / h, 1.0),
                "stretch": (i / j) / (w / h)}
    return llava, internvl


table = {name: compare(w, h) for name, w, h in inputs}
print(f"{'':<27} {'— LLaVA-NeXT AnyRes (336 px, 576/tile) —':^44} {'— InternVL (448 px, 256/tile) —':^52}")
print(f"{'input':<27} {'grid':>5} {'views':>5} {'tokens':>7} {'wasted':>7} {'kept':>6}   "
      f"{'grid':>5} {'views':>5} {'tokens':>7} {'wasted':>7} {'kept':>6} {'stretch':>8}")
for name, w, h in inputs:
    a, b = table[name]
    print(f"{name:<27} {a['grid']:>5} {a['views']:>5} {a['tokens']:>7,} {a['wasted']:>7.0%} {a['kept']:>6.0%}   "
          f"{b['grid']:>5} {b['views']:>5} {b['tokens']:>7,} {b['wasted']:>7.0%} {b['kept']:>6.0%} {b['stretch']:>8.2f}")

# %% [markdown]
# Reading the table (the sentences below are built from it):

# %%
large = [n for n, w, h in inputs if w * h > 1e6]                   # phone, page, panorama, screenshot, receipt
kept_a = [table[n][0]["kept"] for n in large]
kept_b = [table[n][1]["kept"] for n in large]
tok_a = [t[0]["tokens"] for t in table.values()]
tok_b = [t[1]["tokens"] for t in table.values()]
padded = [n for n in large if table[n][0]["wasted"] >= 0.2]
stretch = max(abs(t[1]["stretch"] - 1) for t in table.values())
icon, small = table["icon"], table["sklearn photo"]
display(Markdown(
    f"LLaVA-NeXT's five canvases top out at 672×672 (or 1008×336), so the large inputs are seen at "
    f"{min(kept_a):.0%}-{max(kept_a):.0%} of their resolution, against {min(kept_b):.0%}-{max(kept_b):.0%} for "
    f"InternVL's up to 12 tiles of 448 px. The token totals are of the same order ({min(tok_a):,}-{max(tok_a):,} "
    f"against {min(tok_b):,}-{max(tok_b):,}) because LLaVA-NeXT spends 576 tokens per view where InternVL's pixel "
    f"shuffle spends 256. LLaVA-NeXT pays for its undistorted aspect ratio with padding "
    f"({min(table[n][0]['wasted'] for n in padded):.0%}-{max(table[n][0]['wasted'] for n in padded):.0%} of the "
    f"canvas for {'every one' if len(padded) == len(large) else f'{len(padded)} of the {len(large)}'} of the large "
    f"inputs); InternVL pays with stretch (up to {stretch:.0%} "
    f"here) and never pads. Small inputs are blown up by both: the icon's canvases are {icon[0]['wasted']:.0%} and "
    f"{icon[1]['wasted']:.0%} interpolation, and InternVL spreads the 640×427 photo over "
    f"{small[1]['views'] - 1} tiles of 448², {small[1]['wasted']:.0%} of whose pixels are interpolated."))

# %% [markdown]
# LLaVA-OneVision later widened AnyRes to grids of up to 6×6 crops of 384 px, and keeps the total
# in check by shrinking each crop's tokens (bilinear interpolation) once the total passes about
# nine crops' worth, "anyres_max_9" (cited: LLaVA-OneVision, arXiv:2408.03326, its Higher AnyRes
# strategy), closing much of the resolution gap.

# %% [markdown] tags=["slide"]
# ## 8. Experiment: what does the thumbnail add?
#
# Tiles keep detail but each is encoded alone: no tile sees the whole scene. The thumbnail sees
# the whole scene, at low resolution. We use chapter 7's encoder (`detail_glyphs`: a ViT for 32²
# views with pixel shuffle and a projector, trained on native crops and downscaled canvases) and
# ask two questions of every canvas: *which shape is the small glyph?* (detail) and *is the glyph
# left of, right of, above or below the big shape?* (layout). Tiles follow AnyRes with 32 px
# tiles and every grid up to 12 tiles as candidates. Each pipeline answers with the view most
# confident about each question; the views are read independently, as separate images.

# %%
USE_CHECKPOINT = True
model, meta = load_or_train("detail_glyphs", device="cpu", use_checkpoint=USE_CHECKPOINT)
grids32 = grid_resolutions(32, 6, 6, max_tiles=12)
test_sets = {size: detail.make_canvases(50, size, seed=909, split="test") for size in detail.CANVAS_SIZES}
pipelines = {"thumbnail only": "downscale", "tiles only": "anyres_tiles", "thumbnail + tiles": "anyres"}
results = {}
for name, pipe in pipelines.items():
    per = [detail.evaluate(model, test, pipe, grids=grids32) for test in test_sets.values()]
    results[name] = {k: sum(r[k] for r in per) / len(per) for k in ("glyph", "relation", "both", "views")}
n_canvas = sum(len(t) for t in test_sets.values())                 # 300 canvases, 50 per size
ci = {name: {k: binomtest(round(r[k] * n_canvas), n_canvas).proportion_ci(0.95, method="wilson")
             for k in ("glyph", "relation", "both")} for name, r in results.items()}
print(f"{'pipeline':<18} {'views':>6} {'glyph (detail)':>15} {'relation (layout)':>18} {'both right':>11}")
for name, r in results.items():
    print(f"{name:<18} {r['views']:>6.1f} {r['glyph']:>15.1%} {r['relation']:>18.1%} {r['both']:>11.1%}")
    print(f"{'  95% interval':<18} {'':>6} " + " ".join(
        f"{f'{ci[name][k].low:.0%}-{ci[name][k].high:.0%}':>{w}}" for k, w in (("glyph", 15), ("relation", 18),
                                                                              ("both", 11))))
print(f"chance: glyph {1 / 7:.1%}, relation {1 / 4:.0%}, both {1 / 28:.1%} ({n_canvas} canvases)")

# %%
added = results["thumbnail + tiles"]["both"] - max(results["tiles only"]["both"], results["thumbnail only"]["both"])
_ = check.at_least(added, 0.15, "thumbnail + tiles answer both questions more often than either alone, by")
_ = check.at_least(ci["thumbnail + tiles"]["both"].low - max(ci["tiles only"]["both"].high,
                                                             ci["thumbnail only"]["both"].high), 0.0,
                   "the combined pipeline's 95% interval clears both single pipelines' (accuracy / 100)")
th, ti, bo = results["thumbnail only"], results["tiles only"], results["thumbnail + tiles"]
display(Markdown(
    f"The thumbnail alone sees the layout (relation right {th['relation']:.0%}: the glyph is a visible dot next to "
    f"a visible shape) but not what the glyph is (glyph right {th['glyph']:.0%}); the tiles alone see the glyph "
    f"({ti['glyph']:.0%}) but rarely the glyph *and* the big shape in one tile, so they tell the relation less "
    f"often ({ti['relation']:.0%}). Together they answer both {bo['both']:.0%} of the time, against "
    f"{th['both']:.0%} and {ti['both']:.0%}. This is the reason LLaVA-NeXT and InternVL both keep a thumbnail."))

# %% [markdown]
# A caveat on the miniature: here the views are read independently, so a tile's position in the
# image is unknown to the reader. In LLaVA-NeXT the language model reads the tile features
# stitched in their 2D arrangement with a newline token per row, so it *can* relate things in
# different tiles, provided it learns to; in InternVL it reads the tiles in row-major order. The
# thumbnail remains the only view in which the *encoder* sees the glyph and the shape together.

# %% [markdown] tags=["slide"]
# ## 9. The notes' question: how do you extend position embeddings to higher resolution?
#
# The notes list three answers: interpolate the learned table bicubically, use 2D RoPE, or tile
# (each tile keeps the trained resolution). From the tiling side the point is simple: **every tile
# and the thumbnail have exactly the trained size**, so the position table is used on the grid it
# was trained on and never resampled. The alternative with the same encoder is to feed the canvas
# whole at native resolution: a 128×96 canvas is a 12×16 patch grid, and `vislab.vit` resamples
# the 4×4 table bicubically to it (the ViT of chapter 2). We compare on the glyph question.

# %%
# NBVAL_CHECK_OUTPUT
vit = model.vit
P, TILE = vit.config.patch_size, detail.TILE                     # 8 px patches, 32 px views
side = round(TILE // P * model.scale_factor)                     # tokens per side of a 32 px block after pixel shuffle
print("trained grid:", vit.config.grid, " table:", tuple(vit.pos_embed.shape))
print("a tile's grid:", (TILE // P, TILE // P), "→ table used as trained:",
      vit.position_table((4, 4)) is vit.pos_embed)
print("a 128×96 canvas's grid:", (96 // P, 128 // P), "→ resampled table:",
      tuple(vit.position_table((12, 16)).shape))
blocks_per_canvas = sorted({(w // TILE) * (h // TILE) for w, h in detail.CANVAS_SIZES})
print(f"LLM tokens per view: a {TILE} px tile {side * side}; a whole canvas {blocks_per_canvas[0] * side * side}-"
      f"{blocks_per_canvas[-1] * side * side} ({blocks_per_canvas[0]}-{blocks_per_canvas[-1]} tiles' worth)")

# %% [markdown]
# **Three things change at once.** Feeding the canvas whole does not only resample the
# positions. (1) *Positions*: the table is resampled to a grid it never saw. (2) *Context*: every
# patch attends to the whole canvas, 8-12 tiles' worth of patches (with one CLS token for all),
# where a tile's patches attend only to their own tile and its CLS. (3) *Pooling*: the course's read-out averages a view's tokens before its
# head, so the whole canvas is read from one mean of 32-48 tokens where a tile is read from a mean
# of 4, and a small glyph is diluted 8-12 times more. A gap between "tiles" and "one interpolated
# view" could come from any of the three, so we measure a 3 × 2 grid of arms on the same 300
# canvases, each arm one change away from its neighbours:
#
# | encoding ↓ / read-out → | **per 32 px block** (mean of 4 tokens; the most confident block wins, as in section 8) | **all tokens** (one mean over every token of the image) |
# |---|---|---|
# | **tiles**: AnyRes tiles at the trained size, each encoded alone (no thumbnail: the full view has none) | section 8's tiles | the pooling control |
# | **full view, trained table repeated**: the canvas in one pass, every 32 px block given the 4×4 table it was trained on | the context control | the context control |
# | **full view, table interpolated**: the canvas in one pass, the table resampled bicubically (`vislab.vit`'s default) | the position control | the position control, and the view first set against the tiles |
#
# Down a column only the encoding changes; along a row only the pooling. "Tiles" and "trained
# table repeated" put the same positions on every block and differ in context only; "repeated"
# and "interpolated" share the context and differ in the position table only. The AnyRes tiles
# of these canvases are exactly their 32 px blocks (every canvas is a whole number of tiles,
# checked below), so block *i* of the full view covers the pixels of tile *i*. One downscaled
# view (section 8's thumbnail: trained size, no detail) is the floor.

# %%
def repeated_table(vit, grid):
    """The trained table ``(1, 1 + 4·4, C)`` with its patch part repeated over ``grid`` (whole tiles):
    every 32 px block gets the positions it was trained with. Returns ``(1, 1 + rows·cols, C)``."""
    k = int(vit.config.class_token)
    gh, gw = vit.config.grid
    table = vit.pos_embed[:, k:].reshape(1, gh, gw, -1)                            # (1, 4, 4, C)
    table = table.repeat(1, grid[0] // gh, grid[1] // gw, 1)                        # (1, rows, cols, C)
    return torch.cat([vit.pos_embed[:, :k], table.flatten(1, 2)], dim=1)            # (1, 1 + rows*cols, C)


@torch.no_grad()
def full_view_blocks(model, image, positions):
    """One canvas ``(3, H, W)`` encoded in one pass (``MiniInternVL.encode`` with a chosen position
    table), its LLM tokens grouped by 32 px block: ``(blocks, side², D)``, blocks in row-major order.

    positions: ``"interpolated"`` (``vit.position_table``: bicubic) or ``"repeated"`` (``repeated_table``)."""
    vit = model.vit
    grid = (image.shape[1] // P, image.shape[2] // P)                              # (rows, cols) of patches
    x = torch.cat([vit.cls_token, vit.patch_embed(image[None])], dim=1)            # (1, 1+N, C)
    table = vit.position_table(grid) if positions == "interpolated" else repeated_table(vit, grid)
    x, _, _ = vit.encode(x + table, grid)                                          # (1, 1+N, C), final-normed
    patches = vit.split_tokens(x)["patches"]                                       # (1, N, C)
    tokens = model.projector(shuffle_tokens(patches, grid, model.scale_factor))    # (1, n, D)
    rows, cols = image.shape[1] // TILE, image.shape[2] // TILE                    # 32 px blocks
    tokens = tokens.reshape(rows, side, cols, side, -1).permute(0, 2, 1, 3, 4)     # (rows, cols, side, side, D)
    return tokens.reshape(rows * cols, side * side, -1)                            # (blocks, side², D)


@torch.no_grad()
def read_glyph(model, groups):
    """``groups (G, n, D)``: each group's mean token through the glyph head; the most confident group
    wins and "none" is never answered (``detail.read_views``' rule). Returns a shape index."""
    logits = model.heads["glyph"](groups.mean(dim=1))                              # (G, 8)
    return int(logits.softmax(-1)[:, :-1].amax(0).argmax())


# %%
# NBVAL_CHECK_OUTPUT
example = test_sets[(128, 96)].images[0]                                        # (3, 96, 128)
blocks = full_view_blocks(model, example, "interpolated")
print("full view of a 128×96 canvas, grouped by block:", tuple(blocks.shape))
_ = check.close(model.heads["glyph"](blocks.flatten(0, 1).mean(0)), model(example[None])["glyph"][0],
                "interpolated full view pooled over all tokens = vislab's model(canvas)", atol=1e-5)
_ = check.equal(repeated_table(vit, vit.config.grid), vit.pos_embed, "repeated table on the trained grid = the table")
for W_, H_ in detail.CANVAS_SIZES:
    img = test_sets[(W_, H_)].images[0]
    cut = img.reshape(3, H_ // TILE, TILE, W_ // TILE, TILE).permute(1, 3, 0, 2, 4).flatten(0, 1)  # (blocks, 3, S, S)
    _ = check.equal(detail.views_for(img, "anyres_tiles", grids=grids32), cut,
                    f"{W_}×{H_}: AnyRes tiles = the canvas's 32 px blocks, row-major")

# %%
encodings = ("tiles", "full view, trained table repeated", "full view, table interpolated")
readouts = ("per 32 px block", "all tokens")
hits = {(e, r): 0 for e in encodings for r in readouts}
floor_hits = 0
for test in test_sets.values():
    for img, glyph in zip(test.images, test.glyph):
        grouped = {"tiles": model.encode(detail.views_for(img, "anyres_tiles", grids=grids32)),   # (tiles, 4, D)
                   "full view, trained table repeated": full_view_blocks(model, img, "repeated"),
                   "full view, table interpolated": full_view_blocks(model, img, "interpolated")}
        for e, groups in grouped.items():
            hits[e, "per 32 px block"] += read_glyph(model, groups) == int(glyph)
            hits[e, "all tokens"] += read_glyph(model, groups.flatten(0, 1)[None]) == int(glyph)
        floor_hits += read_glyph(model, model.encode(detail.views_for(img, "downscale"))) == int(glyph)
hits["floor"] = floor_hits
arm_ci = {arm: accuracy_interval(k, n_canvas) for arm, k in hits.items()}
print(f"glyph accuracy, {n_canvas} canvases, 95% Wilson intervals")
print(f"{'encoding':<36} {'per 32 px block':>22} {'all tokens':>22}")
for e in encodings:
    print(f"{e:<36} " + " ".join(f"{format_accuracy(hits[e, r], n_canvas):>22}" for r in readouts))
print(f"{'floor: one downscaled view':<36} {format_accuracy(hits['floor'], n_canvas):>22}   (chance {1 / 7:.1%})")

# %%
def standing(a, b):
    """How arm a stands to arm b: 'above' / 'below' where their 95% intervals do not overlap."""
    (la, ha), (lb, hb) = arm_ci[a], arm_ci[b]
    return "above" if la > hb else "below" if ha < lb else "not separable from"


def acc(arm):
    return f"{hits[arm] / n_canvas:.0%}"


T, R, I = encodings
B, A = readouts


def across(x, y, name_y):
    """Encoding x against encoding y (named name_y) in both read-outs, as one phrase."""
    per_block, all_tokens = standing((x, B), (y, B)), standing((x, A), (y, A))
    if per_block == all_tokens:
        return f"{per_block} {name_y} in both read-outs"
    return f"{per_block} {name_y} per block and {all_tokens} it over all tokens"


display(Markdown(
    f"**Pooling.** The tiles score {acc((T, B))} read per tile and {acc((T, A))} read through one mean of all "
    f"their tokens: per-tile reading is {standing((T, B), (T, A))} pooled reading. The interpolated full view "
    f"scores {acc((I, B))} per block and {acc((I, A))} over all tokens: per-block reading is "
    f"{standing((I, B), (I, A))} reading over all tokens. "
    f"**Positions.** With the same context and pooling, the full view with the interpolated table "
    f"({acc((I, B))} per block, {acc((I, A))} over all tokens) is "
    f"{across(I, R, f'the full view with the trained table repeated ({acc((R, B))}, {acc((R, A))})')}. "
    f"**Context.** With the same positions on every block and the same pooling, the tiles encoded alone "
    f"({acc((T, B))}, {acc((T, A))}) are {across(T, R, 'the full view with the trained table repeated')}. "
    f"**Floor.** One downscaled view scores {acc('floor')}; the interpolated full view, with every pixel of the "
    f"canvas, is {standing((I, A), 'floor')} it when read like it (one mean over all tokens)."))

# %%
def separated(a, b):
    """Interval gap: the low end of a's 95% interval minus the high end of b's (> 0: a is above b)."""
    return arm_ci[a][0] - arm_ci[b][1]


def overlap(a, b):
    """How far two 95% intervals overlap (≥ 0: this experiment cannot tell the arms apart)."""
    return min(arm_ci[a][1], arm_ci[b][1]) - max(arm_ci[a][0], arm_ci[b][0])


_ = check.at_least(separated((T, B), (T, A)), 0.0,
                   "pooling: tiles read per tile clear tiles pooled over all tokens (interval gap)")
for r in readouts:
    _ = check.at_least(separated((T, r), (I, r)), 0.0,
                       f"equal pooling ({r}): tiles clear the interpolated full view (interval gap)")
    _ = check.at_least(separated((T, r), (R, r)), 0.0,
                       f"context ({r}): tiles clear the full view with the trained table repeated (interval gap)")
    _ = check.at_least(overlap((I, r), (R, r)), 0.0,
                       f"positions ({r}): interpolated and repeated tables not separable (interval overlap)")

# %% [markdown]
# What the grid says, with the checks above behind each sentence. Pooling matters for the tiles:
# one mean over all of a canvas's tokens dilutes the glyph, and the tiles lose much of their lead
# when read that way. But at equal pooling, in either column, the tiles stay above the
# full-resolution view, so pooling is not the whole gap. The position table is not the gap
# either: the full view with the trained 4×4 table repeated on every block, the very positions
# each tile gets, cannot be told apart from the full view with the interpolated table. What
# separates the arms is the context: the same patches with the same positions, encoded together
# across the canvas instead of tile by tile. An encoder trained only on 32 px views has never
# attended over 8-12 tiles' worth of patches, and that, not the resampled table, is what it cannot
# handle here. So the answer to the notes' question, for *this encoder*: tiling works because it
# keeps the whole input the encoder sees (its size, its attention span, its token statistics) at
# training conditions; swapping the interpolated table for the trained one made no difference
# that 300 canvases can detect. The measurement does
# not test interpolation followed by training at the new size, which is how interpolation is used
# in practice (ViT fine-tunes at higher resolution with an interpolated table; DINOv2 ends its
# pretraining with a short phase at 518 px; cited: ViT paper, arXiv:2010.11929, sec. 3.2, and
# DINOv2, arXiv:2304.07193, sec. 4); tiling works without it, at the price of tokens and of tiles
# that do not see each other. 2D RoPE (Qwen2-VL, and chapter 2's `pos_embed="rope"`) encodes
# relative offsets, so a larger grid only adds offsets beyond those seen in training. (InternViT
# itself has a learned absolute table; chapter 7, §9.)

# %% [markdown] tags=["slide"]
# ## 10. Exercises
#
# Four kinds of exercise: **build** (write a piece from the math and check it against vislab),
# **predict** (commit to a number before you run anything), **debug** (find and fix a planted
# bug) and **ablate** (change one knob, measure, and say what it did). Each has a cell for you
# (tagged `exercise`, with a `TODO`), a self-check that says what was expected, what came and
# what to try, and a hidden solution (click the "…" to reveal it). The self-checks print "not
# attempted" until you fill in the TODO; they never stop the notebook.
#
# **Exercise 1 (build).** Write LLaVA's `select_best_resolution` for `(width, height)` sizes, *with* the cap
# on the effective resolution.

# %% tags=["exercise"]
def my_select_best_resolution(image_size, candidates):
    # TODO: max effective (capped at W*H), then min wasted, then the first candidate
    raise NotImplementedError


# %%
select_cases = [((640, 427), list(LLAVA_NEXT_GRIDS)), ((300, 300), list(LLAVA_NEXT_GRIDS)),
                ((1000, 500), list(LLAVA_NEXT_GRIDS)), ((300, 300), [(336, 672), (672, 336)]),
                ((5000, 900), grid_resolutions(336, 4, 4, max_tiles=9))]
_ = check.exercise("Exercise 1: select_best_resolution", my_select_best_resolution, select_best_resolution,
                   select_cases, hint="s = min(w/W, h/H); effective = min(int(W*s) * int(H*s), W*H); "
                                      "replace the best only on a strictly better (effective, -wasted)")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_select_best_resolution(image_size, candidates):
    W, H = image_size
    best, best_eff, best_waste = None, 0, float("inf")
    for w, h in candidates:
        s = min(w / W, h / H)
        eff = min(int(W * s) * int(H * s), W * H)
        waste = w * h - eff
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (w, h), eff, waste
    return best


_ = check.exercise("Exercise 1: select_best_resolution", solution_select_best_resolution, select_best_resolution,
                   select_cases, solution=True)

# %% [markdown]
# **Exercise 2 (build).** The shape of the feature grid after unpadding: `my_unpadded_shape((Hc, Wc),
# (W, H))`. If the image is wider than the grid ($W/H > W_c/H_c$), rows were padded: the image
# covers `round(H * Wc / W)` rows, and as many rows are removed from the top as from the bottom
# (`(Hc - that) // 2` each). Otherwise the same with columns.

# %% tags=["exercise"]
def my_unpadded_shape(feature_hw, original_size):
    # TODO: return (rows, cols) after unpadding
    raise NotImplementedError


# %%
unpad_cases = [((48, 48), (640, 427)), ((24, 48), (1000, 500)), ((48, 48), (300, 900)), ((24, 72), (3000, 1000)),
               ((48, 24), (333, 1000))]
_ = check.exercise("Exercise 2: unpadded shape", my_unpadded_shape, unpadded_shape, unpad_cases,
                   hint="feature_hw is (rows, cols), original_size is (width, height); remove 2 * pad, not pad")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_unpadded_shape(feature_hw, original_size):
    Hc, Wc = feature_hw
    W, H = original_size
    if W / H > Wc / Hc:
        pad = (Hc - int(round(H * Wc / W, 7))) // 2
        return Hc - 2 * pad, Wc
    pad = (Wc - int(round(W * Hc / H, 7))) // 2
    return Hc, Wc - 2 * pad


_ = check.exercise("Exercise 2: unpadded shape", solution_unpadded_shape, unpadded_shape, unpad_cases,
                   solution=True)

# %% [markdown]
# **Exercise 3 (build).** LLaVA-NeXT's token count for a `(width, height)` image with the default grids:
# thumbnail (24·24) + unpadded tile features + one newline per feature row. Use
# `select_best_resolution` and `unpadded_shape`.

# %% tags=["exercise"]
def my_anyres_tokens(width, height):
    # TODO: 576 + rows * cols + rows, with (rows, cols) the unpadded feature grid
    raise NotImplementedError


# %%
token_cases = [(640, 427), (672, 672), (4032, 3024), (300, 300), (2480, 3508)]
_ = check.exercise("Exercise 3: AnyRes tokens", my_anyres_tokens, lambda w, h: anyres_num_tokens((w, h)).total,
                   token_cases, hint="the stitched grid is (rows * 24, cols * 24) for a canvas of cols x rows tiles")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_anyres_tokens(width, height):
    cw, ch = select_best_resolution((width, height))
    rows, cols = unpadded_shape((ch // 336 * 24, cw // 336 * 24), (width, height))
    return 24 * 24 + rows * cols + rows


_ = check.exercise("Exercise 3: AnyRes tokens", solution_anyres_tokens, lambda w, h: anyres_num_tokens((w, h)).total,
                   token_cases, solution=True)

# %% [markdown]
# **Exercise 4 (predict, then run).** A `1000×400` image is wider than 2:1. Before running anything,
# work out with pen and paper which of LLaVA-NeXT's five canvases it gets, `(width, height)`, and
# how many LLM tokens it costs (thumbnail + tiles + newlines) without unpadding and with it.

# %% tags=["exercise"]
my_canvas_1000x400 = None       # TODO: (width, height) of the canvas select_best_resolution picks
my_tokens_padded = None         # TODO: LLM tokens with unpad=False
my_tokens_unpadded = None       # TODO: LLM tokens with unpad=True (the default)

# %%
wide = (1000, 400)
wide_padded, wide_unpadded = anyres_num_tokens(wide, unpad=False), anyres_num_tokens(wide)
_ = check.predict("Exercise 4: canvas and tokens for a 1000×400 image",
                  None if my_canvas_1000x400 is None else (my_canvas_1000x400, my_tokens_padded, my_tokens_unpadded),
                  (select_best_resolution(wide), wide_padded.total, wide_unpadded.total),
                  explain=f"the {wide_padded.grid[0]}×{wide_padded.grid[1]} canvas keeps the most pixels: the "
                          f"image fills its height, where 2×1 and 2×2 are limited by its width. The stitched grid "
                          f"is {wide_padded.feature_hw[0]}×{wide_padded.feature_hw[1]}; the image covers only "
                          f"{wide_unpadded.feature_hw[1]} of its columns, so unpadding drops "
                          f"{wide_padded.tiles - wide_unpadded.tiles:,} tile tokens (the newlines stay: one per row).")

# %% tags=["solution"] jupyter={"source_hidden": true}
# 1000/400 > 2, so every canvas except 3x1 is limited by the width:
#   672x336 and 672x672: s = 0.672 -> 672 x 268 pixels;  1008x336: s = min(1.008, 0.84) = 0.84 -> 840 x 336.
# 3x1 tiles -> a stitched grid of 24 x 72 features; the image covers 1000 * 24 / 400 = 60 columns.
_ = check.predict("Exercise 4: canvas and tokens for a 1000×400 image",
                  ((1008, 336), 576 + 24 * 72 + 24, 576 + 24 * 60 + 24),
                  (select_best_resolution(wide), wide_padded.total, wide_unpadded.total), solution=True)

# %% [markdown]
# **Exercise 5 (debug).** A colleague's `unpad` below passes on square images, and on every canvas
# it was tried on by hand, yet LLaVA's answers about wide screenshots got worse after it was
# merged. Find the bug and fix it (it is one line).

# %% tags=["exercise"]
def my_fixed_unpad(features, original_size):
    C, Hc, Wc = features.shape                                   # (C, rows*24, cols*24)
    H0, W0 = original_size                                       # TODO: find and fix the bug in this function
    if W0 / H0 > Wc / Hc:                                        # image wider than the grid: padding above and below
        pad = (Hc - int(round(H0 * Wc / W0, 7))) // 2
        return features[:, pad:Hc - pad, :]
    pad = (Wc - int(round(W0 * Hc / H0, 7))) // 2                # taller: padding left and right
    return features[:, :, pad:Wc - pad]


# %%
def feature_grid(rows, cols):
    return torch.arange(2 * rows * cols, dtype=torch.float32).reshape(2, rows, cols)    # (C, rows, cols)


unpad_debug_cases = [(feature_grid(48, 48), (300, 300)), (feature_grid(48, 48), (640, 427)),
                     (feature_grid(24, 48), (1000, 500)), (feature_grid(24, 72), (3000, 1000)),
                     (feature_grid(48, 24), (333, 1000))]
_ = check.debug("Exercise 5: unpad reads the size the wrong way round", my_fixed_unpad, unpad, unpad_debug_cases,
                symptom="a square image comes out right, but a wide image keeps its padded rows and loses "
                        "columns of real features instead.",
                hint="what order does this module use for sizes (section 3)? Compare with the (C, H, W) line.")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_fixed_unpad(features, original_size):
    C, Hc, Wc = features.shape                                   # (C, rows*24, cols*24)
    W0, H0 = original_size                                       # sizes are (width, height), like PIL
    if W0 / H0 > Wc / Hc:
        pad = (Hc - int(round(H0 * Wc / W0, 7))) // 2
        return features[:, pad:Hc - pad, :]
    pad = (Wc - int(round(W0 * Hc / H0, 7))) // 2
    return features[:, :, pad:Wc - pad]


_ = check.debug("Exercise 5: unpad reads the size the wrong way round", solution_fixed_unpad, unpad,
                unpad_debug_cases, solution=True)

# %% [markdown]
# **Exercise 6 (ablate).** Knob: the candidate list. Replace LLaVA-NeXT's five canvases by only
# 1×1 and 2×2 (`SMALL_GRIDS`). (a) Write `ablation_row(size, candidates)` with `vislab.anyres`:
# the canvas chosen, the share of it that carries no image pixel ($(wh - e)/wh$ as in section 7),
# the views the encoder runs (tiles + thumbnail) and the LLM tokens. (b) Then run it on a wide
# `1000×500` image with both lists and answer: do its LLM tokens go `"up"`, `"down"` or stay the
# `"same"` with `SMALL_GRIDS`? (c) How many views does the encoder run for it with `SMALL_GRIDS`?

# %% tags=["exercise"]
SMALL_GRIDS = [(336, 336), (672, 672)]                           # 1x1 and 2x2 tiles of 336 px, (width, height)


def ablation_row(size, candidates):
    # TODO: {"canvas": (w, h), "wasted": (w*h - effective) / (w*h), "views": tiles + 1, "tokens": LLM tokens}
    raise NotImplementedError


my_answer_6b = None     # TODO: "up", "down" or "same": 1000x500's LLM tokens with SMALL_GRIDS vs LLAVA_NEXT_GRIDS
my_answer_6c = None     # TODO: the number of views the encoder runs for 1000x500 with SMALL_GRIDS


# %%
def ablation_reference(size, candidates):
    cw, ch = select_best_resolution(size, candidates)
    effective = score_resolutions(size, [(cw, ch)])[0]["effective"]
    return {"canvas": (cw, ch), "wasted": 1 - effective / (cw * ch), "views": cw // 336 * ch // 336 + 1,
            "tokens": anyres_num_tokens(size, candidates).total}


def trend(before, after):
    return "same" if after == before else "up" if after > before else "down"


ablation_cases = [((1000, 500), LLAVA_NEXT_GRIDS), ((1000, 500), SMALL_GRIDS), ((12000, 2000), SMALL_GRIDS),
                  ((500, 1000), SMALL_GRIDS), ((300, 300), SMALL_GRIDS)]
ref_default, ref_small = ablation_reference((1000, 500), LLAVA_NEXT_GRIDS), ablation_reference((1000, 500), SMALL_GRIDS)
_ = check.exercise("Exercise 6a: the candidate list, measured", ablation_row, ablation_reference, ablation_cases,
                   kind="ablate", hint="select_best_resolution, score_resolutions and anyres_num_tokens all take "
                                       "the candidate list")
_ = check.answer("Exercise 6b: LLM tokens for 1000×500 with only 1×1 and 2×2", my_answer_6b,
                 trend(ref_default["tokens"], ref_small["tokens"]),
                 explain=f"{ref_small['wasted']:.0%} of the 2×2 canvas is padding, but unpadding drops exactly the "
                         "feature rows that saw it, so the language model gets the same grid as on the 2×1 canvas.",
                 hint="think about which feature rows unpad removes")
_ = check.answer("Exercise 6c: encoder views for 1000×500 with only 1×1 and 2×2", my_answer_6c, ref_small["views"],
                 explain=f"the cost moves to the encoder: {ref_small['views']} views instead of "
                         f"{ref_default['views']}, and the extra ones are half padding.")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_ablation_row(size, candidates):
    cw, ch = select_best_resolution(size, candidates)
    effective = score_resolutions(size, [(cw, ch)])[0]["effective"]
    cols, rows = cw // 336, ch // 336
    return {"canvas": (cw, ch), "wasted": (cw * ch - effective) / (cw * ch), "views": cols * rows + 1,
            "tokens": anyres_num_tokens(size, candidates).total}


_ = check.exercise("Exercise 6a: the candidate list, measured", solution_ablation_row, ablation_reference,
                   ablation_cases, kind="ablate", solution=True)
measured = {name: solution_ablation_row((1000, 500), c) for name, c in (("default", LLAVA_NEXT_GRIDS),
                                                                         ("small", SMALL_GRIDS))}
for name, row in measured.items():
    print(f"{name:<8} {row}")
_ = check.answer("Exercise 6b: LLM tokens for 1000×500 with only 1×1 and 2×2",
                 trend(measured["default"]["tokens"], measured["small"]["tokens"]),
                 trend(ref_default["tokens"], ref_small["tokens"]), solution=True)
_ = check.answer("Exercise 6c: encoder views for 1000×500 with only 1×1 and 2×2", measured["small"]["views"],
                 ref_small["views"], solution=True)

# %% [markdown] tags=["slide"]
# ## 11. Summary
#
# - AnyRes picks, from a fixed list of canvases, the one that keeps the most image pixels
#   (capped at the image's own count), then the one that wastes the least; it fits the image
#   without distortion, pads, and cuts 336² tiles; the thumbnail goes first.
# - After encoding, the stitched tile features are unpadded to the image's aspect ratio and a
#   newline token closes every row: $T = 576 + H'W' + H'$ for LLaVA-NeXT.
# - Against InternVL on the same inputs: LLaVA-NeXT's list tops out at 2×2 tiles, it has no pixel
#   shuffle (576 tokens per view against 256), it pads where InternVL stretches.
# - The thumbnail carries the layout, the tiles the detail; the miniature needs both to answer a
#   question about both. Tiles also sidestep position-embedding interpolation: each view has the
#   trained size. With pooling held equal, one full-resolution view stays below the tiles whether
#   its table is interpolated or the trained one repeated: the encoder needs its trained context,
#   and the table alone made no difference that could be detected.

# %% [markdown]
# ## Questionnaire
#
# 1. What does `select_best_resolution` maximise, what breaks a tie, and what breaks a full tie?
# 2. Why is the effective resolution capped at the image's own $W \cdot H$? Which canvas does a
#    small icon get without the cap, and what does that cost?
# 3. AnyRes pads, InternVL stretches. What does each give up?
# 4. Where in the canvas does the resized image sit, and where does an odd leftover pixel row go?
# 5. Why are sizes a trap in this code? Why did the (width, height) against (height, width)
#    mix-up between LLaVA and `transformers` go unnoticed with LLaVA-NeXT's default list?
# 6. What does unpadding remove, and for which images does it remove nothing?
# 7. Why does every row of the stitched feature grid end with a newline token?
# 8. Count the LLM tokens for the section 5 photo: a 2×2 canvas whose stitched grid keeps 32 of
#    its 48 rows after unpadding.
# 9. The tiles hold all the detail. Why keep a thumbnail, and why does it go first?
# 10. LLaVA-NeXT shows fewer views than InternVL on large inputs, yet its token totals are of the
#     same order. Why?
# 11. How does tiling sidestep the interpolation of position embeddings? Tiles against one
#     full-resolution view change three things at once: which, and which arm of section 9
#     isolates each?

# %% [markdown] tags=["solution"]
# **Answers**
#
# 1. The effective resolution: how many of the image's pixels survive the aspect-preserving fit
#    into the canvas. A tie goes to the canvas that wastes the fewest pixels (padding or
#    interpolation); a full tie to the first candidate in the list.
# 2. Upscaling adds no information: past $W \cdot H$ every extra "effective" pixel is
#    interpolated. Without the cap every canvas holds the whole icon and the biggest canvas
#    scores highest, so a tiny image gets 2×2 tiles and many more tokens (section 4) for nothing.
# 3. Padding keeps the aspect ratio, so shapes are not distorted, but spends part of the canvas
#    (and of the encoder's work) on black pixels. Stretching uses every pixel of the canvas but
#    bends the aspect ratio, so a circle may become an ellipse.
# 4. Centred: the limiting side fills the canvas and the padding is split equally on the other
#    side, with the odd row (or column) at the bottom (or right).
# 5. PIL and LLaVA's code write `(width, height)`, tensors and `transformers` `(height, width)`;
#    both orders are pairs of ints, so nothing fails, the result is just wrong for non-square
#    sizes (Exercise 5). LLaVA-NeXT's list is symmetric (2×1 with 1×2, 3×1 with 1×3), so swapping
#    every pair gives the same list; with an asymmetric list the two orders pick different canvases.
# 6. The rows (or columns) of the stitched feature grid that only saw padding, leaving a grid with
#    the image's aspect ratio. It removes nothing when the image's aspect ratio equals the
#    canvas's, e.g. a 2:1 image on the 2×1 canvas (Exercise 6: the same grid comes out of the
#    half-padded 2×2 canvas).
# 7. The language model reads one sequence. After unpadding, the grid's width depends on the
#    image, so without a marker the model could not tell where one row ends and the next begins,
#    and would lose the 2D layout.
# 8. $T = 24^2 + 32 \cdot 48 + 32$: the thumbnail, the unpadded tile features and one newline per
#    remaining row (section 5 prints the same total).
# 9. Each tile is encoded alone, so no tile sees the whole scene; the thumbnail does, at low
#    resolution. Section 8's miniature answers a question about both detail and layout far more
#    often with both. It goes first in LLaVA-NeXT's sequence ("base image" then tiles, row-major);
#    InternVL puts its thumbnail last.
# 10. LLaVA-NeXT spends 576 tokens on every view (no pixel shuffle); InternVL spends 256 per 448 px
#     tile, so more views cost about as many tokens.
# 11. Every tile and the thumbnail have the trained size, so the position table is used on the
#     grid it was trained on and never resampled. The full view changes the positions (resampled
#     table), the context (every patch attends to the whole canvas) and the pooling (one mean of
#     many more tokens). Reading the tiles through one mean of all their tokens, and the full view
#     per 32 px block, controls the pooling; the full view with the trained table repeated on every
#     block has the tiles' positions and differs from them in context only, and from the
#     interpolated full view in the table only. In section 9 pooling costs the tiles a lot, but at
#     equal pooling the tiles still win, the two tables cannot be told apart, and the context
#     makes the gap.

# %% [markdown]
# ## 12. The notes, checked

# %%
rows = []
rows.append("| The notes say | Shown here |")
rows.append("|---|---|")
rows.append("| `select_best_resolution`: max effective resolution, then min waste | sections 4 and 10 ✓, and equal to"
            " transformers' once (height, width) is swapped |")
rows.append("| the notes' code: effective = downscaled width × height | section 4: without LLaVA's cap at W·H, a 300×300"
            f" icon gets 2×2 tiles ({notes_tokens:,} tokens instead of {with_cap:,}) ✗ |")
rows.append("| [thumbnail] + [tile_0_0, tile_0_1, tile_1_0, …] | section 5: thumbnail first, tiles row-major ✓"
            " (InternVL puts it last) |")
rows.append("| position embeddings at higher resolution: interpolate / 2D RoPE / tile | section 9: tiles keep the trained"
            f" grid; at equal pooling tiles {acc((T, B))} vs one interpolated full view {acc((I, B))}; the trained table"
            f" repeated on the full view {acc((R, B))}: context, not the table, makes the gap ✓ |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# **Closing note.** The comparison table (section 7) and the thumbnail experiment (section 8),
# as measured in this run:

# %%
for name, w, h in inputs:
    a, b = table[name]
    print(f"{name:<27} AnyRes {a['grid']:>4}: {a['tokens']:>6,} tokens, {a['wasted']:>4.0%} wasted, {a['kept']:>4.0%} kept"
          f" | InternVL {b['grid']:>4}: {b['tokens']:>6,} tokens, {b['wasted']:>4.0%} wasted, {b['kept']:>4.0%} kept")
print("thumbnail experiment (both questions right): " + ", ".join(f"{k} {v['both']:.1%}" for k, v in results.items()))

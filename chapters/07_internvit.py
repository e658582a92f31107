# %% [markdown] tags=["slide"]
# # Chapter 7 · InternViT: dynamic resolution, pixel shuffle and the MLP projector
#
# A vision encoder is trained at one resolution: InternViT at 448×448, CLIP ViT-L/14 at 224 or
# 336 (cited: InternVL 1.5 and CLIP model cards). A phone photo has 4032×3024 pixels and a scanned page 2480×3508. Squash either into one
# 448² view and small text, thin lines and small objects fall below the size of a patch. InternVL
# 1.5 (Chen et al., *How Far Are We to GPT-4V?*, arXiv:2404.16821) keeps the encoder as it is and
# changes what it is shown: the image is cut into **tiles** of 448² at (close to) its own
# resolution, plus one **thumbnail** of the whole; the features of each tile are compressed 4×
# by **pixel shuffle** and mapped to the language model's width by an **MLP projector**.
#
# **You will**
# 1. follow InternVL's grid choice (closest aspect ratio, its tie rule, the 12-tile cap) on real sizes;
# 2. compute the token counts: 448 px at patch 14 is 1024 tokens, 256 after pixel shuffle;
# 3. prove that pixel shuffle only moves numbers (it has an exact inverse) and find its channel order;
# 4. build the projector (LayerNorm → Linear → GELU → Linear) from 4·C to an LLM width;
# 5. measure, on a ShapeWorld detail task, how much a small encoder gains from tiling against the
#    same encoder on a downscaled image, and against views that cost as many tokens as the tiles
#    but hold no native-resolution detail; and budget tokens for a phone photo, a page and a panorama.
#
# The code lives in `vislab.internvit`; this notebook imports it and shows it.

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

import math

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from scipy.stats import binomtest
from torch.nn import functional as F

import vislab
from vislab import check
from vislab.images import load_photo, to_pil
from vislab.internvit import (MLPProjector, candidate_grids, dynamic_preprocess, find_closest_aspect_ratio,
                              inverse_pixel_shuffle, num_image_tokens, pixel_shuffle, shuffle_tokens, tile_grid,
                              tile_tensor, tokens_per_tile)
from vislab.pretrain import load_or_train
from vislab.recipes import detail
from vislab.runtime import setup
from vislab.shapes import RELATIONS, SHAPES

device = setup(seed=0)

# %% [markdown] tags=["slide"]
# ## 1. Intuition: show the encoder more pixels, not a bigger encoder
#
# Two ways to feed a 640×427 photo to an encoder trained at 448²: squash it into one 448² view
# (LLaVA-1.5 pads it to a square and resizes it to 336²; cited: LLaVA-1.5, arXiv:2310.03744), or cut it into a grid of 448² tiles whose shape matches the
# photo's, and add the squashed view as a thumbnail. The tiles keep the detail, the thumbnail
# keeps the whole scene in one view. Each view costs $(448/14)^2 = 1024$ ViT tokens, so the
# price is paid in tokens, which is why InternVL also compresses every view to 256 tokens before
# the language model reads it.

# %%
from vislab.widgets.tiling import internvl_figure

photo = load_photo("china")                                   # PIL, 640×427
internvl_figure(photo, max_num=12)
plt.show()

# %% [markdown]
# ## 2. The math
#
# **Grid choice.** For an image of $W \times H$ pixels and a tile side $S$ (448), InternVL
# considers every grid of $i$ columns and $j$ rows with $n_{\min} \le ij \le n_{\max}$ (1 and 12),
# and picks the one whose aspect ratio is closest to the image's:
#
# $$ (i, j) = \arg\min_{(i,j)} \left| \frac{W}{H} - \frac{i}{j} \right| .$$
#
# Grids with the same ratio (1×1, 2×2, 3×3) tie exactly. Scanning the candidates by increasing
# $ij$, a tie moves to the larger grid only if $WH > \tfrac12 S^2 ij$: the image must have at
# least half the pixels of that grid, so a small image is not blown up into many tiles. The
# image is then resized to $(iS, jS)$ (stretched, not padded), cut row-major into $ij$ tiles,
# and a thumbnail (the whole image at $S \times S$) is appended when $ij > 1$.
#
# **Tokens.** A tile gives $(S/P)^2$ patch tokens; pixel shuffle with factor $r = 2$ merges each
# $2\times2$ block into one token, so the language model receives
#
# $$ T = \left(ij + [ij>1]\right) \cdot \left(\frac{S}{rP}\right)^2 = (ij + 1)\cdot 256 \quad (S{=}448,\ P{=}14). $$
#
# **Pixel shuffle** (space-to-depth). For features $x \in \mathbb{R}^{W \times H \times C}$ on the
# patch grid, the output $y \in \mathbb{R}^{W/r \times H/r \times r^2C}$ is
#
# $$ y[u, v, (a r + b) C + c] = x[r u + a,\ r v + b,\ c], \qquad a, b \in \{0, \dots, r-1\}. $$
#
# Every input number lands in exactly one output slot: the map is a permutation, hence invertible.
#
# **Projector** (`mlp1` in InternVL): $h = W_2\,\mathrm{GELU}(W_1\,\mathrm{LN}(y) + b_1) + b_2$ with
# $W_1 \in \mathbb{R}^{D \times 4C}$, $W_2 \in \mathbb{R}^{D \times D}$, $D$ the LLM's width.

# %% [markdown] tags=["slide"]
# ## 3. The code
#
# The candidate grids, the grid choice and the tiling, as in InternVL's `dynamic_preprocess`:

# %%
vislab.show_source(candidate_grids)
vislab.show_source(find_closest_aspect_ratio)

# %%
vislab.show_source(dynamic_preprocess)

# %% [markdown]
# Pixel shuffle and its inverse are one reshape, one permutation and one reshape each; the
# shape comments are the contract. `version="v1"` reproduces InternVL's first release, which
# forgot to swap the axes back and so handed the LLM a transposed grid.

# %%
vislab.show_source(pixel_shuffle)
vislab.show_source(inverse_pixel_shuffle)

# %%
vislab.show_source(MLPProjector)

# %% [markdown] tags=["slide"]
# ## 4. Shape checks: 1024 → 256 tokens, and back
#
# InternViT-300M has width $C = 1024$; InternVL2-1B's language model (Qwen2-0.5B) has width
# $D = 896$ (cited: the InternVL2-1B and Qwen2-0.5B model cards). One 448² tile, through the whole path:

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
C, D = 1024, 896
vit_tokens = torch.randn(1, 1 + 32 * 32, C)          # (B, CLS + N, C): what InternViT returns for one tile
patches = vit_tokens[:, 1:]                          # (1, 1024, C): InternVL drops the CLS token
grid = patches.reshape(1, 32, 32, C)                 # (B, W, H, C) in InternVL's naming (rows first)
shuffled = pixel_shuffle(grid)                       # (1, 16, 16, 4C)
projector = MLPProjector(vision_dim=C, llm_dim=D)
llm_tokens = projector(shuffled.reshape(1, -1, 4 * C))   # (1, 256, D)
print("ViT patch tokens      ", tuple(patches.shape))
print("as a grid             ", tuple(grid.shape))
print("after pixel shuffle   ", tuple(shuffled.shape))
print("LLM tokens            ", tuple(llm_tokens.shape))
print("tokens per tile       ", tokens_per_tile(448, 14, 0.5), "(= 1024 / 4)")
print("projector parameters  ", f"{sum(p.numel() for p in projector.parameters()):,}")
_ = check.equal(tokens_per_tile(448, 14), 256, "448 px at patch 14: 1024 patch tokens → 256 after pixel shuffle")

# %% [markdown]
# The projector's parameters are $4096 \cdot 896 + 896^2$ plus biases and the LayerNorm: small next
# to the encoder's 300 M (cited: InternVL 1.5 paper, arXiv:2404.16821, InternViT-300M; counted in section 9). Now the claim that pixel shuffle "compresses without losing
# anything": it is a permutation, so its inverse gives back every number, bit for bit. The
# channel layout follows the formula above, and PyTorch's own space-to-depth
# (`F.pixel_unshuffle`, the name PyTorch uses for this direction) holds the same numbers in a
# different channel order ($c\,r^2 + a r + b$ instead of $(a r + b) C + c$).

# %%
# NBVAL_CHECK_OUTPUT
check.equal(inverse_pixel_shuffle(shuffled), grid, "inverse_pixel_shuffle(pixel_shuffle(x)) == x")
check.equal(shuffled[0, 3, 5, :C], grid[0, 6, 10], "channels 0..C-1 of output (3, 5) = input (6, 10)")
check.equal(shuffled[0, 3, 5, C:2 * C], grid[0, 6, 11], "channels C..2C-1 = input (6, 11), its right neighbour")
check.equal(shuffled[0, 3, 5, 2 * C:3 * C], grid[0, 7, 10], "channels 2C..3C-1 = input (7, 10), the one below")
torch_order = F.pixel_unshuffle(grid.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)    # (1, 16, 16, 4C)
same_numbers = torch_order.reshape(1, 16, 16, C, 4).transpose(-1, -2).reshape(1, 16, 16, 4 * C)
check.equal(same_numbers, shuffled, "F.pixel_unshuffle holds the same numbers, channels reordered")
_ = check.equal(pixel_shuffle(grid, version="v1"), shuffled.transpose(1, 2), "v1 = v2 transposed")

# %% [markdown]
# A grid whose side is odd cannot be split into 2×2 blocks. InternVL's code (and `transformers`'
# port of it, whose check `height % 0.5` is always 0) fails there with an opaque reshape error;
# vislab says what is wrong and what would work:

# %%
# NBVAL_CHECK_OUTPUT
try:
    pixel_shuffle(torch.zeros(1, 7, 7, 64))            # 112 px at patch 16: a 7×7 grid
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# If `transformers` is installed (it is for the course's tests; Binder installs only the course's
# requirements), the same numbers come out of its InternVL port and of its GOT-OCR2 image
# processor, which implements `dynamic_preprocess`:

# %%
try:
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas
    from transformers.models.internvl.modeling_internvl import InternVLModel
except ImportError:
    print("transformers is not installed: comparison skipped")
else:
    check.equal(InternVLModel.pixel_shuffle(None, grid, 0.5), shuffled, "transformers' InternVL pixel_shuffle")
    sizes = [(640, 427), (4032, 3024), (2480, 3508), (12000, 2000), (896, 448), (1792, 896), (500, 400)]
    ours = [tile_grid(w, h) for w, h in sizes]
    theirs = [tuple(get_optimal_tiled_canvas((h, w), (448, 448), 1, 12)) for w, h in sizes]
    check.equal(ours, theirs, "grids chosen for 7 image sizes, vislab vs transformers")

# %% [markdown] tags=["slide"]
# ## 5. The grid choice, step by step
#
# For the 640×427 photo (aspect 1.499): every candidate grid, its aspect ratio and the distance
# to the image's. 3×2 (ratio 1.5) wins. Note that 6 tiles of 448² are 1344×896 pixels: the photo
# is *upscaled* (last line), because it has more than half the pixels of that grid.

# %%
# NBVAL_CHECK_OUTPUT
W, H = photo.size
ranked = sorted(candidate_grids(1, 12), key=lambda g: abs(W / H - g[0] / g[1]))
print(f"image {W}×{H}, aspect {W / H:.3f}")
print(f"{'grid':>6} {'tiles':>5} {'ratio':>6} {'|diff|':>7}")
for i, j in ranked[:6]:
    print(f"{f'{i}x{j}':>6} {i * j:>5} {i / j:>6.3f} {abs(W / H - i / j):>7.3f}")
print("chosen:", tile_grid(W, H), "→ resized to", (tile_grid(W, H)[0] * 448, tile_grid(W, H)[1] * 448),
      f"= upscaled {tile_grid(W, H)[0] * 448 / W:.1f}× in width, {tile_grid(W, H)[1] * 448 / H:.1f}× in height")

# %% [markdown]
# The tie rule at work: 896×448 and 1792×896 have the same aspect ratio 2, which 2×1 and 4×2 match
# exactly. The small image keeps 2 tiles; the large one has more than half the pixels of 4×2
# ($\tfrac12 \cdot 448^2 \cdot 8 = 802{,}816$) and gets 8. A square image moves from 1×1 to 2×2 once it has more than
# $\tfrac12 \cdot 448^2 \cdot 4 = 401{,}408$ pixels ($634^2$, not $633^2$), and to 3×3 above
# $\tfrac12 \cdot 448^2 \cdot 9 = 903{,}168$ ($951^2$).
#
# One oddity: InternVL builds the candidate list as a Python `set` and sorts it by tile count, so
# grids with the same count keep the set's order, which is (1, 2) before (2, 1). That order
# matters only when two mirrored grids tie and (1, 1) is excluded (`min_num > 1`): then a
# 500×400 *landscape* photo gets a *portrait* 1×2 grid, because the tie rule keeps the first of the
# two unless the image is large. vislab reproduces this exactly.

# %%
# NBVAL_CHECK_OUTPUT
for w, h in [(896, 448), (1792, 896), (633, 633), (634, 634), (950, 950), (951, 951), (4000, 4000)]:
    print(f"{w}×{h} → grid {tile_grid(w, h)}")
print("min_num=2, max_num=2 candidates:", candidate_grids(2, 2))
print("500×400 with min_num=2 →", tile_grid(500, 400, min_num=2, max_num=2), "(portrait grid for a landscape photo)")
print("600×480 with min_num=2 →", tile_grid(600, 480, min_num=2, max_num=2))

# %% [markdown] tags=["slide"]
# ## 6. Token budgets against the 12-tile cap
#
# How many tokens do typical inputs cost, and how much of their resolution survives? "Kept" is the
# linear scale of the tiles relative to the original (100% = native resolution); "tiles for
# native" is the number of 448² tiles that would cover the image without downscaling, i.e. what
# the cap would have to be.

# %%
# NBVAL_CHECK_OUTPUT
inputs = [("phone photo 12 MP", 4032, 3024), ("document page A4 @300 dpi", 2480, 3508),
          ("panorama 6:1", 12000, 2000), ("screenshot 1080p", 1920, 1080),
          ("receipt", 800, 3000), ("sklearn photo", 640, 427), ("icon", 256, 256)]
print(f"{'input':<27} {'size':>11} {'grid':>5} {'views':>5} {'ViT tok':>8} {'LLM tok':>8} {'kept':>6}"
      f" {'tiles for native':>17} {'LLM tok then':>13}")
budget = {}
for name, w, h in inputs:
    i, j = tile_grid(w, h)
    views = i * j + (1 if i * j > 1 else 0)
    kept = min(i * 448 / w, j * 448 / h, 1.0)
    native = math.ceil(w / 448) * math.ceil(h / 448)
    budget[name] = dict(w=w, h=h, grid=(i, j), views=views, kept=kept, native=native, vit=views * 1024,
                        llm=num_image_tokens(w, h), native_llm=(native + (native > 1)) * 256)
    print(f"{name:<27} {f'{w}x{h}':>11} {f'{i}x{j}':>5} {views:>5} {views * 1024:>8,} {num_image_tokens(w, h):>8,}"
          f" {kept:>6.0%} {native:>17} {(native + (native > 1)) * 256:>13,}")

# %% [markdown]
# What the table says, row by row (the sentences are built from the table's numbers):

# %%
phone, page, pano = budget["phone photo 12 MP"], budget["document page A4 @300 dpi"], budget["panorama 6:1"]
small, icon = budget["sklearn photo"], budget["icon"]
a4 = page["w"] / page["h"]
display(Markdown(
    f"Under the cap of 12, the phone photo is seen at {phone['kept']:.0%} of its resolution "
    f"({phone['grid'][0]}×{phone['grid'][1]} tiles + thumbnail, {phone['llm']:,} LLM tokens); native resolution "
    f"would take {phone['native']} tiles and {phone['native_llm']:,} tokens. The A4 page (aspect {a4:.2f}) gets a "
    f"{page['grid'][0]}×{page['grid'][1]} grid, whose ratio {2 / 3:.2f} is closer than 3×4's {3 / 4:.2f} "
    f"({abs(a4 - 2 / 3):.3f} against {abs(a4 - 3 / 4):.3f}), and keeps only {page['kept']:.0%}: small print scanned "
    f"at 300 dpi does not survive that. The 6:1 panorama can only get {pano['grid'][0]}×{pano['grid'][1]} and keeps "
    f"{pano['kept']:.0%} of its width. Small inputs go the other way: the 640×427 photo is *upscaled* "
    f"{small['grid'][0] * 448 / small['w']:.1f}× onto {small['grid'][0] * small['grid'][1]} tiles ({small['llm']:,} "
    f"tokens for {small['w'] * small['h'] / 1e6:.2f} megapixels), and the icon fills one tile. Without pixel shuffle "
    f"every count in the \"LLM tok\" column would be 4× larger (the \"ViT tok\" column): {phone['vit']:,} tokens "
    f"for one phone photo."))

# %% [markdown] tags=["slide"]
# ## 7. Experiment: tiles against a downscaled image
#
# A miniature of the whole pipeline, at the course's scale: `MiniInternVL` is a ViT for 32×32
# views (patch 8: a 4×4 grid, 16 tokens), pixel shuffle (4 tokens of width 256) and an MLP
# projector, with one linear head per question on the mean token of a view. Each canvas is a
# ShapeWorld scene with a small white **glyph** (one of 7 shapes, about 10 px across) pasted away
# from a big shape. The question: *which shape is the glyph?* Canvas sizes vary (128×96, 96×128,
# 128×64, 64×128, 96×96, 192×64), and InternVL's rule with 32 px tiles maps each onto a grid of
# whole tiles, from 3×3 to 6×2.

# %%
canvases = detail.make_canvases(3, (128, 96), seed=7, split="test")
fig, axes = plt.subplots(1, 4, figsize=(13, 2.8), gridspec_kw={"width_ratios": [1.4, 1.4, 1.4, 0.5]})
for ax, img, g in zip(axes[:3], canvases.images, canvases.glyph):
    cols, rows = tile_grid(128, 96, 1, 12, 32)
    ax.imshow(img.permute(1, 2, 0))
    for c in range(1, cols):
        ax.axvline(c * 32 - 0.5, color="yellow", lw=0.8)
    for r in range(1, rows):
        ax.axhline(r * 32 - 0.5, color="yellow", lw=0.8)
    ax.set_title(f"glyph: {SHAPES[g]}  ({cols}×{rows} tiles of 32²)", fontsize=9)
    ax.axis("off")
axes[3].imshow(detail.views_for(canvases.images[0], "downscale")[0].permute(1, 2, 0))
axes[3].set_title("downscaled\nto 32²", fontsize=9)
axes[3].axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# The encoder is trained once (`python -m vislab.pretrain detail_glyphs`; too long for a notebook,
# so the course ships the result; its training time is printed below) on 32×32 views of both kinds: random crops at
# native resolution, and whole canvases downscaled to 32². It has therefore seen downscaled
# canvases as often as it needed to; what it cannot do is see detail that is no longer there.
# Each head has an extra "none" class for views without a glyph; a pipeline answers with the
# view that is most confident about a shape. Set `USE_CHECKPOINT = False` to train it here instead.

# %%
USE_CHECKPOINT = True
model, meta = load_or_train("detail_glyphs", device="cpu", use_checkpoint=USE_CHECKPOINT)
m = meta["metrics"]
print(f"trained for {m['steps']:,} steps in {meta['seconds']:.0f} s ({meta['seconds'] / 60:.0f} minutes) "
      f"with `{meta['command']}`")
print(f"glyph accuracy on the recipe's own check canvases: downscaled {m['downscale_glyph']:.0%}, "
      f"InternVL tiles {m['internvl_glyph']:.0%}")
print(f"encoder parameters: {sum(p.numel() for p in model.parameters()):,}")

# %%
vislab.show_source(detail.read_views)

# %% [markdown]
# Three pipelines, the same weights: **downscale** (one 32² view: InternVL with `max_num=1`),
# **tiles** (InternVL's tiles, no thumbnail) and **tiles + thumbnail** (InternVL as released), on
# 100 fresh test canvases of each size.
#
# The comparison has a confound: the tiled pipelines show the model more *detail*, but also more
# *views*, so more LLM tokens and more chances for "the most confident view wins". Two
# **equal-token controls**, with the same weights again, give the model exactly as many views as
# tiles + thumbnail, without the native-resolution detail: **jittered copies** (the thumbnail,
# then the whole canvas again and again, each time with a few pixels cut from its borders at
# random, downscaled to 32²: the kind of view the encoder was trained on) and **blurred tiles**
# (InternVL's own tiles + thumbnail of the canvas after a round trip through one 32² view: the
# same grid and layout, the detail of the downscaled view). If the tiles' gain were the extra
# tokens, the controls would have it too.

# %%
vislab.show_source(detail.equal_token_views)

# %%
test_sets = {size: detail.make_canvases(100, size, seed=2024, split="test") for size in detail.CANVAS_SIZES}
pipelines = {"downscale": "downscale", "tiles": "internvl_tiles", "tiles + thumbnail": "internvl"}
controls = {"jittered copies": "jitter", "blurred tiles": "blur"}                # as many views as "internvl"
results = {name: {size: detail.evaluate(model, test, pipe) for size, test in test_sets.items()}
           for name, pipe in pipelines.items()}
results |= {name: {size: detail.evaluate_equal_tokens(model, test, control, "internvl", seed=2024)
                   for size, test in test_sets.items()} for name, control in controls.items()}
columns = list(results)                                                            # 3 pipelines, 2 controls
glyph_acc = {name: sum(r["glyph"] for r in per.values()) / len(per) for name, per in results.items()}
n_test = sum(len(t) for t in test_sets.values())                                  # 600 canvases
glyph_ci = {name: binomtest(round(acc * n_test), n_test).proportion_ci(0.95, method="wilson")
            for name, acc in glyph_acc.items()}                                     # 95% Wilson intervals
tokens = {name: {size: r["views"] * 4 for size, r in per.items()} for name, per in results.items()}   # LLM tokens

print(f"{'canvas':>9} {'grid':>5} " + " ".join(f"{name:>17}" for name in columns))
for size in detail.CANVAS_SIZES:
    grid_ = tile_grid(*size, 1, 12, 32)
    print(f"{f'{size[0]}x{size[1]}':>9} {f'{grid_[0]}x{grid_[1]}':>5} "
          + " ".join(f"{results[name][size]['glyph']:>17.0%}" for name in columns))
print(f"{'all':>15} " + " ".join(f"{glyph_acc[name]:>17.1%}" for name in columns))
print(f"{'95% interval':>15} " + " ".join(f"{f'{glyph_ci[n].low:.1%}-{glyph_ci[n].high:.1%}':>17}" for n in columns))
print(f"{'LLM tokens':>15} " + " ".join(
    f"{sum(tokens[name].values()) / len(test_sets):>17.1f}" for name in columns))

fig, ax = plt.subplots(figsize=(7.5, 3))
err = [[100 * (glyph_acc[n] - glyph_ci[n].low) for n in columns], [100 * (glyph_ci[n].high - glyph_acc[n]) for n in columns]]
ax.bar([n.replace(" ", "\n", 1) for n in columns], [100 * glyph_acc[n] for n in columns], yerr=err, capsize=4,
       color=["#999", "#4a90d9", "#1f5fa8", "#d9a04a", "#b5651d"])
ax.axhline(100 / 7, color="k", ls=":", lw=1, label="chance (7 shapes)")
ax.set_ylabel("glyph accuracy (%)")
ax.set_ylim(0, 100)
ax.set_title("same encoder, different views (95% intervals); orange: as many tokens as tiles + thumbnail",
             fontsize=9)
ax.legend(loc="upper left", fontsize=8)
plt.show()

# %%
gain = glyph_acc["tiles + thumbnail"] - glyph_acc["downscale"]
_ = check.at_least(gain, 0.20, "dynamic tiling beats the downscaled image by (accuracy points / 100)")
_ = check.at_least(glyph_ci["tiles + thumbnail"].low - glyph_ci["downscale"].high, 0.0,
                   "the two 95% intervals do not overlap (accuracy points / 100)")
thumb_tie = glyph_ci["tiles"].low <= glyph_acc["tiles + thumbnail"] <= glyph_ci["tiles"].high
tiled_tokens = [t for name in ("tiles", "tiles + thumbnail") for t in tokens[name].values()]
display(Markdown(
    f"The downscaled view holds the glyph in 2-4 pixels: the encoder is right "
    f"{glyph_acc['downscale']:.0%} of the time (95% interval {glyph_ci['downscale'].low:.0%}-"
    f"{glyph_ci['downscale'].high:.0%}; chance is {1 / len(SHAPES):.0%}; a few pixels still betray how much ink a "
    f"shape has, a ring from a cross). In its tiles, at native resolution, the same encoder is right "
    f"{glyph_acc['tiles + thumbnail']:.0%} of the time ({glyph_ci['tiles + thumbnail'].low:.0%}-"
    f"{glyph_ci['tiles + thumbnail'].high:.0%}). The price is in the last row: "
    f"{tokens['downscale'][(128, 96)]:.0f} LLM tokens for the downscaled view against "
    f"{min(tiled_tokens):.0f}-{max(tiled_tokens):.0f} for the tiles. "
    + ("Tiles with and without the thumbnail are a tie here (the difference lies inside the 95% interval): "
       if thumb_tie else "The thumbnail changes the result beyond the interval here: ")
    + "this is a detail question, and chapter 9 measures what the thumbnail adds to a layout question."))

# %% [markdown]
# And the confound: tiles + thumbnail against the two equal-token controls.

# %%
same_tokens = all(tokens[n] == tokens["tiles + thumbnail"] for n in controls)
_ = check.equal(same_tokens, True, "the controls give the model as many LLM tokens as tiles + thumbnail, per size")
for n in controls:
    _ = check.at_least(glyph_ci["tiles + thumbnail"].low - glyph_ci[n].high, 0.0,
                       f"tiles + thumbnail beat the equal-token control '{n}': the 95% intervals do not overlap "
                       "(accuracy points / 100)")
control_gap = {n: glyph_acc["tiles + thumbnail"] - glyph_acc[n] for n in controls}
beaten = [n for n in controls if glyph_ci["tiles + thumbnail"].low > glyph_ci[n].high]
down_ci = glyph_ci["downscale"]


def overlaps_downscale(n):
    return glyph_ci[n].low <= down_ci.high and down_ci.low <= glyph_ci[n].high


def versus_downscale(n):
    if overlaps_downscale(n):
        return "the interval overlaps the downscaled view's"
    return "above the downscaled view" if glyph_acc[n] > glyph_acc["downscale"] else "below the downscaled view"


extra = max(glyph_acc[n] - glyph_acc["downscale"] for n in controls)
tokens_alone = ("the extra tokens alone buy nothing measurable here" if all(map(overlaps_downscale, controls))
                else f"the extra tokens alone buy at most {100 * extra:.0f} points over the downscaled view")


display(Markdown(
    f"With exactly as many views as tiles + thumbnail (so as many LLM tokens: "
    f"{sum(tokens['tiles + thumbnail'].values()) / len(test_sets):.1f} per canvas on average) but no "
    "native-resolution detail, "
    + " and ".join(f"the {n} are right {glyph_acc[n]:.0%} of the time ({glyph_ci[n].low:.0%}-{glyph_ci[n].high:.0%}; "
                   f"{versus_downscale(n)})" for n in controls) + ". "
    + (f"Tiles + thumbnail beat both by {100 * min(control_gap.values()):.0f}-{100 * max(control_gap.values()):.0f} "
       f"points, with intervals that do not overlap: {tokens_alone}; the gain of the tiles is the detail they "
       "keep."
       if len(beaten) == len(controls) else
       f"Tiles + thumbnail do not beat {' or '.join(n for n in controls if n not in beaten)} beyond the 95% "
       "intervals: part of the tiles' gain comes from the extra views, not from the detail.")
    + (" (The blurred tiles are also a kind of view the encoder never trained on, which may cost them a little.)"
       if glyph_acc["blurred tiles"] < glyph_acc["downscale"] else "")))

# %% [markdown] tags=["slide"]
# ## 8. The tiling viewer
#
# Pick a photo (or upload one of your own with **your image**), stretch it to any width and
# height, and move the tile cap: the grid drawn on the image, the tiles (row-major) and the
# thumbnail, and the token counts before and after pixel shuffle change together. Try 4032×3024 with caps 12 and 40, a 4096×512 strip, and a 500×500
# image (one tile, no thumbnail). (Without a live kernel you see the default view as a picture.)

# %%
# NBVAL_IGNORE_OUTPUT
from vislab.widgets.tiling import tiling_viewer

viewer = tiling_viewer({"china": photo, "flower": load_photo("flower"),
                        "ShapeWorld canvas": to_pil(test_sets[(128, 96)].images[0]).resize((1024, 768))})

# %% [markdown] tags=["slide"]
# ## 9. InternViT itself: open weights, a learned position table
#
# The notes' comparison table marks InternViT as "proprietary". It is not: OpenGVLab released
# InternViT-6B and InternViT-300M (e.g. `OpenGVLab/InternViT-300M-448px` and
# `OpenGVLab/InternViT-6B-448px-V1-5` on the Hugging Face Hub) under the MIT licence, with the
# InternVL code, and `transformers` ships the architecture as `InternVLVisionModel`. Its default
# configuration is InternViT-300M-448px; counting its parameters needs no download (the model is
# built on PyTorch's "meta" device, which allocates nothing):

# %%
try:
    from transformers.models.internvl.configuration_internvl import InternVLVisionConfig
    from transformers.models.internvl.modeling_internvl import InternVLVisionModel
except ImportError:
    n_params = None
    print("transformers is not installed: skipped")
else:
    cfg = InternVLVisionConfig()
    with torch.device("meta"):
        internvit = InternVLVisionModel(cfg)
    n_params = sum(p.numel() for p in internvit.parameters())
    pos = internvit.embeddings.position_embeddings
    print(f"InternViT-300M: width {cfg.hidden_size}, depth {cfg.num_hidden_layers}, heads {cfg.num_attention_heads}, "
          f"{cfg.image_size[0]} px, patch {cfg.patch_size[0]}: {n_params / 1e6:.1f} M parameters")
    print(f"position embedding: a learned table of shape {tuple(pos.shape)} (CLS + 32·32 patches)")
    check.at_most(abs(n_params - 304e6), 1e6, "InternViT-300M has ~304 M parameters, the size of ViT-L/14")

# %% [markdown]
# The same check answers a slip in the notes' answer on position embeddings, which lists InternViT
# among the 2D RoPE models: InternViT has a learned *absolute* table of 1025 positions, resampled
# bicubically when the grid changes (`_get_pos_embed` in InternVL's code,
# `interpolate_pos_encoding` in `transformers`). Qwen2-VL is the one that uses 2D rotary
# embeddings. With tiling the question mostly disappears: every tile is 448², so the table is used
# at the grid it was trained on; chapter 9 measures this from the tiling side.
#
# Online (optional): the licence and the size, from the Hub itself.

# %% tags=["online"]
from vislab.online import hub_available

if hub_available("InternViT-300M's licence and parameter count, read from its Hub page"):
    from huggingface_hub import model_info

    info = model_info("OpenGVLab/InternViT-300M-448px", files_metadata=True)
    print("licence:", info.card_data.get("license") if info.card_data else None)
    print("safetensors parameters:", info.safetensors.total if info.safetensors else "n/a")

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
# **Exercise 1 (build).** Write InternVL's grid choice: `my_tile_grid(width, height, max_num)` returns
# `(columns, rows)` for a 448 px tile and `min_num = 1`. Scan `candidate_grids(1, max_num)` in
# order; keep a strictly closer ratio; on an exact tie move to the new grid only if
# `width * height > 0.5 * 448 * 448 * i * j`.

# %% tags=["exercise"]
def my_tile_grid(width, height, max_num):
    # TODO: return (i, j), the grid InternVL picks
    raise NotImplementedError


# %%
grid_cases = [(640, 427, 12), (896, 448, 12), (1792, 896, 12), (634, 634, 12), (12000, 2000, 12), (4032, 3024, 6),
              (300, 900, 12)]
_ = check.exercise("Exercise 1: InternVL's grid", my_tile_grid, lambda w, h, n: tile_grid(w, h, 1, n), grid_cases,
                   hint="compare |W/H - i/j|; a tie (==) moves on only for an image with more than half "
                        "the grid's pixels")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_tile_grid(width, height, max_num):
    best, best_diff = (1, 1), float("inf")
    for i, j in candidate_grids(1, max_num):
        diff = abs(width / height - i / j)
        if diff < best_diff:
            best, best_diff = (i, j), diff
        elif diff == best_diff and width * height > 0.5 * 448 * 448 * i * j:
            best = (i, j)
    return best


_ = check.exercise("Exercise 1: InternVL's grid", solution_tile_grid, lambda w, h, n: tile_grid(w, h, 1, n),
                   grid_cases, solution=True)

# %% [markdown]
# **Exercise 2 (build).** Write pixel shuffle with factor 2 for `(B, W, H, C)` features, InternVL v2's
# channel order: `out[n, u, v, (2a + b)C + c] = x[n, 2u + a, 2v + b, c]`. Hint: split each spatial
# axis into (size/2, 2), move the two 2's next to the channels, flatten.

# %% tags=["exercise"]
def my_pixel_shuffle(x):
    # TODO: (B, W, H, C) -> (B, W/2, H/2, 4C)
    raise NotImplementedError


# %%
shuffle_cases = [torch.randn(2, 4, 6, 3), torch.randn(1, 8, 8, 5), torch.randn(1, 2, 2, 1)]
_ = check.exercise("Exercise 2: pixel shuffle", my_pixel_shuffle, pixel_shuffle, shuffle_cases,
                   hint="reshape to (B, W/2, 2, H/2, 2, C), permute to (B, W/2, H/2, 2, 2, C), reshape")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_pixel_shuffle(x):
    B, W, H, C = x.shape
    x = x.reshape(B, W // 2, 2, H // 2, 2, C)        # (B, W/2, a, H/2, b, C)
    x = x.permute(0, 1, 3, 2, 4, 5)                  # (B, W/2, H/2, a, b, C)
    return x.reshape(B, W // 2, H // 2, 4 * C)


_ = check.exercise("Exercise 2: pixel shuffle", solution_pixel_shuffle, pixel_shuffle, shuffle_cases, solution=True)

# %% [markdown]
# **Exercise 3 (build).** How many tokens does InternVL's language model receive for a `width × height`
# image with a cap of `max_num` tiles (448 px tiles, patch 14, pixel shuffle 0.5, thumbnail when
# there is more than one tile)? Use `tile_grid` for the grid.

# %% tags=["exercise"]
def my_num_image_tokens(width, height, max_num):
    # TODO: (tiles + thumbnail) * tokens per tile
    raise NotImplementedError


# %%
token_cases = [(448, 448, 12), (4032, 3024, 12), (2480, 3508, 12), (1000, 1000, 1), (12000, 2000, 24)]
_ = check.exercise("Exercise 3: token count", my_num_image_tokens, lambda w, h, n: num_image_tokens(w, h, max_num=n),
                   token_cases, hint="a single tile has no thumbnail; a tile is (448 / 14)² / 4 tokens")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_num_image_tokens(width, height, max_num):
    i, j = tile_grid(width, height, 1, max_num)
    views = i * j + (1 if i * j > 1 else 0)
    return views * (448 // 14) ** 2 // 4


_ = check.exercise("Exercise 3: token count", solution_num_image_tokens,
                   lambda w, h, n: num_image_tokens(w, h, max_num=n), token_cases, solution=True)

# %% [markdown]
# **Exercise 4 (predict, then run).** Two images with the same aspect ratio 2:1, `1000×500` and
# `2000×1000`, go through InternVL with the default cap (`max_num=12`, thumbnail on). Before
# running anything, work out with pen and paper the grid `(columns, rows)` each one gets and the
# number of LLM tokens each one costs. (Which grids have ratio exactly 2 under the cap, and what
# does the tie rule do with them?)

# %% tags=["exercise"]
my_grid_1000x500 = None       # TODO: (columns, rows) for 1000×500
my_tokens_1000x500 = None     # TODO: LLM tokens for 1000×500
my_grid_2000x1000 = None      # TODO: (columns, rows) for 2000×1000
my_tokens_2000x1000 = None    # TODO: LLM tokens for 2000×1000

# %%
twins = [(1000, 500), (2000, 1000)]
twin_grids = [tile_grid(w, h) for w, h in twins]
twin_tokens = [num_image_tokens(w, h) for w, h in twins]
exact = [g for g in candidate_grids(1, 12) if g[0] == 2 * g[1]]
tie_bar = [0.5 * 448 ** 2 * g[0] * g[1] for g in exact]
my_prediction_4 = (None if my_grid_1000x500 is None else
                   (my_grid_1000x500, my_tokens_1000x500, my_grid_2000x1000, my_tokens_2000x1000))
why_4 = (f"the grids with ratio exactly 2 under the cap are {' and '.join(f'{i}×{j}' for i, j in exact)}, "
         f"a tie. The larger one is taken only above half its pixels, "
         f"{tie_bar[1]:,.0f}: 1000×500 has {1000 * 500:,} and keeps "
         f"{twin_grids[0][0]}×{twin_grids[0][1]}, 2000×1000 has {2000 * 1000:,} and moves to "
         f"{twin_grids[1][0]}×{twin_grids[1][1]}. With the thumbnail that is "
         f"{twin_tokens[0] // 256} and {twin_tokens[1] // 256} views of 256 tokens.")
_ = check.predict("Exercise 4: grids and tokens for 1000×500 and 2000×1000", my_prediction_4,
                  (twin_grids[0], twin_tokens[0], twin_grids[1], twin_tokens[1]), explain=why_4)

# %% tags=["solution"] jupyter={"source_hidden": true}
# Ratio 2 under the cap: 2x1 (2 tiles) and 4x2 (8 tiles); 6x3 would be 18 tiles. 2x1 comes first (fewer tiles);
# 4x2 ties it and wins only if W*H > 0.5 * 448² * 8 = 802,816.
#   1000×500 = 500,000 pixels: stays 2x1 -> 2 tiles + thumbnail = 3 views * 256 = 768 tokens
#   2000×1000 = 2,000,000 pixels: moves to 4x2 -> 8 tiles + thumbnail = 9 views * 256 = 2,304 tokens
_ = check.predict("Exercise 4: grids and tokens for 1000×500 and 2000×1000", ((2, 1), 768, (4, 2), 2304),
                  (twin_grids[0], twin_tokens[0], twin_grids[1], twin_tokens[1]), explain=why_4, solution=True)

# %% [markdown]
# **Exercise 5 (debug).** A colleague wrote a tensor version of the tiling for a training loop: resize
# the image to the grid, cut it into `S × S` tiles, return them in InternVL's order (row-major: left
# to right, then top to bottom). It passed every test they wrote, all on panoramas and tall
# receipts, yet the model trained with it answers "what is in the top-right corner?" badly. Find
# the bug and fix it (it is one line).

# %% tags=["exercise"]
def my_fixed_tiles(image, grid, S):
    C, H, W = image.shape                                             # (C, H, W)
    cols, rows = grid
    big = F.interpolate(image[None], size=(rows * S, cols * S), mode="bilinear",
                        align_corners=False, antialias=True)          # (1, C, rows*S, cols*S)
    tiles = big.reshape(C, rows, S, cols, S).permute(3, 1, 0, 2, 4)   # TODO: find and fix the bug
    return tiles.reshape(rows * cols, C, S, S)                        # (T, C, S, S)


# %%
def reference_tiles(image, grid, S):
    return tile_tensor(image, grid, S, use_thumbnail=False)


tile_gen = torch.Generator().manual_seed(5)
tile_cases = [(torch.rand(3, 32, 192, generator=tile_gen), (6, 1), 32),      # a 6:1 strip: one row
              (torch.rand(3, 128, 32, generator=tile_gen), (1, 4), 32),      # a receipt: one column
              (torch.rand(3, 96, 128, generator=tile_gen), (4, 3), 32),      # a 4×3 grid
              (test_sets[(128, 96)].images[0], tile_grid(128, 96, 1, 12, 32), 32)]
_ = check.debug("Exercise 5: the tiles' order", my_fixed_tiles, reference_tiles, tile_cases,
                symptom="one-row and one-column grids come out right; on a 4×3 grid the second tile is the one "
                        "below the first, not the one to its right.",
                hint="k = row * cols + col: which of the two grid axes must come first before the final reshape?")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_fixed_tiles(image, grid, S):
    C, H, W = image.shape
    cols, rows = grid
    big = F.interpolate(image[None], size=(rows * S, cols * S), mode="bilinear",
                        align_corners=False, antialias=True)          # (1, C, rows*S, cols*S)
    tiles = big.reshape(C, rows, S, cols, S).permute(1, 3, 0, 2, 4)   # (rows, cols, C, S, S): rows first
    return tiles.reshape(rows * cols, C, S, S)


_ = check.debug("Exercise 5: the tiles' order", solution_fixed_tiles, reference_tiles, tile_cases, solution=True)

# %% [markdown]
# **Exercise 6 (ablate).** Knob: the tile cap `max_num`, on section 7's glyph task with the same
# weights. (a) Write `cap_ablation(max_num)`: InternVL's pipeline as released (`"internvl"`:
# tiles + thumbnail) with that cap on the 600 test canvases of section 7 (`test_sets`), returning
# `{"glyph": accuracy over all 600, "tokens": mean LLM tokens per canvas}` (4 tokens per view in
# the miniature; `detail.evaluate` takes `max_num=` and reports views per canvas). (b) Run it for
# `max_num` 1, 4 and 12 and answer: is the glyph accuracy with a cap of 4 `"below"` both others,
# `"between"` them or `"above"` both? (c) How many LLM tokens does a 128×96 canvas cost with a
# cap of 4?

# %% tags=["exercise"]
def cap_ablation(max_num):
    # TODO: {"glyph": accuracy over the 600 canvases, "tokens": mean LLM tokens per canvas} with this cap
    raise NotImplementedError


my_answer_6b = None     # TODO: "below", "between" or "above": accuracy with max_num=4 against max_num=1 and 12
my_answer_6c = None     # TODO: LLM tokens for one 128×96 canvas with max_num=4


# %%
def cap_reference(max_num):
    per = {size: detail.evaluate(model, test, "internvl", max_num=max_num) for size, test in test_sets.items()}
    return {"glyph": sum(r["glyph"] for r in per.values()) / len(per),
            "tokens": 4 * sum(r["views"] for r in per.values()) / len(per)}


cap_measured = {n: cap_reference(n) for n in (1, 4, 12)}
lo, hi = sorted((cap_measured[1]["glyph"], cap_measured[12]["glyph"]))
cap_trend = ("below" if cap_measured[4]["glyph"] < lo else "above" if cap_measured[4]["glyph"] > hi else "between")
grid4 = tile_grid(128, 96, 1, 4, 32)
tokens4 = 4 * (grid4[0] * grid4[1] + (grid4[0] * grid4[1] > 1))
scale4 = [grid4[0] * 32 / 128, grid4[1] * 32 / 96]
_ = check.exercise("Exercise 6a: the tile cap, measured", cap_ablation, lambda n: cap_measured[n], [1, 4],
                   kind="ablate",
                   hint="average detail.evaluate(model, test, 'internvl', max_num=max_num) over test_sets.values(); "
                        "tokens = 4 * views")
why_6b = (f"measured: cap 1 {cap_measured[1]['glyph']:.1%}, cap 4 {cap_measured[4]['glyph']:.1%}, "
          f"cap 12 {cap_measured[12]['glyph']:.1%}. With a cap of 4 a 128×96 canvas gets "
          f"{grid4[0]}×{grid4[1]} tiles that keep {min(scale4):.0%}-{max(scale4):.0%} of its "
          "resolution: neither a native-resolution crop nor the whole canvas in one view, the two "
          "kinds of view the encoder was trained on."
          + (" The thumbnail is the cap-1 view itself, so the drop is the tiles' confident mistakes "
             "outvoting it (the most confident view wins)." if cap_trend == "below" else ""))
_ = check.answer("Exercise 6b: glyph accuracy with a cap of 4", my_answer_6b, cap_trend, explain=why_6b,
                 hint="compare the three accuracies cap_ablation gives")
_ = check.answer("Exercise 6c: LLM tokens for 128×96 with a cap of 4", my_answer_6c, tokens4,
                 explain=f"{grid4[0]}×{grid4[1]} tiles + the thumbnail, 4 tokens each; with the cap of 12 it was "
                         f"{tokens['tiles + thumbnail'][(128, 96)]:.0f}.")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_cap_ablation(max_num):
    per = [detail.evaluate(model, test, "internvl", max_num=max_num) for test in test_sets.values()]
    return {"glyph": sum(r["glyph"] for r in per) / len(per), "tokens": 4 * sum(r["views"] for r in per) / len(per)}


_ = check.exercise("Exercise 6a: the tile cap, measured", solution_cap_ablation, lambda n: cap_measured[n], [1, 4],
                   kind="ablate", solution=True)
mine = {n: solution_cap_ablation(n) for n in (1, 4, 12)}
for n, row in mine.items():
    print(f"max_num={n:<3} glyph {row['glyph']:.1%}, {row['tokens']:.1f} LLM tokens per canvas")
low, high = sorted((mine[1]["glyph"], mine[12]["glyph"]))
_ = check.answer("Exercise 6b: glyph accuracy with a cap of 4",
                 "below" if mine[4]["glyph"] < low else "above" if mine[4]["glyph"] > high else "between",
                 cap_trend, explain=why_6b, solution=True)
_ = check.answer("Exercise 6c: LLM tokens for 128×96 with a cap of 4", 4 * (2 * 2 + 1), tokens4, solution=True)

# %% [markdown] tags=["slide"]
# ## 11. Summary
#
# - InternVL keeps its encoder at 448² and cuts the image into up to 12 tiles whose grid has the
#   aspect ratio closest to the image's (ties go to the larger grid only for images with more than
#   half its pixels), plus a thumbnail; the image is stretched to the grid, never padded.
# - Each 448² tile gives 1024 patch tokens; pixel shuffle turns each 2×2 block into one token
#   with 4× the channels (256 tokens), a pure permutation with an exact inverse; an MLP
#   (LayerNorm, Linear, GELU, Linear) maps 4·C to the LLM's width.
# - The cap of 12 tiles bounds the cost at 13·256 = 3,328 tokens, and bounds the resolution:
#   a 12 MP photo is seen at 44%, a 6:1 panorama at 22%.
# - On a detail task, the same small encoder goes from near chance on a downscaled image to a
#   large majority with tiles; views that cost as many tokens as the tiles but keep no
#   native-resolution detail do not close the gap (numbers below).

# %% [markdown]
# ## Questionnaire
#
# 1. InternViT is trained at 448². Why does InternVL cut a large image into 448² tiles instead of
#    giving the encoder the whole image at a higher resolution?
# 2. State the grid rule: which grids are candidates, what is minimised, and what the tie rule
#    checks. Why is there a tie rule at all?
# 3. The image is stretched to the grid, not padded. What does that gain, and what does it bend?
# 4. What does the thumbnail add to the tiles, and when does InternVL leave it out?
# 5. How many ViT tokens does one 448² tile give at patch 14, and how many reach the language
#    model? Where does the factor between them come from?
# 6. In what sense is pixel shuffle lossless, and in what sense is it still a compression?
# 7. What was wrong with InternVL's first pixel shuffle (`v1`), and why could no shape check catch it?
# 8. What does the cap of 12 tiles bound, and what does it cost a 12 MP phone photo or an A4 page
#    scanned at 300 dpi?
# 9. What are the projector's input and output widths for InternViT-300M and section 4's language model, and
#    how does its size compare to the encoder's?
# 10. Section 7's tiled pipelines beat the downscaled view. Besides detail, what else do they give
#     the model more of, and how would you tell the two apart?
# 11. Why is a lower cap not simply "the same, a bit blurrier" in the miniature (Exercise 6)?
# 12. InternViT has a learned absolute position table. Why does that matter less with tiling?

# %% [markdown] tags=["solution"]
# **Answers**
#
# 1. The encoder's weights, and its learned position table, are tuned to a 448² view of a
#    $32 \times 32$ patch grid. Tiles keep every view at that size, so nothing is resampled and the
#    encoder sees the image at (close to) its own resolution; attention also stays within a tile,
#    so the cost grows with the number of tiles, not with the square of the image's token count.
# 2. Every grid of $i$ columns and $j$ rows with $n_{\min} \le ij \le n_{\max}$; InternVL picks the
#    one whose ratio $i/j$ is closest to $W/H$, scanning by increasing $ij$. On an exact tie it
#    moves to the larger grid only if the image has more than half that grid's pixels,
#    $WH > \tfrac12 S^2 ij$. If ties always went to the larger grid, every square image, even an
#    icon, would be blown up onto 3×3 tiles; if they never did, a large square photo would stay
#    one tile.
# 3. Every pixel of every tile holds image content (no padding to encode, no tokens spent on
#    black), at the price of a slightly changed aspect ratio: shapes are stretched by the factor
#    between $W/H$ and $i/j$, small because the grid was chosen for the closest ratio.
# 4. Each tile is encoded alone, so no tile sees the whole scene; the thumbnail (the whole image
#    at 448²) does, at low resolution, and it goes after the tiles. With a single tile there is
#    nothing to add: that tile already is the whole image, so the thumbnail is left out.
# 5. $(448/14)^2 = 1024$ patch tokens; pixel shuffle with $r = 2$ merges each $2 \times 2$ block into
#    one token of width $4C$, so $1024 / 4 = 256$ tokens reach the language model.
# 6. It is a permutation of the numbers: every input number lands in exactly one output slot and
#    the inverse gives them all back, bit for bit (section 4). What it compresses is the *sequence*:
#    4× fewer tokens for the language model to attend over, each 4× wider; the projector then maps
#    $4C$ to $D$, and that linear map is where information can be lost.
# 7. It reshaped and permuted the grid but did not swap the two spatial axes back, so the language
#    model received the grid transposed: token $(u, v)$ held block $(v, u)$. On a square grid the
#    shape is the same either way, so nothing fails; only the values are in the wrong place.
# 8. It bounds the cost at $13 \cdot 256 = 3328$ tokens per image, and so it bounds the resolution:
#    in section 6's table the 12 MP photo keeps 44% of its linear resolution and the A4 page even
#    less, where small print does not survive; native resolution would take several times more
#    tiles.
# 9. In: $4 \cdot 1024 = 4096$ (four patch features side by side); out: $896$, the width of InternVL2-1B's language model (cited: the Qwen2-0.5B model card).
#    About $4096 \cdot 896 + 896^2$ weights plus biases and the LayerNorm, a few million, small next
#    to the encoder's 300 M.
# 10. Tokens: up to a dozen views instead of one, and the "most confident view wins" rule gets more
#     chances. An equal-token control gives the model as many views as the tiles but without the
#     native-resolution detail (section 7 has two: jittered copies of the downscaled canvas, and
#     the tiles of a blurred canvas); if the controls score like the downscaled view and well
#     below the tiles, the gain is the detail, not the tokens.
# 11. A lower cap gives fewer, coarser tiles: the image is downscaled onto the smaller grid, so
#     each tile is at a scale between a native crop and the whole-canvas thumbnail, which are the
#     only two kinds of view the miniature's encoder was trained on. Exercise 6 measures what such
#     views do to the accuracy.
# 12. Every tile and the thumbnail are 448², so the table is used on exactly the grid it was
#     trained on and never interpolated; resampling (bicubic, in InternVL's code) is needed only
#     when the encoder is run at another size.

# %% [markdown]
# ## 12. The notes, checked

# %%
rows = []
rows.append("| The notes say | Shown here |")
rows.append("|---|---|")
rows.append("| dynamic resolution: up to 12 tiles of 448×448 | sections 2, 5, 6: the grid rule, its tie rule, the cap's cost |")
rows.append("| pixel shuffle: 4 neighbouring patches → 1 token with 4× channels, 1024 → 256 at 448 px"
            " | section 4: (1, 1024, 1024) → (1, 256, 4096), tokens_per_tile(448, 14) = 256 ✓ |")
rows.append("| 'compression without loss of resolution' | section 4: exact inverse, bit for bit ✓ (the LLM still sees 4× fewer tokens) |")
rows.append("| high-resolution images keep their detail | section 7: glyph accuracy "
            f"{glyph_acc['downscale']:.0%} downscaled vs {glyph_acc['tiles + thumbnail']:.0%} tiled "
            f"(+{100 * gain:.0f} points, bar +20); at equal tokens without the detail "
            + ", ".join(f"{glyph_acc[n]:.0%}" for n in controls)
            + (" ✓ |" if len(beaten) == len(controls) else " (the extra tokens explain part of the gain) |"))
rows.append("| InternViT is 'proprietary' (comparison table) | section 9: open weights (MIT licence) ✗ |")
size = f"{n_params / 1e6:.1f} M parameters" if n_params else "(needs transformers)"
rows.append(f"| InternViT-300M: 'ViT-L level, smaller size' | section 9: {size}, the size of ViT-L/14 (304 M), not smaller ✗ |")
rows.append("| 2D RoPE 'InternViT, Qwen2-VL' (position-embedding answer) | section 9: InternViT uses a learned table, bicubically"
            " resampled; 2D RoPE is Qwen2-VL's ✗ |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# **Closing note.** The detail task's numbers, measured above on 600 test canvases (100 per size)
# with the shipped checkpoint, the equal-token controls included:

# %%
print(f"glyph accuracy — downscaled to one 32² view: {glyph_acc['downscale']:.1%}; "
      f"InternVL tiles only: {glyph_acc['tiles']:.1%}; tiles + thumbnail: {glyph_acc['tiles + thumbnail']:.1%} "
      f"(chance {1 / len(SHAPES):.1%}); gain {100 * gain:.1f} points (bar: 20).")
print("equal-token controls (as many LLM tokens as tiles + thumbnail, no native detail): "
      + "; ".join(f"{n} {glyph_acc[n]:.1%} (95% interval {glyph_ci[n].low:.1%}-{glyph_ci[n].high:.1%})"
                  for n in controls) + f"; tiles + thumbnail {glyph_ci['tiles + thumbnail'].low:.1%}-"
      f"{glyph_ci['tiles + thumbnail'].high:.1%}.")

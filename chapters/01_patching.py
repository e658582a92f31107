# %% [markdown] tags=["slide"]
# # Chapter 1 · Patching: from pixels to tokens
#
# A Transformer reads a *sequence of vectors*. An image is a grid of pixels. Every vision
# encoder in this course starts by bridging the two: it cuts the image into square
# **patches**, flattens each one and maps it linearly to a **token**. This chapter builds that
# step, proves two facts about it numerically, and shows what it costs.
#
# **You will**
# 1. cut an $H\times W\times C$ image into $N = HW/P^2$ patches and flatten each one;
# 2. prove that the `Conv2d(kernel=P, stride=P)` found in every ViT implementation *is*
#    "flatten + `Linear`" with the same weights;
# 3. count the tokens of common ViT inputs (224/16 → 197, 224/14, 336/14, 448/14);
# 4. measure how attention's cost grows as $N^2$, and see when it dominates a layer.
#
# The code lives in `vislab.patching`; this notebook imports it and shows it. Every number
# printed below is computed here, and the checks (✓ lines) fail loudly if something breaks.

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

import time

import matplotlib.pyplot as plt
import torch
from torch import nn

import vislab
from vislab import check
from vislab.images import load_photo, to_tensor
from vislab.patching import PatchEmbed, grid_size, num_tokens, patchify, unpatchify
from vislab.runtime import setup
from vislab.shapes import ShapeWorld

device = setup(seed=0)

# %% [markdown] tags=["slide"]
# ## 1. Intuition: an image as a sentence of patches
#
# Language models read words. ViT (Dosovitskiy et al., 2020, *An Image is Worth 16x16 Words*,
# arXiv:2010.11929) makes an image look like a sentence: a 224×224 photo cut into 16×16 squares
# becomes a "sentence" of $14 \times 14 = 196$ "words". Each word is the 16·16·3 = 768 raw
# pixel values of its square, and one learned linear map turns it into a $D$-dimensional token.
#
# Nothing about the patch's *position* survives flattening (token 17 and token 18 look
# unrelated to the Transformer); that is why ViT adds a position embedding (chapter 2). And
# nothing inside a patch is compared with anything else until attention mixes tokens: the patch
# is the smallest unit the model can "see".
#
# Let us look at a real photo (shipped with scikit-learn, so nothing is downloaded) and at a
# ShapeWorld scene, the course's procedural dataset.

# %%
photo = to_tensor(load_photo("china", size=224))           # (3, 224, 224)
flower = to_tensor(load_photo("flower", size=(336, 224)))   # (3, 224, 336): PIL sizes are (width, height)
scenes = ShapeWorld(image_size=64, nuisance="medium", max_shapes=2).sample(8, split="train", seed=0)

fig, axes = plt.subplots(1, 6, figsize=(14, 3.2))
axes[0].imshow(photo.permute(1, 2, 0))
axes[0].set_title("china 224×224")
axes[1].imshow(flower.permute(1, 2, 0))
axes[1].set_title("flower 224×336")
for ax, img, cap in zip(axes[2:], scenes.images, scenes.captions):
    ax.imshow(img.permute(1, 2, 0))
    ax.set_title(cap.replace(" in the ", "\nin the ").replace(" on the ", "\non the ").replace(" at the ", "\nat the ")
                 .replace(" and ", "\nand "), fontsize=8)
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The math
#
# Let $x \in \mathbb{R}^{H \times W \times C}$ and a patch size $P$ that divides $H$ and $W$.
# The grid has $g_h = H/P$ rows and $g_w = W/P$ columns, so
#
# $$N = g_h\, g_w = \frac{HW}{P^2}.$$
#
# Patch $k$ (row-major: $k = r\,g_w + c$) is the block $x[rP:(r+1)P,\; cP:(c+1)P,\; :]$,
# flattened in (row, column, channel) order to $x_p^k \in \mathbb{R}^{P^2 C}$. ViT's eq. 1 embeds
# all patches with one matrix $E \in \mathbb{R}^{(P^2C) \times D}$ and a bias $b$:
#
# $$z^k = x_p^k E + b \quad\Longrightarrow\quad Z = X_p E + b \in \mathbb{R}^{N \times D}.$$
#
# A convolution with kernel $P$ and stride $P$ visits exactly the same $N$ non-overlapping
# blocks and computes, for output channel $d$, $\sum_{c,i,j} w_{d,c,i,j}\, x[rP+i, cP+j, c] + b_d$:
# the same dot product, with $E$'s entries arranged as a $(D, C, P, P)$ kernel. We prove it
# numerically in section 5.

# %% [markdown] tags=["slide"]
# ## 3. The code: `patchify`, `unpatchify` and `PatchEmbed`
#
# `patchify` is two reshapes and a permutation. The shape comments are the contract: read them
# top to bottom.

# %%
vislab.show_source(patchify)

# %%
vislab.show_source(unpatchify)

# %% [markdown]
# `PatchEmbed` is the module every ViT in the course uses. Its `as_linear()` builds the
# equivalent `nn.Linear` by reordering the convolution's weight from $(D, C, P, P)$ to
# $(D, P{\cdot}P{\cdot}C)$, the layout of a flattened patch.

# %%
vislab.show_source(PatchEmbed)

# %% [markdown] tags=["slide"]
# ## 4. Shape checks
#
# The notes' example: a 224×224 image with 16×16 patches gives $N=(224/16)^2=196$ patches, plus
# one `[CLS]` token, 197 tokens. Every line below is checked against the stored output when the
# course is tested.

# %%
# NBVAL_CHECK_OUTPUT
x = photo[None]                                   # (1, 3, 224, 224)
patches = patchify(x, 16)                         # (1, 196, 768)
print("image   ", tuple(x.shape))
print("patches ", tuple(patches.shape), "= (B, N, P*P*C)")
print("grid    ", grid_size(224, 16))
print("tokens  ", num_tokens(224, 16), "(196 patches + CLS)")
print("flower  ", tuple(patchify(flower[None], 16).shape), "grid", grid_size((224, 336), 16))

# %% [markdown]
# Patch 0 is the top-left square, and patch 1 its right neighbour: the first $P \cdot P \cdot C$
# numbers of the image's top-left block, in (row, column, channel) order. And `unpatchify` puts
# every pixel back exactly where it was.

# %%
# NBVAL_CHECK_OUTPUT
check.equal(patches[0, 0], x[0, :, :16, :16].permute(1, 2, 0).reshape(-1), "patch 0 is the top-left block")
check.equal(patches[0, 1], x[0, :, :16, 16:32].permute(1, 2, 0).reshape(-1), "patch 1 is its right neighbour")
check.equal(unpatchify(patches, 16, 224), x, "unpatchify(patchify(x)) == x, bit for bit")
_ = check.equal(unpatchify(patchify(flower[None], 14), 14, (224, 336)), flower[None], "the same for a 224×336 image")

# %% [markdown]
# A size that the patch does not divide is refused with a message that says what would work,
# rather than silently dropping the last pixels:

# %%
# NBVAL_CHECK_OUTPUT
try:
    patchify(torch.zeros(1, 3, 225, 224), 16)
except ValueError as err:
    print("ValueError:", err)

# %% [markdown] tags=["slide"]
# ## 5. Proof: `Conv2d(kernel=P, stride=P)` = flatten + `Linear`
#
# The notes' `PatchEmbedding` (and every real ViT) uses a strided convolution. We build one,
# copy its weights into a `Linear` with `as_linear()`, and compare the two on a batch of photos
# and noise.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
embed = PatchEmbed(image_size=224, patch_size=16, in_channels=3, dim=768)
linear = embed.as_linear()                                     # Linear(768 -> 768)
batch = torch.cat([x, flower[None, :, :, :224], torch.rand(2, 3, 224, 224)])   # (4, 3, 224, 224)
with torch.no_grad():
    via_conv = embed(batch)                                    # (4, 196, 768)
    via_linear = linear(patchify(batch, 16))                   # (4, 196, 768)
print("conv path  ", tuple(via_conv.shape))
print("linear path", tuple(via_linear.shape))
_ = check.close(via_linear, via_conv, "Conv2d(16, stride 16) == patchify + Linear", atol=1e-4, rtol=1e-4)

# %% [markdown]
# The two agree to float32 rounding (the order of the additions differs, so the last bits
# may too, and they differ from one CPU to another: that is why the check prints the tolerance it
# passed, not the digits of the difference). If the flattening order were wrong, e.g. (channel, row, column) as in
# `x.reshape(B, C, gh, P, gw, P)` without the permutation, the difference would be of the order
# of the values themselves. Let us see that failure once, on purpose:

# %%
wrong_order = batch.reshape(4, 3, 14, 16, 14, 16).permute(0, 2, 4, 1, 3, 5).reshape(4, 196, 768)  # (C, P, P) order
with torch.no_grad():
    wrong = linear(wrong_order)
print(f"wrong flattening order: max |difference| = {(wrong - via_conv).abs().max():.2f}")
_ = check.at_least((wrong - via_conv).abs().max(), 0.1, "a wrong patch layout is detected")

# %% [markdown]
# Which path is faster on this machine? The convolution calls one optimised kernel; the
# explicit path materialises the patch tensor first. (Timings vary by machine and are not
# checked; `benchmarks/` holds the course's measured figures.)

# %%
def time_it(fn, repeat=5):
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat * 1e3


with torch.no_grad():
    t_conv = time_it(lambda: embed(batch))
    t_lin = time_it(lambda: linear(patchify(batch, 16)))
print(f"conv: {t_conv:.1f} ms   patchify + linear: {t_lin:.1f} ms   (batch of 4 at 224×224)")

# %% [markdown] tags=["slide"]
# ## 6. How many tokens? The usual inputs
#
# Patch 14 with 224 px gives $16^2 = 256$ patches; CLIP ViT-L/14 at 336 px gives $24^2=576$;
# InternViT at 448 px gives $32^2 = 1024$ (chapter 7 compresses them four-fold with pixel shuffle).
# Not every encoder adds a `[CLS]` token: SigLIP pools its patch tokens with an attention head
# (MAP) and has none, so SigLIP at 384 px reads 576 tokens, not 577. And a VLM may drop the
# `[CLS]` output it does not use: LLaVA-1.5 feeds the 576 patch tokens of CLIP ViT-L/14@336 to
# its language model, InternVL the $32^2$ patch tokens of InternViT (before pixel shuffle).

# %%
# NBVAL_CHECK_OUTPUT
inputs = [(224, 16, True, "ViT-B/16, CLIP ViT-B/16"), (224, 14, True, "CLIP ViT-L/14, DINOv2 at 224"),
          (336, 14, True, "CLIP ViT-L/14@336 (LLaVA-1.5)"), (384, 16, False, "SigLIP at 384 (no CLS)"),
          (448, 14, True, "InternViT-300M/6B tile"), (518, 14, True, "DINOv2 at 518")]
print(f"{'image':>6} {'patch':>5} {'grid':>7} {'CLS':>4} {'tokens':>7} {'attention entries':>18}  used by")
for size, p, cls, who in inputs:
    gh, gw = grid_size(size, p)
    t = num_tokens(size, p, cls_token=cls)
    print(f"{size:>6} {p:>5} {f'{gh}x{gw}':>7} {'yes' if cls else 'no':>4} {t:>7} {t * t:>18,}  {who}")

# %% [markdown] tags=["slide"]
# ## 7. Experiment: attention's cost grows as $N^2$
#
# A Transformer layer has two kinds of work. The linear maps (QKV, output projection, MLP) touch
# each token on its own: $12\,N D^2$ multiply-adds. Attention compares every token with
# every other: $QK^\top$ and the weighted sum cost $2 N^2 D$. Doubling the image side multiplies
# $N$ by 4, the linear part by 4, and attention by 16; attention's share of the layer,
# $2N^2D / (12ND^2 + 2N^2D) = N / (6D + N)$, passes one half at $N = 6D$.
#
# First we *count*: PyTorch's `FlopCounterMode` records the floating-point operations of every
# matrix product (2 per multiply-add) of one ViT-B/16 block (chapter 2's `Block`), run on the
# `meta` device so that nothing is computed. The counts are exact, the same on every machine.

# %%
# NBVAL_CHECK_OUTPUT
from torch.utils.flop_counter import FlopCounterMode

from vislab.vit import Block, ViTConfig

b16 = ViTConfig.preset("B/16", num_classes=0)
D = b16.dim
print(f"{'image (patch 16)':>16} {'tokens':>7} {'linear GFLOP':>13} {'attention GFLOP':>16} {'attention share':>16}")
shares = {}
for size in (224, 384, 448, 1024, 1120):
    n = num_tokens(size, 16)
    with torch.device("meta"), FlopCounterMode(display=False) as counter:
        Block(b16)(torch.empty(1, n, D))                          # (1, N, D) -> (1, N, D)
    by_op = {str(op): f for op, f in counter.get_flop_counts()["Global"].items()}
    linear_flops, attention_flops = by_op["aten.addmm"], by_op["aten.bmm"]   # Linear layers; QK^T and AV
    _ = check.equal((linear_flops, attention_flops), (2 * 12 * n * D * D, 2 * 2 * n * n * D),
                    f"{n} tokens: counted FLOPs == 2 x (12 N D^2, 2 N^2 D)")
    shares[n] = attention_flops / (linear_flops + attention_flops)
    print(f"{size:>16} {n:>7} {linear_flops / 1e9:>13.1f} {attention_flops / 1e9:>16.1f} {shares[n]:>16.1%}")

# %% [markdown]
# Then we *time* one attention computation (softmax of $QK^\top/\sqrt{d}$ times $V$) at growing
# $N$ and fit the exponent of the time. Timings depend on the machine and on what else it is
# doing, so they are shown as measured and decide nothing; the counts above are the checked claim.

# %%
def attention_ms(n, dim=192, heads=3, repeat=3):
    q = torch.randn(1, heads, n, dim // heads)
    k, v = torch.randn_like(q), torch.randn_like(q)

    def attend():
        w = (q @ k.transpose(-2, -1) / (dim // heads) ** 0.5).softmax(-1)   # (1, h, N, N)
        return w @ v                                                           # (1, h, N, d)

    with torch.no_grad():
        return time_it(attend, repeat)


token_counts = [num_tokens(s, 16) for s in (64, 128, 224, 320, 448, 640)]
measured = [attention_ms(n) for n in token_counts]
log_n = torch.log(torch.tensor(token_counts, dtype=torch.float64))
log_t = torch.log(torch.tensor(measured, dtype=torch.float64))
slope = float(((log_n - log_n.mean()) * (log_t - log_t.mean())).sum() / ((log_n - log_n.mean()) ** 2).sum())

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.loglog(token_counts, measured, "o-", label=f"measured (slope {slope:.2f})")
ref = [measured[-1] * (n / token_counts[-1]) ** 2 for n in token_counts]
ax.loglog(token_counts, ref, "k--", lw=0.8, label="∝ N²")
ax.set_xlabel("tokens N (patch 16, images 64…640 px)")
ax.set_ylabel("ms per attention")
ax.legend()
plt.show()
print("tokens:", token_counts)
print(f"fitted exponent of the measured time on this machine: {slope:.2f} (the operation count's is exactly 2)")

# %% [markdown]
# At small $N$ fixed overheads hide the trend, so the fitted exponent of the time usually comes
# out below 2; at the large end the time grows close to quadratically, as the count says.

# %% [markdown] tags=["slide"]
# ## 8. The patch viewer
#
# Move the slider: the grid, the sequence of tokens, the count and the place on the cost curve
# change together. Small patches mean many tokens (fine detail, quadratic cost); large patches
# mean few tokens (cheap, but a 32×32 patch must describe a whole object in one vector). Try the
# non-square flower image too. (Without a live kernel, you see the default view as a picture.)

# %%
# NBVAL_IGNORE_OUTPUT
from vislab.widgets.patches import patch_viewer

viewer = patch_viewer({"china 224×224": photo, "flower 224×336": flower, "ShapeWorld 64×64": scenes.images[0]},
                      patch_size=16)

# %% [markdown]
# ## 9. ShapeWorld, and why raw pixels should not be enough
#
# The course trains small encoders on ShapeWorld. For those encoders to *matter*, a linear
# classifier on raw pixels must do poorly. With clean scenes (black background, shapes on a 3×3
# grid, no rotation) it does not: the few possible placements make pixels almost linearly
# separable. The nuisance presets add continuous position, scale and rotation, colour jitter,
# textured backgrounds and distractor strokes. We measure a logistic-regression probe on raw
# pixels for shape classification (7 classes, chance 14%) at each level.

# %%
from vislab.probes import linear_probe_accuracy, pixel_features

pixel_acc = {}
for level in ("none", "medium", "hard"):
    world = ShapeWorld(image_size=32, nuisance=level)
    train, test = world.sample(2000, "train", seed=0), world.sample(1000, "test", seed=0)
    pixel_acc[level] = linear_probe_accuracy(pixel_features(train.images), train.labels["shape"],
                                             pixel_features(test.images), test.labels["shape"], max_iter=300)
    print(f"nuisance={level:<7} raw-pixel linear probe, shape accuracy: {pixel_acc[level]:.1%}")

# %%
_ = check.at_least(pixel_acc["none"], 0.6, "raw pixels on clean ShapeWorld: a linear probe nearly solves shape")
_ = check.at_most(pixel_acc["hard"], 0.6, "raw pixels on 'hard' ShapeWorld stay far from solving shape")

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
# **Exercise 1 (build).** Write `my_patchify(images, p)` with `reshape` and `permute` only.

# %% tags=["exercise"]
def my_patchify(images, p):
    # TODO: (B, C, H, W) -> (B, N, P*P*C), row-major patches, each flattened as (row, column, channel)
    raise NotImplementedError


# %%
exercise_cases = [(torch.rand(2, 3, 32, 32), 8), (torch.rand(1, 3, 28, 42), 14), (torch.rand(1, 1, 4, 4), 2)]
_ = check.exercise("Exercise 1: patchify", my_patchify, patchify, exercise_cases,
                   hint="split H into (gh, P) and W into (gw, P), then permute to (B, gh, gw, P, P, C)")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_patchify(images, p):
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p)    # (B, C, gh, P, gw, P)
    x = x.permute(0, 2, 4, 3, 5, 1)                   # (B, gh, gw, P, P, C)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


_ = check.exercise("Exercise 1: patchify", solution_patchify, patchify, exercise_cases, solution=True)

# %% [markdown]
# **Exercise 2 (predict, then run).** A ViT-L/14 that keeps its `[CLS]` token is given one
# 448×672 image (a landscape page, without tiling). Before running anything, write down how many
# tokens it sees and how many entries one head's attention matrix has.

# %% tags=["exercise"]
my_tokens = None          # TODO: patches + CLS for a 448x672 image at patch 14
my_entries = None         # TODO: entries of one head's attention matrix

# %%
tokens_448x672 = num_tokens((448, 672), 14)
_ = check.predict("Exercise 2: tokens and attention entries, 448×672 at patch 14",
                  None if my_tokens is None else (my_tokens, my_entries), (tokens_448x672, tokens_448x672 ** 2),
                  explain="(448/14)·(672/14) = 32·48 patches plus CLS; attention scores every pair of tokens, "
                          "so the matrix has tokens² entries.")

# %% tags=["solution"] jupyter={"source_hidden": true}
_ = check.predict("Exercise 2: tokens and attention entries, 448×672 at patch 14",
                  (32 * 48 + 1, (32 * 48 + 1) ** 2), (tokens_448x672, tokens_448x672 ** 2), solution=True)

# %% [markdown]
# **Exercise 3 (build).** Turn a patch-embedding convolution into the equivalent linear weight matrix:
# `my_conv_to_linear_weight(conv)` takes an `nn.Conv2d(C, D, P, stride=P)` and returns the
# `(D, P*P*C)` matrix $W$ such that `patchify(x, P) @ W.T + conv.bias == conv(x)` flattened.

# %% tags=["exercise"]
def my_conv_to_linear_weight(conv):
    # TODO: reorder conv.weight (D, C, P, P) into (D, P*P*C) in (row, column, channel) order
    raise NotImplementedError


# %%
def reference_weight(conv):
    pe = PatchEmbed(conv.kernel_size[0] * 2, conv.kernel_size[0], conv.in_channels, conv.out_channels)
    pe.proj = conv
    return pe.as_linear().weight.detach()


torch.manual_seed(1)
conv_cases = [nn.Conv2d(3, 8, 4, stride=4), nn.Conv2d(1, 5, 2, stride=2)]
_ = check.exercise("Exercise 3: conv → linear weight", my_conv_to_linear_weight, reference_weight, conv_cases,
                   hint="the kernel is (D, C, P, P); a flattened patch is (P, P, C): permute before reshaping")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_conv_to_linear_weight(conv):
    D = conv.out_channels
    return conv.weight.detach().permute(0, 2, 3, 1).reshape(D, -1)   # (D, P, P, C) -> (D, P*P*C)


_ = check.exercise("Exercise 3: conv → linear weight", solution_conv_to_linear_weight, reference_weight, conv_cases,
                   solution=True)

# %% [markdown]
# **Exercise 4 (debug).** A colleague's `patchify` passes every shape test, yet a ViT trained with
# it learns worse. Find the bug and fix it in the copy below (it is one line).

# %% tags=["exercise"]
def my_fixed_patchify(images, p):
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p)    # (B, C, gh, P, gw, P)
    x = x.permute(0, 4, 2, 3, 5, 1)                   # (B, gh, gw, P, P, C)
    return x.reshape(B, (H // p) * (W // p), p * p * C)   # TODO: find and fix the bug above


# %%
debug_cases = [(torch.rand(1, 3, 32, 32), 16), (torch.rand(2, 3, 28, 42), 14)]
_ = check.debug("Exercise 4: the patch order", my_fixed_patchify, patchify, debug_cases,
                symptom="the shapes are right, but patch 1 is the block under the top-left one, not its right "
                        "neighbour: the patches come out column by column.",
                hint="compare the permutation with the shape comment beside it.")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_fixed_patchify(images, p):
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p)    # (B, C, gh, P, gw, P)
    x = x.permute(0, 2, 4, 3, 5, 1)                   # (B, gh, gw, P, P, C): gh (axis 2) before gw (axis 4)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


_ = check.debug("Exercise 4: the patch order", solution_fixed_patchify, patchify, debug_cases, solution=True)

# %% [markdown]
# **Exercise 5 (ablate).** Attention's share of a block depends on the width $D$ as well as on
# $N$. (a) Write `attention_share(preset, n)`: build one `Block` of a preset on the `meta` device,
# run it on `n` tokens under `FlopCounterMode` (as in section 7), and return the attention
# matrix products' FLOPs (`aten.bmm`) over all FLOPs. (b) Then answer: at 1025 tokens, is
# attention the larger share of a ViT-S/16 block ($D=384$) or of a ViT-H/14 block ($D=1280$)?
# Answer `"S"` or `"H"`.

# %% tags=["exercise"]
def attention_share(preset, n):
    # TODO: Block(ViTConfig.preset(preset, num_classes=0)) on the meta device, (1, n, D) input, FlopCounterMode
    raise NotImplementedError


my_answer_5b = None      # TODO: "S" or "H"

# %%
share_cases = [("S/16", 1025), ("H/14", 1025), ("B/16", 197)]
_ = check.exercise("Exercise 5a: attention's share of a block, counted", attention_share,
                   lambda preset, n: n / (6 * ViTConfig.preset(preset).dim + n), share_cases, kind="ablate",
                   hint="counter.get_flop_counts()['Global'] maps each operator to its FLOPs; "
                        "divide aten.bmm's by counter.get_total_flops()")
_ = check.answer("Exercise 5b: which width gives attention the larger share?", my_answer_5b, "S",
                 explain="the share is N/(6D + N): at equal N a narrower model spends a larger share on "
                         "attention, because its linear layers shrink as D² and attention only as D.")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_attention_share(preset, n):
    c = ViTConfig.preset(preset, num_classes=0)
    with torch.device("meta"), FlopCounterMode(display=False) as counter:
        Block(c)(torch.empty(1, n, c.dim))                        # (1, N, D)
    by_op = {str(op): f for op, f in counter.get_flop_counts()["Global"].items()}
    return by_op["aten.bmm"] / counter.get_total_flops()


_ = check.exercise("Exercise 5a: attention's share of a block, counted", solution_attention_share,
                   lambda preset, n: n / (6 * ViTConfig.preset(preset).dim + n), share_cases, kind="ablate",
                   solution=True)
measured_shares = {p: solution_attention_share(p, 1025) for p in ("S/16", "H/14")}
_ = check.answer("Exercise 5b: which width gives attention the larger share?",
                 max(measured_shares, key=measured_shares.get)[0], "S", solution=True)

# %% [markdown] tags=["slide"]
# ## 11. Summary
#
# - An image of $H \times W$ pixels cut into $P \times P$ patches is a sequence of
#   $N = HW/P^2$ vectors of length $P^2C$, in row-major order; `unpatchify` inverts it exactly.
# - The patch embedding is one linear map shared by all patches. `Conv2d(kernel=P, stride=P)`
#   computes exactly that (we matched it to float rounding) and is just the fastest way to do so.
# - 224/16 gives 196 patches + CLS = 197 tokens; 224/14 gives 257, 336/14 gives 577, 448/14
#   gives 1025.
# - Attention costs $\propto N^2 D$ against $\propto N D^2$ for the rest of a layer: its share
#   of a ViT-B/16 block is $N/(6D+N)$, small at 197 tokens and more than half once $N > 6D$
#   (section 7 counts it), which is why high-resolution encoders tile images (chapters 7 and 9)
#   or compress tokens.
#
# ## 12. The notes, checked
#
# | The notes say | Shown here |
# |---|---|
# | $N = HW/P^2$ patches of size $P \times P$ | section 4: `(1, 196, 768)` for 224/16 |
# | "patch 16, 224 px: 196 patches + 1 CLS = 197 tokens" | section 4, `num_tokens(224, 16) = 197` ✓ |
# | patches are flattened and linearly projected; Conv2d does it "at once" | section 5: equal to float rounding ✓ |
# | patch size 14 or 16 is typical | section 6: the token table for real encoders |
#
# **Questions to think about** (answered in later chapters): what does the Transformer know
# about *where* a patch was (chapter 2: position embeddings)? What happens to the token count,
# and to attention's cost, when the image grows to 448 px or beyond (chapters 7 and 9)?

# %% [markdown]
# ## Questionnaire
#
# 1. An image is $H \times W \times C$ and the patch size is $P$. How many patches are there, and
#    how long is each flattened patch?
# 2. In which order does vislab flatten a patch, and why must the linear layer's weight use the
#    same order?
# 3. Why is `Conv2d(kernel=P, stride=P)` the same computation as "flatten + `Linear`"? What would
#    break the equality?
# 4. Why do the two paths agree only to rounding, and why does the course check that agreement
#    with a tolerance instead of printing the difference?
# 5. How many tokens does a ViT-B/16 see at 224 px, and where does the extra token come from?
#    Does every encoder have it?
# 6. A model with patch 14 goes from 224 px to 448 px. By what factor grow the tokens, the linear
#    layers' work and the attention matrix?
# 7. For which $N$ does attention take more than half of a block's operations, as a function of
#    the width $D$? Why does the share fall as the model gets wider?
# 8. What does the Transformer know about a patch's position right after the patch embedding?
# 9. Why can a wrong patch order pass every shape check, and how do you catch it?
# 10. Why must a linear classifier on raw pixels do poorly on the course's ShapeWorld tasks,
#     and what makes it fail on the "hard" preset?

# %% [markdown] tags=["solution"]
# **Answers**
#
# 1. $N = HW/P^2$ patches (the grid is $H/P \times W/P$), each a vector of $P^2 C$ numbers.
# 2. (row, column, channel), as MAE and timm's `patchify` do. The linear map's weight row for
#    output $d$ must list its coefficients in the same order as the patch vector, otherwise each
#    pixel is multiplied by another pixel's coefficient (section 5's "wrong order" case).
# 3. The convolution visits the same non-overlapping $P \times P$ blocks and takes, for each
#    output channel, a dot product of the block with a kernel: that is one row of $E$ applied to
#    the flattened patch. A stride other than $P$ (overlap or gaps), padding, or a wrong
#    reshaping of the kernel breaks it.
# 4. The additions happen in another order in the two kernels, and float32 addition is not
#    associative. The last digits depend on the CPU's kernels, the thread count and the device,
#    so only "within a tolerance" is the same on every machine.
# 5. 197: 196 patches plus the `[CLS]` token that ViT prepends (chapter 2). Not every encoder has
#    one: SigLIP pools its patches with an attention head and has 576 tokens at 384 px.
# 6. The side doubles, so the tokens grow 4x; the linear layers' work grows
#    4x (linear in $N$) and the attention matrix 16x (quadratic in $N$).
# 7. The share is $N/(6D + N)$, above one half once $N > 6D$. The linear layers grow as $D^2$
#    per token and attention as $D$, so a wider model spends a smaller share on attention at
#    the same $N$.
# 8. Nothing: each token is a function of its own pixels only; two identical patches at
#    different places give identical tokens. Position embeddings (chapter 2) add the position.
# 9. Every patch still has $P^2C$ numbers and there are still $N$ of them; only their order is
#    wrong. Compare a patch with the block it should come from (section 4's checks), or an
#    implementation against a reference on non-square images.
# 10. So that a learned encoder has something to add. Continuous positions, scale, rotation,
#     colour jitter, textured backgrounds and distractors mean that the same shape shares few
#     pixels from one image to the next, so no single linear template of pixels matches it.

# %% [markdown] tags=["online"]
# ## Online: the same patching inside a real checkpoint (optional)
#
# With internet access, this cell loads `google/vit-base-patch16-224`'s patch embedding through
# `transformers` and checks that its convolution is a `PatchEmbed` computing the same tokens. It
# is tagged `online`, so the offline tests skip it; offline it prints one line and stops.

# %% tags=["online"]
from vislab.online import hub_available

if hub_available("google/vit-base-patch16-224's patch embedding, equal to vislab's PatchEmbed"):
    from transformers import ViTModel

    hf = ViTModel.from_pretrained("google/vit-base-patch16-224")
    conv = hf.embeddings.patch_embeddings.projection                 # Conv2d(3, 768, 16, stride 16)
    ours = PatchEmbed(224, 16, 3, 768)
    ours.proj.load_state_dict(conv.state_dict())
    with torch.no_grad():
        _ = check.close(ours(x), conv(x).flatten(2).transpose(1, 2),
                        "vislab PatchEmbed == the real ViT's patch embedding")

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

fig, axes = plt.subplots(1, 6, figsize=(14, 2.6))
axes[0].imshow(photo.permute(1, 2, 0))
axes[0].set_title("china 224×224")
axes[1].imshow(flower.permute(1, 2, 0))
axes[1].set_title("flower 224×336")
for ax, img, cap in zip(axes[2:], scenes.images, scenes.captions):
    ax.imshow(img.permute(1, 2, 0))
    ax.set_title(cap, fontsize=7)
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
check.equal(unpatchify(patchify(flower[None], 14), 14, (224, 336)), flower[None], "the same for a 224×336 image")

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
max_diff = check.close(via_linear, via_conv, "Conv2d(16, stride 16) == patchify + Linear", atol=1e-4, rtol=1e-4)

# %% [markdown]
# The two agree to float32 rounding (the order of the additions differs, so the last bits
# may too). If the flattening order were wrong, e.g. (channel, row, column) as in
# `x.reshape(B, C, gh, P, gw, P)` without the permutation, the difference would be of the order
# of the values themselves. Let us see that failure once, on purpose:

# %%
# NBVAL_CHECK_OUTPUT
wrong_order = batch.reshape(4, 3, 14, 16, 14, 16).permute(0, 2, 4, 1, 3, 5).reshape(4, 196, 768)  # (C, P, P) order
with torch.no_grad():
    wrong = linear(wrong_order)
print(f"wrong flattening order: max |difference| = {(wrong - via_conv).abs().max():.2f}")
check.at_least((wrong - via_conv).abs().max(), 0.1, "a wrong patch layout is detected")

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
# InternViT at 448 px gives $32^2 = 1024$ (chapter 7 compresses them to 256 with pixel shuffle).

# %%
# NBVAL_CHECK_OUTPUT
inputs = [(224, 16, "ViT-B/16, CLIP ViT-B/16"), (224, 14, "ViT-L/14, DINOv2 at 224"),
          (336, 14, "CLIP ViT-L/14@336, LLaVA-1.5"), (384, 16, "SigLIP 384"),
          (448, 14, "InternViT-300M/6B tile"), (518, 14, "DINOv2 at 518")]
print(f"{'image':>6} {'patch':>5} {'grid':>7} {'tokens':>7} {'attention entries':>18}  used by")
for size, p, who in inputs:
    gh, gw = grid_size(size, p)
    t = num_tokens(size, p)
    print(f"{size:>6} {p:>5} {f'{gh}x{gw}':>7} {t:>7} {t * t:>18,}  {who}")

# %% [markdown] tags=["slide"]
# ## 7. Experiment: attention's cost grows as $N^2$
#
# A Transformer layer has two kinds of work. The linear maps (QKV, output projection, MLP) touch
# each token on its own: $\approx 12\,N D^2$ multiply-adds. Attention compares every token with
# every other: $QK^\top$ and the weighted sum cost $2 N^2 D$. Doubling the image side multiplies
# $N$ by 4, the linear part by 4, and attention by 16. We *measure* one attention computation
# (softmax of $QK^\top/\sqrt{d}$ times $V$) at growing $N$ and fit the exponent.

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

# %% [markdown]
# At small $N$ fixed overheads hide the trend; at the large end the time grows close to
# quadratically. The check below only asks for clearly super-linear growth (a slope of at least
# 1.4), because a noisy laptop can bend the small end of the curve.

# %%
check.at_least(slope, 1.4, "measured growth exponent of attention time in N");

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
check.at_most(pixel_acc["hard"], 0.6, "raw pixels on 'hard' ShapeWorld stay far from solving shape");

# %% [markdown] tags=["slide"]
# ## 10. Exercises
#
# Each exercise has a cell for you (tagged `exercise`), a self-check that compares your answer
# with vislab, and a hidden solution (click the "…" to reveal it). The self-check prints
# "not attempted" until you replace the `raise NotImplementedError`.
#
# **Exercise 1.** Write `my_patchify(images, p)` with `reshape` and `permute` only.
# Hint: split H into (gh, P) and W into (gw, P), then move the axes to (B, gh, gw, P, P, C).

# %% tags=["exercise"]
def my_patchify(images, p):
    # TODO: (B, C, H, W) -> (B, N, P*P*C), row-major patches, each flattened as (row, column, channel)
    raise NotImplementedError


# %%
exercise_cases = [(torch.rand(2, 3, 32, 32), 8), (torch.rand(1, 3, 28, 42), 14), (torch.rand(1, 1, 4, 4), 2)]
check.exercise("Exercise 1: patchify", my_patchify, patchify, exercise_cases);

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_patchify(images, p):
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p)    # (B, C, gh, P, gw, P)
    x = x.permute(0, 2, 4, 3, 5, 1)                   # (B, gh, gw, P, P, C)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


check.exercise("Exercise 1 (solution)", solution_patchify, patchify, exercise_cases);

# %% [markdown]
# **Exercise 2.** How many tokens does a ViT with patch size `p` and a CLS token see for an
# image of height `h` and width `w`? Write `my_num_tokens(h, w, p)`.

# %% tags=["exercise"]
def my_num_tokens(h, w, p):
    # TODO: return the number of tokens (patches + 1 CLS)
    raise NotImplementedError


# %%
token_cases = [(224, 224, 16), (336, 336, 14), (448, 672, 14), (64, 32, 8)]
check.exercise("Exercise 2: token count", my_num_tokens, lambda h, w, p: num_tokens((h, w), p), token_cases);

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_num_tokens(h, w, p):
    return (h // p) * (w // p) + 1


check.exercise("Exercise 2 (solution)", solution_num_tokens, lambda h, w, p: num_tokens((h, w), p), token_cases);

# %% [markdown]
# **Exercise 3.** Turn a patch-embedding convolution into the equivalent linear weight matrix:
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
check.exercise("Exercise 3: conv → linear weight", my_conv_to_linear_weight, reference_weight, conv_cases);

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_conv_to_linear_weight(conv):
    D = conv.out_channels
    return conv.weight.detach().permute(0, 2, 3, 1).reshape(D, -1)   # (D, P, P, C) -> (D, P*P*C)


check.exercise("Exercise 3 (solution)", solution_conv_to_linear_weight, reference_weight, conv_cases);

# %% [markdown] tags=["slide"]
# ## 11. Summary
#
# - An image of $H \times W$ pixels cut into $P \times P$ patches is a sequence of
#   $N = HW/P^2$ vectors of length $P^2C$, in row-major order; `unpatchify` inverts it exactly.
# - The patch embedding is one linear map shared by all patches. `Conv2d(kernel=P, stride=P)`
#   computes exactly that (we matched it to float rounding) and is just the fastest way to do so.
# - 224/16 gives 196 patches + CLS = 197 tokens; 224/14 gives 257, 336/14 gives 577, 448/14
#   gives 1025.
# - Attention costs $\propto N^2 D$ against $\propto N D^2$ for the rest of a layer: it is a
#   small share at 197 tokens with $D=768$, but it dominates once $N$ exceeds a few times $D$,
#   which is why high-resolution encoders tile images (chapters 7 and 9) or compress tokens.
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

# %% [markdown] tags=["online"]
# ## Online: the same patching inside a real checkpoint (optional)
#
# With internet access, this cell loads `google/vit-base-patch16-224`'s patch embedding through
# `transformers` and checks that its convolution is a `PatchEmbed` with the same shapes. It is
# tagged `online`, so the offline tests skip it.

# %% tags=["online"]
from transformers import ViTModel

hf = ViTModel.from_pretrained("google/vit-base-patch16-224")
conv = hf.embeddings.patch_embeddings.projection                 # Conv2d(3, 768, 16, stride 16)
ours = PatchEmbed(224, 16, 3, 768)
ours.proj.load_state_dict(conv.state_dict())
with torch.no_grad():
    check.close(ours(x), conv(x).flatten(2).transpose(1, 2), "vislab PatchEmbed == the real ViT's patch embedding")

# %% [markdown] tags=["slide"]
# # 9장 · AnyRes: LLaVA-NeXT는 고해상도 이미지를 언어 모델에 어떻게 넣는가
#
# > **한국어판 (Korean edition)** · [영어 원문 (English original)](../09_anyres.ipynb) · [용어집 (glossary)](glossary.md)
# >
# > 이 한국어판의 코드 셀은 영어판에서 그대로 생성된다. 코드가 출력하는 메시지(✓/✗ 확인 줄, 위젯 이름표, 결과 문단)는 영어로 남는다.
#
# LLaVA-1.5는 모든 이미지를 336×336 뷰 한 장으로만 언어 모델에 보여 준다. LLaVA-NeXT (Liu et al.,
# *LLaVA-NeXT: Improved reasoning, OCR, and world knowledge*, 2024; 아이디어는 *Improved
# Baselines with Visual Instruction Tuning*, arXiv:2310.03744, 4절)는 같은 CLIP ViT-L/14@336을 그대로
# 쓰면서 더 많이 보여 준다. 짧은 타일 격자 목록에서 **캔버스** (canvas)를 하나 고르고, 종횡비
# (aspect ratio)를 바꾸지 않은 채 이미지를 그 안에 맞추고, 나머지를 **패딩** (padding)으로 채운 뒤,
# 캔버스를 336² **타일** (tile)로 자르고, 336² **썸네일** (thumbnail, "base image")을 더한다.
# 마지막으로 이어 붙인 특징 (feature)에서 **패딩을 제거** (unpad)하고, 각 행의 끝을 학습된 줄바꿈
# 토큰 (newline token)으로 표시한다. 이 "AnyRes" 방식과 InternVL의 동적 해상도 (dynamic resolution,
# 7장)는 같은 질문에 서로 다르게 답한다.
#
# **학습 목표**
# 1. `select_best_resolution`을 손으로 실행해 본다. 유효 픽셀, 낭비 픽셀, 동률 규칙, 그리고 노트의
#    코드에는 빠져 있는 상한을 다룬다.
# 2. 크기 조정과 패딩을 하고, 타일로 자르고, 패딩 제거를 할 때와 하지 않을 때의 토큰 수를 센다.
# 3. 같은 입력에서 AnyRes와 InternVL을 나란히 놓고 타일, 토큰, 낭비 픽셀을 비교한다.
# 4. 세부와 배치를 모두 알아야 하는 ShapeWorld 과제에서 썸네일이 무엇을 더하는지 측정한다.
# 5. 노트의 위치 임베딩 (position embedding) 질문에 타일링 쪽에서, 측정으로 답한다.
#
# 코드는 `vislab.anyres`에 있으며, 이 노트북은 그것을 임포트해서 보여 준다.

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
# ## 1. 직관: 종횡비를 지키고, 그 대가를 패딩으로 치른다
#
# InternVL은 이미지를 가장 가까운 격자에 맞게 *늘인다* (1:1 격자에 올린 4:3 사진은 찌그러진다).
# LLaVA-NeXT는 결코 왜곡하지 않는다. 이미지가 캔버스에 꼭 들어맞을 때까지 크기를 조정하고,
# 나머지를 검은색으로 채운다. 어떤 캔버스인가? 이미지의 픽셀을 가장 많이 보존하는 캔버스이고,
# 그것이 같다면 가장 적게 낭비하는 캔버스다. 기본 목록 (LLaVA-v1.6의 `image_grid_pinpoints`)에는
# 336 px 타일로 된 캔버스 다섯 개가 있다: 2×1, 1×2, 2×2, 3×1, 1×3. 모든 타일과 썸네일은 각각 따로
# ViT를 거치며 (패치 14에서 각각 토큰 576 개), 그다음 타일 특징들이 하나의 큰 격자로 다시 이어 붙는다.

# %%
from vislab.widgets.tiling import anyres_figure

photo = load_photo("china")                                         # PIL, 640×427
anyres_figure(photo)
plt.show()

# %% [markdown]
# ## 2. 수학
#
# $W \times H$ 픽셀 이미지와 후보 캔버스 $(w, h)$에 대해:
#
# $$ s = \min\left(\frac{w}{W}, \frac{h}{H}\right), \qquad
#    e = \min\big(\lfloor sW \rfloor \lfloor sH \rfloor,\ WH\big), \qquad
#    \text{waste} = wh - e .$$
#
# $s$는 이미지를 캔버스 안에 맞추는 배율이다. *유효* 해상도 $e$는 살아남는 이미지 픽셀 수를 세며,
# 확대 (upscaling)는 정보를 더하지 않으므로 $WH$를 상한으로 둔다. 캔버스의 나머지는 패딩 (또는
# 보간된 픽셀)이다. 선택되는 캔버스는 $e$를 최대화하는 것이다. 동률이면 낭비가 적은 쪽이, 완전히
# 동률이면 목록의 첫 번째 후보가 선택된다.
#
# 이미지는 $\big(w, \min(\lceil sH\rceil, h)\big)$ 또는 $\big(\min(\lceil sW\rceil, w), h\big)$ 크기로
# 조정되고 (제한하는 쪽의 변이 캔버스를 채운다), 가운데에 놓인 뒤 패딩된다. 타일이 $S$ px이고 패치가
# $P$이면, 각 뷰는 $g^2$ 개의 특징을 내며 $g = S/P$이다 (336/14에서는 24). 타일 특징들은
# $(g \cdot \text{rows}) \times (g \cdot \text{cols})$ 격자로 이어 붙는다. 패딩 제거는 패딩만 본 행
# (또는 열)을 없애, 이미지의 종횡비를 가진 $H' \times W'$ 격자를 남긴다. $H'$ 개의 행은 각각 줄바꿈
# 토큰 하나로 끝난다.
#
# $$ T = \underbrace{g^2}_{\text{thumbnail}} + \underbrace{H' W'}_{\text{tiles}} + \underbrace{H'}_{\text{newlines}} .$$

# %% [markdown] tags=["slide"]
# ## 3. 코드
#
# `vislab.anyres`의 모든 크기는 PIL과 LLaVA 자체 코드처럼 `(width, height)`이다.

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
# ## 4. 몇 가지 크기로 단계별로 보기

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
# 640×427 사진은 배율 1.05로 672×672에 들어간다. 273,280 개 픽셀이 모두 살아남으므로 (상한 때문에
# 정확히 $WH$가 된다), 캔버스의 오분의 이 ($672^2$ 픽셀 중 178,304 개)가 패딩인데도 2×2가 2×1을
# 이긴다. 1000×500 이미지는 2×1과 2×2 모두에서 672×336 픽셀을 보존한다 (2×2는 잘라 내지 않고는
# 그보다 크게 담을 수 없다). 동률은 아무것도 낭비하지 않는 2×1에게 돌아간다.
#
# **노트의 버전.** 노트의 `select_best_resolution`은 LLaVA 코드에 있는 `min(…, W·H)` 없이 `effective =
# downscaled_width * downscaled_height`를 계산한다. 캔버스보다 작은 이미지에서는 이것이 답을 바꾼다.
# 모든 캔버스가 이미지 전체를 담을 수 있으므로, 상한이 없으면 가장 큰 캔버스가 (확대된) 픽셀을 가장
# 많이 "보존"하게 되기 때문이다.

# %%
# NBVAL_CHECK_OUTPUT
show_scores((300, 300))
show_scores((300, 300), cap_upscaling=False)
with_cap = anyres_num_tokens((300, 300)).total
canvas = select_best_resolution((300, 300), cap_upscaling=False)
notes_tokens = anyres_num_tokens((300, 300), [canvas]).total    # the same image on the canvas the notes pick
print(f"tokens: LLaVA's rule {with_cap:,}, the notes' rule {notes_tokens:,} for a 300×300 icon")

# %% [markdown]
# `transformers`도 같은 함수를 구현하지만 모든 크기를 `(height, width)` 순서로 둔다. LLaVA-NeXT의
# 기본 목록에서는 이 혼동이 드러날 수 없다. 목록이 대칭이기 때문이다 (2×1과 1×2, 3×1과 1×3).
# 비대칭 목록에서는 드러난다. `transformers`가 설치되어 있으면, 이 셀은 쌍을 뒤바꾼 뒤 vislab이 그것과
# 일치하는지 확인하고, 뒤바꾸지 않으면 어떻게 되는지 보여 준다.

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
# ## 5. 크기 조정, 패딩, 타일 나누기, 패딩 제거
#
# 같은 사진으로 전체 파이프라인을 따라가 보자. 캔버스는 672×672이고, 이미지는 672×449로 크기가
# 조정되어 가운데에 놓인다. 그래서 위에는 검은 행 111 개, 아래에는 112 개가 놓인다 (홀수로 남는 한
# 행은 아래로 간다). 2×2 타일과 썸네일이 인코더가 보는 다섯 개의 뷰다. 인코딩 후 이어 붙인 특징
# 격자는 48×48이며, 패딩 제거는 이미지를 본 32 개 행을 남긴다.

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
# 패딩은 기하가 예측하는 자리에 있다. 캔버스의 행 $0$부터 $110$까지와 $111 + 449 = 560$부터 $671$까지가
# 검은색이다. 캔버스를 타일로 자른 뒤 다시 조립해도 잃는 것은 없다.

# %%
# NBVAL_CHECK_OUTPUT
canvas_t = to_tensor(canvas_img)                                   # (3, 672, 672)
tiles_t = divide_to_patches(canvas_t, 336)                          # 4 x (3, 336, 336), row-major
rebuilt = torch.cat([torch.cat(tiles_t[0:2], dim=2), torch.cat(tiles_t[2:4], dim=2)], dim=1)
check.equal(rebuilt, canvas_t, "tiles reassembled row-major == the canvas")
print("rows of pure padding at the top:", int((canvas_t.sum(dim=(0, 2)) == 0)[:200].sum()),
      " at the bottom:", int((canvas_t.sum(dim=(0, 2)) == 0)[400:].sum()))

# %% [markdown] tags=["slide"]
# ## 6. AnyRes 뷰어
#
# 너비와 높이 슬라이더 (사진이 그 크기로 늘여진다) → 모든 후보 캔버스의 점수 (선택된 것은 강조) →
# 패딩 (빨간색)과 타일이 표시된 캔버스 → 인코더가 보는 썸네일과 타일 → 이어 붙인 특징 격자 (패딩
# 제거로 없어지는 부분은 회색)와, 패딩 제거를 할 때와 하지 않을 때의 토큰 수, 그리고 그 옆의
# InternVL 토큰 수. 336×336, 1000×300, 300×1000, 4032×3024를 시도해 보거나, **your image**로 직접
# 사진을 올려 보자. (실행 중인 커널이 없으면 기본 화면이 보인다.)

# %%
# NBVAL_IGNORE_OUTPUT
from vislab.widgets.tiling import anyres_viewer

viewer = anyres_viewer({"china": photo, "flower": load_photo("flower")})

# %% [markdown] tags=["slide"]
# ## 7. 같은 입력에서의 AnyRes와 InternVL
#
# 입력은 7장의 예산 표와 같다. "Wasted"(낭비)는 캔버스 중 원본 픽셀을 하나도 담지 않은 부분의
# 비율이다. 즉 패딩이거나 작은 이미지를 확대할 때의 보간으로, LLaVA의 $(wh - e)/wh$에 해당한다.
# InternVL에서 캔버스는 이미지를 크기 조정해 맞추는 타일 격자이며, InternVL은 패딩 대신 이미지를
# 늘인다 ("stretch"는 종횡비가 얼마나 휘었는지를 나타낸다). "Kept"(보존)는 타일이 보존하는 선형
# 해상도다. 썸네일은 "views"와 토큰 수에는 세지만 낭비에는 세지 않는다.

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
# 표 읽기 (아래 문장들은 표에서 생성된다):

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
# LLaVA-OneVision은 뒤에 AnyRes를 384 px 크롭 최대 6×6 격자로 넓혔고, 총량이 대략 크롭 아홉 개
# 분량을 넘으면 각 크롭의 토큰을 줄여 (쌍선형 보간) 총량을 억제하는데, 이것이 "anyres_max_9"이다
# (cited: LLaVA-OneVision, arXiv:2408.03326, its Higher AnyRes strategy). 이로써 해상도 격차의 상당
# 부분을 좁힌다.

# %% [markdown] tags=["slide"]
# ## 8. 실험: 썸네일은 무엇을 더하는가?
#
# 타일은 세부를 보존하지만 각 타일은 따로 인코딩되므로, 어떤 타일도 장면 전체를 보지 못한다.
# 썸네일은 장면 전체를 보지만 해상도가 낮다. 7장의 인코더 (`detail_glyphs`: 픽셀 셔플 (pixel
# shuffle)과 프로젝터 (projector)를 갖춘 32² 뷰용 ViT로, 원본 해상도 크롭과 축소된 캔버스로 학습됨)를
# 쓰고, 모든 캔버스에 두 가지 질문을 던진다. *작은 글리프는 어떤 도형인가?* (세부) 그리고 *글리프는
# 큰 도형의 왼쪽, 오른쪽, 위, 아래 중 어디에 있는가?* (배치). 타일은 32 px 타일을 쓰는 AnyRes를
# 따르며, 타일 12 개 이하인 모든 격자가 후보다. 각 파이프라인은 질문마다 가장 확신하는 뷰로 답한다.
# 뷰들은 별개의 이미지처럼 서로 독립적으로 읽힌다.

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
# 이 축소판 실험에 대한 단서: 여기서는 뷰를 독립적으로 읽으므로, 판독기는 이미지 안에서 타일의
# 위치를 알지 못한다. LLaVA-NeXT에서 언어 모델은 2D 배열대로 이어 붙이고 행마다 줄바꿈 토큰을 넣은
# 타일 특징을 읽으므로, 그렇게 학습하기만 한다면 서로 다른 타일에 있는 것들을 연관 지을 *수 있다*.
# InternVL에서는 타일을 행 우선 순서로 읽는다. 그래도 *인코더*가 글리프와 도형을 함께 보는 뷰는
# 여전히 썸네일뿐이다.

# %% [markdown] tags=["slide"]
# ## 9. 노트의 질문: 위치 임베딩을 더 높은 해상도로 어떻게 확장하는가?
#
# 노트는 세 가지 답을 든다. 학습된 표를 쌍삼차 (bicubic) 보간하거나, 2D RoPE를 쓰거나, 타일로
# 나누는 것이다 (각 타일은 학습 해상도를 유지한다). 타일링 쪽에서 보면 요점은 단순하다. **모든
# 타일과 썸네일은 정확히 학습 때의 크기를 가지므로**, 위치 표는 학습된 격자 위에서 그대로 쓰이고
# 결코 리샘플링되지 않는다. 같은 인코더로 할 수 있는 대안은 캔버스를 원본 해상도 그대로 통째로 넣는
# 것이다. 128×96 캔버스는 12×16 패치 격자이며, `vislab.vit`은 4×4 표를 거기에 맞게 쌍삼차 보간으로
# 리샘플링한다 (2장의 ViT). 글리프 질문으로 둘을 비교한다.

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
# **세 가지가 한꺼번에 바뀐다.** 캔버스를 통째로 넣으면 위치만 리샘플링되는 것이 아니다.
# (1) *위치*: 표가 한 번도 본 적 없는 격자로 리샘플링된다. (2) *문맥*: 모든 패치가 캔버스 전체, 즉
# 타일 8-12 개 분량의 패치에 어텐션한다 (CLS 토큰은 전체에 하나). 반면 타일의 패치는 자기 타일과
# 그 CLS에만 어텐션한다. (3) *풀링*: 강의의 판독기는 헤드에 넣기 전에 뷰의 토큰을 평균하므로,
# 캔버스 전체는 토큰 32-48 개의 평균 하나로 읽히고 타일은 토큰 4 개의 평균으로 읽힌다. 그래서 작은
# 글리프가 8-12 배 더 희석된다. "타일"과 "보간된 뷰 하나" 사이의 격차는 셋 중 어느 것에서든 올 수
# 있으므로, 같은 300 개 캔버스에서 3 × 2 격자의 실험군 (arm)을 측정한다. 각 실험군은 이웃한
# 실험군과 한 가지만 다르다.
#
# | 인코딩 ↓ / 판독 → | **32 px 블록별** (토큰 4 개의 평균; 8절처럼 가장 확신하는 블록이 이긴다) | **모든 토큰** (이미지의 모든 토큰에 대한 평균 하나) |
# |---|---|---|
# | **타일**: 학습 크기의 AnyRes 타일, 각각 따로 인코딩 (썸네일 없음: 전체 뷰에는 썸네일이 없다) | 8절의 타일 | 풀링 대조군 |
# | **전체 뷰, 학습된 표 반복**: 캔버스를 한 번에 통과시키고, 모든 32 px 블록에 학습 때의 4×4 표를 준다 | 문맥 대조군 | 문맥 대조군 |
# | **전체 뷰, 표 보간**: 캔버스를 한 번에 통과시키고, 표를 쌍삼차 보간으로 리샘플링한다 (`vislab.vit`의 기본값) | 위치 대조군 | 위치 대조군이자, 타일과 맨 먼저 맞대어 보는 뷰 |
#
# 열을 따라 내려가면 인코딩만 바뀌고, 행을 따라가면 풀링만 바뀐다. "타일"과 "학습된 표 반복"은
# 모든 블록에 같은 위치를 주며 문맥만 다르다. "반복"과 "보간"은 문맥이 같고 위치 표만 다르다. 이
# 캔버스들의 AnyRes 타일은 정확히 32 px 블록과 같으므로 (모든 캔버스는 타일의 정수 배이며, 아래에서
# 검증한다), 전체 뷰의 블록 *i*는 타일 *i*의 픽셀을 덮는다. 축소된 뷰 하나 (8절의 썸네일: 학습 크기,
# 세부 없음)가 하한선이다.

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
# 위의 검증들을 각 문장의 근거로 삼아, 이 격자가 말하는 바를 정리한다. 타일에서는 풀링이 중요하다.
# 캔버스의 모든 토큰에 대한 평균 하나는 글리프를 희석하고, 그렇게 읽으면 타일은 앞서던 차이의 상당
# 부분을 잃는다. 하지만 풀링이 같으면 어느 열에서든 타일이 원본 해상도 뷰보다 위에 있으므로, 풀링이
# 격차의 전부는 아니다. 위치 표도 격차의 원인이 아니다. 모든 블록에 학습된 4×4 표를 반복한 전체 뷰,
# 즉 각 타일이 받는 것과 똑같은 위치를 쓰는 전체 뷰는 보간된 표를 쓰는 전체 뷰와 구별되지 않는다.
# 실험군을 가르는 것은 문맥이다. 같은 위치를 가진 같은 패치를 타일별로가 아니라 캔버스 전체에 걸쳐
# 함께 인코딩했다는 점이 다르다. 32 px 뷰로만 학습된 인코더는 타일 8-12 개 분량의 패치에 걸쳐
# 어텐션해 본 적이 없으며, 여기서 감당하지 못하는 것은 리샘플링된 표가 아니라 바로 그것이다. 따라서
# 노트의 질문에 대한 *이 인코더*의 답은 이렇다. 타일링이 통하는 이유는 인코더가 보는 입력 전체 (그
# 크기, 어텐션 범위, 토큰 통계)를 학습 조건으로 유지하기 때문이다. 보간된 표를 학습된 표로 바꿔도
# 300 개 캔버스로 검출할 수 있는 차이는 생기지 않았다. 이 측정은 보간한 뒤 새 크기에서 학습하는
# 경우를 시험하지 않는데, 실제로 보간은 그렇게 쓰인다 (ViT는 보간된 표로 더 높은 해상도에서 미세
# 조정 (fine-tuning)하고, DINOv2는 518 px에서의 짧은 단계로 사전 학습을 마친다; cited: ViT paper,
# arXiv:2010.11929, sec. 3.2, and DINOv2, arXiv:2304.07193, sec. 4). 타일링은 그런 학습 없이도
# 통하지만, 토큰 수와 서로를 보지 못하는 타일이라는 대가를 치른다. 2D RoPE (Qwen2-VL, 그리고 2장의
# `pos_embed="rope"`)는 상대 오프셋을 인코딩하므로, 격자가 커져도 학습 때 본 범위를 넘는 오프셋이
# 추가될 뿐이다. (InternViT 자체는 학습된 절대 위치 표를 쓴다; 7장, §9.)

# %% [markdown] tags=["slide"]
# ## 10. 연습
#
# 연습 (exercise)은 네 종류다. **구현** (build: 수학으로부터 한 부분을 작성하고 vislab과 대조한다),
# **예측** (predict: 아무것도 실행하기 전에 숫자 하나를 정해 둔다), **디버그** (debug: 심어 둔 버그를
# 찾아 고친다), **절제 실험** (ablate: 손잡이 하나를 바꾸고, 측정하고, 무엇이 달라졌는지 말한다).
# 각 연습에는 여러분이 채울 셀 (`exercise` 태그와 `TODO`가 붙어 있다), 무엇을 기대했고 무엇이
# 나왔으며 무엇을 시도해 볼지 알려 주는 자가 검증, 그리고 숨겨진 풀이 ("…"를 클릭하면 보인다)가
# 있다. 자가 검증은 TODO를 채우기 전까지 "not attempted"를 출력하며, 노트북을 멈추지 않는다.
#
# **연습 1 (Exercise 1, 구현).** `(width, height)` 크기에 대한 LLaVA의 `select_best_resolution`을,
# 유효 해상도의 상한을 *포함해서* 작성하라.

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
# **연습 2 (Exercise 2, 구현).** 패딩 제거 후 특징 격자의 모양을 구하는 `my_unpadded_shape((Hc, Wc),
# (W, H))`를 작성하라. 이미지가 격자보다 가로로 길면 ($W/H > W_c/H_c$) 행이 패딩된 것이다. 이미지는
# `round(H * Wc / W)` 개의 행을 덮고, 위와 아래에서 같은 수의 행이 제거된다 (각각 `(Hc - that) // 2`).
# 그렇지 않으면 열에 대해 같은 방식으로 한다.

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
# **연습 3 (Exercise 3, 구현).** 기본 격자를 쓸 때 `(width, height)` 이미지에 대한 LLaVA-NeXT의 토큰
# 수: 썸네일 (24·24) + 패딩 제거된 타일 특징 + 특징 행마다 줄바꿈 하나. `select_best_resolution`과
# `unpadded_shape`를 사용하라.

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
# **연습 4 (Exercise 4, 예측한 뒤 실행).** `1000×400` 이미지는 2:1보다 가로로 길다. 아무것도 실행하기
# 전에, 이 이미지가 LLaVA-NeXT의 다섯 캔버스 중 어느 것 (`(width, height)`)을 받는지, 그리고 패딩
# 제거를 하지 않을 때와 할 때 각각 LLM 토큰 (썸네일 + 타일 + 줄바꿈)이 몇 개인지 종이와 펜으로
# 계산해 보라.

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
# **연습 5 (Exercise 5, 디버그).** 아래 동료의 `unpad`는 정사각형 이미지에서도, 손으로 시험해 본 모든
# 캔버스에서도 통과하지만, 병합된 뒤로 가로로 긴 스크린숏에 대한 LLaVA의 답이 나빠졌다. 버그를 찾아
# 고치라 (한 줄이다).

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
# **연습 6 (Exercise 6, 절제 실험).** 손잡이: 후보 목록. LLaVA-NeXT의 캔버스 다섯 개를 1×1과 2×2만으로
# (`SMALL_GRIDS`) 바꾼다. (a) `vislab.anyres`로 `ablation_row(size, candidates)`를 작성하라. 선택된
# 캔버스, 그중 이미지 픽셀을 담지 않은 비율 (7절처럼 $(wh - e)/wh$), 인코더가 실행하는 뷰 수 (타일 +
# 썸네일), LLM 토큰 수를 반환한다. (b) 그다음 가로로 긴 `1000×500` 이미지에 두 목록을 모두 적용해
# 보고 답하라. `SMALL_GRIDS`에서 LLM 토큰은 늘어나는가 (`"up"`), 줄어드는가 (`"down"`), 아니면 그대로인가
# (`"same"`)? (c) `SMALL_GRIDS`에서 인코더는 이 이미지에 대해 뷰를 몇 개 실행하는가?

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
# ## 11. 요약
#
# - AnyRes는 고정된 캔버스 목록에서 이미지 픽셀을 가장 많이 보존하는 캔버스 (이미지 자체의 픽셀 수가
#   상한)를, 그다음으로 낭비가 가장 적은 캔버스를 고른다. 이미지를 왜곡 없이 맞추고, 패딩하고, 336²
#   타일로 자른다. 썸네일이 맨 앞에 온다.
# - 인코딩 후 이어 붙인 타일 특징은 이미지의 종횡비에 맞게 패딩이 제거되고, 모든 행은 줄바꿈 토큰으로
#   끝난다. LLaVA-NeXT에서는 $T = 576 + H'W' + H'$이다.
# - 같은 입력에서 InternVL과 비교하면: LLaVA-NeXT의 목록은 2×2 타일이 최대이고, 픽셀 셔플이 없으며
#   (뷰당 토큰 576 개 대 256 개), InternVL이 늘이는 곳에서 패딩한다.
# - 썸네일은 배치를, 타일은 세부를 담는다. 축소판 실험에서 둘 다에 관한 질문에 답하려면 둘 다 필요하다.
#   타일은 위치 임베딩 보간 문제도 비켜 간다. 각 뷰가 학습 크기이기 때문이다. 풀링을 같게 두면, 원본
#   해상도 뷰 하나는 표를 보간하든 학습된 표를 반복하든 타일보다 아래에 머문다. 인코더에게는 학습 때의
#   문맥이 필요하며, 표만 바꿔서는 검출할 수 있는 차이가 없었다.

# %% [markdown]
# ## 질문지 (Questionnaire)
#
# 1. `select_best_resolution`은 무엇을 최대화하는가? 동률은 무엇으로 가르고, 완전한 동률은 무엇으로
#    가르는가?
# 2. 유효 해상도는 왜 이미지 자체의 $W \cdot H$를 상한으로 하는가? 상한이 없으면 작은 아이콘은 어떤
#    캔버스를 받으며, 그 대가는 무엇인가?
# 3. AnyRes는 패딩하고 InternVL은 늘인다. 각각 무엇을 포기하는가?
# 4. 크기가 조정된 이미지는 캔버스의 어디에 놓이며, 홀수로 남는 픽셀 행은 어디로 가는가?
# 5. 이 코드에서 크기는 왜 함정인가? LLaVA와 `transformers` 사이의 (width, height) 대 (height, width)
#    혼동은 왜 LLaVA-NeXT의 기본 목록에서 드러나지 않았는가?
# 6. 패딩 제거는 무엇을 없애며, 어떤 이미지에서는 아무것도 없애지 않는가?
# 7. 이어 붙인 특징 격자의 모든 행은 왜 줄바꿈 토큰으로 끝나는가?
# 8. 5절의 사진에 대한 LLM 토큰 수를 세어 보라. 2×2 캔버스이며, 이어 붙인 격자는 패딩 제거 후 48 개
#    행 중 32 개를 남긴다.
# 9. 타일에 모든 세부가 담겨 있다. 그런데 왜 썸네일을 두며, 왜 썸네일이 맨 앞에 오는가?
# 10. 큰 입력에서 LLaVA-NeXT는 InternVL보다 적은 뷰를 보여 주는데도 총 토큰 수는 같은 규모다. 왜인가?
# 11. 타일링은 위치 임베딩 보간을 어떻게 비켜 가는가? 타일과 원본 해상도 뷰 하나를 비교하면 세 가지가
#     한꺼번에 바뀐다. 그것은 무엇이며, 9절의 어떤 실험군이 각각을 분리하는가?

# %% [markdown] tags=["solution"]
# **정답 (Answers)**
#
# 1. 유효 해상도, 즉 종횡비를 유지하며 캔버스에 맞췄을 때 이미지 픽셀이 몇 개나 살아남는가이다.
#    동률이면 픽셀 (패딩 또는 보간)을 가장 적게 낭비하는 캔버스가, 완전히 동률이면 목록의 첫 번째
#    후보가 선택된다.
# 2. 확대는 정보를 더하지 않는다. $W \cdot H$를 넘는 "유효" 픽셀은 모두 보간된 것이다. 상한이 없으면
#    모든 캔버스가 아이콘 전체를 담고 가장 큰 캔버스가 가장 높은 점수를 받으므로, 아주 작은 이미지가
#    아무 이득 없이 2×2 타일과 훨씬 많은 토큰 (4절)을 받는다.
# 3. 패딩은 종횡비를 지키므로 모양이 왜곡되지 않지만, 캔버스의 일부 (그리고 인코더 작업의 일부)를 검은
#    픽셀에 쓴다. 늘이기는 캔버스의 모든 픽셀을 쓰지만 종횡비를 휘게 하므로, 원이 타원이 될 수 있다.
# 4. 가운데에 놓인다. 제한하는 쪽의 변이 캔버스를 채우고, 다른 방향의 패딩은 양쪽에 똑같이 나뉘며,
#    홀수로 남는 행 (또는 열)은 아래 (또는 오른쪽)로 간다.
# 5. PIL과 LLaVA의 코드는 `(width, height)`로, 텐서와 `transformers`는 `(height, width)`로 쓴다. 두
#    순서 모두 정수 쌍이므로 아무것도 실패하지 않고, 정사각형이 아닌 크기에서 결과가 틀릴 뿐이다
#    (연습 5). LLaVA-NeXT의 목록은 대칭이므로 (2×1과 1×2, 3×1과 1×3) 모든 쌍을 뒤바꿔도 같은 목록이
#    된다. 비대칭 목록에서는 두 순서가 서로 다른 캔버스를 고른다.
# 6. 이어 붙인 특징 격자에서 패딩만 본 행 (또는 열)을 없애, 이미지의 종횡비를 가진 격자를 남긴다.
#    이미지의 종횡비가 캔버스의 종횡비와 같으면 아무것도 없애지 않는다. 예를 들어 2×1 캔버스 위의
#    2:1 이미지가 그렇다 (연습 6: 절반이 패딩인 2×2 캔버스에서도 같은 격자가 나온다).
# 7. 언어 모델은 하나의 시퀀스를 읽는다. 패딩 제거 후 격자의 너비는 이미지에 따라 달라지므로, 표시가
#    없으면 모델은 한 행이 어디서 끝나고 다음 행이 어디서 시작하는지 알 수 없어 2D 배치를 잃는다.
# 8. $T = 24^2 + 32 \cdot 48 + 32$: 썸네일, 패딩 제거된 타일 특징, 그리고 남은 행마다 줄바꿈 하나다
#    (5절이 같은 합계를 출력한다).
# 9. 각 타일은 따로 인코딩되므로 어떤 타일도 장면 전체를 보지 못한다. 썸네일은 낮은 해상도로나마
#    전체를 본다. 8절의 축소판 실험은 둘 다 있을 때 세부와 배치를 함께 묻는 질문에 훨씬 더 자주
#    맞힌다. LLaVA-NeXT의 시퀀스에서 썸네일은 맨 앞에 온다 ("base image" 다음에 타일이 행 우선
#    순서로). InternVL은 썸네일을 맨 뒤에 둔다.
# 10. LLaVA-NeXT는 모든 뷰에 토큰 576 개를 쓰고 (픽셀 셔플 없음), InternVL은 448 px 타일 하나에
#     256 개를 쓰므로, 뷰가 더 많아도 토큰은 비슷하게 든다.
# 11. 모든 타일과 썸네일은 학습 크기이므로, 위치 표는 학습된 격자 위에서 쓰이고 결코 리샘플링되지
#     않는다. 전체 뷰는 위치 (리샘플링된 표), 문맥 (모든 패치가 캔버스 전체에 어텐션), 풀링 (훨씬 많은
#     토큰의 평균 하나)을 바꾼다. 타일을 모든 토큰의 평균 하나로 읽고 전체 뷰를 32 px 블록별로 읽으면
#     풀링이 통제된다. 모든 블록에 학습된 표를 반복한 전체 뷰는 타일과 위치가 같아 타일과는 문맥만
#     다르고, 보간된 전체 뷰와는 표만 다르다. 9절에서 풀링은 타일에 큰 손해를 주지만, 풀링이 같으면
#     타일이 여전히 이기고, 두 표는 구별되지 않으며, 격차를 만드는 것은 문맥이다.

# %% [markdown]
# ## 12. 노트 검증

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
# **맺음말.** 이번 실행에서 측정한 비교 표 (7절)와 썸네일 실험 (8절):

# %%
for name, w, h in inputs:
    a, b = table[name]
    print(f"{name:<27} AnyRes {a['grid']:>4}: {a['tokens']:>6,} tokens, {a['wasted']:>4.0%} wasted, {a['kept']:>4.0%} kept"
          f" | InternVL {b['grid']:>4}: {b['tokens']:>6,} tokens, {b['wasted']:>4.0%} wasted, {b['kept']:>4.0%} kept")
print("thumbnail experiment (both questions right): " + ", ".join(f"{k} {v['both']:.1%}" for k, v in results.items()))

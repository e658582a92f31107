# %% [markdown] tags=["slide"]
# # 7장 · InternViT: 동적 해상도, 픽셀 셔플, MLP 프로젝터
#
# > **한국어판 (Korean edition)** · [영어 원문 (English original)](../07_internvit.ipynb) · [용어집 (glossary)](glossary.md)
# >
# > 이 한국어판의 코드 셀은 영어판에서 그대로 생성된다. 코드가 출력하는 메시지(✓/✗ 확인 줄, 위젯 이름표, 결과 문단)는 영어로 남는다.
#
# 비전 인코더 (vision encoder)는 한 가지 해상도 (resolution)로 학습된다. InternViT는 448×448, CLIP ViT-L/14는 224 또는
# 336이다 (cited: InternVL 1.5 and CLIP model cards). 휴대폰 사진은 4032×3024 픽셀이고 스캔한 페이지는 2480×3508이다.
# 어느 쪽이든 448² 뷰 하나로 욱여넣으면 작은 글씨, 가는 선, 작은 물체가 패치 (patch) 하나의 크기보다 작아진다.
# InternVL 1.5(Chen et al., *How Far Are We to GPT-4V?*, arXiv:2404.16821)는 인코더는 그대로 두고 인코더에
# 보여 주는 것을 바꾼다. 이미지를 (거의) 원래 해상도 그대로 448² **타일** (tile)로 자르고, 전체를 담은
# **썸네일** (thumbnail) 하나를 더한다. 각 타일의 특징 (feature)은 **픽셀 셔플** (pixel shuffle)로 4× 압축되고,
# **MLP 프로젝터** (MLP projector)가 언어 모델의 폭으로 사상한다.
#
# **이 장에서 할 일**
# 1. 실제 크기들에서 InternVL의 격자 선택(가장 가까운 종횡비 (aspect ratio), 동률 규칙, 12-타일 상한)을 따라간다.
# 2. 토큰 (token) 수를 계산한다. 패치 14에서 448 px는 1024 토큰이고, 픽셀 셔플 후에는 256 토큰이다.
# 3. 픽셀 셔플이 숫자를 옮기기만 한다는 것(정확한 역변환이 있다)을 증명하고 그 채널 순서를 알아낸다.
# 4. 4·C에서 LLM 폭으로 가는 프로젝터 (projector, LayerNorm → Linear → GELU → Linear)를 만든다.
# 5. ShapeWorld 세부 인식 과제에서 작은 인코더가 타일링 (tiling)으로 얻는 이득을, 축소 (downscale)한 이미지를 받은
#    같은 인코더와, 그리고 타일만큼 토큰을 쓰지만 원래 해상도의 세부는 담지 않은 뷰와 비교해 측정한다. 또
#    휴대폰 사진, 페이지, 파노라마의 토큰 예산을 짠다.
#
# 코드는 `vislab.internvit`에 있다. 이 노트북은 그것을 임포트해서 보여 준다.

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
# ## 1. 직관: 더 큰 인코더가 아니라 더 많은 픽셀을 보여 주기
#
# 448²로 학습한 인코더에 640×427 사진을 넣는 방법은 두 가지다. 448² 뷰 하나로 욱여넣거나
# (LLaVA-1.5는 정사각형으로 패딩 (padding)한 뒤 336²로 크기를 바꾼다 (cited: LLaVA-1.5, arXiv:2310.03744)), 사진의 모양에 맞는
# 448² 타일 격자로 자르고 욱여넣은 뷰를 썸네일로 더하는 것이다. 타일은 세부를 지키고, 썸네일은 장면 전체를
# 한 뷰에 담는다. 뷰 하나에 ViT 토큰이 $(448/14)^2 = 1024$개 들기 때문에 대가는 토큰으로 치르며, 그래서
# InternVL은 언어 모델이 읽기 전에 모든 뷰를 256 토큰으로 압축하기도 한다.

# %%
from vislab.widgets.tiling import internvl_figure

photo = load_photo("china")                                   # PIL, 640×427
internvl_figure(photo, max_num=12)
plt.show()

# %% [markdown]
# ## 2. 수식
#
# **격자 선택.** $W \times H$ 픽셀 이미지와 타일 한 변 $S$(448)에 대해, InternVL은
# $n_{\min} \le ij \le n_{\max}$(1과 12)인 $i$열 $j$행의 모든 격자를 고려하고,
# 종횡비가 이미지와 가장 가까운 것을 고른다.
#
# $$ (i, j) = \arg\min_{(i,j)} \left| \frac{W}{H} - \frac{i}{j} \right| .$$
#
# 비율이 같은 격자들(1×1, 2×2, 3×3)은 정확히 동률이다. 후보를 $ij$가 커지는 순서로 훑을 때, 동률이면
# $WH > \tfrac12 S^2 ij$일 때만 더 큰 격자로 옮겨 간다. 이미지가 그 격자 픽셀 수의 절반 이상은 가져야 한다는
# 뜻이며, 그래서 작은 이미지가 많은 타일로 부풀려지지 않는다. 그런 다음 이미지를 $(iS, jS)$로 크기를 바꾸고
# (패딩이 아니라 늘린다), 행 우선으로 $ij$개 타일로 자르며, $ij > 1$이면 썸네일(이미지 전체를 $S \times S$로)을
# 덧붙인다.
#
# **토큰.** 타일 하나는 패치 토큰 $(S/P)^2$개를 준다. 인수 $r = 2$의 픽셀 셔플은 각 $2\times2$ 블록을 토큰
# 하나로 합치므로, 언어 모델이 받는 토큰은 다음과 같다.
#
# $$ T = \left(ij + [ij>1]\right) \cdot \left(\frac{S}{rP}\right)^2 = (ij + 1)\cdot 256 \quad (S{=}448,\ P{=}14). $$
#
# **픽셀 셔플** (space-to-depth). 패치 격자 위의 특징 $x \in \mathbb{R}^{W \times H \times C}$에 대해
# 출력 $y \in \mathbb{R}^{W/r \times H/r \times r^2C}$는 다음과 같다.
#
# $$ y[u, v, (a r + b) C + c] = x[r u + a,\ r v + b,\ c], \qquad a, b \in \{0, \dots, r-1\}. $$
#
# 모든 입력 숫자는 정확히 한 출력 칸에 놓인다. 이 사상은 순열이므로 역변환이 있다.
#
# **프로젝터** (InternVL의 `mlp1`): $h = W_2\,\mathrm{GELU}(W_1\,\mathrm{LN}(y) + b_1) + b_2$이며,
# $W_1 \in \mathbb{R}^{D \times 4C}$, $W_2 \in \mathbb{R}^{D \times D}$, $D$는 LLM의 폭이다.

# %% [markdown] tags=["slide"]
# ## 3. 코드
#
# InternVL의 `dynamic_preprocess`와 같은 방식의 후보 격자, 격자 선택, 타일링:

# %%
vislab.show_source(candidate_grids)
vislab.show_source(find_closest_aspect_ratio)

# %%
vislab.show_source(dynamic_preprocess)

# %% [markdown]
# 픽셀 셔플과 그 역변환은 각각 reshape 한 번, 순열 한 번, reshape 한 번이다. 모양 주석이 곧 계약이다.
# `version="v1"`은 InternVL의 첫 릴리스를 재현한다. 이 버전은 축을 다시 맞바꾸는 것을 잊어서 LLM에 전치된
# 격자를 넘겼다.

# %%
vislab.show_source(pixel_shuffle)
vislab.show_source(inverse_pixel_shuffle)

# %%
vislab.show_source(MLPProjector)

# %% [markdown] tags=["slide"]
# ## 4. 모양 확인: 1024 → 256 토큰, 그리고 되돌리기
#
# InternViT-300M의 폭은 $C = 1024$이고, InternVL2-1B의 언어 모델(Qwen2-0.5B)의 폭은
# $D = 896$이다 (cited: the InternVL2-1B and Qwen2-0.5B model cards). 448² 타일 하나를 전체 경로에 통과시켜 보자.

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
# 프로젝터의 파라미터는 $4096 \cdot 896 + 896^2$에 편향 (bias)과 LayerNorm을 더한 것이다. 인코더의 300 M에 비하면
# 작다 (cited: InternVL 1.5 paper, arXiv:2404.16821, InternViT-300M; counted in section 9). 이제 픽셀 셔플이 "아무것도 잃지 않고
# 압축한다"는 주장을 보자. 픽셀 셔플은 순열이므로, 역변환은 모든 숫자를 비트 단위까지 그대로 돌려준다.
# 채널 배치는 위의 식을 따르며, PyTorch 자체의 space-to-depth(`F.pixel_unshuffle`, PyTorch가 이 방향에 붙인
# 이름)는 같은 숫자를 다른 채널 순서($(a r + b) C + c$ 대신 $c\,r^2 + a r + b$)로 담는다.

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
# 한 변이 홀수인 격자는 2×2 블록으로 나눌 수 없다. InternVL의 코드(그리고 `transformers`의 포팅 버전. 그 검사
# `height % 0.5`는 항상 0이다)는 여기서 알기 어려운 reshape 오류를 내며 실패한다. vislab은 무엇이 잘못되었고
# 무엇이 되는지 알려 준다.

# %%
# NBVAL_CHECK_OUTPUT
try:
    pixel_shuffle(torch.zeros(1, 7, 7, 64))            # 112 px at patch 16: a 7×7 grid
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# `transformers`가 설치되어 있으면(강의 테스트에는 설치되어 있다. Binder는 강의의 requirements만 설치한다),
# 그 InternVL 포팅과, `dynamic_preprocess`를 구현한 GOT-OCR2 이미지 프로세서에서도 같은 숫자가 나온다.

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
# ## 5. 격자 선택, 한 단계씩
#
# 640×427 사진(종횡비 1.499)에 대해 모든 후보 격자, 그 종횡비, 이미지 종횡비와의 거리를 본다. 3×2(비율 1.5)가
# 이긴다. 448² 타일 6개는 1344×896 픽셀이라는 점에 주의하자. 사진은 *확대* (upscaling)된다(마지막 줄). 그 격자 픽셀
# 수의 절반보다 많은 픽셀을 가지기 때문이다.

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
# 동률 규칙이 작동하는 모습: 896×448과 1792×896은 종횡비가 2로 같으며, 2×1과 4×2가 이 비율에 정확히
# 맞는다. 작은 이미지는 타일 2개를 유지하고, 큰 이미지는 4×2 격자 픽셀 수의 절반
# ($\tfrac12 \cdot 448^2 \cdot 8 = 802{,}816$)보다 많으므로 8개를 받는다. 정사각형 이미지는 픽셀이
# $\tfrac12 \cdot 448^2 \cdot 4 = 401{,}408$개보다 많아지는 순간($633^2$이 아니라 $634^2$) 1×1에서 2×2로, 그리고
# $\tfrac12 \cdot 448^2 \cdot 9 = 903{,}168$($951^2$)을 넘으면 3×3으로 옮겨 간다.
#
# 한 가지 특이한 점이 있다. InternVL은 후보 목록을 Python `set`으로 만들고 타일 수로 정렬하므로, 타일 수가
# 같은 격자들은 set의 순서를 유지하며, 그 순서는 (1, 2)가 (2, 1)보다 앞이다. 이 순서는 좌우가 뒤바뀐 두 격자가
# 동률이고 (1, 1)이 제외될 때(`min_num > 1`)만 의미가 있다. 그때 500×400 *가로* 사진은 *세로* 1×2 격자를
# 받는다. 이미지가 크지 않으면 동률 규칙이 둘 중 첫 번째를 유지하기 때문이다. vislab은 이것까지 정확히 재현한다.

# %%
# NBVAL_CHECK_OUTPUT
for w, h in [(896, 448), (1792, 896), (633, 633), (634, 634), (950, 950), (951, 951), (4000, 4000)]:
    print(f"{w}×{h} → grid {tile_grid(w, h)}")
print("min_num=2, max_num=2 candidates:", candidate_grids(2, 2))
print("500×400 with min_num=2 →", tile_grid(500, 400, min_num=2, max_num=2), "(portrait grid for a landscape photo)")
print("600×480 with min_num=2 →", tile_grid(600, 480, min_num=2, max_num=2))

# %% [markdown] tags=["slide"]
# ## 6. 12-타일 상한 아래의 토큰 예산
#
# 전형적인 입력은 토큰이 얼마나 들고, 해상도는 얼마나 살아남는가? "kept"는 원본 대비 타일의 선형 배율이다
# (100% = 원래 해상도). "tiles for native"는 축소 없이 이미지를 덮는 448² 타일의 수, 즉 상한이 얼마여야 하는지를
# 뜻한다.

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
# 표가 말하는 내용을 행별로 정리하면 다음과 같다(문장은 표의 숫자로 만든다).

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
# ## 7. 실험: 타일 대 축소한 이미지
#
# 강의 규모로 줄인 전체 파이프라인의 축소판이다. `MiniInternVL`은 32×32 뷰를 위한 ViT(패치 8: 4×4 격자,
# 16 토큰), 픽셀 셔플(폭 256의 토큰 4개), MLP 프로젝터로 이루어지며, 뷰의 평균 토큰 위에 질문마다 선형
# 헤드 (head)가 하나씩 있다. 각 캔버스는 ShapeWorld 장면으로, 큰 도형에서 떨어진 곳에 작은 흰색 **글리프** (glyph)
# (7가지 도형 중 하나, 지름 약 10 px)가 붙어 있다. 질문은 *글리프는 어떤 도형인가?*이다. 캔버스 크기는
# 다양하며(128×96, 96×128, 128×64, 64×128, 96×96, 192×64), 32 px 타일로 InternVL의 규칙을 적용하면 각 캔버스는
# 3×3부터 6×2까지의 온전한 타일 격자에 대응된다.

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
# 인코더는 한 번 학습한다(`python -m vislab.pretrain detail_glyphs`. 노트북에서 돌리기에는 너무 길어서
# 강의는 결과를 배포하며, 학습 시간은 아래에 출력된다). 학습에는 두 종류의 32×32 뷰를 쓴다. 원래 해상도의
# 무작위 크롭과, 32²로 축소한 캔버스 전체다. 따라서 인코더는 축소된 캔버스를 필요한 만큼 자주 보았다.
# 인코더가 할 수 없는 것은 더 이상 남아 있지 않은 세부를 보는 일이다. 각 헤드에는 글리프가 없는 뷰를 위한
# "none" 클래스가 하나 더 있으며, 파이프라인은 도형에 대해 가장 확신하는 뷰로 답한다. 여기서 직접
# 학습하려면 `USE_CHECKPOINT = False`로 설정하라.

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
# 가중치가 같은 세 파이프라인: **downscale**(32² 뷰 하나: `max_num=1`인 InternVL), **tiles**(InternVL의
# 타일, 썸네일 없음), **tiles + thumbnail**(공개된 그대로의 InternVL). 크기마다 새 테스트 캔버스 100개에서 잰다.
#
# 이 비교에는 교란 요인이 있다. 타일 파이프라인은 모델에게 *세부*를 더 보여 주지만, *뷰*도 더 많이 준다.
# 즉 LLM 토큰이 더 많고 "가장 확신하는 뷰가 이긴다"는 규칙에 기회도 더 많다. 역시 같은 가중치를 쓰는 두 가지
# **동일 토큰 대조군** (equal-token control)은 원래 해상도의 세부 없이 tiles + thumbnail과 정확히 같은 수의 뷰를
# 모델에게 준다. **jittered copies**(썸네일, 그리고 캔버스 전체를 거듭 다시 넣되 매번 테두리에서 몇 픽셀을
# 무작위로 잘라 내고 32²로 축소한 것: 인코더가 학습한 종류의 뷰)와 **blurred tiles**(32² 뷰 하나로 왕복시킨
# 캔버스에 대한 InternVL 자신의 tiles + thumbnail: 격자와 배치는 같고, 세부는 축소한 뷰의 세부)다. 타일의 이득이
# 늘어난 토큰 덕분이라면 대조군도 같은 이득을 얻을 것이다.

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
# 그리고 교란 요인: tiles + thumbnail 대 두 가지 동일 토큰 대조군.

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
# ## 8. 타일링 뷰어
#
# 사진을 고르고(**your image**로 직접 올려도 된다), 원하는 폭과 높이로 늘리고, 타일 상한을 움직여 보라.
# 이미지 위에 그린 격자, 타일(행 우선)과 썸네일, 그리고 픽셀 셔플 전후의 토큰 수가 함께 바뀐다. 상한 12와 40에서의
# 4032×3024, 4096×512 띠, 그리고 500×500 이미지(타일 하나, 썸네일 없음)를 해 보라. (실행 중인 커널이 없으면
# 기본 화면이 그림으로 보인다.)

# %%
# NBVAL_IGNORE_OUTPUT
from vislab.widgets.tiling import tiling_viewer

viewer = tiling_viewer({"china": photo, "flower": load_photo("flower"),
                        "ShapeWorld canvas": to_pil(test_sets[(128, 96)].images[0]).resize((1024, 768))})

# %% [markdown] tags=["slide"]
# ## 9. InternViT 자체: 공개 가중치, 학습되는 위치 테이블
#
# 노트의 비교표는 InternViT를 "독점(proprietary)"이라고 표시한다. 그렇지 않다. OpenGVLab은 InternViT-6B와
# InternViT-300M(예: Hugging Face Hub의 `OpenGVLab/InternViT-300M-448px`와
# `OpenGVLab/InternViT-6B-448px-V1-5`)을 InternVL 코드와 함께 MIT 라이선스로 공개했고, `transformers`는 이 구조를
# `InternVLVisionModel`로 제공한다. 기본 설정은 InternViT-300M-448px이며, 파라미터 수를 세는 데는 다운로드가
# 필요 없다(모델을 아무것도 할당하지 않는 PyTorch의 "meta" 장치에서 만든다).

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
# 같은 확인으로 위치 임베딩 (position embedding)에 관한 노트 답변의 실수도 바로잡는다. 노트는 InternViT를 2D RoPE
# 모델 중 하나로 꼽는다. 하지만 InternViT는 1025개 위치의 학습되는 *절대* 테이블을 가지며, 격자가 바뀌면
# 쌍삼차 (bicubic) 보간 (interpolation)으로 다시 샘플링한다(InternVL 코드의 `_get_pos_embed`,
# `transformers`의 `interpolate_pos_encoding`). 2D 회전 임베딩을 쓰는 것은 Qwen2-VL이다. 타일링을 쓰면 이 문제는
# 대부분 사라진다. 모든 타일이 448²이므로 테이블은 학습된 격자 그대로 쓰인다. 9장은 이것을 타일링 쪽에서 측정한다.
#
# 온라인(선택): Hub에서 직접 읽은 라이선스와 크기.

# %% tags=["online"]
from vislab.online import hub_available

if hub_available("InternViT-300M's licence and parameter count, read from its Hub page"):
    from huggingface_hub import model_info

    info = model_info("OpenGVLab/InternViT-300M-448px", files_metadata=True)
    print("licence:", info.card_data.get("license") if info.card_data else None)
    print("safetensors parameters:", info.safetensors.total if info.safetensors else "n/a")

# %% [markdown] tags=["slide"]
# ## 10. 연습
#
# 연습 (exercise)은 네 종류다. **구현**(수식에서 한 조각을 작성하고 vislab과 대조한다), **예측**(무엇이든 실행하기
# 전에 숫자 하나를 정한다), **디버그**(심어 둔 버그를 찾아 고친다), **절제 실험** (ablation)(손잡이 하나를 바꾸고,
# 측정하고, 무엇이 바뀌었는지 말한다). 각 연습에는 여러분이 채울 셀(`exercise` 태그, `TODO` 포함), 무엇을
# 기대했고 무엇이 나왔으며 무엇을 해 볼지 알려 주는 자가 점검, 숨겨진 풀이("…"를 눌러 펼친다)가 있다.
# 자가 점검은 TODO를 채우기 전까지 "not attempted"를 출력하며, 노트북을 멈추지 않는다.
#
# **연습 1 (Exercise 1, 구현).** InternVL의 격자 선택을 작성하라. `my_tile_grid(width, height, max_num)`는
# 448 px 타일과 `min_num = 1`에 대해 `(columns, rows)`를 돌려준다. `candidate_grids(1, max_num)`을 순서대로
# 훑으며, 비율이 엄밀히 더 가까우면 그것을 취하고, 정확히 동률이면
# `width * height > 0.5 * 448 * 448 * i * j`일 때만 새 격자로 옮겨 간다.

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
# **연습 2 (Exercise 2, 구현).** `(B, W, H, C)` 특징에 대해 인수 2의 픽셀 셔플을 InternVL v2의 채널 순서로
# 작성하라: `out[n, u, v, (2a + b)C + c] = x[n, 2u + a, 2v + b, c]`. 힌트: 각 공간 축을 (size/2, 2)로 나누고,
# 두 개의 2를 채널 옆으로 옮긴 뒤 펼친다.

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
# **연습 3 (Exercise 3, 구현).** 타일 상한이 `max_num`일 때 `width × height` 이미지에 대해 InternVL의 언어 모델은
# 토큰을 몇 개 받는가(448 px 타일, 패치 14, 픽셀 셔플 0.5, 타일이 둘 이상이면 썸네일)? 격자는 `tile_grid`로 구하라.

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
# **연습 4 (Exercise 4, 예측 후 실행).** 종횡비가 2:1로 같은 두 이미지 `1000×500`과
# `2000×1000`이 기본 상한(`max_num=12`, 썸네일 켬)으로 InternVL을 통과한다. 무엇이든 실행하기 전에, 각 이미지가
# 받는 격자 `(columns, rows)`와 각각이 쓰는 LLM 토큰 수를 종이와 펜으로 구하라. (상한 아래에서 비율이 정확히
# 2인 격자는 무엇이며, 동률 규칙은 그것들을 어떻게 처리하는가?)

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
# **연습 5 (Exercise 5, 디버그).** 동료가 학습 루프를 위해 타일링의 텐서 버전을 작성했다. 이미지를 격자 크기로
# 바꾸고, `S × S` 타일로 자르고, InternVL의 순서(행 우선: 왼쪽에서 오른쪽, 그다음 위에서 아래)로 돌려준다.
# 동료가 작성한 테스트는 모두 통과했는데(모두 파노라마와 세로로 긴 영수증이었다), 이 코드로 학습한 모델은
# "오른쪽 위 구석에 무엇이 있는가?"에 잘 답하지 못한다. 버그를 찾아 고쳐라(한 줄이다).

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
# **연습 6 (Exercise 6, 절제 실험).** 손잡이: 타일 상한 `max_num`. 7절의 글리프 과제에서 같은 가중치로 실험한다.
# (a) `cap_ablation(max_num)`을 작성하라. 그 상한으로 7절의 테스트 캔버스 600개(`test_sets`)에 공개된 그대로의
# InternVL 파이프라인(`"internvl"`: tiles + thumbnail)을 돌리고,
# `{"glyph": accuracy over all 600, "tokens": mean LLM tokens per canvas}`를 돌려준다(축소판에서는 뷰 하나에
# 토큰 4개. `detail.evaluate`는 `max_num=`을 받고 캔버스당 뷰 수를 보고한다). (b) `max_num` 1, 4, 12로 돌리고
# 답하라. 상한 4에서의 글리프 정확도는 나머지 둘 모두보다 `"below"`인가, 그 `"between"`인가, 둘 모두보다
# `"above"`인가? (c) 상한 4에서 128×96 캔버스는 LLM 토큰이 몇 개 드는가?

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
# ## 11. 요약
#
# - InternVL은 인코더를 448²에 그대로 두고, 이미지를 종횡비가 이미지와 가장 가까운 격자에 따라 최대 12개
#   타일로 자르며(동률일 때는 그 격자 픽셀 수의 절반보다 많은 이미지만 더 큰 격자로 간다), 썸네일을 더한다.
#   이미지는 격자에 맞게 늘릴 뿐, 패딩하지 않는다.
# - 448² 타일 하나는 패치 토큰 1024개를 준다. 픽셀 셔플은 각 2×2 블록을 채널이 4×인 토큰 하나로 바꾸며(256
#   토큰), 정확한 역변환이 있는 순수한 순열이다. MLP(LayerNorm, Linear, GELU, Linear)가 4·C를 LLM의 폭으로
#   사상한다.
# - 12개 타일 상한은 비용을 13·256 = 3,328 토큰으로 묶고, 해상도도 묶는다. 12 MP 사진은 44%로, 6:1 파노라마는
#   22%로 보인다.
# - 세부 인식 과제에서 같은 작은 인코더는 축소한 이미지에서는 거의 우연 수준이지만 타일에서는 큰 다수를
#   맞힌다. 타일만큼 토큰을 쓰지만 원래 해상도의 세부를 담지 않은 뷰는 이 격차를 메우지 못한다(수치는 아래).

# %% [markdown]
# ## 질문지 (Questionnaire)
#
# 1. InternViT는 448²로 학습된다. InternVL은 왜 큰 이미지를 인코더에 더 높은 해상도로 통째로 주지 않고 448²
#    타일로 자르는가?
# 2. 격자 규칙을 말해 보라. 어떤 격자가 후보이고, 무엇을 최소화하며, 동률 규칙은 무엇을 확인하는가? 애초에 왜
#    동률 규칙이 있는가?
# 3. 이미지는 패딩되지 않고 격자에 맞게 늘려진다. 그로써 무엇을 얻고, 무엇을 왜곡하는가?
# 4. 썸네일은 타일에 무엇을 더하며, InternVL은 언제 썸네일을 빼는가?
# 5. 448² 타일 하나는 패치 14에서 ViT 토큰을 몇 개 주며, 그중 몇 개가 언어 모델에 도달하는가? 그 사이의 배수는
#    어디서 오는가?
# 6. 픽셀 셔플은 어떤 의미에서 손실이 없고, 어떤 의미에서 여전히 압축인가?
# 7. InternVL의 첫 픽셀 셔플(`v1`)은 무엇이 잘못되었으며, 왜 어떤 모양 확인으로도 잡을 수 없었는가?
# 8. 12개 타일 상한은 무엇을 묶으며, 12 MP 휴대폰 사진이나 300 dpi로 스캔한 A4 페이지에는 어떤 대가를 치르게
#    하는가?
# 9. InternViT-300M과 4절의 언어 모델에서 프로젝터의 입력 폭과 출력 폭은 얼마이며, 그 크기는 인코더와
#    비교해 어떤가?
# 10. 7절의 타일 파이프라인은 축소한 뷰를 이긴다. 세부 말고도 모델에게 무엇을 더 많이 주며, 둘을 어떻게
#     구별하겠는가?
# 11. 축소판에서 상한을 낮추는 것이 왜 단순히 "똑같고 조금 더 흐릴 뿐"이 아닌가(연습 6)?
# 12. InternViT는 학습되는 절대 위치 테이블을 가진다. 타일링을 쓰면 왜 그것이 덜 중요해지는가?

# %% [markdown] tags=["solution"]
# **정답 (Answers)**
#
# 1. 인코더의 가중치와 학습된 위치 테이블은 $32 \times 32$ 패치 격자로 된 448² 뷰에 맞춰져 있다. 타일은
#    모든 뷰를 그 크기로 유지하므로 아무것도 다시 샘플링하지 않으며, 인코더는 이미지를 (거의) 원래 해상도로
#    본다. 어텐션 (attention)도 타일 안에 머물므로, 비용은 이미지 토큰 수의 제곱이 아니라 타일 수에 비례해 늘어난다.
# 2. $n_{\min} \le ij \le n_{\max}$인 $i$열 $j$행의 모든 격자가 후보다. InternVL은 $ij$가 커지는 순서로 훑으며
#    비율 $i/j$가 $W/H$에 가장 가까운 것을 고른다. 정확히 동률이면 이미지가 그 격자 픽셀 수의 절반보다 많을 때,
#    즉 $WH > \tfrac12 S^2 ij$일 때만 더 큰 격자로 옮겨 간다. 동률이 언제나 더 큰 격자로 간다면 아이콘을 포함한
#    모든 정사각형 이미지가 3×3 타일로 부풀려질 것이고, 절대 가지 않는다면 큰 정사각형 사진도 타일 하나에
#    머물 것이다.
# 3. 모든 타일의 모든 픽셀이 이미지 내용을 담는다(인코딩할 패딩이 없고, 검은 영역에 토큰을 쓰지 않는다). 대가는
#    종횡비가 조금 바뀌는 것이다. 도형은 $W/H$와 $i/j$ 사이의 배율만큼 늘어나지만, 격자를 가장 가까운 비율로
#    골랐으므로 그 정도는 작다.
# 4. 각 타일은 따로 인코딩되므로 어느 타일도 장면 전체를 보지 못한다. 썸네일(이미지 전체를 448²로)은 낮은
#    해상도로나마 전체를 보며, 타일 뒤에 놓인다. 타일이 하나뿐이면 더할 것이 없다. 그 타일이 이미 이미지
#    전체이므로 썸네일을 뺀다.
# 5. 패치 토큰은 $(448/14)^2 = 1024$개다. $r = 2$의 픽셀 셔플은 각 $2 \times 2$ 블록을 폭 $4C$의 토큰 하나로
#    합치므로, 언어 모델에는 $1024 / 4 = 256$개 토큰이 도달한다.
# 6. 픽셀 셔플은 숫자들의 순열이다. 모든 입력 숫자가 정확히 한 출력 칸에 놓이고, 역변환이 비트 단위까지 모두
#    돌려준다(4절). 압축되는 것은 *시퀀스*다. 언어 모델이 어텐션할 토큰은 4× 적어지고, 각 토큰은 4× 넓어진다.
#    그다음 프로젝터가 $4C$를 $D$로 사상하며, 정보가 손실될 수 있는 곳은 이 선형 사상이다.
# 7. 격자를 reshape하고 순열로 섞었지만 두 공간 축을 다시 맞바꾸지 않아서, 언어 모델은 전치된 격자를 받았다.
#    토큰 $(u, v)$에 블록 $(v, u)$가 담겼다. 정사각형 격자에서는 어느 쪽이든 모양이 같으므로 아무것도 실패하지
#    않는다. 값만 잘못된 자리에 있을 뿐이다.
# 8. 이미지당 비용을 $13 \cdot 256 = 3328$ 토큰으로 묶으며, 그래서 해상도도 묶는다. 6절의 표에서 12 MP 사진은
#    선형 해상도의 44%를 유지하고, A4 페이지는 그보다 더 적게 유지해서 작은 글씨가 살아남지 못한다. 원래 해상도를
#    지키려면 타일이 몇 배는 더 필요하다.
# 9. 입력: $4 \cdot 1024 = 4096$(패치 특징 네 개를 나란히 놓은 것). 출력: $896$, InternVL2-1B 언어 모델의 폭이다 (cited: the Qwen2-0.5B model card).
#    가중치는 약 $4096 \cdot 896 + 896^2$개에 편향과 LayerNorm을 더한 몇백만 개로, 인코더의 300 M에 비하면 작다.
# 10. 토큰이다. 뷰가 하나가 아니라 열두 개 가까이까지 늘어나고, "가장 확신하는 뷰가 이긴다"는 규칙에 기회가 더
#     많아진다. 동일 토큰 대조군은 원래 해상도의 세부 없이 타일과 같은 수의 뷰를 모델에게 준다(7절에는 두 가지가
#     있다. 축소한 캔버스의 jittered copies와, 흐리게 만든 캔버스의 타일). 대조군의 점수가 축소한 뷰와 비슷하고
#     타일보다 한참 낮다면, 이득은 토큰이 아니라 세부에서 온 것이다.
# 11. 상한이 낮으면 타일이 더 적고 더 거칠다. 이미지가 더 작은 격자로 축소되므로, 각 타일은 원래 해상도의 크롭과
#     캔버스 전체 썸네일 사이의 배율을 가진다. 그런데 축소판의 인코더가 학습한 뷰는 이 두 종류뿐이다. 연습 6은
#     그런 뷰가 정확도에 어떤 영향을 주는지 측정한다.
# 12. 모든 타일과 썸네일이 448²이므로, 테이블은 학습된 격자 그대로 쓰이고 보간되지 않는다. 다시 샘플링(InternVL
#     코드에서는 쌍삼차)은 인코더를 다른 크기로 돌릴 때만 필요하다.

# %% [markdown]
# ## 12. 노트 검증

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
# **맺음말.** 세부 인식 과제의 수치로, 위에서 배포된 체크포인트 (checkpoint)로 테스트 캔버스 600개(크기마다 100개)에서
# 측정했으며, 동일 토큰 대조군을 포함한다.

# %%
print(f"glyph accuracy — downscaled to one 32² view: {glyph_acc['downscale']:.1%}; "
      f"InternVL tiles only: {glyph_acc['tiles']:.1%}; tiles + thumbnail: {glyph_acc['tiles + thumbnail']:.1%} "
      f"(chance {1 / len(SHAPES):.1%}); gain {100 * gain:.1f} points (bar: 20).")
print("equal-token controls (as many LLM tokens as tiles + thumbnail, no native detail): "
      + "; ".join(f"{n} {glyph_acc[n]:.1%} (95% interval {glyph_ci[n].low:.1%}-{glyph_ci[n].high:.1%})"
                  for n in controls) + f"; tiles + thumbnail {glyph_ci['tiles + thumbnail'].low:.1%}-"
      f"{glyph_ci['tiles + thumbnail'].high:.1%}.")

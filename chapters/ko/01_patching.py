# %% [markdown] tags=["slide"]
# # 1장 · 패칭: 픽셀에서 토큰으로
#
# > **한국어판 (Korean edition)** · [영어 원문 (English original)](../01_patching.ipynb) · [용어집 (glossary)](glossary.md)
# >
# > 이 한국어판의 코드 셀은 영어판에서 그대로 생성된다. 코드가 출력하는 메시지(✓/✗ 확인 줄, 위젯 이름표, 결과 문단)는 영어로 남는다.
#
# 트랜스포머 (Transformer)는 *벡터의 시퀀스*를 읽는다. 이미지는 픽셀의 격자다. 이 강의의 모든
# 비전 인코더 (vision encoder)는 이 둘을 잇는 데서 출발한다. 이미지를 정사각형 **패치** (patch)로
# 자르고, 각 패치를 펼친 뒤 선형 사상으로 **토큰** (token)에 대응시킨다. 이 장에서는 그 단계를
# 직접 만들고, 그에 관한 두 가지 사실을 수치로 증명하며, 그 비용이 얼마인지 보인다.
#
# **학습 목표**
# 1. $H\times W\times C$ 이미지를 $N = HW/P^2$ 개의 패치로 자르고 각 패치를 펼친다.
# 2. 모든 ViT 구현에 등장하는 `Conv2d(kernel=P, stride=P)`가 같은 가중치를 쓰는
#    "펼치기 + `Linear`"와 *같다*는 것을 증명한다.
# 3. 흔히 쓰는 ViT 입력의 토큰 수를 센다 (224/16 → 197, 224/14, 336/14, 448/14).
# 4. 어텐션 (attention)의 비용이 $N^2$으로 늘어나는 것을 측정하고, 언제 어텐션이 층의 비용을 지배하는지 본다.
#
# 코드는 `vislab.patching`에 있으며, 이 노트북은 그것을 임포트해서 보여 준다. 아래에 출력되는
# 모든 숫자는 여기서 계산되고, 검증 (✓ 줄)은 무언가 잘못되면 분명하게 실패한다.

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
# ## 1. 직관: 패치로 이루어진 문장으로서의 이미지
#
# 언어 모델은 단어를 읽는다. ViT (Dosovitskiy et al., 2020, *An Image is Worth 16x16 Words*,
# arXiv:2010.11929)는 이미지를 문장처럼 보이게 만든다. 224×224 사진을 16×16 정사각형으로 자르면
# $14 \times 14 = 196$ 개의 "단어"로 된 "문장"이 된다. 각 단어는 그 정사각형의 원시 픽셀 값
# 16·16·3 = 768 개이며, 학습되는 선형 사상 하나가 이것을 $D$ 차원 토큰으로 바꾼다.
#
# 펼치고 나면 패치의 *위치*에 관한 정보는 전혀 남지 않는다 (트랜스포머에게 토큰 17과 토큰 18은
# 서로 무관해 보인다). 그래서 ViT는 위치 임베딩 (position embedding)을 더한다 (2장). 또한 어텐션이
# 토큰을 섞기 전까지는 한 패치 안의 어떤 값도 다른 무엇과 비교되지 않는다. 패치는 모델이 "볼" 수
# 있는 가장 작은 단위다.
#
# 실제 사진 (scikit-learn에 들어 있으므로 아무것도 내려받지 않는다)과, 이 강의의 절차적 데이터셋인
# ShapeWorld의 장면을 살펴보자.

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
# ## 2. 수학
#
# $x \in \mathbb{R}^{H \times W \times C}$ 이고, 패치 크기 $P$가 $H$와 $W$를 나누어떨어뜨린다고 하자.
# 격자는 $g_h = H/P$ 개의 행과 $g_w = W/P$ 개의 열로 이루어지므로
#
# $$N = g_h\, g_w = \frac{HW}{P^2}.$$
#
# 패치 $k$ (행 우선 순서: $k = r\,g_w + c$)는 블록 $x[rP:(r+1)P,\; cP:(c+1)P,\; :]$ 이며,
# (행, 열, 채널) 순서로 펼쳐 $x_p^k \in \mathbb{R}^{P^2 C}$가 된다. ViT의 식 1은 행렬 하나
# $E \in \mathbb{R}^{(P^2C) \times D}$와 편향 (bias) $b$로 모든 패치를 임베딩한다.
#
# $$z^k = x_p^k E + b \quad\Longrightarrow\quad Z = X_p E + b \in \mathbb{R}^{N \times D}.$$
#
# 커널 크기 $P$, 스트라이드 $P$인 합성곱은 정확히 같은 $N$ 개의 겹치지 않는 블록을 방문하며,
# 출력 채널 $d$에 대해 $\sum_{c,i,j} w_{d,c,i,j}\, x[rP+i, cP+j, c] + b_d$를 계산한다. 같은 내적이고,
# 다만 $E$의 원소가 $(D, C, P, P)$ 모양의 커널로 배열되어 있을 뿐이다. 이것을 5절에서 수치로 증명한다.

# %% [markdown] tags=["slide"]
# ## 3. 코드: `patchify`, `unpatchify`, `PatchEmbed`
#
# `patchify`는 reshape 두 번과 축 순열 (permutation) 한 번으로 이루어진다. 모양 주석이 곧 계약이니,
# 위에서 아래로 읽어 보자.

# %%
vislab.show_source(patchify)

# %%
vislab.show_source(unpatchify)

# %% [markdown]
# `PatchEmbed`는 이 강의의 모든 ViT가 쓰는 모듈이다. 그 `as_linear()`는 합성곱의 가중치를
# $(D, C, P, P)$에서 펼친 패치의 배열 순서인 $(D, P{\cdot}P{\cdot}C)$로 재배열하여, 동등한
# `nn.Linear`를 만든다.

# %%
vislab.show_source(PatchEmbed)

# %% [markdown] tags=["slide"]
# ## 4. 모양 검증
#
# 노트의 예: 224×224 이미지를 16×16 패치로 자르면 $N=(224/16)^2=196$ 개의 패치가 나오고,
# `[CLS]` 토큰 하나를 더하면 197 개의 토큰이 된다. 강의를 테스트할 때 아래의 모든 줄은 저장된
# 출력과 대조된다.

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
# 패치 0은 왼쪽 위 정사각형이고, 패치 1은 그 오른쪽 이웃이다. 패치 0은 이미지 왼쪽 위 블록의
# 숫자 $P \cdot P \cdot C$ 개를 (행, 열, 채널) 순서로 늘어놓은 것이다. 그리고 `unpatchify`는 모든
# 픽셀을 정확히 원래 자리로 되돌린다.

# %%
# NBVAL_CHECK_OUTPUT
check.equal(patches[0, 0], x[0, :, :16, :16].permute(1, 2, 0).reshape(-1), "patch 0 is the top-left block")
check.equal(patches[0, 1], x[0, :, :16, 16:32].permute(1, 2, 0).reshape(-1), "patch 1 is its right neighbour")
check.equal(unpatchify(patches, 16, 224), x, "unpatchify(patchify(x)) == x, bit for bit")
_ = check.equal(unpatchify(patchify(flower[None], 14), 14, (224, 336)), flower[None], "the same for a 224×336 image")

# %% [markdown]
# 패치 크기로 나누어떨어지지 않는 크기는 마지막 픽셀들을 조용히 버리는 대신, 어떤 크기라면
# 되는지 알려 주는 메시지와 함께 거부된다.

# %%
# NBVAL_CHECK_OUTPUT
try:
    patchify(torch.zeros(1, 3, 225, 224), 16)
except ValueError as err:
    print("ValueError:", err)

# %% [markdown] tags=["slide"]
# ## 5. 증명: `Conv2d(kernel=P, stride=P)` = 펼치기 + `Linear`
#
# 노트의 `PatchEmbedding` (그리고 실제로 쓰이는 모든 ViT)은 스트라이드 합성곱을 쓴다. 합성곱을
# 하나 만들고, `as_linear()`로 그 가중치를 `Linear`에 복사한 다음, 사진과 노이즈로 이루어진 배치에서
# 둘을 비교한다.

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
# 두 결과는 float32 반올림 오차 안에서 일치한다 (덧셈 순서가 다르므로 마지막 비트도 다를 수 있고,
# 그 차이는 CPU마다 다르다. 그래서 검증은 차이의 자릿수가 아니라 통과한 허용 오차를 출력한다).
# 펼치는 순서가 틀렸다면, 예컨대 축 순열 없이 `x.reshape(B, C, gh, P, gw, P)`처럼 (채널, 행, 열)
# 순서였다면, 차이는 값 자체와 같은 크기가 되었을 것이다. 일부러 한 번 그 실패를 보자.

# %%
wrong_order = batch.reshape(4, 3, 14, 16, 14, 16).permute(0, 2, 4, 1, 3, 5).reshape(4, 196, 768)  # (C, P, P) order
with torch.no_grad():
    wrong = linear(wrong_order)
print(f"wrong flattening order: max |difference| = {(wrong - via_conv).abs().max():.2f}")
_ = check.at_least((wrong - via_conv).abs().max(), 0.1, "a wrong patch layout is detected")

# %% [markdown]
# 이 머신에서는 어느 경로가 더 빠를까? 합성곱은 최적화된 커널 하나를 호출하고, 명시적 경로는
# 먼저 패치 텐서를 메모리에 만든다. (시간은 머신마다 다르므로 검증하지 않는다. 강의에서 측정한
# 수치는 `benchmarks/`에 있다.)

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
# ## 6. 토큰은 몇 개인가? 흔히 쓰는 입력
#
# 224 px에 패치 14를 쓰면 $16^2 = 256$ 개의 패치가 나온다. 336 px의 CLIP ViT-L/14는 $24^2=576$ 개,
# 448 px의 InternViT는 $32^2 = 1024$ 개다 (7장에서 픽셀 셔플 (pixel shuffle)로 이를 네 배 압축한다).
# 모든 인코더가 `[CLS]` 토큰을 더하는 것은 아니다. SigLIP은 패치 토큰을 어텐션 헤드 (head)로
# 풀링하며 (MAP) CLS 토큰이 없으므로, 384 px의 SigLIP은 577 개가 아니라 576 개의 토큰을 읽는다.
# 또 VLM은 쓰지 않는 `[CLS]` 출력을 버리기도 한다. LLaVA-1.5는 CLIP ViT-L/14@336의 패치 토큰
# 576 개를 언어 모델에 넣고, InternVL은 InternViT의 패치 토큰 $32^2$ 개를 (픽셀 셔플 전에) 넣는다.

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
# ## 7. 실험: 어텐션의 비용은 $N^2$으로 늘어난다
#
# 트랜스포머 층이 하는 일은 두 종류다. 선형 사상 (QKV, 출력 사영, MLP)은 각 토큰을 따로 다루며
# $12\,N D^2$ 번의 곱셈-덧셈을 한다. 어텐션은 모든 토큰을 다른 모든 토큰과 비교한다. $QK^\top$와
# 가중합에 $2 N^2 D$가 든다. 이미지 한 변을 두 배로 늘리면 $N$은 4배, 선형 부분은 4배, 어텐션은
# 16배가 된다. 층에서 어텐션이 차지하는 비율
# $2N^2D / (12ND^2 + 2N^2D) = N / (6D + N)$은 $N = 6D$에서 절반을 넘는다.
#
# 먼저 *세어* 본다. PyTorch의 `FlopCounterMode`는 ViT-B/16 블록 하나 (2장의 `Block`)에서 일어나는
# 모든 행렬곱의 부동소수점 연산 수 (곱셈-덧셈 하나당 2)를 기록한다. 블록은 `meta` 장치에서
# 실행하므로 실제로는 아무것도 계산되지 않는다. 이 개수는 정확하며 어느 머신에서나 같다.

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
# 다음으로 어텐션 계산 하나 ($QK^\top/\sqrt{d}$의 소프트맥스 (softmax)에 $V$를 곱하는 것)의 시간을
# $N$을 늘려 가며 *측정*하고, 시간의 지수를 적합한다. 측정 시간은 머신과 그 머신이 동시에 하는
# 다른 일에 따라 달라지므로, 측정된 그대로 보여 줄 뿐 아무것도 판정하지 않는다. 검증되는 주장은
# 위의 연산 개수다.

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
# $N$이 작을 때는 고정 오버헤드가 추세를 가리므로, 적합한 시간의 지수는 보통 2보다 작게 나온다.
# 큰 쪽에서는 연산 개수가 말해 주는 대로 시간이 거의 제곱에 가깝게 늘어난다.

# %% [markdown] tags=["slide"]
# ## 8. 패치 뷰어
#
# 슬라이더를 움직여 보자. 격자, 토큰 시퀀스, 토큰 수, 비용 곡선 위의 위치가 함께 바뀐다. 패치가
# 작으면 토큰이 많고 (세밀한 디테일, 제곱 비용), 패치가 크면 토큰이 적다 (싸지만, 32×32 패치 하나가
# 물체 전체를 벡터 하나로 묘사해야 한다). 정사각형이 아닌 꽃 이미지도 시도해 보자. (실행 중인
# 커널이 없으면 기본 화면이 그림으로 보인다.)

# %%
# NBVAL_IGNORE_OUTPUT
from vislab.widgets.patches import patch_viewer

viewer = patch_viewer({"china 224×224": photo, "flower 224×336": flower, "ShapeWorld 64×64": scenes.images[0]},
                      patch_size=16)

# %% [markdown]
# ## 9. ShapeWorld, 그리고 원시 픽셀만으로는 부족해야 하는 이유
#
# 이 강의는 ShapeWorld로 작은 인코더를 학습한다. 그 인코더들이 *의미*가 있으려면, 원시 픽셀 위의
# 선형 분류기는 성능이 나빠야 한다. 깨끗한 장면 (검은 배경, 3×3 격자 위의 도형, 회전 없음)에서는
# 그렇지 않다. 가능한 배치가 몇 가지뿐이라 픽셀이 거의 선형 분리 가능하기 때문이다. 방해 요소
# (nuisance) 프리셋은 연속적인 위치, 크기와 회전, 색상 지터, 텍스처 배경, 방해 획 (distractor stroke)을 더한다. 각
# 수준에서 원시 픽셀 위의 로지스틱 회귀 프로브로 도형 분류 (7 개 클래스, 우연 수준 14%) 정확도를 잰다.

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
# ## 10. 연습
#
# 연습 (exercise)은 네 종류다. **구현** (build: 수학으로부터 한 부분을 작성하고 vislab과 대조한다),
# **예측** (predict: 아무것도 실행하기 전에 숫자 하나를 정해 둔다), **디버그** (debug: 심어 둔 버그를
# 찾아 고친다), **절제 실험** (ablate: 손잡이 하나를 바꾸고, 측정하고, 무엇이 달라졌는지 말한다).
# 각 연습에는 여러분이 채울 셀 (`exercise` 태그와 `TODO`가 붙어 있다), 무엇을 기대했고 무엇이
# 나왔으며 무엇을 시도해 볼지 알려 주는 자가 검증, 그리고 숨겨진 풀이 ("…"를 클릭하면 보인다)가
# 있다. 자가 검증은 TODO를 채우기 전까지 "not attempted"를 출력하며, 노트북을 멈추지 않는다.
#
# **연습 1 (Exercise 1, 구현).** `reshape`와 `permute`만으로 `my_patchify(images, p)`를 작성하라.

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
# **연습 2 (Exercise 2, 예측한 뒤 실행).** `[CLS]` 토큰을 유지하는 ViT-L/14에 448×672 이미지 한 장
# (가로로 긴 페이지, 타일링 없음)을 넣는다. 아무것도 실행하기 전에, 모델이 보는 토큰 수와 헤드
# 하나의 어텐션 행렬이 가진 원소 수를 적어 두라.

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
# **연습 3 (Exercise 3, 구현).** 패치 임베딩 (patch embedding) 합성곱을 동등한 선형 가중치 행렬로
# 바꾸라. `my_conv_to_linear_weight(conv)`는 `nn.Conv2d(C, D, P, stride=P)`를 받아,
# `patchify(x, P) @ W.T + conv.bias == conv(x)` (우변은 펼친 것)가 성립하는 `(D, P*P*C)` 행렬 $W$를
# 반환한다.

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
# **연습 4 (Exercise 4, 디버그).** 동료의 `patchify`는 모든 모양 테스트를 통과하지만, 그것으로 학습한
# ViT는 더 못 배운다. 버그를 찾아 아래 사본에서 고치라 (한 줄이다).

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
# **연습 5 (Exercise 5, 절제 실험).** 블록에서 어텐션이 차지하는 비율은 $N$뿐 아니라 폭 $D$에도
# 달려 있다. (a) `attention_share(preset, n)`을 작성하라. 프리셋의 `Block` 하나를 `meta` 장치에
# 만들고, `FlopCounterMode` 아래에서 `n` 개의 토큰으로 실행한 뒤 (7절처럼), 전체 FLOPs 대비 어텐션
# 행렬곱 (`aten.bmm`)의 FLOPs 비율을 반환한다. (b) 그다음 답하라. 1025 개 토큰에서 어텐션의 비율이
# 더 큰 쪽은 ViT-S/16 블록 ($D=384$)인가, ViT-H/14 블록 ($D=1280$)인가? `"S"` 또는 `"H"`로 답하라.

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
# ## 11. 요약
#
# - $H \times W$ 픽셀 이미지를 $P \times P$ 패치로 자르면, 길이 $P^2C$인 벡터 $N = HW/P^2$ 개가
#   행 우선 순서로 늘어선 시퀀스가 된다. `unpatchify`는 이를 정확히 되돌린다.
# - 패치 임베딩은 모든 패치가 공유하는 선형 사상 하나다. `Conv2d(kernel=P, stride=P)`는 정확히
#   그것을 계산하며 (부동소수점 반올림 오차 안에서 일치함을 확인했다), 단지 그 계산을 하는 가장
#   빠른 방법일 뿐이다.
# - 224/16은 패치 196 개 + CLS = 토큰 197 개다. 224/14는 257 개, 336/14는 577 개, 448/14는
#   1025 개다.
# - 층의 나머지 부분이 $\propto N D^2$인 데 비해 어텐션의 비용은 $\propto N^2 D$이다. ViT-B/16
#   블록에서 어텐션의 비율은 $N/(6D+N)$으로, 197 개 토큰에서는 작지만 $N > 6D$가 되면 절반을 넘는다
#   (7절에서 세어 보았다). 고해상도 인코더가 이미지를 타일로 나누거나 (7장과 9장) 토큰을 압축하는
#   이유가 이것이다.
#
# ## 12. 노트 검증
#
# | 노트의 내용 | 여기서 보인 것 |
# |---|---|
# | 크기 $P \times P$인 패치 $N = HW/P^2$ 개 | 4절: 224/16에서 `(1, 196, 768)` |
# | "패치 16, 224 px: 패치 196 개 + CLS 1 개 = 토큰 197 개" | 4절, `num_tokens(224, 16) = 197` ✓ |
# | 패치를 펼쳐 선형 사영한다. Conv2d는 이를 "한 번에" 한다 | 5절: 부동소수점 반올림 오차 안에서 같음 ✓ |
# | 패치 크기는 보통 14 또는 16 | 6절: 실제 인코더의 토큰 표 |
#
# **생각해 볼 질문** (뒤의 장에서 답한다): 트랜스포머는 패치가 *어디에* 있었는지에 대해 무엇을
# 아는가 (2장: 위치 임베딩)? 이미지가 448 px 이상으로 커지면 토큰 수와 어텐션 비용은 어떻게 되는가
# (7장과 9장)?

# %% [markdown]
# ## 질문지 (Questionnaire)
#
# 1. 이미지가 $H \times W \times C$이고 패치 크기가 $P$이다. 패치는 몇 개이고, 펼친 패치 하나의
#    길이는 얼마인가?
# 2. vislab은 패치를 어떤 순서로 펼치는가? 선형 층의 가중치는 왜 같은 순서를 써야 하는가?
# 3. `Conv2d(kernel=P, stride=P)`는 왜 "펼치기 + `Linear`"와 같은 계산인가? 무엇이 이 등식을
#    깨뜨리는가?
# 4. 두 경로는 왜 반올림 오차 범위 안에서만 일치하는가? 강의는 왜 차이를 출력하는 대신 허용
#    오차로 일치를 검증하는가?
# 5. ViT-B/16은 224 px에서 몇 개의 토큰을 보는가? 추가된 토큰은 어디서 오는가? 모든 인코더에
#    그 토큰이 있는가?
# 6. 패치 14인 모델의 입력이 224 px에서 448 px로 바뀐다. 토큰 수, 선형 층의 작업량, 어텐션 행렬은
#    각각 몇 배가 되는가?
# 7. 폭 $D$의 함수로 나타낼 때, 어떤 $N$에서 어텐션이 블록 연산의 절반 넘게 차지하는가? 모델이
#    넓어질수록 그 비율이 떨어지는 이유는 무엇인가?
# 8. 패치 임베딩 직후, 트랜스포머는 패치의 위치에 대해 무엇을 아는가?
# 9. 잘못된 패치 순서는 왜 모든 모양 검증을 통과할 수 있으며, 어떻게 잡아내는가?
# 10. 강의의 ShapeWorld 과제에서 원시 픽셀 위의 선형 분류기는 왜 성능이 나빠야 하며, "hard"
#     프리셋에서는 무엇 때문에 실패하는가?

# %% [markdown] tags=["solution"]
# **정답 (Answers)**
#
# 1. 패치는 $N = HW/P^2$ 개이고 (격자는 $H/P \times W/P$), 각각 $P^2 C$ 개의 숫자로 된 벡터다.
# 2. MAE와 timm의 `patchify`처럼 (행, 열, 채널) 순서다. 출력 $d$에 대한 선형 사상의 가중치 행은
#    패치 벡터와 같은 순서로 계수를 나열해야 한다. 그렇지 않으면 각 픽셀에 다른 픽셀의 계수가
#    곱해진다 (5절의 "잘못된 순서" 사례).
# 3. 합성곱은 똑같이 겹치지 않는 $P \times P$ 블록들을 방문하고, 출력 채널마다 블록과 커널의 내적을
#    구한다. 이는 펼친 패치에 $E$의 한 행을 적용한 것과 같다. $P$가 아닌 스트라이드 (겹침이나 틈),
#    패딩 (padding), 또는 커널을 잘못 reshape하면 등식이 깨진다.
# 4. 두 커널에서 덧셈이 서로 다른 순서로 일어나고, float32 덧셈은 결합 법칙을 만족하지 않는다.
#    마지막 자릿수는 CPU의 커널, 스레드 수, 장치에 따라 달라지므로, 어느 머신에서나 같은 것은
#    "허용 오차 안"이라는 사실뿐이다.
# 5. 197 개: 패치 196 개에 ViT가 앞에 붙이는 `[CLS]` 토큰을 더한 것이다 (2장). 모든 인코더에 있는
#    것은 아니다. SigLIP은 패치를 어텐션 헤드로 풀링하며, 384 px에서 토큰이 576 개다.
# 6. 한 변이 두 배가 되므로 토큰은 4배로 늘어난다. 선형 층의 작업량은 4배 ($N$에 선형), 어텐션
#    행렬은 16배 ($N$에 제곱)가 된다.
# 7. 비율은 $N/(6D + N)$이며, $N > 6D$이면 절반을 넘는다. 선형 층은 토큰당 $D^2$으로, 어텐션은
#    $D$로 늘어나므로, 같은 $N$에서 넓은 모델일수록 어텐션에 쓰는 비율이 작다.
# 8. 아무것도 모른다. 각 토큰은 자기 픽셀만의 함수이므로, 서로 다른 자리에 있는 동일한 두 패치는
#    동일한 토큰을 낸다. 위치는 위치 임베딩 (2장)이 더해 준다.
# 9. 모든 패치는 여전히 $P^2C$ 개의 숫자를 가지고, 패치도 여전히 $N$ 개다. 틀린 것은 순서뿐이다.
#    패치를 그것이 나와야 할 블록과 비교하거나 (4절의 검증), 정사각형이 아닌 이미지에서 구현을
#    참조 구현과 비교하면 잡아낼 수 있다.
# 10. 학습된 인코더가 보탤 것이 있게 하기 위해서다. 연속적인 위치, 크기, 회전, 색상 지터, 텍스처
#     배경, 방해 획 때문에 같은 도형이라도 이미지마다 겹치는 픽셀이 적어서, 픽셀에 대한 단일
#     선형 템플릿으로는 맞출 수 없다.

# %% [markdown] tags=["online"]
# ## 온라인: 실제 체크포인트 안의 같은 패칭 (선택)
#
# 인터넷에 접속할 수 있으면, 이 셀은 `transformers`로 `google/vit-base-patch16-224`의 패치 임베딩을
# 불러와, 그 합성곱이 같은 토큰을 계산하는 `PatchEmbed`임을 확인한다. 이 셀에는 `online` 태그가
# 붙어 있어 오프라인 테스트는 이를 건너뛰며, 오프라인에서는 한 줄을 출력하고 멈춘다.

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

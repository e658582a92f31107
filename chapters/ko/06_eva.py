# %% [markdown] tags=["slide"]
# # 6장 · EVA: 마스크 이미지 모델링, 그다음 CLIP 정렬
#
# > **한국어판 (Korean edition)** · [영어 원문 (English original)](../06_eva.ipynb) · [용어집 (glossary)](glossary.md)
# >
# > 이 한국어판의 코드 셀은 영어판에서 그대로 생성된다. 코드가 출력하는 메시지(✓/✗ 확인 줄, 위젯 이름표, 결과 문단)는 영어로 남는다.
#
# CLIP(3장)은 캡션에서 배우고, DINO(5장)는 한 이미지의 두 뷰에서 배운다. 세 번째 계열은
# **가려진 것을 채워 넣으며** 배운다. 이미지 패치 (patch)의 대부분을 잘라 내고 ViT에게 그것을
# 예측하게 하는 것이다. MAE는 빠진 *픽셀*을 예측한다. EVA는 그 자리에서 CLIP 모델이 *보는 것*을
# 예측한다. EVA-CLIP은 여기서 한 걸음 더 나아가, CLIP의 이미지 타워 (image tower)를 무작위 가중치가
# 아니라 EVA에서 시작한다.
#
# **이 장에서 할 일**
# 1. MAE의 무작위 마스킹 (random masking, 노이즈의 argsort)을 구현하고 왜 `ids_restore`가 필요한지 본다.
# 2. 배포된 MAE가 제거된 패치에서 내는 재구성 (reconstruction) 오차를, 제거된 패치를 보이는 패치들의
#    평균으로 채우는 기준선 (baseline)과 비교해 측정한다(목표: 기준선 오차의 절반 이하).
# 3. MAE 인코더 (encoder)에서 선형 프로브 (linear probe)와 미세 조정 (fine-tuning)을 비교한다. 노트가 말하는
#    "약한 고수준 의미 정보"를 직접 측정하는 것이다.
# 4. 같은 프로브로 EVA(CLIP 특징 (feature)을 타깃으로 함)와 MAE(픽셀을 타깃으로 함)를 비교한다.
# 5. EVA 인코더를 텍스트와 정렬 (alignment)하고(2단계), 같은 예산에서 처음부터 학습한 CLIP과 비교한다.
# 6. EVA-CLIP-18B와 InternVL을 논문의 수치와 함께 맥락 속에 놓아 본다.
#
# 코드는 `vislab.mae`와 `vislab.eva`에 있고, 체크포인트 (checkpoint)의 레시피는 `vislab/recipes/mae.py`에
# (EVA의 교사는 `vislab/recipes/eva.py`에) 있다.

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

import vislab
from vislab import check
from vislab.eva import EVA, block_masking, clip_patch_targets, negative_cosine_loss
from vislab.mae import MAE, MAEConfig, mae_loss, random_masking, visible_mean_baseline
from vislab.patching import patchify
from vislab.pretrain import load_or_train
from vislab.probes import extract_features, linear_probe_accuracy, pixel_features
from vislab.recipes import mae as recipe
from vislab.runtime import make_generator, setup
from vislab.shapes import SHAPES, ShapeWorld
from vislab.text import shapeworld_tokenizer
from vislab.train import evaluate_accuracy
from vislab.vit import ViT, ViTConfig, count_parameters

device = setup(seed=0)
USE_CHECKPOINT = True   # False: retrain every checkpoint here (minutes each on a laptop CPU)

# %% [markdown] tags=["slide"]
# ## 1. 직관: 채워 넣으며 배우기
#
# BERT는 문장 단어의 15%를 가리고 그것을 예측한다. 이미지는 텍스트보다 훨씬 중복이 많다. 하늘의
# 빠진 패치 하나는 이웃 패치만 보고도 쉽게 짐작할 수 있다. 그래서 MAE(He et al., 2021,
# arXiv:2111.06377)는 패치의 **75%**를 가린다 (cited: MAE paper, sec. 4). 보이는 나머지만 평범한 ViT로
# 인코딩하고(토큰이 넷 중 하나뿐이니 싸다), 작은 디코더 (decoder)가 나머지를 픽셀로 다시 그려 넣게 한다.
# 우리가 남겨 쓰는 것은 인코더다.
#
# 픽셀은 저수준 타깃이다. 패치를 잘 그리려면 모델은 색, 모서리, 질감은 알아야 하지만, 물체가 *무엇인지*
# 까지 알 필요는 없다. EVA(Fang et al., 2022, arXiv:2211.07636)는 마스킹은 그대로 두고 타깃을 바꾼다.
# 학생 (student)은 가려진 각 패치에서, 고정된 **CLIP** 이미지 타워가 온전한 이미지로부터 그 자리에 계산한
# 특징을 예측한다. 이 특징은 캡션에 맞춰 학습되었으므로 사물의 이름을 담고 있다. EVA-CLIP(Sun et al., 2023,
# arXiv:2303.15389)은 고리를 닫는다. 이미지 타워가 EVA에서 *시작하는* CLIP이다.
#
# 노트는 EVA를 "1단계: MAE 마스크 이미지 재구성, 2단계: CLIP 손실"로 요약한다. 이 요약은 한 가지 중요한
# 점에서 느슨하며, 아래에서 확인한다. EVA의 첫 단계는 MAE처럼 픽셀을 재구성하지 않는다. CLIP 특징을
# 회귀 (regression)하며, MAE의 75% 패치 제거와 픽셀 디코더 대신 BEiT 방식의 `[MASK]` 토큰을 인코더에 넣고
# ~40% 블록 단위 마스킹을 쓴다 (cited: EVA paper, sec. 2; MAE paper, sec. 3).

# %% [markdown]
# ## 2. 수식
#
# **마스킹.** 이미지 하나는 $N$개의 패치 토큰을 준다. $u \in [0,1]^N$을 균등분포에서 뽑으면 $\pi =
# \operatorname{argsort}(u)$는 무작위 순열이다. $\pi$의 처음 $K = \lfloor N(1-r)\rfloor$개 토큰을 남긴다
# ($r$ = 마스크 비율 (mask ratio)). 패치 $i$가 제거되었으면 마스크 $m_i = 1$이다.
# $\pi^{-1} = \operatorname{argsort}(\pi)$(`ids_restore`)는 섞인 시퀀스를 원래 순서로 되돌린다.
#
# **MAE 손실** (픽셀, 제거된 패치에서만. $x_i \in \mathbb{R}^{P^2C}$는 실제 패치, $\hat x_i$는
# 디코더의 예측):
# $$\mathcal{L}_{\text{MAE}} = \frac{\sum_i m_i \,\tfrac{1}{P^2C}\lVert \hat x_i - x_i \rVert^2}{\sum_i m_i},
# \qquad\text{optionally } x_i \leftarrow \frac{x_i - \mu(x_i)}{\sqrt{\sigma^2(x_i) + 10^{-6}}}.$$
#
# **EVA 손실** ($h_i$는 마스크된 패치를 학습되는 토큰으로 바꾼 입력에서 학생이 패치 $i$에 내는 출력,
# $W$는 선형 헤드, $t_i$는 고정된 CLIP 타워가 온전한 이미지에서 패치 $i$에 대해 내는 사영된 특징):
# $$\mathcal{L}_{\text{EVA}} = -\frac{1}{|M|}\sum_{i \in M} \cos\!\left(W h_i,\; t_i\right).$$
#
# **2단계**는 3장의 대칭 InfoNCE, $\tfrac12\left[\mathrm{CE}(sIT^\top) +
# \mathrm{CE}(sTI^\top)\right]$이며, 이미지 타워는 EVA 학생으로 초기화한다.

# %% [markdown] tags=["slide"]
# ## 3. 코드
#
# MAE의 마스킹은 다섯 줄이다. 모양 주석을 위에서 아래로 읽어 보자.

# %%
vislab.show_source(random_masking)

# %% [markdown]
# 인코더는 남은 토큰(과 CLS)만 본다. 디코더는 마스크 토큰 (mask token)을 덧붙이고, `ids_restore`로 순서를
# 되돌리고, 자기만의 고정된 사인-코사인 위치를 더한 뒤 픽셀을 예측한다.

# %%
vislab.show_source(MAE.forward_encoder)
vislab.show_source(MAE.forward_decoder)
vislab.show_source(mae_loss)

# %% [markdown]
# EVA의 학생은 같은 ViT지만, 마스크된 패치를 인코더 안에서 `mask_token`으로 *교체*하며(BEiT의 방식),
# 타깃은 교사 (teacher)에게서 온다.

# %%
vislab.show_source(EVA.forward)
vislab.show_source(clip_patch_targets)
vislab.show_source(negative_cosine_loss)

# %% [markdown] tags=["slide"]
# ## 4. 모양 확인
#
# 값이 자기 인덱스인 여덟 개의 토큰, 고정된 노이즈 벡터, 비율 0.75. 노이즈가 가장 작은 두 토큰이 남는다.
# `ids_restore`는 섞기를 정확히 되돌린다.

# %%
# NBVAL_CHECK_OUTPUT
tokens = torch.arange(8.0).reshape(1, 8, 1)                       # (B=1, N=8, D=1)
noise = torch.tensor([[0.9, 0.1, 0.5, 0.7, 0.3, 0.8, 0.2, 0.6]])
kept, mask, ids_restore = random_masking(tokens, 0.75, noise=noise)
print("noise       ", [round(v, 2) for v in noise[0].tolist()])
print("kept tokens ", kept[0, :, 0].tolist(), "(smallest noise first)")
print("mask        ", mask[0].int().tolist(), "(1 = removed)")
print("ids_restore ", ids_restore[0].tolist())
ids_shuffle = noise.argsort(dim=1)
shuffled = tokens.gather(1, ids_shuffle[..., None])               # (1, 8, 1) in shuffled order
_ = check.equal(shuffled.gather(1, ids_restore[..., None]), tokens, "gather(shuffled, ids_restore) == original")
_ = check.equal(kept, shuffled[:, :2], "kept = first K of the shuffled sequence")

# %% [markdown]
# 이 장의 MAE: 32×32 ShapeWorld 이미지, 패치 크기 4이므로 $4\cdot4\cdot3 = 48$개 숫자로 된 패치가
# $N = 64$개다. 인코더(폭 64, 블록 4개)는 그중 $K = 16$개와 CLS를 본다. 논문의 ViT-B/16
# MAE는 PyTorch의 `meta` 장치에서 센다(모양만 있고 메모리는 쓰지 않는다).

# %%
# NBVAL_CHECK_OUTPUT
mae_config = MAEConfig.from_dict(recipe.MAE_CONFIG)
torch.manual_seed(0)
toy = MAE(mae_config)
x = torch.rand(2, 3, 32, 32)
with torch.no_grad():
    out = toy(x, generator=make_generator(0))
print("images      ", tuple(x.shape))
print("latent      ", tuple(out["latent"].shape), "= (B, 1 + K, D): CLS + 16 visible of 64")
print("pred        ", tuple(out["pred"].shape), "= (B, N, P*P*C)")
print("mask        ", tuple(out["mask"].shape), "removed per image:", out["mask"].sum(1).int().tolist())
print(f"parameters   encoder {count_parameters(toy.encoder):,}, decoder {count_parameters(toy) - count_parameters(toy.encoder):,}")
with torch.device("meta"):
    big = MAE(MAEConfig.preset("B/16"))
print(f"MAE ViT-B/16 encoder {count_parameters(big.encoder) / 1e6:.1f}M, decoder (8 blocks, width 512) "
      f"{(count_parameters(big) - count_parameters(big.encoder)) / 1e6:.1f}M")

# %% [markdown]
# 같은 8×8 격자에서 MAE의 무작위 마스크와 EVA의 블록 단위 마스크 (block-wise mask, BEiT의 알고리즘)를 비교한다.
# 무작위 마스킹은 이웃이 메울 수 있는 고립된 구멍을 남기고, 블록은 영역 전체를 가린다.

# %%
fig, axes = plt.subplots(2, 6, figsize=(11, 4))
rand_masks = [random_masking(torch.zeros(1, 64, 1), 0.75, generator=make_generator(s))[1] for s in range(6)]
block_masks = block_masking(6, 8, 0.4, generator=make_generator(0)).float()
for j in range(6):
    axes[0, j].imshow(rand_masks[j].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    axes[1, j].imshow(block_masks[j].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    for ax in axes[:, j]:
        ax.set_xticks([])
        ax.set_yticks([])
axes[0, 0].set_ylabel("MAE: random 75%")
axes[1, 0].set_ylabel("EVA: blocks 40%")
fig.suptitle("black = removed / masked patch")
plt.show()

# %% [markdown] tags=["slide"]
# ## 5. ShapeWorld에서의 MAE: 재구성이 되는가?
#
# 먼저, 무엇을 재구성할 *수 있는가*? MAE의 손실은 평균 제곱 오차이므로, 가려진 패치에 대한 최선의
# 추측은 그 자리에 올 수 있는 모든 것의 평균이다. 어떤 이웃으로도 예측할 수 없는 픽셀 수준의 세부
# (센서 노이즈, 미세한 무작위 질감)는 *어떤* 모델에게나 오차로 남는다. 이를 오라클 (oracle)로 측정한다.
# 오라클은 가려진 각 패치의 실제 평균 색을 알고 그 단색을 예측한다. ShapeWorld의 질감 있는 배경에서는
# 오라클조차 보이는 패치 평균 기준선 오차의 절반 넘게를 남기므로, "기준선의 절반"이라는 목표는 거기서
# 달성할 수 없다. 그래서 이 장의 장면(`recipe.world()`)은 검은 배경 위에 똑바로 선 도형 하나이며, 픽셀
# 노이즈는 없지만 위치는 *연속적*이다(3장의 3×3 격자가 아니다. 그 격자에서는 원시 픽셀 위의 선형
# 프로브만으로도 도형을 읽어 내므로, 인코더가 보여 줄 것이 남지 않는다).

# %%
for name, w in (("textured background + noise", ShapeWorld(image_size=32, nuisance="medium", max_shapes=1)),
                ("the chapter's scenes", recipe.world())):
    imgs = w.sample(1024, "test", seed=7).images
    patches = patchify(imgs, 4)                                                         # (n, 64, 48)
    _, m, _ = random_masking(patches, 0.75, generator=make_generator(123))
    base = mae_loss(visible_mean_baseline(imgs, m, 4), imgs, m, 4).item()
    oracle = mae_loss(patches.mean(-1, keepdim=True).expand_as(patches), imgs, m, 4).item()   # flat true colour
    print(f"{name:<28} visible-mean baseline {base:.4f}   flat-colour oracle {oracle:.4f} ({oracle / base:.0%} of it)")

# %% [markdown]
# 이 장의 장면에서 단색 오라클에 남는 오차는 패치 안의 도형 *모서리*이며, 이는 모델이 배울 수 있다.
# 배포된 체크포인트 `mae_shapes`는 이런 장면(이미지당 도형 하나)에서
# `python -m vislab.pretrain mae_shapes`로 학습했다. 그 JSON에는 명령, 시드 (seed), 걸린 초, 손실 곡선이
# 기록되어 있다.

# %%
# NBVAL_IGNORE_OUTPUT
mae, mae_meta = load_or_train("mae_shapes", device=device, use_checkpoint=USE_CHECKPOINT)
curve = mae_meta["metrics"]["loss_curve"]
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(curve["step"], curve["loss"])
ax.set_xlabel("step")
ax.set_ylabel("masked-patch MSE (train, smoothed)")
ax.set_yscale("log")                                   # the loss flattens: a log scale shows its late progress
ax.set_title(f"mae_shapes: {mae_meta['metrics']['steps']} steps, {mae_meta['seconds']} s")
plt.show()

# %% [markdown]
# 목표: 학습에 쓰지 않은 장면 1024개에서, 양쪽에 같은 시드의 마스크를 쓸 때, 제거된 패치에 대한 MAE의
# 오차가 기준선 오차의 **절반** 이하여야 한다. 기준선은 제거된 모든 패치를 보이는 패치들의 평균으로
# 칠한다(그러니 이미 이미지의 평균 색을 안다).

# %%
test_world = recipe.world()
test_images = test_world.sample(1024, "test", seed=7).images
errors = recipe.reconstruction_errors(mae, test_images, seed=123, device=device)
print(f"masked-patch MSE: MAE {errors['mae_mse']:.4f}, visible-mean baseline {errors['baseline_mse']:.4f} "
      f"(ratio {errors['ratio']:.2f})")
_ = check.at_most(errors["mae_mse"], 0.5 * errors["baseline_mse"],
                  "MAE error on removed patches vs half the baseline's")

# %% [markdown]
# 제거하는 비율이 작아지면 이 모델에게 과제가 쉬워질까? 각 점은 학습에 쓰지 않은 장면 256개를 쓰며,
# 기준선은 같은 마스크로 다시 계산한다.
# %%
ratios = [0.25, 0.5, 0.6, 0.75, 0.85, 0.9]
sweep = {r: recipe.reconstruction_errors(mae, test_images[:256], seed=5, device=device, mask_ratio=r) for r in ratios}
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(ratios, [sweep[r]["mae_mse"] for r in ratios], "o-", label="MAE")
ax.plot(ratios, [sweep[r]["baseline_mse"] for r in ratios], "s--", label="visible mean")
ax.axvline(0.75, color="k", lw=0.5, ls=":")
ax.set_xlabel("mask ratio")
ax.set_ylabel("MSE on removed patches")
ax.legend()
plt.show()
best = min(ratios, key=lambda r: sweep[r]["mae_mse"])
best_rel = min(ratios, key=lambda r: sweep[r]["mae_mse"] / sweep[r]["baseline_mse"])
print(f"{'removed':>8} {'MAE MSE':>9} {'baseline':>9} {'MAE / baseline':>15}")
for r in ratios:
    print(f"{r:>8.0%} {sweep[r]['mae_mse']:>9.4f} {sweep[r]['baseline_mse']:>9.4f} {sweep[r]['mae_mse'] / sweep[r]['baseline_mse']:>15.2f}")
print("lowest MAE error at mask ratio", best, "; lowest relative to the baseline at", best_rel)

# %%
from IPython.display import Markdown, display

low = ratios[0]
display(Markdown(
    f"Not what intuition says: the error is lowest at {best:.0%} removed, relative to the baseline at {best_rel:.0%} "
    "(the model was trained at 75%), and fewer removed patches "
    + ("do *not* make the task easier" if sweep[low]["mae_mse"] / sweep[low]["baseline_mse"] > sweep[0.75]["mae_mse"] /
       sweep[0.75]["baseline_mse"] else "make it easier, relative to the baseline")
    + f": at {low:.0%} removed the MAE's error is {sweep[low]['mae_mse'] / sweep[low]['baseline_mse']:.2f} times the "
    f"baseline's, against {sweep[0.75]['mae_mse'] / sweep[0.75]['baseline_mse']:.2f} at 75%. With "
    f"{round(64 * (1 - low))} visible patches the encoder sees three times more tokens than in any training step, and "
    "this small, briefly trained model has learned the statistics of \"16 visible patches\" (at low ratios it paints "
    "the shape's colour over black patches, as you can see in the viewer below)."))

# %% [markdown]
# MAE 논문도 디코더를 다른 비율에서 돌려 보지만, 더 높은 비율에서만이다. 논문의 그림 4는 75%로 사전 학습한
# 모델이 패치의 85%와 95%가 제거된 이미지를 여전히 그럴듯하게 재구성하는 모습을 보여 준다
# (cited: MAE paper, fig. 4). 학습 비율보다 낮은 쪽은 다루지 않으며, MAE의 목적에 비추어 보면 테스트 시의
# 비율은 중요하지 않다. 사전 학습이 끝나면 디코더는 버리고, 모든 패치를 입력받는 인코더를 미세 조정하기
# 때문이다(7절).

# %% [markdown] tags=["slide"]
# ## 6. 마스킹 뷰어
#
# 이미지, 제거할 패치의 비율, 마스크의 시드를 고른다. 왼쪽부터 원본, 인코더가 받는 입력(회색 = 제거됨),
# 모든 위치에서의 디코더 출력, 보이는 패치에 예측한 패치를 붙여 넣은 결과(MAE의 그림 2), 그리고 기준선이다.
# (실행 중인 커널이 없으면 기본 화면이 그림으로 보인다.)

# %%
# NBVAL_IGNORE_OUTPUT
from vislab.widgets.masking import masking_viewer

viewer_batch = test_world.sample(16, "test", seed=11)


def reconstruct(image, ratio, seed):
    return mae.reconstruct(image.to(device), mask_ratio=ratio, generator=make_generator(seed))


viewer = masking_viewer(viewer_batch.images, reconstruct, ratio=0.75, captions=viewer_batch.captions)

# %% [markdown]
# 해 볼 것: 75%에서는 모서리 하나가 보이는 도형이 올바른 자리에 올바른 색의 흐릿한 덩어리로 돌아온다
# (평균 제곱 오차는 그럴듯한 모든 완성의 *평균*에 보상을 주므로 흐려진다). 완전히 가려진 도형은 돌아올 수
# 없다(보이는 어떤 것도 그것이 있었다고 말해 주지 않는다). 25%에서는 위에서 측정했듯이 모델이 덧칠을 한다.
# *보이는* 패치에서의 모델 출력은 노이즈인데, 손실이 그것을 요구한 적이 없기 때문이다.

# %% [markdown] tags=["slide"]
# ## 7. 선형 프로브 대 미세 조정: "약한 고수준 의미 정보"
#
# 노트의 표는 MAE가 표현은 강하지만 고수준 의미 정보는 약하다고 말한다. 인코더를 읽는 표준적인 방법은
# 두 가지다. **선형 프로브**(인코더를 고정하고 그 특징 위에 로지스틱 회귀를 맞춘다)와 **미세 조정**
# (분류 헤드를 붙여 처음부터 끝까지 학습한다)이다. 먼저 프로브만 본다. 레이블이 붙은 학습 장면 2000개와
# 테스트 장면 1000개를 쓰며, 특징은 마지막 패치 토큰들의 평균이다. 레이블은 네 가지다. *도형*(7개 클래스,
# 의미적인 레이블), *색*(8), *크기*(3), *위치*(9).

# %%
sets = recipe.probe_sets()
random_vit = ViT(ViTConfig(**recipe.ENCODER))   # the same architecture, untrained
features = {
    "random init ViT": [recipe.encoder_features(random_vit, sets[s].images, device) for s in ("train", "test")],
    "MAE (pixels)": [recipe.encoder_features(mae.encoder, sets[s].images, device) for s in ("train", "test")],
}
table = recipe.probe_table(features, sets)
table["raw pixels"] = {lab: linear_probe_accuracy(pixel_features(sets["train"].images), sets["train"].labels[lab],
                                                  pixel_features(sets["test"].images), sets["test"].labels[lab],
                                                  max_iter=300) for lab in ("shape", "position")}


def print_table(table, labels=recipe.PROBE_LABELS):
    print(f"{'linear probe':<26}" + "".join(f"{lab:>10}" for lab in labels))
    for name, row in table.items():
        print(f"{name:<26}" + "".join(f"{row[lab]:>10.1%}" if lab in row else f"{'-':>10}" for lab in labels))


print(f"{len(sets['train'].images)} labelled training scenes, {len(sets['test'].images)} test scenes")
print_table(table)

# %% [markdown]
# 이제 미세 조정이다. `mim_finetune_shapes`에는 같은 구조(인코더, 그 패치 토큰들의 평균, 선형 헤드)의
# 도형 분류기 세 개가 들어 있으며, 각각 레이블이 붙은 같은 장면 8000개에서 600 스텝 동안 처음부터 끝까지
# 미세 조정했다. 시작점은 무작위 가중치, `mae_shapes`, `eva_shapes`다. 공정한 비교는 *같은* 8000개
# 레이블로 맞춘 선형 프로브다. (이 장을 만드는 동안, 레이블을 넷 중 하나만, 스텝을 절반만 쓴 버전에서는
# 미세 조정한 모든 모델이 프로브와 몇 점 차이 안에 머물렀다. 여기서 다시 돌리지는 않는다. 이만큼 작은
# ViT는 선형 분류기보다 더 많은 레이블을 필요로 한다.)

# %%
# NBVAL_IGNORE_OUTPUT
finetuned, ft_meta = load_or_train("mim_finetune_shapes", device=device, use_checkpoint=USE_CHECKPOINT)

# %%
ft_sets = recipe.finetune_sets()                         # 8000 labelled training scenes, the same 1000 test scenes
ft_acc = {name: evaluate_accuracy(model, ft_sets["test"].images, ft_sets["test"].labels["shape"])
          for name, model in finetuned.items()}
ft_encoders = {"scratch": random_vit, "mae": mae.encoder}
ft_probe = {}
for name, encoder in ft_encoders.items():
    tr, te = (recipe.encoder_features(encoder, ft_sets[s].images, device) for s in ("train", "test"))
    ft_probe[name] = linear_probe_accuracy(tr, ft_sets["train"].labels["shape"], te, ft_sets["test"].labels["shape"],
                                           max_iter=500)


def print_finetune_table(names):
    print(f"{'shape, 8000 labels':<22}{'linear probe':>14}{'fine-tuned':>12}{'(recorded)':>12}")
    for name in names:
        print(f"{'from ' + name:<22}{ft_probe[name]:>14.1%}{ft_acc[name]:>12.1%}"
              f"{ft_meta['metrics'][name]['test_acc']:>12.1%}")


print_finetune_table(["scratch", "mae"])
_ = check.at_least(ft_acc["mae"] - ft_probe["mae"], 0.15,
                   "fine-tuning the MAE encoder beats its linear probe on shape by (accuracy points)")
_ = check.at_least(ft_acc["mae"] - ft_acc["scratch"], 0.05, "fine-tuning from MAE beats fine-tuning from scratch by")

# %% [markdown]
# MAE 인코더는 도형에 필요한 정보를 *담고* 있지만(미세 조정하면 금방 도달한다), 선형으로 읽을 수 있는
# 형태는 아니다. 그 특징은 픽셀을 예측하는 데 쓸모 있는 것, 즉 색과 위치를 중심으로 조직되어 있다.
# 이것이 노트가 말한 "약한 고수준 의미 정보"를 측정한 결과다. 같은 격차는 큰 규모에서도 나타난다.
# OpenMMLab의 MAE 재현(mmselfsup, ImageNet-1k에서 사전 학습 1600 에폭)은 ViT-B가 선형 프로브 67.1%,
# 미세 조정 83.5%이고, ViT-L이 75.5% 대 85.7%라고 보고한다 (cited: mmselfsup's MAE model zoo).
# MAE의 저자들은 중요한 쓰임새는 미세 조정이라고 주장한다. EVA의 답은 타깃을 바꾸는 것이다.

# %% [markdown] tags=["slide"]
# ## 8. EVA: 픽셀 대신 CLIP 특징 예측하기
#
# EVA의 학생은 교사가 *학생의* 이미지에서 보는 것만 배울 수 있다. 우리 교사는 3장의 CLIP인
# `clip_shapes`로, 3×3 격자의 중심에 놓인 도형으로 학습했다. 이 장의 장면은 도형을 어디에나 둔다.
# 그러니 첫 질문은 이것이다. `clip_shapes`가 여기서도 도형을 읽는가? 그리고 같은 CLIP을 이 장의 장면에서
# 캡션 스텝 600번 더 이어 학습한 모델(`eva_teacher_shapes`, 레시피는 `vislab/recipes/eva.py`)은 어떤가?
# 이것이 우리가 교사로 쓰는 모델이다. EVA의 실제 교사인 OpenAI의 CLIP은 EVA의 학습 이미지와 같은 종류의
# 웹 이미지를 본 적이 있었다.

# %%
# NBVAL_IGNORE_OUTPUT
clip3, clip3_meta = load_or_train("clip_shapes", device=device, use_checkpoint=USE_CHECKPOINT)
teacher, teacher_meta = load_or_train("eva_teacher_shapes", device=device, use_checkpoint=USE_CHECKPOINT)

# %%
tok = shapeworld_tokenizer(context_length=recipe.ALIGN_CONFIG["context_length"])   # chapter 3's vocabulary
zs_test = test_world.sample(512, "test", seed=9)          # held-out scenes for every zero-shot number below
zs_clip3 = recipe.zero_shot_accuracy(clip3, tok, zs_test.images, zs_test.labels["shape"], device=device)
teacher_zero_shot = recipe.zero_shot_accuracy(teacher, tok, zs_test.images, zs_test.labels["shape"], device=device)
print(f"zero-shot shape accuracy on this chapter's scenes: clip_shapes {zs_clip3:.1%}, "
      f"adapted teacher {teacher_zero_shot:.1%} (chance {1 / len(SHAPES):.1%})")
_ = check.at_least(teacher_zero_shot, 0.9, "the adapted teacher's zero-shot shape accuracy on these scenes")

# %% [markdown]
# 도형이 *어디에* 놓이는지가 바뀌는 것만으로도 격자 위치로 학습한 CLIP은 눈이 멀었다. 그 이미지 타워는
# 격자 중심에 놓인 도형을 배웠던 것이다. 그 특징을 회귀하는 학생은 이 사각지대까지 배울 것이다(실제로
# 해 보니 도형에 대한 선형 프로브가 MAE보다도 *낮았다*). 적응시킨 교사를 쓰는 학생 `eva_shapes`는
# MAE 인코더와 *정확히* 같은 구조와 초기화를 가지며, 캡션은 하나도 보지 않았고(교사의 패치 특징만 보았다),
# MAE와 같은 수의 이미지로 같은 2400 스텝을 학습했다(스텝 하나의 비용은 더 크다. 64개 패치가 모두
# 인코더를 지나가며, MAE는 16개다).

# %%
# NBVAL_IGNORE_OUTPUT
eva, eva_meta = load_or_train("eva_shapes", device=device, use_checkpoint=USE_CHECKPOINT)
for name, meta in (("MAE", mae_meta), ("EVA", eva_meta)):
    print(f"{name}: {meta['metrics']['steps']} steps, {meta['metrics']['images_seen']:,} images, "
          f"{meta['seconds']} s (`{meta['command']}`)")

# %%
with torch.no_grad():
    probe_images = test_images[:256].to(device)
    eva_mask = eva.sample_mask(len(probe_images), generator=make_generator(123)).to(device)
    targets = clip_patch_targets(teacher, probe_images, eva.config.encoder.grid)          # (256, 64, E)
    eva_cos = -eva.loss(probe_images, targets, eva_mask).item()
    mean_target = targets.mean(dim=(0, 1), keepdim=True).expand_as(targets)               # one vector for all
    base_cos = -negative_cosine_loss(mean_target, targets, eva_mask).item()
print(f"cosine(student, teacher) on masked test patches: EVA {eva_cos:.3f}, "
      f"the teacher's average feature {base_cos:.3f}")
_ = check.at_least(eva_cos - base_cos, 0.1, "EVA predicts masked teacher features better than their average by")

# %% [markdown]
# 이제 EVA와 교사 자신에 대해 같은 프로브를 돌린다(교사는 마지막 패치 토큰들의 평균과 CLIP 이미지 임베딩
# (embedding) 두 가지로).

# %%
features = {
    "EVA (CLIP features)": [recipe.encoder_features(eva.encoder, sets[s].images, device) for s in ("train", "test")],
    "teacher CLIP (patches)": [recipe.encoder_features(teacher.visual, sets[s].images, device) for s in ("train", "test")],
}
features["teacher CLIP (embedding)"] = [extract_features(teacher.encode_image, sets[s].images, device=device)
                                        for s in ("train", "test")]
table.update(recipe.probe_table(features, sets))
print_table(table)
print()
tr, te = (recipe.encoder_features(eva.encoder, ft_sets[s].images, device) for s in ("train", "test"))
ft_probe["eva"] = linear_probe_accuracy(tr, ft_sets["train"].labels["shape"], te, ft_sets["test"].labels["shape"],
                                        max_iter=500)
print_finetune_table(["scratch", "mae", "eva"])

# %%
_ = check.at_least(table["EVA (CLIP features)"]["shape"] - table["MAE (pixels)"]["shape"], 0.15,
                   "EVA's linear probe on shape minus MAE's (accuracy points)")
_ = check.at_least(ft_acc["eva"] - ft_acc["mae"], 0.05, "fine-tuned from EVA minus fine-tuned from MAE, shape")
_ = check.at_least(table["teacher CLIP (embedding)"]["shape"] - table["EVA (CLIP features)"]["shape"], 0.2,
                   "what the student did not distil: the teacher's shape probe minus EVA's")

# %%
sh = {name: table[name]["shape"] for name in ("MAE (pixels)", "EVA (CLIP features)", "teacher CLIP (embedding)")}
display(Markdown(
    f"Read the table with care. With the same encoder, steps and images, and without a caption, EVA's features read "
    f"shape far better than MAE's ({sh['EVA (CLIP features)']:.1%} against {sh['MAE (pixels)']:.1%}): the teacher's "
    "semantics, distilled. Colour, size and position, which pixels already carry, are easy for every encoder. But the "
    f"student is still well below its teacher ({sh['teacher CLIP (embedding)']:.1%}): it matches the teacher's masked "
    f"patch features with a cosine of {eva_cos:.2f}, and much of that is the part every scene shares (the average "
    f"feature alone scores {base_cos:.2f}); the shape-specific part is learned last. Fine-tuned on the same 8000 "
    f"labels, the EVA start ends at {ft_acc['eva']:.1%}, the MAE start at {ft_acc['mae']:.1%} and scratch at "
    f"{ft_acc['scratch']:.1%} (test sets of {len(ft_sets['test'].images)} scenes: a 95% binomial interval is about "
    f"±{196 * (0.25 / len(ft_sets['test'].images)) ** 0.5:.0f} points at most)."))

# %% [markdown]
# 큰 규모에서 EVA의 학생은 교사보다 *크며*(ViT-g, ~1B 파라미터, CLIP-L은 ~0.3B) (cited: EVA paper, sec. 2)
# 오래 학습한다. 여기서는 작은 학생이 그 길의 일부를 가는 모습을 본다.

# %% [markdown] tags=["slide"]
# ## 9. 2단계: EVA에서 시작한 CLIP 정렬 대 처음부터 학습
#
# `eva_clip_shapes`는 같은 캡션 쌍(3장의 alt 텍스트 같은 캡션), 같은 텍스트 타워 초기화, 같은 옵티마이저,
# 같은 스텝 수로 CLIP 세 개를 학습한다. 다른 것은 이미지 타워의 출발점뿐이다. 무작위(같은 고정 사인-코사인
# 위치 사용), `mae_shapes`의 인코더, `eva_shapes`의 인코더다. 학습에 쓰지 않은 장면 512개에서 "a photo of a
# {shape}"로 잰 제로샷 (zero-shot) 도형 정확도를 25 스텝마다 기록했다.

# %%
# NBVAL_IGNORE_OUTPUT
aligned, align_meta = load_or_train("eva_clip_shapes", device=device, use_checkpoint=USE_CHECKPOINT)

# %%
zero_shot = {name: recipe.zero_shot_accuracy(model, tok, zs_test.images, zs_test.labels["shape"], device=device)
             for name, model in aligned.items()}
runs = align_meta["metrics"]
fig, ax = plt.subplots(figsize=(6.5, 3.8))
labels = {"scratch": "from scratch", "mae": "from MAE (pixels)", "eva": "from EVA (CLIP features)"}
for name, run in runs.items():
    ax.plot(run["eval_steps"], run["zero_shot_curve"], marker=".", label=labels[name])
ax.axhline(teacher_zero_shot, color="k", ls="--", lw=0.8, label="EVA's teacher (eva_teacher_shapes)")
ax.axhline(1 / len(SHAPES), color="gray", ls=":", lw=0.8, label="chance")
ax.set_xlabel(f"CLIP training step (batch {recipe.ALIGN_CONFIG['batch']})")
ax.set_ylabel("zero-shot shape accuracy")
ax.set_ylim(0, 1)
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))    # outside: it covers no curve
plt.show()
for name, acc in zero_shot.items():
    print(f"CLIP {labels[name]:<26} final zero-shot {acc:.1%}  (recorded {runs[name]['zero_shot']:.1%})")
print(f"EVA's teacher on the same scenes:   {teacher_zero_shot:.1%}")

# %%
def steps_to(run, level):
    """First evaluated step at which the zero-shot accuracy reaches ``level`` (None if never)."""
    return next((s for s, a in zip(run["eval_steps"], run["zero_shot_curve"]) if a >= level), None)


level = 0.5
mean_zero_shot = {name: sum(run["zero_shot_curve"]) / len(run["zero_shot_curve"]) for name, run in runs.items()}
for name, run in runs.items():
    print(f"{labels[name]:<26} first reaches {level:.0%} at step {steps_to(run, level)}; "
          f"mean over the run {mean_zero_shot[name]:.1%}")
teacher_pairs = sum(m["config"]["steps"] * m["config"]["batch_size"] for m in (clip3_meta, teacher_meta))
stage2_pairs = runs["eva"]["steps"] * recipe.ALIGN_CONFIG["batch"]
print(f"caption pairs seen: each stage-2 CLIP {stage2_pairs:,}; EVA's teacher (chapter 3 + adaptation) "
      f"{teacher_pairs:,}")
for name in aligned:
    _ = check.close(zero_shot[name], runs[name]["zero_shot"],
                    f"shipped {name} CLIP reproduces its recorded zero-shot", atol=0.03, rtol=0)
_ = check.at_least(zero_shot["eva"] - zero_shot["scratch"], 0.3,
                   "EVA-initialised CLIP's final zero-shot minus scratch's, equal steps")
_ = check.at_least(mean_zero_shot["eva"] - mean_zero_shot["scratch"], 0.2,
                   "EVA-initialised CLIP's mean zero-shot over the run minus scratch's")

# %%
others = [n for n in ("scratch", "mae") if n in zero_shot]
reach = steps_to(runs["eva"], level)
display(Markdown(
    f"**What this shows, and what it does not.** At equal stage-2 steps the EVA-initialised tower "
    + (f"passes {level:.0%} at step {reach}" if reach is not None else f"never reaches {level:.0%}")
    + f" and ends at {zero_shot['eva']:.1%}, against "
    + " and ".join(f"{zero_shot[n]:.1%} {labels[n]}" for n in others)
    + f" after {runs['eva']['steps']} steps (chance: {1 / len(SHAPES):.1%}; {len(zs_test.images)} test scenes, a 95% "
    f"interval of about ±{196 * (0.25 / len(zs_test.images)) ** 0.5:.0f} points): with {stage2_pairs:,} caption "
    "pairs a randomly initialised tower has not yet learned to tell shapes apart, and MAE's pixel features give it "
    "little to start from. That is EVA's claim in miniature (\"initializing the vision tower of a giant CLIP from EVA "
    "can greatly stabilize the training and outperform the training from scratch counterpart with much fewer "
    "samples\", EVA-CLIP paper).\n\n"
    f"Now the honest accounting. (1) All three stay below the teacher ({teacher_zero_shot:.1%}): the EVA tower brings "
    f"what its student distilled (a linear probe of {table['EVA (CLIP features)']['shape']:.1%} on shape, section 8), "
    f"and {runs['eva']['steps']} steps do not make up the rest. (2) The comparison is at equal *stage-2* budget only. "
    f"The EVA encoder cost a MIM run *and* a CLIP teacher that saw {teacher_pairs / stage2_pairs:.1f} times more "
    "caption pairs than any stage-2 run; on this budget the cheapest zero-shot classifier is the teacher itself."))

# %% [markdown]
# EVA 타워가 "가져오는" 것의 일부는 증류된 교사의 캡션 지식이다. 교사가 없는 MAE 곡선은 여기서 마스크된
# 픽셀만으로는 얼마나 적게 얻는지를 보여 준다. EVA-CLIP의 실제 이득도 같은 구조이며(그 교사는 OpenAI의
# CLIP이었다), 큰 규모에서 효과를 보는 이유는 학생이 교사보다 *크기* 때문이다(EVA-CLIP-18B의
# "weak-to-strong"). 이는 장 하나 크기의 모델로는 재현되지 않는다.

# %% [markdown] tags=["slide"]
# ## 10. 맥락: EVA-CLIP-18B와 InternVL
#
# 논문이 직접 밝힌 수치다 (cited: each row's paper):
#
# | 모델 | 논문 | 이미지 타워 | 데이터 | 비고 |
# |---|---|---|---|---|
# | EVA | Fang et al. 2022, arXiv:2211.07636 | ViT-g/14, ~1.0B 파라미터 | 레이블 없는 공개 이미지 ~30M장 | OpenAI CLIP-L/14 특징의 MIM, 40% 블록 마스크 |
# | EVA-CLIP | Sun et al. 2023, arXiv:2303.15389 | EVA로 초기화한 이미지 타워. 가장 큰 EVA-02-CLIP-E/14+는 전체 5.0B 파라미터 | LAION-2B 외. E/14+는 샘플 9B개를 봄 | ImageNet-1k 제로샷 82.0%(E/14+). 파라미터 430M인 L/14+는 80.4% |
# | EVA-CLIP-18B | Sun et al. 2024, arXiv:2402.04252 | 18B 파라미터(비전 ViT: 블록 48개, 폭 5120) | 2B 쌍(LAION-2B + COYO-700M), **본 샘플 6B개** | 벤치마크 27개의 평균 제로샷 top-1 80.7%. "weak-to-strong": 작은 EVA-CLIP이 큰 EVA를 가르치고, 그 EVA가 큰 CLIP을 초기화한다 |
# | InternVL (InternViT-6B) | Chen et al. 2023, arXiv:2312.14238 | InternViT-6B, 5.9B 파라미터 | LAION-en/multi, LAION-COCO, COYO, Wukong, CC3M/12M, SBU(필터링 후 4.98B 쌍) | **무작위 초기화**(논문 sec. 4.1), LLaMA-7B로 초기화한 텍스트 쪽과 대조 학습으로 정렬. EVA-CLIP은 비교 대상 기준선이다 |
#
# 노트의 EVA-CLIP 상자에는 두 가지 정정이 필요하다. EVA-CLIP-18B는 15B 쌍이 아니라 **2B** 쌍 규모의
# 데이터셋으로 학습했다(본 샘플은 6B개) (cited: EVA-CLIP-18B paper, arXiv:2402.04252). 또 InternVL은
# EVA-CLIP의 가중치 위에 세워지지 않았다. InternViT-6B는 무작위 초기화에서 시작하며, InternVL 1.5/2는
# InternViT를 재사용한다(InternViT-300M은 InternViT-6B에서 증류했다) (cited: InternVL paper, sec. 4.1, and the
# InternViT-300M model card). InternVL이 EVA와 공유하는 것은 비전 인코더 (vision encoder)를 키워 웹 규모에서
# 언어와 정렬한다는 *발상*이다.

# %% [markdown] tags=["slide"]
# ## 11. 연습
#
# 각 연습 (exercise)에는 여러분이 채울 셀(`exercise` 태그), 자가 점검, 숨겨진 풀이가 있다. 종류는 네 가지다.
# **구현**(연습 1-3, `vislab.mae`와 `vislab.eva`의 부품), **예측 후 실행**(4), 심어 둔 버그의 **디버그**(5),
# 배포된 MAE의 마스크 비율에 대한 **절제 실험** (ablation)(6). 각각 한두 초면 돈다.
#
# **연습 1 (Exercise 1).** `my_random_masking(tokens, ratio, noise)`를 작성하라. MAE의 의미론대로 `(kept, mask,
# ids_restore)`를 돌려주어야 한다(노이즈가 *가장 작은* K = int(N(1-ratio))개 토큰을 그 순서대로 남긴다.
# `mask`는 1 = 제거됨이며, 원래 순서를 따른다).

# %% tags=["exercise"]
def my_random_masking(tokens, ratio, noise):
    # TODO: argsort the noise, keep the first K, build the mask in shuffled order, then unshuffle it
    raise NotImplementedError


# %%
masking_cases = [(torch.randn(2, 16, 3), 0.75, torch.rand(2, 16)), (torch.randn(1, 10, 2), 0.3, torch.rand(1, 10))]


def reference_masking(tokens, ratio, noise):
    return torch.cat([t.float().flatten() for t in random_masking(tokens, ratio, noise=noise)])


def as_flat(fn):
    return lambda tokens, ratio, noise: torch.cat([t.float().flatten() for t in fn(tokens, ratio, noise)])


_ = check.exercise("Exercise 1: random masking", as_flat(my_random_masking), reference_masking, masking_cases)

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_random_masking(tokens, ratio, noise):
    B, N, D = tokens.shape
    keep = int(N * (1 - ratio))
    ids_shuffle = noise.argsort(dim=1)                      # (B, N)
    ids_restore = ids_shuffle.argsort(dim=1)                # (B, N)
    kept = tokens.gather(1, ids_shuffle[:, :keep, None].expand(-1, -1, D))
    mask = torch.ones(B, N)
    mask[:, :keep] = 0
    return kept, mask.gather(1, ids_restore), ids_restore


_ = check.exercise("Exercise 1: random masking", as_flat(solution_random_masking), reference_masking, masking_cases,
                   solution=True)

# %% [markdown]
# **연습 2 (Exercise 2).** EVA의 손실 `my_negative_cosine(pred, target, mask)`를 작성하라. 코사인 유사도에
# 음수를 붙인 값을, 마스크된 패치에 대해서만 평균한다.

# %% tags=["exercise"]
def my_negative_cosine(pred, target, mask):
    # TODO: cosine per patch (normalise both), keep masked ones, average, negate
    raise NotImplementedError


# %%
cos_cases = [(torch.randn(2, 8, 5), torch.randn(2, 8, 5), torch.rand(2, 8) < 0.5),
             (torch.randn(1, 4, 3), torch.randn(1, 4, 3), torch.tensor([[True, False, False, True]]))]
_ = check.exercise("Exercise 2: negative cosine loss", my_negative_cosine, negative_cosine_loss, cos_cases)

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_negative_cosine(pred, target, mask):
    p = pred / pred.norm(dim=-1, keepdim=True)
    t = target / target.norm(dim=-1, keepdim=True)
    cos = (p * t).sum(-1)                                   # (B, N)
    m = mask.float()
    return -(cos * m).sum() / m.sum()


_ = check.exercise("Exercise 2: negative cosine loss", solution_negative_cosine, negative_cosine_loss, cos_cases,
                   solution=True)

# %% [markdown]
# **연습 3 (Exercise 3).** 5절의 기준선: `my_visible_mean(images, mask, p)`는 모든 패치가 그 이미지의
# 보이는 패치들의 평균인 텐서 `(B, N,
# P*P*C)`를 돌려준다.
# (힌트: `vislab.patching.patchify`.)

# %% tags=["exercise"]
def my_visible_mean(images, mask, p):
    # TODO: patchify, average the patches with mask == 0, repeat the mean at every position
    raise NotImplementedError


# %%
mean_cases = [(torch.rand(2, 3, 8, 8), torch.tensor([[1.0, 0, 1, 1], [0, 0, 1, 0]]), 4),
              (torch.rand(1, 3, 12, 12), (torch.arange(9) % 2).float()[None], 4)]
_ = check.exercise("Exercise 3: visible-mean baseline", my_visible_mean, visible_mean_baseline, mean_cases)

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_visible_mean(images, mask, p):
    patches = patchify(images, p)                           # (B, N, P*P*C)
    visible = (1 - mask.float())[..., None]                 # (B, N, 1)
    mean = (patches * visible).sum(1, keepdim=True) / visible.sum(1, keepdim=True)
    return mean.expand_as(patches)


_ = check.exercise("Exercise 3: visible-mean baseline", solution_visible_mean, visible_mean_baseline, mean_cases,
                   solution=True)

# %% [markdown]
# **연습 4 (Exercise 4, 예측 후 실행).** 224 px에서 패치의 75%를 제거한 MAE의 ViT-B/16 인코더: 이미지 하나가
# 인코더에 넣는 토큰은 CLS 토큰을 포함해 몇 개인가? 숫자 하나를 정한 다음, 224 px 격자를 마스킹하고
# 세어 보는 검사를 실행하라.

# %% tags=["exercise"]
my_tokens = None          # TODO: an integer

# %%
grid_224 = (224 // 16) ** 2                                                              # patches at 224 px
kept_224, _, _ = random_masking(torch.zeros(1, grid_224, 1), 0.75, generator=make_generator(0))
encoder_tokens = kept_224.shape[1] + 1                                                   # + CLS
check.predict("Exercise 4: tokens in MAE's encoder, B/16 at 224 px, 75% removed", my_tokens, encoder_tokens,
              explain=f"224/16 = 14, so {grid_224} patches; int({grid_224} x 0.25) = {kept_224.shape[1]} stay, plus "
                      "CLS: the encoder's attention costs about (1/4)^2 of a full pass");

# %% tags=["solution"] jupyter={"source_hidden": true}
check.predict("Exercise 4: tokens in MAE's encoder, B/16 at 224 px, 75% removed", int(196 * 0.25) + 1, encoder_tokens,
              solution=True);

# %% [markdown]
# **연습 5 (Exercise 5, 디버그).** 그럴듯한 버그 하나를 심어 둔 `random_masking`의 복사본이다. 남은
# 토큰은 맞지만 다른 무언가가 틀렸다. 찾아서 고쳐라. 검사는 vislab과 비교한다.

# %% tags=["exercise"]
def buggy_random_masking(tokens, ratio, noise):
    B, N, D = tokens.shape
    keep = int(N * (1 - ratio))
    ids_shuffle = noise.argsort(dim=1)                      # (B, N)
    ids_restore = ids_shuffle.argsort(dim=1)                # (B, N)
    kept = tokens.gather(1, ids_shuffle[:, :keep, None].expand(-1, -1, D))
    mask = torch.ones(B, N)
    mask[:, :keep] = 0                                      # in shuffled order
    return kept, mask.gather(1, ids_shuffle), ids_restore   # TODO: back to the original order?


# %%
check.debug("Exercise 5: the planted bug in random masking", as_flat(buggy_random_masking), reference_masking,
            masking_cases, symptom="the mask marks the wrong patches as removed: the loss would be computed on "
                                   "visible patches and skip hidden ones",
            hint="which permutation undoes the shuffle?");

# %% tags=["solution"] jupyter={"source_hidden": true}
def fixed_random_masking(tokens, ratio, noise):
    B, N, D = tokens.shape
    keep = int(N * (1 - ratio))
    ids_shuffle = noise.argsort(dim=1)                      # (B, N)
    ids_restore = ids_shuffle.argsort(dim=1)                # (B, N)
    kept = tokens.gather(1, ids_shuffle[:, :keep, None].expand(-1, -1, D))
    mask = torch.ones(B, N)
    mask[:, :keep] = 0                                      # in shuffled order
    return kept, mask.gather(1, ids_restore), ids_restore   # unshuffled with ids_restore


check.debug("Exercise 5: the planted bug in random masking", as_flat(fixed_random_masking), reference_masking,
            masking_cases, solution=True);

# %% [markdown]
# **연습 6 (Exercise 6, 절제 실험).** 더 많이 제거해 보자. `my_ratio = 0.9`로 설정하고 다음 셀을 실행하라.
# 이 셀은 학습에 쓰지 않은 장면 256개에서 같은 마스크로 배포된 MAE와 보이는 패치 평균 기준선을 측정한다.
# MAE가 여전히 기준선 오차의 절반 아래에 머무는가? "yes" 또는 "no"로 답하라.

# %% tags=["exercise"]
my_ratio = None           # TODO: 0.9
my_answer = None          # TODO: "yes" or "no"

# %%
ratio_used = 0.75 if my_ratio is None else my_ratio
abl = recipe.reconstruction_errors(mae, test_images[:256], seed=5, device=device, mask_ratio=ratio_used)
print(f"{ratio_used:.0%} removed: MAE {abl['mae_mse']:.4f}, baseline {abl['baseline_mse']:.4f}, "
      f"ratio {abl['mae_mse'] / abl['baseline_mse']:.2f}")
check.answer("Exercise 6: MAE at 90% removed", my_answer if my_ratio == 0.9 else None,
             "yes" if abl["mae_mse"] <= 0.5 * abl["baseline_mse"] else "no",
             explain="with 6 visible patches of 64 a shape is often hidden entirely: the MAE can only paint "
                     "blurry averages, and the baseline, which knows the image's mean colour, is hard to halve",
             hint="set my_ratio = 0.9, run, and compare the printed ratio with 0.5");

# %% tags=["solution"] jupyter={"source_hidden": true}
abl_90 = recipe.reconstruction_errors(mae, test_images[:256], seed=5, device=device, mask_ratio=0.9)
check.answer("Exercise 6: MAE at 90% removed", "no",                 # about 0.8 of the baseline's error
             "yes" if abl_90["mae_mse"] <= 0.5 * abl_90["baseline_mse"] else "no", solution=True);

# %% [markdown] tags=["slide"]
# ## 12. 요약
#
# - MAE는 노이즈의 argsort로 마스킹한다. 가장 작은 K개를 남기고, 섞기의 argsort인 `ids_restore`가 토큰을
#   제자리로 돌려놓는다. 인코더는 보이는 패치만 보고, 마스크 토큰과 고정된 사인-코사인 위치를 쓰는
#   가벼운 디코더가 픽셀을 예측하며, 손실은 제거된 패치만 센다.
# - 작은 MAE는 제거된 ShapeWorld 패치를 보이는 패치 평균 기준선 오차의 절반보다 훨씬 낮은 오차로
#   재구성하지만, 그 특징은 도형에 따라 선형으로 조직되어 있지 않다. 같은 8000개 레이블로 미세 조정하면
#   선형 프로브보다 도형을 훨씬 잘 읽는다.
# - EVA는 마스킹을 유지하고 타깃을 CLIP 교사의 패치 특징으로 바꾼다(마스크된 패치에서의 음의 코사인).
#   교사는 학생이 보는 종류의 이미지를 보아야 한다. 3장의 CLIP은 적응시키기 전까지 3×3 격자를 벗어난
#   도형을 보지 못했다. MAE와 같은 인코더, 스텝, 이미지를 쓰고 캡션은 하나도 보지 않고도, 학생의 특징은
#   선형으로도 미세 조정 후에도 MAE보다 도형을 훨씬 잘 읽지만, 교사에는 한참 못 미친다. 작은 학생은
#   교사의 일부를 증류한다.
# - EVA 인코더에서 CLIP을 시작하면 같은 2단계 스텝에서 처음부터 학습한 것(그리고 MAE)을 이기지만, 셋 모두
#   교사보다 낮다. 정직하게 계산하려면 교사의 캡션(9절에서 센다)과 MIM 학습도 포함해야 한다.
#
# 이번 실행에서 측정한 마무리 수치:

# %%
print(f"reconstruction (removed patches, MSE): MAE {errors['mae_mse']:.4f} vs visible mean "
      f"{errors['baseline_mse']:.4f} -> {errors['ratio']:.0%} of the baseline (bar: <= 50%)")
print()
print_table(table)
print()
print_finetune_table(["scratch", "mae", "eva"])
print()
print("stage 2, zero-shot shape accuracy after "
      f"{runs['eva']['steps']} CLIP steps: " + ", ".join(f"{labels[k]} {v:.1%}" for k, v in zero_shot.items())
      + f"; EVA's teacher {teacher_zero_shot:.1%}")
print(f"EVA's teacher on these scenes: {teacher_zero_shot:.1%} zero-shot (clip_shapes before adapting: {zs_clip3:.1%})")

# %% [markdown]
# ## 13. 노트 검증
#
# 날짜와 수치는 논문에서 가져왔다 (cited: the papers' arXiv versions):
#
# | 노트의 주장 | 여기서 보인 것 |
# |---|---|
# | EVA-CLIP = CLIP 손실 + 마스크 이미지 모델링 | 8-9절: MIM 학생, 그다음 그로부터의 CLIP 손실 ✓ |
# | "1단계: MAE 마스크 이미지 재구성" | 느슨함: EVA의 MIM은 MAE의 픽셀이 아니라 **CLIP 특징**을 회귀하며(음의 코사인), BEiT 방식의 마스크 토큰과 40% 블록 마스크를 쓴다(8절) |
# | MAE: "표현은 강하고 고수준 의미 정보는 약하다" | 7절: 도형에서 선형 프로브가 미세 조정보다 훨씬 낮음(같은 8000개 레이블), 색/위치는 쉬움 ✓ |
# | EVA-CLIP (BAAI, 2022) | EVA는 2022년 11월(arXiv:2211.07636), EVA-CLIP은 2023년 3월(arXiv:2303.15389) |
# | EVA-CLIP-18B: 18B 파라미터, "15B 이미지-텍스트 쌍" | 18B ✓. 데이터: **2B 쌍**(LAION-2B + COYO-700M), 본 샘플 6B개(arXiv:2402.04252) |
# | "InternVL이 사용(InternVL2의 백본)" | 근거 없음: InternViT-6B는 무작위로 초기화되어 InternVL 자체가 학습했다(arXiv:2312.14238, sec. 4.1). 거기서 EVA-CLIP은 기준선이다 |

# %% [markdown]
# ## 질문지 (Questionnaire)
#
# 1. MAE는 어떤 패치를 제거할지 어떻게 고르며, `ids_restore`는 무엇에 쓰는가?
# 2. MAE의 인코더는 제거된 패치를 건너뛸 수 있는데, EVA의 학생은 왜 그럴 수 없는가?
# 3. 왜 MAE는 패치의 75%를 제거하고 EVA는 약 40%를 마스킹하는가? 각 타깃은 얼마나 중복적인가?
# 4. MAE의 손실은 어떤 패치를 세며, 왜 보이는 패치는 세지 않는가?
# 5. 보이는 패치 평균 기준선은 무엇을 알고 있으며, 왜 "그 오차의 절반"이 의미 있는 목표인가?
# 6. 배포된 MAE는 왜 제거하는 패치가 적을 때 기준선에 비해 더 나빴는가?
# 7. 선형 프로브와 미세 조정은 각각 무엇을 측정하며, MAE 인코더에서 둘의 격차는 무엇을 보여 주었는가?
# 8. EVA는 왜 이 장의 장면에서 *적응시킨* 교사가 필요했는가?
# 9. EVA로 초기화한 CLIP은 왜 처음부터 학습한 CLIP보다 제로샷 도형 인식을 빨리 배우며, 같은 2단계 스텝에서의
#    비교는 무엇을 빠뜨리는가?
# 10. 텍스트를 본 적 없는 교사, 예컨대 5장의 DINO에게서 EVA는 무엇을 배우게 될까?
# 11. EVA-CLIP-18B와 InternVL에 대한 노트의 사실 중 무엇이 틀렸으며, 논문은 무엇이라고 말하는가?

# %% [markdown] tags=["solution"]
# **정답 (Answers)**
#
# 1. 패치마다 균등분포 노이즈를 뽑아 argsort하고, 노이즈가 가장 작은 패치를 남긴다. `ids_restore`(그 순열의
#    argsort)는 섞인 시퀀스를 원래 순서로 되돌리며, 디코더와 마스크에 쓰인다.
# 2. MAE의 디코더는 인코더 다음에 마스크 토큰을 다시 넣는다. EVA(BEiT 방식)는 마스크된 위치에 마스크 토큰을
#    인코더 *안으로* 넣으므로, 모든 패치가 인코더를 지나간다.
# 3. 픽셀은 매우 중복적이라(이웃이 패치를 잘 예측한다) 높은 비율이어야 과제가 어려워진다. CLIP 특징은 덜
#    중복적이어서 블록을 적당한 비율로 가리는 것으로 충분하다.
# 4. 제거된 패치만 센다. 보이는 패치는 주어진 것이므로, 그것을 예측해도 배우는 것이 없다.
# 5. 보이는 패치들의 평균 색, 즉 이미지의 평균을 안다. 그 오차를 절반으로 줄이려면 도형의 모서리가 어디에
#    있는지 알아야 한다.
# 6. 보이는 패치 16개로만 학습했기 때문이다. 보이는 패치가 훨씬 많으면 학습 때와 전혀 다른 입력을 만나게
#    되고, 짧게 학습한 작은 모델은 거기까지 일반화하지 못한다.
# 7. 프로브는 고정된 특징 (frozen features)에서 선형으로 꺼낼 수 있는 것을 읽고, 미세 조정은 인코더가 레이블을 받아
#    무엇이 될 수 있는지를 읽는다. MAE 인코더는 도형 정보를 담고 있지만(미세 조정), 선형으로는 아니다(프로브).
# 8. 3장의 CLIP은 3×3 격자 위의 도형만 보았기 때문에 다른 곳의 도형은 보지 못했다. 그 특징을 회귀하는
#    학생은 이 사각지대까지 배울 것이다.
# 9. 그 특징이 캡션으로 학습한 교사에게서 증류되어 이미 도형을 구분하기 때문이다. 이 비교는 교사 자신의
#    캡션 쌍과 MIM 학습의 비용을 빠뜨린다.
# 10. 크롭들이 공유하는 것에 따라 이미지를 분류하는 특징(5장의 5절)이지만, 사물의 이름은 없다. 아마 픽셀보다는
#     낫겠지만, 교사의 언어는 없다.
# 11. EVA-CLIP-18B는 백오십억 쌍이 아니라 이십억 쌍 규모의 데이터셋을 썼다(본 샘플 육십억 개). InternViT-6B는
#     EVA-CLIP 위에 세운 것이 아니라 무작위로 초기화되었다(10절).

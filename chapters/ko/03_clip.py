# %% [markdown] tags=["slide"]
# # 3장 · CLIP: 대조 언어-이미지 사전학습
#
# > **한국어판 (Korean edition)** · [영어 원문 (English original)](../03_clip.ipynb) · [용어집 (glossary)](glossary.md)
# >
# > 이 한국어판의 코드 셀은 영어판에서 그대로 생성된다. 코드가 출력하는 메시지(✓/✗ 확인 줄, 위젯 이름표, 결과 문단)는 영어로 남는다.
#
# ImageNet 레이블 1,000개로 학습한 분류기는 언제나 그 1,000개 레이블 중 하나로만 답할 수 있다.
# CLIP (Radford et al., 2021, *Learning Transferable Visual Models From Natural Language
# Supervision*, arXiv:2103.00020)은 대신 캡션에서 배운다: 이미지 타워와 텍스트 타워를 함께
# 학습시켜, 이미지와 *그 이미지의* 캡션이 하나의 공유 공간에서 서로 가까이 놓이게 한다.
# 학습이 끝나면 어떤 문장이든 "레이블"이 될 수 있다. 이것이 제로샷 (zero-shot) 분류다.
#
# **이 장에서 할 일**
# 1. 대칭 대조 손실 (symmetric contrastive loss, 양방향 InfoNCE)과 학습 가능한 온도 (temperature)를
#    작성하고, 노트의 수식에 숨은 실수를 찾는다;
# 2. vislab의 ViT와, 텍스트 끝 토큰 (end-of-text token)에서 특징을 읽는 작은 인과적 (causal) 텍스트
#    트랜스포머로 CLIP을 만든다;
# 3. 150 스텝 동안 학습시키며 손실과 온도가 어떻게 움직이는지 본다;
# 4. 홀드아웃 (held-out) ShapeWorld 이미지를 "a photo of a {shape}"로 제로샷 분류하고 (≥ 90%),
#    프롬프트 템플릿, 프롬프트 앙상블 (prompt ensembling), 검색 (retrieval) R@1/5/10을 측정한다;
# 5. 제로샷이 *왜* 작동하는지 근거와 함께 설명하고, 모델이 본 적 없는 색-모양 조합에서
#    조합적 일반화 (compositional generalisation)를 검증한다;
# 6. (온라인) OpenAI의 CLIP을 vislab 자체 모듈로 불러와 노트의 확률을 재현한다.
#
# 코드는 `vislab.clip` (모델, 손실, 제로샷, 검색), `vislab.text` (캡션 토크나이저),
# `vislab.recipes.clip` (배포된 체크포인트의 학습 레시피)에 있다.

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
import torch.nn.functional as F
from IPython.display import Markdown, display
from scipy.stats import binomtest

import vislab
from vislab import check
from vislab.clip import (CLIP, TextTransformer, clamp_logit_scale, clip_loss, clip_loss_explicit,
                         retrieval_recall, same_text_positives, zero_shot_classifier, zero_shot_logits)
from vislab.pretrain import load_or_train
from vislab.recipes import clip as recipe
from vislab.runtime import setup
from vislab.shapes import COLORS, SHAPES
from vislab.text import CaptionTokenizer
from vislab.widgets import LossCurve

device = setup(seed=0)
USE_CHECKPOINT = True   # False: retrain clip_shapes here (several minutes on a laptop CPU)

# %% [markdown] tags=["slide"]
# ## 1. 직관: 두 개의 타워, 하나의 공간
#
# $B$개의 이미지-캡션 쌍으로 이루어진 배치를 생각하자. 이미지 타워 (2장의 ViT)는 각 이미지를
# 벡터로 바꾸고, 텍스트 타워 (단어 위에서 동작하는 트랜스포머)는 각 캡션을 벡터로 바꾼다. 두 선형
# 사상이 둘을 같은 폭 $E$로 맞추고, 이를 단위 길이로 정규화한다. 이제 모든 이미지를 모든 캡션과
# 내적으로 비교할 수 있다: 코사인 유사도로 이루어진 $B \times B$ 표다. 학습은 대각선(참인 쌍)을
# 끌어올리고 나머지는 모두 끌어내린다.
#
# 이 목적 함수 어디에도 클래스는 등장하지 않는다. 그러나 "a small red circle on the left"와 "a large
# blue circle at the top"이 다른 많은 캡션을 제치고 각자의 이미지와 짝지어져야 한다면, 텍스트 타워는
# *circle*이라는 단어를 원 이미지들도 모이는 곳에 두어야 한다. 그러면 테스트 시점에 "a photo of a
# circle"이라는 문장은 원에 대한 훌륭한 분류기 가중치가 된다. 이것이 제로샷 분류이며, 왜 작동하는지에
# 대한 근거는 8절에서 보인다.
#
# 데이터는 ShapeWorld 장면(1장)과 그 캡션이다:

# %%
config = recipe.CONFIG
world = recipe.world(config)                     # ShapeWorld with 7 colour-shape pairs held out
tokenizer = recipe.tokenizer(config)
examples = world.sample(6, split="train", seed=0)
fig, axes = plt.subplots(1, 6, figsize=(13, 2.4))
for ax, img, cap in zip(axes, examples.images, examples.captions):
    ax.imshow(img.permute(1, 2, 0))
    ax.set_title(cap.replace(" in the", "\nin the").replace(" on the", "\non the").replace(" at the", "\nat the"),
                 fontsize=8)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown] tags=["slide"]
# ## 2. 수식
#
# $f$를 이미지 타워, $g$를 텍스트 타워, $W_i, W_t$를 (편향 없는) 사영이라 하면:
#
# $$I_k = \frac{W_i f(x_k)}{\lVert W_i f(x_k)\rVert},\qquad T_k = \frac{W_t g(y_k)}{\lVert W_t g(y_k)\rVert},
# \qquad \ell_{jk} = e^{t}\, I_j^\top T_k .$$
#
# $e^{t} = 1/\tau$는 **로짓 스케일 (logit scale)**이다. 로그 온도 $t$는 학습되는 값으로,
# $\log(1/0.07)$(노트의 "τ = 0.07")로 초기화되며, 논문에서처럼("clipped to prevent scaling the
# logits by more than 100" (cited: CLIP paper, section 2.5)) 매 스텝 후 $t \le \log 100$으로 클램프 (clamp)된다. 손실은
# $\ell$의 각 행 *그리고* 각 열에 대해 대각선을 정답으로 하는 교차 엔트로피 (cross-entropy)다:
#
# $$\mathcal L_{i\to t} = -\frac1B\sum_k \log\frac{e^{\ell_{kk}}}{\sum_j e^{\ell_{kj}}},\qquad
# \mathcal L_{t\to i} = -\frac1B\sum_k \log\frac{e^{\ell_{kk}}}{\sum_j e^{\ell_{jk}}},\qquad
# \mathcal L = \tfrac12(\mathcal L_{i\to t} + \mathcal L_{t\to i}).$$
#
# 행 $k$는 $B$개 중에서 "이미지 $k$의 캡션은 어느 것인가?"를 묻고, 열 $k$는 "캡션 $k$의 이미지는
# 어느 것인가?"를 묻는다. 코드로는 `cross_entropy(logits, arange(B))`에 `logits.T`에 대한 같은 항을
# 더한 것이다(논문의 그림 3).
#
# **노트의 실수.** 노트는 두 번째 항을
# $-\log \dfrac{\exp(\mathrm{sim}(t_i, i_i)/\tau)}{\sum_j \exp(\mathrm{sim}(t_j, i_i)/\tau)}$로 쓴다: 이 합은
# 고정된 이미지 $i_i$에 대해 캡션 $t_j$ 위를 돌므로, 다시 *첫 번째* 항이 된다(코사인은 대칭이다).
# 텍스트→이미지 방향에는 이미지에 대한 합 $\sum_j \exp(\mathrm{sim}(t_i, i_j)/\tau)$이 필요하다. 4절에서
# 그 차이를 수치로 보인다.

# %% [markdown] tags=["slide"]
# ## 3. 코드
#
# ### 토크나이저
# CLIP은 어휘가 49,152개 토큰인 바이트 쌍 인코딩 (byte-pair encoding)을 쓴다 (cited: CLIP paper, section 2.4). ShapeWorld의 캡션은
# 수십 개의 단어만 쓰므로 vislab의 토크나이저는 단어 수준이다: 단어마다 id 하나, 앞에 `<sot>`, 끝에
# `<eot>`, 그 뒤에 패딩이 온다. **모르는 단어는 `<unk>`가 되고** (`unknown="error"`이면 오류를 낸다),
# 컨텍스트보다 긴 캡션은 조용히 잘리는 대신 오류를 낸다.

# %%
# NBVAL_CHECK_OUTPUT
print(f"vocabulary: {tokenizer.vocab_size} tokens, context {tokenizer.context_length}")
print("specials:", tokenizer.vocab[:4])
ids = tokenizer(["a small red circle in the top left", "a photo of a dinosaur"])     # (2, 16)
print(ids)
print(tokenizer.decode(ids))
print("unknown words:", tokenizer.unknown_words(["a photo of a dinosaur"]))
try:
    CaptionTokenizer(tokenizer.words, unknown="error")("a photo of a dinosaur")
except KeyError as err:
    print("with unknown='error':", err)
try:
    tokenizer("a red circle left of a blue square and a green star and a white ring")
except ValueError as err:
    print("too long:", err)

# %% [markdown]
# ### 텍스트 타워
# 토큰 임베딩에 학습된 위치 임베딩을 더하고, 어텐션이 **인과적**인 pre-LN 블록(논문에서처럼 토큰
# $k$는 토큰 $0..k$를 본다)과 마지막 LayerNorm을 거친 뒤, `<eot>` 토큰에서 특징을 읽는다: 캡션 전체를
# 본 유일한 위치다. `<eot>` 뒤의 패딩은 결코 그곳에 닿을 수 없다.

# %%
vislab.show_source(TextTransformer.forward)

# %% [markdown]
# ### 모델과 손실
# `encode_image`는 ViT의 CLS 토큰을 사영한 것이고, `encode_text`는 `<eot>` 특징을 사영한 것이며,
# `forward`는 `logits_per_image`를 만드는 여섯 줄이다.

# %%
vislab.show_source(CLIP.encode_image)
vislab.show_source(CLIP.encode_text)
vislab.show_source(CLIP.forward)
vislab.show_source(clip_loss)

# %% [markdown] tags=["slide"]
# ## 4. 텐서 형태 검사, 그리고 세 가지 방식의 손실
#
# 이 장의 모델: 32×32 이미지에 8×8 패치를 쓰는 ViT(패치 16개 + CLS, 블록 3개)와 2블록 텍스트 타워로,
# 둘 다 폭이 64이고 $E = 64$로 사영된다.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
model = recipe.build(config)                                 # untrained
batch = world.sample(8, split="train", seed=1)
ids = tokenizer(batch.captions)                              # (8, 16)
with torch.no_grad():
    image_features = model.encode_image(batch.images)        # (8, 64)
    text_features = model.encode_text(ids)                   # (8, 64)
    logits_per_image = model(batch.images, ids)              # (8, 8)
print("images           ", tuple(batch.images.shape))
print("token ids        ", tuple(ids.shape))
print("image features   ", tuple(image_features.shape))
print("text features    ", tuple(text_features.shape))
print("logits_per_image ", tuple(logits_per_image.shape))
print(f"logit scale exp(t) = {model.logit_scale.exp().item():.4f} = 1/0.07; temperature = {model.temperature:.2f}")
print(f"parameters: image tower {sum(p.numel() for p in model.visual.parameters()):,}, "
      f"text tower {sum(p.numel() for p in model.text.parameters()):,}, total {sum(p.numel() for p in model.parameters()):,}")

# %% [markdown]
# `cross_entropy`로 쓴 손실, 같은 손실을 합으로 풀어 쓴 것(`clip_loss_explicit`), 그리고 노트의 수식을
# 글자 그대로 옮긴 것. 초기화 시점에는 타워들이 아무것도 모르므로 손실은 $\log B$ 정도, 즉 균일한
# 추측의 손실이다(그보다 약간 높다: 로짓 스케일 14.3이 무작위 유사도를 확신에 찬 오답으로 부풀린다).

# %%
# NBVAL_CHECK_OUTPUT
s = model.logit_scale.exp().detach()
loss = clip_loss(image_features, text_features, s)
explicit = clip_loss_explicit(image_features, text_features, s)
I, T = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
sim = I @ T.t() * s                                                         # (B, B): rows images, columns captions
i2t = F.cross_entropy(sim, torch.arange(8))                                # each image against all captions
notes_t2i = -(sim.diagonal() - torch.logsumexp(sim, dim=1)).mean()         # the notes: sum over t_j for image i
true_t2i = -(sim.diagonal() - torch.logsumexp(sim, dim=0)).mean()          # sum over images i_j for caption i
print(f"clip_loss {loss:.2f}   clip_loss_explicit {explicit:.2f}")
print(f"L_i2t = {i2t:.2f}   the notes' L_t2i = {notes_t2i:.2f} (= L_i2t)   the true L_t2i = {true_t2i:.2f}")
print(f"loss at initialisation {loss:.2f}; log B = {math.log(8):.2f}")

# %%
_ = check.close(explicit, loss, "cross_entropy form == explicit sums", atol=1e-5)
_ = check.close((i2t + true_t2i) / 2, loss, "clip_loss == (L_i2t + true L_t2i) / 2", atol=1e-5)
_ = check.close(notes_t2i, i2t, "the notes' second term is the first term again", atol=1e-5)
_ = check.at_least(abs(true_t2i - notes_t2i), 0.01, "|true L_t2i − the notes' L_t2i|")

# %% [markdown]
# 잘못된 입력에는 무엇이 잘못되었는지 알려 주는 메시지가 나온다. 쌍이 하나뿐인 배치에는 음성 예
# (negative)가 없다: 캡션 하나에 대한 소프트맥스는 항상 1이고, 손실은 항상 0이다.

# %%
# NBVAL_CHECK_OUTPUT
for args in [(image_features[:1], text_features[:1], s), (image_features[:3], text_features[:4], s)]:
    try:
        clip_loss(*args)
    except ValueError as err:
        print("ValueError:", err)
try:
    zero_shot_classifier(model, tokenizer, [])
except ValueError as err:
    print("ValueError:", err)

# %% [markdown] tags=["slide"]
# ## 5. CLIP을 150 스텝 학습하기
#
# 배포된 모델의 레시피를 줄인 것이다: 매 스텝 새로 만든 ShapeWorld 장면, 레시피의 캡션(그 다양성은
# 8절에서 설명한다), 짧은 웜업 (warm-up)과 코사인 감쇠 (cosine decay)를 쓰는 AdamW, 그리고 매 스텝 후의
# 로그 온도 클램프(`clamp_logit_scale`, 학습 루프에 `after_step`으로 전달)다. 다만 레시피의 스텝 수(6절에서
# 출력한다) 대신 64쌍씩 150 스텝만 돈다. 예산은 스텝 수로 정해지므로 어느 기계에서나 같으며, 셀은
# 여기서 걸린 시간을 출력한다.
#
# 실시간 그림에는 패널이 세 개 있다: 손실(배치에 대한 균일 추측의 손실인 $\log 64$와 함께), 로짓 스케일
# $e^t = 1/\tau$, 그리고 25 스텝마다 홀드아웃 이미지에서 잰 두 측정값, 즉 256쌍 중 이미지→텍스트
# R@1(우연 수준 $1/256$)과 "a photo of a {shape}"를 쓴 제로샷 모양 정확도(우연 수준 $1/7$)다.

# %%
vislab.show_source(clamp_logit_scale)

# %%
probe = world.sample(256, split="test", seed=2)                 # held-out pairs for the live measurements
probe_ids = tokenizer(probe.captions)                           # (256, 16)


def live_eval(model):
    """R@1 among 256 held-out pairs and zero-shot shape accuracy, for the live curve."""
    model.eval()
    with torch.no_grad():
        feats = model.encode_image(probe.images.to(device)).cpu()                     # (256, 64)
        texts = model.encode_text(probe_ids.to(device)).cpu()                         # (256, 64)
        weights = zero_shot_classifier(model, tokenizer, SHAPES, ["a photo of a {shape}"]).cpu()   # (7, 64)
    model.train()
    shape_acc = (zero_shot_logits(feats, weights).argmax(1) == probe.labels["shape"]).float().mean().item()
    return {"image→text R@1": retrieval_recall(feats, texts, ks=(1,))["image_to_text_R@1"],
            "zero-shot shape": shape_acc}


class LossAndTemperature(LossCurve):
    """vislab's live LossCurve with the logit scale exp(t) = 1/τ in a panel of its own."""

    def figure(self, history):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3))
        axes[0].plot(history.steps, history.metrics["loss"], alpha=0.3)
        axes[0].plot(history.steps, history.smoothed("loss", 10), label="loss (smoothed)")
        axes[0].axhline(math.log(64), color="k", ls=":", lw=0.8, label="log 64: uniform guess")
        axes[0].legend(fontsize=8)
        axes[1].plot(history.steps, history.metrics["logit_scale"], color="tab:red")
        axes[1].set_ylabel("logit scale exp(t) = 1/τ")
        for name, values in history.evals.items():
            axes[2].plot(history.eval_steps, values, marker="o", label=name)
        axes[2].axhline(1 / 7, color="tab:orange", ls=":", lw=0.8)                 # shape chance
        axes[2].set_ylim(0, 1)
        if history.evals:
            axes[2].legend(fontsize=8)
        for ax, title in zip(axes, ["CLIP loss, batch 64", "temperature", "held-out measurements"]):
            ax.set_xlabel("step")
            ax.set_title(title, fontsize=10)
        fig.tight_layout()
        return fig


# %%
short = dict(config, batch_size=64, steps=150, warmup=10)
torch.manual_seed(0)
quick = recipe.build(short).to(device)
history = recipe.train_clip(quick, short, seed=1, device=device,
                            callback=LossAndTemperature(interval=3.0), eval_fn=live_eval, eval_every=25)

# %%
start, end = sum(history.metrics["loss"][:5]) / 5, history.smoothed("loss", 10)[-1]
scales = history.metrics["logit_scale"]
print(f"{history.steps_done} steps in {history.seconds:.0f} s: loss {start:.2f} → {end:.2f} (log 64 = {math.log(64):.2f})")
print(f"logit scale exp(t): {scales[0]:.2f} → lowest {min(scales):.2f} → {scales[-1]:.2f}")
print("held-out, first → last measurement: " + ", ".join(f"{k} {v[0]:.1%} → {v[-1]:.1%}"
                                                          for k, v in history.evals.items()))
_ = check.equal(history.steps_done, short["steps"], "steps trained (the budget is steps, not seconds)")
_ = check.at_most(end, 0.8 * start, "smoothed loss after 150 steps, as a fraction of the first steps' (bar 0.8×)")
_ = check.at_least(history.evals["image→text R@1"][-1], 5 / 256, "held-out image→text R@1 after 150 steps (5× chance)")
_ = check.at_most(min(scales), scales[0] - 0.1, "the logit scale dips below its start during the short run")
quick_shape = history.evals["zero-shot shape"]
display(Markdown(
    f"**Measured in this run.** The smoothed loss went from {start:.2f} to {end:.2f} ($\\log 64$ = {math.log(64):.2f}); "
    f"held-out image→text R@1 from {history.evals['image→text R@1'][0]:.1%} to {history.evals['image→text R@1'][-1]:.1%} "
    f"(chance {1 / 256:.1%}); zero-shot shape accuracy from {quick_shape[0]:.1%} to {quick_shape[-1]:.1%} "
    f"(chance {1 / 7:.1%}); the logit scale from {scales[0]:.2f} to a lowest {min(scales):.2f}, ending at {scales[-1]:.2f}."))

# %% [markdown]
# 150 스텝 만에 손실은 $\log 64$ 아래로 떨어지고, 홀드아웃 256쌍 사이의 검색 성능은 우연 수준
# ($1/256 = 0.4\%$)을 훨씬 넘어선다: 두 타워는 캡션이 말하는 내용의 상당 부분에 벌써 합의한다.
# 그러나 제로샷 모양 정확도는 우연 수준 근처에 머문다(위에서 측정한 단락). 이렇게 짧은 학습으로는
# 텍스트 타워가 짧은 프롬프트 속 단어 하나 *circle*을 원의 이미지 특징에 묶기에 부족하다: 캡션들은
# 여전히 색, 크기, 위치만으로도 구별되기 때문이다. 모양을 익히려면 훨씬 많은 쌍이 필요하다: 아래의
# 배포된 체크포인트가 그것이다.
#
# 온도도 지켜보자. 이 짧은 학습에서 로짓 스케일은 시작값 $1/0.07 \approx 14.3$ 아래로 *떨어진다*(위에서
# 확인). 모델이 대부분 틀리는 동안에는 더 부드러운 소프트맥스가 비용이 적기 때문이다. 모델이 대부분을
# 맞히게 되어서야 더 날카로운 소프트맥스가 이득이 되고 스케일이 올라간다: 이는 배포된 학습의 후반에
# 일어난다(6절).

# %% [markdown] tags=["slide"]
# ## 6. 배포된 체크포인트: `clip_shapes`
#
# `python -m vislab.pretrain clip_shapes`는 같은 모델을 더 오래 학습시키고, 그 가중치, 명령, 걸린 시간(초),
# 마지막에 측정한 지표를 저장한다. 여기서 직접 다시 학습시키려면 첫 셀에서 `USE_CHECKPOINT = False`로
# 설정한다.

# %%
# NBVAL_IGNORE_OUTPUT
clip, meta = load_or_train("clip_shapes", device=device, use_checkpoint=USE_CHECKPOINT)
curves = meta["metrics"]["curves"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3))
ax1.plot(curves["step"], curves["loss"])
ax1.set_xlabel("step")
ax1.set_ylabel("loss (log scale)")
ax1.set_yscale("log")
ax1.set_title(f"clip_shapes: {meta['metrics']['steps']} steps of {config['batch_size']} pairs")
ax2.plot(curves["step"], curves["logit_scale"])
ax2.set_xlabel("step")
ax2.set_ylabel("logit scale exp(t)")
ax2.set_title(f"temperature τ: 0.07 → {1 / curves['logit_scale'][-1]:.3f}")
plt.tight_layout()
plt.show()

# %%
m = meta["metrics"]
print(f"clip_shapes: {m['steps']} steps of {config['batch_size']} pairs = {m['steps'] * config['batch_size']:,} captions; "
      f"training took {m['train_seconds']:.0f} s, the whole recipe {meta['seconds']:.0f} s (it also trains the "
      f"full-caption twin of section 8 and measures both), on {meta['threads']} CPU thread(s)")
print(f"clip_shapes logit scale exp(t): {curves['logit_scale'][0]:.1f} → lowest {min(curves['logit_scale']):.1f} "
      f"→ {curves['logit_scale'][-1]:.1f} (clamp at 100); temperature τ = {clip.temperature:.3f}")

# %% [markdown]
# 긴 학습에 걸쳐 모델이 확신을 얻으면서 온도는 떨어진다(로짓 스케일은 올라간다): 정답 캡션이 분명히
# 가장 유사해지면 더 날카로운 소프트맥스가 비용이 적다. 여기서는 100의 클램프에서 한참 떨어져 있다.
# OpenAI가 공개한 모델들은 정확히 클램프 값인 100에서 끝난다
# (cited: the `logit_scale` of `openai/clip-vit-base-patch32` is $\log 100$; the online cell
# at the end loads it).

# %% [markdown] tags=["slide"]
# ## 7. 홀드아웃 이미지에 대한 제로샷 분류
#
# 테스트 이미지는 ShapeWorld의 "test" 분할에서 오며, 학습은 이 분할에서 한 번도 뽑지 않았다. 7가지
# 모양마다 프롬프트 "a photo of a {shape}"를 임베딩하고, 각 이미지는 가장 유사한 프롬프트로 분류한다.

# %%
test = world.sample(1000, split="test", seed=1)
with torch.no_grad():
    test_features = torch.cat([clip.encode_image(test.images[i:i + 500].to(device)).cpu()
                               for i in range(0, 1000, 500)])                           # (1000, 64)
classifier = zero_shot_classifier(clip, tokenizer, SHAPES, ["a photo of a {shape}"]).cpu()   # (7, 64)
prediction = zero_shot_logits(test_features, classifier).argmax(1)                        # (1000,)
zero_shot = (prediction == test.labels["shape"]).float().mean().item()
confusion = torch.zeros(7, 7, dtype=torch.long)
for y, p in zip(test.labels["shape"].tolist(), prediction.tolist()):
    confusion[y, p] += 1
fig, ax = plt.subplots(figsize=(5.2, 4))
im = ax.imshow(confusion, cmap="Blues")
fig.colorbar(im, ax=ax, label="images")
ax.set_xticks(range(7))
ax.set_xticklabels(SHAPES, rotation=45)
ax.set_yticks(range(7))
ax.set_yticklabels(SHAPES)
ax.set_xlabel("predicted (prompt)")
ax.set_ylabel("true shape")
for i in range(7):
    for j in range(7):
        ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=8,
                color="white" if confusion[i, j] > confusion.max() / 2 else "black")
plt.show()
_ = check.at_least(zero_shot, 0.90, "zero-shot shape accuracy, 'a photo of a {shape}', 1,000 held-out images")

# %% [markdown] tags=["slide"]
# ## 8. 제로샷은 왜 작동하는가?
#
# 노트의 첫 번째 질문이다. 세 가지 근거가 있다:
#
# 1. **프롬프트는 그 이미지들이 있는 곳에 놓인다.** 모든 원 이미지(색, 크기, 위치와 무관하게)의 평균
#    임베딩은 프롬프트 "a photo of a circle"과 가장 유사하며, 다른 모든 모양도 마찬가지다: 아래 표는
#    대각선에서 최댓값을 가진다. 대조 손실은 단어의 의미를 그곳에 둘 수밖에 없었다. 배치의 다른 모든
#    것을 제치고 "… circle …" 캡션을 원 이미지와 짝짓는 유일한 방법이기 때문이다.
# 2. **프롬프트는 학습 텍스트처럼 보여야 한다.** 텍스트 타워는 학습받은 언어만 안다. ShapeWorld 자체의
#    캡션은 항상 크기, 색, 모양, 위치를 모두 말하므로, 그런 캡션만으로 학습한 모델은 모양*만* 말하는
#    캡션을 읽어 본 적이 없다. 그래서 레시피는 대체 텍스트 (alt-text) 같은 캡션(`varied_captions`)으로
#    학습한다: 웹 캡션처럼 때로는 전체 캡션, 때로는 속성의 무작위 부분집합, 때로는 "a photo of …"
#    형식이다. 레시피는 또한 전체 캡션만으로 쌍둥이 모델을 같은 초기 가중치, 같은 스텝 수와 시드로
#    학습시키고 그 측정값을 `clip_shapes.json`에 저장했다(가중치는 배포하지 않는다): 아래에 출력된다.
# 3. **분류는 클래스 프롬프트 사이의 검색이다.** 프롬프트에 대한 `softmax(exp(t) · cos)`는 프롬프트를
#    캡션 "배치"로 삼은 학습 손실의 행 소프트맥스와 정확히 같다: 모델 자신의 `forward(images, prompt ids)`가
#    제로샷 확률을 준다.

# %%
vislab.show_source(recipe.varied_captions)

# %%
class_means = F.normalize(torch.stack([F.normalize(test_features[test.labels["shape"] == k], dim=-1).mean(0)
                                       for k in range(7)]), dim=-1)                      # (7, 64)
table = class_means @ classifier.t()                                                     # (7, 7)
fig, ax = plt.subplots(figsize=(6.5, 4.5))
im = ax.imshow(table, cmap="viridis")
fig.colorbar(im, ax=ax, label="cosine similarity")
ax.set_xticks(range(7))
ax.set_xticklabels([f"'a photo of a {s}'" for s in SHAPES], rotation=60, ha="right", fontsize=8)
ax.set_yticks(range(7))
ax.set_yticklabels([f"mean of {s} images" for s in SHAPES], fontsize=8)
ax.set_title("cosine: class-mean image × prompt", fontsize=9)
plt.show()
_ = check.equal(table.argmax(1).tolist(), list(range(7)), "each shape's mean image is closest to its own prompt")
ablation = meta["metrics"]["full_captions_only"]
print(f"zero-shot 'a photo of a {{shape}}': varied captions {meta['metrics']['zero_shot_shape']:.1%}, "
      f"full captions only {ablation['zero_shot_shape']:.1%} (chance {1 / 7:.1%}); "
      f"retrieval i2t R@1: {meta['metrics']['i2t_R@1']:.1%} vs {ablation['i2t_R@1']:.1%}")
_ = check.at_least(meta["metrics"]["zero_shot_shape"] - ablation["zero_shot_shape"], 0.3,
                   "zero-shot gain from varied captions (same steps, same seed)")

# %% [markdown]
# 전체 캡션으로 학습한 쌍둥이는 배포된 모델만큼 캡션을 잘 검색하지만(이미지는 학습했다), 제로샷 모양
# 분류는 우연 수준을 겨우 넘는다: 부족한 것은 모양만 말하는 문장의 *언어*다. 제로샷 전이는 프롬프트와
# 학습에서 본 캡션이 겹치는 만큼만 좋다: CLIP의 저자들도 같은 점을 발견했고, 웹의 대체 텍스트가 흔히
# 그런 모습이기 때문에 "a photo of a {label}"을 썼다.
#
# 세 번째 요점을 코드로 보자: 이미지와 7개 프롬프트에 대한 모델의 `forward`는 `logits_per_image` $= e^t \cos$를
# 주고, 그 행 소프트맥스가 곧 제로샷 분류기의 확률이다. (노트의 `image_text_similarity`가 반환하는 것도
# 이것이다: `logits_per_image.item()`은 코사인이 아니라 $e^t \cos$이며, OpenAI 모델에서는 100 × 코사인이다.)

# %%
prompt_ids = tokenizer([f"a photo of a {shape}" for shape in SHAPES])                      # (7, 16)
with torch.no_grad():
    logits = clip(test.images[:8].to(device), prompt_ids.to(device)).cpu()                  # (8, 7)
scale = clip.logit_scale.exp().item()
_ = check.close(logits.softmax(-1), zero_shot_logits(test_features[:8], classifier, scale).softmax(-1),
                "softmax of forward(images, prompts) == zero-shot probabilities", atol=1e-5)
_ = check.close(logits / scale, F.normalize(test_features[:8], dim=-1) @ classifier.t(),
                "logits_per_image / exp(t) == cosine similarity", atol=1e-5)

# %% [markdown] tags=["slide"]
# ## 9. 프롬프트 템플릿과 프롬프트 앙상블
#
# 논문은 클래스마다 여러 템플릿의 정규화된 텍스트 임베딩을 평균하고("프롬프트 앙상블") ImageNet에서의
# 향상을 보고한다 (cited: CLIP paper, section 3.1.4). 노트는 프롬프트 엔지니어링 (prompt engineering)이
# 도움이 된다고 덧붙이며, 예로 "a photo of a {label}, a type of {category}"를 든다(논문의 예는 Oxford
# Pets에 대한 "…, a type of pet"이다). 우리는 분류기 여섯 개를 측정한다: 학습에 등장하는 두 형식
# ("a photo of …", 꾸밈 없는 "a …"), 학습 캡션에 한 번도 나오지 않는 단어를 쓴 하나("a rendering of …"),
# 노트의 접미사("…, a type of shape", 역시 본 적 없음), 그리고 두 앙상블(학습에서 본 네 형식; 여섯 개 전부)이다.

# %%
template_acc = {}
for name, templates in recipe.TEMPLATES.items():
    W = zero_shot_classifier(clip, tokenizer, SHAPES, templates).cpu()                  # (7, 64)
    template_acc[name] = (zero_shot_logits(test_features, W).argmax(1) == test.labels["shape"]).float().mean().item()
fig, ax = plt.subplots(figsize=(7, 2.6))
names = list(template_acc)
ax.barh(range(len(names))[::-1], [template_acc[n] for n in names], color="tab:blue")
ax.set_yticks(range(len(names))[::-1])
ax.set_yticklabels(names, fontsize=8)
ax.set_xlim(min(template_acc.values()) - 0.05, 1.0)
for i, n in enumerate(names):
    ax.text(template_acc[n], len(names) - 1 - i, f" {template_acc[n]:.1%}", va="center", fontsize=8)
ax.set_xlabel("zero-shot shape accuracy (1,000 held-out images)")
plt.show()
for n in names:
    print(f"{n:42s} {template_acc[n]:.1%}")
base = template_acc["a photo of a {shape}"]
print(f"the notes' suffix: {template_acc['a photo of a {shape}, a type of shape'] - base:+.1%}; "
      f"ensembles: {template_acc['ensemble of 4 seen framings'] - base:+.1%} (4 seen framings), "
      f"{template_acc['ensemble of all 6'] - base:+.1%} (all 6)")
_ = check.at_most(template_acc["a photo of a {shape}, a type of shape"], base,
                  "the notes' ', a type of shape' suffix, against 'a photo of a {shape}'")
_ = check.at_least(template_acc["ensemble of all 6"], base - 0.01,
                   "the ensemble of all 6 (the suffix included), within a point of 'a photo of a {shape}'")

# %% [markdown]
# 통념이 아니라 숫자를 읽자. 여기서는 노트의 접미사가 정확도를 *떨어뜨린다*: ", a type of shape"는 학습
# 캡션에 한 번도 나오지 않았으므로 텍스트 타워는 그 단어들이 무엇을 해야 하는지 배운 적이 없고, 그
# 단어들은 `<eot>` 특징을 그 모양의 이미지들이 있는 곳에서 밀어낸다. 모델이 읽어 본 형식("a photo of",
# 꾸밈 없는 "a")은 똑같이 좋고, 이들을 앙상블해도 거의 달라지지 않는다. 임베딩이 거의 같은 벡터이기
# 때문이다. 그래도 앙상블은 나쁜 템플릿을 막아 준다: 접미사를 포함한 여섯 개 전체의 앙상블은 최고의
# 단일 템플릿과 한 포인트 이내의 차이를 유지한다. 노트의 조언은 그런 문구를 읽어 본 텍스트 타워에서는
# 성립한다: 웹 캡션 400M개로 학습한 텍스트 타워를 쓴 ImageNet에서, 논문은 꾸밈 없는 클래스 이름 대비
# "A photo of a {label}." 템플릿으로 +1.3 포인트, 80개 템플릿의 앙상블로 다시 +3.5 포인트를 측정했다 (cited: CLIP paper, section 3.1.4). 템플릿은 학습 텍스트처럼 보일 때 도움이 된다.

# %% [markdown] tags=["slide"]
# ## 10. 검색: 홀드아웃 256쌍에서의 R@1, R@5, R@10
#
# 각 홀드아웃 이미지가 홀드아웃 캡션 256개에 질의한다(그리고 각 캡션은 이미지 256개에 질의한다). R@K는
# 참 짝이 가장 유사한 K개 안에 드는 질의의 비율이다. ShapeWorld는 캡션이 반복되므로, 단어 하나하나까지
# 똑같은 캡션도 적중으로 세는 두 번째 수치를 함께 낸다.

# %%
k = 256
with torch.no_grad():
    caption_features = clip.encode_text(tokenizer(test.captions[:k]).to(device)).cpu()       # (256, 64)
recall = retrieval_recall(test_features[:k], caption_features)
same_text = retrieval_recall(test_features[:k], caption_features, positives=same_text_positives(test.captions[:k]))
for direction in ("image_to_text", "text_to_image"):
    print(f"{direction:14s} " + "  ".join(f"R@{n} {recall[f'{direction}_R@{n}']:.1%}" for n in (1, 5, 10))
          + f"   (identical captions count: R@1 {same_text[f'{direction}_R@1']:.1%})")
_ = check.at_least(recall["image_to_text_R@1"], 0.5, "image→text R@1 among 256 held-out pairs")

# %% [markdown] tags=["slide"]
# ### 유사도 행렬 뷰어
#
# 홀드아웃 쌍 열두 개다. 행은 이미지, 열은 그 캡션이며, 막대는 선택한 이미지의 캡션들에 대한
# 소프트맥스를 모델 자신의 로짓 스케일로 보여 준다. 즉 학습 손실의 한 행이다. 한 열을 보려면
# "caption → images"로 전환한다. (라이브 커널이 없으면 기본 화면이 그림으로 보인다.)

# %%
# NBVAL_IGNORE_OUTPUT
from vislab.widgets.similarity import similarity_viewer

view = test[:12]
with torch.no_grad():
    sims = clip.encode_image(view.images.to(device), normalize=True) @ \
        clip.encode_text(tokenizer(view.captions).to(device), normalize=True).t()          # (12, 12)
viewer = similarity_viewer(sims.cpu(), view.images, view.captions, logit_scale=clip.logit_scale.exp().item())

# %% [markdown] tags=["slide"]
# ## 11. 조합적 일반화: 한 번도 보지 못한 조합
#
# 색-모양 쌍 일곱 개(모양마다 하나: 초록 삼각형, 빨간 별, 파란 하트, 노란 원, 자홍 사각형, 청록 고리,
# 주황 십자)는 학습에 한 번도 나오지 않는다. 모든 색과 모든 모양은 나오는데도 말이다. "a photo of a
# triangle"은 여전히 초록 삼각형을 찾을까? 그리고 모델은 모든 "colour shape" 조합 56가지 중에서 고르는
# 분류로 그 쌍의 이름을 댈 수 있을까?

# %%
held = world.sample(1000, split="holdout", seed=1)
with torch.no_grad():
    held_features = torch.cat([clip.encode_image(held.images[i:i + 500].to(device)).cpu()
                               for i in range(0, 1000, 500)])                             # (1000, 64)
held_shape = (zero_shot_logits(held_features, classifier).argmax(1) == held.labels["shape"]).float().mean().item()
pairs = [f"{c} {s}" for c in COLORS for s in SHAPES]
pair_classifier = zero_shot_classifier(clip, tokenizer, pairs, ["a photo of a {}"]).cpu()  # (56, 64)
pair_acc = {}
for name, data, feats in (("seen", test, test_features), ("held out", held, held_features)):
    y = data.labels["color"] * len(SHAPES) + data.labels["shape"]
    pair_acc[name] = (zero_shot_logits(feats, pair_classifier).argmax(1) == y).float().mean().item()
fig, ax = plt.subplots(figsize=(6, 2.8))
xs = torch.arange(2)
ax.bar(xs - 0.2, [zero_shot, held_shape], 0.4, label="shape, 7-way")
ax.bar(xs + 0.2, [pair_acc["seen"], pair_acc["held out"]], 0.4, label="colour + shape, 56-way")
ax.set_xticks(xs)
ax.set_xticklabels(["seen combinations", "held-out combinations"])
ax.set_ylim(0, 1)
ax.legend(fontsize=8)
ax.set_ylabel("zero-shot accuracy")
plt.show()
print(f"shape 7-way:           seen {zero_shot:.1%}   held out {held_shape:.1%}   (chance {1 / 7:.1%})")
print(f"colour+shape 56-way:   seen {pair_acc['seen']:.1%}   held out {pair_acc['held out']:.1%}   (chance {1 / 56:.1%})")
_ = check.at_least(held_shape, 2 / 7, "held-out combinations: shape accuracy at least twice chance")

# %% [markdown]
# 홀드아웃 오류는 어디로 가는가? 각 홀드아웃 이미지에 대해 56가지 예측은 맞는 쌍을 말하거나, 색은
# 유지하고 모양을 바꾸거나, 모양은 유지하고 색을 바꾸거나, 둘 다 바꾼다. 그리고 예측된 쌍은 학습에서
# 본 쌍이거나 다른 홀드아웃 쌍이다.

# %%
held_pred = zero_shot_logits(held_features, pair_classifier).argmax(1)                       # (1000,) pair index
pred_color, pred_shape = held_pred // len(SHAPES), held_pred % len(SHAPES)
true_color, true_shape = held.labels["color"], held.labels["shape"]
wrong = (pred_color != true_color) | (pred_shape != true_shape)
heldout_pairs = {COLORS.index(c) * len(SHAPES) + SHAPES.index(s) for c, s in recipe.HOLDOUT}
to_seen = torch.tensor([int(k) not in heldout_pairs for k in held_pred])
kinds = {"colour kept, shape changed": (pred_color == true_color) & (pred_shape != true_shape),
         "shape kept, colour changed": (pred_color != true_color) & (pred_shape == true_shape),
         "both changed": (pred_color != true_color) & (pred_shape != true_shape)}
print(f"{int(wrong.sum())} errors among {len(held)} held-out images; "
      + ", ".join(f"{k}: {int(v.sum())}" for k, v in kinds.items())
      + f"; predicted pair seen in training: {int((wrong & to_seen).sum())}")
print(f"{'held-out pair':16s} {'images':>6s} {'shape 7-way':>12s} {'pair 56-way':>12s}")
for c, sh in recipe.HOLDOUT:
    m = (true_color == COLORS.index(c)) & (true_shape == SHAPES.index(sh))
    shape_ok = (zero_shot_logits(held_features[m], classifier).argmax(1) == true_shape[m]).float().mean()
    print(f"{c + ' ' + sh:16s} {int(m.sum()):6d} {shape_ok:12.1%} {(~wrong[m]).float().mean():12.1%}")
_ = check.at_least((wrong & to_seen).sum() / wrong.sum().clamp(min=1), 0.5,
                   "share of held-out errors that name a combination seen in training")

shown = torch.cat([torch.nonzero(~wrong)[:4, 0], torch.nonzero(wrong)[:4, 0]])             # 4 right, 4 wrong
fig, axes = plt.subplots(1, 8, figsize=(14, 2.3))
for ax, i in zip(axes, shown.tolist()):
    ax.imshow(held.images[i].permute(1, 2, 0))
    truth = f"{COLORS[true_color[i]]} {SHAPES[true_shape[i]]}"
    guess = pairs[held_pred[i]]
    ax.set_title(f"true: {truth}\nsaid: {guess}", fontsize=8, color="green" if guess == truth else "red")
    ax.axis("off")
plt.tight_layout()
plt.show()

# %%
def wilson(acc, n):
    """'acc [low, high]': an accuracy on n images with its 95% Wilson interval."""
    ci = binomtest(round(acc * n), n).proportion_ci(method="wilson")
    return f"{acc:.1%} [{ci.low:.1%}, {ci.high:.1%}]"


shape_right = zero_shot_logits(held_features, classifier).argmax(1) == true_shape               # (1000,)
pair_right = ~wrong                                                                              # (1000,)
only_pair, only_shape = int((pair_right & ~shape_right).sum()), int((shape_right & ~pair_right).sum())
pair_vs_shape_p = binomtest(only_pair, only_pair + only_shape, 0.5).pvalue if only_pair + only_shape else 1.0
display(Markdown(
    f"**Measured.** Shape, 7-way: seen {wilson(zero_shot, len(test))}, held out {wilson(held_shape, len(held))}. "
    f"Colour + shape, 56-way: seen {wilson(pair_acc['seen'], len(test))}, held out {wilson(pair_acc['held out'], len(held))}. "
    f"Of the {int(wrong.sum())} held-out errors of the 56-way classifier, {int(kinds['colour kept, shape changed'].sum())} keep "
    f"the colour and change the shape, {int(kinds['shape kept, colour changed'].sum())} keep the shape, "
    f"{int(kinds['both changed'].sum())} change both, and {int((wrong & to_seen).sum())} name a pair seen in training. "
    f"On the held-out images the 56-way prompt is right where the 7-way one is wrong {only_pair} times, the other way "
    f"round {only_shape} times (McNemar's exact test: p = {pair_vs_shape_p:.2g})."))

# %% [markdown]
# 홀드아웃 조합은 우연 수준을 훨씬 넘게 분류되므로, 모델은 색과 모양을 쓸모 있는 정도로 분리해 냈다.
# 다만 본 조합보다는 못하다(위의 구간을 비교하라): 레시피의 캡션으로 학습한 작은 CLIP은 "green"과
# "triangle"을 부분적으로 한 단위로 묶는다. 오류가 그 방식을 말해 준다: 오류는 색을 유지하고, 모양을
# 모델이 그 색으로 *본 적 있는* 모양으로 바꾼다(파란 하트가 다른 종류의 파란 도형이 된다). 그래서
# 학습에서 본 쌍이, 옳지만 본 적 없는 쌍을 이긴다. 어떤 쌍은 거의 영향을 받지 않고, 다른 쌍은 훨씬
# 많이 잃는다(쌍별 표): 어떤 모양끼리 헷갈리기 쉬운지가 중요하다. 프롬프트에 색을 넣으면(56가지)
# 홀드아웃 쌍에서 모양만 쓸 때(7가지)보다 나을 수도 있다: 색 단어가 올바른 색을 고정하고, 그 색의
# 프롬프트들 가운데서는 모양을 고르기가 더 쉽기 때문이다. 위의 McNemar 검정이 이 실행에서의 차이가
# 우연 이상인지 알려 준다. 큰 CLIP도 속성 결합 (attribute binding)에서 같은 약점을 보인다(예: Winoground,
# Thrush et al. 2022; "When and why vision-language models behave like bags-of-words", Yuksekgonul et al. 2023).

# %% [markdown] tags=["slide"]
# ## 12. 연습
#
# 네 종류가 있다: **구현** (build: 한 부분을 작성하고 vislab과 대조해 확인한다), **디버그** (debug: 심어
# 둔 버그를 고친다), **예측** (predict: 실행하기 전에 숫자 하나를 정해 둔다), **절제 실험** (ablate: 손잡이
# 하나를 바꾸고, 측정하고, 답한다). 각 연습에는 여러분이 채울 셀(`exercise` 태그, `TODO` 포함), 무엇을
# 기대했고 무엇이 나왔으며 무엇을 시도해 볼지 알려 주는 자체 점검, 그리고 숨겨진 정답이 있다. 자체
# 점검은 TODO를 채우기 전까지 "not attempted"를 출력하며, 노트북을 멈추지 않는다.
#
# **연습 1 (Exercise 1, 구현).** 특징으로부터 CLIP의 손실을 작성하라: 정규화하고, 스케일을 곱하고, 두
# 교차 엔트로피를 평균한다. 두 번째 항의 방향에 주의하라(2절).

# %% tags=["exercise"]
def my_clip_loss(image_features, text_features, logit_scale):
    # TODO: (B, E), (B, E), scalar -> scalar; symmetric cross-entropy against arange(B)
    raise NotImplementedError


# %%
g = torch.Generator().manual_seed(0)
loss_cases = [(torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g), torch.tensor(14.3)),
              (torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g), torch.tensor(100.0)),
              (torch.randn(3, 3, generator=g), 5 * torch.randn(3, 3, generator=g), torch.tensor(1.0))]
_ = check.exercise("Exercise 1: CLIP loss", my_clip_loss, clip_loss, loss_cases,
                   hint="normalise both, logits = scale · I Tᵀ, then cross-entropy of the rows and of the columns")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_clip_loss(image_features, text_features, logit_scale):
    I = F.normalize(image_features, dim=-1)
    T = F.normalize(text_features, dim=-1)
    logits = logit_scale * I @ T.t()                         # (B, B): rows images, columns captions
    labels = torch.arange(len(logits))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


_ = check.exercise("Exercise 1: CLIP loss", solution_clip_loss, clip_loss, loss_cases, solution=True)

# %% [markdown]
# **연습 2 (Exercise 2, 구현).** 제로샷 예측: 이미지 특징 `(B, E)`와 클래스 가중치 `(C, E)`(단위 길이
# 행)가 주어졌을 때, 각 이미지의 예측 클래스를 반환하라.

# %% tags=["exercise"]
def my_zero_shot_predict(image_features, class_weights):
    # TODO: return a (B,) long tensor: the index of the most similar class (cosine similarity)
    raise NotImplementedError


# %%
g = torch.Generator().manual_seed(1)
predict_cases = [(torch.randn(10, 8, generator=g), F.normalize(torch.randn(4, 8, generator=g), dim=-1)),
                 (100 * torch.randn(3, 5, generator=g), F.normalize(torch.randn(7, 5, generator=g), dim=-1))]
_ = check.exercise("Exercise 2: zero-shot prediction", my_zero_shot_predict,
                   lambda x, w: zero_shot_logits(x, w).argmax(1), predict_cases,
                   hint="normalise the image features (the class weights already are), then argmax over classes")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_zero_shot_predict(image_features, class_weights):
    return (F.normalize(image_features, dim=-1) @ class_weights.t()).argmax(dim=1)


_ = check.exercise("Exercise 2: zero-shot prediction", solution_zero_shot_predict,
                   lambda x, w: zero_shot_logits(x, w).argmax(1), predict_cases, solution=True)

# %% [markdown]
# **연습 3 (Exercise 3, 구현).** 이미지→텍스트 recall@K: 자기 캡션(같은 인덱스)이 자신과 가장 유사한
# K개 캡션 안에 드는 이미지의 비율.

# %% tags=["exercise"]
def my_recall_at_k(image_features, text_features, k):
    # TODO: (B, E), (B, E), int -> float in [0, 1]
    raise NotImplementedError


# %%
g = torch.Generator().manual_seed(2)
a = torch.randn(50, 8, generator=g)
recall_cases = [(a, a + torch.randn(50, 8, generator=g), 1), (a, a + 2 * torch.randn(50, 8, generator=g), 5),
                (a, torch.randn(50, 8, generator=g), 10)]
_ = check.exercise("Exercise 3: recall@K", my_recall_at_k,
                   lambda x, y, k: retrieval_recall(x, y, ks=(k,))[f"image_to_text_R@{k}"], recall_cases,
                   hint="cosine similarities (B, B), topk along the captions, then: is the own index among them?")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_recall_at_k(image_features, text_features, k):
    sim = F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).t()   # (B, B)
    top = sim.topk(k, dim=1).indices                                                      # (B, k)
    return (top == torch.arange(len(sim))[:, None]).any(dim=1).float().mean().item()


_ = check.exercise("Exercise 3: recall@K", solution_recall_at_k,
                   lambda x, y, k: retrieval_recall(x, y, ks=(k,))[f"image_to_text_R@{k}"], recall_cases,
                   solution=True)

# %% [markdown]
# **연습 4 (Exercise 4, 디버그).** 이 손실은 노트의 수식을 코드로 옮긴 것이다. 실행도 되고 학습 중에
# 줄어들기도 하지만, CLIP의 손실은 아니다. 버그를 찾아 고쳐라.

# %% tags=["exercise"]
def my_fixed_clip_loss(image_features, text_features, logit_scale):
    I = F.normalize(image_features, dim=-1)
    T = F.normalize(text_features, dim=-1)
    logits = logit_scale * I @ T.t()                         # (B, B): rows images, columns captions
    labels = torch.arange(len(logits))
    image_to_text = F.cross_entropy(logits, labels)          # each image against all captions
    text_to_image = F.cross_entropy(logits, labels)          # each caption against all images   TODO: fix
    return (image_to_text + text_to_image) / 2


# %%
_ = check.debug("Exercise 4: the notes' text→image term", my_fixed_clip_loss, clip_loss, loss_cases,
                symptom="the two terms are always equal: the 'text→image' term asks which caption fits an "
                        "image, a second time.",
                hint="for a caption, the softmax must run over the images: a column of the logits.")

# %% tags=["solution"] jupyter={"source_hidden": true}
def solution_fixed_clip_loss(image_features, text_features, logit_scale):
    I = F.normalize(image_features, dim=-1)
    T = F.normalize(text_features, dim=-1)
    logits = logit_scale * I @ T.t()                         # (B, B)
    labels = torch.arange(len(logits))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2   # rows, then columns


_ = check.debug("Exercise 4: the notes' text→image term", solution_fixed_clip_loss, clip_loss, loss_cases,
                solution=True)

# %% [markdown]
# **연습 5 (Exercise 5, 예측한 뒤 실행).** 무작위 이미지 특징과 텍스트 특징 32개로 이루어진 배치와
# 로짓 스케일 $10^{-4}$(모든 유사도가 거의 같은 로짓이 될 만큼 높은 온도)가 있다. 실행하기 전에
# `clip_loss`를 예측하라.

# %% tags=["exercise"]
my_flat_loss = None      # TODO: your prediction, a number

# %%
g = torch.Generator().manual_seed(3)
flat_loss = clip_loss(torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g), torch.tensor(1e-4)).item()
_ = check.predict("Exercise 5: CLIP's loss at a near-zero logit scale", my_flat_loss, flat_loss, tol=0.01,
                  explain="with all logits nearly equal each softmax is uniform over the 32 candidates, so both "
                          "cross-entropies are log 32: the loss of a uniform guess, whatever the features.")

# %% tags=["solution"] jupyter={"source_hidden": true}
_ = check.predict("Exercise 5: CLIP's loss at a near-zero logit scale", math.log(32), flat_loss, tol=0.01,
                  solution=True)

# %% [markdown]
# **연습 6 (Exercise 6, 절제 실험).** `clip_shapes`의 학습된 로짓 스케일은 1과 거리가 멀다. 로짓 스케일을
# 1로 두고(`zero_shot_logits(test_features, classifier, ...)`에 `logit_scale=1.0`을 넘긴다) 홀드아웃 테스트
# 이미지 1,000개를 제로샷 분류해 정확도를 측정하고, 학습된 스케일에 비해 정확도가 `"drop"`(떨어짐),
# `"unchanged"`(변화 없음), `"rise"`(오름) 중 어느 쪽인지 답하라.

# %% tags=["exercise"]
my_accuracy_at_scale_1 = None     # TODO: measure it (a fraction)
my_answer_6 = None                # TODO: "drop", "unchanged" or "rise"

# %%
learned = (zero_shot_logits(test_features, classifier, clip.logit_scale.exp().item()).argmax(1)
           == test.labels["shape"]).float().mean().item()
at_scale_1 = (zero_shot_logits(test_features, classifier, 1.0).argmax(1) == test.labels["shape"]).float().mean().item()
outcome = "unchanged" if at_scale_1 == learned else ("drop" if at_scale_1 < learned else "rise")
given_6 = None if my_answer_6 is None else (round(float(my_accuracy_at_scale_1 or 0), 4), my_answer_6)
_ = check.answer("Exercise 6: zero-shot accuracy at logit scale 1", given_6, (round(at_scale_1, 4), outcome),
                 explain="the scale multiplies every logit of an image by the same positive number, which keeps "
                         "their order, so the argmax and the accuracy cannot change; it changes the "
                         "probabilities (their confidence) and the training loss.",
                 hint="zero_shot_logits(test_features, classifier, 1.0).argmax(1) against test.labels['shape']")

# %% tags=["solution"] jupyter={"source_hidden": true}
solution_acc_6 = (zero_shot_logits(test_features, classifier, 1.0).argmax(1) == test.labels["shape"]).float().mean()
_ = check.answer("Exercise 6: zero-shot accuracy at logit scale 1", (round(solution_acc_6.item(), 4), "unchanged"),
                 (round(at_scale_1, 4), outcome), solution=True)

# %% [markdown] tags=["slide"]
# ## 13. 요약
#
# - CLIP은 짝이 맞는 이미지-캡션 쌍이 배치 안에서 양방향 모두 가장 높은 코사인 유사도를 갖도록 두
#   타워를 학습시킨다: $\mathcal L = \frac12(\mathrm{CE}(\ell,
#   \mathrm{arange}) + \mathrm{CE}(\ell^\top, \mathrm{arange}))$, 여기서 $\ell = e^t I T^\top$이다.
# - 온도는 학습된다: $t$는 $\log(1/0.07)$에서 시작해 $\log 100$에서 클램프된다. 모델이 대부분 틀리는
#   동안에는 먼저 부드러워지고(로짓 스케일이 내려간다), 모델이 확신을 얻으면서 날카로워진다.
# - 150 스텝 만에 손실은 떨어지고 검색은 우연 수준을 훨씬 넘지만, 제로샷 모양 정확도에는 배포된
#   체크포인트의 더 긴 학습이 필요하다.
# - 텍스트 타워는 `<eot>`에서 읽는 인과적 트랜스포머이고, 이미지 타워는 CLS에서 읽는 ViT다. 둘 다 편향
#   없이 사영되고 L2 정규화된다.
# - 제로샷 분류는 클래스 프롬프트 사이의 검색이다. 프롬프트가 학습 캡션의 언어로 말할 때 작동하고,
#   그렇지 않으면 (우연 수준 가까이로) 실패한다. 학습에서 본 적 없는 단어가 든 템플릿은 정확도를
#   떨어뜨린다(여기서는 노트의 ", a type of …"). 템플릿 앙상블은 나쁜 템플릿 하나를 막아 주지만, 좋은
#   템플릿들이 서로 일치할 때는 보태는 것이 거의 없다.
# - 함께 본 적 없는 속성 조합에서는 제로샷 정확도가 뚜렷이 떨어진다: 모델은 속성을 부분적으로 한
#   단위로 묶으며, 오류는 본 적 있는 조합으로 되돌아간다.
#
# 이 실행의 수치는 다음 셀이 출력한다(손으로 적어 넣은 것이 아니라 측정한 값이다).

# %%
# NBVAL_IGNORE_OUTPUT
m = meta["metrics"]
print(f"clip_shapes: trained {m['steps']} steps of {config['batch_size']} in {m['train_seconds']:.0f} s "
      f"(the whole recipe, with its full-caption twin, {meta['seconds']:.0f} s; `{meta['command']}`), seed {meta['seed']}")
print(f"zero-shot shape accuracy, 'a photo of a {{shape}}': {zero_shot:.1%} (bar 90%)")
print("retrieval among 256 held-out pairs: " + ", ".join(f"{d} R@{n} {recall[f'{d}_R@{n}']:.1%}"
                                                       for d in ('image_to_text', 'text_to_image') for n in (1, 5, 10)))
print("templates: " + ", ".join(f"'{n}' {a:.1%}" for n, a in template_acc.items()))
print(f"compositional: shape {held_shape:.1%} on held-out pairs vs {zero_shot:.1%} seen; "
      f"colour+shape {pair_acc['held out']:.1%} vs {pair_acc['seen']:.1%}")
print(f"this chapter's short run: {history.steps_done} steps of 64 in {history.seconds:.0f} s, "
      f"loss {start:.2f} → {end:.2f}, held-out R@1 {history.evals['image→text R@1'][-1]:.1%}")

# %% [markdown]
# ## 14. 노트 검증
#
# 노트의 400M 쌍과 100에서의 클램프는 논문에서 온 것이다 (cited: CLIP paper, sections 2.2 and 2.5).
#
# | 노트의 주장 | 여기서 보인 것 |
# |---|---|
# | 두 인코더, 하나의 공간으로의 사영, L2 정규화 | 3–4절: 텐서 형태와 코드 |
# | InfoNCE: 참인 쌍은 최대화, 나머지 $N^2-N$개는 최소화 | 2절; 초기화 시 손실 ≈ log B, 학습 중 감소(5절) |
# | $L_{t\to i} = -\log \frac{\exp(\mathrm{sim}(t_i,i_i)/\tau)}{\sum_j \exp(\mathrm{sim}(t_j,i_i)/\tau)}$ | **실수**: 그 합은 캡션 위를 돌므로 $L_{i\to t}$와 같다(4절, 부동소수점 정밀도까지). 합은 이미지 $i_j$ 위를 돌아야 한다 |
# | $L = (L_{i\to t}+L_{t\to i})/2$ | `clip_loss` == `clip_loss_explicit` (4절) |
# | τ는 학습 가능, 초깃값 0.07 | 초기화 시 `logit_scale` = log(1/0.07); 노트는 100에서의 클램프를 빠뜨렸다(논문 2.5절); 곡선은 5–6절 |
# | 웹 이미지-텍스트 쌍 400M개로 학습 | 여기서는 레시피의 ShapeWorld 캡션(몇 개로 얼마나 오래 학습했는지는 6절에서 출력한다); 손실과 방법은 같다 |
# | 제로샷: 클래스 레이블 없이 텍스트 유사도로 분류 | 7절: 홀드아웃 이미지에서 ≥ 90%; 8절: 그 이유 |
# | 프롬프트 엔지니어링이 도움이 된다, 예: "a photo of a [class], a type of [category]" | 9절: 텍스트 타워가 그런 문구를 읽어 봤을 때만 그렇다; 여기서는 ", a type of shape"가 정확도를 떨어뜨리고, 앙상블이 이를 막아 준다 |
# | "a photo of a {name}"과 `logits_per_image`에 대한 소프트맥스를 쓰는 `zero_shot_classify` | 온라인 셀: vislab을 거쳐도 확률이 동일하다 |
# | `image_text_similarity`는 `logits_per_image.item()`을 반환한다 | 그것은 코사인 자체가 아니라 $e^t\cos$(OpenAI 모델에서는 100 × 코사인)이다(8절에서 확인) |
# | 코드는 `openai/clip-vit-large-patch14`를 불러온다 | 온라인 셀은 `clip-vit-base-patch32`를 쓴다(다운로드 크기가 약 삼분의 일); 노트의 모델을 돌리려면 `name`만 바꾸면 되고, 코드는 같다 |

# %% [markdown]
# ## 질문지 (Questionnaire)
#
# 1. CLIP의 두 타워는 무엇이며 각각 어디에서 읽어 내는가? 두 출력을 왜 사영하고 L2 정규화하는가?
# 2. 대칭 손실을 써 보라. 로짓의 행은 무엇을 묻고, 열은 무엇을 묻는가?
# 3. 노트의 텍스트→이미지 항은 무엇이 잘못되었으며, 수치로는 어떻게 알아챌 수 있는가?
# 4. 초기화 시 손실은 왜 $\log B$에 가깝고, 왜 그보다 약간 높은가?
# 5. 로짓 스케일은 무엇이며, 어떻게 초기화되고, 왜 클램프되며, 왜 학습 중에 처음에는 내려가는가?
# 6. 로짓 스케일을 바꿔도 제로샷 정확도가 변하지 않는 이유는 무엇인가?
# 7. 텍스트 타워는 왜 `<eot>` 토큰을 읽으며, 패딩은 왜 결코 그곳에 닿을 수 없는가?
# 8. 전체 캡션만으로 학습한 쌍둥이는 캡션을 잘 검색하는데도 왜 제로샷 분류에 실패했는가?
# 9. 프롬프트 템플릿은 언제 도움이 되며, 프롬프트 앙상블은 무엇을 막아 주는가?
# 10. R@1, R@5, R@10은 무엇을 측정하며, ShapeWorld에는 왜 똑같은 캡션을 적중으로 세는 두 번째 수치가
#     필요한가?
# 11. 홀드아웃 색-모양 실험은 무엇을 검증하며, 오류는 어디로 가는가?

# %% [markdown] tags=["solution"]
# **정답 (Answers)**
#
# 1. `[CLS]` 토큰에서 읽는 ViT와 `<eot>`에서 읽는 인과적 텍스트 트랜스포머다. 사영은 둘을 같은 폭으로
#    맞추고, 정규화는 내적을 코사인으로 만들어 방향만 경쟁하게 한다.
# 2. $\mathcal L = \frac12(\mathrm{CE}(\ell, \mathrm{arange}) + \mathrm{CE}(\ell^\top, \mathrm{arange}))$.
#    행 $k$: 이미지 $k$의 캡션은 어느 것인가; 열 $k$: 캡션 $k$의 이미지는 어느 것인가.
# 3. 그 합은 고정된 이미지에 대해 캡션 위를 돌므로 이미지→텍스트 항을 되풀이한다. 두 항이 정확히 같게
#    나오며(4절), 손실은 어떤 이미지가 캡션에 맞는지를 결코 묻지 않는다.
# 4. 무작위 타워에서는 유사도가 아무 정보도 담지 않으므로, $B$개 후보에 대한 각 소프트맥스가 균일에
#    가까워 $\log B$의 비용이 든다. 약 14인 초기 스케일이 무작위 유사도를 확신에 찬 오답으로 부풀리므로
#    비용이 조금 더 든다.
# 5. $e^t = 1/\tau$이며, $t$는 $\log(1/0.07)$에서부터 학습되고 로짓이 한없이 커지지 못하도록 $\log 100$에서
#    클램프된다. 모델이 대부분 틀리는 동안에는 더 부드러운 소프트맥스가 비용이 적으므로 스케일이 먼저
#    떨어지고, 모델이 확신을 얻으면 올라간다.
# 6. 한 이미지의 모든 로짓에 같은 양수를 곱하므로 순서가 유지된다: argmax가 같다.
# 7. 어텐션이 인과적이므로 마지막 실제 토큰만이 캡션 전체를 보았다. 패딩은 `<eot>` 뒤에 오고, 인과적
#    어텐션은 토큰이 뒤쪽 위치를 보지 못하게 한다.
# 8. 모양만 말하는 문장을 읽어 본 적이 없기 때문이다: "a photo of a circle"은 학습 캡션의 언어 밖에
#    있으므로, 프롬프트의 임베딩이 원 이미지들이 있는 곳에 놓이지 않는다. 제로샷은 프롬프트가 학습
#    텍스트와 겹치는 만큼만 작동한다.
# 9. 학습 캡션처럼 보일 때 도움이 된다. 학습에서 본 적 없는 단어가 든 템플릿(여기서는 ", a type of
#    shape")은 오히려 해가 된다. 여러 템플릿을 평균하면 나쁜 템플릿 하나를 막을 수 있다.
# 10. 참 짝이 가장 유사한 후보 1, 5, 10개 안에 드는 질의의 비율이다. ShapeWorld는 캡션을 단어 그대로
#     반복하므로 어떤 이미지의 "틀린" 캡션이 자기 캡션과 똑같을 수 있다: 똑같은 캡션을 적중으로 세면
#     그 모호함이 사라진다.
# 11. 모델이 속성을 분리하는지를 검증한다: 모든 색과 모든 모양은 보았지만 이 쌍들은 보지 않았다.
#     정확도는 떨어지고, 오류는 색을 유지한 채 모양을 그 색으로 본 적 있는 모양으로 바꾼다: 본 쌍이,
#     옳지만 본 적 없는 쌍을 이긴다.

# %% [markdown] tags=["online"]
# ## 온라인: vislab 모듈 속의 OpenAI CLIP (선택)
#
# 인터넷에 접속할 수 있으면, 이 셀은 `transformers`로 `openai/clip-vit-base-patch32`를 불러와
# `vislab.pretrained.from_hf`로 변환하고(CLIP의 pre-norm과 QuickGELU를 쓰는 vislab의 ViT, OpenAI의 `<eot>`
# 풀링을 쓰는 vislab의 텍스트 타워), 강의의 실제 사진 두 장을 제로샷 분류한다. 그 옆에서는 노트 자체의
# `zero_shot_classify` 코드를 `transformers` 모델에 돌린다: 두 확률이 일치해야 한다. `online` 태그가 붙어
# 있어 오프라인 테스트는 이 셀을 건너뛰며, 오프라인에서는 한 줄을 출력하고 멈춘다.

# %% tags=["online"]
from vislab.online import hub_available

if hub_available("OpenAI's CLIP ViT-B/32 in vislab's modules: zero-shot probabilities for the two photos, equal to the notes' transformers code"):
    from transformers import CLIPModel, CLIPProcessor

    from vislab.images import sample_photos
    from vislab.pretrained import from_hf

    name = "openai/clip-vit-base-patch32"
    hf_model = CLIPModel.from_pretrained(name).eval()
    processor = CLIPProcessor.from_pretrained(name)
    real = from_hf(hf_model)
    photos = sample_photos()                                     # {"china": PIL image, "flower": PIL image}
    class_names = ["temple", "flower", "dog", "city street", "mountain", "bowl of soup"]

    def zero_shot_classify(image, class_names: list):            # the notes' code, unchanged but for `model`
        texts = [f"a photo of a {name}" for name in class_names]
        inputs = processor(images=image, text=texts, return_tensors="pt", padding=True)
        with torch.no_grad():
            outputs = hf_model(**inputs)
        probs = F.softmax(outputs.logits_per_image, dim=-1)
        return class_names[probs.argmax().item()], probs

    inputs = processor(images=list(photos.values()), text=[f"a photo of a {c}" for c in class_names],
                       return_tensors="pt", padding=True)
    with torch.no_grad():
        ours = real(inputs["pixel_values"], inputs["input_ids"]).softmax(dim=-1)         # (2, 6)
    for row, (photo_name, image) in enumerate(photos.items()):
        label, theirs = zero_shot_classify(image, class_names)
        print(f"{photo_name}: vislab says {class_names[ours[row].argmax()]!r}, the notes' code says {label!r}")
        _ = check.close(ours[row], theirs[0], f"{photo_name}: vislab CLIP == transformers probabilities", atol=1e-4)

    # prompt ensembling with the real model: vislab's zero_shot_classifier with the BPE tokenizer
    templates = ["a photo of a {}.", "a blurry photo of a {}.", "a close-up photo of a {}.", "a painting of a {}."]
    hf_tokenize = lambda texts: processor.tokenizer(texts, padding=True, return_tensors="pt")["input_ids"]  # noqa: E731
    weights = zero_shot_classifier(real, hf_tokenize, class_names, templates)
    with torch.no_grad():
        probs = zero_shot_logits(real.encode_image(inputs["pixel_values"]), weights, real.logit_scale.exp()).softmax(-1)
    for row, photo_name in enumerate(photos):
        print(f"{photo_name} with 4 templates: " + ", ".join(f"{c} {p:.1%}" for c, p in zip(class_names, probs[row])))

"""Chapter 3: CLIP, contrastive language-image pretraining (Radford et al., arXiv:2103.00020).

Two towers map an image and a caption into one D_e-dimensional space:

    I_f = ViT(image)[CLS] ;  T_f = TextTransformer(caption)[EOT]
    I_e = normalize(I_f W_i) ;  T_e = normalize(T_f W_t)                (projections, no bias)
    logits = exp(t) * I_e T_e^T                                          (t = log(1/tau), learnable)
    loss = (CE(logits, arange(B)) + CE(logits^T, arange(B))) / 2          (fig. 3 of the paper)

The paper initialises tau to 0.07 and clips the logit scale exp(t) at 100 (sec. 2.5);
open_clip does this by clamping t to [0, log 100] after every optimizer step.

Zero-shot classification (sec. 3.1.2) embeds one prompt per class ("a photo of a {}.")
and classifies an image by its most similar prompt; prompt ensembling (sec. 3.1.4)
averages the normalised embeddings of several templates per class.

Shape legend: B batch, L context length (tokens per caption), N tokens, D width of a
tower, E shared embedding width, h heads, Dh width of a head, C classes, T templates.
"""

from __future__ import annotations

import dataclasses
import math
import string
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vislab.validate import check_finite, check_names, check_number, check_scale, check_tensor
from vislab.vit import Mlp, ViT, ViTConfig

__all__ = ["TextConfig", "TextTransformer", "CausalSelfAttention", "TextBlock", "CLIPConfig", "CLIP", "clip_loss", "clip_loss_explicit",
           "INIT_LOGIT_SCALE", "MAX_LOGIT_SCALE", "fill_template", "zero_shot_classifier",
           "zero_shot_logits", "retrieval_recall", "same_text_positives", "clamp_logit_scale",
           "TEXT_ACTIVATIONS"]

INIT_LOGIT_SCALE = math.log(1 / 0.07)   # t at initialisation: tau = 0.07 (paper, sec. 2.5)
MAX_LOGIT_SCALE = math.log(100.0)       # exp(t) is clipped at 100 (paper, sec. 2.5; open_clip clamps t)


# ----------------------------------------------------------------------------- text tower
TEXT_ACTIVATIONS = ("gelu", "quick_gelu", "gelu_tanh", "relu")


@dataclass(frozen=True)
class TextConfig:
    """Configuration of CLIP's text tower.

    Args:
        vocab_size: number of token ids.
        context_length: L, the longest caption in tokens (``<sot>`` and ``<eot>`` included).
        width: D.  depth: number of blocks.  heads: h (D must be divisible by h).
        mlp_ratio: hidden width of the MLP over D.
        activation: the MLP's: "gelu", "quick_gelu" (OpenAI's checkpoints), "gelu_tanh", "relu".
        eot_token_id: id of the end-of-text token, where the caption is read.
        pool: "eot" (the first position holding ``eot_token_id``) or "argmax" (the position
            of the largest id: OpenAI's rule, valid because EOT has the largest id in their
            vocabulary; transformers keeps it for configs with the legacy ``eos_token_id=2``).
        norm_eps: LayerNorm epsilon.
    """

    vocab_size: int = 50
    context_length: int = 16
    width: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    activation: str = "gelu"
    eot_token_id: int = 3
    pool: str = "eot"
    norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "width", "depth", "heads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"TextConfig.{name} must be a positive int, got {v!r}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.pool not in ("eot", "argmax"):
            raise ValueError(f"pool must be 'eot' or 'argmax', got {self.pool!r}")
        if not 0 <= self.eot_token_id < self.vocab_size:
            raise ValueError(f"eot_token_id {self.eot_token_id} is outside the vocabulary of {self.vocab_size}")
        if self.activation not in TEXT_ACTIVATIONS:
            raise ValueError(f"activation must be one of {TEXT_ACTIVATIONS}, got {self.activation!r}")
        check_number("TextConfig.norm_eps", self.norm_eps, 0.0, strict_min=True)
        check_number("TextConfig.mlp_ratio", self.mlp_ratio, 0.0, strict_min=True)
        if int(self.width * self.mlp_ratio) < 1:
            raise ValueError(f"mlp_ratio={self.mlp_ratio} gives a zero-width MLP for width {self.width} "
                             f"(int({self.width} * {self.mlp_ratio}) = 0); use mlp_ratio >= {1 / self.width:.3g}")


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where token i sees tokens 0..i (a causal mask).

    Two paths chosen per call: ``return_attention=True`` computes the softmax explicitly
    and returns the map ``(B, h, L, L)``; otherwise PyTorch's fused
    ``scaled_dot_product_attention(is_causal=True)`` is used. Both give the same output.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        B, L, D = x.shape
        h = self.heads
        qkv = self.qkv(x).reshape(B, L, 3, h, D // h)                  # (B, L, 3, h, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)                           # 3 x (B, h, L, Dh)
        if return_attention:
            scores = q @ k.transpose(-2, -1) / math.sqrt(D // h)       # (B, h, L, L)
            future = torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
            attn = scores.softmax(dim=-1)                              # (B, h, L, L)
            out = attn @ v                                             # (B, h, L, Dh)
        else:
            attn = None
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, h, L, Dh)
        out = out.transpose(1, 2).reshape(B, L, D)                     # (B, L, D)
        return self.proj(out), attn


class TextBlock(nn.Module):
    """Pre-LN Transformer block: ``x + attn(LN(x))`` then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, activation: str, eps: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = CausalSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, hidden, activation)                        # the ViT's MLP: fc1, act, fc2

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        a, attn = self.attn(self.norm1(x), return_attention=return_attention)
        x = x + a                                                      # (B, L, D)
        x = x + self.mlp(self.norm2(x))                                # (B, L, D)
        return x, attn


class TextTransformer(nn.Module):
    """CLIP's text tower: token + position embedding, causal pre-LN blocks, final LayerNorm,
    and the feature read at the end-of-text token (paper sec. 2.4).

    The mask is causal (as in the paper, "to preserve the ability to initialize with a
    pre-trained language model"): the EOT token is the only one that has seen the whole
    caption, so it is the one read out; padding after EOT never reaches it.
    """

    def __init__(self, config: TextConfig):
        super().__init__()
        if not isinstance(config, TextConfig):
            raise TypeError(f"config must be a TextConfig, got {type(config).__name__}")
        self.config = c = config
        self.token_embed = nn.Embedding(c.vocab_size, c.width)
        self.pos_embed = nn.Parameter(torch.zeros(c.context_length, c.width))
        self.blocks = nn.ModuleList([TextBlock(c.width, c.heads, c.mlp_ratio, c.activation, c.norm_eps)
                                     for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.width, eps=c.norm_eps)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        """OpenAI CLIP's ``initialize_parameters``: std 0.02 for tokens, 0.01 for positions,
        D^-1/2 for the attention input, D^-1/2 (2 depth)^-1/2 for layers that write into the
        residual stream, (2D)^-1/2 for the MLP's first layer; zero biases."""
        c = self.config
        nn.init.normal_(self.token_embed.weight, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.01)
        attn_std = c.width ** -0.5
        proj_std = c.width ** -0.5 * (2 * c.depth) ** -0.5
        fc_std = (2 * c.width) ** -0.5
        for blk in self.blocks:
            nn.init.normal_(blk.attn.qkv.weight, std=attn_std)
            nn.init.normal_(blk.attn.proj.weight, std=proj_std)
            nn.init.normal_(blk.mlp.fc1.weight, std=fc_std)
            nn.init.normal_(blk.mlp.fc2.weight, std=proj_std)
            for lin in (blk.attn.qkv, blk.attn.proj, blk.mlp.fc1, blk.mlp.fc2):
                nn.init.zeros_(lin.bias)

    def check_ids(self, token_ids: torch.Tensor) -> torch.Tensor:
        c = self.config
        if not isinstance(token_ids, torch.Tensor):
            raise TypeError(f"token_ids must be a LongTensor (B, L) from the tokenizer, got "
                            f"{type(token_ids).__name__}")
        if token_ids.dim() != 2:
            raise ValueError(f"token_ids must have shape (B, L), got {tuple(token_ids.shape)}")
        if token_ids.dtype not in (torch.long, torch.int):
            raise TypeError(f"token_ids must be integer ids, got dtype {token_ids.dtype}")
        if token_ids.shape[1] > c.context_length:
            raise ValueError(f"captions of {token_ids.shape[1]} tokens exceed the context length "
                             f"{c.context_length}")
        if token_ids.numel() and (token_ids.min() < 0 or token_ids.max() >= c.vocab_size):
            raise ValueError(f"token ids must lie in [0, {c.vocab_size}), got [{int(token_ids.min())}, "
                             f"{int(token_ids.max())}]")
        return token_ids

    def eot_positions(self, token_ids: torch.Tensor) -> torch.Tensor:
        """``(B,)`` index of the token each caption is read at (see ``TextConfig.pool``)."""
        c = self.config
        if c.pool == "argmax":
            return token_ids.argmax(dim=-1)                             # (B,)
        is_eot = token_ids == c.eot_token_id                            # (B, L)
        missing = ~is_eot.any(dim=-1)
        if missing.any():
            rows = missing.nonzero().flatten().tolist()[:5]
            raise ValueError(f"caption(s) {rows} have no end-of-text token (id {c.eot_token_id}); "
                             "encode captions with the tokenizer, which appends it")
        return is_eot.int().argmax(dim=-1)                              # (B,) first EOT

    def forward(self, token_ids: torch.Tensor, return_tokens: bool = False,
                return_attention: bool = False):
        """Encode captions.

        Args:
            token_ids: ``(B, L)`` long, L <= context_length.
            return_tokens: also return every token's final-normed feature ``(B, L, D)``.
            return_attention: also return each block's attention map ``(B, h, L, L)``.
        Returns:
            ``(B, D)`` the feature at EOT, or a dict ``{"pooled", "tokens", "attentions"}``
            when ``return_tokens`` or ``return_attention``.
        """
        token_ids = self.check_ids(token_ids)
        B, L = token_ids.shape
        x = self.token_embed(token_ids) + self.pos_embed[:L]            # (B, L, D)
        attentions = []
        for blk in self.blocks:
            x, attn = blk(x, return_attention=return_attention)         # (B, L, D)
            attentions.append(attn)
        x = self.norm(x)                                                # (B, L, D)
        pooled = x[torch.arange(B, device=x.device), self.eot_positions(token_ids)]  # (B, D)
        if return_tokens or return_attention:
            return {"pooled": pooled, "tokens": x, "attentions": attentions if return_attention else None}
        return pooled


# ----------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class CLIPConfig:
    """Configuration of a CLIP model: the two towers and the shared space.

    Args:
        vision: the image tower's :class:`~vislab.vit.ViTConfig` (``num_classes`` must be 0;
            its ``pooling`` says which token is the image feature: CLS for CLIP).
        text: the text tower's :class:`TextConfig`.
        embed_dim: E, the width of the shared embedding space.
        init_logit_scale: t at initialisation, log(1/tau); the paper's tau = 0.07.
        max_logit_scale: the clamp applied by :func:`clamp_logit_scale` (log 100).
    """

    vision: ViTConfig = field(default_factory=lambda: ViTConfig(image_size=32, patch_size=4, dim=64, depth=3,
                                                                heads=4))
    text: TextConfig = field(default_factory=TextConfig)
    embed_dim: int = 64
    init_logit_scale: float = INIT_LOGIT_SCALE
    max_logit_scale: float = MAX_LOGIT_SCALE

    def __post_init__(self):
        if isinstance(self.vision, dict):
            object.__setattr__(self, "vision", ViTConfig.from_dict(self.vision))
        if isinstance(self.text, dict):
            object.__setattr__(self, "text", TextConfig(**self.text))
        if not isinstance(self.vision, ViTConfig) or not isinstance(self.text, TextConfig):
            raise TypeError("CLIPConfig needs vision=ViTConfig(...) and text=TextConfig(...)")
        if self.vision.num_classes:
            raise ValueError(f"the image tower must have no classification head (num_classes=0), got "
                             f"{self.vision.num_classes}")
        if isinstance(self.embed_dim, bool) or not isinstance(self.embed_dim, int) or self.embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {self.embed_dim!r}")
        check_number("init_logit_scale", self.init_logit_scale)
        check_number("max_logit_scale", self.max_logit_scale)
        if not self.init_logit_scale <= self.max_logit_scale:
            raise ValueError(f"init_logit_scale {self.init_logit_scale} exceeds max_logit_scale {self.max_logit_scale}")

    def to_dict(self) -> dict:
        """JSON-ready dict (checkpoint metadata); :meth:`from_dict` inverts it."""
        return {"vision": self.vision.to_dict(), "text": dataclasses.asdict(self.text),
                "embed_dim": self.embed_dim, "init_logit_scale": self.init_logit_scale,
                "max_logit_scale": self.max_logit_scale}

    @classmethod
    def from_dict(cls, d: dict) -> "CLIPConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown CLIPConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)


class CLIP(nn.Module):
    """CLIP (arXiv:2103.00020, fig. 3): an image tower (vislab's ViT), a text tower
    (:class:`TextTransformer`), two bias-free linear projections into E dimensions and the
    learnable log temperature ``logit_scale`` (t; the logits are multiplied by exp(t) = 1/tau).

    ``encode_image`` / ``encode_text`` give the projected (not normalised) embeddings;
    ``forward`` gives ``logits_per_image`` (B_img, B_txt); its transpose is ``logits_per_text``.
    """

    def __init__(self, config: CLIPConfig):
        super().__init__()
        if not isinstance(config, CLIPConfig):
            raise TypeError(f"CLIP expects a CLIPConfig, got {type(config).__name__}")
        self.config = c = config
        self.visual = ViT(c.vision)
        self.text = TextTransformer(c.text)
        self.visual_projection = nn.Linear(c.vision.dim, c.embed_dim, bias=False)
        self.text_projection = nn.Linear(c.text.width, c.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(c.init_logit_scale)))
        # Projections: normal with std width^-1/2 (OpenAI CLIP, initialize_parameters). The
        # towers initialise themselves (ViT.reset_parameters, TextTransformer.init_weights).
        with torch.no_grad():
            nn.init.normal_(self.visual_projection.weight, std=c.vision.dim ** -0.5)
            nn.init.normal_(self.text_projection.weight, std=c.text.width ** -0.5)

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, E)``: the ViT's pooled token (CLS), projected."""
        tokens = self.visual.forward_features(images)                   # (B, T, D)
        x = self.visual_projection(self.visual.pool(tokens))            # (B, E)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, token_ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """``(B, L)`` ids → ``(B, E)``: the text tower's EOT feature, projected."""
        x = self.text_projection(self.text(token_ids))                  # (B, E)
        return F.normalize(x, dim=-1) if normalize else x

    def forward(self, images: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """``logits_per_image`` ``(B_img, B_txt)`` = exp(t) * cos(image_i, caption_j)."""
        image_features = self.encode_image(images, normalize=True)       # (B_img, E)
        text_features = self.encode_text(token_ids, normalize=True)      # (B_txt, E)
        return self.logit_scale.exp() * image_features @ text_features.t()   # (B_img, B_txt)

    @property
    def temperature(self) -> float:
        """tau = 1 / exp(t)."""
        return float(torch.exp(-self.logit_scale.detach()))


@torch.no_grad()
def clamp_logit_scale(model: CLIP, step: int | None = None) -> float:
    """Clamp ``model.logit_scale`` (t) to [0, log 100] in place, as open_clip does after each
    optimizer step (the paper: "clipped to prevent scaling the logits by more than 100").

    Signature ``(model, step)`` so it can be passed as ``vislab.train.fit(after_step=...)``.
    Returns the logit scale exp(t).
    """
    upper = getattr(getattr(model, "config", None), "max_logit_scale", MAX_LOGIT_SCALE)
    model.logit_scale.clamp_(0.0, upper)
    return float(model.logit_scale.exp())


# ----------------------------------------------------------------------------- loss
def _check_pair(image_features, text_features):
    for name, t in (("image_features", image_features), ("text_features", text_features)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (B, E), got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"{name} must have shape (B, E), got {tuple(t.shape)}")
    if image_features.shape[0] != text_features.shape[0]:
        raise ValueError(f"the contrastive loss needs matched pairs: {image_features.shape[0]} images but "
                         f"{text_features.shape[0]} captions (row i of each must describe the same pair)")
    if image_features.shape[1] != text_features.shape[1]:
        raise ValueError(f"image and text embeddings must have the same width E, got "
                         f"{image_features.shape[1]} and {text_features.shape[1]}")
    if image_features.shape[0] < 2:
        raise ValueError("the contrastive loss needs a batch of at least 2 pairs: with one pair there is "
                         "no negative, so the softmax over the batch is always 1 and the loss is 0")


def _logit_scale(logit_scale, like: torch.Tensor) -> torch.Tensor:
    check_scale("logit_scale", logit_scale)
    s = torch.as_tensor(logit_scale, dtype=like.dtype, device=like.device)
    if s.numel() != 1:
        raise ValueError(f"logit_scale must be a scalar (exp(t) = 1/tau), got shape {tuple(s.shape)}")
    return s.reshape(())


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale) -> torch.Tensor:
    """CLIP's symmetric InfoNCE loss (paper fig. 3).

    With I, T the L2-normalised rows and s = 1/tau:

        logits = s * I T^T                          (B, B); pair i is on the diagonal
        L_i2t  = CE(logits,   arange(B))            each image picks its caption among B
        L_t2i  = CE(logits^T, arange(B))            each caption picks its image among B
        loss   = (L_i2t + L_t2i) / 2

    Args:
        image_features: ``(B, E)``; normalised here.
        text_features: ``(B, E)``; row i is the caption of image i; normalised here.
        logit_scale: the multiplier s = exp(t) = 1/tau (a scalar tensor or float), not t.
    Returns:
        scalar loss tensor.
    """
    _check_pair(image_features, text_features)
    image_features = F.normalize(image_features, dim=-1)               # (B, E)
    text_features = F.normalize(text_features, dim=-1)                 # (B, E)
    logits = _logit_scale(logit_scale, image_features) * image_features @ text_features.t()  # (B, B)
    labels = torch.arange(logits.shape[0], device=logits.device)      # (B,)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def clip_loss_explicit(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale) -> torch.Tensor:
    """The same loss written as the notes write it, one sum at a time (for teaching and tests):

        L_i2t = -1/B sum_i log( exp(s <I_i, T_i>) / sum_j exp(s <I_i, T_j>) )
        L_t2i = -1/B sum_i log( exp(s <T_i, I_i>) / sum_j exp(s <T_i, I_j>) )
    """
    _check_pair(image_features, text_features)
    s = _logit_scale(logit_scale, image_features)
    I = image_features / image_features.norm(dim=-1, keepdim=True)     # (B, E)
    T = text_features / text_features.norm(dim=-1, keepdim=True)       # (B, E)
    sim = s * (I @ T.t())                                              # (B, B)
    pos = sim.diagonal()                                               # (B,)
    l_i2t = -(pos - torch.logsumexp(sim, dim=1)).mean()                # rows: one image, all captions
    l_t2i = -(pos - torch.logsumexp(sim, dim=0)).mean()                # columns: one caption, all images
    return (l_i2t + l_t2i) / 2


# ----------------------------------------------------------------------------- zero-shot
def fill_template(template: str, name: str) -> str:
    """Put a class name into a prompt template with one placeholder: ``"{}"`` or a named
    field such as ``"{shape}"`` (``fill_template("a photo of a {shape}", "star")``)."""
    if not isinstance(template, str):
        raise TypeError(f"a template must be a str, got {type(template).__name__}")
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    if len(fields) != 1:
        raise ValueError(f"template {template!r} must have exactly one placeholder such as '{{}}' or "
                         f"'{{shape}}', found {sorted(fields) or 'none'}")
    (f,) = fields
    return template.format(name) if f == "" else template.format(**{f: name})


@torch.no_grad()
def zero_shot_classifier(model, tokenizer, classnames: Sequence[str],
                         templates: Sequence[str] = ("a photo of a {}",),
                         device=None) -> torch.Tensor:
    """Zero-shot classifier weights from class names (paper sec. 3.1.2) with prompt
    ensembling (sec. 3.1.4).

    For each class c and template k, embed the prompt and L2-normalise it; the class
    weight is the mean over the T templates, normalised again (OpenAI's notebook):

        w_c = normalize( 1/T sum_k normalize( encode_text(template_k(c)) ) )

    Args:
        model: anything with ``encode_text(token_ids) -> (B, E)`` (a :class:`CLIP`).
        tokenizer: callable ``list[str] -> (B, L)`` ids (e.g. :class:`vislab.text.CaptionTokenizer`).
        classnames: C names.  templates: T templates, each with one placeholder.
        device: where to run the text tower (default: the model's device).
    Returns:
        ``(C, E)`` unit-norm class embeddings; logits are ``s * normalize(I) @ W^T``.
    """
    if isinstance(classnames, str) or (isinstance(classnames, (list, tuple)) and len(classnames) == 0):
        raise ValueError("classnames must be a non-empty list of class names (got "
                         f"{classnames!r}); zero-shot needs at least one class")
    _check_classnames(classnames, tokenizer)
    if isinstance(templates, str):
        templates = [templates]
    if isinstance(templates, (set, frozenset)):
        raise TypeError("templates is a set, whose order changes from run to run; pass a list")
    if len(templates) == 0:
        raise ValueError("templates is empty: give at least one prompt template such as 'a photo of a {}'")
    if device is None:
        device = next(model.parameters()).device
    prompts = [fill_template(t, c) for c in classnames for t in templates]    # C*T prompts, class-major
    ids = tokenizer(prompts).to(device)                                        # (C*T, L)
    emb = F.normalize(model.encode_text(ids).float(), dim=-1)                  # (C*T, E)
    emb = emb.reshape(len(classnames), len(templates), -1)                     # (C, T, E)
    return F.normalize(emb.mean(dim=1), dim=-1)                                # (C, E)


def _check_classnames(classnames, tokenizer) -> None:
    """Distinct names in a fixed order, every word known to the tokenizer (an unknown word becomes
    ``<unk>``, so "zebra" and "okapi" would get identical classifier rows)."""
    check_names("classnames", classnames)
    unknown_words = getattr(tokenizer, "unknown_words", None)
    if callable(unknown_words) and getattr(tokenizer, "unknown", "unk") == "unk":
        unknown = unknown_words(list(classnames))
        if unknown:
            raise ValueError(f"class names use words the tokenizer does not know: {unknown}; each would become "
                             "<unk> and classes differing only in them would get identical weights. Use words "
                             "of the vocabulary (tokenizer.words) or add them and retrain")


def zero_shot_logits(image_features: torch.Tensor, classifier: torch.Tensor, logit_scale=1.0) -> torch.Tensor:
    """``(B, E)`` image embeddings and ``(C, E)`` class weights → ``(B, C)`` logits
    ``s * normalize(I) W^T`` (argmax = predicted class; softmax = CLIP's probabilities)."""
    check_tensor("image_features", image_features)
    check_tensor("classifier", classifier)
    if image_features.dim() != 2 or classifier.dim() != 2:
        raise ValueError(f"expected image_features (B, E) and classifier (C, E), got "
                         f"{tuple(image_features.shape)} and {tuple(classifier.shape)}")
    if image_features.shape[1] != classifier.shape[1]:
        raise ValueError(f"embedding widths differ: images {image_features.shape[1]}, classes {classifier.shape[1]}")
    img = F.normalize(image_features.float(), dim=-1)                          # (B, E)
    return _logit_scale(logit_scale, img) * img @ classifier.float().t().to(img.device)  # (B, C)


# ----------------------------------------------------------------------------- retrieval
def same_text_positives(captions: Sequence[str]) -> torch.Tensor:
    """``(B, B)`` bool: True where caption i and caption j are the same string.

    ShapeWorld repeats captions ("a small red circle in the center" describes many images);
    with these positives a retrieved caption that is word for word the right one counts
    as a hit, even if it belongs to another image.
    """
    index = {}
    ids = torch.tensor([index.setdefault(c, len(index)) for c in captions])  # (B,)
    return ids[:, None] == ids[None, :]                                        # (B, B)


def retrieval_recall(image_features: torch.Tensor, text_features: torch.Tensor,
                     ks: Sequence[int] = (1, 5, 10), positives: torch.Tensor | None = None) -> dict:
    """Recall@K in both directions (paper sec. 3.1.6, table 13).

    Image i's query succeeds at K if one of its positive captions is among the K captions
    most similar to it (cosine similarity); likewise for caption queries. Candidates with
    equal similarity are ranked in random order, and the recall is the expected value under
    that random tie-breaking, so a collapsed encoder (all similarities equal) scores chance.

    Args:
        image_features: ``(B, E)``.  text_features: ``(B_t, E)``.
        ks: the K values.
        positives: ``(B, B_t)`` bool; default the diagonal (pair i ↔ i; needs B == B_t).
    Returns:
        ``{"image_to_text_R@K": float, "text_to_image_R@K": float, ...}`` in [0, 1].
    """
    check_tensor("image_features", image_features)
    check_tensor("text_features", text_features)
    if image_features.dim() != 2 or text_features.dim() != 2:
        raise ValueError(f"expected (B, E) features, got {tuple(image_features.shape)} and "
                         f"{tuple(text_features.shape)}")
    if image_features.shape[1] != text_features.shape[1]:
        raise ValueError(f"embedding widths differ: {image_features.shape[1]} vs {text_features.shape[1]}")
    B, Bt = image_features.shape[0], text_features.shape[0]
    if positives is None:
        if B != Bt:
            raise ValueError(f"{B} images and {Bt} captions: pass positives (B, B_t) to say which match")
        positives = torch.eye(B, dtype=torch.bool)
    positives = torch.as_tensor(positives, dtype=torch.bool).to(image_features.device)
    if positives.shape != (B, Bt):
        raise ValueError(f"positives must have shape ({B}, {Bt}), got {tuple(positives.shape)}")
    if not positives.any(1).all() or not positives.any(0).all():
        raise ValueError("every image and every caption needs at least one positive")
    if isinstance(ks, int) or any(isinstance(k, bool) or not isinstance(k, int) for k in ks):
        raise ValueError(f"ks must be positive ints, got {ks}")
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive ints, got {ks}")
    check_finite("image_features", image_features)
    check_finite("text_features", text_features)
    sim = F.normalize(image_features.float(), dim=-1) @ F.normalize(text_features.float(), dim=-1).t()  # (B, Bt)
    out = {}
    for name, s, pos in (("image_to_text", sim, positives), ("text_to_image", sim.t(), positives.t())):
        for k, r in zip(ks, _expected_recall(s, pos, ks)):
            out[f"{name}_R@{k}"] = r
    return out


def _expected_recall(s: torch.Tensor, pos: torch.Tensor, ks) -> list:
    """Recall@K of each query (row of ``s``) with ties in random order, averaged over queries.

    With s* the best positive's score, ``a`` candidates strictly above it, and ``p`` positives
    and ``q`` negatives tied at s*: the query succeeds at K unless the first K - a places of the
    tied group are all negatives, which happens with probability prod_{i<K-a} (q-i)/(p+q-i).
    """
    best = s.masked_fill(~pos, float("-inf")).amax(dim=1, keepdim=True)          # (Q, 1) s*
    above = (s > best).sum(1)                                                    # (Q,) a
    tied = s == best                                                             # (Q, M)
    p = (tied & pos).sum(1).float()                                              # (Q,)
    q = (tied & ~pos).sum(1).float()                                             # (Q,)
    J = max(ks)
    i = torch.arange(J, dtype=torch.float32, device=s.device)                    # (J,)
    factor = torch.where(i < q[:, None], (q[:, None] - i) / (p[:, None] + q[:, None] - i), 0.0)   # (Q, J)
    all_negative = torch.cat([torch.ones_like(p)[:, None], factor.cumprod(1)], dim=1)  # (Q, J+1)
    out = []
    for k in ks:
        m = (k - above).clamp(0, J)                                              # (Q,) tied places inside the top k
        out.append((1 - all_negative.gather(1, m[:, None]).squeeze(1)).mean().item())
    return out

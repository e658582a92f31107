"""Chapter 4: SigLIP, the pairwise sigmoid loss (Zhai et al., arXiv:2303.15343).

CLIP (chapter 3) asks each image to pick its caption among the B captions of the batch: a
softmax over a row, normalised by every entry of that row. SigLIP asks a yes/no question of
every pair (image i, caption j) on its own, with a sigmoid:

    logits_ij = t * <x_i, y_j> + b              x, y L2-normalised; t = exp(t'), b learnable
    z_ij      = +1 if i == j else -1           the label of the pair
    loss      = -1/|B| sum_i sum_j log sigmoid(z_ij * logits_ij)

That is Algorithm 1 of the paper (``l = -sum(log_sigmoid(labels * logits)) / n``) and
big_vision's trainer (sum over j, mean over i): the sum over |B|^2 pairs is divided by
|B|, the batch size, not by |B|^2 as the course notes write. The paper initialises
t' = log 10 and b = -10 (sec. 3.2): with one positive against B - 1 negatives per row the
sigmoid should start near "no", or the first steps are spent correcting that bias.

Because no pair needs the rest of its row, the loss splits into blocks: with D devices each
holding b = B/D images and captions, device d computes the b x b block of its images against
the captions it currently holds, passes those captions to its neighbour, and after D steps
every block has been computed exactly once (sec. 3.3, fig. 1). :func:`chunked_sigmoid_loss`
simulates that ring in one process; :mod:`vislab.distributed` runs it across real processes.

The model reuses CLIP's towers (:class:`vislab.vit.ViT`, :class:`vislab.clip.TextTransformer`)
and adds SigLIP's choices as options: attention pooling ("MAP") on the image tower, a
bidirectional text tower read at its last token, a text projection with a bias, tanh-GELU,
and the learnable bias ``logit_bias``.

Shape legend: B batch, D devices, c = B/D chunk per device, E embedding width,
L context length, N tokens, W tower width.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vislab.clip import CLIP, TextConfig, TextTransformer
from vislab.validate import check_int, check_number, check_scale
from vislab.vit import Attention, Mlp, ViT, ViTConfig

__all__ = ["INIT_LOGIT_SCALE", "INIT_LOGIT_BIAS", "prior_bias", "sigmoid_loss", "sigmoid_loss_explicit", "chunked_sigmoid_loss",
           "ring_schedule", "SigLIPConfig", "SigLIP", "SigLIPTextTransformer", "siglip_from_clip",
           "loss_memory_floats", "NORMALIZATIONS"]

INIT_LOGIT_SCALE = math.log(10.0)   # t' at initialisation: t = exp(t') = 10 (paper, sec. 3.2)
INIT_LOGIT_BIAS = -10.0             # b at initialisation (paper, sec. 3.2)
NORMALIZATIONS = ("batch", "pairs")


# ----------------------------------------------------------------------------- checks
def _check_pair(image_features, text_features) -> None:
    for name, t in (("image_features", image_features), ("text_features", text_features)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (B, E), got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"{name} must have shape (B, E), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {t.dtype}")
    if image_features.shape[0] != text_features.shape[0]:
        raise ValueError(f"the sigmoid loss needs matched pairs: {image_features.shape[0]} images but "
                         f"{text_features.shape[0]} captions (row i of each must describe the same pair)")
    if image_features.shape[1] != text_features.shape[1]:
        raise ValueError(f"image and text embeddings must have the same width E, got "
                         f"{image_features.shape[1]} and {text_features.shape[1]}")
    if image_features.shape[0] < 1:
        raise ValueError("the batch is empty")


def _scalar(value, name: str, like: torch.Tensor) -> torch.Tensor:
    check_scale(name, value, positive=(name == "logit_scale"))          # t > 0 and finite; b finite
    s = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if s.numel() != 1:
        raise ValueError(f"{name} must be a scalar, got shape {tuple(s.shape)}")
    return s.reshape(())


# ----------------------------------------------------------------------------- the loss
def prior_bias(batch_size: int) -> float:
    """The log-odds of a positive pair in a batch of B: log(1 / (B - 1)).

    With every cosine at 0 (an untrained model), the loss of one row is
    softplus(-b) + (B - 1) softplus(b), smallest where sigmoid(b) = 1/B, i.e. at this b.
    The paper's b = -10 is this value for B = 1 + e^10, about 22,000 (its batches are 16k-32k).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be an int >= 2 (one positive and at least one negative), got {batch_size!r}")
    return math.log(1.0 / (batch_size - 1))


def sigmoid_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale, logit_bias,
                 normalize_by: str = "batch") -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss (paper sec. 3.2, Algorithm 1).

    With x, y the L2-normalised rows, t = ``logit_scale`` and b = ``logit_bias``:

        logits_ij = t * <x_i, y_j> + b                               (B, B)
        z_ij      = 2 * [i == j] - 1                                 +1 on the diagonal, -1 elsewhere
        loss      = -1/|B| * sum_ij log sigmoid(z_ij * logits_ij)     ("batch", the paper)
                  = -1/|B|^2 * sum_ij ...                              ("pairs", the course notes)

    Args:
        image_features: ``(B, E)``; normalised here.
        text_features: ``(B, E)``; row i is the caption of image i; normalised here.
        logit_scale: the multiplier t = exp(t') (a scalar tensor or float), not t'.
        logit_bias: b (a scalar tensor or float).
        normalize_by: "batch" divides by |B| (paper, big_vision, open_clip, transformers);
            "pairs" divides by |B|^2 (the notes' formula), only for comparison.
    Returns:
        scalar loss tensor.
    """
    _check_pair(image_features, text_features)
    if normalize_by not in NORMALIZATIONS:
        raise ValueError(f"normalize_by must be one of {NORMALIZATIONS}, got {normalize_by!r}")
    x = F.normalize(image_features, dim=-1)                                   # (B, E)
    y = F.normalize(text_features, dim=-1)                                    # (B, E)
    t = _scalar(logit_scale, "logit_scale", x)
    b = _scalar(logit_bias, "logit_bias", x)
    logits = t * x @ y.t() + b                                                # (B, B)
    B = logits.shape[0]
    z = 2 * torch.eye(B, device=x.device, dtype=x.dtype) - 1                  # (B, B)
    total = -F.logsigmoid(z * logits).sum()
    return total / (B if normalize_by == "batch" else B * B)


def sigmoid_loss_explicit(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale,
                          logit_bias) -> torch.Tensor:
    """The same loss as the paper's binary cross-entropy, one pair at a time (for teaching and tests):

        loss = 1/|B| * sum_i [ -log p_ii  -  sum_{j != i} log(1 - p_ij) ],   p_ij = sigmoid(logits_ij)

    Uses ``binary_cross_entropy_with_logits`` with targets ``eye(B)``, summed and divided by |B|.
    """
    _check_pair(image_features, text_features)
    x = F.normalize(image_features, dim=-1)                                   # (B, E)
    y = F.normalize(text_features, dim=-1)                                    # (B, E)
    logits = _scalar(logit_scale, "logit_scale", x) * x @ y.t() + _scalar(logit_bias, "logit_bias", x)  # (B, B)
    targets = torch.eye(logits.shape[0], device=x.device, dtype=x.dtype)      # (B, B)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / logits.shape[0]


# ----------------------------------------------------------------------------- the ring
def ring_schedule(num_devices: int) -> list:
    """Which text chunk each device holds at each step of the ring.

    ``ring_schedule(D)[k][d]`` is the index of the text chunk on device d at step k: its own
    chunk at step 0, then the chunk of device d - k (texts move from device d to d + 1 after
    every step). Over D steps every device sees every chunk exactly once.
    """
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(f"num_devices must be a positive int, got {num_devices!r}")
    D = num_devices
    return [[(d - k) % D for d in range(D)] for k in range(D)]


def _chunk_size(B: int, num_devices) -> int:
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(f"num_devices must be a positive int, got {num_devices!r}")
    if B % num_devices:
        lo, hi = (B // num_devices) * num_devices, (B // num_devices + 1) * num_devices
        raise ValueError(f"a batch of {B} pairs does not split evenly over {num_devices} devices "
                         f"({B} = {num_devices} x {B // num_devices} + {B % num_devices}); every device must hold the "
                         f"same number of pairs. Use a batch of {lo or num_devices} or {hi}, or another num_devices.")
    return B // num_devices


def _block(x, y, t, b, positive: bool):
    """One device's block: logits ``(c, c)``, the labels z, and -sum log sigmoid(z * logits)."""
    logits = t * x @ y.t() + b                                                # (c, c)
    if positive:
        z = 2 * torch.eye(x.shape[0], device=x.device, dtype=x.dtype) - 1    # (c, c)
    else:
        z = -torch.ones((), device=x.device, dtype=x.dtype)                  # every pair negative
    return logits, z, -F.logsigmoid(z * logits).sum()


class _ChunkedSigmoidRecompute(torch.autograd.Function):
    """The ring with one block alive at a time, in the forward *and* the backward pass.

    Forward: compute each block's loss and drop the block. Backward: recompute each block,
    turn it into G = d loss / d logits = -z * sigmoid(-z * logits) / B, add t G y to the
    device's own image gradient and t G^T x to the gradient of the visiting text chunk, which
    travels around the ring with the chunk and is back home after the last step.
    """

    @staticmethod
    def forward(ctx, x, y, t, b, num_devices):
        B = x.shape[0]
        c = _chunk_size(B, num_devices)
        xs, ys = x.split(c), y.split(c)                                       # D x (c, E)
        total = x.new_zeros(())
        for k, holding in enumerate(ring_schedule(num_devices)):
            for d, j in enumerate(holding):
                total = total + _block(xs[d], ys[j], t, b, positive=(k == 0))[2]
        ctx.save_for_backward(x, y, t, b)
        ctx.num_devices = num_devices
        return total / B

    @staticmethod
    def backward(ctx, grad_out):
        x, y, t, b = ctx.saved_tensors
        D = ctx.num_devices
        B = x.shape[0]
        c = B // D
        xs, ys = x.split(c), y.split(c)                                       # D x (c, E)
        gx = [torch.zeros_like(xi) for xi in xs]                              # stays on its device
        gy = [torch.zeros_like(yi) for yi in ys]                              # travels with its chunk
        gt, gb = torch.zeros_like(t), torch.zeros_like(b)
        for k, holding in enumerate(ring_schedule(D)):
            for d, j in enumerate(holding):
                logits, z, _ = _block(xs[d], ys[j], t, b, positive=(k == 0))  # (c, c), recomputed
                G = -z * torch.sigmoid(-z * logits) / B                       # (c, c) d loss / d logits
                gx[d] += t * G @ ys[j]                                        # (c, E)
                gy[j] += t * G.t() @ xs[d]                                    # (c, E)
                gt += (G * (xs[d] @ ys[j].t())).sum()
                gb += G.sum()
        return torch.cat(gx) * grad_out, torch.cat(gy) * grad_out, gt * grad_out, gb * grad_out, None


def chunked_sigmoid_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale, logit_bias,
                         num_devices: int, recompute: bool = False) -> torch.Tensor:
    """:func:`sigmoid_loss` computed as D devices would (paper sec. 3.3, fig. 1), in one process.

    Device d holds images d*c:(d+1)*c and, at step k, the text chunk ``ring_schedule(D)[k][d]``
    (its own at step 0, then the one its left neighbour held). It computes only the ``(c, c)``
    block of its images against those texts: the diagonal block carries the B positives
    (z = +1 on its diagonal), every other block is all negatives. The blocks' sums are added
    and divided by |B|, so the value and every gradient equal :func:`sigmoid_loss`'s.

    Args:
        image_features, text_features: ``(B, E)``; normalised here.
        logit_scale: t = exp(t').  logit_bias: b.
        num_devices: D; B must be a multiple of D (ValueError otherwise).
        recompute: False lets autograd keep every block for the backward pass (D blocks of
            ``(c, c)`` per device: c*B numbers); True keeps none and recomputes each block in the
            backward pass, so a device never holds more than one ``(c, c)`` block.
    Returns:
        scalar loss tensor.
    """
    _check_pair(image_features, text_features)
    x = F.normalize(image_features, dim=-1)                                   # (B, E)
    y = F.normalize(text_features, dim=-1)                                    # (B, E)
    t = _scalar(logit_scale, "logit_scale", x)
    b = _scalar(logit_bias, "logit_bias", x)
    B = x.shape[0]
    c = _chunk_size(B, num_devices)
    if recompute:
        return _ChunkedSigmoidRecompute.apply(x, y, t, b, num_devices)
    xs, ys = x.split(c), y.split(c)                                           # D x (c, E)
    total = x.new_zeros(())
    for k, holding in enumerate(ring_schedule(num_devices)):
        for d, j in enumerate(holding):
            total = total + _block(xs[d], ys[j], t, b, positive=(k == 0))[2]
    return total / B


def loss_memory_floats(method: str, batch_size: int, num_devices: int, embed_dim: int) -> int:
    """Numbers (floats) one device holds for the loss's big tensors, forward and backward.

    A bookkeeping model to extrapolate beyond what a laptop can measure (``vislab.distributed``
    measures the real thing; the two agree within a small factor). c = B / D. Every method counts
    the embeddings it holds and their gradients, then its matrices:

    - "full" (one device, whole batch): 2BE embeddings + 2BE gradients; logits, their sigmoid
      and the gradient, 3B^2.
    - "clip_allgather" (open_clip's default): all 2BE gathered embeddings + 2BE gradients; the
      whole matrix, its softmax along rows and along columns, and the gradient, 4B^2.
    - "clip_allgather_local" (open_clip's local loss): 2BE + 2BE; c rows and c columns of B,
      each with its softmax: 4cB.
    - "sigmoid_ring" (autograd keeps every block): own 2cE + 2cE; the D - 1 received text chunks
      kept for the backward pass, (B - c)E; D blocks of logits and of z * logits kept, 2cB.
    - "sigmoid_ring_recompute": own 2cE + 2cE; the visiting chunk and its travelling gradient
      2cE (when D > 1); one block, its gradient and a temporary, 3c^2.
    """
    check_int("batch_size", batch_size, minimum=1)
    check_int("embed_dim", embed_dim, minimum=1)
    B, D, E = int(batch_size), int(num_devices), int(embed_dim)
    c = _chunk_size(B, D)
    table = {
        "full": 4 * B * E + 3 * B * B,
        "clip_allgather": 4 * B * E + 4 * B * B,
        "clip_allgather_local": 4 * B * E + 4 * c * B,
        "sigmoid_ring": 4 * c * E + (B - c) * E + 2 * c * B,
        "sigmoid_ring_recompute": 4 * c * E + (2 * c * E if D > 1 else 0) + 3 * c * c,
    }
    if method not in table:
        raise ValueError(f"method must be one of {sorted(table)}, got {method!r}")
    return table[method]


# ----------------------------------------------------------------------------- the text tower
class SigLIPTextBlock(nn.Module):
    """Pre-LN block without a causal mask: ``x + attn(LN(x))``, ``x + MLP(LN(x))`` (ViT's
    :class:`~vislab.vit.Attention` and :class:`~vislab.vit.Mlp`, applied to tokens)."""

    def __init__(self, dim: int, heads: int, hidden: int, activation: str, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, hidden, activation)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        a, attn = self.attn(self.norm1(x), return_attention=return_attention)
        x = x + a                                                             # (B, L, W)
        return x + self.mlp(self.norm2(x)), attn                              # (B, L, W), (B, h, L, L)


class SigLIPTextTransformer(TextTransformer):
    """SigLIP's text tower: CLIP's embeddings and final norm, bidirectional blocks, read at
    the **last** position (transformers' ``SiglipTextModel``: ``last_hidden_state[:, -1]``).

    SigLIP's captions are padded to the full context length (64 tokens for the released
    models), so the last position is usually padding; without a causal mask it attends to
    the whole caption, which is why it can summarise it. ``config.pool`` and
    ``config.eot_token_id`` are not used.
    """

    def __init__(self, config: TextConfig):
        super().__init__(config)
        c = self.config
        self.blocks = nn.ModuleList([SigLIPTextBlock(c.width, c.heads, int(c.width * c.mlp_ratio), c.activation,
                                                     c.norm_eps) for _ in range(c.depth)])
        self.init_weights()

    def forward(self, token_ids: torch.Tensor, return_tokens: bool = False, return_attention: bool = False):
        """``(B, L)`` ids → ``(B, W)``, the last position's feature; with ``return_tokens`` or
        ``return_attention`` a dict ``{"pooled", "tokens" (B, L, W), "attentions" [(B, h, L, L)]}``."""
        token_ids = self.check_ids(token_ids)
        L = token_ids.shape[1]
        x = self.token_embed(token_ids) + self.pos_embed[:L]                 # (B, L, W)
        attentions = []
        for blk in self.blocks:
            x, attn = blk(x, return_attention=return_attention)              # (B, L, W)
            attentions.append(attn)
        x = self.norm(x)                                                       # (B, L, W)
        pooled = x[:, -1]                                                      # (B, W)
        if return_tokens or return_attention:
            return {"pooled": pooled, "tokens": x, "attentions": attentions if return_attention else None}
        return pooled


# ----------------------------------------------------------------------------- the model
TEXT_TOWERS = ("causal", "bidirectional")


@dataclass(frozen=True)
class SigLIPConfig:
    """Configuration of a SigLIP model.

    Args:
        vision: the image tower's :class:`~vislab.vit.ViTConfig` (``pooling="map"`` and
            ``class_token=False`` for SigLIP's released models; "cls" reproduces CLIP's tower).
        text: the text tower's :class:`~vislab.clip.TextConfig`.
        embed_dim: E, the shared width.
        text_tower: "causal" (CLIP's tower, read at EOT) or "bidirectional" (SigLIP's: no
            mask, read at the last position).
        image_projection: a bias-free Linear(W, E) after the image tower (CLIP); SigLIP's
            released models have none (then ``vision.dim`` must equal E).
        text_projection_bias: SigLIP's text head has a bias; CLIP's projection does not.
        init_logit_scale: t' at initialisation (log 10).  init_logit_bias: b (-10).
    """

    vision: ViTConfig = field(default_factory=lambda: ViTConfig(image_size=32, patch_size=4, dim=64, depth=3,
                                                                heads=4, mlp="gelu_tanh", class_token=False,
                                                                pooling="map"))
    text: TextConfig = field(default_factory=lambda: TextConfig(activation="gelu_tanh"))
    embed_dim: int = 64
    text_tower: str = "bidirectional"
    image_projection: bool = False
    text_projection_bias: bool = True
    init_logit_scale: float = INIT_LOGIT_SCALE
    init_logit_bias: float = INIT_LOGIT_BIAS

    def __post_init__(self):
        if isinstance(self.vision, dict):
            object.__setattr__(self, "vision", ViTConfig.from_dict(self.vision))
        if isinstance(self.text, dict):
            object.__setattr__(self, "text", TextConfig(**self.text))
        if not isinstance(self.vision, ViTConfig) or not isinstance(self.text, TextConfig):
            raise TypeError("SigLIPConfig needs vision=ViTConfig(...) and text=TextConfig(...)")
        if self.vision.num_classes:
            raise ValueError(f"the image tower must have no classification head (num_classes=0), got "
                             f"{self.vision.num_classes}")
        if isinstance(self.embed_dim, bool) or not isinstance(self.embed_dim, int) or self.embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {self.embed_dim!r}")
        if self.text_tower not in TEXT_TOWERS:
            raise ValueError(f"text_tower must be one of {TEXT_TOWERS}, got {self.text_tower!r}")
        check_number("init_logit_scale", self.init_logit_scale)
        check_number("init_logit_bias", self.init_logit_bias)
        if not self.image_projection and self.vision.dim != self.embed_dim:
            raise ValueError(f"without an image projection the image tower's width ({self.vision.dim}) is the "
                             f"embedding width, so embed_dim must equal it (got {self.embed_dim}); or set "
                             "image_projection=True")

    def replace(self, **changes) -> "SigLIPConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready dict (checkpoint metadata); :meth:`from_dict` inverts it."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["vision"], d["text"] = self.vision.to_dict(), dataclasses.asdict(self.text)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SigLIPConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown SigLIPConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)


class SigLIP(nn.Module):
    """SigLIP (arXiv:2303.15343): CLIP's two towers with a learnable bias next to the scale.

    ``encode_image`` / ``encode_text`` give the (unnormalised) embeddings ``(B, E)``;
    ``forward(images, token_ids)`` gives ``logits_per_image`` ``(B_img, B_txt)`` =
    exp(t') * cos(image_i, caption_j) + b, so ``sigmoid(logits)`` is the probability that the
    pair matches (no softmax: each pair is judged alone).
    """

    def __init__(self, config: SigLIPConfig):
        super().__init__()
        if not isinstance(config, SigLIPConfig):
            raise TypeError(f"SigLIP expects a SigLIPConfig, got {type(config).__name__}")
        self.config = c = config
        self.visual = ViT(c.vision)
        self.text = TextTransformer(c.text) if c.text_tower == "causal" else SigLIPTextTransformer(c.text)
        self.visual_projection = nn.Linear(c.vision.dim, c.embed_dim, bias=False) if c.image_projection \
            else nn.Identity()
        self.text_projection = nn.Linear(c.text.width, c.embed_dim, bias=c.text_projection_bias)
        self.logit_scale = nn.Parameter(torch.tensor(float(c.init_logit_scale)))   # t'
        self.logit_bias = nn.Parameter(torch.tensor(float(c.init_logit_bias)))     # b
        # Projections: normal with std width^-1/2, zero bias (as CLIP's; big_vision's text head
        # is a Dense layer with the same fan-in scale). The towers initialise themselves.
        with torch.no_grad():
            if c.image_projection:
                nn.init.normal_(self.visual_projection.weight, std=c.vision.dim ** -0.5)
            nn.init.normal_(self.text_projection.weight, std=c.text.width ** -0.5)
            if self.text_projection.bias is not None:
                nn.init.zeros_(self.text_projection.bias)

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, E)``: the image tower's pooled feature (CLS or MAP), projected."""
        tokens = self.visual.forward_features(images)                           # (B, N, W)
        x = self.visual_projection(self.visual.pool(tokens))                    # (B, E)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, token_ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """``(B, L)`` ids → ``(B, E)``: the text tower's pooled feature, projected."""
        x = self.text_projection(self.text(token_ids))                          # (B, E)
        return F.normalize(x, dim=-1) if normalize else x

    def forward(self, images: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """``logits_per_image`` ``(B_img, B_txt)`` = exp(t') * cos(image_i, caption_j) + b."""
        image_features = self.encode_image(images, normalize=True)              # (B_img, E)
        text_features = self.encode_text(token_ids, normalize=True)             # (B_txt, E)
        return self.logit_scale.exp() * image_features @ text_features.t() + self.logit_bias  # (B_img, B_txt)

    def loss(self, images: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """:func:`sigmoid_loss` of a batch of matched pairs."""
        return sigmoid_loss(self.encode_image(images), self.encode_text(token_ids), self.logit_scale.exp(),
                            self.logit_bias)


def siglip_from_clip(clip: CLIP, init_logit_scale: float = INIT_LOGIT_SCALE,
                     init_logit_bias: float = INIT_LOGIT_BIAS) -> SigLIP:
    """A SigLIP with exactly the towers and projections of ``clip`` (weights copied), plus
    SigLIP's scale and bias. Used to compare the two losses on identical starting points."""
    if not isinstance(clip, CLIP):
        raise TypeError(f"siglip_from_clip expects a vislab CLIP, got {type(clip).__name__}")
    cc = clip.config
    config = SigLIPConfig(vision=cc.vision, text=cc.text, embed_dim=cc.embed_dim, text_tower="causal",
                          image_projection=True, text_projection_bias=False, init_logit_scale=init_logit_scale,
                          init_logit_bias=init_logit_bias)
    model = SigLIP(config)
    state = {k: v for k, v in clip.state_dict().items() if k != "logit_scale"}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if sorted(missing) != ["logit_bias", "logit_scale"] or unexpected:
        raise RuntimeError(f"CLIP → SigLIP copy mismatch: missing {missing}, unexpected {unexpected}")
    return model.to(next(clip.parameters()).device)

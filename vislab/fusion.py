"""Chapter 8 (second half): early fusion, one Transformer over text tokens and image tokens.

Chameleon (Chameleon Team, arXiv:2405.09818, sec. 2.1) tokenizes an image into discrete codes
with a VQ tokenizer, puts those codes into the *same* vocabulary as the text's BPE tokens,
and trains one decoder-only Transformer to predict the next token of interleaved sequences.
Images are delimited by begin/end-of-image markers. Generating an image is then sampling
tokens after ``<boi>``; captioning is sampling text after ``<eoi>``.

Here: ShapeWorld captions (word-level ids from :mod:`vislab.text`), the codes of a
:class:`vislab.vq.VQVAE` (8×8 = 64 per image at 32 px), and a small GPT-style causal
Transformer (pre-LN blocks, learnt positions, tied input/output embedding as in GPT-2).
Each training sequence is either caption → image or image → caption::

    <sot> a small red circle in the top left <eot> <boi> c_1 ... c_64 <eoi> <pad> ...
    <boi> c_1 ... c_64 <eoi> <sot> a small red circle in the top left <eot> <pad> ...

and the loss is the next-token cross-entropy over every non-pad position.

Vocabulary layout (:class:`FusionVocab`): text ids ``0 .. V_text-1`` (``<pad>`` is 0), image
code k has id ``V_text + k``, then ``<boi>``, ``<eoi>``.

Shape legend: B batch, T sequence length, V vocabulary size, D width, nh heads,
Dh head width, N image tokens per image (h*w), L caption length (ids).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from vislab.text import CaptionTokenizer, shapeworld_tokenizer
from vislab.validate import check_int, check_number
from vislab.vq import VQVAE, VQVAEConfig

__all__ = ["FusionVocab", "FusionConfig", "CausalSelfAttention", "Block", "FusionTransformer",
           "EarlyFusion", "build_sequences", "fusion_loss", "IGNORE"]

IGNORE = -100   # target id that cross_entropy skips (padding)


@dataclass(frozen=True)
class FusionVocab:
    """The shared vocabulary: text ids, then image codes, then ``<boi>`` and ``<eoi>``."""

    text_size: int
    num_codes: int
    pad_id: int = 0

    def __post_init__(self):
        for name in ("text_size", "num_codes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        check_int("pad_id", self.pad_id, 0, self.text_size - 1)

    @property
    def image_offset(self) -> int:
        return self.text_size

    @property
    def boi(self) -> int:
        return self.text_size + self.num_codes

    @property
    def eoi(self) -> int:
        return self.boi + 1

    @property
    def size(self) -> int:
        return self.eoi + 1

    def image_tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """Code ids ``(...)`` in 0..K-1 → vocabulary ids."""
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.num_codes):
            raise ValueError(f"image codes must lie in 0..{self.num_codes - 1}")
        return codes.long() + self.image_offset

    def image_codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """Vocabulary ids of image tokens → code ids 0..K-1 (raises on a non-image id)."""
        codes = tokens.long() - self.image_offset
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.num_codes):
            raise ValueError("tokens contain ids that are not image codes")
        return codes

    def is_image(self, tokens: torch.Tensor) -> torch.Tensor:
        return (tokens >= self.image_offset) & (tokens < self.boi)


def _check_fusion_config(c) -> None:
    check_int("FusionConfig.context_length", c.context_length, minimum=3)     # <sot>, one word, <eot>
    for name in ("dim", "depth", "heads", "mlp_ratio"):
        check_int(f"FusionConfig.{name}", getattr(c, name), minimum=1)
    check_number("FusionConfig.dropout", c.dropout, 0.0, 1.0, strict_max=True)


@dataclass(frozen=True)
class FusionConfig:
    """The early-fusion model: a caption tokenizer, an image tokenizer and a causal Transformer."""

    context_length: int = 16          # caption ids, <sot> and <eot> included
    tokenizer: VQVAEConfig = VQVAEConfig()
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0

    def __post_init__(self):
        _check_fusion_config(self)
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if not isinstance(self.tokenizer, VQVAEConfig):
            raise TypeError("tokenizer must be a VQVAEConfig (a VQGANConfig is reduced to its VQ-VAE fields)")
        if type(self.tokenizer) is not VQVAEConfig:   # keep only what tokenizing and decoding need
            base = {f.name: getattr(self.tokenizer, f.name) for f in fields(VQVAEConfig)}
            object.__setattr__(self, "tokenizer", VQVAEConfig(**base))

    @property
    def max_len(self) -> int:
        """Longest sequence: a full caption plus ``<boi>``, N codes and ``<eoi>``."""
        return self.context_length + self.tokenizer.tokens_per_image + 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FusionConfig":
        d = dict(d)
        return cls(tokenizer=VQVAEConfig(**d.pop("tokenizer")), **d)


# ----------------------------------------------------------------------------------------------
# The causal Transformer
# ----------------------------------------------------------------------------------------------

class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with an optional key/value cache.

    ``forward(x, cache=None, explicit=False)``: ``x`` ``(B, T, D)``. With a ``cache`` dict the
    new keys and values are appended to it, so that generation feeds one token at a time.
    ``explicit=True`` computes the softmax by hand and stores the map in ``self.last_attention``
    ``(B, nh, T, T_total)`` (for pictures); the default uses the fused kernel.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, cache: dict | None = None, explicit: bool = False) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)                                  # 3 × (B, T, D)
        q, k, v = (t.view(B, T, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, Dh)
        past = 0
        if cache is not None:
            if "k" in cache:
                past = cache["k"].shape[2]
                k = torch.cat([cache["k"], k], dim=2)                           # (B, nh, past+T, Dh)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        S = k.shape[2]
        # query i (at absolute position past+i) sees keys 0..past+i
        mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=past)  # (T, S)
        if explicit:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)           # (B, nh, T, S)
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            self.last_attention = att.detach()
            att = F.dropout(att, self.dropout, self.training)
            y = att @ v                                                          # (B, nh, T, Dh)
        else:
            p = self.dropout if self.training else 0.0
            if past == 0:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).reshape(B, T, D)                                   # (B, T, D)
        return self.proj(y)


class Block(nn.Module):
    """Pre-LN Transformer block: x + attn(LN(x)); x + MLP(LN(x)) with GELU."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, cache: dict | None = None, explicit: bool = False) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cache, explicit)                        # (B, T, D)
        return x + self.mlp(self.norm2(x))                                       # (B, T, D)


class FusionTransformer(nn.Module):
    """GPT-style decoder over the shared vocabulary: ``(B, T)`` ids → ``(B, T, V)`` next-token logits."""

    def __init__(self, vocab_size: int, max_len: int, dim: int = 128, depth: int = 4, heads: int = 4,
                 mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.max_len = max_len
        self.tok_embed = nn.Embedding(vocab_size, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, max_len, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        # GPT-2 init: N(0, 0.02) for embeddings and linear layers, residual projections scaled by
        # 1/sqrt(2·depth); the output head shares the token embedding's weight.
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.pos_embed, 0.0, 0.02)
        for blk in self.blocks:
            nn.init.normal_(blk.attn.proj.weight, 0.0, 0.02 / math.sqrt(2 * depth))
            nn.init.normal_(blk.mlp[2].weight, 0.0, 0.02 / math.sqrt(2 * depth))
        self.head.weight = self.tok_embed.weight

    def forward(self, tokens: torch.Tensor, caches: list | None = None, explicit: bool = False) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
            raise ValueError("tokens must be a (B, T) tensor of ids")
        B, T = tokens.shape
        past = caches[0]["k"].shape[2] if caches and "k" in caches[0] else 0
        if past + T > self.max_len:
            raise ValueError(f"sequence of {past + T} tokens exceeds max_len {self.max_len}")
        x = self.tok_embed(tokens) + self.pos_embed[:, past:past + T]            # (B, T, D)
        for i, blk in enumerate(self.blocks):
            x = blk(x, None if caches is None else caches[i], explicit)          # (B, T, D)
        return self.head(self.norm(x))                                           # (B, T, V)


# ----------------------------------------------------------------------------------------------
# Sequences and the loss
# ----------------------------------------------------------------------------------------------

def build_sequences(vocab: FusionVocab, caption_ids: torch.Tensor, codes: torch.Tensor,
                    text_first) -> torch.Tensor:
    """Interleave captions and images into right-padded sequences ``(B, T)``.

    Args:
        caption_ids: ``(B, L)`` from a :class:`~vislab.text.CaptionTokenizer` (``<sot> .. <eot>``, pad 0).
        codes: ``(B, N)`` image codes 0..K-1 (or ``(B, h, w)``).
        text_first: a bool, or a ``(B,)`` bool tensor choosing the order per example.
    Returns:
        ``(B, L + N + 2)`` ids; the caption's padding is moved to the end of each sequence.
    """
    if caption_ids.dim() != 2:
        raise ValueError(f"caption_ids must be (B, L), got {tuple(caption_ids.shape)}")
    codes = codes.reshape(codes.shape[0], -1)                                    # (B, N)
    B, L = caption_ids.shape
    if codes.shape[0] != B:
        raise ValueError(f"{B} captions but {codes.shape[0]} images")
    N = codes.shape[1]
    if isinstance(text_first, bool):
        text_first = torch.full((B,), text_first, dtype=torch.bool)
    image = torch.cat([torch.full((B, 1), vocab.boi), vocab.image_tokens(codes),
                       torch.full((B, 1), vocab.eoi)], dim=1)                    # (B, N+2)
    out = torch.full((B, L + N + 2), vocab.pad_id, dtype=torch.long)
    lengths = (caption_ids != vocab.pad_id).sum(1)                               # (B,)
    for b in range(B):
        text = caption_ids[b, :lengths[b]]
        parts = (text, image[b]) if bool(text_first[b]) else (image[b], text)
        seq = torch.cat(parts)
        out[b, :seq.numel()] = seq
    return out


def fusion_loss(model: FusionTransformer, tokens: torch.Tensor, pad_id: int = 0):
    """Next-token cross-entropy over non-pad targets.

    Returns ``(loss, {"token_acc": float})``: the loss and the share of non-pad next tokens
    the model ranks first.
    """
    logits = model(tokens[:, :-1])                                               # (B, T-1, V)
    targets = tokens[:, 1:].masked_fill(tokens[:, 1:] == pad_id, IGNORE)         # (B, T-1)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)
    keep = targets != IGNORE
    acc = (logits.argmax(-1)[keep] == targets[keep]).float().mean().item()
    return loss, {"token_acc": acc}


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> torch.Tensor:
    """One id per row from ``(B, V)`` logits (greedy when temperature == 0)."""
    check_number("temperature", temperature, 0.0)                 # < 0 would prefer the least likely token
    if top_k is not None:
        check_int("top_k", top_k, minimum=1)
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]                          # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)                                                   # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)           # (B,)


# ----------------------------------------------------------------------------------------------
# The whole model: caption tokenizer + image tokenizer + Transformer
# ----------------------------------------------------------------------------------------------

class EarlyFusion(nn.Module):
    """Chameleon in miniature: ``tokenizer`` (a VQ model) + ``transformer`` over one vocabulary.

    The image tokenizer is part of the module (and of its checkpoint) so that the codes the
    Transformer learnt always match the decoder that turns them back into pixels.
    """

    def __init__(self, config: FusionConfig | None = None):
        super().__init__()
        cfg = FusionConfig() if config is None else config
        if not isinstance(cfg, FusionConfig):
            raise TypeError(f"config must be a FusionConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.text: CaptionTokenizer = shapeworld_tokenizer(cfg.context_length)
        self.tokenizer = VQVAE(cfg.tokenizer)
        self.tokenizer.requires_grad_(False)
        self.vocab = FusionVocab(self.text.vocab_size, cfg.tokenizer.num_codes)
        self.transformer = FusionTransformer(self.vocab.size, cfg.max_len, cfg.dim, cfg.depth, cfg.heads,
                                             cfg.mlp_ratio, cfg.dropout)

    @property
    def tokens_per_image(self) -> int:
        return self.config.tokenizer.tokens_per_image

    def sequences(self, images: torch.Tensor, captions, text_first) -> torch.Tensor:
        """Images ``(B, C, H, W)`` + captions → token sequences ``(B, T)`` for :func:`fusion_loss`."""
        codes = self.tokenizer.tokenize(images)                                  # (B, h, w)
        return build_sequences(self.vocab, self.text(list(captions)), codes.cpu(), text_first)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.transformer(tokens)                                          # (B, T, V)

    def _allowed(self, kind: str, device) -> torch.Tensor:
        v = self.vocab
        allowed = torch.zeros(v.size, dtype=torch.bool, device=device)
        if kind == "image":
            allowed[v.image_offset:v.boi] = True
        else:  # caption words and <eot>
            allowed[:v.text_size] = True
            allowed[[self.text.pad_id, self.text.sot_id, self.text.unk_id]] = False
        return allowed

    def _decode(self, prefix: torch.Tensor, steps: int, kind: str, temperature: float, top_k,
                generator, stop_id: int | None = None) -> torch.Tensor:
        """Sample ``steps`` tokens after ``prefix`` ``(B, T0)``, restricted to ``kind`` ids; ``(B, steps)``."""
        caches = [dict() for _ in self.transformer.blocks]
        logits = self.transformer(prefix, caches)[:, -1]                         # (B, V)
        allowed = self._allowed(kind, prefix.device)
        out = []
        done = torch.zeros(prefix.shape[0], dtype=torch.bool, device=prefix.device)
        for t in range(steps):
            logits = logits.masked_fill(~allowed, float("-inf"))
            nxt = _sample(logits, temperature, top_k, generator)                 # (B,)
            if stop_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, self.text.pad_id), nxt)
                done |= nxt == stop_id
            out.append(nxt)
            if t + 1 < steps and not bool(done.all()):
                logits = self.transformer(nxt[:, None], caches)[:, -1]           # (B, V)
            elif t + 1 < steps:
                out.extend([torch.full_like(nxt, self.text.pad_id)] * (steps - t - 1))
                break
        return torch.stack(out, dim=1)                                           # (B, steps)

    @torch.no_grad()
    def generate_codes(self, captions, temperature: float = 1.0, top_k: int | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Captions (list of str) → image codes ``(B, h, w)``, sampled after ``<sot> caption <eot> <boi>``."""
        if isinstance(captions, str):
            captions = [captions]
        ids = self.text(list(captions))                                          # (B, L)
        lengths = (ids != self.text.pad_id).sum(1)
        device = self.transformer.pos_embed.device
        h, w = self.config.tokenizer.grid
        codes = torch.empty(len(captions), h * w, dtype=torch.long)
        for n in lengths.unique().tolist():       # captions of equal length form one batch
            rows = (lengths == n).nonzero().flatten()
            prefix = torch.cat([ids[rows, :n], torch.full((len(rows), 1), self.vocab.boi)], 1).to(device)
            toks = self._decode(prefix, h * w, "image", temperature, top_k, generator)
            codes[rows] = self.vocab.image_codes(toks.cpu())
        return codes.view(-1, h, w)                                              # (B, h, w)

    @torch.no_grad()
    def generate_images(self, captions, temperature: float = 1.0, top_k: int | None = None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """Captions → images ``(B, C, H, W)`` in [0, 1] (codes decoded by the tokenizer)."""
        was = self.training
        self.eval()
        try:
            codes = self.generate_codes(captions, temperature, top_k, generator)
            device = self.transformer.pos_embed.device
            images = self.tokenizer.decode_indices(codes.to(device)).clamp(0, 1)
        finally:
            self.train(was)
        return images

    @torch.no_grad()
    def generate_captions(self, images: torch.Tensor, temperature: float = 0.0, top_k: int | None = None,
                          generator: torch.Generator | None = None) -> list:
        """Images ``(B, C, H, W)`` → captions (greedy by default), sampled after ``<boi> codes <eoi> <sot>``."""
        was = self.training
        self.eval()
        try:
            device = self.transformer.pos_embed.device
            codes = self.tokenizer.tokenize(images.to(device)).reshape(images.shape[0], -1).cpu()   # (B, N)
            B = codes.shape[0]
            prefix = torch.cat([torch.full((B, 1), self.vocab.boi), self.vocab.image_tokens(codes),
                                torch.full((B, 1), self.vocab.eoi), torch.full((B, 1), self.text.sot_id)],
                               1).to(device)                                     # (B, N+3)
            words = self._decode(prefix, self.config.context_length - 1, "text", temperature, top_k,
                                 generator, stop_id=self.text.eot_id)
        finally:
            self.train(was)
        return self.text.decode(words.cpu())

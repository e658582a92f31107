"""Chapter 2: the Vision Transformer, in the paper's order.

ViT (Dosovitskiy et al., "An Image is Worth 16x16 Words", arXiv:2010.11929), eqs. 1-4:

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos        (1)  patch embed, CLS, positions
    z'_l = MSA(LN(z_{l-1})) + z_{l-1}                      (2)  pre-LN attention block
    z_l  = MLP(LN(z'_l)) + z'_l                            (3)  pre-LN MLP block
    y    = LN(z_L^0)                                       (4)  final norm, CLS -> head

Built in that order: :class:`ViTConfig` → :class:`Attention` (two paths, chosen per call:
an explicit softmax that returns the map, and PyTorch's fused ``scaled_dot_product_attention``)
→ :class:`Mlp` / :class:`SwiGLU` → :class:`Block` → :class:`ViT`. Around them:
:func:`interpolate_pos_embed` (bicubic resampling for a new resolution), :class:`AxialRoPE`
(2D rotary position embedding, the option ``pos_embed="rope"``) and :func:`attention_rollout`
(Abnar & Zuidema, arXiv:2005.00928).

The options later chapters need are config fields, off by default: register tokens
(Darcet et al., arXiv:2309.16588), LayerScale (Touvron et al., CaiT, arXiv:2103.17239),
SwiGLU (Shazeer, arXiv:2002.05202), QuickGELU (CLIP), a pre-norm before the blocks (CLIP's
``ln_pre``), no class token with mean or attention pooling (SigLIP's "MAP" head), a mask token
(BEiT / iBOT / DINOv2).

Shape legend: B batch, C channels, H W image height/width, P patch size, gh gw patch grid,
N = gh*gw patch tokens, R register tokens, T = (1 if CLS) + R + N tokens, D width,
h heads, Dh = D/h head width, F MLP hidden width, K classes, L layers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vislab.patching import PatchEmbed, as_size, grid_size
from vislab.validate import check_bool, check_elements, check_int, check_number, check_tokens

__all__ = [
    "ViTConfig", "PRESETS", "Attention", "AxialRoPE", "Mlp", "SwiGLU", "LayerScale", "Block",
    "AttentionPoolingHead", "ViT", "interpolate_pos_embed", "attention_rollout", "count_parameters",
    "NotesViT",
]

MLP_KINDS = ("gelu", "gelu_tanh", "quick_gelu", "relu", "swiglu")
POS_EMBED_KINDS = ("learned", "rope", "learned+rope", "none")
POOLINGS = ("cls", "mean", "map")

# name -> (patch_size, dim, depth, heads, extra). Widths, depths and heads from ViT's table 1
# (B, L, H), DeiT (arXiv:2012.12877; Ti, S) and SigLIP's shape-optimised encoder
# (Alabdulmohsin et al., arXiv:2305.13035: width 1152, depth 27, MLP 4304, 16 heads).
PRESETS: dict[str, dict] = {
    "Ti/16": dict(patch_size=16, dim=192, depth=12, heads=3),
    "S/16": dict(patch_size=16, dim=384, depth=12, heads=6),
    "B/32": dict(patch_size=32, dim=768, depth=12, heads=12),
    "B/16": dict(patch_size=16, dim=768, depth=12, heads=12),
    "L/16": dict(patch_size=16, dim=1024, depth=24, heads=16),
    "L/14": dict(patch_size=14, dim=1024, depth=24, heads=16),
    "H/14": dict(patch_size=14, dim=1280, depth=32, heads=16),
    "So400m/14": dict(patch_size=14, dim=1152, depth=27, heads=16, mlp_dim=4304),
}


@dataclass(frozen=True)
class ViTConfig:
    """Everything that defines a ViT; frozen, so a model's config cannot drift.

    Args:
        image_size: the training size, int or ``(H, W)``; sets the learned position table.
        patch_size: P.
        dim: D, the width of every token.
        depth: L, the number of blocks.
        heads: h; must divide ``dim``.
        mlp_ratio: F = D * mlp_ratio (ignored when ``mlp_dim`` is given).
        num_classes: K; 0 means no head (``forward`` then returns pooled features).
        in_channels: C.
        mlp_dim: F directly, for shapes whose ratio is not round (SoViT-400m: 4304).
        qkv_bias: biases on the query/key/value projection (ViT: yes).
        norm_eps: epsilon of every LayerNorm (big_vision / timm: 1e-6; HF's ViT: 1e-12).
        mlp: "gelu" (ViT), "gelu_tanh" (SigLIP), "quick_gelu" (CLIP), "relu" (the PyTorch default
            the notes' code inherits), "swiglu" (DINOv2-g, LLaMA-style gated MLP).
        pos_embed: "learned" (ViT), "rope" (2D axial rotary, no table), "learned+rope" (EVA-02),
            "none".
        rope_theta: base of the rotary frequencies (small grids: 100, as in DINOv3).
        class_token: prepend a learned CLS token (SigLIP has none).
        num_registers: R extra learned tokens after CLS, without position (Darcet et al.).
        layerscale_init: if a float, per-channel residual scales initialised to it (CaiT,
            DINOv2: 1e-5 / 1.0); None for plain residuals.
        norm_pre: a LayerNorm on the embedded tokens before the first block (CLIP's ``ln_pre``).
        patch_bias: bias on the patch projection (CLIP has none).
        pooling: what ``forward`` pools: "cls", "mean" (over patches) or "map" (attention pooling
            with a learned probe, SigLIP).
        use_mask_token: add a learned ``mask_token`` that replaces masked patches (BEiT, iBOT).
        pos_interp_antialias: antialias when bicubic-resampling the table (DINOv2 in HF does).
    """

    image_size: int | tuple[int, int] = 224
    patch_size: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    num_classes: int = 0
    in_channels: int = 3
    mlp_dim: int | None = None
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    mlp: str = "gelu"
    pos_embed: str = "learned"
    rope_theta: float = 100.0
    class_token: bool = True
    num_registers: int = 0
    layerscale_init: float | None = None
    norm_pre: bool = False
    patch_bias: bool = True
    pooling: str = "cls"
    use_mask_token: bool = False
    pos_interp_antialias: bool = False

    def __post_init__(self):
        if isinstance(self.image_size, list):
            object.__setattr__(self, "image_size", tuple(self.image_size))
        as_size(self.image_size)
        for name in ("patch_size", "dim", "depth", "heads", "in_channels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"ViTConfig.{name} must be a positive int, got {v!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0 (0 = no head), got {self.num_classes!r}")
        if self.dim % self.heads:
            divisors = [h for h in range(1, min(self.dim, 64) + 1) if self.dim % h == 0]
            raise ValueError(f"heads={self.heads} does not divide dim={self.dim}: each head needs an equal "
                             f"share of the width. Pick heads from {divisors} or change dim.")
        grid_size(self.image_size, self.patch_size)   # raises if a side is not a multiple of P
        if self.mlp not in MLP_KINDS:
            raise ValueError(f"mlp must be one of {MLP_KINDS}, got {self.mlp!r}")
        if self.pos_embed not in POS_EMBED_KINDS:
            raise ValueError(f"pos_embed must be one of {POS_EMBED_KINDS}, got {self.pos_embed!r}")
        if "rope" in self.pos_embed and self.head_dim % 4:
            raise ValueError(f"2D RoPE splits each head into row and column halves of rotation pairs, so "
                             f"dim/heads must be a multiple of 4; got {self.head_dim}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.pooling == "cls" and not self.class_token:
            raise ValueError("pooling='cls' needs class_token=True; use pooling='mean' or 'map' without it")
        if isinstance(self.num_registers, bool) or not isinstance(self.num_registers, int) or self.num_registers < 0:
            raise ValueError(f"num_registers must be an int >= 0, got {self.num_registers!r}")
        if self.mlp_dim is not None and (not isinstance(self.mlp_dim, int) or self.mlp_dim <= 0):
            raise ValueError(f"mlp_dim must be a positive int or None, got {self.mlp_dim!r}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        _check_vit_config(self)

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        """Dh = D / h."""
        return self.dim // self.heads

    @property
    def hidden_dim(self) -> int:
        """F, the MLP's hidden width."""
        return self.mlp_dim if self.mlp_dim is not None else int(self.dim * self.mlp_ratio)

    @property
    def grid(self) -> tuple[int, int]:
        """(gh, gw) at the training size."""
        return grid_size(self.image_size, self.patch_size)

    @property
    def num_patches(self) -> int:
        gh, gw = self.grid
        return gh * gw

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches: CLS (if any) and registers."""
        return int(self.class_token) + self.num_registers

    @property
    def num_tokens(self) -> int:
        """T at the training size."""
        return self.num_prefix_tokens + self.num_patches

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides) -> "ViTConfig":
        """A paper configuration by name ("B/16"), 224 px, no head unless ``num_classes`` is given.

        >>> ViTConfig.preset("B/16", num_classes=1000).depth
        12
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        fields = {"image_size": 224, **PRESETS[name], **overrides}
        return cls(**fields)

    def replace(self, **changes) -> "ViTConfig":
        """A copy with some fields changed (the config itself is frozen)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready dict (checkpoint metadata)."""
        d = dataclasses.asdict(self)
        if isinstance(d["image_size"], tuple):
            d["image_size"] = list(d["image_size"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ViTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ViTConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)


# ---------------------------------------------------------------------------------------------
# Position information: a learned table resampled to new grids, or rotary embeddings.
# ---------------------------------------------------------------------------------------------

def _check_vit_config(c: "ViTConfig") -> None:
    """The numeric and boolean fields the checks above leave open."""
    check_number("ViTConfig.mlp_ratio", c.mlp_ratio, 0.0, strict_min=True)
    if c.hidden_dim < 1:
        raise ValueError(f"mlp_ratio={c.mlp_ratio} gives a zero-width MLP for dim {c.dim} "
                         f"(int({c.dim} * {c.mlp_ratio}) = 0); use mlp_ratio >= {1 / c.dim:.3g} or set mlp_dim")
    check_number("ViTConfig.norm_eps", c.norm_eps, 0.0, strict_min=True)
    check_number("ViTConfig.rope_theta", c.rope_theta, 0.0, strict_min=True)
    if c.layerscale_init is not None:
        check_number("ViTConfig.layerscale_init", c.layerscale_init)
    for name in ("qkv_bias", "class_token", "norm_pre", "patch_bias", "use_mask_token", "pos_interp_antialias"):
        check_bool(f"ViTConfig.{name}", getattr(c, name))
    check_tokens(f"ViTConfig(image_size={c.image_size}, patch_size={c.patch_size})", c.num_tokens)


def interpolate_pos_embed(pos_embed: torch.Tensor, new_grid, num_prefix_tokens: int = 1,
                          old_grid=None, antialias: bool = False) -> torch.Tensor:
    """Bicubically resample the patch part of a learned position table to a new grid.

    The table is a picture of D channels on the old grid; resampling it to ``(gh', gw')`` keeps
    each embedding at the same *relative* place in the image (ViT, section 3.2, "Fine-tuning
    and higher resolution"). Prefix rows (CLS, registers) are copied unchanged.

    Args:
        pos_embed: ``(1, prefix + gh*gw, D)``.
        new_grid: ``(gh', gw')`` (an int means square).
        num_prefix_tokens: rows before the patch rows.
        old_grid: ``(gh, gw)``; default: square, ``sqrt`` of the patch rows.
        antialias: passed to ``F.interpolate`` (matters when shrinking).
    Returns:
        ``(1, prefix + gh'*gw', D)``; the input itself when the grid is unchanged.
    """
    if not isinstance(pos_embed, torch.Tensor) or pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        shape = tuple(pos_embed.shape) if isinstance(pos_embed, torch.Tensor) else type(pos_embed).__name__
        raise ValueError(f"pos_embed must have shape (1, prefix + N, D), got {shape}")
    new_grid = as_size(new_grid, "new_grid")
    check_int("num_prefix_tokens", num_prefix_tokens, minimum=0)
    check_elements(f"a {new_grid[0]}x{new_grid[1]} position table", new_grid[0] * new_grid[1] * pos_embed.shape[-1])
    n = pos_embed.shape[1] - num_prefix_tokens
    if num_prefix_tokens < 0 or n <= 0:
        raise ValueError(f"num_prefix_tokens={num_prefix_tokens} leaves no patch rows in a table of "
                         f"{pos_embed.shape[1]} rows")
    if old_grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} patch rows are not a square grid; pass old_grid=(gh, gw)")
        old_grid = (side, side)
    old_grid = as_size(old_grid, "old_grid")
    if old_grid[0] * old_grid[1] != n:
        raise ValueError(f"old_grid {old_grid} has {old_grid[0] * old_grid[1]} cells but the table has {n} patch rows")
    if tuple(new_grid) == tuple(old_grid):
        return pos_embed
    D = pos_embed.shape[-1]
    prefix, patch = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    patch = patch.reshape(1, old_grid[0], old_grid[1], D).permute(0, 3, 1, 2)    # (1, D, gh, gw)
    patch = F.interpolate(patch.float(), size=new_grid, mode="bicubic", align_corners=False,
                          antialias=antialias).to(pos_embed.dtype)                 # (1, D, gh', gw')
    patch = patch.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], D)    # (1, N', D)
    return torch.cat([prefix, patch], dim=1)                                       # (1, prefix + N', D)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)                     # 2 x (..., m/2)
    return torch.cat([-x2, x1], dim=-1)             # (..., m)


class AxialRoPE(nn.Module):
    """2D axial rotary position embedding (RoFormer, arXiv:2104.09864, eq. 34, applied per axis).

    Each head's Dh channels are split in two halves: the first half is rotated by angles
    proportional to the patch's row, the second by its column. Rotating q and k by their own
    positions makes every dot product q_i . k_j depend on the *offset* between patches only,
    so no table is tied to a grid size (used by EVA-02, Qwen2-VL's vision tower, DINOv3).
    Positions are integer patch coordinates; prefix tokens (CLS, registers) are not rotated.

    Args:
        head_dim: Dh, a multiple of 4.
        theta: frequency base; half-axis channel pair i turns at ``theta ** (-i / (Dh/4))``.
    """

    def __init__(self, head_dim: int, theta: float = 100.0):
        super().__init__()
        check_int("head_dim", head_dim, minimum=4)
        check_number("theta", theta, 0.0, strict_min=True)
        if head_dim % 4:
            raise ValueError(f"AxialRoPE needs head_dim divisible by 4, got {head_dim}")
        quarter = head_dim // 4
        inv_freq = theta ** (-torch.arange(quarter, dtype=torch.float32) / quarter)   # (Dh/4,)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.head_dim = head_dim

    def forward(self, grid, num_prefix_tokens: int, device=None, dtype=torch.float32):
        """cos and sin tables, each ``(T, Dh)``; prefix rows are the identity rotation."""
        gh, gw = grid
        inv_freq = self.inv_freq.to(device) if device is not None else self.inv_freq
        rows = torch.arange(gh, device=inv_freq.device, dtype=torch.float32)
        cols = torch.arange(gw, device=inv_freq.device, dtype=torch.float32)
        ang_r = torch.outer(rows, inv_freq)                                   # (gh, Dh/4)
        ang_c = torch.outer(cols, inv_freq)                                   # (gw, Dh/4)
        ang_r = ang_r[:, None, :].expand(gh, gw, -1)                          # (gh, gw, Dh/4)
        ang_c = ang_c[None, :, :].expand(gh, gw, -1)                          # (gh, gw, Dh/4)
        ang = torch.cat([ang_r, ang_r, ang_c, ang_c], dim=-1).reshape(gh * gw, -1)  # (N, Dh)
        ang = torch.cat([ang.new_zeros(num_prefix_tokens, self.head_dim), ang])     # (T, Dh)
        return ang.cos().to(dtype), ang.sin().to(dtype)

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` ``(B, h, T, Dh)``: each half of Dh is a rotate-half RoPE over one axis."""
        d = x.shape[-1] // 2
        xr, xc = x[..., :d], x[..., d:]                                       # 2 x (B, h, T, Dh/2)
        out_r = xr * cos[:, :d] + _rotate_half(xr) * sin[:, :d]
        out_c = xc * cos[:, d:] + _rotate_half(xc) * sin[:, d:]
        return torch.cat([out_r, out_c], dim=-1)                              # (B, h, T, Dh)


# ---------------------------------------------------------------------------------------------
# The block: attention, MLP, residuals.
# ---------------------------------------------------------------------------------------------

class Attention(nn.Module):
    """Multi-head self-attention (Vaswani et al., arXiv:1706.03762, eq. 1; ViT eq. 5-8).

        Attention(Q, K, V) = softmax(Q K^T / sqrt(Dh)) V,   per head, then concat and project.

    Two paths, chosen per call: ``return_attention=True`` computes the softmax explicitly and
    returns the ``(B, h, T, T)`` map; otherwise PyTorch's fused ``scaled_dot_product_attention``
    computes the same numbers without materialising the map for the caller (the faster path
    at the course's token counts: see ``benchmarks/vit_speed.py``). One ``qkv`` matmul
    produces queries, keys and values together.
    """

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads={heads} does not divide dim={dim}")
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope=None, return_attention: bool = False):
        """``x`` ``(B, T, D)`` → ``((B, T, D), (B, h, T, T) or None)``.

        ``rope``: optional ``(cos, sin)`` tables ``(T, Dh)`` from :class:`AxialRoPE`.
        """
        B, T, D = x.shape
        # One (3D, D) weight, as checkpoints store it, applied as three (D, D) products: the same
        # result as slicing self.qkv(x), and in training the backward needs no concatenation of
        # (B, T, 3D) gradients (measured in benchmarks/vit_speed.py).
        weights = self.qkv.weight.chunk(3)                                 # 3 x (D, D)
        biases = self.qkv.bias.chunk(3) if self.qkv.bias is not None else (None,) * 3
        q, k, v = (F.linear(x, w, b).view(B, T, self.heads, self.head_dim).transpose(1, 2)
                   for w, b in zip(weights, biases))                       # 3 x (B, h, T, Dh)
        if rope is not None:
            q, k = AxialRoPE.rotate(q, *rope), AxialRoPE.rotate(k, *rope)
        if return_attention:
            attn = (q * self.scale) @ k.transpose(-2, -1)                 # (B, h, T, T)
            attn = attn.softmax(dim=-1)
            out = attn @ v                                                # (B, h, T, Dh)
        else:
            attn = None
            out = F.scaled_dot_product_attention(q, k, v)                 # (B, h, T, Dh)
        out = out.transpose(1, 2).reshape(B, T, D)                        # (B, T, D)
        return self.proj(out), attn


class QuickGELU(nn.Module):
    """CLIP's approximation x * sigmoid(1.702 x)."""

    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


def _activation(kind: str) -> nn.Module:
    return {"gelu": nn.GELU(), "gelu_tanh": nn.GELU(approximate="tanh"), "quick_gelu": QuickGELU(),
            "relu": nn.ReLU()}[kind]


class Mlp(nn.Module):
    """The block's MLP: Linear(D, F) → activation → Linear(F, D) (ViT eq. 3)."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = _activation(act)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))        # (B, T, F) inside, (B, T, D) out


class SwiGLU(nn.Module):
    """Gated MLP: W3 (SiLU(x W1) * x W2) (Shazeer, arXiv:2002.05202, eq. 6).

    The hidden width is 2/3 of F rounded up to a multiple of 8, so the parameter count matches
    a plain MLP of width F (DINOv2's ``SwiGLUFFNFused`` layout: one fused input matmul).
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x):
        x1, x2 = self.w12(x).chunk(2, dim=-1)          # 2 x (B, T, F')
        return self.w3(F.silu(x1) * x2)                # (B, T, D)


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch, ``gamma * x`` (CaiT, arXiv:2103.17239, eq. 4)."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x):
        return x * self.gamma


class Block(nn.Module):
    """One pre-LN encoder block (ViT eqs. 2-3): x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        c = config
        self.norm1 = nn.LayerNorm(c.dim, eps=c.norm_eps)
        self.attn = Attention(c.dim, c.heads, qkv_bias=c.qkv_bias)
        self.ls1 = LayerScale(c.dim, c.layerscale_init) if c.layerscale_init is not None else nn.Identity()
        self.norm2 = nn.LayerNorm(c.dim, eps=c.norm_eps)
        self.mlp = SwiGLU(c.dim, c.hidden_dim) if c.mlp == "swiglu" else Mlp(c.dim, c.hidden_dim, c.mlp)
        self.ls2 = LayerScale(c.dim, c.layerscale_init) if c.layerscale_init is not None else nn.Identity()

    def forward(self, x: torch.Tensor, rope=None, return_attention: bool = False):
        """``(B, T, D)`` → ``((B, T, D), attention map or None)``."""
        a, attn = self.attn(self.norm1(x), rope=rope, return_attention=return_attention)
        x = x + self.ls1(a)                                   # (B, T, D)
        x = x + self.ls2(self.mlp(self.norm2(x)))             # (B, T, D)
        return x, attn


class AttentionPoolingHead(nn.Module):
    """Multihead attention pooling ("MAP", Lee et al. arXiv:1810.00825; SigLIP's head).

    A learned probe query attends over all tokens; then a pre-LN MLP with a residual.
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        c = config
        self.probe = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.attention = nn.MultiheadAttention(c.dim, c.heads, batch_first=True)
        self.norm = nn.LayerNorm(c.dim, eps=c.norm_eps)
        self.mlp = Mlp(c.dim, c.hidden_dim, "gelu_tanh" if c.mlp == "swiglu" else c.mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` → ``(B, D)``."""
        probe = self.probe.expand(x.shape[0], -1, -1)           # (B, 1, D)
        y = self.attention(probe, x, x, need_weights=False)[0]  # (B, 1, D)
        y = y + self.mlp(self.norm(y))                          # (B, 1, D)
        return y[:, 0]                                          # (B, D)


# ---------------------------------------------------------------------------------------------
# The model.
# ---------------------------------------------------------------------------------------------

class ViT(nn.Module):
    """The Vision Transformer (arXiv:2010.11929, eqs. 1-4).

    Token layout: ``[CLS][reg_1 .. reg_R][patch_1 .. patch_N]``. The learned position table
    covers CLS and patches (registers carry no position, as in Darcet et al.).

    Methods, from the outside in:
        ``forward(images)`` → logits ``(B, K)``, or pooled features ``(B, D)`` without a head.
        ``forward_features(images, return_attention=False)`` → final-normed tokens ``(B, T, D)``
            (and the per-layer maps ``[(B, h, T, T)] * L`` with ``return_attention=True``).
        ``forward_intermediates(images, ...)`` → a dict of named outputs (cls, registers,
            patches, pooled, per-layer tokens, attention maps, grid).
        ``embed(images, mask=None)`` → ``(tokens (B, T, D), grid)``; ``encode(tokens, grid)`` runs
            the blocks and the final norm: the two halves of ``forward_features``, for methods
            (MAE, iBOT) that change the token set in between.

    Any input size divisible by P works: the learned table is resampled bicubically to the
    new grid (:func:`interpolate_pos_embed`) unless ``interpolate_pos=False`` is passed, in
    which case a different size is an error.
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        if not isinstance(config, ViTConfig):
            raise TypeError(f"ViT expects a ViTConfig, got {type(config).__name__}; "
                            "e.g. ViT(ViTConfig.preset('B/16'))")
        c = self.config = config
        self.patch_embed = PatchEmbed(c.image_size, c.patch_size, c.in_channels, c.dim, bias=c.patch_bias)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim)) if c.class_token else None
        self.registers = nn.Parameter(torch.zeros(1, c.num_registers, c.dim)) if c.num_registers else None
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.dim)) if c.use_mask_token else None
        n_pos = int(c.class_token) + c.num_patches
        self.pos_embed = nn.Parameter(torch.zeros(1, n_pos, c.dim)) if "learned" in c.pos_embed else None
        self.rope = AxialRoPE(c.head_dim, c.rope_theta) if "rope" in c.pos_embed else None
        self.norm_pre = nn.LayerNorm(c.dim, eps=c.norm_eps) if c.norm_pre else nn.Identity()
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.dim, eps=c.norm_eps)
        self.attn_pool = AttentionPoolingHead(c) if c.pooling == "map" else None
        self.head = nn.Linear(c.dim, c.num_classes) if c.num_classes else None
        self.reset_parameters()

    # ---- initialisation ----------------------------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The one visible initialisation, each choice with its source.

        - Linear weights: Xavier-uniform, biases zero (big_vision's ViT, MAE).
        - Patch projection: Xavier-uniform on the flattened ``(D, C*P*P)`` weight, i.e. as the
          Linear layer it is (MAE, ``initialize_weights``).
        - CLS, registers, position table: truncated normal, std 0.02 (BEiT, MAE, timm).
        - LayerNorm: weight 1, bias 0 (PyTorch's default); LayerScale: ``layerscale_init``.
        - Head: zeros, so the first logits are uniform (big_vision ``head_zeroinit``).
        - Mask token and the MAP probe: zeros / truncated normal 0.02.
        """
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, LayerScale):
                m.gamma.fill_(self.config.layerscale_init)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        if self.patch_embed.proj.bias is not None:
            nn.init.zeros_(self.patch_embed.proj.bias)
        for p in (self.cls_token, self.registers, self.pos_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        if self.mask_token is not None:
            nn.init.zeros_(self.mask_token)
        if self.attn_pool is not None:
            nn.init.trunc_normal_(self.attn_pool.probe, std=0.02)
            self.attn_pool.attention._reset_parameters()
        if self.head is not None:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    # ---- the two halves of forward_features ------------------------------------------------------
    def _check_images(self, images) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor (B, C, H, W), got {type(images).__name__}")
        if images.dim() == 3:
            raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}; "
                             "use images.unsqueeze(0) for a single image")
        if images.dim() != 4:
            raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
        C = self.config.in_channels
        if images.shape[1] != C:
            hint = (" (channels-last? use images.permute(0, 3, 1, 2))" if images.shape[-1] == C else "")
            raise ValueError(f"this ViT expects {C} input channels, got {images.shape[1]} in images of shape "
                             f"{tuple(images.shape)}{hint}")
        P = self.config.patch_size
        check_tokens(f"an image of {images.shape[-2]}x{images.shape[-1]} at patch {P}",
                     (images.shape[-2] // P) * (images.shape[-1] // P))
        return images

    def position_table(self, grid, interpolate_pos: bool = True) -> torch.Tensor | None:
        """The learned table for a ``(gh, gw)`` grid: ``(1, cls + gh*gw, D)``, or None (no table)."""
        if self.pos_embed is None:
            return None
        grid = tuple(grid)
        if grid == self.config.grid:
            return self.pos_embed
        if not interpolate_pos:
            c = self.config
            got = (grid[0] * c.patch_size, grid[1] * c.patch_size)
            raise ValueError(f"images of size {got} give a {grid[0]}x{grid[1]} patch grid, but the position table "
                             f"was learned for {c.grid[0]}x{c.grid[1]} ({as_size(c.image_size)} px) and "
                             "interpolate_pos=False. Resize the images, or allow interpolate_pos=True "
                             "(bicubic resampling of the table).")
        return interpolate_pos_embed(self.pos_embed, grid, int(self.config.class_token), self.config.grid,
                                     antialias=self.config.pos_interp_antialias)

    def embed(self, images: torch.Tensor, mask: torch.Tensor | None = None, interpolate_pos: bool = True):
        """Eq. 1: patches → tokens, CLS, positions, registers.

        Args:
            images: ``(B, C, H, W)``, H and W multiples of P.
            mask: optional ``(B, N)`` bool, True where a patch is replaced by ``mask_token``.
            interpolate_pos: resample the table for a different grid (else: ValueError).
        Returns:
            ``(tokens (B, T, D), grid (gh, gw))``.
        """
        images = self._check_images(images)
        c = self.config
        x = self.patch_embed(images)                                     # (B, N, D)
        B, N, D = x.shape
        grid = grid_size(tuple(images.shape[-2:]), c.patch_size)
        if mask is not None:
            if self.mask_token is None:
                raise ValueError("mask given but the config has use_mask_token=False")
            if mask.shape != (B, N):
                raise ValueError(f"mask must be (B, N) = {(B, N)}, got {tuple(mask.shape)}")
            x = torch.where(mask.unsqueeze(-1), self.mask_token.to(x.dtype), x)   # (B, N, D)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)  # (B, 1+N, D)
        pos = self.position_table(grid, interpolate_pos)
        if pos is not None:
            x = x + pos                                                  # (B, 1+N, D)
        if self.registers is not None:
            k = int(c.class_token)
            x = torch.cat([x[:, :k], self.registers.expand(B, -1, -1), x[:, k:]], dim=1)  # (B, T, D)
        return x, grid

    def encode(self, x: torch.Tensor, grid, return_attention: bool = False, keep_layers=None):
        """Eqs. 2-4: the blocks and the final norm.

        Args:
            x: tokens ``(B, T, D)`` from :meth:`embed`.
            grid: ``(gh, gw)`` of the patch tokens (for RoPE).
            return_attention: use the explicit path and collect the maps.
            keep_layers: indices of blocks whose output tokens to keep (None: none).
        Returns:
            ``(normed tokens (B, T, D), [maps (B, h, T, T)], {layer: tokens (B, T, D)})``.
        """
        rope = None
        if self.rope is not None:
            n_patch = grid[0] * grid[1]
            rope = self.rope(grid, x.shape[1] - n_patch, device=x.device, dtype=x.dtype)  # 2 x (T, Dh)
        x = self.norm_pre(x)
        maps, kept = [], {}
        keep = set(keep_layers or ())
        for i, block in enumerate(self.blocks):
            x, attn = block(x, rope=rope, return_attention=return_attention)   # (B, T, D)
            if return_attention:
                maps.append(attn)
            if i in keep:
                kept[i] = x
        return self.norm(x), maps, kept

    # ---- public forwards --------------------------------------------------------------------
    def forward_features(self, images: torch.Tensor, return_attention: bool = False,
                         interpolate_pos: bool = True):
        """Final-normed tokens ``(B, T, D)``; with ``return_attention`` also ``[(B, h, T, T)] * L``."""
        x, grid = self.embed(images, interpolate_pos=interpolate_pos)
        x, maps, _ = self.encode(x, grid, return_attention=return_attention)
        return (x, maps) if return_attention else x

    def split_tokens(self, tokens: torch.Tensor) -> dict:
        """``(B, T, D)`` → ``{"cls": (B, D) or None, "registers": (B, R, D), "patches": (B, N, D)}``."""
        k = int(self.config.class_token)
        r = self.config.num_registers
        return {"cls": tokens[:, 0] if k else None,
                "registers": tokens[:, k:k + r],
                "patches": tokens[:, k + r:]}

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pre-logits ``(B, D)`` from final-normed tokens, as ``config.pooling`` says."""
        parts = self.split_tokens(tokens)
        if self.config.pooling == "cls":
            return parts["cls"]                                          # (B, D)
        if self.config.pooling == "mean":
            return parts["patches"].mean(dim=1)                          # (B, D)
        return self.attn_pool(tokens)                                    # (B, D)

    def forward_intermediates(self, images: torch.Tensor, layers=None, return_attention: bool = False,
                              norm: bool = False, interpolate_pos: bool = True) -> dict:
        """Named outputs for probes and pictures (big_vision's ``out`` dict, timm's intermediates).

        Args:
            images: ``(B, C, H, W)``.
            layers: block indices to keep (negative counts from the end); None = all.
            return_attention: also the per-layer maps (explicit path).
            norm: apply the final LayerNorm to the kept per-layer tokens too.
        Returns:
            dict with ``tokens`` (B, T, D) final-normed; ``cls`` (B, D) or None; ``registers``
            (B, R, D); ``patches`` (B, N, D); ``pooled`` (B, D); ``logits`` (B, K) or None;
            ``layers`` {index: (B, T, D)}; ``layer_cls`` / ``layer_patches`` {index: (B, D) /
            (B, N, D)}; ``attention`` [(B, h, T, T)] * L (empty unless asked); ``grid`` (gh, gw).
        """
        L = self.config.depth
        idx = range(L) if layers is None else [i % L if -L <= i < L else _bad_layer(i, L) for i in layers]
        x, grid = self.embed(images, interpolate_pos=interpolate_pos)
        tokens, maps, kept = self.encode(x, grid, return_attention=return_attention, keep_layers=idx)
        if norm:
            kept = {i: self.norm(t) for i, t in kept.items()}
        parts = self.split_tokens(tokens)
        pooled = self.pool(tokens)
        split = {i: self.split_tokens(t) for i, t in kept.items()}
        return {"tokens": tokens, **parts, "pooled": pooled,
                "logits": self.head(pooled) if self.head is not None else None,
                "layers": kept, "layer_cls": {i: s["cls"] for i, s in split.items()},
                "layer_patches": {i: s["patches"] for i, s in split.items()},
                "attention": maps, "grid": grid}

    def forward(self, images: torch.Tensor, interpolate_pos: bool = True) -> torch.Tensor:
        """Logits ``(B, K)``, or pooled features ``(B, D)`` when ``num_classes == 0``."""
        pooled = self.pool(self.forward_features(images, interpolate_pos=interpolate_pos))   # (B, D)
        return self.head(pooled) if self.head is not None else pooled                       # (B, K)


def _bad_layer(i, L):
    raise ValueError(f"layer index {i} out of range for a ViT of depth {L}")


# ---------------------------------------------------------------------------------------------
# Reading attention.
# ---------------------------------------------------------------------------------------------

def attention_rollout(attentions, residual: bool = True, head_fusion: str = "mean") -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, arXiv:2005.00928, section 3).

    Each layer's map is averaged over heads and, to account for the residual connection,
    mixed with the identity and renormalised: Â_l = (A_l + I) / 2 (rows sum to 1). The rollout
    multiplies them from the first layer up: R = Â_L Â_{L-1} ... Â_1, so R[i, j] estimates how
    much input token j flows into output token i.

    Args:
        attentions: list of L maps ``(B, h, T, T)`` (``forward_features(..., return_attention=True)``),
            or one tensor ``(L, B, h, T, T)``.
        residual: add the identity (the paper's choice); False multiplies raw maps.
        head_fusion: "mean", "max" or "min" over heads.
    Returns:
        ``(B, T, T)``; row 0 (with a CLS token) over the patch columns is the usual picture.
    """
    if isinstance(attentions, torch.Tensor):
        attentions = list(attentions)
    if not attentions:
        raise ValueError("attention_rollout needs at least one attention map; call "
                         "model.forward_features(images, return_attention=True)")
    fuse = {"mean": lambda a: a.mean(1), "max": lambda a: a.amax(1), "min": lambda a: a.amin(1)}
    if head_fusion not in fuse:
        raise ValueError(f"head_fusion must be one of {sorted(fuse)}, got {head_fusion!r}")
    first = attentions[0]
    if first.dim() != 4 or first.shape[-1] != first.shape[-2]:
        raise ValueError(f"each map must be (B, h, T, T), got {tuple(first.shape)}")
    B, _, T, _ = first.shape
    eye = torch.eye(T, device=first.device, dtype=first.dtype)
    rollout = eye.expand(B, T, T)
    for a in attentions:
        a = fuse[head_fusion](a)                                 # (B, T, T)
        if residual:
            a = (a + eye) / 2
            a = a / a.sum(dim=-1, keepdim=True)
        rollout = a @ rollout                                    # (B, T, T)
    return rollout


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------------------------------------
# The course notes' version, kept verbatim for comparison (chapter 2 trains both).
# ---------------------------------------------------------------------------------------------

class NotesViT(nn.Module):
    """The ViT of the course notes: ``nn.TransformerEncoder`` with PyTorch's defaults.

    Kept as the notes wrote it (only ``in_channels`` and the image size made arguments), so that
    chapter 2 can train it beside :class:`ViT`. What ``nn.TransformerEncoderLayer``'s defaults
    change with respect to ViT (arXiv:2010.11929, eqs. 2-3 and appendix B.1):

    - ``norm_first=False``: **post-LN**, ``x = LN(x + f(x))``: the residual stream is normalised
      after every sub-layer, so gradients to early layers pass through L LayerNorms (Xiong et al.,
      arXiv:2002.04745); ViT is pre-LN, ``x = x + f(LN(x))``. With the encoder's output already
      normalised, the final ``self.norm`` is a second LayerNorm in a row.
    - ``activation="relu"``; ViT's MLP uses GELU.
    - ``dropout=0.1`` after attention, inside and after the MLP; ViT pre-trains with no dropout
      on large data (0.1 only for ImageNet-1k from scratch) and fine-tunes without.
    - ``cls_token`` and ``pos_embed`` start at exactly zero (no initialisation is given).

    ``**encoder_options`` go to ``nn.TransformerEncoderLayer`` (e.g. ``norm_first=True,
    activation="gelu", dropout=0.0`` turns it into a pre-LN ViT block).
    """

    def __init__(self, img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0,
                 num_classes=1000, in_channels=3, **encoder_options):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_channels, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.transformer = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model=embed_dim, nhead=num_heads,
                                       dim_feedforward=int(embed_dim * mlp_ratio), batch_first=True,
                                       **encoder_options),
            num_layers=depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x):
        B = x.shape[0]
        x = self.patch_embed(x)                          # (B, N, D)
        cls = self.cls_token.expand(B, -1, -1)           # (B, 1, D)
        x = torch.cat([cls, x], dim=1)                   # (B, 1+N, D)
        x = x + self.pos_embed
        x = self.transformer(x)
        x = self.norm(x)
        return self.head(x[:, 0])                        # (B, K)

    @torch.no_grad()
    def load_vit_weights(self, vit: "ViT") -> "NotesViT":
        """Copy a vislab :class:`ViT`'s weights in (same sizes; the tensors map one to one).

        ``nn.MultiheadAttention`` keeps ``[W_q; W_k; W_v]`` in one ``in_proj_weight`` ``(3D, D)``,
        the same layout as ``Attention.qkv``. With ``norm_first=True, activation="gelu",
        dropout=0.0`` the two models then compute the same function (chapter 2 checks it).
        """
        if not isinstance(vit, ViT) or vit.config.num_registers or vit.pos_embed is None \
                or vit.config.mlp not in ("gelu", "relu") or vit.config.layerscale_init is not None:
            raise ValueError("load_vit_weights needs a plain ViT (learned positions, CLS, GELU/ReLU MLP, "
                             "no registers or LayerScale)")
        mapping = {"patch_embed.proj.weight": "patch_embed.proj.weight", "patch_embed.proj.bias": "patch_embed.proj.bias",
                   "cls_token": "cls_token", "pos_embed": "pos_embed", "norm.weight": "norm.weight",
                   "norm.bias": "norm.bias", "head.weight": "head.weight", "head.bias": "head.bias"}
        for i in range(len(self.transformer.layers)):
            a, b = f"transformer.layers.{i}.", f"blocks.{i}."
            mapping.update({a + "self_attn.in_proj_weight": b + "attn.qkv.weight",
                            a + "self_attn.in_proj_bias": b + "attn.qkv.bias",
                            a + "self_attn.out_proj.weight": b + "attn.proj.weight",
                            a + "self_attn.out_proj.bias": b + "attn.proj.bias",
                            a + "linear1.weight": b + "mlp.fc1.weight", a + "linear1.bias": b + "mlp.fc1.bias",
                            a + "linear2.weight": b + "mlp.fc2.weight", a + "linear2.bias": b + "mlp.fc2.bias",
                            a + "norm1.weight": b + "norm1.weight", a + "norm1.bias": b + "norm1.bias",
                            a + "norm2.weight": b + "norm2.weight", a + "norm2.bias": b + "norm2.bias"})
        own, theirs = self.state_dict(), vit.state_dict()
        missing = sorted(set(own) - set(mapping))
        if missing or len(self.transformer.layers) != vit.config.depth:
            raise ValueError(f"cannot map {missing or 'a different depth'} from the ViT")
        bad = [f"{k}: {tuple(own[k].shape)} vs {tuple(theirs[v].shape)}" for k, v in mapping.items()
               if own[k].shape != theirs[v].shape]
        if bad:
            raise ValueError(f"shape mismatch between NotesViT and ViT: {bad}")
        for k, v in mapping.items():
            own[k].copy_(theirs[v])
        return self

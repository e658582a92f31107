"""Chapter 6, part 1: masked autoencoders (MAE), in the paper's order.

MAE (He et al., "Masked Autoencoders Are Scalable Vision Learners", arXiv:2111.06377, sec. 3):

    1. patchify and embed the image, add *fixed* 2D sin-cos positions      ("MAE encoder")
    2. shuffle the N patches per image by argsort of uniform noise and keep
       the first K = int(N (1 - ratio)) of them (ratio 0.75: 1 in 4 kept)    ("Masking")
    3. a plain ViT encodes only the K visible patches (+ CLS)
    4. a light decoder embeds them, appends N - K shared ``mask_token``s,
       unshuffles to the original order, adds its own sin-cos positions     ("MAE decoder")
    5. a linear layer predicts each patch's P*P*C pixels; the loss is the mean squared
       error on the *removed* patches only                                  ("Reconstruction target")

        L = sum_i m_i * ||x̂_i - x_i||² / (P²C)  /  sum_i m_i          m_i = 1 if patch i was removed

    With ``norm_pix_loss`` each target patch is normalised by its own mean and variance
    first, x_i ← (x_i - mean(x_i)) / sqrt(var(x_i) + 1e-6) (the paper's table 1c: better
    features; the pictures then show structure, not absolute colour).

The encoder is vislab's :class:`~vislab.vit.ViT` (its ``embed``/``encode`` halves), so an MAE
encoder is an ordinary ViT afterwards: probes, fine-tuning and chapter 6's CLIP stage use it
as is. ``random_masking`` follows MAE's reference code line by line (also transformers'
``ViTMAEEmbeddings.random_masking``); the tests check both, and a whole MAE against
transformers' ``ViTMAEForPreTraining``.

Shape legend: B batch, C channels, H W image height/width, P patch, gh gw patch grid,
N = gh*gw patches, K = int(N (1 - ratio)) kept patches, D encoder width, Dd decoder width,
Pp = P*P*C pixel values per patch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from vislab.patching import patchify, unpatchify
from vislab.validate import check_bool, check_elements, check_int, check_number, check_tensor
from vislab.vit import Block, ViT, ViTConfig

__all__ = ["MAEConfig", "MAE", "PRESETS", "sincos_pos_embed_2d", "set_sincos_pos_embed", "random_masking",
           "mae_loss", "patch_targets", "visible_mean_baseline", "masked_patch_mse", "mask_to_image"]


# ---------------------------------------------------------------------------------------------
# Fixed 2D sin-cos position embedding.
# ---------------------------------------------------------------------------------------------

def sincos_pos_embed_2d(dim: int, grid, cls_token: bool = True, temperature: float = 10000.0) -> torch.Tensor:
    """MAE's fixed 2D sine-cosine position table (``get_2d_sincos_pos_embed``).

    Half of the D channels encode the column, half the row, each as the 1D transformer
    encoding [sin(pos * w_k), cos(pos * w_k)] with w_k = temperature^(-k / (D/4)),
    k = 0 .. D/4 - 1. The layout is MAE's: ``[sin(col) | cos(col) | sin(row) | cos(row)]``
    (its code builds ``meshgrid(grid_w, grid_h)``, so its "emb_h" half holds the column;
    transformers keeps the same order for the released weights).

    Args:
        dim: D, a multiple of 4.
        grid: ``(gh, gw)`` or an int for a square grid.
        cls_token: prepend a zero row for CLS.
        temperature: the frequency base (10000, as in the Transformer).
    Returns:
        ``(1 + gh*gw, D)`` with ``cls_token``, else ``(gh*gw, D)``; float32, row-major patches.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0 or dim % 4:
        raise ValueError(f"a 2D sin-cos table needs dim to be a positive multiple of 4 (sin and cos for rows "
                         f"and columns), got {dim!r}")
    gh, gw = (grid, grid) if isinstance(grid, int) else tuple(grid)
    if gh <= 0 or gw <= 0:
        raise ValueError(f"grid must be positive, got {(gh, gw)}")
    _check_sincos(gh, gw, dim, cls_token, temperature)
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float64) / quarter)  # (D/4,)
    rows, cols = torch.meshgrid(torch.arange(gh, dtype=torch.float64),
                                torch.arange(gw, dtype=torch.float64), indexing="ij")  # 2 x (gh, gw)
    ang_c = cols.reshape(-1, 1) * omega                                                 # (N, D/4)
    ang_r = rows.reshape(-1, 1) * omega                                                 # (N, D/4)
    table = torch.cat([ang_c.sin(), ang_c.cos(), ang_r.sin(), ang_r.cos()], dim=1)     # (N, D)
    if cls_token:
        table = torch.cat([table.new_zeros(1, dim), table])                             # (1 + N, D)
    return table.float()


def _check_sincos(gh, gw, dim, cls_token, temperature) -> None:
    check_int("grid height", gh, minimum=1)
    check_int("grid width", gw, minimum=1)
    check_bool("cls_token", cls_token)
    check_number("temperature", temperature, 0.0, strict_min=True)
    check_elements(f"a {gh}x{gw} sin-cos table of width {dim}", gh * gw * dim, bytes_per=8)


@torch.no_grad()
def set_sincos_pos_embed(vit: ViT, trainable: bool = False) -> ViT:
    """Overwrite a ViT's learned position table with the fixed sin-cos table, as MAE does
    (``initialize_weights``: "initialize (and freeze) pos_embed by sin-cos embedding").

    Args:
        vit: a :class:`~vislab.vit.ViT` with a learned table (``pos_embed="learned"``), a CLS
            token and no registers.
        trainable: leave the table trainable (False: frozen, MAE's choice).
    Returns:
        the same ViT.
    """
    if not isinstance(vit, ViT):
        raise TypeError(f"expected a vislab ViT, got {type(vit).__name__}")
    c = vit.config
    if vit.pos_embed is None:
        raise ValueError("this ViT has no learned position table (pos_embed='rope' or 'none'); "
                         "build it with pos_embed='learned'")
    table = sincos_pos_embed_2d(c.dim, c.grid, cls_token=c.class_token)                # (T, D)
    vit.pos_embed.copy_(table[None].to(vit.pos_embed))                                 # (1, T, D)
    vit.pos_embed.requires_grad_(trainable)
    return vit


# ---------------------------------------------------------------------------------------------
# Masking.
# ---------------------------------------------------------------------------------------------

def random_masking(tokens: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None,
                   generator: torch.Generator | None = None):
    """Per-sample random masking by per-sample shuffling (MAE, sec. 3 "Masking").

    Each image draws N uniform numbers; ``argsort`` of them is a random permutation. The
    patches with the K = int(N (1 - ratio)) *smallest* numbers are kept, in that shuffled
    order. Given the same ``noise`` the result is the same, bit for bit (MAE's reference code,
    transformers' ``ViTMAEEmbeddings.random_masking``).

    Args:
        tokens: ``(B, N, D)`` patch tokens (no CLS).
        mask_ratio: fraction removed, in [0, 1); K must stay >= 1.
        noise: optional ``(B, N)`` noise; default uniform from ``generator``.
        generator: a ``torch.Generator`` for the noise (reproducible masks).
    Returns:
        ``kept (B, K, D)``: the visible tokens, in shuffled order;
        ``mask (B, N)``: float, 0 keep, 1 remove, in the original patch order;
        ``ids_restore (B, N)``: long, the inverse permutation (``argsort`` of the shuffle), so
        ``gather(cat([kept, removed]), ids_restore)`` puts every token back in place.
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be a (B, N, D) tensor of patch tokens (no CLS), got {shape}")
    if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, (int, float)) or not 0 <= mask_ratio < 1:
        raise ValueError(f"mask_ratio must be a number in [0, 1) (MAE uses 0.75), got {mask_ratio!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    B, N, D = tokens.shape
    len_keep = int(N * (1 - mask_ratio))
    if len_keep < 1:
        raise ValueError(f"mask_ratio={mask_ratio} keeps int({N} * {1 - mask_ratio:.3g}) = 0 of {N} patches; "
                         "lower it so that at least one patch stays visible")
    if noise is None:
        noise_device = generator.device if generator is not None else tokens.device
        noise = torch.rand(B, N, generator=generator, device=noise_device).to(tokens.device)  # (B, N)
    elif not isinstance(noise, torch.Tensor) or tuple(noise.shape) != (B, N):
        got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
        raise ValueError(f"noise must have shape (B, N) = {(B, N)}, got {got}")
    noise = noise.to(tokens.device)
    ids_shuffle = torch.argsort(noise, dim=1)                      # (B, N) ascending: small is keep
    ids_restore = torch.argsort(ids_shuffle, dim=1)                # (B, N) inverse permutation
    ids_keep = ids_shuffle[:, :len_keep]                           # (B, K)
    kept = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))   # (B, K, D)
    mask = torch.ones(B, N, device=tokens.device)                  # (B, N) in shuffled order
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)                      # (B, N) back in patch order
    return kept, mask, ids_restore


# ---------------------------------------------------------------------------------------------
# Losses and baselines (plain functions).
# ---------------------------------------------------------------------------------------------

def _check_mask(mask, B, N):
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (B, N):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a (B, N) = {(B, N)} tensor (1 = removed), got {got}")
    if not (mask > 0).any():
        raise ValueError("the mask removes no patch: the loss is defined on removed patches only "
                         "(use mask_ratio > 0)")
    return mask.float()


def patch_targets(images: torch.Tensor, patch_size: int, norm_pix_loss: bool = False) -> torch.Tensor:
    """The reconstruction targets ``(B, N, Pp)``: pixels per patch, optionally normalised per patch
    by its mean and (unbiased) variance, ``(x - mean) / sqrt(var + 1e-6)`` (MAE's ``forward_loss``)."""
    target = patchify(images, patch_size)                          # (B, N, Pp)
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)                   # (B, N, 1)
        var = target.var(dim=-1, keepdim=True)                     # (B, N, 1)
        target = (target - mean) / (var + 1.0e-6) ** 0.5           # (B, N, Pp)
    return target


def mae_loss(pred: torch.Tensor, images: torch.Tensor, mask: torch.Tensor, patch_size: int,
             norm_pix_loss: bool = False) -> torch.Tensor:
    """MAE's loss: per-patch mean squared error, averaged over the removed patches only.

        L = sum_i m_i * mean_p (x̂_ip - x_ip)²  /  sum_i m_i

    Args:
        pred: ``(B, N, Pp)`` predicted patches (the decoder's output).
        images: ``(B, C, H, W)`` the originals.
        mask: ``(B, N)``, 1 where a patch was removed.
        patch_size: P.
        norm_pix_loss: compare with per-patch normalised pixels (:func:`patch_targets`).
    Returns:
        scalar tensor.
    """
    check_tensor("pred", pred, ndim=3, floating=True)
    target = patch_targets(images, patch_size, norm_pix_loss)      # (B, N, Pp)
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but the patches of these images have "
                         f"{tuple(target.shape)} (B, N, P*P*C)")
    mask = _check_mask(mask, *target.shape[:2])
    per_patch = ((pred - target) ** 2).mean(dim=-1)                # (B, N)
    return (per_patch * mask).sum() / mask.sum()


def masked_patch_mse(pred: torch.Tensor, images: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Pixel-space reconstruction error on removed patches: :func:`mae_loss` without normalisation."""
    return mae_loss(pred, images, mask, patch_size, norm_pix_loss=False)


def visible_mean_baseline(images: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The baseline that knows no structure: every patch predicted as the mean of the image's
    *visible* patches (pixel by pixel within the patch).

    Args:
        images: ``(B, C, H, W)``.  mask: ``(B, N)``, 1 = removed.  patch_size: P.
    Returns:
        ``(B, N, Pp)``: the same mean patch at every position of an image.
    """
    target = patchify(images, patch_size)                          # (B, N, Pp)
    B, N, _ = target.shape
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (B, N):
        raise ValueError(f"mask must be a (B, N) = {(B, N)} tensor")
    visible = (1 - mask.float()).unsqueeze(-1)                     # (B, N, 1)
    if (visible.sum(dim=1) == 0).any():
        raise ValueError("an image has no visible patch; the visible mean is undefined")
    mean = (target * visible).sum(dim=1, keepdim=True) / visible.sum(dim=1, keepdim=True)   # (B, 1, Pp)
    return mean.expand(B, N, -1)                                   # (B, N, Pp)


def mask_to_image(mask: torch.Tensor, patch_size: int, image_size, channels: int = 3) -> torch.Tensor:
    """``(B, N)`` patch mask → ``(B, channels, H, W)`` pixel mask (1 where the patch was removed)."""
    check_tensor("mask", mask, ndim=2)
    check_int("channels", channels, minimum=1)
    B, N = mask.shape
    pix = mask.float().unsqueeze(-1).expand(B, N, patch_size * patch_size * channels)   # (B, N, Pp)
    return unpatchify(pix, patch_size, image_size)                 # (B, C, H, W)


# ---------------------------------------------------------------------------------------------
# The model.
# ---------------------------------------------------------------------------------------------

def _default_encoder() -> ViTConfig:
    return ViTConfig(image_size=32, patch_size=4, dim=64, depth=4, heads=4)


# Paper configurations (MAE, sec. 4 and appendix A.1: decoder 8 blocks of width 512, 75% masking).
PRESETS: dict[str, dict] = {
    "B/16": dict(encoder="B/16", decoder_dim=512, decoder_depth=8, decoder_heads=16, mask_ratio=0.75,
                 norm_pix_loss=True),
    "L/16": dict(encoder="L/16", decoder_dim=512, decoder_depth=8, decoder_heads=16, mask_ratio=0.75,
                 norm_pix_loss=True),
    "H/14": dict(encoder="H/14", decoder_dim=512, decoder_depth=8, decoder_heads=16, mask_ratio=0.75,
                 norm_pix_loss=True),
}


@dataclass(frozen=True)
class MAEConfig:
    """An MAE: the encoder's :class:`~vislab.vit.ViTConfig` and the decoder's shape.

    Args:
        encoder: a ViT with a CLS token, a learned-table slot (filled with fixed sin-cos), no
            registers and no head.
        decoder_dim: Dd (paper: 512).  decoder_depth: blocks (paper: 8).  decoder_heads: h.
        decoder_mlp_ratio: the decoder blocks' MLP width over Dd.
        mask_ratio: fraction of patches removed (paper: 0.75).
        norm_pix_loss: normalised-pixel targets (paper's default for its best features).
    """

    encoder: ViTConfig = field(default_factory=_default_encoder)
    decoder_dim: int = 64
    decoder_depth: int = 2
    decoder_heads: int = 4
    decoder_mlp_ratio: float = 4.0
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            object.__setattr__(self, "encoder", ViTConfig.from_dict(self.encoder))
        e = self.encoder
        if not isinstance(e, ViTConfig):
            raise TypeError(f"encoder must be a ViTConfig, got {type(e).__name__}")
        if not e.class_token or e.num_registers or e.num_classes or e.pos_embed != "learned":
            raise ValueError("MAE's encoder must be a plain ViT: class_token=True, num_registers=0, "
                             "num_classes=0, pos_embed='learned' (the table is set to fixed sin-cos)")
        if e.dim % 4:
            raise ValueError(f"the sin-cos table needs the encoder width to be a multiple of 4, got {e.dim}")
        for name in ("decoder_dim", "decoder_depth", "decoder_heads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"MAEConfig.{name} must be a positive int, got {v!r}")
        if self.decoder_dim % 4 or self.decoder_dim % self.decoder_heads:
            raise ValueError(f"decoder_dim={self.decoder_dim} must be a multiple of 4 and of decoder_heads="
                             f"{self.decoder_heads}")
        if not 0 < self.mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        check_bool("MAEConfig.norm_pix_loss", self.norm_pix_loss)
        check_number("MAEConfig.decoder_mlp_ratio", self.decoder_mlp_ratio, 0.0, strict_min=True)
        self.decoder                                      # the decoder's ViTConfig checks its own fields

    @classmethod
    def preset(cls, name: str, **overrides) -> "MAEConfig":
        """A paper configuration ("B/16", "L/16", "H/14") at 224 px."""
        if name not in PRESETS:
            raise ValueError(f"unknown MAE preset {name!r}; known: {sorted(PRESETS)}")
        fields_ = dict(PRESETS[name])
        fields_["encoder"] = ViTConfig.preset(fields_["encoder"])
        fields_.update(overrides)
        return cls(**fields_)

    @property
    def decoder(self) -> ViTConfig:
        """The decoder blocks' config (same grid, width Dd)."""
        e = self.encoder
        return ViTConfig(image_size=e.image_size, patch_size=e.patch_size, dim=self.decoder_dim,
                         depth=self.decoder_depth, heads=self.decoder_heads, mlp_ratio=self.decoder_mlp_ratio,
                         in_channels=e.in_channels, norm_eps=e.norm_eps)

    def replace(self, **changes) -> "MAEConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["encoder"] = self.encoder.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MAEConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown MAEConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)


class MAE(nn.Module):
    """Masked autoencoder (arXiv:2111.06377, fig. 1): ViT encoder on visible patches, light decoder.

    Parts, in order: ``encoder`` (a :class:`~vislab.vit.ViT`, fixed sin-cos table),
    ``decoder_embed`` (Linear D → Dd), ``mask_token`` (1, 1, Dd), ``decoder_pos_embed``
    (a fixed buffer, (1, 1 + N, Dd)), ``decoder_blocks``, ``decoder_norm``, ``decoder_pred``
    (Linear Dd → Pp).

    ``forward(images)`` returns a dict: ``loss``, ``pred`` (B, N, Pp), ``mask`` (B, N),
    ``ids_restore`` (B, N), ``latent`` (B, 1 + K, D).
    """

    def __init__(self, config: MAEConfig):
        super().__init__()
        if not isinstance(config, MAEConfig):
            raise TypeError(f"MAE expects an MAEConfig, got {type(config).__name__}")
        self.config = c = config
        e = c.encoder
        self.encoder = ViT(e)
        set_sincos_pos_embed(self.encoder, trainable=False)
        self.decoder_embed = nn.Linear(e.dim, c.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_dim))
        self.register_buffer("decoder_pos_embed", sincos_pos_embed_2d(c.decoder_dim, e.grid)[None],
                             persistent=False)                                      # (1, 1 + N, Dd)
        dec = c.decoder
        self.decoder_blocks = nn.ModuleList([Block(dec) for _ in range(c.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(c.decoder_dim, eps=e.norm_eps)
        self.decoder_pred = nn.Linear(c.decoder_dim, e.patch_size ** 2 * e.in_channels)
        self.reset_decoder()

    @torch.no_grad()
    def reset_decoder(self) -> None:
        """MAE's ``initialize_weights`` for the decoder: Xavier-uniform Linear weights, zero
        biases, LayerNorm 1/0, ``mask_token`` normal(std 0.02). (The encoder initialises
        itself, ``ViT.reset_parameters``, with the same rules.)"""
        for module in [self.decoder_embed, self.decoder_pred, *self.decoder_blocks]:
            for m in module.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.LayerNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.mask_token, std=0.02)

    @property
    def patch_size(self) -> int:
        return self.config.encoder.patch_size

    def _check(self, images):
        images = self.encoder._check_images(images)
        want = self.config.encoder.grid
        P = self.patch_size
        if tuple(images.shape[-2:]) != (want[0] * P, want[1] * P):
            raise ValueError(f"this MAE was built for {want[0] * P}x{want[1] * P} images (fixed position tables), "
                             f"got {tuple(images.shape[-2:])}; resize the images")
        return images

    def forward_encoder(self, images: torch.Tensor, mask_ratio: float | None = None,
                        noise: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """Steps 1-3: embed, add positions, mask, encode the visible patches.

        Returns ``(latent (B, 1 + K, D), mask (B, N), ids_restore (B, N))``.
        """
        images = self._check(images)
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        enc = self.encoder
        pos = enc.pos_embed                                                # (1, 1 + N, D)
        x = enc.patch_embed(images) + pos[:, 1:]                           # (B, N, D)
        x, mask, ids_restore = random_masking(x, ratio, noise=noise, generator=generator)   # (B, K, D)
        cls = (enc.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)      # (B, 1, D)
        x = torch.cat([cls, x], dim=1)                                     # (B, 1 + K, D)
        x, _, _ = enc.encode(x, enc.config.grid)                           # (B, 1 + K, D)
        return x, mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Steps 4-5: mask tokens in, unshuffle, decode, predict pixels. Returns ``(B, N, Pp)``."""
        x = self.decoder_embed(latent)                                     # (B, 1 + K, Dd)
        B, T, Dd = x.shape
        N = ids_restore.shape[1]
        mask_tokens = self.mask_token.expand(B, N + 1 - T, -1)             # (B, N - K, Dd)
        x_ = torch.cat([x[:, 1:], mask_tokens], dim=1)                     # (B, N, Dd) shuffled order
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, Dd))   # (B, N, Dd) patch order
        x = torch.cat([x[:, :1], x_], dim=1)                               # (B, 1 + N, Dd)
        x = x + self.decoder_pos_embed                                     # (B, 1 + N, Dd)
        for block in self.decoder_blocks:
            x, _ = block(x)                                                # (B, 1 + N, Dd)
        x = self.decoder_pred(self.decoder_norm(x))                        # (B, 1 + N, Pp)
        return x[:, 1:]                                                    # (B, N, Pp) without CLS

    def forward(self, images: torch.Tensor, mask_ratio: float | None = None, noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> dict:
        """Encode the visible patches, decode all, and the loss on the removed ones."""
        latent, mask, ids_restore = self.forward_encoder(images, mask_ratio, noise, generator)
        pred = self.forward_decoder(latent, ids_restore)                   # (B, N, Pp)
        loss = mae_loss(pred, images, mask, self.patch_size, self.config.norm_pix_loss)
        return {"loss": loss, "pred": pred, "mask": mask, "ids_restore": ids_restore, "latent": latent}

    def pixels(self, pred: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Predictions ``(B, N, Pp)`` as pixels. With ``norm_pix_loss`` the prediction is in
        normalised units; it is mapped back with *each true patch's own* mean and std, as MAE's
        visualisation notebook does: only the structure is the model's, not the patch's colour."""
        if not self.config.norm_pix_loss:
            return pred
        target = patchify(images, self.patch_size)                         # (B, N, Pp)
        mean = target.mean(dim=-1, keepdim=True)                           # (B, N, 1)
        std = (target.var(dim=-1, keepdim=True) + 1.0e-6) ** 0.5           # (B, N, 1)
        return pred * std + mean                                           # (B, N, Pp)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, mask_ratio: float | None = None, noise: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> dict:
        """Pictures for the masking viewer, all ``(B, C, H, W)`` in [0, 1]:

        ``masked`` (removed patches grey), ``reconstruction`` (the model's pixels everywhere),
        ``pasted`` (visible patches from the image, removed ones from the model, MAE's fig. 2),
        ``baseline`` (removed patches filled with the visible mean); plus ``mask`` (B, N) and the
        masked-patch errors ``mse`` and ``baseline_mse`` (per image, (B,)).
        """
        out = self.forward(images, mask_ratio, noise, generator)
        P, size = self.patch_size, tuple(images.shape[-2:])
        mask = out["mask"]
        pix = self.pixels(out["pred"], images)                             # (B, N, Pp)
        m = mask.unsqueeze(-1)                                             # (B, N, 1)
        target = patchify(images, P)                                       # (B, N, Pp)
        base = visible_mean_baseline(images, mask, P)                      # (B, N, Pp)
        per = ((pix - target) ** 2).mean(-1)                               # (B, N)
        per_base = ((base - target) ** 2).mean(-1)                         # (B, N)
        return {
            "masked": unpatchify(target * (1 - m) + 0.5 * m, P, size),
            "reconstruction": unpatchify(pix, P, size).clamp(0, 1),
            "pasted": unpatchify(target * (1 - m) + pix * m, P, size).clamp(0, 1),
            "baseline": unpatchify(target * (1 - m) + base * m, P, size),
            "mask": mask,
            "mse": (per * mask).sum(1) / mask.sum(1),
            "baseline_mse": (per_base * mask).sum(1) / mask.sum(1),
        }

    def features(self, images: torch.Tensor, pool: str = "mean") -> torch.Tensor:
        """Encoder features of *unmasked* images for probes: ``(B, D)``.

        ``pool``: "mean" (average of the final-normed patch tokens, the usual choice for MIM
        encoders) or "cls".
        """
        tokens = self.encoder.forward_features(self._check(images))       # (B, 1 + N, D)
        if pool == "mean":
            return tokens[:, 1:].mean(dim=1)                               # (B, D)
        if pool == "cls":
            return tokens[:, 0]                                            # (B, D)
        raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")

"""Chapter 8: image tokenizers, from VQ-VAE to VQ-GAN.

A tokenizer turns an image into a short grid of integers (codes) that a Transformer can
model like words, and turns the integers back into an image.

VQ-VAE (van den Oord et al., arXiv:1711.00937): an encoder maps the image to a grid of
vectors ``z_e``; each vector is replaced by its nearest entry of a learnt codebook
``e_1..e_K`` (eq. 1-2); a decoder maps the quantised grid back to pixels. The argmin has no
gradient, so the decoder's gradient is copied straight through to the encoder, and two
extra terms train the codebook and keep the encoder committed to it (eq. 3)::

    L = ||x - x̂||²  +  ||sg[z_e] - e||²  +  β ||z_e - sg[e]||²         (β = 0.25)

Fixes for codebook collapse (few codes used, the rest dead): the paper's EMA codebook
(appendix A.1: running cluster sizes and sums, decay γ = 0.99, with the Laplace smoothing of
DeepMind's Sonnet implementation) and Jukebox's restart of dead codes on encoder outputs of the
current batch (Dhariwal et al., arXiv:2005.00341, sec. 3.2).

VQ-GAN (Esser et al., "Taming Transformers", arXiv:2012.09841, sec. 3.1): the same tokenizer
trained with a perceptual loss and a patch-wise adversarial loss (a PatchGAN discriminator,
Isola et al., arXiv:1611.07004), whose weight λ is set adaptively from the gradient norms at
the decoder's last layer (eq. 7), with the discriminator switched on only after a start step.
The perceptual loss here uses a small network the course trains itself on ShapeWorld (no
download), compared LPIPS-style (Zhang et al., arXiv:1801.03924, eq. 1, unit weights).

Shape legend: B batch, C image channels, H W image height/width, h w latent grid,
D code width, K number of codes, M number of vectors quantised at once (M = B*h*w),
F feature channels of a network layer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vislab.validate import check_bool, check_finite, check_int, check_number

__all__ = [
    "VectorQuantizer", "perplexity", "codebook_usage", "code_counts", "bits_per_image",
    "VQVAEConfig", "VQGANConfig", "VQVAE_PRESETS", "Encoder", "Decoder", "VQVAE", "vqvae_loss",
    "PatchDiscriminator", "PerceptualNet", "perceptual_distance", "hinge_d_loss", "hinge_g_loss",
    "adaptive_weight", "disc_factor", "VQGAN", "psnr", "sharpness", "gradient_magnitude", "edge_agreement",
]


# ----------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------

def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _check_indices(indices, num_codes: int, name: str = "indices") -> torch.Tensor:
    if not isinstance(indices, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer code ids, got {type(indices).__name__}")
    if indices.dtype.is_floating_point or indices.dtype == torch.bool or indices.is_complex():
        raise TypeError(f"{name} must hold integer code ids (torch.long), got dtype {indices.dtype}; "
                        "use the indices a VectorQuantizer returns, or call .long()")
    if indices.numel() == 0:
        raise ValueError(f"{name} is empty: give at least one code id")
    lo, hi = int(indices.min()), int(indices.max())
    if lo < 0 or hi >= num_codes:
        raise ValueError(f"{name} must lie in 0..{num_codes - 1} (num_codes={num_codes}), "
                         f"found values in {lo}..{hi}")
    return indices


def _check_images(images, channels: int | None = None, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(images.shape)}; "
                         "add a batch dimension with .unsqueeze(0) for a single image")
    if not images.dtype.is_floating_point:
        raise TypeError(f"{name} must be floating point in [0, 1], got dtype {images.dtype}")
    if channels is not None and images.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels (B, C, H, W), got shape {tuple(images.shape)}")
    return images


# ----------------------------------------------------------------------------------------------
# The vector quantiser
# ----------------------------------------------------------------------------------------------

class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantisation with a straight-through gradient (VQ-VAE, eq. 1-3).

    ``forward(z)`` replaces every D-vector of ``z`` by its nearest codebook entry (squared
    Euclidean distance) and returns ``(z_q, indices, loss)``:

    * ``z_q`` has the shape of ``z``; its *value* is the code ``e_k`` but its *gradient* goes
      to ``z`` unchanged (straight-through: ``z_q = z + sg[e_k - z]``);
    * ``indices`` has shape ``z.shape[:-1]`` (long);
    * ``loss = mse(sg[z], e) + β · mse(z, sg[e])``: the codebook term pulls the codes towards
      the encoder outputs, the commitment term (weight β) pulls the encoder outputs towards
      their codes. With ``ema=True`` the codebook is not trained by gradient but by running
      averages (appendix A.1), so the codebook term is dropped and ``loss = β · mse(z, sg[e])``.

    Args:
        num_codes: K, the codebook size.
        dim: D, the width of each code (the last dimension of ``z``).
        beta: β, the commitment weight (the paper uses 0.25; results were robust from 0.1 to 2).
        ema: update the codebook with exponential moving averages instead of the codebook loss.
        decay: γ, the EMA decay (paper: 0.99).
        eps: ε of the Laplace smoothing of the EMA cluster sizes (Sonnet: 1e-5).
        restart_every: every this many training forward passes, codes used fewer than
            ``restart_threshold`` times since the last check are moved onto randomly chosen
            vectors of the current batch (dead-code restart); 0 switches restarts off.
        restart_threshold: the minimum number of uses per check window for a code to count as alive.
        seed: seed of the generator that chooses the restart vectors (no global random state).

    Attributes:
        codebook: ``nn.Embedding(K, D)``, initialised uniform in ``[-1/K, 1/K]`` as in the
            reference code (taming-transformers' ``VectorQuantizer2``). Trainable unless ``ema``.
        cluster_size, embed_sum: the EMA buffers ``N_i`` ``(K,)`` and ``m_i`` ``(K, D)``.
        window_counts: uses of each code since the last restart check ``(K,)``.
        restarts: total number of codes restarted so far (a scalar buffer).
    """

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25, *, ema: bool = False,
                 decay: float = 0.99, eps: float = 1e-5, restart_every: int = 0,
                 restart_threshold: float = 1.0, seed: int = 0):
        super().__init__()
        self.num_codes = _positive_int(num_codes, "num_codes")
        self.dim = _positive_int(dim, "dim")
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or beta < 0:
            raise ValueError(f"beta must be a non-negative number, got {beta!r}")
        if not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r} (the paper uses 0.99)")
        if not isinstance(eps, (int, float)) or eps <= 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        if isinstance(restart_every, bool) or not isinstance(restart_every, int) or restart_every < 0:
            raise ValueError(f"restart_every must be an int >= 0 (0 = no restarts), got {restart_every!r}")
        if not isinstance(restart_threshold, (int, float)) or restart_threshold <= 0:
            raise ValueError(f"restart_threshold must be positive, got {restart_threshold!r}")
        self.beta, self.ema, self.decay, self.eps = float(beta), bool(ema), float(decay), float(eps)
        self.restart_every, self.restart_threshold, self.seed = restart_every, float(restart_threshold), seed

        self.codebook = nn.Embedding(num_codes, dim)
        # taming-transformers' init: tiny codes around the origin. It is what makes collapse easy
        # to see: the few codes that happen to point along the encoder's outputs win every argmin.
        nn.init.uniform_(self.codebook.weight, -1.0 / num_codes, 1.0 / num_codes)
        if self.ema:
            self.codebook.weight.requires_grad_(False)
        # EMA state (appendix A.1). N_i starts at 1 and m_i at e_i, so that an unused code stays
        # where it is (Sonnet starts N_i at 0, which divides an unused code by ε and throws it far away).
        self.register_buffer("cluster_size", torch.ones(num_codes))                     # (K,)
        self.register_buffer("embed_sum", self.codebook.weight.detach().clone())        # (K, D)
        self.register_buffer("window_counts", torch.zeros(num_codes))                   # (K,)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))
        self._generator: torch.Generator | None = None

    def extra_repr(self) -> str:
        return (f"num_codes={self.num_codes}, dim={self.dim}, beta={self.beta}, ema={self.ema}, "
                f"decay={self.decay}, restart_every={self.restart_every}")

    # -- the three steps of eq. 1-3 --------------------------------------------------------------
    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared distances ``||z - e_k||² = ||z||² - 2 z·e_k + ||e_k||²`` ``(..., D)`` → ``(..., K)``."""
        z = self._check_z(z)
        e = self.codebook.weight                                            # (K, D)
        return (z.pow(2).sum(-1, keepdim=True)                              # (..., 1)
                - 2 * z @ e.t()                                             # (..., K)
                + e.pow(2).sum(-1))                                         # (K,) broadcast → (..., K)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes of ``indices`` ``(...)`` → ``(..., D)`` (what a decoder gets from generated ids)."""
        indices = _check_indices(indices, self.num_codes)
        return self.codebook(indices)                                       # (..., D)

    def forward(self, z: torch.Tensor):
        """Quantise ``z`` ``(..., D)``; returns ``(z_q (..., D), indices (...), loss ())``."""
        z = self._check_z(z)
        flat = z.reshape(-1, self.dim)                                      # (M, D)
        with torch.no_grad():
            indices = self.distances(flat.detach()).argmin(-1)              # (M,)
        e = self.codebook(indices)                                          # (M, D)

        commitment = F.mse_loss(flat, e.detach())                           # β-term: moves z
        if self.ema:
            loss = self.beta * commitment
        else:
            codebook_term = F.mse_loss(e, flat.detach())                    # moves the codes
            loss = codebook_term + self.beta * commitment

        z_q = flat + (e - flat).detach()                                    # (M, D) straight-through

        if self.training:
            with torch.no_grad():
                if self.ema:
                    self._ema_update(flat.detach(), indices)
                if self.restart_every:
                    self._restart_dead_codes(flat.detach(), indices)
        return z_q.reshape(z.shape), indices.reshape(z.shape[:-1]), loss

    # -- the fixes for collapse ------------------------------------------------------------------
    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        """VQ-VAE appendix A.1: N_i ← γN_i + (1-γ)n_i;  m_i ← γm_i + (1-γ)Σ_j z_j;  e_i = m_i / N_i.

        N_i is Laplace-smoothed before the division, ``N_i ← (N_i + ε) / (n + Kε) · n`` with
        ``n = Σ_i N_i``, so that no code is divided by zero.
        """
        K = self.num_codes
        counts = torch.bincount(indices, minlength=K).to(flat.dtype)                 # (K,) n_i
        sums = torch.zeros(K, self.dim, dtype=flat.dtype, device=flat.device)
        sums.index_add_(0, indices, flat)                                            # (K, D) Σ_j z_j
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + K * self.eps) * n           # (K,)
        self.codebook.weight.copy_(self.embed_sum / smoothed.unsqueeze(1))           # (K, D)

    def _get_generator(self) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(int(self.seed))
        return self._generator

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        """Jukebox's random restart: codes used < threshold times in the window → random batch vectors."""
        self.window_counts.add_(torch.bincount(indices, minlength=self.num_codes).to(self.window_counts.dtype))
        self.steps.add_(1)
        if int(self.steps) % self.restart_every:
            return
        dead = (self.window_counts < self.restart_threshold).nonzero().flatten()   # (n_dead,)
        self.window_counts.zero_()
        if dead.numel() == 0:
            return
        g = self._get_generator()
        M = flat.shape[0]
        if M >= dead.numel():
            pick = torch.randperm(M, generator=g)[:dead.numel()]
        else:
            pick = torch.randint(M, (dead.numel(),), generator=g)
        new = flat[pick.to(flat.device)]                                             # (n_dead, D)
        self.codebook.weight[dead] = new.to(self.codebook.weight.dtype)
        if self.ema:  # restart the running averages too, as if the code had been used once
            self.cluster_size[dead] = 1.0
            self.embed_sum[dead] = new.to(self.embed_sum.dtype)
        self.restarts.add_(dead.numel())

    def _check_z(self, z) -> torch.Tensor:
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"z must be a torch.Tensor of shape (..., D={self.dim}), got {type(z).__name__}")
        if not z.dtype.is_floating_point:
            raise TypeError(f"z must be floating point, got dtype {z.dtype}")
        if z.dim() == 0 or z.shape[-1] != self.dim:
            raise ValueError(f"z must have shape (..., D={self.dim}) with the code width last, got "
                             f"{tuple(z.shape)}; for conv features (B, D, h, w) use z.permute(0, 2, 3, 1)")
        if z.numel() == 0:
            raise ValueError("z is empty: give at least one vector")
        return z


# ----------------------------------------------------------------------------------------------
# Codebook statistics
# ----------------------------------------------------------------------------------------------

def code_counts(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """How often each code occurs in ``indices`` (any shape): ``(K,)`` long."""
    num_codes = _positive_int(num_codes, "num_codes")
    indices = _check_indices(indices, num_codes)
    return torch.bincount(indices.reshape(-1).long().cpu(), minlength=num_codes)   # (K,)


def perplexity(indices: torch.Tensor, num_codes: int) -> float:
    """exp of the entropy of the code histogram: ``exp(-Σ_k p_k log p_k)``, 0 log 0 = 0.

    It reads as "the number of equally used codes that would give this entropy": 1 when every
    vector maps to one code, K when all K codes are used equally often.
    """
    counts = code_counts(indices, num_codes).double()                               # (K,)
    p = counts / counts.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def codebook_usage(indices: torch.Tensor, num_codes: int) -> float:
    """The fraction of the K codes that occur at least once in ``indices``."""
    counts = code_counts(indices, num_codes)
    return float((counts > 0).sum()) / num_codes


def bits_per_image(grid, num_codes: int) -> float:
    """Bits to store one image's codes without entropy coding: ``h · w · log2 K``."""
    num_codes = _positive_int(num_codes, "num_codes")
    if isinstance(grid, int) and not isinstance(grid, bool):
        grid = (grid, grid)
    if not isinstance(grid, (tuple, list)) or len(grid) != 2:
        raise TypeError(f"grid must be an int or an (h, w) pair, got {grid!r}")
    h, w = (_positive_int(g, "grid side") for g in grid)
    return h * w * math.log2(num_codes)


# ----------------------------------------------------------------------------------------------
# VQ-VAE
# ----------------------------------------------------------------------------------------------

def _check_vq_config(c) -> None:
    """The training numbers: weights, decay and thresholds finite and in range, switches bools."""
    check_int("image_size", c.image_size, 1, 4096)
    check_number("beta", c.beta, 0.0)
    check_number("decay", c.decay, 0.0, 1.0, strict_max=True)
    check_int("restart_every", c.restart_every, minimum=0)
    check_number("restart_threshold", c.restart_threshold, 0.0, strict_min=True)
    check_int("seed", c.seed)
    check_bool("ema", c.ema)
    check_bool("quantize", c.quantize)
    if hasattr(c, "disc_weight"):                                    # VQGANConfig's fields
        check_int("disc_channels", c.disc_channels, minimum=1)
        check_int("disc_layers", c.disc_layers, minimum=1)
        check_int("disc_start", c.disc_start, minimum=0)
        check_number("disc_weight", c.disc_weight, 0.0)
        check_number("perceptual_weight", c.perceptual_weight, 0.0)
        check_int("perceptual_outputs", c.perceptual_outputs, minimum=1)
        if not c.perceptual_widths or not isinstance(c.perceptual_widths, (tuple, list)):
            raise ValueError(f"perceptual_widths must be a non-empty tuple of channel counts, got {c.perceptual_widths!r}")
        for w in c.perceptual_widths:
            check_int("each of perceptual_widths", w, minimum=1)


@dataclass(frozen=True)
class VQVAEConfig:
    """A VQ-VAE: ``downsample`` stride-2 convolutions make a grid ``image_size / 2**downsample``.

    The paper's ImageNet model (sec. 4.2): 128×128×3 images → a 32×32 grid of codes with
    K = 512; encoder = 2 strided 4×4 convolutions + 2 residual blocks, 256 hidden units.
    """

    image_size: int = 32
    in_channels: int = 3
    hidden: int = 64             # channels of the conv stacks
    res_blocks: int = 2          # residual blocks (ReLU, 3x3 conv, ReLU, 1x1 conv) per stack
    downsample: int = 2          # stride-2 convs: the grid side is image_size / 2**downsample
    dim: int = 32                # D, code width
    num_codes: int = 512         # K
    beta: float = 0.25
    ema: bool = True
    decay: float = 0.99
    restart_every: int = 0       # 0: no dead-code restarts
    restart_threshold: float = 1.0
    seed: int = 0                # seed of the restart generator
    quantize: bool = True        # False: a plain autoencoder with the same layers (the continuous baseline)

    def __post_init__(self):
        for name in ("image_size", "in_channels", "hidden", "dim", "num_codes"):
            _positive_int(getattr(self, name), name)
        if isinstance(self.res_blocks, bool) or not isinstance(self.res_blocks, int) or self.res_blocks < 0:
            raise ValueError(f"res_blocks must be an int >= 0, got {self.res_blocks!r}")
        _positive_int(self.downsample, "downsample")
        if self.image_size % (2 ** self.downsample):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2**downsample = "
                             f"{2 ** self.downsample}")
        _check_vq_config(self)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the code grid."""
        s = self.image_size // 2 ** self.downsample
        return (s, s)

    @property
    def tokens_per_image(self) -> int:
        return self.grid[0] * self.grid[1]

    def to_dict(self) -> dict:
        return asdict(self)


VQVAE_PRESETS = {
    # The paper's ImageNet tokenizer (sec. 4.2). D is not given in the paper; 64 is the value of
    # DeepMind's Sonnet example notebook.
    "VQ-VAE/ImageNet-128": VQVAEConfig(image_size=128, hidden=256, res_blocks=2, downsample=2, dim=64,
                                       num_codes=512, ema=False),
    # The course's ShapeWorld tokenizer: 32×32 → 8×8 codes.
    "shapes": VQVAEConfig(),
}


class ResBlock(nn.Module):
    """VQ-VAE's residual block: x + conv1x1(ReLU(conv3x3(ReLU(x))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))              # (B, F, h, w)


class Encoder(nn.Module):
    """``(B, C, H, W)`` → ``(B, D, h, w)``: strided 4×4 convs, residual blocks, a 1×1 conv to D."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        layers, ch = [], cfg.in_channels
        for _ in range(cfg.downsample):
            layers += [nn.Conv2d(ch, cfg.hidden, 4, stride=2, padding=1), nn.ReLU()]   # halves H, W
            ch = cfg.hidden
        layers += [nn.Conv2d(ch, cfg.hidden, 3, padding=1)]
        layers += [ResBlock(cfg.hidden) for _ in range(cfg.res_blocks)]
        layers += [nn.ReLU(), nn.Conv2d(cfg.hidden, cfg.dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)                                                   # (B, D, h, w)


class Decoder(nn.Module):
    """``(B, D, h, w)`` → ``(B, C, H, W)``: a 3×3 conv, residual blocks, transposed 4×4 convs."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        layers = [nn.Conv2d(cfg.dim, cfg.hidden, 3, padding=1)]
        layers += [ResBlock(cfg.hidden) for _ in range(cfg.res_blocks)]
        layers += [nn.ReLU()]
        for i in range(cfg.downsample):
            last = i == cfg.downsample - 1
            out = cfg.in_channels if last else cfg.hidden
            layers += [nn.ConvTranspose2d(cfg.hidden, out, 4, stride=2, padding=1)]    # doubles H, W
            if not last:
                layers += [nn.ReLU()]
        self.net = nn.Sequential(*layers)

    @property
    def last_layer(self) -> torch.Tensor:
        """The weight of the final layer, where VQ-GAN's adaptive weight compares gradients."""
        return self.net[-1].weight

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.net(z_q)                                                 # (B, C, H, W)


class VQVAE(nn.Module):
    """Encoder → :class:`VectorQuantizer` → Decoder.

    ``forward(images)`` returns a dict: ``recon`` ``(B, C, H, W)``, ``indices`` ``(B, h, w)``,
    ``vq_loss`` ``()``, ``z_e`` and ``z_q`` ``(B, D, h, w)``.
    """

    def __init__(self, config: VQVAEConfig | None = None):
        super().__init__()
        cfg = VQVAEConfig() if config is None else config
        if not isinstance(cfg, VQVAEConfig):
            raise TypeError(f"config must be a VQVAEConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = VectorQuantizer(cfg.num_codes, cfg.dim, cfg.beta, ema=cfg.ema, decay=cfg.decay,
                                         restart_every=cfg.restart_every,
                                         restart_threshold=cfg.restart_threshold, seed=cfg.seed)
        self.decoder = Decoder(cfg)

    @property
    def num_codes(self) -> int:
        return self.config.num_codes

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → continuous latents ``z_e`` ``(B, D, h, w)``."""
        images = _check_images(images, self.config.in_channels)
        H, W = images.shape[-2:]
        f = 2 ** self.config.downsample
        if H % f or W % f:
            raise ValueError(f"image size {H}x{W} must be divisible by {f} (2**downsample)")
        return self.encoder(images)                                          # (B, D, h, w)

    def quantize(self, z_e: torch.Tensor):
        """``z_e`` ``(B, D, h, w)`` → ``(z_q (B, D, h, w), indices (B, h, w), vq_loss)``.

        With ``config.quantize=False`` (the continuous baseline) ``z_e`` passes unchanged,
        ``indices`` is None and the loss is 0.
        """
        if not self.config.quantize:
            return z_e, None, z_e.new_zeros(())
        z = z_e.permute(0, 2, 3, 1)                                          # (B, h, w, D)
        z_q, indices, loss = self.quantizer(z)                               # (B, h, w, D), (B, h, w)
        return z_q.permute(0, 3, 1, 2), indices, loss                        # (B, D, h, w)

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantised latents ``(B, D, h, w)`` → images ``(B, C, H, W)``."""
        return self.decoder(z_q)                                             # (B, C, H, W)

    @torch.no_grad()
    def tokenize(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` → code ids ``(B, h, w)`` (no training side effects)."""
        if not self.config.quantize:
            raise ValueError("this model has no codebook (config.quantize=False): it cannot tokenize")
        was = self.training
        self.eval()
        try:
            _, indices, _ = self.quantize(self.encode(images))
        finally:
            self.train(was)
        return indices                                                       # (B, h, w)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code ids ``(B, h, w)`` → images ``(B, C, H, W)``."""
        if not isinstance(indices, torch.Tensor) or indices.dim() != 3:
            raise ValueError("indices must be a (B, h, w) tensor of code ids, got "
                             f"{tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices).__name__}")
        z_q = self.quantizer.lookup(indices).permute(0, 3, 1, 2)             # (B, D, h, w)
        return self.decode(z_q)                                              # (B, C, H, W)

    def forward(self, images: torch.Tensor) -> dict:
        z_e = self.encode(images)                                            # (B, D, h, w)
        z_q, indices, vq_loss = self.quantize(z_e)                           # (B, D, h, w), (B, h, w)
        recon = self.decode(z_q)                                             # (B, C, H, W)
        return {"recon": recon, "indices": indices, "vq_loss": vq_loss, "z_e": z_e, "z_q": z_q}


def vqvae_loss(model: VQVAE, images: torch.Tensor):
    """VQ-VAE's eq. 3 with a Gaussian decoder: ``mse(x, x̂) + vq_loss``; returns ``(loss, metrics)``.

    The shape matches ``vislab.train.fit``'s ``loss_fn(model, batch)``; ``images`` ``(B, C, H, W)``.
    """
    out = model(images)
    rec = F.mse_loss(out["recon"], images)
    loss = rec + out["vq_loss"]
    metrics = {"rec": rec.item(), "vq": out["vq_loss"].item()}
    if out["indices"] is not None:
        metrics["usage"] = codebook_usage(out["indices"], model.num_codes)
        metrics["perplexity"] = perplexity(out["indices"], model.num_codes)
    return loss, metrics


# ----------------------------------------------------------------------------------------------
# VQ-GAN parts
# ----------------------------------------------------------------------------------------------

class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix's ``NLayerDiscriminator``, as taming-transformers uses it).

    4×4 convolutions: one stride-2 conv with LeakyReLU(0.2), ``n_layers - 1`` more stride-2
    convs with BatchNorm, one stride-1 conv with BatchNorm, then a stride-1 conv to one channel.
    Each output logit judges one overlapping patch of the input, real (> 0) or fake (< 0).

    Args:
        in_channels: C. channels: width of the first layer (doubled per layer, at most 8×).
        n_layers: number of stride-2 convolutions (taming: 3 for 256 px; 2 suits 32 px).
    """

    def __init__(self, in_channels: int = 3, channels: int = 32, n_layers: int = 2):
        super().__init__()
        _positive_int(n_layers, "n_layers")
        layers = [nn.Conv2d(in_channels, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            layers += [nn.Conv2d(channels * prev, channels * mult, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(channels * mult), nn.LeakyReLU(0.2)]
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [nn.Conv2d(channels * prev, channels * mult, 4, stride=1, padding=1, bias=False),
                   nn.BatchNorm2d(channels * mult), nn.LeakyReLU(0.2),
                   nn.Conv2d(channels * mult, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)
        # pix2pix / taming init: conv weights N(0, 0.02), BatchNorm scale N(1, 0.02), shift 0.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → patch logits ``(B, 1, h', w')``."""
        return self.net(images)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: ``½ (mean relu(1 - D(x)) + mean relu(1 + D(x̂)))``."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge GAN: ``-mean D(x̂)``."""
    return -logits_fake.mean()


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    delta: float = 1e-4, max_weight: float = 1e4) -> torch.Tensor:
    """VQ-GAN's eq. 7: ``λ = ||∇_GL L_rec|| / (||∇_GL L_GAN|| + δ)``, GL the decoder's last layer.

    It scales the adversarial gradient to the size of the reconstruction gradient at the
    layer they share, so neither drowns the other. The paper writes δ = 1e-6; the reference
    code uses 1e-4 and clamps λ to [0, 1e4]. Returned detached (λ is a weight, not a path).
    """
    if not last_layer.requires_grad:
        raise ValueError("last_layer must require grad (it is the decoder's last weight)")
    check_number("delta", delta, 0.0)                                 # 0 is allowed (the paper's formula without it)
    check_number("max_weight", max_weight, 0.0, strict_min=True)
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    lam = g_rec.norm() / (g_gan.norm() + delta)
    return lam.clamp(0.0, max_weight).detach()


def disc_factor(step: int, disc_start: int) -> float:
    """The discriminator's switch: 0 before ``disc_start`` steps, 1 from then on."""
    return 0.0 if step < disc_start else 1.0


class PerceptualNet(nn.Module):
    """A small ConvNet classifier whose features define the perceptual distance.

    LPIPS uses an ImageNet VGG; the course cannot download one, so it trains this net on
    ShapeWorld labels (shape, colour, size, position) and freezes it. Three stages of
    ``conv3x3-ReLU-conv3x3-ReLU`` with 2× pooling between them; ``features`` returns the
    output of each stage.
    """

    def __init__(self, in_channels: int = 3, widths: tuple = (32, 64, 96), num_outputs: int = 27):
        super().__init__()
        self.widths, self.num_outputs = tuple(widths), _positive_int(num_outputs, "num_outputs")
        stages, ch = [], in_channels
        for w in self.widths:
            stages.append(nn.Sequential(nn.Conv2d(ch, w, 3, padding=1), nn.ReLU(),
                                        nn.Conv2d(w, w, 3, padding=1), nn.ReLU()))
            ch = w
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(ch, self.num_outputs)

    def features(self, images: torch.Tensor) -> list:
        """Per-stage features: ``[(B, F_1, H, W), (B, F_2, H/2, W/2), ...]``."""
        x, feats = images, []
        for i, stage in enumerate(self.stages):
            if i:
                x = F.avg_pool2d(x, 2)                                       # (B, F, H/2, W/2)
            x = stage(x)                                                     # (B, F_i, ., .)
            feats.append(x)
        return feats

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` → logits ``(B, num_outputs)`` (the recipe splits them per label)."""
        x = self.features(images)[-1].mean(dim=(2, 3))                       # (B, F_last)
        return self.head(x)                                                  # (B, num_outputs)


def perceptual_distance(net: PerceptualNet, x: torch.Tensor, y: torch.Tensor,
                        reduction: str = "mean") -> torch.Tensor:
    """LPIPS eq. 1 with unit weights: ``Σ_l mean_hw ||f̂_l(x) - f̂_l(y)||²``, f̂ unit-normalised over F.

    Returns a scalar (``reduction="mean"``) or one distance per image (``"none"``, ``(B,)``).
    """
    x, y = _check_images(x, name="x"), _check_images(y, name="y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    d = x.new_zeros(x.shape[0])
    for fx, fy in zip(net.features(x), net.features(y)):
        fx = fx / (fx.norm(dim=1, keepdim=True) + 1e-10)                     # (B, F, h, w)
        fy = fy / (fy.norm(dim=1, keepdim=True) + 1e-10)
        d = d + (fx - fy).pow(2).sum(1).mean(dim=(1, 2))                     # (B,)
    return d.mean() if reduction == "mean" else d


@dataclass(frozen=True)
class VQGANConfig(VQVAEConfig):
    """A VQ-VAE plus the VQ-GAN training parts.

    ``disc_start``: the step at which the adversarial loss switches on (taming: after the
    reconstructions are reasonable). ``disc_weight`` multiplies the adaptive λ.
    """

    disc_channels: int = 32
    disc_layers: int = 2
    disc_start: int = 500
    disc_weight: float = 0.5
    perceptual_weight: float = 1.0
    perceptual_widths: tuple = (32, 64, 96)
    perceptual_outputs: int = 27     # 7 shapes + 8 colours + 3 sizes + 9 positions


class VQGAN(VQVAE):
    """A :class:`VQVAE` with a :class:`PatchDiscriminator` and a frozen :class:`PerceptualNet`.

    Training alternates two losses (taming-transformers' ``VQLPIPSWithDiscriminator``):

    * :meth:`generator_loss`: ``|x - x̂|₁ + w_p · d_perc(x, x̂) + vq_loss + λ · f(step) · (-mean D(x̂))``,
      λ from :func:`adaptive_weight`, f the :func:`disc_factor` switch;
    * :meth:`discriminator_loss`: ``f(step) · hinge_d_loss(D(x), D(sg[x̂]))``.
    """

    def __init__(self, config: VQGANConfig | None = None):
        cfg = VQGANConfig() if config is None else config
        if not isinstance(cfg, VQGANConfig):
            raise TypeError(f"config must be a VQGANConfig, got {type(cfg).__name__}")
        super().__init__(cfg)
        self.discriminator = PatchDiscriminator(cfg.in_channels, cfg.disc_channels, cfg.disc_layers)
        self.perceptual = PerceptualNet(cfg.in_channels, cfg.perceptual_widths, cfg.perceptual_outputs)
        self.perceptual.requires_grad_(False)

    def generator_parameters(self):
        """Encoder, quantiser and decoder parameters (what the generator optimiser trains)."""
        for part in (self.encoder, self.quantizer, self.decoder):
            yield from (p for p in part.parameters() if p.requires_grad)

    def generator_loss(self, images: torch.Tensor, step: int):
        """Returns ``(loss, out, metrics)``; ``out`` is the forward dict (reuse its ``recon``)."""
        cfg = self.config
        out = self(images)
        recon = out["recon"]
        l1 = (images - recon).abs().mean()
        p_loss = perceptual_distance(self.perceptual, images, recon) if cfg.perceptual_weight > 0 \
            else images.new_zeros(())
        rec_loss = l1 + cfg.perceptual_weight * p_loss
        factor = disc_factor(step, cfg.disc_start)
        if factor > 0:
            g_loss = hinge_g_loss(self.discriminator(recon))
            lam = adaptive_weight(rec_loss, g_loss, self.decoder.last_layer) * cfg.disc_weight
        else:
            g_loss, lam = images.new_zeros(()), images.new_zeros(())
        loss = rec_loss + out["vq_loss"] + lam * factor * g_loss
        metrics = {"l1": l1.item(), "perceptual": p_loss.item(), "vq": out["vq_loss"].item(),
                   "g_loss": g_loss.item(), "lambda": lam.item()}
        return loss, out, metrics

    def discriminator_loss(self, images: torch.Tensor, recon: torch.Tensor, step: int):
        """``f(step) · hinge_d_loss``; returns ``(loss, metrics)``. ``recon`` is detached here."""
        logits_real = self.discriminator(images)
        logits_fake = self.discriminator(recon.detach())
        loss = disc_factor(step, self.config.disc_start) * hinge_d_loss(logits_real, logits_fake)
        return loss, {"d_loss": loss.item(), "logits_real": logits_real.mean().item(),
                      "logits_fake": logits_fake.mean().item()}


# ----------------------------------------------------------------------------------------------
# Measures of reconstruction quality
# ----------------------------------------------------------------------------------------------

def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]: ``10 log10(1 / mse)``."""
    x, y = _check_images(x, name="x"), _check_images(y, name="y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    check_finite("x", x)
    check_finite("y", y)
    mse = F.mse_loss(x.clamp(0, 1), y.clamp(0, 1)).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """Mean squared image gradient (finite differences), one value per image ``(B,)``.

    Blurry reconstructions have less of it than their originals; the ratio
    ``sharpness(recon) / sharpness(original)`` says how much edge energy survived.
    """
    images = _check_images(images)
    dx = images[..., :, 1:] - images[..., :, :-1]                            # (B, C, H, W-1)
    dy = images[..., 1:, :] - images[..., :-1, :]                            # (B, C, H-1, W)
    return dx.pow(2).mean(dim=(1, 2, 3)) + dy.pow(2).mean(dim=(1, 2, 3))     # (B,)


def gradient_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Per-pixel edge strength ``(B, H-1, W-1)``: ``sqrt(Σ_c dx_c² + dy_c²)`` (forward differences)."""
    images = _check_images(images)
    dx = images[..., :-1, 1:] - images[..., :-1, :-1]                       # (B, C, H-1, W-1)
    dy = images[..., 1:, :-1] - images[..., :-1, :-1]                       # (B, C, H-1, W-1)
    return (dx.pow(2) + dy.pow(2)).sum(1).sqrt()                             # (B, H-1, W-1)


def edge_agreement(recon: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the two gradient-magnitude maps, one value per image ``(B,)``.

    1 when the reconstruction has its edges exactly where the original has them, in the same
    proportions. Unlike :func:`sharpness`, noise cannot win it: speckle adds edge strength where
    the original has none, which lowers the correlation, and blur spreads and weakens the edges,
    which lowers it too.
    """
    recon, original = _check_images(recon, name="recon"), _check_images(original, name="original")
    if recon.shape != original.shape:
        raise ValueError(f"recon and original must have the same shape, got {tuple(recon.shape)} "
                         f"and {tuple(original.shape)}")
    a = gradient_magnitude(recon).flatten(1)                                 # (B, P)
    b = gradient_magnitude(original).flatten(1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)   # (B,)

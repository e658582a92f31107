"""Chapter 6, part 2: EVA, masked prediction of CLIP features, then CLIP alignment from it.

EVA (Fang et al., "EVA: Exploring the Limits of Masked Visual Representation Learning at
Scale", arXiv:2211.07636, sec. 2.1) keeps MAE's idea, masking, but changes the target:

    1. about 40% of the patches, in blocks (BEiT's block-wise masking, Bao et al.
       arXiv:2106.08254, algorithm 1), are replaced by one learned ``mask_token``; the
       student, a plain ViT, sees the whole sequence (masked and visible tokens);
    2. a frozen CLIP image tower sees the *intact* image; its per-patch output, projected
       into CLIP's image-text space, is the target t_i ("image-text aligned vision features");
    3. a linear head maps the student's output h_i to the teacher's width, and the loss is
       the negative cosine similarity on the masked positions M:

        L = - 1/|M| sum_{i in M} cos(W h_i, t_i)

   So the student learns, from pixels alone, to predict what a caption-trained model "sees"
   in the part of the image it cannot see: high-level targets instead of pixels.

EVA-CLIP (Sun et al., arXiv:2303.15389) then initialises a CLIP's image tower from EVA and
trains image-text contrastively (:func:`vislab.clip.clip_loss`). :func:`clip_from_encoder`
builds that model from any pretrained vislab ViT (EVA's, MAE's, or none for the scratch
baseline).

Shape legend: B batch, C channels, H W image size, P patch, gh gw patch grid, N = gh*gw
patches, D student width, Dt teacher feature width (CLIP's E), E CLIP embedding width.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vislab.clip import CLIP, CLIPConfig, TextConfig
from vislab.mae import set_sincos_pos_embed
from vislab.validate import check_elements, check_int, check_number, check_tensor
from vislab.vit import ViT, ViTConfig

__all__ = ["block_masking", "EVAConfig", "EVA", "negative_cosine_loss", "clip_patch_targets",
           "resample_patch_features", "clip_from_encoder", "copy_encoder"]


# ---------------------------------------------------------------------------------------------
# Block-wise masking (BEiT, algorithm 1; EVA's ``MaskingGenerator``).
# ---------------------------------------------------------------------------------------------

def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi], both ends included (Python's ``random.randint``)."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


def _check_block_masking(batch, gh, gw, mask_ratio, generator, min_block) -> None:
    check_int("grid height", gh, minimum=1)
    check_int("grid width", gw, minimum=1)
    check_number("mask_ratio", mask_ratio)
    check_int("min_block", min_block, minimum=1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    check_elements(f"{batch} masks of {gh}x{gw} patches", batch * gh * gw)
    if batch > 1_000_000:
        raise ValueError(f"batch={batch:,} masks are drawn one image at a time in Python (minutes); "
                         "ask for fewer than 1,000,000")


def block_masking(batch: int, grid, mask_ratio: float = 0.4, generator: torch.Generator | None = None,
                  min_block: int = 4, min_aspect: float = 0.3) -> torch.Tensor:
    """BEiT's block-wise masking, as EVA uses it: rectangles of patches until ~``ratio`` is masked.

    Per image, repeat: draw a target area s ~ U(min_block, patches still to mask) and an
    aspect ratio r with log r ~ U(log 0.3, log 1/0.3); the block is round(sqrt(s r)) rows by
    round(sqrt(s / r)) columns at a random place; accept it if it adds at least one new patch
    and no more than are still wanted (10 tries per block). Stop at ``round(N * ratio)``
    masked patches or when no block fits.

    Args:
        batch: B.  grid: ``(gh, gw)`` or an int.  mask_ratio: in (0, 1); EVA: 0.4.
        generator: for reproducible masks.
        min_block: the smallest block area in patches (EVA's generator: 4; on a 16x16 grid its
            script uses 16, the same 1/16 of the image as 4 on the course's 8x8 grid).
        min_aspect: the most elongated block (and its inverse).
    Returns:
        ``(B, N)`` bool, True = masked, in row-major patch order.
    """
    gh, gw = (grid, grid) if isinstance(grid, int) else tuple(grid)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in (0, 1) (EVA masks 0.4), got {mask_ratio!r}")
    if not 0 < min_aspect <= 1:
        raise ValueError(f"min_aspect must be in (0, 1], got {min_aspect}")
    _check_block_masking(batch, gh, gw, mask_ratio, generator, min_block)
    g = generator if generator is not None else torch.Generator().manual_seed(int(torch.randint(2**31, ())))
    target = int(round(gh * gw * mask_ratio))
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    out = torch.zeros(batch, gh, gw, dtype=torch.bool)
    for b in range(batch):
        mask = out[b]
        count = 0
        while count < target:
            budget = target - count
            delta = 0
            for _ in range(10):
                area = _uniform(g, min_block, budget)
                aspect = math.exp(_uniform(g, *log_aspect))
                h = int(round(math.sqrt(area * aspect)))
                w = int(round(math.sqrt(area / aspect)))
                if 0 < h < gh and 0 < w < gw:
                    top, left = _randint(g, 0, gh - h), _randint(g, 0, gw - w)
                    new = h * w - int(mask[top:top + h, left:left + w].sum())
                    if 0 < new <= budget:
                        mask[top:top + h, left:left + w] = True
                        delta = new
                        break
            if delta == 0:
                break
            count += delta
    return out.reshape(batch, gh * gw)


# ---------------------------------------------------------------------------------------------
# Teacher targets.
# ---------------------------------------------------------------------------------------------

def resample_patch_features(features: torch.Tensor, from_grid, to_grid) -> torch.Tensor:
    """Bilinearly resample per-patch features ``(B, gh*gw, Dt)`` to another grid
    ``(B, gh'*gw', Dt)`` (when teacher and student cut the image differently)."""
    check_tensor("features", features, ndim=3, floating=True)
    from_grid, to_grid = tuple(from_grid), tuple(to_grid)
    for name, g in (("from_grid", from_grid), ("to_grid", to_grid)):
        if len(g) != 2:
            raise ValueError(f"{name} must be a (gh, gw) pair, got {g}")
        check_int(f"{name} height", g[0], minimum=1)
        check_int(f"{name} width", g[1], minimum=1)
    check_elements(f"features on a {to_grid} grid", features.shape[0] * features.shape[2] * to_grid[0] * to_grid[1])
    if from_grid == to_grid:
        return features
    B, N, Dt = features.shape
    if N != from_grid[0] * from_grid[1]:
        raise ValueError(f"{N} feature rows do not form a {from_grid} grid")
    x = features.transpose(1, 2).reshape(B, Dt, *from_grid)                     # (B, Dt, gh, gw)
    x = F.interpolate(x, size=to_grid, mode="bilinear", align_corners=False)    # (B, Dt, gh', gw')
    return x.flatten(2).transpose(1, 2)                                         # (B, N', Dt)


@torch.no_grad()
def clip_patch_targets(clip: CLIP, images: torch.Tensor, grid=None) -> torch.Tensor:
    """EVA's targets from a CLIP teacher: every patch token of the image tower, final-normed and
    projected into the image-text space (the teacher's ``visual.output_dim`` in EVA's code).

    Args:
        clip: a (frozen) :class:`~vislab.clip.CLIP`.
        images: ``(B, C, H, W)`` in [0, 1]; resized to the teacher's training size if different.
        grid: the student's ``(gh, gw)``; the teacher's map is resampled to it if it differs.
    Returns:
        ``(B, N, E)`` unnormalised targets (the loss normalises them).
    """
    if not isinstance(clip, CLIP):
        raise TypeError(f"the teacher must be a vislab CLIP, got {type(clip).__name__}")
    vis = clip.visual
    size = vis.config.image_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) != size:
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    tokens = vis.forward_features(images)                                       # (B, T, D_t)
    patches = vis.split_tokens(tokens)["patches"]                               # (B, N_t, D_t)
    targets = clip.visual_projection(patches)                                   # (B, N_t, E)
    if grid is not None:
        targets = resample_patch_features(targets, vis.config.grid, grid)       # (B, N, E)
    return targets


# ---------------------------------------------------------------------------------------------
# The loss.
# ---------------------------------------------------------------------------------------------

def negative_cosine_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """EVA's loss: minus the cosine similarity of prediction and target, averaged over masked patches.

        L = - sum_i m_i cos(p_i, t_i) / sum_i m_i          (in [-1, 1]; -1 is perfect)

    Args:
        pred: ``(B, N, Dt)``.  target: ``(B, N, Dt)``.  mask: ``(B, N)``, nonzero = masked.
    Returns:
        scalar tensor.
    """
    check_tensor("pred", pred, ndim=3, floating=True)
    check_tensor("target", target, ndim=3, floating=True)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same "
                         "shape (B, N, Dt): is the head's width the teacher's?")
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(pred.shape[:2]):
        raise ValueError(f"mask must be (B, N) = {tuple(pred.shape[:2])}")
    m = mask.float()
    if not (m > 0).any():
        raise ValueError("the mask selects no patch: EVA's loss is defined on masked patches only")
    cos = F.cosine_similarity(pred.float(), target.float(), dim=-1)             # (B, N)
    return -(cos * m).sum() / m.sum()


# ---------------------------------------------------------------------------------------------
# The model.
# ---------------------------------------------------------------------------------------------

def _default_encoder() -> ViTConfig:
    return ViTConfig(image_size=32, patch_size=4, dim=64, depth=4, heads=4)


@dataclass(frozen=True)
class EVAConfig:
    """EVA's student: a plain ViT with a ``mask_token`` and a linear head to the teacher's width.

    Args:
        encoder: the student ViT (``use_mask_token`` is switched on here); its learned-table slot
            is filled with fixed sin-cos, as for MAE, so both start from the same encoder.
        teacher_dim: Dt, the width of the teacher's features (CLIP's E).
        mask_ratio: fraction masked (EVA: 0.4).
        min_block: smallest block area for :func:`block_masking`.
    """

    encoder: ViTConfig = field(default_factory=_default_encoder)
    teacher_dim: int = 64
    mask_ratio: float = 0.4
    min_block: int = 4

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            object.__setattr__(self, "encoder", ViTConfig.from_dict(self.encoder))
        e = self.encoder
        if not isinstance(e, ViTConfig):
            raise TypeError(f"encoder must be a ViTConfig, got {type(e).__name__}")
        if not e.class_token or e.num_registers or e.num_classes or e.pos_embed != "learned":
            raise ValueError("EVA's student must be a plain ViT: class_token=True, num_registers=0, "
                             "num_classes=0, pos_embed='learned'")
        if not e.use_mask_token:
            object.__setattr__(self, "encoder", e.replace(use_mask_token=True))
        if isinstance(self.teacher_dim, bool) or not isinstance(self.teacher_dim, int) or self.teacher_dim < 1:
            raise ValueError(f"teacher_dim must be a positive int, got {self.teacher_dim!r}")
        if not 0 < self.mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        check_int("EVAConfig.min_block", self.min_block, minimum=1)

    def replace(self, **changes) -> "EVAConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["encoder"] = self.encoder.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EVAConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown EVAConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)


class EVA(nn.Module):
    """EVA's masked-feature-prediction student (arXiv:2211.07636, sec. 2.1).

    ``encoder``: a :class:`~vislab.vit.ViT` with ``mask_token``; ``head``: Linear D → Dt.
    The teacher is *not* a submodule: its features are passed in (:func:`clip_patch_targets`),
    so a checkpoint of EVA holds the student only.
    """

    def __init__(self, config: EVAConfig):
        super().__init__()
        if not isinstance(config, EVAConfig):
            raise TypeError(f"EVA expects an EVAConfig, got {type(config).__name__}")
        self.config = c = config
        self.encoder = ViT(c.encoder)
        set_sincos_pos_embed(self.encoder, trainable=False)
        self.head = nn.Linear(c.encoder.dim, c.teacher_dim)
        nn.init.xavier_uniform_(self.head.weight)       # as every Linear in ViT.reset_parameters
        nn.init.zeros_(self.head.bias)
        with torch.no_grad():                           # BEiT/EVA: mask token trunc_normal(0.02)
            nn.init.trunc_normal_(self.encoder.mask_token, std=0.02)

    def sample_mask(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A block-wise mask ``(B, N)`` (bool) for this student's grid."""
        c = self.config
        return block_masking(batch, c.encoder.grid, c.mask_ratio, generator=generator, min_block=c.min_block)

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted teacher features at every patch: ``(B, N, Dt)``.

        Args:
            images: ``(B, C, H, W)``.
            mask: ``(B, N)`` bool, True where the patch is replaced by ``mask_token``.
        """
        x, grid = self.encoder.embed(images, mask=None if mask is None else mask.bool())   # (B, 1 + N, D)
        x, _, _ = self.encoder.encode(x, grid)                          # (B, 1 + N, D)
        return self.head(x[:, 1:])                                      # (B, N, Dt)

    def loss(self, images: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:func:`negative_cosine_loss` of the masked student's predictions against ``targets``."""
        return negative_cosine_loss(self(images, mask), targets, mask)

    def features(self, images: torch.Tensor, pool: str = "mean") -> torch.Tensor:
        """Encoder features of unmasked images for probes: ``(B, D)`` (mean of patch tokens, or CLS)."""
        tokens = self.encoder.forward_features(images)                 # (B, 1 + N, D)
        if pool == "mean":
            return tokens[:, 1:].mean(dim=1)                            # (B, D)
        if pool == "cls":
            return tokens[:, 0]                                         # (B, D)
        raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")


# ---------------------------------------------------------------------------------------------
# Stage 2: CLIP from a pretrained image tower.
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def copy_encoder(source: ViT, target: ViT, trainable_pos: bool = True) -> ViT:
    """Copy every tensor of ``source`` that ``target`` has (same names and shapes) into ``target``.

    A ``mask_token`` the target lacks (EVA's) is dropped; anything else missing or mis-shaped is an
    error naming the tensors. The position table is made trainable again (``trainable_pos``).
    """
    if not isinstance(source, ViT) or not isinstance(target, ViT):
        raise TypeError("copy_encoder copies between two vislab ViTs")
    src, dst = source.state_dict(), target.state_dict()
    missing = sorted(k for k in dst if k not in src)
    extra = sorted(k for k in src if k not in dst and k != "mask_token")
    wrong = sorted(k for k in dst if k in src and src[k].shape != dst[k].shape)
    if missing or extra or wrong:
        raise ValueError(f"the encoders differ: missing {missing}, unexpected {extra}, shape mismatch {wrong}")
    target.load_state_dict({k: src[k] for k in dst})
    if target.pos_embed is not None:
        target.pos_embed.requires_grad_(trainable_pos)
    return target


def clip_from_encoder(encoder: ViT | None, text: TextConfig, embed_dim: int = 64,
                      vision: ViTConfig | None = None) -> CLIP:
    """A :class:`~vislab.clip.CLIP` whose image tower starts from ``encoder`` (EVA-CLIP's recipe),
    or, with ``encoder=None``, from the same ViT initialisation as the MIM encoders (fixed-table
    slot filled with sin-cos, trainable) for the from-scratch baseline.

    Args:
        encoder: a pretrained vislab ViT (e.g. ``EVA.encoder`` or ``MAE.encoder``), or None.
        text: the text tower's config (trained from scratch in both cases).
        embed_dim: E.
        vision: the tower's config when ``encoder`` is None.
    """
    if encoder is not None:
        vision = encoder.config.replace(use_mask_token=False)
    elif vision is None:
        raise ValueError("give a pretrained encoder, or vision=ViTConfig(...) for a CLIP from scratch")
    model = CLIP(CLIPConfig(vision=vision.replace(use_mask_token=False), text=text, embed_dim=embed_dim))
    if encoder is not None:
        copy_encoder(encoder, model.visual)
    else:
        set_sincos_pos_embed(model.visual, trainable=True)
    return model

"""transformers' SiglipModel → vislab's :class:`~vislab.siglip.SigLIP`, weights copied with shape checks.

``convert(hf_model)`` reads a ``SiglipModel`` (e.g. ``google/siglip-base-patch16-224``); the
result's ``forward(pixel_values, input_ids)`` equals the source's ``logits_per_image``
(without an attention mask, which is how the released models were trained: captions padded to
``max_length``), and ``encode_image`` / ``encode_text`` equal ``get_image_features`` /
``get_text_features``. Where the image size is not a multiple of the patch (so400m-patch14-384:
384 = 27 x 14 + 6), the converted model's size is the part the convolution reads (378) and
``ours(pixel_values[..., :378, :378], ids)`` equals the source on the full 384 px input.

What the mapping has to respect:

- image tower: a patch convolution *with* bias, no class token, a position table of N rows,
  pre-LN blocks with tanh-GELU, ``post_layernorm`` (vislab's final ``norm``), and the
  attention-pooling head ``head`` (probe, ``nn.MultiheadAttention``, LayerNorm, MLP): vislab's
  ``pooling="map"``, whose :class:`~vislab.vit.AttentionPoolingHead` has the same layout. There
  is no image projection: the pooled feature is the embedding;
- text tower: token and position embeddings, blocks *without* a causal mask, ``final_layer_norm``,
  the feature at the last position, then ``head``: a Linear *with* bias (vislab's
  ``text_projection``);
- q, k, v projections concatenated into vislab's one ``qkv`` ``[W_q; W_k; W_v]`` (3D, D);
- ``logit_scale`` (t', shape (1,)) and ``logit_bias`` (b, shape (1,)) become scalars.

Shape legend: D width, E embedding width, L context length, N patches, V vocabulary, F MLP width.
"""

from __future__ import annotations

import torch

from vislab.clip import TextConfig
from vislab.pretrained.vit import WeightMismatchError, assign_weights
from vislab.siglip import SigLIP, SigLIPConfig
from vislab.vit import ViTConfig

__all__ = ["convert", "config_from_hf"]

_ACTIVATIONS = {"gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh", "gelu_fast": "gelu_tanh",
                "gelu": "gelu", "quick_gelu": "quick_gelu", "relu": "relu"}

# per-layer names: vislab (after "blocks.{i}.") → transformers (after "encoder.layers.{i}.")
_LAYER = {"norm1.weight": "layer_norm1.weight", "norm1.bias": "layer_norm1.bias",
          "attn.proj.weight": "self_attn.out_proj.weight", "attn.proj.bias": "self_attn.out_proj.bias",
          "norm2.weight": "layer_norm2.weight", "norm2.bias": "layer_norm2.bias",
          "mlp.fc1.weight": "mlp.fc1.weight", "mlp.fc1.bias": "mlp.fc1.bias",
          "mlp.fc2.weight": "mlp.fc2.weight", "mlp.fc2.bias": "mlp.fc2.bias"}
# attention-pooling head: vislab (after "visual.attn_pool.") → transformers (after "vision_model.head.")
_HEAD = {"probe": "probe",
         "attention.in_proj_weight": "attention.in_proj_weight", "attention.in_proj_bias": "attention.in_proj_bias",
         "attention.out_proj.weight": "attention.out_proj.weight", "attention.out_proj.bias": "attention.out_proj.bias",
         "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias",
         "mlp.fc1.weight": "mlp.fc1.weight", "mlp.fc1.bias": "mlp.fc1.bias",
         "mlp.fc2.weight": "mlp.fc2.weight", "mlp.fc2.bias": "mlp.fc2.bias"}


def _act(name: str) -> str:
    if name not in _ACTIVATIONS:
        raise ValueError(f"hidden_act {name!r} has no vislab equivalent; known: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def _square(v, what: str) -> int:
    if isinstance(v, (tuple, list)):
        if v[0] != v[1]:
            raise ValueError(f"vislab's ViT needs a square {what}, got {tuple(v)}")
        v = v[0]
    return int(v)


def config_from_hf(hf_config) -> SigLIPConfig:
    """The :class:`SigLIPConfig` with the architecture of a transformers ``SiglipConfig``."""
    if getattr(hf_config, "model_type", None) != "siglip":
        raise TypeError(f"expected a transformers SigLIP config (model_type 'siglip'), got "
                        f"{getattr(hf_config, 'model_type', type(hf_config).__name__)!r}")
    v, t = hf_config.vision_config, hf_config.text_config
    if not getattr(v, "vision_use_head", True):
        raise ValueError("this SigLIP vision config has vision_use_head=False (no attention-pooling head), so "
                         "SiglipModel has no image embedding to convert")
    patch = _square(v.patch_size, "patch")
    # transformers' patch convolution has no padding: at 384 px with patch 14 it sees 27 x 27
    # patches and ignores the last 6 rows and columns. vislab's ViT wants whole patches, so its
    # training size is the part the convolution reads (378 px): crop inputs to it.
    size = _square(v.image_size, "image_size") // patch * patch
    vision = ViTConfig(image_size=size, patch_size=patch,
                       dim=v.hidden_size, depth=v.num_hidden_layers, heads=v.num_attention_heads,
                       mlp_dim=v.intermediate_size, in_channels=v.num_channels, norm_eps=v.layer_norm_eps,
                       mlp=_act(v.hidden_act), class_token=False, pooling="map", patch_bias=True)
    projection = getattr(t, "projection_size", None) or t.hidden_size
    eos = t.eos_token_id if isinstance(t.eos_token_id, int) and 0 <= t.eos_token_id < t.vocab_size else 0
    # TextConfig stores an MLP *ratio*; (F + 0.5) / W makes int(W * ratio) == F exactly, even for
    # widths like So400m's 4304 / 1152 that are not round.
    text = TextConfig(vocab_size=t.vocab_size, context_length=t.max_position_embeddings, width=t.hidden_size,
                      depth=t.num_hidden_layers, heads=t.num_attention_heads,
                      mlp_ratio=(t.intermediate_size + 0.5) / t.hidden_size, activation=_act(t.hidden_act),
                      eot_token_id=eos, norm_eps=t.layer_norm_eps)
    if int(text.width * text.mlp_ratio) != t.intermediate_size:
        raise ValueError(f"text intermediate_size {t.intermediate_size} is not representable with width "
                         f"{t.hidden_size}")
    if projection != v.hidden_size:
        raise ValueError(f"the text head projects to {projection} but the image embedding has width "
                         f"{v.hidden_size}; SigLIP compares them directly, so they must match")
    return SigLIPConfig(vision=vision, text=text, embed_dim=v.hidden_size, text_tower="bidirectional",
                        image_projection=False, text_projection_bias=True)


def _take(src: dict, name: str, used: set) -> torch.Tensor:
    if name not in src:
        raise WeightMismatchError(f"the transformers model has no tensor {name!r}; is it a SiglipModel of "
                                  "transformers 4.x/5.x?")
    used.add(name)
    return src[name]


def _tower(src: dict, prefix: str, depth: int, used: set) -> dict:
    """vislab names of one tower's blocks → tensors, from transformers' ``prefix.encoder.layers``."""
    out = {}
    for i in range(depth):
        base = f"{prefix}.encoder.layers.{i}."
        for ours, theirs in _LAYER.items():
            out[f"blocks.{i}.{ours}"] = _take(src, base + theirs, used)
        for part in ("weight", "bias"):
            qkv = [_take(src, f"{base}self_attn.{x}_proj.{part}", used) for x in "qkv"]
            out[f"blocks.{i}.attn.qkv.{part}"] = torch.cat(qkv, dim=0)                          # (3D, ...)
    return out


def convert(hf_model) -> SigLIP:
    """A vislab :class:`~vislab.siglip.SigLIP` with the weights of a transformers ``SiglipModel``.

    Returned in eval mode, on the CPU, in float32.
    """
    model_type = getattr(getattr(hf_model, "config", None), "model_type", None)
    if model_type != "siglip":
        hint = (" (one tower only: pass the full SiglipModel, whose forward needs both towers)"
                if str(model_type).startswith("siglip") else "")
        raise TypeError(f"convert expects a transformers SiglipModel, got {type(hf_model).__name__}{hint}")
    if not (hasattr(hf_model, "vision_model") and hasattr(hf_model, "text_model")):
        raise TypeError(f"{type(hf_model).__name__} lacks a vision or text tower; pass a full SiglipModel "
                        "(not SiglipVisionModel / SiglipTextModel / SiglipForImageClassification)")
    config = config_from_hf(hf_model.config)
    src = {k: v.detach().float().cpu() for k, v in hf_model.state_dict().items()}
    used = set()

    def take(name):
        return _take(src, name, used)

    visual = {
        "patch_embed.proj.weight": take("vision_model.embeddings.patch_embedding.weight"),      # (D, C, P, P)
        "patch_embed.proj.bias": take("vision_model.embeddings.patch_embedding.bias"),          # (D,)
        "pos_embed": take("vision_model.embeddings.position_embedding.weight")[None],          # (1, N, D)
        "norm.weight": take("vision_model.post_layernorm.weight"),
        "norm.bias": take("vision_model.post_layernorm.bias"),
        **{f"attn_pool.{ours}": take(f"vision_model.head.{theirs}") for ours, theirs in _HEAD.items()},
        **_tower(src, "vision_model", config.vision.depth, used),
    }
    text = {
        "token_embed.weight": take("text_model.embeddings.token_embedding.weight"),            # (V, D)
        "pos_embed": take("text_model.embeddings.position_embedding.weight"),                  # (L, D)
        "norm.weight": take("text_model.final_layer_norm.weight"),
        "norm.bias": take("text_model.final_layer_norm.bias"),
        **_tower(src, "text_model", config.text.depth, used),
    }
    weights = {**{f"visual.{k}": w for k, w in visual.items()}, **{f"text.{k}": w for k, w in text.items()},
               "text_projection.weight": take("text_model.head.weight"),                       # (E, D)
               "text_projection.bias": take("text_model.head.bias"),                           # (E,)
               "logit_scale": take("logit_scale").reshape(()),                                 # t'
               "logit_bias": take("logit_bias").reshape(())}                                   # b
    leftover = sorted(k for k in set(src) - used if not k.endswith("position_ids"))
    if leftover:
        raise WeightMismatchError(f"transformers tensors with no place in vislab's SigLIP: {leftover}")
    model = SigLIP(config)
    assign_weights(model, weights, what=f"transformers {type(hf_model).__name__}")
    return model.eval()

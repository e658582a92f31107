"""transformers' CLIPModel → vislab's :class:`~vislab.clip.CLIP`, weights copied with shape checks.

``convert(hf_model)`` reads a ``CLIPModel`` (e.g. ``openai/clip-vit-base-patch32``); the
result's ``forward(pixel_values, input_ids)`` equals the source's ``logits_per_image``, and
``encode_image`` / ``encode_text`` equal ``get_image_features`` / ``get_text_features``.

What the mapping has to respect:

- image tower: a patch convolution without bias, a class embedding, a position table, the
  extra LayerNorm *before* the blocks (``pre_layrnorm``, CLIP's ``ln_pre``: vislab's
  ``norm_pre=True``), pre-LN blocks with QuickGELU, and ``post_layernorm`` on CLS
  (vislab's final ``norm``, applied to every token; CLS is the same);
- text tower: token and position embeddings, causal pre-LN blocks, ``final_layer_norm``,
  and the pooling rule of the config: ``eos_token_id == 2`` is the legacy value of the
  original OpenAI configs, for which transformers reads the position of the largest id
  (EOT has the largest id in OpenAI's vocabulary) → ``pool="argmax"``; any other value is
  read at the first position holding that id → ``pool="eot"``;
- q, k, v projections concatenated into vislab's one ``qkv`` ``[W_q; W_k; W_v]`` (3D, D).

Not carried over: dropout (inference only), ``interpolate_pos_encoding`` (vislab's ViT
resamples its table itself for other sizes).

Shape legend: D width, E shared embedding width, L context length, N patches, V vocabulary.
"""

from __future__ import annotations

import torch

from vislab.clip import CLIP, CLIPConfig, TextConfig
from vislab.pretrained.vit import WeightMismatchError, assign_weights
from vislab.vit import ViTConfig

__all__ = ["convert", "config_from_hf", "LEGACY_EOS_TOKEN_ID"]

LEGACY_EOS_TOKEN_ID = 2   # transformers: configs made before PR #24773 say 2 and pool by argmax

_ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh",
                "gelu_new": "gelu_tanh", "relu": "relu"}

# per-layer names: vislab (after "blocks.{i}.") → transformers (after "encoder.layers.{i}.")
_LAYER = {"norm1.weight": "layer_norm1.weight", "norm1.bias": "layer_norm1.bias",
          "attn.proj.weight": "self_attn.out_proj.weight", "attn.proj.bias": "self_attn.out_proj.bias",
          "norm2.weight": "layer_norm2.weight", "norm2.bias": "layer_norm2.bias",
          "mlp.fc1.weight": "mlp.fc1.weight", "mlp.fc1.bias": "mlp.fc1.bias",
          "mlp.fc2.weight": "mlp.fc2.weight", "mlp.fc2.bias": "mlp.fc2.bias"}


def _act(name: str) -> str:
    if name not in _ACTIVATIONS:
        raise ValueError(f"hidden_act {name!r} has no vislab equivalent; known: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def config_from_hf(hf_config) -> CLIPConfig:
    """The :class:`CLIPConfig` with the architecture of a transformers ``CLIPConfig``."""
    if getattr(hf_config, "model_type", None) != "clip":
        raise TypeError(f"expected a transformers CLIP config (model_type 'clip'), got "
                        f"{getattr(hf_config, 'model_type', type(hf_config).__name__)!r}")
    v, t = hf_config.vision_config, hf_config.text_config
    vision = ViTConfig(image_size=v.image_size, patch_size=v.patch_size, dim=v.hidden_size,
                       depth=v.num_hidden_layers, heads=v.num_attention_heads, mlp_dim=v.intermediate_size,
                       in_channels=v.num_channels, norm_eps=v.layer_norm_eps, mlp=_act(v.hidden_act),
                       norm_pre=True, patch_bias=False, pooling="cls")
    legacy = t.eos_token_id == LEGACY_EOS_TOKEN_ID
    text = TextConfig(vocab_size=t.vocab_size, context_length=t.max_position_embeddings, width=t.hidden_size,
                      depth=t.num_hidden_layers, heads=t.num_attention_heads,
                      mlp_ratio=t.intermediate_size / t.hidden_size, activation=_act(t.hidden_act),
                      eot_token_id=0 if legacy else t.eos_token_id, pool="argmax" if legacy else "eot",
                      norm_eps=t.layer_norm_eps)
    if int(text.width * text.mlp_ratio) != t.intermediate_size:
        raise ValueError(f"text intermediate_size {t.intermediate_size} is not representable as "
                         f"int(width * mlp_ratio) with width {t.hidden_size}")
    return CLIPConfig(vision=vision, text=text, embed_dim=hf_config.projection_dim,
                      init_logit_scale=float(hf_config.logit_scale_init_value))


def _take(src: dict, name: str, used: set) -> torch.Tensor:
    if name not in src:
        raise WeightMismatchError(f"the transformers model has no tensor {name!r}; is it a CLIPModel of "
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


def convert(hf_model) -> CLIP:
    """A vislab :class:`CLIP` with the weights of a transformers ``CLIPModel``.

    Returned in eval mode, on the CPU, in float32. The logit scale keeps the source's value
    (100 for OpenAI's released models, i.e. the clamp was reached in training).
    """
    if getattr(getattr(hf_model, "config", None), "model_type", None) != "clip":
        raise TypeError(f"convert expects a transformers CLIPModel, got {type(hf_model).__name__}")
    if not (hasattr(hf_model, "vision_model") and hasattr(hf_model, "text_model")):
        raise TypeError(f"{type(hf_model).__name__} lacks a vision or text tower; pass a full CLIPModel "
                        "(not CLIPVisionModel / CLIPTextModel)")
    config = config_from_hf(hf_model.config)
    src = {k: v.detach().float().cpu() for k, v in hf_model.state_dict().items()}
    used = set()

    def take(name):
        return _take(src, name, used)

    D = config.vision.dim
    visual = {
        "patch_embed.proj.weight": take("vision_model.embeddings.patch_embedding.weight"),       # (D, C, P, P)
        "cls_token": take("vision_model.embeddings.class_embedding").reshape(1, 1, D),         # (1, 1, D)
        "pos_embed": take("vision_model.embeddings.position_embedding.weight")[None],          # (1, 1+N, D)
        "norm_pre.weight": take("vision_model.pre_layrnorm.weight"),
        "norm_pre.bias": take("vision_model.pre_layrnorm.bias"),
        "norm.weight": take("vision_model.post_layernorm.weight"),
        "norm.bias": take("vision_model.post_layernorm.bias"),
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
               "visual_projection.weight": take("visual_projection.weight"),                   # (E, D)
               "text_projection.weight": take("text_projection.weight"),                       # (E, D)
               "logit_scale": take("logit_scale")}
    leftover = sorted(k for k in set(src) - used if not k.endswith("position_ids"))
    if leftover:
        raise WeightMismatchError(f"transformers tensors with no place in vislab's CLIP: {leftover}")
    model = CLIP(config)
    assign_weights(model, weights, what=f"transformers {type(hf_model).__name__}")
    return model.eval()

"""transformers' ViT → vislab's :class:`~vislab.vit.ViT`, weights copied with shape checks.

``convert(hf_model)`` accepts a ``ViTModel`` or a ``ViTForImageClassification`` (its ``.vit``
plus the classifier as ``head``). The result's ``forward_features(images)`` equals the source's
``last_hidden_state`` (``interpolate_pos_encoding=True`` for sizes other than the training
size; both resample the position table bicubically), and with a classifier ``forward(images)``
equals its ``logits``. Not carried over: the ``pooler`` of ``ViTModel`` (a tanh dense layer on
CLS that ViT fine-tuning does not use) and dropout (inference only).

Both of transformers' layouts are read: 5.x (``layers.i.attention.q_proj``) and 4.x
(``encoder.layer.i.attention.attention.query``).

Shape legend: D width, F MLP width, C channels, P patch, N patches, K classes.
"""

from __future__ import annotations

import torch
from torch import nn

from vislab.vit import ViT, ViTConfig

__all__ = ["convert", "config_from_hf", "assign_weights", "WeightMismatchError"]

_ACTIVATIONS = {"gelu": "gelu", "gelu_python": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                "gelu_fast": "gelu_tanh", "quick_gelu": "quick_gelu", "relu": "relu"}

# vislab name (per block, "{}" = index) -> transformers names (5.x first, then 4.x)
_BLOCK_KEYS = {
    "norm1.weight": ["layers.{}.layernorm_before.weight", "encoder.layer.{}.layernorm_before.weight"],
    "norm1.bias": ["layers.{}.layernorm_before.bias", "encoder.layer.{}.layernorm_before.bias"],
    "attn.proj.weight": ["layers.{}.attention.o_proj.weight", "encoder.layer.{}.attention.output.dense.weight"],
    "attn.proj.bias": ["layers.{}.attention.o_proj.bias", "encoder.layer.{}.attention.output.dense.bias"],
    "norm2.weight": ["layers.{}.layernorm_after.weight", "encoder.layer.{}.layernorm_after.weight"],
    "norm2.bias": ["layers.{}.layernorm_after.bias", "encoder.layer.{}.layernorm_after.bias"],
    "mlp.fc1.weight": ["layers.{}.mlp.fc1.weight", "encoder.layer.{}.intermediate.dense.weight"],
    "mlp.fc1.bias": ["layers.{}.mlp.fc1.bias", "encoder.layer.{}.intermediate.dense.bias"],
    "mlp.fc2.weight": ["layers.{}.mlp.fc2.weight", "encoder.layer.{}.output.dense.weight"],
    "mlp.fc2.bias": ["layers.{}.mlp.fc2.bias", "encoder.layer.{}.output.dense.bias"],
}
_QKV = {"q": ["layers.{}.attention.q_proj", "encoder.layer.{}.attention.attention.query"],
        "k": ["layers.{}.attention.k_proj", "encoder.layer.{}.attention.attention.key"],
        "v": ["layers.{}.attention.v_proj", "encoder.layer.{}.attention.attention.value"]}
_TOP_KEYS = {
    "cls_token": ["embeddings.cls_token"],
    "pos_embed": ["embeddings.position_embeddings"],
    "patch_embed.proj.weight": ["embeddings.patch_embeddings.projection.weight"],
    "patch_embed.proj.bias": ["embeddings.patch_embeddings.projection.bias"],
    "mask_token": ["embeddings.mask_token"],
    "norm.weight": ["layernorm.weight"],
    "norm.bias": ["layernorm.bias"],
}


class WeightMismatchError(ValueError):
    """A source tensor is missing, left over or of the wrong shape; the message names them."""


def config_from_hf(hf_config, num_classes: int = 0) -> ViTConfig:
    """The :class:`ViTConfig` with the same architecture as a transformers ``ViTConfig``."""
    if getattr(hf_config, "model_type", None) != "vit":
        raise TypeError(f"expected a transformers ViT config (model_type 'vit'), got "
                        f"{getattr(hf_config, 'model_type', type(hf_config).__name__)!r}")
    act = hf_config.hidden_act
    if act not in _ACTIVATIONS:
        raise ValueError(f"hidden_act {act!r} has no vislab equivalent; known: {sorted(_ACTIVATIONS)}")
    image_size = hf_config.image_size
    patch = hf_config.patch_size
    if isinstance(patch, (tuple, list)):
        if patch[0] != patch[1]:
            raise ValueError(f"vislab's ViT uses square patches, got patch_size {tuple(patch)}")
        patch = patch[0]
    return ViTConfig(
        image_size=tuple(image_size) if isinstance(image_size, (tuple, list)) else image_size,
        patch_size=patch, dim=hf_config.hidden_size, depth=hf_config.num_hidden_layers,
        heads=hf_config.num_attention_heads, mlp_dim=hf_config.intermediate_size, num_classes=num_classes,
        in_channels=hf_config.num_channels, qkv_bias=hf_config.qkv_bias, norm_eps=hf_config.layer_norm_eps,
        mlp=_ACTIVATIONS[act])


def _pick(source: dict, names: list[str], i=None):
    for name in names:
        name = name.format(i)
        if name in source:
            return name
    return None


def assign_weights(model: nn.Module, weights: dict, what: str = "checkpoint") -> None:
    """Copy ``weights`` (vislab name → tensor) into ``model``, asserting every shape.

    Every parameter and persistent buffer of ``model`` must be given, with its exact shape;
    otherwise :class:`WeightMismatchError` lists the missing, unexpected and mis-shaped tensors.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = sorted(f"{k}: {what} {tuple(weights[k].shape)} vs vislab {tuple(own[k].shape)}"
                   for k in set(own) & set(weights) if tuple(weights[k].shape) != tuple(own[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing from {what}: {missing}")
        if unexpected:
            parts.append(f"not in vislab's model: {unexpected}")
        if wrong:
            parts.append(f"shape mismatch: {wrong}")
        raise WeightMismatchError(f"cannot load {what} into {type(model).__name__}: " + "; ".join(parts))
    with torch.no_grad():
        for k, t in own.items():
            t.copy_(weights[k])


def convert(hf_model) -> ViT:
    """A vislab ``ViT`` with the weights of a transformers ``ViTModel`` / ``ViTForImageClassification``.

    The qkv projection is the concatenation ``[W_q; W_k; W_v]`` ``(3D, D)`` of transformers'
    three projections; everything else maps one to one. The model is returned in eval mode,
    on the CPU, in float32.
    """
    if getattr(getattr(hf_model, "config", None), "model_type", None) != "vit":
        raise TypeError(f"convert expects a transformers ViT model, got {type(hf_model).__name__}")
    classifier = getattr(hf_model, "classifier", None)
    body = hf_model.vit if hasattr(hf_model, "vit") else hf_model
    if not hasattr(body, "embeddings"):
        raise TypeError(f"{type(hf_model).__name__} has no ViT embeddings; pass a ViTModel or "
                        "ViTForImageClassification")
    num_classes = classifier.out_features if isinstance(classifier, nn.Linear) else 0
    config = config_from_hf(hf_model.config, num_classes=num_classes)
    if getattr(body.embeddings, "mask_token", None) is not None:
        config = config.replace(use_mask_token=True)
    src = {k: v.detach().float().cpu() for k, v in body.state_dict().items()}
    used, weights = set(), {}

    def take(vislab_name, names, i=None):
        name = _pick(src, names, i)
        if name is not None:
            used.add(name)
            weights[vislab_name] = src[name]

    for k, names in _TOP_KEYS.items():
        take(k, names)
    for i in range(config.depth):
        for k, names in _BLOCK_KEYS.items():
            take(f"blocks.{i}.{k}", names, i)
        for part in ("weight", "bias"):
            found = [_pick(src, [n + "." + part for n in _QKV[x]], i) for x in "qkv"]
            if all(found):
                used.update(found)
                weights[f"blocks.{i}.attn.qkv.{part}"] = torch.cat([src[n] for n in found], dim=0)   # (3D, ...)
    if num_classes:
        weights["head.weight"] = classifier.weight.detach().float().cpu()      # (K, D)
        weights["head.bias"] = classifier.bias.detach().float().cpu()          # (K,)
    leftover = sorted(k for k in set(src) - used if not k.startswith("pooler."))
    if leftover:
        raise WeightMismatchError(f"transformers tensors with no place in vislab's ViT: {leftover}")
    model = ViT(config)
    assign_weights(model, weights, what=f"transformers {type(hf_model).__name__}")
    return model.eval()

"""transformers' DINOv2 → vislab's :class:`~vislab.vit.ViT`, weights copied with shape checks.

``convert(hf_model)`` accepts a ``Dinov2Model`` or a ``Dinov2WithRegistersModel``. DINOv2's
backbone is a pre-LN ViT with three of the options of :class:`~vislab.vit.ViTConfig` switched on:

- LayerScale on both residual branches (``layer_scale1.lambda1`` → ``ls1.gamma``);
- optionally SwiGLU MLPs (ViT-g; transformers 5.x stores ``gate_proj``/``up_proj``/``down_proj``,
  4.x a fused ``weights_in``/``weights_out``; vislab's :class:`~vislab.vit.SwiGLU` keeps the
  fused ``w12 = [W_gate; W_up]`` layout of DINOv2's own code);
- register tokens for ``Dinov2WithRegistersModel`` (Darcet et al., arXiv:2309.16588), placed
  after CLS and without position, as in vislab.

The result's ``forward_features(images)`` equals the source's ``last_hidden_state``, also at
other image sizes: both resample the position table bicubically (the registers model with
antialiasing, as transformers does: ``pos_interp_antialias``), and with a mask
(``embed(images, mask)`` then ``encode``) it equals ``bool_masked_pos``. Not carried over: the
pooler (there is none; ``pooler_output`` is the final-normed CLS, ``tokens[:, 0]``) and dropout.

Shape legend: D width, F MLP width, F' SwiGLU width, C channels, P patch, N patches, R registers.
"""

from __future__ import annotations

import torch

from vislab.pretrained.vit import WeightMismatchError, assign_weights
from vislab.vit import ViT, ViTConfig

__all__ = ["convert", "config_from_hf", "WeightMismatchError"]

MODEL_TYPES = ("dinov2", "dinov2_with_registers")
_ACTIVATIONS = {"gelu": "gelu", "gelu_python": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                "quick_gelu": "quick_gelu", "relu": "relu"}

# vislab name (per block) -> transformers names: 5.x first, then 4.x
_BLOCK_KEYS = {
    "norm1.weight": ["encoder.layer.{}.norm1.weight"],
    "norm1.bias": ["encoder.layer.{}.norm1.bias"],
    "attn.proj.weight": ["encoder.layer.{}.attention.o_proj.weight", "encoder.layer.{}.attention.output.dense.weight"],
    "attn.proj.bias": ["encoder.layer.{}.attention.o_proj.bias", "encoder.layer.{}.attention.output.dense.bias"],
    "ls1.gamma": ["encoder.layer.{}.layer_scale1.lambda1"],
    "norm2.weight": ["encoder.layer.{}.norm2.weight"],
    "norm2.bias": ["encoder.layer.{}.norm2.bias"],
    "ls2.gamma": ["encoder.layer.{}.layer_scale2.lambda1"],
}
_MLP_KEYS = {
    "mlp.fc1.weight": ["encoder.layer.{}.mlp.fc1.weight"], "mlp.fc1.bias": ["encoder.layer.{}.mlp.fc1.bias"],
    "mlp.fc2.weight": ["encoder.layer.{}.mlp.fc2.weight"], "mlp.fc2.bias": ["encoder.layer.{}.mlp.fc2.bias"],
}
_SWIGLU_4X = {
    "mlp.w12.weight": ["encoder.layer.{}.mlp.weights_in.weight"], "mlp.w12.bias": ["encoder.layer.{}.mlp.weights_in.bias"],
    "mlp.w3.weight": ["encoder.layer.{}.mlp.weights_out.weight"], "mlp.w3.bias": ["encoder.layer.{}.mlp.weights_out.bias"],
}
_QKV = {"q": ["encoder.layer.{}.attention.q_proj", "encoder.layer.{}.attention.attention.query"],
        "k": ["encoder.layer.{}.attention.k_proj", "encoder.layer.{}.attention.attention.key"],
        "v": ["encoder.layer.{}.attention.v_proj", "encoder.layer.{}.attention.attention.value"]}
_TOP_KEYS = {
    "cls_token": ["embeddings.cls_token"],
    "pos_embed": ["embeddings.position_embeddings"],
    "registers": ["embeddings.register_tokens"],
    "patch_embed.proj.weight": ["embeddings.patch_embeddings.projection.weight"],
    "patch_embed.proj.bias": ["embeddings.patch_embeddings.projection.bias"],
    "norm.weight": ["layernorm.weight"],
    "norm.bias": ["layernorm.bias"],
}


def config_from_hf(hf_config) -> ViTConfig:
    """The :class:`ViTConfig` with the architecture of a transformers ``Dinov2Config`` /
    ``Dinov2WithRegistersConfig``.

    DINOv2's MLP width comes from ``mlp_ratio`` (the config's ``intermediate_size`` is unused):
    F = int(D * mlp_ratio); SwiGLU then keeps F' = ceil8(2F/3), which vislab's SwiGLU computes
    from the same F.
    """
    model_type = getattr(hf_config, "model_type", None)
    if model_type not in MODEL_TYPES:
        raise TypeError(f"expected a transformers DINOv2 config (model_type in {MODEL_TYPES}), got "
                        f"{model_type or type(hf_config).__name__!r}")
    swiglu = bool(getattr(hf_config, "use_swiglu_ffn", False))
    if not swiglu and hf_config.hidden_act not in _ACTIVATIONS:
        raise ValueError(f"hidden_act {hf_config.hidden_act!r} has no vislab equivalent; known: {sorted(_ACTIVATIONS)}")
    image_size, patch = hf_config.image_size, hf_config.patch_size
    if isinstance(patch, (tuple, list)):
        if patch[0] != patch[1]:
            raise ValueError(f"vislab's ViT uses square patches, got patch_size {tuple(patch)}")
        patch = patch[0]
    D = hf_config.hidden_size
    registers = int(getattr(hf_config, "num_register_tokens", 0) or 0)
    return ViTConfig(
        image_size=tuple(image_size) if isinstance(image_size, (tuple, list)) else image_size,
        patch_size=patch, dim=D, depth=hf_config.num_hidden_layers, heads=hf_config.num_attention_heads,
        mlp_dim=int(D * hf_config.mlp_ratio), in_channels=hf_config.num_channels, qkv_bias=hf_config.qkv_bias,
        norm_eps=hf_config.layer_norm_eps, mlp="swiglu" if swiglu else _ACTIVATIONS[hf_config.hidden_act],
        num_registers=registers, layerscale_init=float(hf_config.layerscale_value), use_mask_token=True,
        pos_interp_antialias=model_type == "dinov2_with_registers")


def _pick(source: dict, names: list, i=None):
    for name in names:
        name = name.format(i)
        if name in source:
            return name
    return None


def convert(hf_model) -> ViT:
    """A vislab ``ViT`` with the weights of a transformers ``Dinov2Model`` / ``Dinov2WithRegistersModel``.

    The three attention projections are concatenated into vislab's ``qkv`` ``(3D, D)``; SwiGLU's
    gate and up projections into ``w12`` ``(2F', D)``; the ``(1, D)`` mask token becomes
    ``(1, 1, D)``. Every tensor of the source must find a place, and every vislab tensor a
    source, with its exact shape (:class:`WeightMismatchError` otherwise). Returned in eval
    mode, on the CPU, in float32.
    """
    config = getattr(hf_model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in MODEL_TYPES:
        raise TypeError(f"convert expects a transformers Dinov2Model or Dinov2WithRegistersModel, got "
                        f"{type(hf_model).__name__} (model_type {model_type!r})")
    if not hasattr(hf_model, "embeddings"):
        body = getattr(hf_model, "dinov2", None) or getattr(hf_model, "dinov2_with_registers", None)
        hint = (" Its classifier reads [CLS; mean of patches], which vislab's ViT head does not; pass the "
                "backbone (model.dinov2) to convert it." if body is not None else "")
        raise TypeError(f"{type(hf_model).__name__} is not a bare DINOv2 backbone.{hint}")
    vit_config = config_from_hf(config)
    src = {k: v.detach().float().cpu() for k, v in hf_model.state_dict().items()}
    used, weights = set(), {}

    def take(vislab_name, names, i=None):
        name = _pick(src, names, i)
        if name is not None:
            used.add(name)
            weights[vislab_name] = src[name]

    for k, names in _TOP_KEYS.items():
        take(k, names)
    if "embeddings.mask_token" in src:
        used.add("embeddings.mask_token")
        weights["mask_token"] = src["embeddings.mask_token"].reshape(1, 1, -1)         # (1, 1, D)
    swiglu = vit_config.mlp == "swiglu"
    for i in range(vit_config.depth):
        for k, names in _BLOCK_KEYS.items():
            take(f"blocks.{i}.{k}", names, i)
        for part in ("weight", "bias"):
            found = [_pick(src, [n + "." + part for n in _QKV[x]], i) for x in "qkv"]
            if all(found):
                used.update(found)
                weights[f"blocks.{i}.attn.qkv.{part}"] = torch.cat([src[n] for n in found], dim=0)   # (3D, ...)
        if not swiglu:
            for k, names in _MLP_KEYS.items():
                take(f"blocks.{i}.{k}", names, i)
        elif f"encoder.layer.{i}.mlp.gate_proj.weight" in src:                           # transformers 5.x
            for part in ("weight", "bias"):
                gate, up = (f"encoder.layer.{i}.mlp.{n}.{part}" for n in ("gate_proj", "up_proj"))
                down = f"encoder.layer.{i}.mlp.down_proj.{part}"
                used.update((gate, up, down))
                weights[f"blocks.{i}.mlp.w12.{part}"] = torch.cat([src[gate], src[up]], dim=0)   # (2F', ...)
                weights[f"blocks.{i}.mlp.w3.{part}"] = src[down]                                  # (D, F') / (D,)
        else:                                                                             # transformers 4.x
            for k, names in _SWIGLU_4X.items():
                take(f"blocks.{i}.{k}", names, i)
    leftover = sorted(set(src) - used)
    if leftover:
        raise WeightMismatchError(f"transformers tensors with no place in vislab's ViT: {leftover}")
    model = ViT(vit_config)
    assign_weights(model, weights, what=f"transformers {type(hf_model).__name__}")
    return model.eval()

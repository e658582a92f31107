"""Checkpoints: safetensors weights + a JSON of config and metrics, written atomically.

Weights are never unpickled: ``safetensors`` stores raw tensors only. Loading checks that
the file and the model agree tensor by tensor and refuses a mismatch with a message that
names the tensors. It also refuses, before touching the model: a file that is not
safetensors (a pickle is named as one, and never opened), a JSON sidecar that is not a JSON
object, a config in the sidecar that differs from the model's ``config`` (the fields are
named), NaN or infinite weights, a tensor whose dtype kind differs from the model's (an
integer file tensor into a float weight), and a model on the meta device. Saving refuses a
storage dtype that would destroy float weights (an integer dtype; float16 overflow).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = ["CheckpointMismatchError", "save_checkpoint", "load_checkpoint", "read_meta", "checkpoint_path"]


class CheckpointMismatchError(ValueError):
    """The checkpoint's tensors do not match the model's."""


def checkpoint_path(name: str) -> Path:
    """``<repo>/data/checkpoints/NAME`` (no suffix): the stem of a shipped checkpoint."""
    from vislab.paths import checkpoint_dir

    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"checkpoint name must be a plain file stem such as 'vit_shapes', got {name!r}")
    return checkpoint_dir() / name


def _stem(path) -> Path:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p


def _file(stem: Path, suffix: str) -> Path:
    """``stem`` + ``suffix``; unlike ``with_suffix`` it keeps dots in the stem (``vit.local``)."""
    return stem.with_name(stem.name + suffix)


def _atomic_write(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(path, model: torch.nn.Module, meta: dict | None = None, dtype: torch.dtype | None = None) -> Path:
    """Write ``path.safetensors`` (the state dict) and ``path.json`` (``meta``), atomically.

    Args:
        path: the stem (a ``.safetensors``/``.json`` suffix is dropped).
        model: the module whose ``state_dict()`` is saved.
        meta: JSON-serialisable dict: config, command, seed, seconds, metrics...
        dtype: store floating tensors in this dtype (e.g. ``torch.float16`` to halve the
            size of a shipped file); loading casts back to the model's dtype.
    Returns the stem.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_storage_dtype(dtype)
    if meta is not None and not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict (it becomes the JSON object beside the weights), got {type(meta).__name__}")
    stem = _stem(path)
    tensors = {}
    for k, v in model.state_dict().items():
        if v.device.type == "meta":
            raise ValueError(f"{k} is on the meta device (no values to save); materialise the model first")
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            cast = v.to(dtype)
            if bool(torch.isfinite(v).all()) and not bool(torch.isfinite(cast).all()):
                raise ValueError(f"storing {k} as {dtype} overflows (its largest magnitude is "
                                 f"{v.abs().max().item():.3g}, above {torch.finfo(dtype).max:.3g}); use a wider dtype")
            v = cast
        tensors[k] = v.contiguous().clone()
    bad = _non_finite(tensors)
    if bad:
        raise ValueError(f"refusing to save non-finite weights (NaN or inf) in {', '.join(bad)}: the checkpoint "
                         "could not be loaded back; find where training diverged")
    meta = dict(meta or {})
    meta.setdefault("torch", torch.__version__)
    json_text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    _atomic_write(_file(stem, ".safetensors"), lambda tmp: save_file(tensors, tmp))
    _atomic_write(_file(stem, ".json"), lambda tmp: Path(tmp).write_text(json_text + "\n"))
    return stem


def _check_storage_dtype(dtype) -> None:
    if dtype is None:
        return
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float16, got {dtype!r}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype={dtype} would truncate every float weight (to 0 for most of them); "
                         "store floats as torch.float16, torch.bfloat16 or torch.float32")


def _non_finite(tensors: dict) -> list:
    return sorted(k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))


def _read_json(p: Path) -> dict:
    try:
        meta = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{p} is not valid JSON ({err}); restore it or delete it (weights load without it)") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{p} must hold a JSON object (a dict of config and metrics), got a {type(meta).__name__}")
    return meta


def read_meta(path) -> dict:
    """The JSON side of a checkpoint."""
    p = _file(_stem(path), ".json")
    if not p.exists():
        raise FileNotFoundError(f"no checkpoint metadata at {p}")
    return _read_json(p)


def _read_weights(weights: Path) -> dict:
    """The file's tensors, read by safetensors only; anything else is refused by name."""
    try:
        return load_file(str(weights))
    except SafetensorError as err:
        with open(weights, "rb") as f:
            head = f.read(2)
        if head == b"PK" or head[:1] == b"\x80":      # torch.save's zip archive, or a raw pickle
            raise ValueError(f"{weights} looks like a torch.save/pickle file, not safetensors; vislab never "
                             "unpickles weights (a pickle can run code). Convert it where you trust it: "
                             "safetensors.torch.save_file(torch.load(f, weights_only=True), 'x.safetensors')") from None
        raise ValueError(f"{weights} is not a readable safetensors file ({err}); it is damaged or of another "
                         "format: retrain it (python -m vislab.pretrain NAME) or restore it") from None


def _flat(d, prefix="") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _config_differences(saved: dict, own: dict) -> list:
    """Fields recorded in both configs whose values differ (dotted names); a field only one side
    records is not compared (JSON configs often record only what differs from the defaults)."""
    a, b = _flat(saved), _flat(json.loads(json.dumps(own, default=str)))
    return sorted(f"{k}: file {a[k]!r} vs model {b[k]!r}" for k in set(a) & set(b) if a[k] != b[k])


def _model_config(model) -> dict | None:
    config = getattr(model, "config", None)
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) and not isinstance(config, type) else None


def _check_config(meta: dict, model, config, where: str) -> None:
    saved = meta.get("config")
    if saved is None:
        return
    if not isinstance(saved, dict):
        raise ValueError(f"{where}: 'config' must be a JSON object, got a {type(saved).__name__}")
    diffs = []
    if config is not None:
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict (the config the checkpoint was trained with), got {type(config).__name__}")
        diffs += _config_differences(saved, config)
    own = _model_config(model)
    if own is not None:
        # a recipe's JSON holds the model's config itself, or under "model" beside task/train settings
        section = saved["model"] if isinstance(saved.get("model"), dict) and "model" not in own else saved
        diffs += [d for d in _config_differences(section, own) if d not in diffs]
    if diffs:
        raise CheckpointMismatchError(f"{where} was trained with a different config than {type(model).__name__}'s: "
                                      + "; ".join(diffs) + ". Build the model with the checkpoint's config "
                                      "(read_meta(path)['config']) or retrain it")


def _check_dtypes(state: dict, own: dict, where: str) -> None:
    def kind(t):
        return "float" if t.is_floating_point() else "complex" if t.is_complex() else str(t.dtype)

    bad = sorted(f"{k}: file {state[k].dtype} vs model {own[k].dtype}" for k in state
                 if kind(state[k]) != kind(own[k]))
    if bad:
        raise CheckpointMismatchError(f"{where} does not match the model's dtypes (a cast would change the values): "
                                      + "; ".join(bad))


def load_checkpoint(path, model: torch.nn.Module, config: dict | None = None) -> dict:
    """Load ``path.safetensors`` into ``model`` (in place) and return the JSON metadata.

    Everything is checked before the model is touched: the sidecar JSON (an object), its
    ``config`` against the model's ``config`` dataclass (its ``"model"`` entry, for recipes)
    and against ``config`` if given, then the tensors' names, shapes, dtype kinds (float
    storage such as float16 casts back to the model's float dtype; integers and bools must
    match) and finiteness.

    Raises:
        FileNotFoundError: no such checkpoint.
        CheckpointMismatchError: missing, unexpected, wrongly shaped or typed tensors, or a
            config that differs (all named).
        ValueError: a file that is not safetensors, a sidecar that is not a JSON object,
            non-finite weights, a model on the meta device.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    stem = _stem(path)
    weights = _file(stem, ".safetensors")
    if not weights.exists():
        raise FileNotFoundError(f"no checkpoint at {weights}")
    own = model.state_dict()
    on_meta = sorted(k for k, v in own.items() if v.device.type == "meta")
    if on_meta:
        raise ValueError(f"the model is on the meta device ({on_meta[0]}, ...): loading into it would do nothing; "
                         "call model.to_empty(device='cpu') first")
    meta_path = _file(stem, ".json")
    meta = _read_json(meta_path) if meta_path.exists() else {}
    _check_config(meta, model, config, weights.name)
    state = _read_weights(weights)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if state[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing from the file: {', '.join(missing)}")
        if unexpected:
            parts.append(f"not in the model: {', '.join(unexpected)}")
        if shapes:
            parts.append(f"shape mismatch: {'; '.join(shapes)}")
        raise CheckpointMismatchError(f"checkpoint {weights.name} does not match {type(model).__name__}: "
                                      + " | ".join(parts))
    _check_dtypes(state, own, f"checkpoint {weights.name}")
    bad = _non_finite(state)
    if bad:
        raise ValueError(f"checkpoint {weights.name} holds NaN or infinite values in {', '.join(bad)}: "
                         "it was saved from a diverged run or is damaged; retrain it")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k].to(v.dtype))
    return meta

"""Checkpoints: safetensors weights + a JSON of config and metrics, written atomically.

Weights are never unpickled: ``safetensors`` stores raw tensors only. Loading checks that
the file and the model agree tensor by tensor and refuses a mismatch with a message that
names the tensors.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
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
    stem = _stem(path)
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous().clone()
    meta = dict(meta or {})
    meta.setdefault("torch", torch.__version__)
    json_text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    _atomic_write(_file(stem, ".safetensors"), lambda tmp: save_file(tensors, tmp))
    _atomic_write(_file(stem, ".json"), lambda tmp: Path(tmp).write_text(json_text + "\n"))
    return stem


def read_meta(path) -> dict:
    """The JSON side of a checkpoint."""
    p = _file(_stem(path), ".json")
    if not p.exists():
        raise FileNotFoundError(f"no checkpoint metadata at {p}")
    return json.loads(p.read_text())


def load_checkpoint(path, model: torch.nn.Module) -> dict:
    """Load ``path.safetensors`` into ``model`` (in place) and return the JSON metadata.

    Raises:
        FileNotFoundError: no such checkpoint.
        CheckpointMismatchError: missing, unexpected or wrongly shaped tensors (all named).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    stem = _stem(path)
    weights = _file(stem, ".safetensors")
    if not weights.exists():
        raise FileNotFoundError(f"no checkpoint at {weights}")
    state = load_file(str(weights))
    own = model.state_dict()
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
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k].to(v.dtype))
    meta_path = _file(stem, ".json")
    return json.loads(meta_path.read_text()) if meta_path.exists() else {}

"""Recipes for the checkpoints the course ships.

A recipe says how to build a model from its config and how to train it. Each chapter that
ships a checkpoint has a module here (``vislab/recipes/vit.py`` ...) that calls
:func:`register`. ``python -m vislab.pretrain NAME`` runs one and writes
``data/checkpoints/NAME.safetensors`` + ``NAME.json``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Recipe", "register", "get", "names"]


@dataclass(frozen=True)
class Recipe:
    """How to make one shipped checkpoint.

    Attributes:
        name: the checkpoint's file stem, e.g. "vit_shapes".
        build: ``build(config) -> nn.Module``, a fresh (untrained) model.
        train: ``train(model, seed, device, max_seconds) -> dict`` of metrics measured
            at the end (accuracies...), training ``model`` in place.
        config: the model's config as a JSON-serialisable dict.
        seed: the seed the shipped checkpoint was trained with.
        description: one line for ``python -m vislab.pretrain --list``.
        dtype: storage dtype of the shipped weights ("float32" or "float16").
    """

    name: str
    build: Callable
    train: Callable
    config: dict = field(default_factory=dict)
    seed: int = 0
    description: str = ""
    dtype: str = "float32"


_REGISTRY: dict = {}
_LOADED = False


def register(recipe: Recipe) -> Recipe:
    """Add a recipe; names are unique."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"expected a Recipe, got {type(recipe).__name__}")
    if recipe.name in _REGISTRY and _REGISTRY[recipe.name] is not recipe:
        raise ValueError(f"a recipe named {recipe.name!r} is already registered")
    _REGISTRY[recipe.name] = recipe
    return recipe


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    _LOADED = True


def names() -> list:
    """Names of every registered recipe."""
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> Recipe:
    """The recipe called ``name``."""
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"no recipe {name!r}; available: {sorted(_REGISTRY) or 'none'}")
    return _REGISTRY[name]

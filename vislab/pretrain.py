"""Shipped checkpoints: train them (``python -m vislab.pretrain NAME``) or load them.

    python -m vislab.pretrain --list
    python -m vislab.pretrain vit_shapes            # retrains data/checkpoints/vit_shapes.*
    python -m vislab.pretrain vit_shapes --seed 1 --out /tmp/vit_seed1

The JSON beside each checkpoint records the config, the command, the seed, the training
seconds, torch's version and the metrics measured at the end of training. Chapters call
:func:`load_or_train` behind a visible ``USE_CHECKPOINT`` switch.
"""

from __future__ import annotations

import argparse
import inspect
import shlex
import sys
import time

import torch

from vislab import recipes
from vislab.checkpoints import checkpoint_path, load_checkpoint, save_checkpoint
from vislab.runtime import budget_scale, get_device, seed_everything, set_threads

__all__ = ["train_recipe", "load_or_train", "accepts_scale", "main"]


def accepts_scale(recipe) -> bool:
    """True when the recipe's ``train`` takes a ``scale`` keyword (a multiplier of its step budget)."""
    return "scale" in inspect.signature(recipe.train).parameters


def train_recipe(name: str, seed: int | None = None, device=None, out=None, max_seconds: float | None = None,
                 command: str | None = None, scale: int | None = None):
    """Build and train a recipe's model, save it, and return ``(model, meta)``.

    ``scale`` multiplies the recipe's step budget (default: :func:`vislab.runtime.budget_scale`,
    1 on CPU and 4 on CUDA) for recipes whose ``train`` accepts it; the others train their CPU
    budget and say so. The shipped checkpoints are the CPU budget (scale 1); ``meta["scale"]``
    records what was used.
    """
    recipe = recipes.get(name)
    seed = recipe.seed if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise ValueError(f"max_seconds must be a positive number or None, got {max_seconds!r}")
    device = torch.device(device) if device is not None else get_device()
    if scale is None:
        scale = budget_scale(device)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int (a multiple of the step budget), got {scale!r}")
    kwargs = {}
    if scale != 1:
        if accepts_scale(recipe):
            kwargs["scale"] = scale
        else:
            print(f"{name}: this recipe has a fixed step budget; training it at scale 1, not {scale}")
            scale = 1
    seed_everything(seed)
    model = recipe.build(recipe.config).to(device)
    t0 = time.perf_counter()
    metrics = recipe.train(model, seed, device, max_seconds, **kwargs)
    seconds = time.perf_counter() - t0
    meta = {"name": name, "config": recipe.config, "seed": seed, "seconds": round(seconds, 1),
            "device": str(device), "threads": torch.get_num_threads(), "scale": scale, "metrics": metrics,
            "command": command or f"python -m vislab.pretrain {name}" + (f" --seed {seed}" if seed != recipe.seed else "")
            + (f" --scale {scale}" if scale != 1 else ""),
            "description": recipe.description}
    target = out if out is not None else checkpoint_path(name)
    dtype = torch.float16 if recipe.dtype == "float16" else None
    save_checkpoint(target, model.cpu(), meta, dtype=dtype)
    model.to(device)
    return model, meta


def load_or_train(name: str, device=None, use_checkpoint: bool = True):
    """Load the shipped checkpoint ``name`` if present (and wanted), else train it now.

    Returns ``(model, meta)`` with the model in eval mode on ``device``; ``meta`` is the
    checkpoint's JSON (metrics measured when it was trained) or, after training here, the
    fresh metrics.
    """
    if not isinstance(use_checkpoint, bool):
        raise TypeError(f"use_checkpoint must be True or False, got {use_checkpoint!r}")
    recipe = recipes.get(name)
    device = torch.device(device) if device is not None else get_device()
    path = checkpoint_path(name)
    if use_checkpoint and path.with_name(f"{path.name}.safetensors").exists():
        model = recipe.build(recipe.config)
        meta = load_checkpoint(path, model)
        print(f"loaded checkpoint {name} (trained in {meta.get('seconds', '?')} s with "
              f"`{meta.get('command', '?')}`)")
        return model.to(device).eval(), meta
    why = "USE_CHECKPOINT is False" if not use_checkpoint else f"no file at {path}.safetensors"
    print(f"training {name} now ({why}); this takes a few minutes on a laptop CPU")
    model, meta = train_recipe(name, device=device, out=path.parent / f"{name}.local")
    return model.eval(), meta


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vislab.pretrain", description=__doc__.split("\n")[0])
    parser.add_argument("name", nargs="?", help="recipe to train")
    parser.add_argument("--list", action="store_true", help="list the recipes")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: vislab's measured choice)")
    parser.add_argument("--out", default=None, help="output stem (default: data/checkpoints/NAME)")
    parser.add_argument("--max-seconds", type=float, default=None, help="wall-clock guard")
    parser.add_argument("--scale", type=int, default=None,
                        help="multiply the step budget (default: 1 on CPU, 4 on CUDA; shipped checkpoints use 1)")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for n in recipes.names():
            r = recipes.get(n)
            print(f"{n:20s} {r.description}")
        return 0
    set_threads(args.threads)
    command = "python -m vislab.pretrain " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    _, meta = train_recipe(args.name, seed=args.seed, device=args.device, out=args.out,
                           max_seconds=args.max_seconds, command=command, scale=args.scale)
    print(f"{args.name}: {meta['seconds']} s, metrics {meta['metrics']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Chapter 4's batch-size experiment: CLIP's softmax loss against SigLIP's sigmoid loss.

Same towers (the sigmoid run starts from a copy of the CLIP run's initial model), same
examples in the same order (:class:`vislab.recipes.siglip.ExampleStream`), same optimiser and
schedule; only the loss and its scale/bias parameters differ. For every batch size the
number of examples seen is the same, so smaller batches take more steps. Three losses:

- ``clip``: symmetric InfoNCE, t initialised to 1/0.07 and clamped at 100 (chapter 3);
- ``sigmoid``: the paper's sigmoid loss with the paper's init t = 10, b = -10, t' and b in their
  own AdamW group (:func:`vislab.recipes.siglip.param_groups`) at lr ``budget / steps``;
- ``sigmoid_capped``: the control, the same loss and init with t' and b at the towers' lr 1e-3,
  which moves them by at most about steps x 1e-3 (0.1 to 1.5 here): b stays near -10.

CLIP's t' gets the same scalar group as ``sigmoid`` (same optimiser for both losses). A scalar
budget of 20 means lr x steps = 20: over the warm-up + cosine schedule the scalars can move by
about 10 whatever the batch size (the paper's runs, 1e-3 over several hundred thousand steps,
allow far more).

Writes a small JSON that chapter 4 loads (every run's metrics, seconds and loss curve):

    python benchmarks/siglip_batch.py                       # the shipped data/siglip_batch.json
    python benchmarks/siglip_batch.py --examples 3072 --seeds 0 --out /tmp/quick.json
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import torch

from vislab.paths import repo_root
from vislab.recipes.siglip import evaluate, make_pair, test_set, train_contrastive
from vislab.runtime import set_threads

LOSSES = ("clip", "sigmoid", "sigmoid_capped")


def run_one(loss: str, batch_size: int, examples: int, seed: int, lr: float, budget: float, test) -> dict:
    clip, sig = make_pair(seed)
    model, kind = (clip, "clip") if loss == "clip" else (sig, "sigmoid")
    steps = examples // batch_size
    scalar_lr = None if loss == "sigmoid_capped" else budget / steps
    t0 = time.perf_counter()
    hist = train_contrastive(model, kind, batch_size, examples, seed, lr=lr, scalar_lr=scalar_lr,
                             log_every=max(1, steps // 40))
    seconds = time.perf_counter() - t0
    metrics = evaluate(model, test)
    curve = {"step": hist.steps, "loss": [round(v, 4) for v in hist.metrics["loss"]],
             "t": [round(v, 3) for v in hist.metrics["t"]]}
    if kind == "sigmoid":
        curve["b"] = [round(v, 3) for v in hist.metrics["b"]]
    row = {"loss": loss, "batch_size": batch_size, "seed": seed, "examples": examples, "steps": steps,
           "scalar_lr": scalar_lr if scalar_lr is None else round(scalar_lr, 6),
           "seconds": round(seconds, 1), **{k: round(v, 4) for k, v in metrics.items()}, "curve": curve,
           "final_t": round(model.logit_scale.exp().item(), 3)}
    if kind == "sigmoid":
        row["final_b"] = round(model.logit_bias.item(), 3)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    p.add_argument("--examples", type=int, default=12288, help="examples seen by every run")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--scalar-budget", type=float, default=20.0, help="lr x steps of t' and b (sigmoid, clip)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(repo_root() / "data" / "siglip_batch.json"))
    args = p.parse_args(argv)
    set_threads(args.threads)
    command = "python benchmarks/siglip_batch.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    test = test_set()
    out = Path(args.out)
    rows = []
    if out.exists():   # resume: keep finished runs with the same settings
        old = json.loads(out.read_text())
        if old.get("settings", {}).get("examples") == args.examples and old.get("settings", {}).get("lr") == args.lr \
                and old.get("settings", {}).get("scalar_budget") == args.scalar_budget:
            rows = old["runs"]
    done = {(r["loss"], r["batch_size"], r["seed"]) for r in rows}
    t_start = time.perf_counter()
    for seed in args.seeds:
        for B in args.batch_sizes:
            for loss in args.losses:
                if (loss, B, seed) in done:
                    continue
                row = run_one(loss, B, args.examples, seed, args.lr, args.scalar_budget, test)
                rows.append(row)
                print(f"{loss:14s} B={B:4d} seed={seed} {row['seconds']:7.1f}s caption_top1={row['caption_top1']:.3f} "
                      f"shape={row['shape_acc']:.3f} i2t_R@1={row['i2t_R@1']:.3f} t={row['final_t']}"
                      + (f" b={row['final_b']}" if 'final_b' in row else ""), flush=True)
                payload = {"description": __doc__.split("\n\n")[0],
                           "command": command.strip(),
                           "settings": {"examples": args.examples, "lr": args.lr, "scalar_budget": args.scalar_budget,
                                        "threads": args.threads,
                                        "optimizer": "AdamW(0.9, 0.98), wd 0.05 on matrices, 5% warm-up + cosine; "
                                                     "t' and b at lr scalar_budget/steps (capped: 1e-3)",
                                        "data": "ShapeWorld(image_size=32, nuisance='none', max_shapes=1)",
                                        "towers": "CLIPConfig() defaults: ViT 32px/4, width 64, depth 3; text width 64, depth 2",
                                        "torch": torch.__version__},
                           "runs": rows}
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"done in {time.perf_counter() - t_start:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

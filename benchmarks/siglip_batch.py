"""Chapter 4's batch-size experiment: CLIP's softmax loss against SigLIP's sigmoid loss.

Same towers (the sigmoid run starts from a copy of the CLIP run's initial model), same
examples in the same order (:class:`vislab.recipes.siglip.ExampleStream`), same optimiser and
schedule; only the loss and its scale/bias parameters differ. For every batch size the
number of examples seen is the same, so smaller batches take more steps. Three losses:

- ``clip``: symmetric InfoNCE, t initialised to 1/0.07 and clamped at 100 (chapter 3);
- ``sigmoid``: the paper's sigmoid loss with the paper's init t = 10, b = -10;
- ``sigmoid_prior``: the same loss with b initialised to log(1/(B-1)), the log-odds of a
  positive in a batch of B (b = -10 is that value for B of about 22,000).

Writes a small JSON that chapter 4 loads (every run's metrics, seconds and loss curve):

    python benchmarks/siglip_batch.py                       # the shipped data/siglip_batch.json
    python benchmarks/siglip_batch.py --examples 4096 --seeds 0 --out /tmp/quick.json
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

LOSSES = ("clip", "sigmoid", "sigmoid_prior")


def run_one(loss: str, batch_size: int, examples: int, seed: int, lr: float, test) -> dict:
    clip, sig = make_pair(seed)
    if loss == "clip":
        model, kind = clip, "clip"
    else:
        model, kind = sig, "sigmoid"
        if loss == "sigmoid_prior":
            with torch.no_grad():
                model.logit_bias.fill_(math.log(1 / (batch_size - 1)))
    t0 = time.perf_counter()
    hist = train_contrastive(model, kind, batch_size, examples, seed, lr=lr, log_every=max(1, examples // batch_size // 50))
    seconds = time.perf_counter() - t0
    metrics = evaluate(model, test)
    row = {"loss": loss, "batch_size": batch_size, "seed": seed, "examples": examples, "steps": examples // batch_size,
           "seconds": round(seconds, 1), **{k: round(v, 4) for k, v in metrics.items()},
           "curve": {"step": hist.steps, "loss": [round(v, 4) for v in hist.metrics["loss"]]}}
    if kind == "sigmoid":
        row["final_t"] = round(model.logit_scale.exp().item(), 3)
        row["final_b"] = round(model.logit_bias.item(), 3)
    else:
        row["final_t"] = round(model.logit_scale.exp().item(), 3)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    p.add_argument("--examples", type=int, default=25600, help="examples seen by every run")
    p.add_argument("--lr", type=float, default=1e-3)
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
        if old.get("settings", {}).get("examples") == args.examples and old.get("settings", {}).get("lr") == args.lr:
            rows = old["runs"]
    done = {(r["loss"], r["batch_size"], r["seed"]) for r in rows}
    t_start = time.perf_counter()
    for seed in args.seeds:
        for B in args.batch_sizes:
            for loss in args.losses:
                if (loss, B, seed) in done:
                    continue
                row = run_one(loss, B, args.examples, seed, args.lr, test)
                rows.append(row)
                print(f"{loss:14s} B={B:4d} seed={seed} {row['seconds']:7.1f}s caption_top1={row['caption_top1']:.3f} "
                      f"shape={row['shape_acc']:.3f} i2t_R@1={row['i2t_R@1']:.3f} t={row['final_t']}"
                      + (f" b={row['final_b']}" if 'final_b' in row else ""), flush=True)
                payload = {"description": __doc__.split("\n\n")[0],
                           "command": command.strip(),
                           "settings": {"examples": args.examples, "lr": args.lr, "threads": args.threads,
                                        "optimizer": "AdamW(0.9, 0.98), wd 0.05 on matrices, 5% warm-up + cosine",
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

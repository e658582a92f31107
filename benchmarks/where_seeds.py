"""Chapter 2's higher-resolution table over several training seeds.

The chapter's table rests on the shipped `vit_where` (learned table) and `vit_where_rope`
(2D RoPE) checkpoints, one seed each. This script trains both recipes again under other seeds
(``python -m vislab.pretrain``'s recipes, same step budget) and scores the seven ways of feeding
a 64 px image (:func:`vislab.where.resolution_strategies`) and the controls on the same 1000
test scenes, so that the chapter can show the spread over seeds next to its one-seed table.
Seed 0 is read from the shipped checkpoints unless ``--retrain-shipped`` is given.

    python benchmarks/where_seeds.py                          # the shipped data/where_seeds.json
    python benchmarks/where_seeds.py --seeds 1 --out /tmp/where.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from vislab.paths import repo_root
from vislab.pretrain import load_or_train, train_recipe
from vislab.runtime import set_threads
from vislab.where import (majority_share, positions_zeroed, probs, resolution_strategies, strategy_hits,
                          where_set)

RECIPES = ("vit_where", "vit_where_rope")


def score(learned, rope, n_test: int) -> dict:
    """Correct answers (of ``n_test``) of every strategy at 64 px and of the 32 px rows and controls."""
    lo, lo_y = where_set(n_test)
    hi, hi_y = where_set(n_test, image_size=64)

    def hits(model, x, y):
        return int((probs(model, x).argmax(-1) == y).sum())

    return {**strategy_hits(resolution_strategies(learned, rope, 64), hi, hi_y),
            "chance: always the most frequent quadrant": round(majority_share(hi_y) * n_test),
            "learned table zeroed (32 px)": hits(positions_zeroed(learned), lo, lo_y),
            "RoPE turned off (32 px)": hits(positions_zeroed(rope), lo, lo_y),
            "trained size (32 px), learned table": hits(learned, lo, lo_y),
            "trained size (32 px), 2D RoPE": hits(rope, lo, lo_y)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--retrain-shipped", action="store_true", help="train seed 0 too instead of loading it")
    p.add_argument("--out", default=str(repo_root() / "data" / "where_seeds.json"))
    args = p.parse_args(argv)
    set_threads(args.threads)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            models, seconds, source = {}, {}, {}
            for name in RECIPES:
                if seed == 0 and not args.retrain_shipped:
                    models[name], meta = load_or_train(name, device="cpu")
                    source[name] = "shipped checkpoint"
                else:
                    models[name], meta = train_recipe(name, seed=seed, device="cpu", out=Path(tmp) / f"{name}_{seed}",
                                                      scale=1)
                    source[name] = "trained by this script"
                seconds[name] = meta["seconds"]
            t0 = time.perf_counter()
            row = {"seed": seed, "source": source, "train_seconds": seconds,
                   "hits": score(models["vit_where"].eval(), models["vit_where_rope"].eval(), args.n_test)}
            print(f"seed {seed}: scored in {time.perf_counter() - t0:.1f} s:",
                  {k: v / args.n_test for k, v in row["hits"].items()}, flush=True)
            runs.append(row)
    payload = {"command": " ".join(["python benchmarks/where_seeds.py", *map(shlex.quote, argv or sys.argv[1:])]),
               "n_test": args.n_test, "threads": args.threads, "torch": torch.__version__, "runs": runs}
    Path(args.out).write_text(json.dumps(payload, indent=1) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

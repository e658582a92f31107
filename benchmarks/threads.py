"""One CPU thread or two? The training step of the course's tiny ViT, measured both ways.

Usage (from the repository root):

    python benchmarks/threads.py                     # vislab's ViT, 1 vs 2 threads, 7 rounds
    python benchmarks/threads.py --model torch       # torch.nn.TransformerEncoder instead
    python benchmarks/threads.py --threads 1 2 4 --rounds 15

What it measures: a full training step (forward, cross-entropy on a linear head over CLS,
backward, AdamW step) of a ViT of width 128, 4 blocks, 4 heads, MLP 512, on 32x32 images cut
into 4x4 patches (64 patches + CLS = 65 tokens), batch 64: the size of the encoders the
chapters train. Each round runs every thread count once, in an order that rotates from round
to round, inside one process (so a busy neighbour slows every setting alike); a setting's
time is the median of ``--steps`` steps after one warm-up step. Reported per thread count:
the median over rounds, the spread (min-max and the interquartile range as a % of the
median), the CPU seconds per step, and in how many rounds it beat one thread.

``vislab.runtime.DEFAULT_CPU_THREADS`` (what ``setup()`` uses on a CPU) is 1; the last line
says whether this measurement supports that choice. Results go to
``benchmarks/results/threads.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from vislab.runtime import DEFAULT_CPU_THREADS

WIDTH, DEPTH, HEADS, MLP = 128, 4, 4, 512
IMAGE, PATCH, BATCH, CLASSES = 32, 4, 64, 7
RESULTS = Path(__file__).resolve().parent / "results" / "threads.json"


class EncoderViT(nn.Module):
    """A ViT from torch's own layers: patch conv, CLS, learned positions, TransformerEncoder."""

    def __init__(self):
        super().__init__()
        n = (IMAGE // PATCH) ** 2
        self.patch_embed = nn.Conv2d(3, WIDTH, PATCH, stride=PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, WIDTH) * 0.02)
        layer = nn.TransformerEncoderLayer(WIDTH, HEADS, MLP, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, DEPTH, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, CLASSES)

    def forward(self, images):
        x = self.patch_embed(images).flatten(2).transpose(1, 2)             # (B, N, D)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)    # (B, N+1, D)
        x = self.encoder(x + self.pos_embed)
        return self.head(self.norm(x[:, 0]))                                # (B, K)


def build(kind: str) -> nn.Module:
    if kind == "vislab":
        from vislab.vit import ViT, ViTConfig

        return ViT(ViTConfig(image_size=IMAGE, patch_size=PATCH, dim=WIDTH, depth=DEPTH, heads=HEADS,
                             mlp_ratio=MLP / WIDTH, num_classes=CLASSES))
    return EncoderViT()


def make_step(model):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, 3, IMAGE, IMAGE, generator=g)
    y = torch.randint(0, CLASSES, (BATCH,), generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def measure(step, threads: int, steps: int) -> tuple:
    """Median wall and CPU seconds per step with ``threads`` intra-op threads (after a warm-up)."""
    torch.set_num_threads(threads)
    step()
    wall, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def summarise(values):
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values), "iqr_pct": 100 * (q[2] - q[0]) / med}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("vislab", "torch"), default="vislab")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting and round")
    parser.add_argument("--json", default=str(RESULTS))
    args = parser.parse_args(argv)
    if any(t < 1 for t in args.threads) or 1 not in args.threads:
        parser.error("--threads must be positive and include 1 (the reference)")

    before = torch.get_num_threads()
    torch.manual_seed(0)
    try:
        model = build(args.model)
    except ImportError:
        print("vislab.vit is not available; using torch.nn.TransformerEncoder")
        args.model = "torch"
        model = build("torch")
    model.train()
    step = make_step(model)
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    print(f"threads benchmark: {args.model} ViT width {WIDTH}, depth {DEPTH}, {(IMAGE // PATCH) ** 2 + 1} tokens, "
          f"batch {BATCH}, training step; torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"torch default {before} threads, load average {load}")
    wall = {t: [] for t in args.threads}
    cpu = {t: [] for t in args.threads}
    order = list(args.threads)
    for r in range(args.rounds):
        for t in order:
            w, c = measure(step, t, args.steps)
            wall[t].append(w)
            cpu[t].append(c)
        print(f"  round {r + 1}/{args.rounds}: " + ", ".join(f"{t} thr {wall[t][-1] * 1000:6.0f} ms"
                                                             for t in args.threads), flush=True)
        order = order[1:] + order[:1]                       # rotate who goes first
    torch.set_num_threads(before)

    rows = []
    ref = statistics.median(wall[1])
    for t in args.threads:
        s = summarise(wall[t])
        wins = sum(w < w1 for w, w1 in zip(wall[t], wall[1])) if t != 1 else None
        rows.append({"threads": t, "median_ms": round(1000 * s["median"], 1), "min_ms": round(1000 * s["min"], 1),
                     "max_ms": round(1000 * s["max"], 1), "iqr_pct": round(s["iqr_pct"], 1),
                     "cpu_ms": round(1000 * statistics.median(cpu[t]), 1),
                     "speedup_vs_1": round(ref / s["median"], 3), "rounds_faster_than_1": wins,
                     "images_per_s": round(BATCH / s["median"], 1), "wall_ms": [round(1000 * w, 1) for w in wall[t]]})
    head = f"{'threads':>7}{'median ms':>11}{'min-max ms':>16}{'IQR %':>7}{'CPU ms':>8}{'img/s':>8}{'vs 1':>6}  faster than 1"
    print("\nTraining step, median over rounds (each round: median of "
          f"{args.steps} steps)\n{head}\n{'-' * len(head)}")
    for r in rows:
        wins = "-" if r["rounds_faster_than_1"] is None else f"{r['rounds_faster_than_1']}/{args.rounds} rounds"
        print(f"{r['threads']:>7}{r['median_ms']:>11.0f}{r['min_ms']:>8.0f}-{r['max_ms']:<7.0f}{r['iqr_pct']:>7.0f}"
              f"{r['cpu_ms']:>8.0f}{r['images_per_s']:>8.0f}{r['speedup_vs_1']:>6.2f}  {wins}")
    best = min(rows, key=lambda r: r["median_ms"])
    two = next((r for r in rows if r["threads"] == 2), None)
    if two is not None:
        # "supports 1" when 2 threads do not give a clear win: < 10% faster at the median or faster in
        # fewer than 2/3 of the rounds, while burning more CPU
        clear_win = two["speedup_vs_1"] >= 1.10 and two["rounds_faster_than_1"] >= 2 * args.rounds / 3
        verdict = ("does NOT support" if clear_win else "supports") + f" DEFAULT_CPU_THREADS = {DEFAULT_CPU_THREADS}"
        print(f"\n2 threads vs 1: {two['speedup_vs_1']:.2f}x at the median, faster in "
              f"{two['rounds_faster_than_1']}/{args.rounds} rounds, spread {two['iqr_pct']:.0f}% vs "
              f"{rows[0]['iqr_pct']:.0f}% (IQR), CPU per step {two['cpu_ms']:.0f} vs {rows[0]['cpu_ms']:.0f} ms "
              f"-> this measurement {verdict}.")
    else:
        verdict = f"fastest: {best['threads']} thread(s)"
    out = {"model": args.model, "torch": torch.__version__, "cpus": os.cpu_count(), "python": platform.python_version(),
           "load_average_at_start": load, "rounds": args.rounds, "steps": args.steps, "rows": rows,
           "default_cpu_threads": DEFAULT_CPU_THREADS, "verdict": verdict}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

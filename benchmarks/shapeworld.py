"""ShapeWorld: how fast it is generated, and how far raw pixels get on its tasks.

Usage (from the repository root):

    python benchmarks/shapeworld.py                  # both parts, 1 thread (the course's setting)
    python benchmarks/shapeworld.py --part rate      # only the generation rate
    python benchmarks/shapeworld.py --part baselines --n-train 4000 --n-test 2000

Part 1 (generation rate). ``ShapeWorld(image_size=32, nuisance=PRESET).sample(10_000)`` for
each nuisance preset, with one shape per image (the default) and with 1-3 shapes; best of
``--repeats`` runs (the foundation's bar: 10,000 images at 32x32 in under 5 s). The CPU
seconds of the process are reported too: on a shared machine the wall clock also counts the
time other processes hold the cores, the CPU time does not.

Part 2 (raw-pixel baselines). Each image flattened to a 3,072-vector (``vislab.probes.
pixel_features``) and fed to a logistic-regression probe and a k-NN classifier (k=20, cosine),
exactly the evaluations the chapters apply to learned features. Tasks: shape (7 classes),
colour (8), position (9 cells of a 3x3 grid) on one-shape scenes, and count (1-3 shapes) on
scenes with 1-3 shapes. Train and test are ShapeWorld's "train" and "test" splits (seed 0),
2,000 and 1,000 images by default (the sizes chapter 1 uses). "majority" is the accuracy of
always answering the most frequent test label. Encoders trained in the chapters should beat
these numbers by a wide margin on the tasks they claim to solve.

The table is printed and written to ``benchmarks/results/shapeworld.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import torch

from vislab.probes import knn_accuracy, linear_probe_accuracy, pixel_features
from vislab.runtime import set_threads
from vislab.shapes import ShapeWorld

PRESETS = ("none", "medium", "hard")
TASKS = {  # task -> (label key, ShapeWorld options, number of classes)
    "shape": ("shape", dict(), 7),
    "colour": ("color", dict(), 8),
    "position": ("position", dict(), 9),
    "count": ("count", dict(min_shapes=1, max_shapes=3), 3),
}
RESULTS = Path(__file__).resolve().parent / "results" / "shapeworld.json"


def generation_rate(n: int, repeats: int, image_size: int = 32) -> list:
    rows = []
    for preset in PRESETS:
        for shapes in (1, 3):
            world = ShapeWorld(image_size=image_size, nuisance=preset, min_shapes=1, max_shapes=shapes)
            world.sample(64, seed=123)                           # warm-up (imports, allocator)
            times, cpu = [], []
            for r in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                batch = world.sample(n, "train", seed=r)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                assert batch.images.shape == (n, 3, image_size, image_size)
            best = min(times)
            rows.append({"nuisance": preset, "shapes": "1" if shapes == 1 else "1-3", "n": n,
                         "image_size": image_size, "best_s": round(best, 3),
                         "median_s": round(sorted(times)[len(times) // 2], 3),
                         "images_per_s": round(n / best), "best_cpu_s": round(min(cpu), 3),
                         "times_s": [round(t, 3) for t in times], "cpu_s": [round(t, 3) for t in cpu]})
            print(f"  {preset:<7} shapes {rows[-1]['shapes']:<4} best {best:6.2f} s wall, {min(cpu):5.2f} s CPU "
                  f"({n / best:,.0f} images/s; runs {', '.join(f'{t:.2f}' for t in times)})", flush=True)
    return rows


def majority(labels: torch.Tensor) -> float:
    return labels.bincount().max().item() / len(labels)


def pixel_baselines(n_train: int, n_test: int, k: int, max_iter: int, image_size: int = 32) -> list:
    rows = []
    for preset in PRESETS:
        for task, (key, options, classes) in TASKS.items():
            world = ShapeWorld(image_size=image_size, nuisance=preset, **options)
            train = world.sample(n_train, "train", seed=0)
            test = world.sample(n_test, "test", seed=0)
            tx, vx = pixel_features(train.images), pixel_features(test.images)
            ty, vy = train.labels[key], test.labels[key]
            if key == "count":
                ty, vy = ty - 1, vy - 1                          # classes 0..2
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")                  # lbfgs may stop at max_iter on pixels
                linear = linear_probe_accuracy(tx, ty, vx, vy, max_iter=max_iter)
            t_lin = time.perf_counter() - t0
            t0 = time.perf_counter()
            knn = knn_accuracy(tx, ty, vx, vy, k=k)
            t_knn = time.perf_counter() - t0
            rows.append({"nuisance": preset, "task": task, "classes": classes, "chance": round(1 / classes, 4),
                         "majority": round(majority(vy), 4), "linear": round(linear, 4), "knn": round(knn, 4),
                         "linear_s": round(t_lin, 1), "knn_s": round(t_knn, 1)})
            print(f"  {preset:<7} {task:<9} linear {linear:6.1%}  k-NN {knn:6.1%}  "
                  f"(majority {majority(vy):5.1%}; {t_lin:.1f} s + {t_knn:.1f} s)", flush=True)
    return rows


def rate_table(rows) -> str:
    lines = [f"{'nuisance':<9}{'shapes':<8}{'images':>8}{'best s':>9}{'images/s':>11}{'CPU s':>8}",
             "-" * 53]
    lines += [f"{r['nuisance']:<9}{r['shapes']:<8}{r['n']:>8,}{r['best_s']:>9.2f}{r['images_per_s']:>11,}"
              f"{r['best_cpu_s']:>8.2f}" for r in rows]
    return "\n".join(lines)


def baseline_table(rows) -> str:
    tasks = list(TASKS)
    head = f"{'nuisance':<9}{'probe':<8}" + "".join(f"{t:>10}" for t in tasks)
    lines = [head, "-" * len(head)]
    for preset in PRESETS:
        got = {r["task"]: r for r in rows if r["nuisance"] == preset}
        for probe in ("linear", "knn", "majority"):
            name = {"linear": "linear", "knn": "k-NN", "majority": "majority"}[probe]
            lines.append(f"{preset:<9}{name:<8}" + "".join(f"{got[t][probe]:>10.1%}" for t in tasks))
    chance = "".join(f"{1 / TASKS[t][2]:>10.1%}" for t in tasks)
    lines.append(f"{'(chance)':<17}{chance}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("all", "rate", "baselines"), default="all")
    parser.add_argument("--n", type=int, default=10_000, help="images per generation run")
    parser.add_argument("--repeats", type=int, default=3, help="generation runs per preset (best is reported)")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--max-iter", type=int, default=1000, help="logistic regression iterations")
    parser.add_argument("--threads", type=int, default=1, help="torch + BLAS threads (course default: 1)")
    parser.add_argument("--json", default=str(RESULTS))
    args = parser.parse_args(argv)

    threads = set_threads(args.threads)
    info = {"torch": torch.__version__, "threads": threads, "cpus": os.cpu_count(),
            "python": platform.python_version(), "machine": platform.machine(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}
    print(f"ShapeWorld benchmark: torch {info['torch']}, {threads} thread(s), {info['cpus']} CPUs, "
          f"load average {info['load_average_at_start']}")
    out = {"info": info, "args": vars(args)}
    if args.part in ("all", "rate"):
        print(f"\n[1] generation rate: {args.n:,} images at 32x32, best of {args.repeats}")
        out["rate"] = generation_rate(args.n, args.repeats)
    if args.part in ("all", "baselines"):
        print(f"\n[2] raw-pixel baselines: {args.n_train} train / {args.n_test} test images at 32x32")
        out["baselines"] = pixel_baselines(args.n_train, args.n_test, args.k, args.max_iter)
    if "rate" in out:
        print("\nGeneration rate (10,000 images must take < 5 s)\n" + rate_table(out["rate"]))
    if "baselines" in out:
        print(f"\nRaw-pixel baselines (accuracy on the test split; linear probe = logistic regression on "
              f"standardised pixels, k-NN k={args.k} cosine)\n" + baseline_table(out["baselines"]))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

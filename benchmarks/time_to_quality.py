"""Time to quality: wall-clock training seconds until generated digits reach Fréchet distances
that good digits reach, for gankit's presets and for the textbook eager loop; final precision,
recall and coverage. Prints the curves and a table.

Every evaluation scores 2,500 samples of the sampling generator (fixed noise; labels drawn at the
data's class shares for a conditional model) against the 5,000 real digits with the suite
`gankit eval` uses (the built-in digit classifier's features); evaluation time is not counted.
Calibration (BENCHMARKS.md): real digits against themselves (halves) score FD 0.26-0.31,
precision/recall 0.87, coverage 0.97; uniform noise FD 88.

    python benchmarks/time_to_quality.py --seconds 60 --seeds 0 1 2

A run stops at its preset's step count if that comes first (a learning-rate decay ends there).
    python benchmarks/time_to_quality.py --fast      # one seed, 20 s, the three gankit presets
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from reference import ReferenceLoop

from gankit import load_data, resolve
from gankit.clusters import draw_labels
from gankit.config import DEFAULT_PRESETS
from gankit.metrics.evaluate import evaluate, reference
from gankit.training.trainer import Trainer

DEFAULT = DEFAULT_PRESETS.get("digits", "classic")  # what `gankit train` picks for the digits
RUNS = {
    f"gankit {DEFAULT} (default)": (DEFAULT, "gankit", []),
    "gankit classic": ("classic", "gankit", []),
    "gankit dcgan": ("dcgan", "gankit", []),
    "reference (textbook seed model)": ("seed", "reference", []),
    "reference (classic model, plain loop)": ("classic", "reference", []),
}
FINAL = ("precision", "recall", "coverage")


def curve(kind: str, preset: str, overrides: list[str], seed: int, seconds: float,
          every: float, num: int, ref) -> list[tuple[float, int, dict]]:
    """(training seconds, step, scores) every ``every`` seconds of training, up to ``seconds``
    or the config's ``train.steps`` (then scored once more), whichever comes first."""
    cfg = resolve(preset, overrides=overrides, values={"train": {"seed": seed}})
    torch.set_num_threads(cfg.train.threads or os.cpu_count() or 1)
    data = load_data(cfg.data)
    loop = Trainer(cfg, data) if kind == "gankit" else ReferenceLoop(cfg, data, seed=seed)
    lo, hi = loop.value_range if kind == "gankit" else _range(cfg)
    z = torch.randn(num, cfg.model.latent_dim, generator=torch.Generator().manual_seed(12345))
    share = getattr(loop, "label_share", None)
    y = None if share is None else draw_labels(share, num, torch.Generator().manual_seed(1))
    points, trained, step, next_eval = [], 0.0, 0, every
    while trained < seconds and step < cfg.train.steps:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < min(every, next_eval - trained) and step < cfg.train.steps:
            loop.train_step()
            step += 1
        trained += time.perf_counter() - t0
        if trained + 1e-9 >= next_eval or step == cfg.train.steps:
            with torch.no_grad():
                out = loop.generate(z) if y is None else loop.generate(z, y)
            images = ((out - lo) / (hi - lo)).clamp(0, 1)
            points.append((trained, step, evaluate(images, ref)))
            next_eval += every
    return points


def _range(cfg) -> tuple[float, float]:
    from gankit.models import output_range

    return output_range(cfg.model)


def main() -> None:
    """Run every configuration for every seed; print curves, times to each threshold, finals."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="training time per run")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between evaluations")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--thresholds", type=float, nargs="+", default=[5.0, 3.0, 2.0])
    ap.add_argument("--num", type=int, default=2500, help="samples per evaluation")
    ap.add_argument("--runs", nargs="*", default=list(RUNS), help="names of RUNS to include")
    ap.add_argument("--fast", action="store_true",
                    help="a quick check: seed 0, 20 s, the three gankit presets")
    args = ap.parse_args()
    if args.fast:
        args.seconds, args.seeds = min(args.seconds, 20.0), args.seeds[:1]
        args.runs = [r for r in args.runs if r.startswith("gankit")]
    ref = reference(load_data(resolve("classic").data))
    summary: dict[str, list[list[tuple[float, int, dict]]]] = {}
    for name in args.runs:
        preset, kind, overrides = RUNS[name]
        summary[name] = []
        for seed in args.seeds:
            pts = curve(kind, preset, overrides, seed, args.seconds, args.every, args.num, ref)
            summary[name].append(pts)
            print(f"{name} seed {seed}: " + " ".join(f"{t:.0f}s/{s}:{sc['fd']:.2f}"
                                                     for t, s, sc in pts), flush=True)
    threads = torch.get_num_threads()
    print(f"\ntraining seconds to FD <= each threshold ('-' = not within {args.seconds:.0f} s), "
          f"per seed, then median; final scores averaged over seeds {args.seeds}; "
          f"cpu {torch.backends.cpu.get_cpu_capability()}, last run on {threads} thread(s)")
    heads = [f"FD<={x:g}" for x in args.thresholds] + ["final FD", *FINAL]
    print(f"{'run':40s} " + " ".join(f"{h:>18s}" for h in heads))
    for name, runs in summary.items():
        cells = []
        for x in args.thresholds:
            hits = [next((t for t, _, sc in pts if sc["fd"] <= x), None) for pts in runs]
            per = "/".join("-" if t is None else f"{t:.0f}" for t in hits)
            med = (f" ({statistics.median(hits):.0f})" if all(t is not None for t in hits)
                   and len(hits) > 1 else "")
            cells.append(per + med)
        finals = [pts[-1][2] for pts in runs if pts]
        cells.append("/".join(f"{sc['fd']:.2f}" for sc in finals))
        cells += [f"{statistics.mean(sc[k] for sc in finals):.3f}" for k in FINAL]
        print(f"{name:40s} " + " ".join(f"{c:>18s}" for c in cells))


if __name__ == "__main__":
    main()

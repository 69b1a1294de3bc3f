"""Time to quality: wall-clock training seconds until generated digits reach a Fréchet distance
that well-formed digits reach, for gankit and for the textbook eager loop. Prints the curves.

The distance is measured on the built-in digit classifier's features (2,000 samples of the
sampling generator against the 5,000 real digits; evaluation time is not counted). Threshold
calibration (BENCHMARKS.md): real digits against themselves (halves) score 0.3, uniform noise
88; the default threshold 12.5 is where a classic run's grid shows well-formed digits of every
class, judged by eye.

    python benchmarks/time_to_quality.py --seconds 120 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from reference import ReferenceLoop

from gankit import load_data, resolve
from gankit.metrics.digit_classifier import extract_features, load_digit_classifier
from gankit.metrics.frechet import frechet_distance
from gankit.training.trainer import Trainer

RUNS = {
    "gankit classic": ("classic", "gankit", []),
    "reference (textbook seed model)": ("seed", "reference", []),
    "reference (classic model, plain loop)": ("classic", "reference", []),
}


def curve(kind: str, preset: str, overrides: list[str], seed: int, seconds: float,
          every: float, num: int, real_feats: torch.Tensor, clf) -> list[tuple[float, int, float]]:
    """(training seconds, step, FD) every ``every`` seconds of training, up to ``seconds``."""
    cfg = resolve(preset, overrides=overrides, values={"train": {"seed": seed}})
    torch.set_num_threads(cfg.train.threads or torch.get_num_threads())
    data = load_data(cfg.data)
    loop = Trainer(cfg, data) if kind == "gankit" else ReferenceLoop(cfg, data, seed=seed)
    lo, hi = loop.value_range if kind == "gankit" else _range(cfg)
    z = torch.randn(num, cfg.model.latent_dim, generator=torch.Generator().manual_seed(12345))
    points, trained, step, next_eval = [], 0.0, 0, every
    while trained < seconds:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < min(every, next_eval - trained):
            loop.train_step()
            step += 1
        trained += time.perf_counter() - t0
        if trained + 1e-9 >= next_eval:
            images = ((loop.generate(z) - lo) / (hi - lo)).clamp(0, 1)
            fd = frechet_distance(extract_features(images, 500, clf), real_feats)
            points.append((trained, step, fd))
            next_eval += every
    return points


def _range(cfg) -> tuple[float, float]:
    from gankit.models import output_range

    return output_range(cfg.model)


def main() -> None:
    """Run every configuration for every seed; print curves and the time to the threshold."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="training time per run")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between evaluations")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threshold", type=float, default=12.5)
    ap.add_argument("--num", type=int, default=2000)
    ap.add_argument("--runs", nargs="*", default=list(RUNS), help="names of RUNS to include")
    args = ap.parse_args()
    clf = load_digit_classifier()
    real = load_data(resolve("classic").data).images
    real_feats = extract_features(real, 500, clf)
    summary = {}
    for name in args.runs:
        preset, kind, overrides = RUNS[name]
        times = []
        for seed in args.seeds:
            pts = curve(kind, preset, overrides, seed, args.seconds, args.every, args.num,
                        real_feats, clf)
            hit = next((t for t, _, fd in pts if fd <= args.threshold), None)
            times.append(hit)
            print(f"{name} seed {seed}: " + " ".join(f"{t:.0f}s/{s}:{fd:.1f}" for t, s, fd in pts),
                  flush=True)
        summary[name] = times
    print(f"\ntime to FD <= {args.threshold} (training seconds; '-' = not within "
          f"{args.seconds:.0f} s)")
    print(f"{'run':40s} {'per seed':>30s} {'median':>8s}")
    for name, times in summary.items():
        per = " ".join("-" if t is None else f"{t:.0f}" for t in times)
        reached = [t for t in times if t is not None]
        med = (f"{statistics.median(times):.0f}" if len(reached) == len(times) else "-")
        print(f"{name:40s} {per:>30s} {med:>8s}")


if __name__ == "__main__":
    main()

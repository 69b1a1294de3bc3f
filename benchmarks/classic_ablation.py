"""Which stabilisers make the classic 128-wide MLP GAN train all ten digits? Prints a table.

Each variant starts from the textbook `seed` preset and adds measures one at a time. After a fixed
number of steps, 5,000 samples from the sampling generator are scored with the built-in digit
classifier: classes covered (each > 2% of samples), KL of the class histogram to the data's,
mean classifier confidence (a proxy for well-formed digits) and the Fréchet distance on the
classifier's features to the real digits (real-vs-real split: ~1).

    python benchmarks/classic_ablation.py --steps 6000 --seeds 0 1
"""

from __future__ import annotations

import argparse
import time

import torch

from gankit import load_data, resolve
from gankit.metrics.classes import class_coverage
from gankit.metrics.digit_classifier import load_digit_classifier
from gankit.metrics.frechet import frechet_distance
from gankit.training.trainer import Trainer

VARIANTS: dict[str, dict] = {
    "seed (textbook)": {},
    "+ tanh": {"model": {"output": "tanh"}},
    "+ tanh + SN": {"model": {"output": "tanh", "d_spectral_norm": True}},
    "+ tanh + EMA": {"model": {"output": "tanh"}, "train": {"ema": 0.999}},
    "+ tanh + SN + EMA": {"model": {"output": "tanh", "d_spectral_norm": True},
                          "train": {"ema": 0.999}},
    "+ tanh + SN + EMA + LS0.9": {"model": {"output": "tanh", "d_spectral_norm": True},
                                  "train": {"ema": 0.999}, "loss": {"real_label": 0.9}},
    "+ SN + EMA (sigmoid)": {"model": {"d_spectral_norm": True}, "train": {"ema": 0.999}},
}


def score(images: torch.Tensor, real: torch.Tensor, labels: torch.Tensor, clf) -> dict:
    """Class coverage, KL, confidence and Fréchet distance of images in [0, 1]."""
    with torch.no_grad():
        logits = torch.cat([clf(images[i:i + 1000]) for i in range(0, len(images), 1000)])
        feats = torch.cat([clf.features(images[i:i + 1000]) for i in range(0, len(images), 1000)])
        real_feats = torch.cat([clf.features(real[i:i + 1000]) for i in range(0, len(real), 1000)])
    probs = logits.softmax(1)
    covered, kl = class_coverage(probs.argmax(1), labels, 10, min_fraction=0.02)
    return {"classes": covered, "kl": kl, "conf": probs.max(1).values.mean().item(),
            "fd": frechet_distance(feats, real_feats)}


def main() -> None:
    """Run every variant for every seed and print one row each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="*", help="variant names to run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_data(resolve("seed").data)
    clf = load_digit_classifier()
    half = score(data.images[::2], data.images[1::2], data.labels, clf)
    print(f"real-vs-real (odd/even halves): classes {half['classes']} kl {half['kl']:.3f} "
          f"conf {half['conf']:.3f} fd {half['fd']:.2f}")
    print(f"{'variant':32s} {'seed':>4s} {'classes':>7s} {'KL':>6s} {'conf':>5s} {'FD':>7s} "
          f"{'sec':>5s}")
    for name, values in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        for seed in args.seeds:
            cfg = resolve("seed", values={**values, "train": {**values.get("train", {}),
                                                             "steps": args.steps, "seed": seed}})
            trainer = Trainer(cfg, data)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step()
            secs = time.perf_counter() - t0
            z = torch.randn(5000, cfg.model.latent_dim, generator=torch.Generator().manual_seed(1))
            lo, hi = trainer.value_range
            images = ((trainer.generate(z) - lo) / (hi - lo)).clamp(0, 1)
            s = score(images, data.images, data.labels, clf)
            print(f"{name:32s} {seed:4d} {s['classes']:7d} {s['kl']:6.3f} {s['conf']:5.3f} "
                  f"{s['fd']:7.2f} {secs:5.0f}", flush=True)


if __name__ == "__main__":
    main()

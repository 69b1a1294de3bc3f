"""What gives the best digits in a minute? Trains recipe variants on the built-in digits and
scores each at given steps with the suite `gankit eval` uses. Prints one row per variant and step.

Each variant is a preset with overrides, trained in process on one thread; at each step listed
in ``--at``, 2,500 samples of the sampling generator (fixed noise; labels drawn at the data's
class shares for conditional variants) are scored against the 5,000 real digits (FD, precision,
recall, coverage on the built-in digit classifier's features; classes and class KL). ``cpu s`` is
the process CPU time of training, a guide to an idle machine's wall clock on a shared one.

    python benchmarks/digits_ablation.py --at 1000 2000 3500
    python benchmarks/digits_ablation.py --only "conditional classic" --at 800 --seeds 0 1
"""

from __future__ import annotations

import argparse
import time

import torch

from gankit import load_data, resolve
from gankit.clusters import draw_labels
from gankit.evaluation import class_scores
from gankit.metrics.evaluate import evaluate, reference
from gankit.training.trainer import Trainer

COND = ["model.conditional=true"]
LR2 = ["train.lr_g=2e-4", "train.lr_d=2e-4"]  # the default's rates before 2026-12-03
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "classic": ("classic", []),
    "MLP 256-256": ("classic", ["model.g_hidden=[256,256]", "model.d_hidden=[256,256]"]),
    "MLP 512-512": ("classic", ["model.g_hidden=[512,512]", "model.d_hidden=[512,512]"]),
    "dcgan base 32": ("dcgan", []),
    "dcgan base 16": ("dcgan", ["model.base_channels=16"]),
    "dcgan base 16, conditional, no EMA": ("dcgan", ["model.base_channels=16", *COND,
                                                     "train.ema=0.0"]),
    "conditional classic": ("classic", COND),
    "conditional + lr_decay 0.5": ("classic", [*COND, "train.lr_decay=0.5"]),
    "conditional + lr 5e-4, lr_decay 0.5": ("classic", [*COND, "train.lr_decay=0.5",
                                                        "train.lr_g=5e-4", "train.lr_d=5e-4"]),
    "conditional + G 256-256, lr_decay 0.5": ("classic", [*COND, "train.lr_decay=0.5",
                                                          "model.g_hidden=[256,256]"]),
    "conditional + translation": ("classic", [*COND, 'reg.augment=["translation"]']),
    "digits (the default)": ("digits", []),
    "cgan": ("cgan", []),  # the conditional DCGAN preset (issue 14's within-class item)
    # on the default, now that it takes the fused step (issue 14, second round)
    "digits + EMA 0.9995": ("digits", ["train.ema=0.9995"]),
    "digits + EMA 0.998": ("digits", ["train.ema=0.998"]),
    "digits + D 256-256": ("digits", ["model.d_hidden=[256,256]"]),
    "digits + D 512": ("digits", ["model.d_hidden=[512]"]),
    "digits + batch 256": ("digits", ["train.batch_size=256"]),
    "digits + hinge": ("digits", ["loss.name=hinge"]),
    "digits + lr_d 4e-4, lr_g 1e-4": ("digits", ["train.lr_d=4e-4", "train.lr_g=1e-4"]),
    "digits + betas 0, 0.9": ("digits", ["train.betas_g=[0.0,0.9]", "train.betas_d=[0.0,0.9]"]),
    "digits + no D spectral norm": ("digits", ["model.d_spectral_norm=false"]),
    "digits + G 256-256": ("digits", ["model.g_hidden=[256,256]"]),
    "digits + no D SN, D 256-256": ("digits", ["model.d_spectral_norm=false",
                                              "model.d_hidden=[256,256]"]),
    "digits + no D SN, lr_decay 0.3": ("digits", ["model.d_spectral_norm=false",
                                                 "train.lr_decay=0.3"]),
    "digits + no D SN, hinge": ("digits", ["model.d_spectral_norm=false", "loss.name=hinge"]),
    "digits + no D SN, no EMA": ("digits", ["model.d_spectral_norm=false", "train.ema=0.0"]),
    # third round: aiming at recall and coverage (within-class diversity)
    "digits + real_label 0.9": ("digits", ["loss.real_label=0.9"]),
    "digits + latent 32": ("digits", ["model.latent_dim=32"]),
    "digits + latent 64": ("digits", ["model.latent_dim=64"]),
    "digits + d_steps 2": ("digits", ["train.d_steps=2"]),
    "digits + lr_g 1e-4": ("digits", ["train.lr_g=1e-4"]),
    "digits + batch 64": ("digits", ["train.batch_size=64"]),
    "digits + leaky 0.1": ("digits", ["model.leaky_slope=0.1"]),
    "digits + R1 0.1": ("digits", ["reg.r1_gamma=0.1"]),
    "digits + R1 1": ("digits", ["reg.r1_gamma=1.0"]),
    "digits + R1 1 every 4": ("digits", ["reg.r1_gamma=1.0", "reg.r1_every=4"]),
    "digits + R1 1 every 16": ("digits", ["reg.r1_gamma=1.0", "reg.r1_every=16"]),
    "digits + R1 0.3 every 4": ("digits", ["reg.r1_gamma=0.3", "reg.r1_every=4"]),
    "digits + R1 1 every 8": ("digits", ["reg.r1_gamma=1.0", "reg.r1_every=8"]),
    "digits + R1 3": ("digits", ["reg.r1_gamma=3.0"]),
    "digits + R1 3 every 4": ("digits", ["reg.r1_gamma=3.0", "reg.r1_every=4"]),
    "digits + R1 10 every 4": ("digits", ["reg.r1_gamma=10.0", "reg.r1_every=4"]),
    "digits + generic step": ("digits", ["train.fused_step=false"]),
    # fourth round, on the default with R1 when its rates were 2e-4 (2026-12-03)
    "digits + lr_decay 0.3": ("digits", [*LR2, "train.lr_decay=0.3"]),
    "digits + lr_decay 0.5": ("digits", [*LR2, "train.lr_decay=0.5"]),
    "digits + lr 3e-4": ("digits", ["train.lr_g=3e-4", "train.lr_d=3e-4"]),
    "digits + lr_d 3e-4": ("digits", ["train.lr_g=2e-4", "train.lr_d=3e-4"]),
    "digits + lr 2e-4": ("digits", LR2),
    # on the default at 3e-4
    "digits + lr 4e-4": ("digits", ["train.lr_g=4e-4", "train.lr_d=4e-4"]),
    "digits + R1 0.5": ("digits", ["reg.r1_gamma=0.5"]),
    "digits + instance noise 0.1": ("digits", ["reg.instance_noise=0.1"]),
    "digits + no EMA": ("digits", ["train.ema=0.0"]),
    "digits + D SN": ("digits", ["model.d_spectral_norm=true"]),
}
KEYS = ("fd", "precision", "recall", "coverage", "classes", "class_kl", "class_hit",
        "class_recall_min")


def run(preset: str, overrides: list[str], at: list[int], seed: int, ref,
        num: int) -> list[tuple[int, float, dict]]:
    """(step, training CPU seconds, scores) at each step of ``at`` (a ``train.lr_decay`` ends at
    the last)."""
    cfg = resolve(preset, overrides=[*overrides, f"train.steps={at[-1]}", "train.threads=1"],
                  values={"train": {"seed": seed}})
    torch.set_num_threads(1)
    data = load_data(cfg.data)
    trainer = Trainer(cfg, data)
    lo, hi = trainer.value_range
    z = torch.randn(num, cfg.model.latent_dim, generator=torch.Generator().manual_seed(0))
    share = trainer.label_share
    y = None if share is None else draw_labels(share, num, torch.Generator().manual_seed(1))
    rows, cpu = [], 0.0
    for step in at:
        c0 = time.process_time()
        while trainer.step < step:
            trainer.train_step()
        cpu += time.process_time() - c0
        with torch.no_grad():
            images = ((trainer.generate(z, y) - lo) / (hi - lo)).clamp(0, 1)
        scores = evaluate(images, ref)
        if y is not None and cfg.model.conditional:
            scores.update(class_scores(images, y.numpy(), ref))
        rows.append((step, cpu, scores))
    return rows


def main() -> None:
    """Run every variant for every seed; print one row per variant, seed and step."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--at", type=int, nargs="+", default=[1000, 2000, 3500],
                    help="steps to score at (ascending; the last is the run's length)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--num", type=int, default=2500, help="samples per evaluation")
    ap.add_argument("--only", nargs="*", help="variant names to run")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="overrides added to every variant run (for a variant not in the list)")
    args = ap.parse_args()
    ref = reference(load_data(resolve("classic").data))
    print(f"cpu {torch.backends.cpu.get_cpu_capability()}, one thread; {args.num} samples")
    print(f"{'variant':40s} {'seed':>4s} {'step':>6s} {'cpu s':>6s} "
          + " ".join(f"{k:>9s}" for k in KEYS))
    for name in args.only or list(VARIANTS):
        preset, overrides = VARIANTS[name]
        overrides = [*overrides, *args.set]
        if args.set:
            name = f"{name} + {' '.join(args.set)}"
        for seed in args.seeds:
            for step, cpu, sc in run(preset, overrides, sorted(args.at), seed, ref, args.num):
                # class_hit to 4 places: a share of the samples, against a bar of 0.95
                cells = " ".join(f"{sc[k]:9d}" if k == "classes" else
                                 f"{sc.get(k, float('nan')):9.{4 if k == 'class_hit' else 3}f}"
                                 for k in KEYS)
                print(f"{name:40s} {seed:4d} {step:6d} {cpu:6.1f} {cells}", flush=True)


if __name__ == "__main__":
    main()

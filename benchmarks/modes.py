"""Mode collapse against the published results: ring8 and grid25 (2-D), stacked digits.

2-D mixtures follow the PacGAN protocol (Lin et al. 2018, Table 1): after training, 2,500 samples
of the sampling (EMA) generator; high quality = within 3 std of the nearest mean; modes = modes
holding a high-quality sample; reverse KL of the high-quality samples' mode histogram to uniform;
spread = RMS distance per axis of a mode's high-quality samples from its mean, in std (0.97 for
the mixture itself; lower means modes drawn too narrow, which high quality alone rewards).
Mean ± standard error over seeds. Stacked digits follow VEEGAN/PacGAN: 26,000 samples, each
channel classified by the built-in digit classifier, modes hit of 1,000 and KL to uniform.

    python benchmarks/modes.py                  # ring8 and grid25, 10 seeds (make bench-modes)
    python benchmarks/modes.py --fast           # one seed, fewer steps, looser bars
    python benchmarks/modes.py --mixture ring8 --seeds 2 --set model.activation=leaky_relu
    python benchmarks/modes.py --stacked --no-mixtures --seeds 1   # stacked preset, ~30 min
    python benchmarks/modes.py --stacked --stacked-preset pacgan --no-mixtures
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import statistics
import sys
import time
from typing import Any

import torch

from gankit import load_data, presets, resolve
from gankit.data.mixtures import MIXTURES, mixture
from gankit.data.stacked import NAME as STACKED
from gankit.metrics.modes import mode_scores, stacked_scores
from gankit.training.trainer import Trainer

SAMPLES = {"mixture": 2500, STACKED: 26_000}
LIN = "Lin et al. 2018, Table 1"
ELFEKI = "Elfeki et al. 2019"
# (method, modes, high-quality %, KL, source); None where the issue gives no figure.
PUBLISHED: dict[str, list[tuple[str, float, float | None, float | None, str]]] = {
    "ring8": [("GAN", 6.3, None, None, LIN), ("PacGAN4", 7.8, 95.9, None, LIN),
              ("VEEGAN", 8.0, 52.9, None, ELFEKI)],
    "grid25": [("GAN", 17.3, None, None, LIN), ("PacGAN4", 24.8, 93.6, None, LIN),
               ("VEEGAN", 24.6, 40.0, None, ELFEKI), ("WGAN-GP", 24.2, 28.7, None, ELFEKI)],
    STACKED: [("DCGAN", 99, None, 3.4, "Srivastava et al. 2017, via Lin et al. 2018"),
              ("WGAN-GP", 995, None, 0.148, "as quoted in issue 8"),
              ("PacDCGAN2", 1000, None, 0.06, "Lin et al. 2018")],
}
# Targets of issue 8: modes on every seed, high quality (share), KL; --fast uses looser bars.
TARGETS = {"ring8": (8, 0.97, 0.02), "grid25": (25, 0.97, 0.02), STACKED: (1000, None, 0.05)}
# Measured at FAST_STEPS, seed 0, with the self-conditioned presets (100 clusters): ring8 8
# modes, 98.8%, KL 0.0027; grid25 25 modes, 97.6%, KL 0.0054 (20 s each). The bars catch a
# return to the unconditioned presets (pack 2; at FAST_STEPS ring8 60.6%, grid25 21 modes, 4.7%).
# stacked-digits with --fast: 10,000 steps (~6 minutes on one core). Bars set from the pacgan
# preset at constant learning rate (902 modes, KL 1.04 at 10,000 steps, seed 0), not from a
# --fast run of the stacked preset itself, whose learning rate decays over the last 30%.
FAST_TARGETS = {"ring8": (8, 0.90, 0.02), "grid25": (24, 0.85, 0.05), STACKED: (850, None, 1.5)}
FAST_STEPS = 3000
FAST_STACKED_STEPS = 10_000
STACKED_FAST_SAMPLES = 2000  # samples scored by the seconds-long check in the test suite


def _train(source: str, preset: str | None, seed: int, steps: int | None,
           overrides: tuple[str, ...] = ()) -> tuple[Trainer, Any, float]:
    """Train ``preset`` (None: the data's automatic one) on ``source`` with ``overrides``
    (``section.key=value``); (trainer, cfg, seconds)."""
    values: dict[str, Any] = {"data": {"source": source}, "train": {"seed": seed}}
    if steps is not None:
        values["train"]["steps"] = steps
    cfg = resolve(preset, overrides=overrides, values=values)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, load_data(cfg.data))
    trainer.fit(progress=False)
    return trainer, cfg, time.perf_counter() - t0


def run_mixture(name: str, seed: int, steps: int | None = None,
                preset: str | None = None, overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train one seed on a 2-D mixture (the preset it picks by default) and score it."""
    trainer, cfg, secs = _train(name, preset, seed, steps, overrides)
    gen = torch.Generator().manual_seed(10_000 + seed)
    n = SAMPLES["mixture"]
    z = torch.randn(n, cfg.model.latent_dim, generator=gen)
    points = trainer.generate(z, trainer.draw_labels(n, gen))
    m = mixture(name)
    return {**mode_scores(points, m.means, m.std), "seconds": secs, "seed": seed}


def run_stacked(preset: str | None, seed: int, steps: int | None = None,
                samples: int = SAMPLES[STACKED], overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train one seed on stacked-digits with ``preset`` (None: the data's automatic one) and
    ``overrides``, and score ``samples`` samples (26,000 in the protocol; fewer for a quick
    check)."""
    trainer, cfg, secs = _train(STACKED, preset, seed, steps, overrides)
    gen = torch.Generator().manual_seed(10_000 + seed)
    lo, hi = trainer.value_range
    chunks = []
    for i in range(0, samples, 1000):
        n = min(1000, samples - i)
        z = torch.randn(n, cfg.model.latent_dim, generator=gen)
        chunks.append(trainer.generate(z, trainer.draw_labels(n, gen)))
    images = ((torch.cat(chunks) - lo) / (hi - lo)).clamp(0, 1)
    return {**stacked_scores(images), "seconds": secs, "seed": seed}


Job = tuple[str, int, int | None, str | None, tuple[str, ...]]


def _job(args: Job) -> dict[str, Any]:
    name, seed, steps, preset, overrides = args
    torch.set_num_threads(1)
    if name == STACKED:
        return run_stacked(preset, seed, steps, overrides=overrides)
    return run_mixture(name, seed, steps, preset, overrides)


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for one value)."""
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, se


def summary(name: str, runs: list[dict[str, Any]], fast: bool) -> tuple[str, bool]:
    """The table row for our runs and whether every target holds."""
    modes, modes_se = mean_se([r["modes"] for r in runs])
    kl, kl_se = mean_se([r["mode_kl"] for r in runs])
    secs = statistics.fmean(r["seconds"] for r in runs)
    want_modes, want_hq, want_kl = (FAST_TARGETS if fast else TARGETS)[name]
    ok = min(r["modes"] for r in runs) >= want_modes and kl <= want_kl
    hq_cell = spread_cell = "—"
    if "high_quality" in runs[0]:
        hq, hq_se = mean_se([100 * r["high_quality"] for r in runs])
        hq_cell = f"{hq:.1f} ± {hq_se:.1f}"
        ok = ok and want_hq is not None and hq >= 100 * want_hq
        spread, spread_se = mean_se([r["spread"] for r in runs])
        spread_cell = f"{spread:.2f} ± {spread_se:.2f}"
    seeds = f"{len(runs)} seed{'s' if len(runs) > 1 else ''}"
    row = (f"| **gankit** ({seeds}) | {modes:.2f} ± {modes_se:.2f} "
           f"(min {min(r['modes'] for r in runs)}) | {hq_cell} | {kl:.4f} ± {kl_se:.4f} | "
           f"{spread_cell} | {secs:.0f} s/run | this run |")
    return row, ok


def print_table(name: str, runs: list[dict[str, Any]], fast: bool) -> bool:
    """Print our row beside the published ones; return whether the targets are met."""
    k, hq_t, kl_t = (FAST_TARGETS if fast else TARGETS)[name]
    hq_text = f", high quality ≥ {100 * hq_t:.0f}%" if hq_t else ""
    print(f"\n### {name} (target: {k} modes on every seed{hq_text}, KL ≤ {kl_t})\n")
    print("| method | modes | high quality % | KL | spread | time | source |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    row, ok = summary(name, runs, fast)
    print(row)
    for method, modes, hq, kl, source in PUBLISHED.get(name, []):
        cells = [f"{modes:g}", "—" if hq is None else f"{hq:g}", "—" if kl is None else f"{kl:g}"]
        print(f"| {method} | {' | '.join(cells)} | — | — | {source} |")
    print(f"\ntargets {'MET' if ok else 'MISSED'}", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; with ``--strict`` the exit status is 1 when a target is missed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="one seed, fewer steps, looser bars")
    ap.add_argument("--seeds", type=int, help="seeds per benchmark (default 10; --fast 1)")
    ap.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    ap.add_argument("--preset", help="preset for the 2-D mixtures (default: the automatic one)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config value of every run (repeatable), as in gankit train")
    ap.add_argument("--mixture", choices=MIXTURES, action="append",
                    help="run only this mixture (repeatable; default: all)")
    ap.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--strict", action="store_true", help="exit with 1 when a target is missed")
    ap.add_argument("--jobs", type=int, default=2, help="training processes at once (1 thread)")
    ap.add_argument("--no-mixtures", action="store_true", help="skip ring8 and grid25")
    ap.add_argument("--stacked", action="store_true", help="also run stacked-digits")
    ap.add_argument("--stacked-preset",
                    help="preset for stacked-digits (default: the automatic one, stacked)")
    ap.add_argument("--stacked-steps", type=int, help="training steps for stacked-digits")
    args = ap.parse_args(argv)
    count = args.seeds or (1 if args.fast else 10)
    seeds = list(range(args.first_seed, args.first_seed + count))
    steps = args.steps or (FAST_STEPS if args.fast else None)
    jobs: list[Job] = []
    if not args.no_mixtures:
        jobs += [(name, s, steps, args.preset, tuple(args.set))
                 for name in args.mixture or MIXTURES for s in seeds]
    if args.stacked:
        if args.stacked_preset is not None and args.stacked_preset not in presets():
            print(f"stacked-digits skipped: no preset '{args.stacked_preset}' in this gankit "
                  f"(presets: {', '.join(presets())}); it needs a convolutional preset such "
                  "as dcgan or pacgan", flush=True)
        else:
            stacked_steps = args.stacked_steps or (FAST_STACKED_STEPS if args.fast else None)
            jobs += [(STACKED, s, stacked_steps, args.stacked_preset, tuple(args.set))
                     for s in seeds]
    if not jobs:
        return 0
    results = []
    with mp.get_context("spawn").Pool(max(1, args.jobs)) as pool:
        for (name, seed, *_), r in zip(jobs, pool.imap(_job, jobs, chunksize=1), strict=True):
            print(f"{name} seed {seed}: modes {r['modes']}, "
                  + (f"high quality {100 * r['high_quality']:.1f}%, " if "high_quality" in r
                     else "")
                  + f"KL {r['mode_kl']:.4f}, "
                  + (f"spread {r['spread']:.2f}, " if "spread" in r else "")
                  + (f"channel KLs {', '.join(f'{k:.4f}' for k in r['channel_kl'])}, "
                     if "channel_kl" in r else "")
                  + f"{r['seconds']:.0f} s", file=sys.stderr, flush=True)
            results.append(r)
    ok = True
    for name in dict.fromkeys(j[0] for j in jobs):
        ok = print_table(name, [r for j, r in zip(jobs, results, strict=True) if j[0] == name],
                         args.fast) and ok
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())

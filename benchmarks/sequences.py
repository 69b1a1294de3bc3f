"""Time series beside TimeGAN: sines, stocks and energy, scored as TimeGAN's code scores them.

Each (data, seed) trains the `timeseries` preset in-process on one thread, then `gankit eval`'s
scores of as many generated series as there are real ones: the discriminative score (mean and
std over 5 post-hoc GRUs), the predictive score beside its train-on-real floor, and the
marginal / autocorrelation / correlation gaps. The published rows are TimeGAN's Table 2 (Yoon
et al., NeurIPS 2019) and Diffusion-TS (Yuan and Qiao, ICLR 2024, Table 1).

    python benchmarks/sequences.py                           # sines, stocks, energy x 3 seeds
    python benchmarks/sequences.py --data sines --seeds 0 --set train.ema=0   # an ablation row
    python benchmarks/sequences.py --data basicmotions japanesevowels --aeon DIR   # labelled

``--aeon DIR`` is a folder holding aeon's ``BasicMotions/BasicMotions_{TRAIN,TEST}.ts`` and
``JapaneseVowels/...`` (the ``aeon`` wheel's ``aeon/datasets/data``; ``pip download --no-deps
aeon`` and unzip it). Those labelled sets train conditioned on their class with half the series
held out, and add the accuracy on held-out real series of a classifier trained on synthetic
series (TSTR) beside one trained on real ones (TRTR); JapaneseVowels' lengths vary (7-29).
Prints one markdown table; ``--json FILE`` writes every run's record.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.config import resolve
from gankit.run import load_run, prepare

PUBLISHED = {  # discriminative, predictive (lower is better), from the papers' tables
    "sines": {"TimeGAN": (0.011, 0.093), "RCGAN": (0.022, 0.097), "Diffusion-TS": (0.006, 0.093),
              "train on real": (None, 0.094)},
    "stocks": {"TimeGAN": (0.102, 0.038), "RCGAN": (0.196, 0.040),
               "Diffusion-TS": (0.067, 0.036), "train on real": (None, 0.036)},
    "energy": {"TimeGAN": (0.236, 0.273), "RCGAN": (0.336, 0.292),
               "Diffusion-TS": (0.122, 0.250), "train on real": (None, 0.250)},
}


def read_ts(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(series (N, T, C) zero-padded, lengths (N,), labels (N,) as strings) of a UEA/UCR .ts
    file (equal or unequal lengths)."""
    cases, labels, in_data = [], [], False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower() == "@data":
            in_data = True
            continue
        if not in_data or line.startswith("@"):
            continue
        *dims, label = line.split(":")
        cases.append(np.asarray([[float(v) for v in d.split(",")] for d in dims]).T)
        labels.append(label)
    lengths = np.array([len(c) for c in cases])
    out = np.zeros((len(cases), lengths.max(), cases[0].shape[1]))
    for i, c in enumerate(cases):
        out[i, :len(c)] = c
    return out, lengths, np.asarray(labels)


AEON_SETS = {"basicmotions": "BasicMotions", "japanesevowels": "JapaneseVowels"}


def aeon_set(name: str, aeon: Path, work: Path) -> Path:
    """An aeon set (its train and test files joined) as a gankit .npz file with labels (and
    lengths where they differ)."""
    folder = AEON_SETS[name]
    parts = [read_ts(aeon / folder / f"{folder}_{s}.ts") for s in ("TRAIN", "TEST")]
    t = max(p[0].shape[1] for p in parts)
    series = np.concatenate([np.pad(p[0], ((0, 0), (0, t - p[0].shape[1]), (0, 0)))
                             for p in parts])
    lengths = np.concatenate([p[1] for p in parts])
    arrays = {"series": series, "labels": np.concatenate([p[2] for p in parts])}
    if (lengths != t).any():
        arrays["lengths"] = lengths
    out = work / f"{name}.npz"
    np.savez(out, **arrays)
    return out


def one(data: str, source: str, seed: int, steps: int | None, overrides: list[str],
        work: Path) -> dict[str, Any]:
    """Train one (data, seed) and score it."""
    extra = [f"train.steps={steps}"] if steps else []
    if data in AEON_SETS:  # labelled: conditioned on the class, half held out (aeon's split)
        extra += ["model.conditional=true", "data.holdout=0.5"]
    cfg = resolve("timeseries", None, [f"data.source={source}", f"train.seed={seed}",
                                       "train.threads=1", *extra, *overrides])
    out = work / f"{data}-{seed}"
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    trainer = prepare(cfg, out)
    trainer.fit(progress=False)
    fit_s = time.perf_counter() - t0
    run = load_run(out)
    t1 = time.perf_counter()
    scores = run.kind.evaluator(run, "")(0, seed)
    return {**scores, "data": data, "seed": seed, "steps": cfg.train.steps,
            "fit_s": round(fit_s, 1), "eval_s": round(time.perf_counter() - t1, 1)}


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(records: list[dict[str, Any]]) -> str:
    """The markdown table: every run, then each data set's mean beside the published rows."""
    lines = ["| data | seed | steps | fit (s) | discriminative | predictive (train on real) "
             "| marginal KS | ACF gap | corr gap | length TV | TSTR / TRTR |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        tstr = (f"{r['tstr_accuracy']:.3f} / {r['trtr_accuracy']:.3f}" if "tstr_accuracy" in r
                else "")
        lengths = f"{r['length_distance']:.3f}" if "length_distance" in r else ""
        lines.append(f"| {r['data']} | {r['seed']} | {r['steps']} | {r['fit_s']:.0f} | "
                     f"{r['discriminative']:.3f} ± {r['discriminative_std']:.3f} | "
                     f"{r['predictive']:.3f} ({r['predictive_real']:.3f}) | "
                     f"{r['marginal_ks']:.3f} | {r['autocorrelation_gap']:.3f} | "
                     f"{r['correlation_gap']:.3f} | {lengths} | {tstr} |")
    lines += ["", "| data | model | discriminative | predictive |", "|---|---|---:|---:|"]
    for data in dict.fromkeys(r["data"] for r in records):
        rs = [r for r in records if r["data"] == data]
        lines.append(f"| {data} | **gankit** ({len(rs)} seeds) | "
                     f"{_mean_sd([r['discriminative'] for r in rs])} | "
                     f"{_mean_sd([r['predictive'] for r in rs])} |")
        for name, (d, p) in PUBLISHED.get(data, {}).items():
            lines.append(f"| {data} | {name} | {'' if d is None else f'{d:.3f}'} | {p:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["sines", "stocks", "energy"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None, help="train.steps (default: preset's)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--aeon", type=Path, help="aeon's datasets/data folder (basicmotions)")
    ap.add_argument("--json", type=Path, help="write every run's record here")
    a = ap.parse_args(argv)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for data in a.data:
            source = data
            if data in AEON_SETS:
                if a.aeon is None:
                    sys.exit(f"{data} needs --aeon DIR (see the docstring)")
                source = str(aeon_set(data, a.aeon, work))
            for seed in a.seeds:
                r = one(data, source, seed, a.steps, a.set, work)
                print(json.dumps(r), file=sys.stderr, flush=True)
                records.append(r)
    print(f"cpu capability: {torch.backends.cpu.get_cpu_capability()}, torch "
          f"{torch.__version__}, one thread; overrides: {' '.join(a.set) or 'none'}")
    print(table(records))
    if a.json:
        a.json.write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

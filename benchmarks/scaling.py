"""Scaling out: images/s of `gankit train` in 1 process and under torchrun with N processes.

Each case trains the same preset and global batch from scratch into a temporary run directory and
reads images/s (the global batch, all processes together) from its metrics.jsonl: the median of
the logged intervals after the first (warm-up). One thread per process unless --threads.

    python benchmarks/scaling.py                          # classic, batch 128, 1 and 2 processes
    python benchmarks/scaling.py --preset dcgan --batch-size 64 --procs 1 2 4 --steps 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def images_per_s(procs: int, args: argparse.Namespace, threads: int) -> float:
    """Median images/s of one short run in ``procs`` processes of ``threads`` threads each."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        train = ["train", "--preset", args.preset, "--steps", str(args.steps),
                 "--batch-size", str(args.batch_size), "--out", str(out), "--quiet",
                 "--set", f"train.threads={threads}", "--set", f"train.log_every={args.log_every}",
                 "--set", f"train.sample_every={args.steps}",
                 "--set", f"train.checkpoint_every={args.steps}"]
        launcher = ([sys.executable, "-m", "gankit"] if procs == 1 else
                    [sys.executable, "-m", "torch.distributed.run", "--standalone",
                     f"--nproc-per-node={procs}", "-m", "gankit"])
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        subprocess.run(launcher + train, check=True, env=env)
        rates = [json.loads(line)["images_per_s"]
                 for line in (out / "metrics.jsonl").read_text().splitlines()
                 if "images_per_s" in line]
    return statistics.median(rates[1:] or rates)


def main() -> None:
    """Print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="classic")
    p.add_argument("--batch-size", type=int, default=128, help="global batch")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1, help="threads per process")
    args = p.parse_args()
    print(f"preset {args.preset}, global batch {args.batch_size}, {args.steps} steps, "
          f"{os.cpu_count()} CPUs, {args.threads} thread(s) per process")
    print("| processes | threads in all | images/s | vs 1 process |")
    print("| ---: | ---: | ---: | ---: |")
    base = None
    for n in args.procs:
        rate = images_per_s(n, args, args.threads)
        base = base or rate
        print(f"| {n} | {n * args.threads} | {rate:,.0f} | {rate / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

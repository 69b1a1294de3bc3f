"""GPU training speed of the dcgan preset in fp32, bf16 and fp16 (well under 5 minutes).

For each precision, a trainer on the GPU warms up for a few steps, then trains for a fixed time;
the table gives images per second (the median of the repeats) and the speed-up over fp32. Without
CUDA it says so and exits 0.

    python benchmarks/gpu_dcgan.py
    python benchmarks/gpu_dcgan.py --batch-size 256 --seconds 10 --device cuda:1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gankit import load_data, resolve
from gankit.training.trainer import Trainer

PRECISIONS = ("fp32", "bf16", "fp16")


def images_per_s(trainer: Trainer, seconds: float) -> float:
    """Images per second of ``trainer.train_step`` over about ``seconds``."""
    torch.cuda.synchronize(trainer.device)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        trainer.train_step()
        steps += 1
        if steps % 10 == 0:
            torch.cuda.synchronize(trainer.device)
    torch.cuda.synchronize(trainer.device)
    return steps * trainer.batch / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seconds", type=float, default=8.0, help="timed seconds per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("gpu_dcgan: no CUDA device here; nothing to measure")
        return
    name = torch.cuda.get_device_name(torch.device(args.device))
    print(f"dcgan preset on {name} ({args.device}), batch {args.batch_size}, "
          f"{args.repeats} x {args.seconds:g} s per precision")
    rows = []
    for precision in PRECISIONS:
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            rows.append((precision, None))
            continue
        cfg = resolve("dcgan", overrides=args.set, values={"train": {
            "device": args.device, "precision": precision, "batch_size": args.batch_size}})
        trainer = Trainer(cfg, load_data(cfg.data))
        trainer.G.train()
        trainer.D.train()
        for _ in range(args.warmup):
            trainer.train_step()
        rates = [images_per_s(trainer, args.seconds) for _ in range(args.repeats)]
        finite = all(torch.isfinite(q).all() for q in trainer.G.parameters())
        rows.append((precision, (statistics.median(rates), finite)))
        del trainer
        torch.cuda.empty_cache()
    base = rows[0][1][0] if rows[0][1] else None
    print(f"{'precision':<10} {'images/s':>10} {'vs fp32':>8}  weights")
    for precision, result in rows:
        if result is None:
            print(f"{precision:<10} {'-':>10} {'-':>8}  (not supported on this GPU)")
            continue
        rate, finite = result
        ratio = f"{rate / base:.2f}x" if base else "-"
        print(f"{precision:<10} {rate:>10.0f} {ratio:>8}  {'finite' if finite else 'NOT FINITE'}")


if __name__ == "__main__":
    main()

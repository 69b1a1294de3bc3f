"""Training speed of every shipped preset on the built-in digits, one CPU thread.

    python benchmarks/preset_speed.py [--steps N]

Prints steps/s and images/s per preset (after a few warm-up steps), at each preset's own batch
size. Not a test: the numbers depend on the machine and whatever else runs on it.
"""

from __future__ import annotations

import argparse
import time

import torch

import gankit


def measure(name: str, steps: int, warmup: int = 3) -> tuple[int, float]:
    """(batch size, steps per second) of ``name`` on digits after ``warmup`` steps."""
    cfg = gankit.resolve(name, values={"train": {"threads": 1, "steps": steps + warmup}})
    trainer = gankit.Trainer(cfg, gankit.load_data(cfg.data))
    for _ in range(warmup):
        trainer.train_step()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return cfg.train.batch_size, steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'preset':10s} {'batch':>5s} {'steps/s':>8s} {'images/s':>9s}")
    for name in gankit.presets():
        batch, rate = measure(name, args.steps)
        print(f"{name:10s} {batch:5d} {rate:8.2f} {rate * batch:9.0f}")


if __name__ == "__main__":
    main()

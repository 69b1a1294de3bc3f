"""The tabular step: fused against generic, on the benchmark tables, in one process.

For each table (Adult, Default, credit_data: the training split of benchmarks/tabular.py, its
target as `data.target`), two trainers of the `tabular` preset are built on the same rows, one
with the fused step (training/fused_table.py) and one with `train.fused_step=false`; their
steps are timed in alternating repeats and the table gives the medians, the FLOPs of a step
(matrix products, counted by torch's profiler on the generic step: the double backward of the
gradient penalty included) and the fraction of a large fp32 matmul's rate, measured in the run on
the same thread count.

    python benchmarks/table_step.py                           # all three tables, 1 thread
    python benchmarks/table_step.py --tables credit --repeats 5 --seconds 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from speed import matmul_peak
from tabular import load_table, split
from torch.profiler import ProfilerActivity, profile

from gankit import resolve
from gankit.kinds.tables import frames_dataset
from gankit.training import fast
from gankit.training.trainer import Trainer

TABLES = ("adult", "default", "credit")


def trainer(name: str, fused: bool, seed: int = 0) -> Trainer:
    """A `tabular` trainer on ``name``'s training split, with or without the fused step."""
    table = load_table(name)
    train, _ = split(table.frame, seed)
    cfg = resolve("tabular", overrides=[f"train.fused_step={str(fused).lower()}"],
                  values={"train": {"seed": seed},
                          "data": {"source": f"{name}.csv", "target": table.target}})
    return Trainer(cfg, frames_dataset(train, train.iloc[:0], cfg.data, name))


def step_flops(tr: Trainer) -> float:
    """Matrix-product FLOPs of one step of ``tr`` (torch's profiler follows double backward,
    which FlopCounterMode does not)."""
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        tr.train_step()
    return float(sum(e.flops for e in prof.key_averages()))


def ms_per_step(tr: Trainer, seconds: float) -> float:
    """Wall-clock milliseconds per step over about ``seconds`` of steps."""
    count, t0 = 0, time.perf_counter()
    while count < 5 or time.perf_counter() - t0 < seconds:
        tr.train_step()
        count += 1
    return 1000 * (time.perf_counter() - t0) / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak(torch.float32)
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 units "
          f"{fast.cpu_bf16()}, torch {torch.__version__}, {args.threads} thread(s); "
          f"fp32 matmul peak {peak:.1f} GFLOP/s")
    print("| table | MFLOP/step | generic ms | fused ms | fused vs generic | % fp32 peak "
          "(fused) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.tables:
        steps = {fused: trainer(name, fused) for fused in (True, False)}
        assert steps[True].step_kind == "fused", steps[True].step_kind
        for tr in steps.values():
            for _ in range(5):  # warm-up
                tr.train_step()
        flops = step_flops(steps[False])
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.repeats):
            for fused, tr in steps.items():
                times[fused].append(ms_per_step(tr, args.seconds))
        fused_ms = statistics.median(times[True])
        generic_ms = statistics.median(times[False])
        share = flops / (fused_ms / 1000) / 1e9 / peak
        print(f"| {name} | {flops / 1e6:,.0f} | {generic_ms:.2f} | {fused_ms:.2f} | "
              f"{generic_ms / fused_ms:.2f}x | {share:.0%} |", flush=True)


if __name__ == "__main__":
    main()

"""A million rows x 20 columns: codec fit and encode time, training speed and peak memory.

    python benchmarks/tabular_scale.py [--rows 1000000] [--steps 200]

Prints one table: the codec's fit (Gaussian mixtures, categories) and encode times, the training
steps per second of the `tabular` preset on that table, and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd
import torch


def make_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """12 numeric columns (mixtures, skewed, integers), 6 categorical, 1 boolean, 1 datetime."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for i in range(6):
        mode = rng.integers(0, 3, rows)
        cols[f"mix{i}"] = rng.normal(mode * 5.0, 1.0 + i * 0.1, rows)
    for i in range(3):
        cols[f"skew{i}"] = rng.lognormal(3, 1, rows)
    for i in range(3):
        cols[f"int{i}"] = rng.integers(0, 1000, rows)
    for i in range(6):
        k = 5 * (i + 1)
        p = rng.dirichlet(np.ones(k))
        cols[f"cat{i}"] = rng.choice([f"c{j}" for j in range(k)], rows, p=p)
    cols["flag"] = rng.random(rows) < 0.3
    cols["when"] = pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 2000, rows), "D")
    df = pd.DataFrame(cols)
    df.loc[rng.random(rows) < 0.05, "skew0"] = np.nan
    return df


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--steps", type=int, default=200)
    args = p.parse_args()

    from gankit.config import resolve
    from gankit.kinds.tables import frames_dataset
    from gankit.kinds.tables.codec import TableCodec
    from gankit.training.trainer import Trainer

    df = make_table(args.rows)
    t0 = time.perf_counter()
    codec, _ = TableCodec.fit(df)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    x = codec.encode(df)
    enc_s = time.perf_counter() - t0
    cfg = resolve("tabular", values={"data": {"source": "scale.csv"},
                                      "train": {"steps": args.steps, "log_every": args.steps}})
    data = frames_dataset(df, df.iloc[:0], cfg.data, "scale", codec.to_json())
    trainer = Trainer(cfg, data)
    trainer.train_step()
    t0 = time.perf_counter()
    trainer.fit(progress=False)
    step_s = (time.perf_counter() - t0) / (args.steps - 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cpu capability: {torch.backends.cpu.get_cpu_capability()}, "
          f"threads: {torch.get_num_threads()}")
    print("| rows | columns | encoded width | codec fit s | encode s | ms/step (batch 500) "
          "| peak RSS MiB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {len(df):,} | {df.shape[1]} | {x.shape[1]} | {fit_s:.1f} | {enc_s:.1f} | "
          f"{step_s * 1000:.1f} | {peak:.0f} |")


if __name__ == "__main__":
    main()

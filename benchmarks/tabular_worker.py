"""Fit one table synthesizer on a CSV, sample from it, and report its costs as JSON.

Run by benchmarks/tabular.py in a subprocess per (tool, dataset, seed), so that each tool's peak
memory is its own process's: gankit under gankit's Python, ctgan under the benchmark's own
virtual environment (ctgan is BUSL-licensed and pins pandas<3; it is never a gankit dependency).
This file imports only the standard library, numpy, pandas and the tool.

    python tabular_worker.py TOOL META.json TRAIN.csv OUT.csv

META.json: {"kinds": {column: kind}, "rows": n to sample, "seed": s, "threads": t,
"options": {...}} (for ctgan, options.epochs; for gankit, keyword arguments of
TableSynthesizer). The JSON line on stdout: fit_s and sample_s (wall clock), cpu_s (CPU time of
fit and sample together, which a busy shared machine distorts less), peak_rss_mb, for ctgan
prep_s, prep_cpu_s and fit_cpu_s (its preprocessing, inside the fit, and the fit's CPU time),
and for gankit the kinds it inferred.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time

import numpy as np
import pandas as pd

NOT_AVAILABLE = 3  # exit code: the tool's API is not there (yet)
DISCRETE = ("categorical", "boolean")
_NAN_LEVEL = "__nan__"


def read_table(path: str, kinds: dict[str, str]) -> pd.DataFrame:
    """The CSV with each column typed by its kind; an empty cell is missing, nothing else is."""
    df = pd.read_csv(path, dtype={c: str for c, k in kinds.items() if k in DISCRETE},
                     keep_default_na=False, na_values=[""])
    for column, kind in kinds.items():
        if kind == "datetime":
            df[column] = pd.to_datetime(df[column])
        elif kind == "boolean":
            df[column] = df[column].map({"True": True, "False": False}).astype(object)
    return df[list(kinds)]


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed_preprocessing(seconds: list[tuple[float, float]]) -> None:
    """Make ctgan's DataTransformer add (wall, CPU) seconds of its fit and transform to ``seconds``,
    so that
    the time per epoch can be told apart from the (mode-fitting) preprocessing."""
    try:
        from ctgan.synthesizers import ctgan as module
    except ImportError:  # another build of ctgan: no split, fit time only
        return
    cls = module.DataTransformer

    class Timed(cls):
        def fit(self, *args, **kwargs):
            start, cpu = time.perf_counter(), cpu_seconds()
            try:
                return super().fit(*args, **kwargs)
            finally:
                seconds.append((time.perf_counter() - start, cpu_seconds() - cpu))

        def transform(self, *args, **kwargs):
            start, cpu = time.perf_counter(), cpu_seconds()
            try:
                return super().transform(*args, **kwargs)
            finally:
                seconds.append((time.perf_counter() - start, cpu_seconds() - cpu))

    module.DataTransformer = Timed


def run_ctgan(train: pd.DataFrame, kinds: dict[str, str], rows: int, seed: int,
              options: dict, prep: list[tuple[float, float]] | None = None
              ) -> tuple[pd.DataFrame, float, float]:
    """CTGAN with its defaults (epochs may be overridden). ctgan refuses missing numbers, so, as
    SDV does, a numeric column with gaps is filled with its median and gets a discrete
    missing-indicator column; missing categories become one more level. ``prep`` collects the
    (wall, CPU) seconds of its preprocessing within the fit (the first fit and transform calls)."""
    import torch
    from ctgan import CTGAN

    if prep is not None:
        _timed_preprocessing(prep)

    torch.manual_seed(seed)
    np.random.seed(seed)
    data = pd.DataFrame(index=train.index)
    discrete, gappy = [], []
    for column, kind in kinds.items():
        s = train[column]
        if kind in DISCRETE:
            data[column] = s.astype(object).where(s.notna(), _NAN_LEVEL).astype(str)
            discrete.append(column)
            continue
        v = (s.astype("int64").astype(np.float64).where(s.notna()) if kind == "datetime"
             else s.astype(np.float64))
        if v.isna().any():
            data[column + "__missing"] = np.where(v.isna(), "yes", "no")
            discrete.append(column + "__missing")
            gappy.append(column)
            v = v.fillna(v.median() if v.notna().any() else 0.0)
        data[column] = v
    model = CTGAN(epochs=int(options.get("epochs", 300)), enable_gpu=False)
    model.set_random_state(seed)
    if prep is not None:
        prep.append((math.nan, cpu_seconds()))  # the CPU clock as the fit starts
    start = time.perf_counter()
    model.fit(data, discrete_columns=discrete)
    fit_s = time.perf_counter() - start
    if prep is not None:
        prep.append((math.nan, cpu_seconds()))  # and as it ends
    start = time.perf_counter()
    out = model.sample(rows)
    sample_s = time.perf_counter() - start
    result = pd.DataFrame(index=out.index)
    for column, kind in kinds.items():
        v = out[column]
        if kind in DISCRETE:
            v = v.astype(str).where(v.astype(str) != _NAN_LEVEL, None)
        elif kind == "integer":
            v = v.astype(np.float64).round()
        elif kind == "datetime":
            v = pd.to_datetime(v.astype(np.float64).round().astype("int64"))
        if column in gappy:
            v = v.where(out[column + "__missing"] != "yes", None)
        result[column] = v
    return result, fit_s, sample_s


def run_gankit(train: pd.DataFrame, rows: int, seed: int,
               options: dict) -> tuple[pd.DataFrame, float, float, dict]:
    """gankit.TableSynthesizer(seed=..., **options).fit(df).sample(n, seed=...)."""
    import gankit

    if not hasattr(gankit, "TableSynthesizer"):
        print("gankit.TableSynthesizer does not exist yet in this checkout (the table model is "
              "being written); skipping gankit", file=sys.stderr)
        raise SystemExit(NOT_AVAILABLE)
    start = time.perf_counter()
    synth = gankit.TableSynthesizer(seed=seed, **options).fit(train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    out = synth.sample(rows, seed=seed)
    sample_s = time.perf_counter() - start
    return out, fit_s, sample_s, dict(getattr(synth, "kinds", {}))


def main(argv: list[str]) -> int:
    tool, meta_path, train_path, out_path = argv
    with open(meta_path) as f:
        meta = json.load(f)
    kinds, rows, seed = meta["kinds"], int(meta["rows"]), int(meta["seed"])
    import torch

    torch.set_num_threads(int(meta.get("threads", 2)))
    train = read_table(train_path, kinds)
    report: dict = {}
    cpu_start = cpu_seconds()
    if tool == "ctgan":
        prep: list[tuple[float, float]] = []
        out, fit_s, sample_s = run_ctgan(train, kinds, rows, seed, meta.get("options", {}), prep)
        if len(prep) == 4:  # fit starts, DataTransformer.fit, .transform, fit ends
            report["prep_s"] = prep[1][0] + prep[2][0]
            report["prep_cpu_s"] = prep[1][1] + prep[2][1]
            report["fit_cpu_s"] = prep[3][1] - prep[0][1]
    elif tool == "gankit":
        out, fit_s, sample_s, report["kinds"] = run_gankit(train, rows, seed,
                                                           meta.get("options", {}))
    else:
        print(f"unknown tool {tool!r}", file=sys.stderr)
        return 2
    report["cpu_s"] = cpu_seconds() - cpu_start  # fit and sample, on every thread
    out[list(kinds)].to_csv(out_path, index=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    report.update(fit_s=fit_s, sample_s=sample_s, peak_rss_mb=peak_mb)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

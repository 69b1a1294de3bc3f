"""Tables: rows of typed columns (CSV, TSV, Parquet, the built-in ``adult``), CTGAN-class."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...conditioning import Conditioning
from ...config import TABLE_BUILTINS, TABLE_SUFFIXES
from ...errors import ConfigError, DataError, GankitError
from ..base import Kind, Scorer, View, stored_codec
from .codec import TableCodec, typed
from .conditions import TableConditions, condition_option, parse_where
from .files import builtin_table, read_table, write_table

if TYPE_CHECKING:
    from ...config import Config, DataConfig, ModelConfig
    from ...data.base import Dataset
    from ...run import Run

BUILTIN_TARGETS = {"adult": "income"}  # what a built-in table's efficacy is measured on
PREVIEW_ROWS = 20  # rows of the fixed batch written to samples/step-N.csv
WHERE_DRAWS = 200  # --where gives up after drawing this many times the rows asked for
# A table's own length (train.steps = 0, the preset's): about EPOCHS passes over its training
# rows, in hundreds of steps within [MIN_STEPS, MAX_STEPS]. Measured (BENCHMARKS.md, sessions
# 18 and 21): credit_data's 3,563 rows and Default's 8,000 reach at 1,500 steps what 3,000 give,
# and credit_data at 1,400 what 1,500 give (1,300: a lower TSTR ROC-AUC); Adult's 26,049 need
# 3,000 for their TSTR figures and gain on all but TSTR F1 (equal) to 6,000.
EPOCHS, MIN_STEPS, MAX_STEPS = 115, 1400, 6000
# A table's own pack size (reg.pack = 0, the preset's): PacGAN's packs regularise D, which small
# tables need and large ones pay for in how finely D judges each row. Measured (BENCHMARKS.md,
# session 20; 3 seeds each): credit_data's 3,563 rows lose TSTR at pack 5 (ROC-AUC ratio 0.77
# against 0.92 at 10), Default's 8,000 are mixed at 5 (ratio 0.98 against 0.97, F1 0.37 against
# 0.44); Adult's 26,049 gain at 5 and more at 2 (ratio 0.955 -> 0.964 -> 0.972, F1 0.638 ->
# 0.645 -> 0.648, boosting detection 0.85 -> 0.80 -> 0.78).
PACK, LARGE_PACK, LARGE_ROWS = 10, 2, 20_000


def target_of(cfg: DataConfig) -> str | None:
    """The column machine-learning efficacy predicts: ``data.target``, else a built-in
    table's own, else none."""
    return cfg.target or BUILTIN_TARGETS.get(cfg.source) or None


def read_source(cfg: DataConfig) -> pd.DataFrame:
    """The whole table named by ``cfg.source``."""
    if cfg.source in TABLE_BUILTINS:
        return builtin_table(cfg.source)
    return read_table(Path(cfg.source))


def split(df: pd.DataFrame, holdout: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, held-out rows): a seeded ``holdout`` share held out, at least one row."""
    n = len(df)
    k = min(n - 1, max(1, round(holdout * n)))
    order = np.random.default_rng(seed).permutation(n)
    test = np.sort(order[:k])
    train = np.sort(order[k:])
    return df.iloc[train].reset_index(drop=True), df.iloc[test].reset_index(drop=True)


def load_frames(cfg: DataConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and held-out rows of ``cfg``'s table, after the target is checked."""
    df = read_source(cfg)
    if cfg.target and cfg.target not in df.columns:
        raise DataError(f"data.target '{cfg.target}' is not a column of {cfg.source} "
                        f"(columns: {', '.join(map(str, df.columns))})")
    if cfg.target and cfg.column_kinds.get(cfg.target) == "drop":
        raise ConfigError(f"data.target '{cfg.target}' cannot also be dropped (data.columns)")
    return split(df, cfg.holdout, cfg.split_seed)


MAIN = "detection_auc"  # ranks checkpoints: how well a classifier tells synthetic from real


class TableScorer(Scorer):
    """Decoded rows scored against the held-out real rows (``gankit.metrics.tabular``)."""

    main = MAIN

    def __init__(self, codec: TableCodec, frames: tuple[pd.DataFrame, pd.DataFrame],
                 target: str | None, seed: int) -> None:
        self.codec = codec
        self.train, self.holdout = (typed(f, codec) for f in frames)
        self.kinds = metric_kinds(self.codec)
        self.target = target
        self.seed = seed

    def __call__(self, samples: torch.Tensor, value_range: tuple[float, float]
                 ) -> dict[str, float]:
        return self.rows(self.codec.decode(samples))

    def rows(self, synthetic: pd.DataFrame, seed: int | None = None) -> dict[str, float]:
        """Metrics of decoded synthetic rows (their classifiers seeded by ``seed``, by default
        the scorer's)."""
        from ...metrics.tabular import table_scores

        return table_scores(self.train, self.holdout, synthetic, self.kinds,
                            target=self.target, seed=self.seed if seed is None else seed)


def metric_kinds(codec: TableCodec) -> dict[str, str]:
    """Each column's kind as the table metrics read it (a constant is one category)."""
    return {n: "categorical" if k == "constant" else k for n, k in codec.kinds().items()}


def frames_dataset(train: pd.DataFrame, holdout: pd.DataFrame, cfg: DataConfig, name: str,
                   codec: dict[str, Any] | None = None) -> Dataset:
    """A table dataset: ``train`` encoded by a codec fitted on it (or the stored ``codec``)."""
    from ...data.base import Dataset

    notes: list[str] = []
    if codec is not None:
        fitted = TableCodec.from_json(codec)
    else:
        target = target_of(cfg)
        fitted, notes = TableCodec.fit(train, cfg.column_kinds, cfg.max_categories,
                                       seed=cfg.split_seed, scale=cfg.numeric,
                                       derive=cfg.derive, keep=(target,) if target else ())
    return Dataset(samples=fitted.encode(train), labels=None, name=name, kind="tables",
                   codec=fitted, frames=(train, holdout), notes=tuple(notes))


class TableKind(Kind):
    """Tables (see the package docstring)."""

    name = "tables"
    sample_suffixes = TABLE_SUFFIXES

    def load(self, cfg: DataConfig, codec: dict[str, Any] | None = None) -> Dataset:
        train, holdout = load_frames(cfg)
        name = cfg.source if cfg.source in TABLE_BUILTINS else Path(cfg.source).stem
        return frames_dataset(train, holdout, cfg, name, codec)

    def steps_for(self, rows: int, batch: int) -> int | None:
        passes = -(-EPOCHS * rows // batch)  # ceil
        return min(MAX_STEPS, max(MIN_STEPS, -(-passes // 100) * 100))

    def pack_for(self, rows: int) -> int | None:
        return LARGE_PACK if rows >= LARGE_ROWS else PACK

    def layout(self, codec: Any, m: ModelConfig) -> tuple[tuple[tuple[int, str], ...] | None,
                                                           int]:
        cond = TableConditions(codec) if m.conditional else None
        return tuple(codec.heads()), cond.vector_dim if cond is not None else 0

    def sampling(self, run: Path, cfg: Config) -> tuple[Any, Conditioning | None]:
        codec = stored_codec(run, TableCodec.from_json)
        cond = (TableConditions(codec, focus=target_of(cfg.data)) if cfg.model.conditional
                else None)
        return codec, cond if cond is not None and cond.vector_dim else None

    def settled(self, g: nn.Module, cond: Conditioning | None,
                num: int | None = None) -> nn.Module:
        from .calibrate import batches_for, calibrated

        return calibrated(g, cond if isinstance(cond, TableConditions) else None,
                          batches_for(num))

    def conditioning(self, cfg: Config, data: Dataset, x: torch.Tensor, seed: int,
                     device: torch.device) -> Conditioning:
        m = cfg.model
        if m.clusters:
            raise ConfigError("model.clusters is for images and points; tables condition on "
                              "their categories (model.conditional)")
        if not m.conditional:
            return Conditioning(len(x))
        cond = TableConditions(data.codec, x.cpu(), focus=target_of(cfg.data),
                               focus_share=cfg.data.target_focus)
        return cond if cond.vector_dim else Conditioning(len(x))

    def preview(self, x: torch.Tensor, value_range: tuple[float, float], data: Dataset,
                data_x: torch.Tensor, nrow: int) -> tuple[str, bytes]:
        buf = io.StringIO()
        data.codec.decode(x[:PREVIEW_ROWS]).to_csv(buf, index=False)
        return ".csv", buf.getvalue().encode("utf-8")

    def write(self, run: Run, out: Path, num: int, seed: int, label: int | None,
              where: list[str]) -> int:
        if label is not None:
            raise GankitError("--class is for conditional image runs; a table selects rows "
                              "with --where COLUMN=VALUE")
        df = sample_rows(run, num, seed, where)
        write_table(df, out)
        return len(df)

    def scorer(self, data: Dataset, cfg: Config) -> Scorer:
        return TableScorer(data.codec, data.frames, target_of(cfg.data), cfg.train.seed)

    def evaluator(self, run: Run, extractor: str, data: str | None = None,
                  data_dir: str | None = None) -> Callable[[int, int], dict[str, Any]]:
        if data is not None:
            raise GankitError("--data is for image runs: a table run is scored against its "
                              "own held-out rows")
        cfg = run.config.data
        frames = load_frames(cfg)
        scorer = TableScorer(run.codec, frames, target_of(cfg), 0)  # the real rows typed once

        def judge(num: int, seed: int) -> dict[str, Any]:
            synthetic = sample_rows(run, num, seed, [])
            scores = scorer.rows(synthetic, seed)  # the seed seeds its classifiers too
            return {"source": str(run.path), "step": run.step, "data": cfg.source,
                    "num": len(synthetic), "holdout_rows": len(frames[1]),
                    **{k: round(float(v), 6) if isinstance(v, float) else v
                       for k, v in scores.items()}}

        return judge

    def describe(self, data: Dataset) -> str:
        return f"{len(data)} rows x {len(data.codec.names)} columns"

    def report(self, run: Run) -> str:
        from .report import table_panels

        return table_panels(run)

    def view(self, run: Run) -> View:
        from .view import TableView

        return TableView(run)


def sample_rows(run: Run, num: int, seed: int, where: list[str] | tuple[str, ...] = ()
                ) -> pd.DataFrame:
    """``num`` synthetic rows of a table run, reproducible from ``seed``; with ``where``, only
    rows that satisfy every clause (the rarest asked category is conditioned on, the rest
    drawn until enough rows hold). DataError when the model cannot make enough such rows."""
    codec = run.codec
    clauses = parse_where(list(where), codec)
    if not clauses:
        return codec.decode(run.generate(num, seed))
    option = condition_option(run.conditioning, clauses)
    gen = torch.Generator().manual_seed(seed)
    found: list[pd.DataFrame] = []
    have, drawn, chunk = 0, 0, max(256, 2 * num)
    while have < num:
        if drawn >= WHERE_DRAWS * num:
            raise DataError(f"only {have} of {num} rows satisfied --where "
                            f"{' '.join(c.text for c in clauses)} in {drawn} drawn: the model "
                            "rarely makes such rows")
        s = int(torch.randint(2**62, (1,), generator=gen))
        y = None
        if option is not None:
            y = run.conditioning.vectors(torch.full((chunk,), option, dtype=torch.int64))
        rows = codec.decode(run.generate(chunk, s, y))
        ok = np.ones(len(rows), dtype=bool)
        for c in clauses:
            ok &= c.holds(rows)
        found.append(rows[ok])
        have += int(ok.sum())
        drawn += chunk
    return pd.concat(found, ignore_index=True).iloc[:num].reset_index(drop=True)

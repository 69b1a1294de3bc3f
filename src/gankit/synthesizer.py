"""``TableSynthesizer``: tables in the habit of the field (SDV, CTGAN, scikit-learn).

    synth = gankit.TableSynthesizer(steps=3000, seed=0).fit(df)
    fake = synth.sample(1000)                          # a DataFrame: same columns and dtypes
    some = synth.sample(100, where=["sex=Female"])     # every row satisfies every clause
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd

from .config import resolve
from .errors import RunError
from .kinds.tables import TableKind, frames_dataset, sample_rows, target_of
from .kinds.tables.conditions import TableConditions
from .run import Run, load_run, prepare
from .training.trainer import Trainer


class TableSynthesizer:
    """Fits a tabular GAN to a DataFrame and samples synthetic rows from it.

    ``steps``, ``batch_size`` and ``seed`` set the training length (None: the preset's; the
    ``tabular`` preset's is the table's own, ~115 passes over its rows, 1,400 to 6,000 steps),
    batch and seed; ``target`` is the column a model would predict (see ``fit``); any other
    config value goes in ``overrides`` as ``"section.key=value"`` (e.g. ``"reg.pack=5"``).
    With ``out`` the fit is also a run directory that ``gankit sample/eval/report`` and
    ``TableSynthesizer.load`` read.
    """

    def __init__(self, steps: int | None = None, batch_size: int | None = None, seed: int = 0,
                 preset: str = "tabular", overrides: list[str] | tuple[str, ...] = (),
                 out: str | Path | None = None, progress: bool = False,
                 target: str | None = None) -> None:
        train: dict[str, Any] = {"seed": seed}
        if steps is not None:
            train["steps"] = steps
        if batch_size is not None:
            train["batch_size"] = batch_size
        self.values: dict[str, Any] = {"train": train}
        self.preset = preset
        self.overrides = list(overrides)
        self.out = Path(out) if out is not None else None
        self.progress = progress
        self.target = target
        self.run: Run | None = None

    def fit(self, df: pd.DataFrame, target: str | None = None,
            columns: dict[str, str] | None = None) -> TableSynthesizer:
        """Train on every row of ``df``; ``columns`` maps columns to a kind or "drop".

        With a ``target`` (here or given to the constructor) generated rows keep its real
        shares, so a model trained on them sees the real balance of classes.
        """
        target = target or self.target
        data_values: dict[str, Any] = {"source": "dataframe.csv"}
        if target:
            data_values["target"] = target
        if columns:
            data_values["columns"] = dict(columns)
        cfg = resolve(self.preset, overrides=self.overrides,
                      values={**self.values, "data": data_values})
        if target and target not in df.columns:
            from .errors import DataError
            raise DataError(f"target '{target}' is not a column of the DataFrame")
        frame = df.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
        data = frames_dataset(frame, frame.iloc[:0], cfg.data, "dataframe")
        if self.out is not None:
            trainer = prepare_frame(cfg, data, self.out)
        else:
            trainer = Trainer(cfg, data)
        trainer.fit(progress=self.progress)
        cond = (TableConditions(data.codec, focus=target_of(cfg.data))
                if cfg.model.conditional else None)
        cond = cond if cond is not None and cond.vector_dim else None
        g = TableKind().settled(copy.deepcopy(trainer.sampler), cond)
        self.run = Run(path=self.out or Path("."), config=trainer.cfg, step=trainer.step,
                       generator=g, codec=data.codec, conditioning=cond)
        return self

    @property
    def kinds(self) -> dict[str, str]:
        """Each learned column's kind (continuous, integer, categorical, boolean, datetime,
        constant)."""
        return {c.name: c.kind for c in self._fitted().codec.columns}

    def sample(self, num: int, seed: int = 0, where: list[str] | tuple[str, ...] = ()
               ) -> pd.DataFrame:
        """``num`` synthetic rows, the same for the same ``seed``; ``where`` clauses such as
        ``"smoker=yes"`` or ``"age>50"`` hold for every row."""
        return sample_rows(self._fitted(), num, seed, where)

    @classmethod
    def load(cls, path: str | Path) -> TableSynthesizer:
        """A synthesizer from a table run directory (no pickle: safetensors and JSON)."""
        run = load_run(path)
        if run.codec is None:
            raise RunError(f"run {path} is not a table run")
        synth = cls()
        synth.run = run
        return synth

    def _fitted(self) -> Run:
        if self.run is None:
            raise RunError("the synthesizer is not fitted: call fit(df) first")
        return self.run


def prepare_frame(cfg: Any, data: Any, out: Path) -> Trainer:
    """A trainer writing into run directory ``out`` for in-memory table ``data``."""
    return prepare(cfg, out, dataset=data)

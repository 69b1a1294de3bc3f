"""Sequences: multichannel time series (the built-in sines, stocks and energy; .npz arrays;
table files in long format or one long series cut into windows).

Series are min-max scaled per channel and flattened to one row per series (``codec``), so any
model family over rows (the fully connected ``mlp``, with its fused step) generates them;
labels condition G and D as image classes do. Scores follow TimeGAN (``metrics.sequences``),
read in the scaled [0, 1] space against the training series, as TimeGAN reads them; a labelled
set also keeps ``data.holdout`` of its series for the train-on-synthetic classifier test.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...conditioning import Conditioning, from_labels_or_clusters
from ...config import SEQUENCE_BUILTINS, TABLE_SUFFIXES
from ...errors import DataError, GankitError
from ..base import Kind, Scorer, View, stored_codec
from .codec import SequenceCodec
from .files import Series, long_frame, read_series, write_npz

if TYPE_CHECKING:
    from ...config import Config, DataConfig
    from ...data.base import Dataset
    from ...run import Run

MAIN = "discriminative"  # ranks checkpoints: TimeGAN's discriminative score (lower is better)
PREVIEW_SERIES = 6  # series drawn in each samples/step-N.png
REPEATS = 5  # discriminative score repeats in `gankit eval` (TimeGAN reports mean and std)
TRAINING_ITERATIONS = 500  # the post-hoc GRU's iterations in a score during training


@dataclass(frozen=True)
class Holdout:
    """Labelled series kept out of training for the train-on-synthetic classifier test."""

    values: np.ndarray  # scaled (N, T, C)
    lengths: np.ndarray | None
    labels: np.ndarray


def fit_codec(series: Series, cfg: DataConfig) -> SequenceCodec:
    """The codec of ``series`` (its scaling, length, channels, classes and layout; its
    marginals and basis as ``cfg`` asks), fitted on every series given."""
    from dataclasses import replace

    from ..normal_scores import Marginals
    from .transforms import Basis

    codec = SequenceCodec(length=series.values.shape[1], channels=series.channels,
                          low=tuple(float(v) for v in series.low),
                          high=tuple(float(v) for v in series.high),
                          variable=series.lengths is not None, classes=series.classes,
                          layout=tuple(series.layout.items()))
    scaled = codec.scale(series.values)
    if cfg.marginals == "gaussian":
        codec = replace(codec, marginals=Marginals.fit(np.clip(scaled, 0.0, 1.0),
                                                       series.lengths))
    if cfg.basis > 0:
        codec = replace(codec, basis=Basis.fit(codec.flat(scaled, series.lengths), cfg.basis))
    return codec


def split_labelled(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, held-out indices): a seeded ``holdout`` share, at least one each."""
    k = min(n - 1, max(1, round(holdout * n)))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])


def real_series(data: Dataset) -> tuple[np.ndarray, np.ndarray | None]:
    """The training series of ``data`` as (scaled values (N, T, C), lengths)."""
    return data.codec.decode(data.samples)


def to_unit(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Generator output -> the codec's [0, 1] cells."""
    lo, hi = value_range
    return (x - lo) / (hi - lo)


def cheap_scores(real: tuple[np.ndarray, np.ndarray | None],
                 fake: tuple[np.ndarray, np.ndarray | None], length: int) -> dict[str, float]:
    """The statistics that cost no training: marginal KS, ACF and correlation gaps, lengths."""
    from ...metrics import sequences as ms

    (xr, lr), (xs, ls) = real, fake
    out = {"marginal_ks": float(ms.marginal_ks(xr, xs, lr, ls).mean()),
           "autocorrelation_gap": ms.autocorrelation_gap(xr, xs, 0, lr, ls),
           "correlation_gap": ms.correlation_gap(xr, xs, lr, ls)}
    if lr is not None:
        out["length_distance"] = ms.length_distance(lr, ms.full_lengths(xs, ls), length)
    return out


class SequenceScorer(Scorer):
    """Generated rows scored against the training series during training: one
    discriminative score (a shortened post-hoc GRU) and the cheap statistics."""

    main = MAIN

    def __init__(self, data: Dataset, seed: int) -> None:
        self.codec: SequenceCodec = data.codec
        self.real = real_series(data)
        self.seed = seed

    def __call__(self, samples: torch.Tensor, value_range: tuple[float, float]
                 ) -> dict[str, float]:
        from ...metrics.sequences import discriminative_score

        fake = self.codec.decode(to_unit(samples, value_range))
        n = min(len(self.real[0]), len(fake[0]))
        rng = np.random.default_rng(self.seed)
        pick = rng.choice(len(self.real[0]), n, replace=False)
        xr, lr = self.real[0][pick], None if self.real[1] is None else self.real[1][pick]
        out = {MAIN: discriminative_score(xr, fake[0][:n], self.seed, lr,
                                          None if fake[1] is None else fake[1][:n],
                                          iterations=TRAINING_ITERATIONS)}
        out.update(cheap_scores(self.real, fake, self.codec.length))
        return out


def generated(run: Run, num: int, seed: int, label: int | None = None
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``num`` series of ``run`` from ``seed``: (scaled values, lengths, labels or None)."""
    labels = None
    if run.num_classes:
        labels = (run.labels(num, label, seed) if label is not None
                  else run.draw_labels(num, seed))
    elif label is not None:
        raise GankitError(f"--class needs a run conditioned on labels; {run.path} is not")
    x = run.generate(num, seed, labels)
    values, lengths = run.codec.decode(to_unit(x, run.value_range))
    return values, lengths, None if labels is None else labels.numpy()


class SequenceKind(Kind):
    """Time series (see the package docstring)."""

    name = "sequences"
    sample_suffixes = (".npz", *TABLE_SUFFIXES)

    def load(self, cfg: DataConfig, codec: dict[str, Any] | None = None) -> Dataset:
        from ...data.base import Dataset

        series = read_series(cfg)
        fitted = fit_codec(series, cfg) if codec is None else SequenceCodec.from_json(codec)
        if codec is not None and (fitted.length, fitted.channels) != (
                series.values.shape[1], series.channels):
            raise DataError(f"{cfg.source} no longer holds the series this run was trained on "
                            f"({fitted.length} steps of {', '.join(fitted.channels)})")
        scaled = fitted.scale(series.values)
        lengths, labels = series.lengths, series.labels
        frames = None
        if labels is not None:
            train, held = split_labelled(len(scaled), cfg.holdout, cfg.split_seed)
            frames = Holdout(scaled[held], None if lengths is None else lengths[held],
                             labels[held])
            scaled, labels = scaled[train], labels[train]
            lengths = None if lengths is None else lengths[train]
        name = cfg.source if cfg.source in SEQUENCE_BUILTINS else Path(cfg.source).stem
        return Dataset(samples=fitted.encode(scaled, lengths),
                       labels=None if labels is None else torch.from_numpy(labels),
                       name=name, kind=self.name, codec=fitted, frames=frames)

    def sampling(self, run: Path, cfg: Config) -> tuple[Any, Conditioning | None]:
        return stored_codec(run, SequenceCodec.from_json), None

    def conditioning(self, cfg: Config, data: Dataset, x: torch.Tensor, seed: int,
                     device: torch.device) -> Conditioning:
        return from_labels_or_clusters(cfg.model, data, x, seed, device)

    def preview(self, x: torch.Tensor, value_range: tuple[float, float], data: Dataset,
                data_x: torch.Tensor, nrow: int) -> tuple[str, bytes]:
        from .report import series_png

        fake = data.codec.decode(to_unit(x[:PREVIEW_SERIES], value_range))
        real = data.codec.decode(to_unit(data_x[:PREVIEW_SERIES], value_range))
        return ".png", series_png(real, fake, data.codec)

    def write(self, run: Run, out: Path, num: int, seed: int, label: int | None,
              where: list[str]) -> int:
        from ..tables.files import write_table

        if where:
            raise GankitError("--where selects rows of a table; a sequence run takes --class")
        codec: SequenceCodec = run.codec
        values, lengths, labels = generated(run, num, seed, label)
        units = codec.unscale(values)
        if lengths is not None:
            units = np.where(np.arange(codec.length)[None, :, None] < lengths[:, None, None],
                             units, 0.0)
        names = None
        if labels is not None and codec.classes:
            names = np.asarray(codec.classes)[labels]
        if out.suffix.lower() == ".npz":
            write_npz(out, units, lengths, names if names is not None else labels)
        else:
            write_table(long_frame(units, lengths, names if names is not None else labels,
                                   codec.channels, dict(codec.layout)), out)
        return num

    def scorer(self, data: Dataset, cfg: Config) -> Scorer:
        return SequenceScorer(data, cfg.train.seed)

    def evaluator(self, run: Run, extractor: str, data: str | None = None,
                  data_dir: str | None = None) -> Callable[[int, int], dict[str, Any]]:
        from .scores import full_scores

        if data is not None:
            raise GankitError("--data is for image runs: a sequence run is scored against its "
                              "own series")
        dataset = self.load(run.config.data, run.codec.to_json())
        real = real_series(dataset)

        def judge(num: int, seed: int) -> dict[str, Any]:
            n = num or len(real[0])
            values, lengths, _ = generated(run, n, seed)
            scores = full_scores(real, (values, lengths), run, dataset, seed)
            return {"source": str(run.path), "step": run.step, "data": run.config.data.source,
                    "num": n, "real": len(real[0]), **scores}

        return judge

    def describe(self, data: Dataset) -> str:
        c: SequenceCodec = data.codec
        steps = f"up to {c.length}" if c.variable else str(c.length)
        return f"{len(data)} series x {steps} steps x {len(c.channels)} channels"

    def report(self, run: Run) -> str:
        from .report import sequence_panels

        return sequence_panels(run)

    def view(self, run: Run) -> View:
        from .view import SequenceView

        return SequenceView(run)


def series_bytes(values: np.ndarray) -> bytes:
    """Scaled series as .npz bytes (the sampling page's download)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, series=values.astype(np.float32))
    return buf.getvalue()

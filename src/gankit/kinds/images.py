"""Images (N, C, H, W) in [0, 1] and 2-D points (N, D): the kinds gankit began with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..conditioning import Conditioning, from_labels_or_clusters
from ..errors import GankitError
from ..fileio import atomic_write
from .base import Features, Kind, Scorer

if TYPE_CHECKING:
    from ..config import Config, DataConfig
    from ..data.base import Dataset
    from ..run import Run


class FeatureScorer(Scorer):
    """Images in an extractor's feature space; points by the modes of their mixture."""

    def __init__(self, data: Dataset, extractor: str) -> None:
        from ..metrics.evaluate import reference

        self.ref = reference(data, extractor)
        self.main = self.ref.main

    def __call__(self, samples: torch.Tensor, value_range: tuple[float, float]
                 ) -> dict[str, float]:
        from ..metrics.evaluate import evaluate

        if samples.ndim == 4:  # images are scored in [0, 1]
            lo, hi = value_range
            samples = ((samples - lo) / (hi - lo)).clamp(0.0, 1.0)
        return evaluate(samples, self.ref)


class ClassifierFeatures(Features):
    """Images in a classifying extractor's features, with its predicted classes."""

    def __init__(self, extractor: str, value_range: tuple[float, float]) -> None:
        from ..metrics.extractors import get_extractor

        self.extractor = get_extractor(extractor)
        self.value_range = value_range
        self.num_classes = 0

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        lo, hi = self.value_range
        x = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
        probs = self.extractor.probs(x)
        assert probs is not None
        self.num_classes = int(probs.shape[1])
        return self.extractor.features(x), probs.argmax(1).numpy()


class PooledFeatures(Features):
    """Images average-pooled to at most 8x8 per channel: cheap, and enough to tell sameness."""

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        side = min(8, x.shape[-1])
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.float(), side)
        return pooled.reshape(len(x), -1), None


class ModeFeatures(Features):
    """Points of a known mixture: their coordinates, classed by the nearest mode."""

    def __init__(self, means: np.ndarray) -> None:
        self.means = torch.as_tensor(means, dtype=torch.float32)
        self.num_classes = len(means)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        x = x.float()
        return x, torch.cdist(x, self.means).argmin(1).numpy()


class ImageKind(Kind):
    """Images from the built-ins, folders and array files; scored in a feature space."""

    name = "images"
    sample_suffixes = (".npz", ".png")

    def load(self, cfg: DataConfig, codec: dict[str, Any] | None = None) -> Dataset:
        from .. import data as data_sources

        return data_sources.build(cfg)

    def conditioning(self, cfg: Config, data: Dataset, x: torch.Tensor, seed: int,
                     device: torch.device) -> Conditioning:
        return from_labels_or_clusters(cfg.model, data, x, seed, device)

    def preview(self, x: torch.Tensor, value_range: tuple[float, float], data: Dataset,
                data_x: torch.Tensor, nrow: int) -> tuple[str, bytes]:
        from ..images import sample_png

        # Images: one row per class for conditional runs; points: framed by the data.
        return ".png", sample_png(x, value_range, data_x, nrow=nrow)

    def write(self, run: Run, out: Path, num: int, seed: int, label: int | None,
              where: list[str]) -> int:
        from ..images import make_grid, points_extent, save_png, scatter

        if where:
            raise GankitError("--where selects rows of a table; this run makes "
                              f"{self.name}")
        samples = run.sample(num, seed=seed, label=label)
        if out.suffix.lower() == ".png":
            if run.is_image:
                cols = 0 if label is not None else run.grid_columns(num)
                save_png(make_grid(samples, nrow=cols), out)
            else:
                save_png(scatter(samples, points_extent(samples)), out)
        else:
            key = "images" if run.is_image else "samples"

            def write(tmp: Path) -> None:
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, **{key: samples})

            atomic_write(out, write)
        return len(samples)

    def scorer(self, data: Dataset, cfg: Config) -> Scorer:
        return FeatureScorer(data, cfg.eval.extractor)

    def features(self, data: Dataset, cfg: Config, value_range: tuple[float, float]
                 ) -> Features:
        from ..metrics.extractors import default_extractor

        if not data.is_image:
            from ..data.mixtures import MIXTURES, mixture

            return ModeFeatures(mixture(data.name).means) if data.name in MIXTURES \
                else Features()
        name = cfg.eval.extractor or default_extractor(data.shape)
        if name == "digits":  # small and shipped; inception would cost more than training
            return ClassifierFeatures(name, value_range)
        return PooledFeatures()

    def evaluator(self, run: Run, extractor: str, data: str | None = None,
                  data_dir: str | None = None) -> Callable[[int, int], dict[str, Any]]:
        from ..evaluation import prepare_reference, score_samples

        prepared = prepare_reference(run.config.data, data, data_dir,
                                     extractor or run.config.eval.extractor)

        def judge(num: int, seed: int) -> dict[str, Any]:
            labels = None
            if run.num_classes and not run.self_conditioned:
                labels = run.draw_labels(num, seed)  # the classes asked for, for class_scores
            x = run.generate(num, seed, labels)
            if run.is_image:
                lo, hi = run.value_range
                x = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
            head = {"source": str(run.path), "step": run.step}
            return score_samples(x, head, prepared, seed, labels)

        return judge


class PointKind(ImageKind):
    """2-D points (the mixtures, or (N, D) arrays); scored by the mixture's modes."""

    name = "points"

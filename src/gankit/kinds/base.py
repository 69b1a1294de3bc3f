"""What every data kind provides (see ``gankit.kinds``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from ..conditioning import Conditioning
    from ..config import Config, DataConfig, ModelConfig
    from ..data.base import Dataset
    from ..run import Run


class Scorer:
    """Scores generated samples against a dataset's reference, computed once."""

    main = ""  # the metric that ranks checkpoints by default

    def __call__(self, samples: torch.Tensor, value_range: tuple[float, float]
                 ) -> dict[str, float]:
        """Metrics of generator output ``samples`` (in the generator's ``value_range``)."""
        raise NotImplementedError


class Features:
    """What the collapse watch measures generated samples in: by default the generator's
    output itself, flattened, with no classes (k-means clusters of the real data stand in)."""

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        """(features (N, F), classes (N,) or None) of generator output ``x``."""
        return x.reshape(len(x), -1).float(), None

    num_classes = 0  # how many classes ``__call__`` can give; 0 = none


class Kind:
    """A kind of data; subclasses fill in every method."""

    name = ""
    sample_suffixes: tuple[str, ...] = ()  # what ``gankit sample --out`` may write

    def load(self, cfg: DataConfig, codec: dict[str, Any] | None = None) -> Dataset:
        """The training data named by ``cfg``; ``codec`` is a run's stored codec (resume)."""
        raise NotImplementedError

    def layout(self, codec: Any, m: ModelConfig) -> tuple[tuple[tuple[int, str], ...] | None,
                                                           int]:
        """(the generator's output heads, the width of condition vectors) for data with this
        ``codec``: (None, 0) where the family decides its own output."""
        return None, 0

    def sampling(self, run: Path, cfg: Config) -> tuple[Any, Conditioning | None]:
        """(codec, conditioning for generated samples) of a finished run: (None, None) where
        the checkpoint holds all (images, points)."""
        return None, None

    def conditioning(self, cfg: Config, data: Dataset, x: torch.Tensor, seed: int,
                     device: torch.device) -> Conditioning:
        """What G and D are conditioned on, for training data ``x`` as G makes it."""
        raise NotImplementedError

    def preview(self, x: torch.Tensor, value_range: tuple[float, float], data: Dataset,
                data_x: torch.Tensor, nrow: int) -> tuple[str, bytes]:
        """(suffix, bytes) of a preview of generated samples ``x`` for ``samples/``."""
        raise NotImplementedError

    def write(self, run: Run, out: Path, num: int, seed: int, label: int | None,
              where: list[str]) -> int:
        """``gankit sample``: write ``num`` samples of ``run`` to ``out``; the count written."""
        raise NotImplementedError

    def scorer(self, data: Dataset, cfg: Config) -> Scorer:
        """What judges generated samples of ``data`` during training (``eval.every``)."""
        raise NotImplementedError

    def evaluator(self, run: Run, extractor: str, data: str | None = None,
                  data_dir: str | None = None) -> Callable[[int, int], dict[str, Any]]:
        """``gankit eval`` of a run: a function of (num, seed) giving the metrics of ``num``
        fresh samples drawn with ``seed``, against the run's own data (or ``data``), whose
        reference is prepared once."""
        raise NotImplementedError

    def evaluate(self, run: Run, num: int, seed: int, extractor: str,
                 data: str | None = None, data_dir: str | None = None) -> dict[str, Any]:
        """``gankit eval`` of a run once: its metrics against its own data (or ``data``)."""
        return self.evaluator(run, extractor, data, data_dir)(num, seed)

    def features(self, data: Dataset, cfg: Config, value_range: tuple[float, float]
                 ) -> Features:
        """What the collapse watch (``guard.diversity_every``) measures samples of ``data`` in."""
        return Features()

    def describe(self, data: Dataset) -> str:
        """The data's shape as the start line gives it: 1x28x28, or 26049 rows x 15 columns."""
        return "x".join(map(str, data.shape))

    def report(self, run: Run) -> str:
        """HTML of the kind's own report panels (may be empty)."""
        return ""

"""What every data kind provides (see ``gankit.kinds``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..errors import GankitError

if TYPE_CHECKING:
    from ..conditioning import Conditioning
    from ..config import Config, DataConfig, ModelConfig
    from ..data.base import Dataset
    from ..run import Run


def stored_codec(run: Path, from_json: Callable[[dict[str, Any]], Any]) -> Any:
    """The codec stored in run directory ``run``, rebuilt by ``from_json``; RunError (one
    line) when it is missing or does not fit."""
    from ..errors import DataError, RunError
    from ..run import CODEC, read_codec

    stored = read_codec(run)
    if stored is None:
        raise RunError(f"run {run} has no {CODEC}: it cannot decode its samples")
    try:
        return from_json(stored)
    except DataError as e:
        raise RunError(f"run {run}: {e}") from None


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
    # Whether the watch judges ``metrics.diversity``'s ``realism`` (share of samples near the
    # real data) in these features: only where measured to tell a collapse (2-D mixtures).
    realism = False


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

    def steps_for(self, rows: int, batch: int) -> int | None:
        """The run's length in steps for ``rows`` training samples in batches of ``batch``,
        where the config leaves it to the data (``train.steps = 0``); None: this kind has none."""
        return None

    def pack_for(self, rows: int) -> int | None:
        """How many samples D judges at once for ``rows`` training samples, where the config
        leaves it to the data (``reg.pack = 0``); None: this kind has no such size."""
        return None

    def settled(self, g: nn.Module, cond: Conditioning | None,
                num: int | None = None) -> nn.Module:
        """The generator as it samples (eval mode), given the conditions it samples with: ``g``
        itself where nothing depends on them. ``num``: how many samples it is settled for (a
        few for a check while training; None for a run's sampling)."""
        return g.eval()

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

    def write_with(self, run: Run, out: Path, num: int, seed: int, label: int | None,
                   where: list[str], options: dict[str, Any]) -> int:
        """``write`` with the sampling ``options`` a kind may offer (text: ``temperature``,
        ``between``); GankitError for a kind that offers none of those given."""
        given = ", ".join(f"--{k}" for k, v in options.items() if v is not None)
        if given:
            raise GankitError(f"{given}: not an option of runs that make {self.name}")
        return self.write(run, out, num, seed, label, where)

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

    def verdict_features(self, data: Dataset, cfg: Config, value_range: tuple[float, float]
                         ) -> Features:
        """What the guard's end-of-run verdict on a remedied run (``guard.final_modes_min``)
        counts classes in: the kind's finest class judge, by default the watch's features."""
        return self.features(data, cfg, value_range)

    def describe(self, data: Dataset) -> str:
        """The data's shape as the start line gives it: 1x28x28, or 26049 rows x 15 columns."""
        return "x".join(map(str, data.shape))

    def report(self, run: Run) -> str:
        """HTML of the kind's own report panels (may be empty)."""
        return ""

    def view(self, run: Run) -> View:
        """How ``run``'s samples leave gankit: its ONNX outputs and its sampling page."""
        raise NotImplementedError


class View:
    """A finished run's samples as they leave gankit (``gankit.ship``): the outputs of the
    exported ONNX model, and what the sampling page shows and downloads. Every method takes
    raw generator output ``x`` (N, *sample shape) in the generator's range."""

    outputs: tuple[str, ...] = ()  # the exported model's outputs, in order
    downloads: tuple[str, ...] = ()  # what the page offers to download

    def __init__(self, run: Run) -> None:
        self.run = run

    @property
    def page_num(self) -> int:
        """How many samples the page shows at first."""
        return 36

    def choices(self) -> list[str] | None:
        """What the page's picker offers, by option: the run's classes or clusters (None for
        an unconditioned run)."""
        k = self.run.num_classes
        what = "cluster" if self.run.self_conditioned else "class"
        return [f"{what} {i}" for i in range(k)] if k else None

    def finish(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The exported model's outputs (``outputs``), as traceable tensor operations."""
        return x

    def describe(self) -> dict[str, str]:
        """The kind's own metadata of the exported model: output shapes as JSON under
        ``gankit.outputs``, and whatever else decodes them."""
        raise NotImplementedError

    def grid(self, x: torch.Tensor, columns: int) -> dict[str, Any]:
        """The page's grid of samples as JSON values (``columns`` per row; 0: square)."""
        raise NotImplementedError

    def walked(self, x: torch.Tensor, context: Callable[[], tuple[torch.Tensor, torch.Tensor]]
               ) -> dict[str, Any]:
        """The page's view of one sample ``x`` (1, ...) on a walk; ``context()`` gives (the
        grid the walk started from, its two ends) for views that draw them."""
        raise NotImplementedError

    def download(self, fmt: str, x: torch.Tensor, columns: int) -> tuple[str, str, bytes]:
        """(content type, file suffix, bytes) of samples ``x`` in format ``fmt`` (one of
        ``downloads``), as ``gankit sample`` writes them."""
        raise NotImplementedError

"""Quality tracking during training: score a fixed noise batch, log it, keep the best checkpoint.

Evaluation draws on its own random generator and never touches the training state, so a run with
evaluation resumes exactly like one without.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .. import kinds, runlog
from ..conditioning import Conditioning
from ..config import Config
from ..data.base import Dataset
from ..metrics.evaluate import is_better
from . import checkpoint

BEST = "best"  # checkpoints/best/: the best checkpoint by the main metric


class Evaluator:
    """Scores the sampling generator every ``eval.every`` steps; built lazily on first use."""

    def __init__(self, cfg: Config, data: Dataset, seed: int,
                 cond: Conditioning | None = None, noise_dim: int = 0) -> None:
        self.cfg = cfg
        self.data = data
        gen = torch.Generator().manual_seed(seed)
        self.z = torch.randn(cfg.eval.num, noise_dim or cfg.model.latent_dim, generator=gen)
        # Conditioned models: conditions (classes, clusters, categories) at their data share.
        self.y = None if cond is None else cond.sample(cfg.eval.num, gen)
        self._scorer: kinds.base.Scorer | None = None
        self._best: dict[str, float] | None = None

    def due(self, step: int, last: bool) -> bool:
        """Whether to evaluate at ``step``."""
        every = self.cfg.eval.every
        return every > 0 and (step % every == 0 or last)

    @property
    def scorer(self) -> kinds.base.Scorer:
        """The data's kind's scorer, with its reference statistics (computed once)."""
        if self._scorer is None:
            self._scorer = kinds.get(self.data.kind).scorer(self.data, self.cfg)
        return self._scorer

    @property
    def main(self) -> str:
        """The metric that ranks checkpoints."""
        return self.cfg.eval.main or self.scorer.main

    def score(self, samples: torch.Tensor, value_range: tuple[float, float]) -> dict[str, float]:
        """Metrics of generator output ``samples`` (in the generator's ``value_range``)."""
        return self.scorer(samples, value_range)

    def __call__(self, trainer: Any) -> dict[str, Any]:
        """Score ``trainer`` now, append the record to metrics.jsonl, save a new best checkpoint."""
        scores = self.score(trainer.generate(self.z, self.y), trainer.value_range)
        record: dict[str, Any] = {"step": trainer.step, "time": time.time()}
        record.update({k: round(v, 6) if isinstance(v, float) else v for k, v in scores.items()})
        run_dir: Path | None = trainer.run_dir
        if run_dir is None:
            return record
        if self._best is None:  # on (re)start: the best of the evaluations logged so far
            for old in runlog.read(run_dir / "metrics.jsonl"):
                if old.get("step", 0) < trainer.step and is_better(old, self._best, self.main):
                    self._best = old
        if is_better(record, self._best, self.main):
            self._best = record
            record["best"] = True
            checkpoint.save(run_dir / "checkpoints" / BEST, trainer.step, trainer.state(), keep=1)
        runlog.append(run_dir / "metrics.jsonl", record)
        return record

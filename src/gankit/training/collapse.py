"""The collapse watch: how varied the generator's samples are, measured while training.

At the first log step past every ``guard.diversity_every`` steps, the sampling generator draws a
fixed noise batch of ``guard.diversity_num`` samples, the data's kind maps them to features
(``Kind.features``: images pooled to 8x8 pixels, the coordinates of points, a table's encoded
rows) and ``metrics.diversity`` compares them with a
real batch of the same size. The figures go into the log record (metrics.jsonl); the guard
judges them (``Guard.check``). Like evaluation, the watch draws on its own random generator, so
it never changes what a run trains.

At the end of a run remedied for a mode collapse, ``verdict`` counts the classes of a larger
batch (``guard.final_num``) by the kind's finest judge (``Kind.verdict_features``: the digit
classifier for 28x28 digits) for the guard's last word (``Guard.final_check``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..metrics.diversity import (
    DiversityReference,
    diversity_reference,
    diversity_scores,
    mode_counts,
)

VERDICT_REAL = 1000  # real samples the verdict counts the real modes in (they are balanced)

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer


def due(step: int, every: int, log_every: int) -> bool:
    """Whether log step ``step`` is the first past a multiple of ``every`` (0: never)."""
    return every > 0 and step // every > max(0, step - log_every) // every


class CollapseWatch:
    """Measures one trainer's sampling generator; built lazily on first use."""

    def __init__(self, trainer: Trainer, seed: int) -> None:
        g = trainer.cfg.guard
        gen = torch.Generator().manual_seed(seed)
        n = min(g.diversity_num, len(trainer.x))
        self.z = torch.randn(n, trainer.noise_dim, generator=gen)
        self.y = trainer.cond.sample(n, gen)
        self._real_idx = torch.randperm(len(trainer.x), generator=gen)[:n]
        self._seed = seed
        self._features: Any = None
        self._ref: DiversityReference | None = None

    def due(self, trainer: Trainer) -> bool:
        """Whether to measure at the trainer's current (log) step."""
        return due(trainer.step, trainer.cfg.guard.diversity_every, trainer.cfg.train.log_every)

    def reference(self, trainer: Trainer) -> DiversityReference:
        """The real batch's statistics (computed once)."""
        if self._ref is None:
            self._features = trainer.kind.features(trainer.data, trainer.cfg,
                                                   trainer.value_range)
            real = trainer.x.index_select(0, self._real_idx.to(trainer.x.device)).float().cpu()
            feats, classes = self._features(real)
            self._ref = diversity_reference(feats, classes, self._features.num_classes,
                                            seed=self._seed, realism=self._features.realism)
        return self._ref

    def __call__(self, trainer: Trainer) -> dict[str, float]:
        """The diversity figures of the sampling generator now (see ``metrics.diversity``)."""
        ref = self.reference(trainer)
        feats, classes = self._features(trainer.generate(self.z, self.y))
        return {k: round(float(v), 4) if isinstance(v, float) else v
                for k, v in diversity_scores(feats, ref, classes).items()}

    def verdict(self, trainer: Trainer) -> dict[str, float]:
        """``modes_seen`` of ``guard.final_num`` fresh samples and ``modes_real`` of up to
        ``VERDICT_REAL`` real ones, in the kind's verdict features (``Kind.verdict_features``)."""
        n = trainer.cfg.guard.final_num
        gen = torch.Generator().manual_seed(self._seed + 1)
        z = torch.randn(n, trainer.noise_dim, generator=gen)
        y = trainer.cond.sample(n, gen)
        idx = torch.randperm(len(trainer.x), generator=gen)[:VERDICT_REAL]
        features = trainer.kind.verdict_features(trainer.data, trainer.cfg, trainer.value_range)
        real, real_classes = features(
            trainer.x.index_select(0, idx.to(trainer.x.device)).float().cpu())
        fake, fake_classes = features(trainer.generate(z, y))
        seen, have = mode_counts(real, fake, real_classes, fake_classes, features.num_classes,
                                 seed=self._seed)
        return {"modes_seen": seen, "modes_real": have}

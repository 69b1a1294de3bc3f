"""``gankit eval`` of a sequence run: TimeGAN's scores, with their floors, and the statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...metrics import sequences as ms

if TYPE_CHECKING:
    from ...data.base import Dataset
    from ...run import Run

Pair = tuple[np.ndarray, np.ndarray | None]  # (scaled values (N, T, C), lengths or None)


def full_scores(real: Pair, fake: Pair, run: Run, data: Dataset, seed: int,
                repeats: int = 5) -> dict[str, Any]:
    """Every score of synthetic series ``fake`` against the training series ``real``:
    discriminative (mean and std over ``repeats`` seeded post-hoc GRUs), predictive (trained
    on synthetic) beside its floor (trained on real), the statistics, and for labelled data
    the train-on-synthetic classifier accuracy beside train-on-real."""
    from . import cheap_scores

    (xr, lr), (xs, ls) = real, fake
    if len(xs) < len(xr):  # as many real series as synthetic ones (TimeGAN: both all)
        pick = np.sort(np.random.default_rng(seed).choice(len(xr), len(xs), replace=False))
        xr, lr = xr[pick], None if lr is None else lr[pick]
        real = (xr, lr)
    disc = [ms.discriminative_score(xr, xs[:len(xr)], seed + i, lr,
                                    None if ls is None else ls[:len(xr)])
            for i in range(repeats)]
    out: dict[str, Any] = {
        "discriminative": round(float(np.mean(disc)), 6),
        "discriminative_std": round(float(np.std(disc)), 6),
        "predictive": round(ms.predictive_score(xr, xs, seed, lr, ls), 6),
        "predictive_real": round(ms.predictive_score(xr, xr, seed, lr, lr), 6),
    }
    out.update({k: round(v, 6) for k, v in cheap_scores(real, fake, xr.shape[1]).items()})
    if run.num_classes and data.frames is not None and data.labels is not None:
        out.update(classifier_scores(run, data, seed))
    return out


SYNTHETIC_PER_REAL = 10  # synthetic series per real one in the train-on-synthetic test
CLASSIFIER_SEEDS = 3  # ROCKET kernel banks averaged per accuracy


def classifier_scores(run: Run, data: Dataset, seed: int) -> dict[str, float]:
    """Accuracy on the held-out real series of a ROCKET classifier trained on synthetic series
    (SYNTHETIC_PER_REAL per real training series, at the real class shares: a generator's
    use is to draw more than there is) and of one trained on the real ones; each the mean
    over CLASSIFIER_SEEDS classifiers."""
    from . import real_series

    held = data.frames
    xr, lr = real_series(data)
    yr = data.labels.numpy()
    share = np.bincount(yr, minlength=run.num_classes) * SYNTHETIC_PER_REAL
    ys = np.repeat(np.arange(run.num_classes), share)
    xs, ls, _ = _by_labels(run, ys, seed)
    seeds = range(seed, seed + CLASSIFIER_SEEDS)
    synthetic = float(np.mean([ms.classifier_accuracy(xs, ys, held.values, held.labels, s, ls,
                                                      held.lengths) for s in seeds]))
    real = float(np.mean([ms.classifier_accuracy(xr, yr, held.values, held.labels, s, lr,
                                                 held.lengths) for s in seeds]))
    return {"tstr_accuracy": round(synthetic, 6), "trtr_accuracy": round(real, 6),
            "tstr_ratio": round(synthetic / real, 6) if real > 0 else 0.0}


def _by_labels(run: Run, labels: np.ndarray, seed: int
               ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Series of ``run`` for the given class of each (drawn class by class)."""
    from . import generated

    parts = []
    for k in np.unique(labels):
        count = int((labels == k).sum())
        parts.append(generated(run, count, seed + int(k), int(k)))
    values = np.concatenate([p[0] for p in parts])
    lengths = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    return values, lengths, np.concatenate([p[2] for p in parts])

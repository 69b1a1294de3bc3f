"""Inception-style score from any classifier's class probabilities (Salimans et al. 2016)."""

from __future__ import annotations

import numpy as np
import torch


def inception_score(probs: torch.Tensor | np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over ``splits`` chunks of exp(E_x KL(p(y|x) ‖ p(y))).

    ``probs`` (N, K) are class probabilities (rows sum to 1). The score runs from 1 (every
    sample gets the same prediction) to K (confident predictions spread evenly over K classes).
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < splits or splits < 1:
        raise ValueError(f"probs must be (N >= splits, K), got {p.shape} with splits={splits}")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(float(np.exp(kl.sum(1).mean())))
    return float(np.mean(scores)), float(np.std(scores))

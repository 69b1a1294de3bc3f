"""Mode scores for 2-D Gaussian mixtures, as in PacGAN (Lin et al. 2018)."""

from __future__ import annotations

import math

import numpy as np
import torch


def mode_scores(points: torch.Tensor | np.ndarray, means: np.ndarray, std: float,
                threshold: float = 3.0) -> dict[str, float]:
    """High-quality share, modes captured and reverse KL of the mode histogram to uniform.

    A sample is high quality when it lies within ``threshold`` standard deviations of its
    nearest mean; a mode is captured when at least one high-quality sample is nearest to it.
    ``mode_kl`` is KL(p ‖ uniform) of the high-quality samples' modes, 0 when they are spread
    evenly and log K when they all sit in one mode; with no high-quality sample it is log K.
    """
    x = np.asarray(points, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != mu.shape[1] or x.shape[0] == 0:
        raise ValueError(f"points must be (N >= 1, {mu.shape[1]}), got {x.shape}")
    d = np.sqrt(((x[:, None, :] - mu[None, :, :]) ** 2).sum(-1))
    nearest = d.argmin(1)
    good = d[np.arange(x.shape[0]), nearest] <= threshold * std
    k = mu.shape[0]
    counts = np.bincount(nearest[good], minlength=k)
    if counts.sum() == 0:
        kl = math.log(k)
    else:
        p = counts / counts.sum()
        kl = float(np.sum(p[p > 0] * np.log(p[p > 0] * k)))
    return {"high_quality": float(good.mean()), "modes": int((counts > 0).sum()),
            "mode_kl": max(0.0, kl)}

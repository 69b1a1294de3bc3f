"""Mode scores, as in PacGAN (Lin et al. 2018): 2-D Gaussian mixtures and stacked digits."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def mode_scores(points: torch.Tensor | np.ndarray, means: np.ndarray, std: float,
                threshold: float = 3.0) -> dict[str, float]:
    """High-quality share, modes captured, reverse KL of the mode histogram to uniform, and
    the spread of the modes.

    A sample is high quality when it lies within ``threshold`` standard deviations of its
    nearest mean; a mode is captured when at least one high-quality sample is nearest to it.
    ``mode_kl`` is KL(p ‖ uniform) of the high-quality samples' modes, 0 when they are spread
    evenly and log K when they all sit in one mode; with no high-quality sample it is log K.
    ``spread`` is the root-mean-square distance per axis of each captured mode's high-quality
    samples from its mean, in units of ``std``, averaged over the captured modes: about 0.97 for
    samples of the mixture itself (at threshold 3), less for modes drawn too narrow (0 with no
    high-quality sample). High quality alone rewards narrow modes; this shows them.
    """
    x = np.asarray(points, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != mu.shape[1] or x.shape[0] == 0:
        raise ValueError(f"points must be (N >= 1, {mu.shape[1]}), got {x.shape}")
    d = np.sqrt(((x[:, None, :] - mu[None, :, :]) ** 2).sum(-1))
    nearest = d.argmin(1)
    dist = d[np.arange(x.shape[0]), nearest]
    good = dist <= threshold * std
    k = mu.shape[0]
    counts = np.bincount(nearest[good], minlength=k)
    sq = np.bincount(nearest[good], weights=dist[good] ** 2, minlength=k)
    hit = counts > 0
    spread = float(np.sqrt(sq[hit] / counts[hit] / x.shape[1]).mean() / std) if hit.any() else 0.0
    return {"high_quality": float(good.mean()), "modes": int(hit.sum()),
            "mode_kl": histogram_kl(counts), "spread": spread}


STACKED_MODES = 1000  # digit triples of stacked-digits


def stacked_labels(images: torch.Tensor, model: torch.nn.Module | None = None,
                   batch_size: int = 1000) -> torch.Tensor:
    """Mode ids ``100*a + 10*b + c`` of stacked-digit images (N, 3, 28, 28) in [0, 1].

    Each channel is classified on its own by the built-in digit classifier (``model``: one from
    ``load_digit_classifier``, loaded when None).
    """
    from .digit_classifier import predict

    if images.ndim != 4 or tuple(images.shape[1:]) != (3, 28, 28):
        raise ValueError(f"expected stacked images (N, 3, 28, 28), got {tuple(images.shape)}")
    digits = [predict(images[:, c:c + 1], batch_size, model) for c in range(3)]
    return 100 * digits[0] + 10 * digits[1] + digits[2]


def stacked_scores(images: torch.Tensor, model: torch.nn.Module | None = None
                   ) -> dict[str, Any]:
    """Modes captured (of 1,000) and KL(p ‖ uniform) of stacked-digit samples (VEEGAN protocol).

    A mode is captured when at least one sample is classified into it; the KL is that of the
    histogram of the samples' modes to the uniform distribution over all 1,000. ``channel_kl``
    says where the KL comes from: each channel's digit histogram against uniform (R, G, B).
    """
    labels = stacked_labels(images, model).numpy()
    counts = np.bincount(labels, minlength=STACKED_MODES)
    channel_kl = [histogram_kl(np.bincount(labels // 10 ** k % 10, minlength=10))
                  for k in (2, 1, 0)]
    return {"modes": int((counts > 0).sum()), "mode_kl": histogram_kl(counts),
            "channel_kl": channel_kl}


def histogram_kl(counts: np.ndarray) -> float:
    """KL(p ‖ uniform) of a histogram of counts over its bins; log K when it is empty."""
    k = len(counts)
    total = counts.sum()
    if total == 0:
        return math.log(k)
    p = counts[counts > 0] / total
    return max(0.0, float(np.sum(p * np.log(p * k))))

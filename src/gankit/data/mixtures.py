"""2-D Gaussian mixtures used to measure mode collapse: ``ring8`` and ``grid25`` (PacGAN)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .base import Dataset

SAMPLES = 10_000  # training points drawn once, evenly over the modes, from a fixed seed


@dataclass(frozen=True)
class Mixture:
    """Equal-weight isotropic Gaussians: ``means`` (K, 2) and one shared ``std``."""

    means: np.ndarray
    std: float


def mixture(name: str) -> Mixture:
    """The built-in mixture ``ring8`` (8 modes on the unit circle) or ``grid25`` (5x5 grid)."""
    if name == "ring8":
        angles = 2 * math.pi * np.arange(8) / 8
        return Mixture(np.stack([np.cos(angles), np.sin(angles)], 1), 0.01)
    if name == "grid25":
        axis = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        return Mixture(np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2), 0.05)
    raise KeyError(name)


MIXTURES = ("ring8", "grid25")


def load_mixture(name: str, num: int = SAMPLES, seed: int = 0) -> Dataset:
    """``num`` points (N, 2) of a built-in mixture, labelled by mode, in a fixed order."""
    m = mixture(name)
    k = len(m.means)
    rng = np.random.default_rng(seed)
    labels = np.arange(num) % k
    points = m.means[labels] + rng.normal(scale=m.std, size=(num, 2))
    return Dataset(samples=torch.from_numpy(points.astype(np.float32)),
                   labels=torch.from_numpy(labels.astype(np.int64)), name=name)

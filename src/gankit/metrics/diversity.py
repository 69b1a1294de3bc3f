"""Diversity of a batch of generated samples against real data: the figures of mode collapse.

All three are read off features (N, F) of one batch and compared with the same statistics of a
real batch of the same size:

- ``diversity``: the batch's mean pairwise distance over the real batch's (1 for data-like
  spread, near 0 when the generator draws one thing);
- ``duplicates``: the share of samples whose nearest other sample is closer than a tenth of the
  real batch's median nearest-neighbour distance (near-copies of each other);
- ``modes_seen``: how many classes (a classifier's, a mixture's modes, or k-means clusters of the
  real features) get at least a tenth of their fair share of the batch, beside ``modes_real``,
  the same count for the real batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..clusters import assign, kmeans
from .classes import class_histogram

DUPLICATE_FRACTION = 0.1  # a near-duplicate is closer than this share of real NN distances


def _as_array(x: torch.Tensor | np.ndarray) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return a.reshape(len(a), -1).astype(np.float64, copy=False)


def pairwise_distances(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Euclidean distances (N, N) between the rows of ``x`` (flattened)."""
    a = _as_array(x)
    sq = (a * a).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (a @ a.T)
    return np.sqrt(np.maximum(d2, 0.0))


def spread(distances: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean distance between distinct rows, each row's nearest-neighbour distance)."""
    n = len(distances)
    off = ~np.eye(n, dtype=bool)
    nearest = np.where(off, distances, np.inf).min(1)
    return float(distances[off].mean()), nearest


def covered(classes: np.ndarray, num_classes: int) -> int:
    """Classes that hold more than a tenth of their fair share (1/K) of ``classes``."""
    return int((class_histogram(classes, num_classes) > 0.1 / num_classes).sum())


@dataclass(frozen=True)
class DiversityReference:
    """The real batch's statistics that generated batches are compared with."""

    spread: float  # mean pairwise distance
    nearest: float  # median nearest-neighbour distance
    modes: int  # classes the real batch covers
    num_classes: int
    centroids: np.ndarray | None = None  # k-means centres where the classes are clusters


def diversity_reference(features: torch.Tensor | np.ndarray, classes: np.ndarray | None = None,
                        num_classes: int = 0, clusters: int = 10,
                        seed: int = 0) -> DiversityReference:
    """The reference of a real batch's ``features``; without ``classes``, they are ``clusters``
    k-means clusters of the features (seeded)."""
    feats = _as_array(features)
    mean, nearest = spread(pairwise_distances(feats))
    centroids = None
    if classes is None:
        k = max(1, min(clusters, len(feats) // 10))
        labels, c = kmeans(torch.from_numpy(feats).float(), k, seed=seed, restarts=2)
        classes, num_classes, centroids = labels.numpy(), k, c.double().numpy()
    return DiversityReference(spread=mean, nearest=float(np.median(nearest)),
                              modes=covered(classes, num_classes), num_classes=num_classes,
                              centroids=centroids)


def diversity_scores(features: torch.Tensor | np.ndarray, ref: DiversityReference,
                     classes: np.ndarray | None = None) -> dict[str, float]:
    """``diversity``, ``duplicates``, ``modes_seen`` and ``modes_real`` of a generated batch (see
    the module's docstring); ``classes`` are needed where ``ref`` has no centroids."""
    feats = _as_array(features)
    mean, nearest = spread(pairwise_distances(feats))
    if ref.centroids is not None:
        classes = assign(torch.from_numpy(feats).float(),
                         torch.from_numpy(ref.centroids).float()).numpy()
    if classes is None:
        raise ValueError("classes are needed: the reference has no clusters")
    dup = float((nearest < DUPLICATE_FRACTION * ref.nearest).mean()) if ref.nearest > 0 else 0.0
    return {"diversity": mean / ref.spread if ref.spread > 0 else 0.0, "duplicates": dup,
            "modes_seen": covered(classes, ref.num_classes), "modes_real": ref.modes}

"""Diversity of a batch of generated samples against real data: the figures of mode collapse.

All three are read off features (N, F) of one batch and compared with the same statistics of a
real batch of the same size:

- ``diversity``: the batch's mean pairwise distance over the real batch's (1 for data-like
  spread, near 0 when the generator draws one thing);
- ``duplicates``: the share of samples whose nearest other sample is closer than a tenth of the
  real batch's median nearest-neighbour distance (near-copies of each other);
- ``modes_seen``: how many classes (a classifier's, a mixture's modes, or k-means clusters of the
  real features) get at least a tenth of their fair share of the batch, beside ``modes_real``,
  the same count for the real batch;
- ``realism``: the share of samples that lie within some real sample's distance to its
  ``REALISM_K``-th nearest real neighbour (the precision of Kynkaanniemi et al. 2019 on these
  features): near 1 for data-like samples, near 0 for samples spread away from the data, which a
  spread can hide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..clusters import assign, kmeans
from .classes import class_histogram

DUPLICATE_FRACTION = 0.1  # a near-duplicate is closer than this share of real NN distances
REALISM_K = 3  # the real neighbourhoods of ``realism``: to the 3rd nearest other real sample


def _as_array(x: torch.Tensor | np.ndarray) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return a.reshape(len(a), -1).astype(np.float64, copy=False)


def pairwise_distances(x: torch.Tensor | np.ndarray,
                       y: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances (N, M) between the rows of ``x`` and of ``y`` (default ``x``)."""
    a = _as_array(x)
    b = a if y is None else _as_array(y)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
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


def clustered(features: torch.Tensor | np.ndarray, clusters: int = 10, seed: int = 0
              ) -> tuple[np.ndarray, int, np.ndarray]:
    """(labels, k, centroids (k, F)) of ``clusters`` k-means clusters of ``features`` (at most a
    tenth as many as rows; seeded): the classes of data that has none."""
    feats = _as_array(features)
    k = max(1, min(clusters, len(feats) // 10))
    labels, c = kmeans(torch.from_numpy(feats).float(), k, seed=seed, restarts=2)
    return labels.numpy(), k, c.double().numpy()


def mode_counts(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                real_classes: np.ndarray | None = None, fake_classes: np.ndarray | None = None,
                num_classes: int = 0, clusters: int = 10, seed: int = 0) -> tuple[int, int]:
    """(classes the ``fake`` batch covers, classes the ``real`` batch covers), by
    ``covered``: the given classes, or ``clusters`` k-means clusters of the real features
    (``clustered``) that each fake row is assigned to. Linear in the rows (no pairwise
    distances), for batches of thousands."""
    if real_classes is None or fake_classes is None:
        real_classes, num_classes, centroids = clustered(real, clusters, seed)
        fake_classes = assign(torch.from_numpy(_as_array(fake)).float(),
                              torch.from_numpy(centroids).float()).numpy()
    return covered(fake_classes, num_classes), covered(real_classes, num_classes)


@dataclass(frozen=True)
class DiversityReference:
    """The real batch's statistics that generated batches are compared with."""

    spread: float  # mean pairwise distance
    nearest: float  # median nearest-neighbour distance
    modes: int  # classes the real batch covers
    num_classes: int
    centroids: np.ndarray | None = None  # k-means centres where the classes are clusters
    features: np.ndarray | None = None  # the real batch's features (N, F), for ``realism``
    radii: np.ndarray | None = None  # each real sample's distance to its REALISM_K-th neighbour


def diversity_reference(features: torch.Tensor | np.ndarray, classes: np.ndarray | None = None,
                        num_classes: int = 0, clusters: int = 10, seed: int = 0,
                        realism: bool = True) -> DiversityReference:
    """The reference of a real batch's ``features``; without ``classes``, they are ``clusters``
    k-means clusters of the features (seeded). With ``realism``, it keeps what ``realism``
    needs (the features and their neighbourhoods)."""
    feats = _as_array(features)
    distances = pairwise_distances(feats)
    mean, nearest = spread(distances)
    radii = None
    if realism:
        k = min(REALISM_K, len(feats) - 1)
        radii = np.sort(distances, axis=1)[:, k] if k > 0 else np.zeros(len(feats))
    centroids = None
    if classes is None:
        classes, num_classes, centroids = clustered(feats, clusters, seed)
    return DiversityReference(spread=mean, nearest=float(np.median(nearest)),
                              modes=covered(classes, num_classes), num_classes=num_classes,
                              centroids=centroids, features=feats if realism else None,
                              radii=radii)


def diversity_scores(features: torch.Tensor | np.ndarray, ref: DiversityReference,
                     classes: np.ndarray | None = None) -> dict[str, float]:
    """``diversity``, ``duplicates``, ``modes_seen``, ``modes_real`` and (where ``ref`` keeps its
    real features) ``realism`` of a generated batch (see the module's docstring); ``classes``
    are needed where ``ref`` has no centroids."""
    feats = _as_array(features)
    mean, nearest = spread(pairwise_distances(feats))
    if ref.centroids is not None:
        classes = assign(torch.from_numpy(feats).float(),
                         torch.from_numpy(ref.centroids).float()).numpy()
    if classes is None:
        raise ValueError("classes are needed: the reference has no clusters")
    dup = float((nearest < DUPLICATE_FRACTION * ref.nearest).mean()) if ref.nearest > 0 else 0.0
    scores = {"diversity": mean / ref.spread if ref.spread > 0 else 0.0, "duplicates": dup,
              "modes_seen": covered(classes, ref.num_classes), "modes_real": ref.modes}
    if ref.features is not None and ref.radii is not None:
        near = pairwise_distances(feats, ref.features) <= ref.radii[None, :]
        scores["realism"] = float(near.any(1).mean())
    return scores

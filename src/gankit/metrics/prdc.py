"""Improved precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

Each real (or generated) sample owns a ball reaching its k-th nearest neighbour in its own set;
the metrics count which samples of the other set fall inside those balls (strictly, as in the
authors' code). Distances are computed in row chunks, so memory stays O(chunk × N).
"""

from __future__ import annotations

import numpy as np
import torch

CHUNK = 1024


def _as_features(x: torch.Tensor | np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"features must be (N, D), got {a.shape}")
    return a


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b))."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of x to its k-th nearest other row, shape (N,)."""
    if not 1 <= k < x.shape[0]:
        raise ValueError(f"k must be in 1..{x.shape[0] - 1} for {x.shape[0]} samples, got {k}")
    out = np.empty(x.shape[0])
    for s in range(0, x.shape[0], CHUNK):
        d = _distances(x[s:s + CHUNK], x)
        out[s:s + CHUNK] = np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself
    return out


def _ball_counts(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each point, how many balls (centres, radii) contain it strictly."""
    counts = np.empty(points.shape[0], dtype=np.int64)
    for s in range(0, points.shape[0], CHUNK):
        counts[s:s + CHUNK] = (_distances(points[s:s + CHUNK], centres) < radii[None, :]).sum(1)
    return counts


def precision_recall(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                     k: int = 3, real_radii: np.ndarray | None = None) -> tuple[float, float]:
    """(precision, recall): the share of fake samples inside the real manifold, and vice versa.

    ``real_radii`` may pass ``knn_radii(real, k)`` computed once for many comparisons.
    """
    r, f = _as_features(real), _as_features(fake)
    radii = knn_radii(r, k) if real_radii is None else real_radii
    precision = float((_ball_counts(f, r, radii) > 0).mean())
    recall = float((_ball_counts(r, f, knn_radii(f, k)) > 0).mean())
    return precision, recall


def density_coverage(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                     k: int = 5, real_radii: np.ndarray | None = None) -> tuple[float, float]:
    """(density, coverage): mean real balls per fake sample / k; share of real balls hit."""
    r, f = _as_features(real), _as_features(fake)
    radii = knn_radii(r, k) if real_radii is None else real_radii
    density = float(_ball_counts(f, r, radii).mean() / k)
    nearest = np.empty(r.shape[0])
    for s in range(0, r.shape[0], CHUNK):
        nearest[s:s + CHUNK] = _distances(r[s:s + CHUNK], f).min(1)
    coverage = float((nearest < radii).mean())
    return density, coverage

"""k-means clustering of training data, for self-conditioned GANs (Liu et al. 2020)."""

from __future__ import annotations

import math

import torch

FIT_POINTS = 10_000  # k-means is fitted on at most this many points, then every point assigned


def sq_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (N, K) between rows of ``x`` and of ``centroids``."""
    d = (x * x).sum(1, keepdim=True) - 2 * x @ centroids.T + (centroids * centroids).sum(1)
    return d.clamp_min_(0.0)


def nearest(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 8192
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``x``: the index of its nearest centroid and the squared distance to it."""
    parts = [sq_distances(x[i:i + chunk], centroids).min(1) for i in range(0, len(x), chunk)]
    return torch.cat([p.indices for p in parts]), torch.cat([p.values for p in parts])


def assign(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid for each row of ``x`` (N,)."""
    return nearest(x, centroids)[0]


def _init(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007): each new centre is the best of
    2 + log k candidates drawn in proportion to the squared distance to the closest centre."""
    n = len(x)
    tries = 2 + int(math.log(k))
    centres = [x[torch.randint(n, (1,), generator=gen)]]
    closest = sq_distances(x, centres[0])[:, 0]
    for _ in range(k - 1):
        if float(closest.sum()) <= 0:  # fewer distinct points than k: repeat some
            pick = torch.randint(n, (tries,), generator=gen)
        else:
            pick = torch.multinomial(closest, tries, replacement=True, generator=gen)
        cand = torch.minimum(closest[:, None], sq_distances(x, x[pick]))
        best = int(cand.sum(0).argmin())
        centres.append(x[pick[best]][None])
        closest = cand[:, best]
    return torch.cat(centres)


def _lloyd(x: torch.Tensor, centroids: torch.Tensor, iters: int
           ) -> tuple[torch.Tensor, float]:
    """Lloyd iterations from ``centroids`` until no label changes (at most ``iters``);
    (centroids, inertia). Empty clusters keep their centre."""
    k = len(centroids)
    previous = None
    for _ in range(iters):
        labels = assign(x, centroids)
        if previous is not None and torch.equal(labels, previous):
            break
        previous = labels
        counts = torch.bincount(labels, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None],
                                centroids)
    return centroids, float(nearest(x, centroids)[1].sum())


def kmeans(x: torch.Tensor, k: int, seed: int = 0, restarts: int = 4, iters: int = 100,
           fit_points: int = FIT_POINTS) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means of the rows of ``x`` (N, ...), flattened: (labels (N,), centroids (k, D)).

    The best of ``restarts`` greedy k-means++ runs by inertia, fitted on a random subset of at
    most ``fit_points`` rows; every row is then labelled by its nearest centroid. Deterministic
    for a given ``seed``.
    """
    flat = x.reshape(len(x), -1).to(torch.float32)
    if not 1 <= k <= len(flat):
        raise ValueError(f"cannot make {k} clusters of {len(flat)} points")
    gen = torch.Generator().manual_seed(seed)
    fit = flat
    if len(flat) > fit_points:
        fit = flat.index_select(0, torch.randperm(len(flat), generator=gen)[:fit_points])
    best: tuple[torch.Tensor, float] | None = None
    for _ in range(max(1, restarts)):
        run = _lloyd(fit, _init(fit, k, gen), iters)
        if best is None or run[1] < best[1]:
            best = run
    assert best is not None
    return assign(flat, best[0]), best[0]


def label_share(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Share of each of the ``k`` labels among ``labels`` (k,), summing to 1."""
    counts = torch.bincount(labels.cpu(), minlength=k)[:k].to(torch.float64)
    return (counts / counts.sum().clamp_min(1)).to(torch.float32)


def draw_labels(share: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` labels (int64) drawn independently with probabilities ``share``."""
    return torch.multinomial(share, n, replacement=True, generator=gen)

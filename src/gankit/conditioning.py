"""Conditioning: what is drawn for each sample that G and D both see.

One concept with three sources: class labels of the data, k-means clusters of the data
(self-conditioning), and a table's conditional vectors (a column's category, CTGAN). The trainer
only asks a conditioning for a training batch's rows and conditions, for conditions of generated
samples at the data's shares, and for an extra generator loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .clusters import assign, draw_labels, kmeans, label_share
from .errors import ConfigError
from .training.devices import upload

if TYPE_CHECKING:
    from .config import ModelConfig
    from .data.base import Dataset


class Conditioning:
    """No conditioning: rows drawn uniformly, no condition."""

    num_labels = 0  # > 0: integer labels G and D embed (classes or clusters)
    vector_dim = 0  # > 0: float condition vectors G and D read (tables)

    def __init__(self, size: int) -> None:
        self.size = size

    def batch(self, n: int, gen: torch.Generator, part: slice, device: torch.device
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Rows of the training data for a batch of ``n`` (this rank's ``part`` of them, on
        ``device``) and their conditions."""
        idx = upload(self.rows(n, gen, part), device)
        return idx, self.of(idx)

    def rows(self, n: int, gen: torch.Generator, part: slice) -> torch.Tensor:
        """The row indices ``batch`` draws (on the CPU), before their conditions are read."""
        return torch.randint(self.size, (n,), generator=gen)[part]

    def of(self, idx: torch.Tensor) -> torch.Tensor | None:
        """The conditions of rows ``idx``, on their device (None: no condition)."""
        return None

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor | None:
        """Conditions for ``n`` generated samples, at their share of the data (CPU)."""
        return None

    def penalty(self, fake: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        """An extra generator loss on its output ``fake`` for conditions ``y`` (None: none)."""
        return None

    def penalty_with_grad(self, fake: torch.Tensor, y: torch.Tensor | None
                          ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``penalty`` and its gradient with respect to ``fake`` (None: no penalty)."""
        return None

    def state(self) -> dict[str, Any]:
        """What a checkpoint records of the conditioning."""
        return {"label_share": None, "centroids": None}


class Labels(Conditioning):
    """Integer labels per training sample: classes, or k-means clusters (with ``centroids``)."""

    def __init__(self, labels: torch.Tensor, num_labels: int, device: torch.device,
                 centroids: torch.Tensor | None = None) -> None:
        super().__init__(len(labels))
        self.num_labels = num_labels
        self.labels = labels.to(device)
        self.share = label_share(labels, num_labels)  # each label's share: samples draw by it
        self.centroids = centroids

    def of(self, idx: torch.Tensor) -> torch.Tensor:
        return self.labels.index_select(0, idx)

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return draw_labels(self.share, n, gen)

    def state(self) -> dict[str, Any]:
        return {"label_share": self.share, "centroids": self.centroids}

    def relabel(self, x: torch.Tensor, centroids: torch.Tensor) -> None:
        """Re-label the clusters of ``x`` from ``centroids`` (resume, rollback, other ranks), in
        place: the labels tensor keeps its memory, which a captured CUDA graph reads."""
        labels = assign(x.cpu(), centroids)
        self.labels.copy_(labels)
        self.share = label_share(labels, self.num_labels)
        self.centroids = centroids


def clusters(x: torch.Tensor, k: int, seed: int, device: torch.device) -> Labels:
    """Self-conditioning on ``k`` k-means clusters of the training samples ``x``."""
    labels, centroids = kmeans(x.cpu(), k, seed)
    return Labels(labels, k, device, centroids)


def from_labels_or_clusters(m: ModelConfig, data: Dataset, x: torch.Tensor, seed: int,
                            device: torch.device) -> Conditioning:
    """Images and points: clusters (``model.clusters``), the data's classes
    (``model.conditional``) or nothing. ``x`` is the training data as G makes it."""
    if m.clusters:
        if len(x) < m.clusters:
            raise ConfigError(f"model.clusters={m.clusters} needs at least as many training "
                              f"samples, and the data has {len(x)}")
        return clusters(x, m.clusters, seed, device)
    if m.conditional and data.labels is not None:
        return Labels(data.labels, data.num_classes, device)
    return Conditioning(len(x))

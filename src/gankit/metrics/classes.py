"""Class coverage: which classes generated samples fall into, against the data's proportions."""

from __future__ import annotations

import numpy as np
import torch


def class_histogram(labels: torch.Tensor | np.ndarray, num_classes: int) -> np.ndarray:
    """Fraction of samples in each class, shape (num_classes,)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    return counts[:num_classes] / max(1, counts.sum())


def class_coverage(
    predicted: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray, num_classes: int,
    min_fraction: float = 0.0,
) -> tuple[int, float]:
    """(classes covered, KL(generated ‖ reference)) of predicted labels against reference labels.

    A class is covered when more than ``min_fraction`` of the samples fall into it. The KL uses
    the generated histogram as the first argument, so missing classes cost nothing by themselves
    but over-represented ones do; the reference is smoothed by 1e-12 to stay finite.
    """
    p = class_histogram(predicted, num_classes)
    q = class_histogram(reference, num_classes)
    covered = int((p > min_fraction).sum())
    nz = p > 0
    kl = float(np.sum(p[nz] * np.log(p[nz] / np.maximum(q[nz], 1e-12))))
    return covered, kl

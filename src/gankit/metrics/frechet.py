"""Fréchet distance between two sets of feature vectors (FID when the features are Inception's)."""

from __future__ import annotations

import numpy as np
import torch


def gaussian_stats(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, D), got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_stats(
    mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray
) -> float:
    """||mu1 - mu2||² + Tr(C1 + C2 - 2 (C1 C2)^½) for two Gaussians.

    Tr((C1 C2)^½) is computed as the sum of square roots of the eigenvalues of the symmetric
    matrix C1^½ C2 C1^½, which has the same spectrum and stays real.
    """
    s1 = _sqrt_psd(cov1)
    eig = np.linalg.eigvalsh(s1 @ cov2 @ s1)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt)


def frechet_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between feature sets a (N, D) and b (M, D)."""
    return frechet_distance_from_stats(*gaussian_stats(a), *gaussian_stats(b))

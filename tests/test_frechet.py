"""Fréchet distance against scipy's sqrtm, closed forms and known cases."""

from __future__ import annotations

import numpy as np
import pytest

from gankit.metrics.frechet import frechet_distance, frechet_distance_from_stats, gaussian_stats

scipy_linalg = pytest.importorskip("scipy.linalg", reason="scipy is a dev dependency")


def reference(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root (as in pytorch-fid)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy_linalg.sqrtm(c1 @ c2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))


def test_matches_scipy_sqrtm() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 8))
    b = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8)) * 0.5 + 1.0
    assert frechet_distance(a, b) == pytest.approx(reference(a, b), rel=1e-6, abs=1e-8)


def test_identical_sets_and_closed_form() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 5))
    assert abs(frechet_distance(a, a)) < 1e-8
    # Two isotropic Gaussians: ||m1 - m2||² + D (s1 - s2)².
    d = 4
    value = frechet_distance_from_stats(np.zeros(d), np.eye(d) * 4.0, np.ones(d), np.eye(d))
    assert value == pytest.approx(d + d * (2.0 - 1.0) ** 2)


def test_far_apart_sets() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 3))
    assert frechet_distance(a, a + 10.0) == pytest.approx(300.0, rel=1e-6)


def test_bad_shapes() -> None:
    with pytest.raises(ValueError):
        gaussian_stats(np.zeros((1, 3)))

"""Precision/recall and density/coverage against a brute-force reading of the papers."""

from __future__ import annotations

import numpy as np
import pytest

from gankit.metrics import prdc
from gankit.metrics.prdc import density_coverage, knn_radii, precision_recall


def brute(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> tuple[float, ...]:
    """Every quantity from explicit loops over pairs."""
    def dist(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.sqrt(((x - y) ** 2).sum()))

    def radius(s: np.ndarray, i: int, k: int) -> float:
        return sorted(dist(s[i], s[j]) for j in range(len(s)) if j != i)[k - 1]

    rr = [radius(real, i, k_pr) for i in range(len(real))]
    rf = [radius(fake, j, k_pr) for j in range(len(fake))]
    rd = [radius(real, i, k_dc) for i in range(len(real))]
    precision = np.mean([any(dist(f, real[i]) < rr[i] for i in range(len(real))) for f in fake])
    recall = np.mean([any(dist(r, fake[j]) < rf[j] for j in range(len(fake))) for r in real])
    density = np.mean([sum(dist(f, real[i]) < rd[i] for i in range(len(real))) for f in fake])
    coverage = np.mean([min(dist(real[i], f) for f in fake) < rd[i] for i in range(len(real))])
    return precision, recall, density / k_dc, coverage


def test_matches_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prdc, "CHUNK", 7)  # exercise the chunking
    rng = np.random.default_rng(0)
    real = rng.normal(size=(30, 3))
    fake = rng.normal(size=(25, 3)) * 1.3 + 0.4
    got = (*precision_recall(real, fake, 3), *density_coverage(real, fake, 5))
    assert got == pytest.approx(brute(real, fake, 3, 5))


def test_radii() -> None:
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_allclose(knn_radii(x, 1), [1, 1, 2, 4])
    np.testing.assert_allclose(knn_radii(x, 2), [3, 2, 3, 6])
    with pytest.raises(ValueError):
        knn_radii(x, 4)


def test_identical_and_disjoint_sets() -> None:
    rng = np.random.default_rng(1)
    real = rng.normal(size=(200, 4))
    assert precision_recall(real, real) == (1.0, 1.0)
    density, coverage = density_coverage(real, real)
    assert coverage == 1.0 and density == pytest.approx(1.0, abs=0.05)
    far = real + 100.0
    assert precision_recall(real, far) == (0.0, 0.0)
    assert density_coverage(real, far) == (0.0, 0.0)


def test_mode_dropping_hurts_recall_not_precision() -> None:
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [10.0, 0.0]])
    real = np.concatenate([c + rng.normal(size=(200, 2)) for c in centres])
    half = centres[0] + rng.normal(size=(400, 2))
    p, r = precision_recall(real, half)
    _, coverage = density_coverage(real, half)
    assert p > 0.9 and 0.4 < r < 0.6 and 0.4 < coverage < 0.6


def test_precomputed_radii_give_the_same_result() -> None:
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(50, 3)), rng.normal(size=(40, 3))
    assert precision_recall(real, fake, 3, knn_radii(real, 3)) == precision_recall(real, fake)
    assert density_coverage(real, fake, 5, knn_radii(real, 5)) == density_coverage(real, fake)

"""Inception-style score: direct formula and its extremes."""

from __future__ import annotations

import numpy as np
import pytest

from gankit.metrics.score import inception_score


def test_extremes() -> None:
    confident_spread = np.eye(10)[np.arange(1000) % 10]
    assert inception_score(confident_spread)[0] == pytest.approx(10.0)
    one_class = np.eye(10)[np.zeros(1000, dtype=int)]
    assert inception_score(one_class) == (pytest.approx(1.0), pytest.approx(0.0))
    uniform = np.full((1000, 10), 0.1)
    assert inception_score(uniform)[0] == pytest.approx(1.0)


def test_matches_direct_formula() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    py = p.mean(0)
    expected = np.exp(np.mean([sum(p[i, c] * np.log(p[i, c] / py[c]) for c in range(4))
                               for i in range(50)]))
    assert inception_score(p, splits=1)[0] == pytest.approx(expected, rel=1e-10)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        inception_score(np.full((5, 3), 1 / 3), splits=10)

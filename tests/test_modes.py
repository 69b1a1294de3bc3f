"""PacGAN mode scores: quality threshold, modes captured, reverse KL to uniform."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.data.digits import load_digits
from gankit.data.stacked import stack_digits
from gankit.metrics.modes import (
    STACKED_MODES,
    histogram_kl,
    mode_scores,
    stacked_labels,
    stacked_scores,
)

MEANS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


def test_all_modes_evenly() -> None:
    pts = np.repeat(MEANS, 25, axis=0) + 0.01
    # Every point is 0.01 (one std) from its mean along each axis: spread 1.
    assert mode_scores(pts, MEANS, std=0.01) == {"high_quality": 1.0, "modes": 4, "mode_kl": 0.0,
                                                  "spread": pytest.approx(1.0)}


def test_one_mode_and_far_samples() -> None:
    pts = np.concatenate([np.zeros((30, 2)), np.full((10, 2), 0.5)])  # 0.5,0.5 is far from all
    s = mode_scores(pts, MEANS, std=0.05)
    assert s["modes"] == 1 and s["high_quality"] == pytest.approx(0.75)
    assert s["mode_kl"] == pytest.approx(math.log(4))


def test_threshold_is_three_std_and_kl_matches_formula() -> None:
    pts = np.array([[0.029, 0.0], [1.031, 0.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    s = mode_scores(pts, MEANS, std=0.01)
    # The second point is outside 3 std; the histogram over modes is (1, 0, 2, 2)/5.
    assert s["high_quality"] == pytest.approx(5 / 6) and s["modes"] == 3
    p = np.array([1, 2, 2]) / 5
    assert s["mode_kl"] == pytest.approx(float(np.sum(p * np.log(p * 4))))


def test_no_good_sample() -> None:
    s = mode_scores(np.full((5, 2), 0.5), MEANS, std=0.01)
    assert s == {"high_quality": 0.0, "modes": 0, "mode_kl": pytest.approx(math.log(4)),
                 "spread": 0.0}
    with pytest.raises(ValueError):
        mode_scores(np.zeros((3, 3)), MEANS, std=0.01)


def test_histogram_kl() -> None:
    assert histogram_kl(np.array([5, 5, 5, 5])) == 0.0
    assert histogram_kl(np.array([0, 0, 7])) == pytest.approx(math.log(3))
    assert histogram_kl(np.zeros(10, dtype=np.int64)) == pytest.approx(math.log(10))


def test_stacked_scores_of_real_stacked_digits() -> None:
    data = stack_digits(load_digits(), 3000, seed=2)
    labels = stacked_labels(data.images)
    assert (labels == data.labels).float().mean() > 0.99  # the classifier reads each channel
    s = stacked_scores(data.images)
    truth = np.bincount(data.labels.numpy(), minlength=STACKED_MODES)
    assert abs(s["modes"] - int((truth > 0).sum())) <= 10
    assert s["mode_kl"] == pytest.approx(histogram_kl(truth), abs=0.02)


def test_stacked_scores_of_one_mode() -> None:
    one = load_digits().images[:1].expand(50, 3, 28, 28)
    s = stacked_scores(one)
    assert s["modes"] == 1 and s["mode_kl"] == pytest.approx(math.log(STACKED_MODES))
    with pytest.raises(ValueError):
        stacked_scores(torch.zeros(4, 1, 28, 28))


def test_spread_of_the_mixture_itself_and_of_narrow_modes() -> None:
    rng = np.random.default_rng(0)
    means, std = np.array([[0.0, 0.0], [10.0, 0.0]]), 0.5
    labels = np.arange(20_000) % 2
    exact = means[labels] + rng.normal(scale=std, size=(20_000, 2))
    # Per axis, a 2-D Gaussian cut at 3 std keeps sqrt((2 - 9 e^-4.5 / (1 - e^-4.5)) / 2) std.
    expected = math.sqrt((2 - 9 * math.exp(-4.5) / (1 - math.exp(-4.5))) / 2)
    assert mode_scores(exact, means, std)["spread"] == pytest.approx(expected, abs=0.01)
    narrow = means[labels] + rng.normal(scale=std / 4, size=(20_000, 2))
    assert mode_scores(narrow, means, std)["spread"] == pytest.approx(0.25, abs=0.01)
    assert mode_scores(np.full((5, 2), 100.0), means, std)["spread"] == 0.0

"""stacked-digits: three built-in digits as RGB channels, 1,000 modes, fixed from a seed."""

from __future__ import annotations

import torch

from gankit import data as data_sources
from gankit.config import DataConfig
from gankit.data.digits import load_digits
from gankit.data.stacked import MODES, NAME, load_stacked, stack_digits


def test_channels_are_the_labelled_digits() -> None:
    digits = load_digits()
    d = stack_digits(digits, 300, seed=1)
    assert d.shape == (3, 28, 28) and d.name == NAME and len(d) == 300
    assert d.labels is not None and int(d.labels.max()) < MODES
    for i in range(0, 300, 37):
        lab = int(d.labels[i])
        for c, digit in enumerate((lab // 100, lab // 10 % 10, lab % 10)):
            matches = (digits.images[:, 0] == d.images[i, c]).flatten(1).all(1)
            assert matches.any() and (digits.labels[matches] == digit).all()


def test_fixed_and_built_by_name() -> None:
    a, b = load_stacked(500), load_stacked(500)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, load_stacked(500, seed=1).images)
    d = data_sources.build(DataConfig(source=NAME))
    assert len(d) == 50_000 and d.shape == (3, 28, 28) and d.is_image
    assert len(torch.unique(d.labels)) == MODES
    assert 0.0 <= float(d.images.min()) and float(d.images.max()) <= 1.0

"""Stacked digits (VEEGAN/PacGAN): three built-in digits as the R, G, B channels of one image.

1,000 modes, one per (a, b, c) digit triple; the label of an image is ``100*a + 10*b + c``. The
images are drawn once from the built-in digits with a fixed seed, so the source is the same on
every machine.
"""

from __future__ import annotations

import torch

from .base import Dataset
from .digits import load_digits

NAME = "stacked-digits"
MODES = 1000
SAMPLES = 50_000  # stacked images drawn once (each mode ~50 times)


def stack_digits(digits: Dataset, num: int, seed: int = 0) -> Dataset:
    """``num`` RGB images (num, 3, 28, 28) whose channels are random digits of ``digits``."""
    if digits.labels is None or digits.shape != (1, 28, 28):
        raise ValueError("stacking needs labelled (N, 1, 28, 28) digits")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(digits), (num, 3), generator=gen)
    images = digits.images[idx].squeeze(2)  # (num, 3, 1, 28, 28) -> (num, 3, 28, 28)
    lab = digits.labels[idx]
    labels = 100 * lab[:, 0] + 10 * lab[:, 1] + lab[:, 2]
    return Dataset(samples=images.contiguous(), labels=labels, name=NAME)


def load_stacked(num: int = SAMPLES, seed: int = 0) -> Dataset:
    """The ``stacked-digits`` source: ``num`` stacked images from the built-in digits."""
    return stack_digits(load_digits(), num, seed)

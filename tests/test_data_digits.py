"""The built-in 5,000 digits shipped inside the package."""

from __future__ import annotations

import torch

from gankit.data.digits import load_digits


def test_load_digits() -> None:
    ds = load_digits()
    assert ds.name == "digits"
    assert len(ds) == 5000
    assert ds.images.dtype == torch.float32 and ds.images.shape == (5000, 1, 28, 28)
    assert ds.shape == (1, 28, 28)
    assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) <= 1.0
    assert float(ds.images.max()) == 1.0 and float(ds.images.min()) == 0.0
    assert ds.labels is not None and ds.labels.dtype == torch.int64
    assert ds.labels.bincount(minlength=10).tolist() == [500] * 10
    assert ds.num_classes == 10
    # Real digits: mostly dark background with a bright stroke in the middle.
    mean = ds.images.mean(dim=0)[0]
    assert 0.05 < float(ds.images.mean()) < 0.3
    assert float(mean[10:18, 10:18].mean()) > float(mean[:3].mean())

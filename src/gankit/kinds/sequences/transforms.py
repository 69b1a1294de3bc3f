"""Fitted, invertible maps between scaled series and what the generator makes.

* ``Marginals`` (``kinds.normal_scores``, shared with tables): each channel through its
  empirical distribution to normal scores, and back through the stored quantiles. Every channel
  then looks Gaussian to G: white-noise channels, spikes at a floor value and long tails cost
  it nothing to draw, and decoded values never leave the seen range.
* ``Basis``: flat rows onto their principal axes that carry a ``share`` of the variance
  (PCA), and back. Directions the data hardly uses (step-to-step jitter of slowly varying
  channels, a channel that copies another) are not generated at all, so G cannot add noise
  there. The coordinates are not whitened: D, which sees them, then weighs a direction by how
  much the data varies along it, as it would in the data's own space (whitened coordinates
  made D chase the smallest axes; energy, one seed: discriminative 0.42 against 0.29).

Both are saved in the run's codec.json: quantiles as numbers, the basis as safetensors bytes
(base64), never pickle.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from ...errors import DataError


@dataclass(frozen=True, eq=False)
class Basis:
    """Principal axes of flat rows: mean (D,), axes (K, D) orthonormal."""

    mean: torch.Tensor
    axes: torch.Tensor

    @property
    def size(self) -> int:
        """K: the generator's cells per row."""
        return len(self.axes)

    @classmethod
    def fit(cls, rows: np.ndarray, share: float) -> Basis:
        """The fewest axes of ``rows`` (N, D) that carry ``share`` of their variance."""
        x = torch.from_numpy(np.asarray(rows, dtype=np.float64))
        mean = x.mean(0)
        _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
        var = s.square() / max(1, len(x) - 1)
        if float(var.sum()) <= 0:
            raise DataError("every series is the same: there is no variance to generate")
        carried = var.cumsum(0) / var.sum()
        k = int((carried < share).sum()) + 1
        k = min(k, int((var > var[0] * 1e-12).sum()))  # never an axis of zero variance
        return cls(mean.float(), vt[:k].float().contiguous())

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows (N, D) -> coordinates (N, K)."""
        return ((rows.double() - self.mean.double()) @ self.axes.double().T).float()

    def inverse(self, coords: torch.Tensor) -> torch.Tensor:
        """Coordinates (N, K) -> rows (N, D)."""
        return coords.double() @ self.axes.double() + self.mean.double()

    def to_json(self) -> str:
        """The basis as safetensors bytes in base64."""
        data = save_bytes({"mean": self.mean.contiguous(), "axes": self.axes.contiguous()})
        return base64.b64encode(data).decode("ascii")

    @classmethod
    def from_json(cls, d: Any, width: int) -> Basis:
        """Inverse of ``to_json``; DataError for a basis that does not fit rows of ``width``."""
        try:
            t = load_bytes(base64.b64decode(d, validate=True))
            basis = cls(t["mean"].float(), t["axes"].float())
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise DataError(f"the stored sequence basis is damaged ({e})") from None
        k = basis.size
        if (basis.mean.shape != (width,) or basis.axes.shape != (k, width) or k < 1
                or not all(bool(torch.isfinite(v).all()) for v in t.values())):
            raise DataError("the stored sequence basis does not fit together")
        return basis

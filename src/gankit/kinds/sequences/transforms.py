"""Fitted, invertible maps between scaled series and what the generator makes.

* ``Marginals``: each channel through its empirical distribution to normal scores (a value's
  quantile, then the standard normal's inverse CDF), and back through the stored quantiles.
  Every channel then looks Gaussian to G: white-noise channels, spikes at a floor value and
  long tails cost it nothing to draw, and decoded values never leave the seen range.
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

QUANTILES = 1001  # stored quantiles per channel (every 0.1%)
EDGE = 5e-4  # normal scores are those of quantiles in [EDGE, 1 - EDGE] (about +-3.3)


@dataclass(frozen=True, eq=False)
class Marginals:
    """Per-channel quantiles (C, QUANTILES) of the scaled values, for normal scores."""

    quantiles: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, lengths: np.ndarray | None) -> Marginals:
        """The quantiles of each channel of ``values`` (N, T, C) over its valid steps."""
        n, t, c = values.shape
        alive = np.ones((n, t), bool) if lengths is None else (
            np.arange(t)[None, :] < lengths[:, None])
        levels = np.linspace(0.0, 1.0, QUANTILES)
        return cls(np.stack([np.quantile(values[:, :, k][alive], levels) for k in range(c)]))

    def forward(self, values: np.ndarray) -> np.ndarray:
        """Scaled values (..., C) -> normal scores; a value shared by many (a floor, a spike)
        takes the middle of its quantiles."""
        levels = np.linspace(0.0, 1.0, QUANTILES)
        out = np.empty(values.shape, dtype=np.float64)
        for k, q in enumerate(self.quantiles):
            v = values[..., k]
            low = np.interp(v, q, levels)
            high = np.interp(-v, -q[::-1], levels[::-1])
            out[..., k] = _ndtri(np.clip((low + high) / 2, EDGE, 1 - EDGE))
        return out

    def inverse(self, scores: np.ndarray) -> np.ndarray:
        """Normal scores (..., C) -> scaled values, inside each channel's seen range."""
        levels = np.linspace(0.0, 1.0, QUANTILES)
        out = np.empty(scores.shape, dtype=np.float64)
        for k, q in enumerate(self.quantiles):
            out[..., k] = np.interp(_ndtr(scores[..., k]), levels, q)
        return out

    def to_json(self) -> list[list[float]]:
        """The quantiles as plain numbers."""
        return [[float(v) for v in row] for row in self.quantiles]

    @classmethod
    def from_json(cls, d: Any, channels: int) -> Marginals:
        """Inverse of ``to_json``; DataError for quantiles that do not fit ``channels``."""
        try:
            q = np.asarray(d, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("the stored sequence marginals cannot be read") from None
        if (q.shape != (channels, QUANTILES) or not np.isfinite(q).all()
                or (np.diff(q, axis=1) < 0).any()):
            raise DataError("the stored sequence marginals do not fit together")
        return cls(q)


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


def _ndtri(p: np.ndarray) -> np.ndarray:
    """The standard normal's inverse CDF."""
    return torch.special.ndtri(torch.from_numpy(np.asarray(p, dtype=np.float64))).numpy()


def _ndtr(z: np.ndarray) -> np.ndarray:
    """The standard normal's CDF."""
    return torch.special.ndtr(torch.from_numpy(np.asarray(z, dtype=np.float64))).numpy()

"""Normal scores: values through their empirical distribution to the standard normal, and back.

A value's score is the standard normal's inverse CDF at its quantile among the fitted values
(a value shared by many, such as a floor or a spike at zero, takes the middle of its
quantiles); a score goes back through the stored quantiles, so decoded values never leave the
seen range. Sequences use it per channel, tables per numeric column: the generator then draws
every marginal as a near-Gaussian, whatever its shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import DataError

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

    @classmethod
    def of_columns(cls, columns: list[np.ndarray]) -> Marginals:
        """The quantiles of each 1-D array of values (a table's numeric columns)."""
        levels = np.linspace(0.0, 1.0, QUANTILES)
        return cls(np.stack([np.quantile(np.asarray(v, dtype=np.float64), levels)
                             for v in columns]))

    def forward(self, values: np.ndarray, edge: float = EDGE) -> np.ndarray:
        """Scaled values (..., C) -> normal scores; a value shared by many (a floor, a spike)
        takes the middle of its quantiles; quantiles are kept inside [edge, 1 - edge]."""
        levels = np.linspace(0.0, 1.0, QUANTILES)
        out = np.empty(values.shape, dtype=np.float64)
        for k, q in enumerate(self.quantiles):
            v = values[..., k]
            low = np.interp(v, q, levels)
            high = np.interp(-v, -q[::-1], levels[::-1])
            out[..., k] = _ndtri(np.clip((low + high) / 2, edge, 1 - edge))
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
            raise DataError("the stored marginals (quantiles) cannot be read") from None
        if (q.shape != (channels, QUANTILES) or not np.isfinite(q).all()
                or (np.diff(q, axis=1) < 0).any()):
            raise DataError("the stored marginals (quantiles) do not fit together")
        return cls(q)


def _ndtri(p: np.ndarray) -> np.ndarray:
    """The standard normal's inverse CDF."""
    return torch.special.ndtri(torch.from_numpy(np.asarray(p, dtype=np.float64))).numpy()


def _ndtr(z: np.ndarray) -> np.ndarray:
    """The standard normal's CDF."""
    return torch.special.ndtr(torch.from_numpy(np.asarray(z, dtype=np.float64))).numpy()

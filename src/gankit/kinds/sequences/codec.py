"""The sequence codec: series (N, T, C) <-> generator rows, saved as JSON.

Each channel is min-max scaled to [0, 1] (TimeGAN's scaling, and the scale its scores are read
in). A flat row holds the steps one after another, each step its C channels and, for
variable-length data, one more cell that is 1 while the series lasts and 0 after it; padding
values are 0. A generated row ends at its first step whose cell is below one half (at least 1
step). With ``data.marginals = "gaussian"`` the channels' cells are their normal scores
(``normal_scores.Marginals``), and with ``data.basis`` above 0 a generator row is the flat row's
principal coordinates (``transforms.Basis``); without either, rows are the flat rows
in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ...errors import DataError
from .. import SEQUENCE_CODEC
from ..normal_scores import Marginals
from .transforms import Basis

FORMAT = SEQUENCE_CODEC


@dataclass(frozen=True)
class SequenceCodec:
    """How a run's series become generator rows and back (see the module docstring)."""

    length: int  # T: steps of the longest series
    channels: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    variable: bool  # whether series end early (a length cell per step)
    classes: tuple[str, ...] = ()  # label names, by class index; () = unlabelled
    layout: tuple[tuple[str, str], ...] = (("format", "npz"),)  # how CSV output is laid out
    marginals: Marginals | None = field(default=None, compare=False)  # normal scores, or None
    basis: Basis | None = field(default=None, compare=False)  # principal axes, or None

    @property
    def width(self) -> int:
        """Cells per step: the channels, plus the length cell."""
        return len(self.channels) + int(self.variable)

    @property
    def flat_width(self) -> int:
        """Cells per flat row (every step's cells)."""
        return self.length * self.width

    @property
    def row_width(self) -> int:
        """Cells per generator row."""
        return self.flat_width if self.basis is None else self.basis.size

    def scale(self, values: np.ndarray) -> np.ndarray:
        """Values in the data's units -> [0, 1] per channel."""
        low, high = np.asarray(self.low), np.asarray(self.high)
        return (values - low) / (high - low)

    def unscale(self, scaled: np.ndarray) -> np.ndarray:
        """[0, 1] per channel -> the data's units."""
        low, high = np.asarray(self.low), np.asarray(self.high)
        return low + scaled * (high - low)

    def flat(self, scaled: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
        """Scaled series (N, T, C) and their lengths -> flat rows (N, T * W), float64."""
        n, t, c = scaled.shape
        if t != self.length or c != len(self.channels):
            raise DataError(f"series of {t} steps x {c} channels do not fit this codec's "
                            f"{self.length} x {len(self.channels)}")
        cells = np.clip(scaled, 0.0, 1.0)
        if self.marginals is not None:
            cells = self.marginals.forward(cells)
        if self.variable:
            lens = lengths if lengths is not None else np.full(n, t)
            alive = (np.arange(t)[None, :] < lens[:, None]).astype(np.float64)
            cells = np.concatenate([cells * alive[:, :, None], alive[:, :, None]], axis=2)
        return cells.reshape(n, -1)

    def encode(self, scaled: np.ndarray, lengths: np.ndarray | None) -> torch.Tensor:
        """Scaled series (N, T, C) and their lengths -> generator rows (N, row_width),
        float32."""
        rows = torch.from_numpy(self.flat(scaled, lengths))
        if self.basis is not None:
            rows = self.basis.forward(rows)
        return rows.float()

    def decode(self, rows: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Generator rows (N, row_width) -> (scaled series (N, T, C) in [0, 1] with 0 past
        each length, lengths (N,) or None for fixed-length data)."""
        x = rows.detach().cpu().double()
        if self.basis is not None:
            x = self.basis.inverse(x)
        cells = x.numpy().reshape(len(rows), self.length, self.width)
        values = cells[:, :, :len(self.channels)]
        values = (np.clip(values, 0.0, 1.0) if self.marginals is None
                  else self.marginals.inverse(values))
        if not self.variable:
            return values, None
        alive = np.cumprod(cells[:, :, -1] >= 0.5, axis=1).astype(bool)
        alive[:, 0] = True
        lengths = alive.sum(axis=1).astype(np.int64)
        return values * alive[:, :, None], lengths

    def to_json(self) -> dict[str, Any]:
        """The codec as plain JSON values."""
        return {"format": FORMAT, "kind": "sequences", "length": self.length,
                "channels": list(self.channels),
                "low": list(self.low), "high": list(self.high), "variable": self.variable,
                "classes": list(self.classes), "layout": dict(self.layout),
                **({} if self.marginals is None else {"marginals": self.marginals.to_json()}),
                **({} if self.basis is None else {"basis": self.basis.to_json()})}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SequenceCodec:
        """Inverse of ``to_json``; DataError for a codec that does not fit together."""
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r}")
            codec = cls(length=int(d["length"]), channels=tuple(str(c) for c in d["channels"]),
                        low=tuple(float(v) for v in d["low"]),
                        high=tuple(float(v) for v in d["high"]),
                        variable=bool(d["variable"]),
                        classes=tuple(str(c) for c in d["classes"]),
                        layout=tuple((str(k), str(v)) for k, v in dict(d["layout"]).items()))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"the stored sequence codec cannot be read ({e})") from None
        c = len(codec.channels)
        if (codec.length < 2 or c < 1 or len(codec.low) != c or len(codec.high) != c
                or not all(np.isfinite(codec.low)) or not all(np.isfinite(codec.high))
                or any(h <= lo for lo, h in zip(codec.low, codec.high, strict=True))):
            raise DataError("the stored sequence codec does not fit together")
        if "marginals" in d:
            codec = replace(codec, marginals=Marginals.from_json(d["marginals"], c))
        if "basis" in d:
            codec = replace(codec, basis=Basis.from_json(d["basis"], codec.flat_width))
        return codec

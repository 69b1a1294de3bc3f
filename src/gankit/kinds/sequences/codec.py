"""The sequence codec: series (N, T, C) <-> flat rows (N, T * W) in [0, 1], saved as JSON.

Each channel is min-max scaled to [0, 1] (TimeGAN's scaling, and the scale its scores are read
in). A row holds the steps one after another, each step its C channels and, for variable-length
data, one more cell that is 1 while the series lasts and 0 after it; padding values are 0. A
generated row ends at its first step whose cell is below one half (at least 1 step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...errors import DataError
from .. import SEQUENCE_CODEC

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

    @property
    def width(self) -> int:
        """Cells per step: the channels, plus the length cell."""
        return len(self.channels) + int(self.variable)

    @property
    def row_width(self) -> int:
        """Cells per generator row."""
        return self.length * self.width

    def scale(self, values: np.ndarray) -> np.ndarray:
        """Values in the data's units -> [0, 1] per channel."""
        low, high = np.asarray(self.low), np.asarray(self.high)
        return (values - low) / (high - low)

    def unscale(self, scaled: np.ndarray) -> np.ndarray:
        """[0, 1] per channel -> the data's units."""
        low, high = np.asarray(self.low), np.asarray(self.high)
        return low + scaled * (high - low)

    def encode(self, scaled: np.ndarray, lengths: np.ndarray | None) -> torch.Tensor:
        """Scaled series (N, T, C) and their lengths -> rows (N, T * W), float32."""
        n, t, c = scaled.shape
        if t != self.length or c != len(self.channels):
            raise DataError(f"series of {t} steps x {c} channels do not fit this codec's "
                            f"{self.length} x {len(self.channels)}")
        cells = np.clip(scaled, 0.0, 1.0)
        if self.variable:
            lens = lengths if lengths is not None else np.full(n, t)
            alive = (np.arange(t)[None, :] < lens[:, None]).astype(np.float64)
            cells = np.concatenate([cells * alive[:, :, None], alive[:, :, None]], axis=2)
        return torch.from_numpy(cells.reshape(n, -1).astype(np.float32))

    def decode(self, rows: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows (N, T * W) in [0, 1] -> (scaled series (N, T, C) with 0 past each length,
        lengths (N,) or None for fixed-length data)."""
        cells = rows.detach().float().cpu().clamp(0.0, 1.0).numpy().astype(np.float64)
        cells = cells.reshape(len(rows), self.length, self.width)
        values = cells[:, :, :len(self.channels)]
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
                "classes": list(self.classes), "layout": dict(self.layout)}

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
        return codec

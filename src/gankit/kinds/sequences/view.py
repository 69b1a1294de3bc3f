"""A sequence run's samples as they leave gankit: flat rows plus the codec (ONNX), plots and
.npz files (the sampling page)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from ..base import View


class SequenceView(View):
    """Series leave as generator rows (in its output range; the codec in the metadata maps
    them to [0, 1] cells, through its basis and marginals where it has them, reshapes and
    unscales them); the page shows them as line plots."""

    outputs = ("rows",)
    downloads = ("png", "npz")

    @property
    def page_num(self) -> int:
        return 5

    def describe(self) -> dict[str, str]:
        return {"gankit.outputs": json.dumps({"rows": ["N", *self.run.generator.image_shape]}),
                "gankit.value_range": json.dumps({"rows": list(self.run.value_range)}),
                "gankit.codec": json.dumps(self.run.codec.to_json())}

    def _decoded(self, x: torch.Tensor) -> tuple[Any, Any]:
        from . import to_unit

        return self.run.codec.decode(to_unit(x, self.run.value_range))

    def plot(self, x: torch.Tensor) -> bytes:
        """PNG of series ``x`` (raw generator output), channel by channel."""
        from .report import series_png

        return series_png(None, self._decoded(x), self.run.codec)

    def grid(self, x: torch.Tensor, columns: int) -> dict[str, Any]:
        from ...images import png_data_url

        return {"plot": png_data_url(self.plot(x))}

    def walked(self, x: torch.Tensor, context: Callable[[], tuple[torch.Tensor, torch.Tensor]]
               ) -> dict[str, Any]:
        return self.grid(x, 0)

    def download(self, fmt: str, x: torch.Tensor, columns: int) -> tuple[str, str, bytes]:
        if fmt == "png":
            return "image/png", ".png", self.plot(x)
        from . import series_bytes

        values, _ = self._decoded(x)
        return "application/octet-stream", ".npz", series_bytes(self.run.codec.unscale(values))

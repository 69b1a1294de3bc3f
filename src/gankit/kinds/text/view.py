"""A text run's samples as they leave gankit: token ids plus the vocabulary that reads them
(ONNX), strings as a one-column table and a .txt file (the sampling page)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from ..base import View


class TextView(View):
    """Text leaves as token ids (N, length), 0 ending a string and token i the vocabulary's
    character i-1 (in the metadata), beside the raw one-hot output; a latent run's as codes
    (N, code_dim), which its autoencoder (in the metadata) decodes. The page shows the strings."""

    downloads = ("txt",)

    @property
    def outputs(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("codes",) if self.run.codec.latent else ("tokens", "raw")

    @property
    def page_num(self) -> int:
        return 50

    def finish(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        codec = self.run.codec
        if codec.latent:
            return x
        return x.reshape(-1, codec.length, codec.vocab_size).argmax(2), x

    def describe(self) -> dict[str, str]:
        codec = self.run.codec
        shape = ({"codes": ["N", codec.autoencoder.code_dim]} if codec.latent
                 else {"tokens": ["N", codec.length], "raw": ["N", codec.width]})
        return {"gankit.outputs": json.dumps(shape),
                "gankit.codec": json.dumps(codec.to_json())}

    def rows(self, x: torch.Tensor) -> dict[str, Any]:
        """The strings as a one-column table: {"columns": ["text"], "rows": [[...], ...]}."""
        return {"columns": ["text"], "rows": [[s] for s in self.run.codec.decode(x)]}

    def grid(self, x: torch.Tensor, columns: int) -> dict[str, Any]:
        return self.rows(x)

    def walked(self, x: torch.Tensor, context: Callable[[], tuple[torch.Tensor, torch.Tensor]]
               ) -> dict[str, Any]:
        return self.rows(x)

    def download(self, fmt: str, x: torch.Tensor, columns: int) -> tuple[str, str, bytes]:
        text = "".join(s + "\n" for s in self.run.codec.decode(x))
        return "text/plain; charset=utf-8", ".txt", text.encode("utf-8")

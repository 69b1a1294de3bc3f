"""A table run's samples as they leave gankit: encoded rows plus the codec that decodes them
(ONNX), rows as JSON and CSV (the sampling page)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from ..base import View
from .codec import DISCRETE


class TableView(View):
    """Tables leave as encoded rows (the codec rides along in the metadata); the page shows
    decoded rows."""

    outputs = ("rows",)
    downloads = ("csv",)

    @property
    def page_num(self) -> int:
        return 20

    def choices(self) -> list[str] | None:
        return [f"{o['column']} = {o['value']}" for o in self.options()] or None

    def options(self) -> list[dict[str, Any]]:
        """The condition vector cell by cell: the column, the category, and its share among
        generated samples (the option a one-hot condition picks); empty when unconditioned."""
        cond = self.run.conditioning
        if cond is None or cond.p_share is None:
            return []
        cells = [(c.name, v) for c in self.run.codec.columns if c.kind in DISCRETE
                 for v in c.categories]
        return [{"column": name, "value": value, "share": round(float(p), 8)}
                for (name, value), p in zip(cells, cond.p_share, strict=True)]

    def describe(self) -> dict[str, str]:
        meta = {"gankit.outputs": json.dumps({"rows": ["N", *self.run.generator.image_shape]}),
                "gankit.value_range": json.dumps({"rows": [-1.0, 1.0]}),
                "gankit.codec": json.dumps(self.run.codec.to_json())}
        if self.run.conditioning is not None:
            meta["gankit.conditions"] = json.dumps(self.options())
        return meta

    def rows(self, x: torch.Tensor) -> dict[str, Any]:
        """Decoded rows as JSON values: {"columns": [...], "rows": [[...], ...]}."""
        df = self.run.codec.decode(x)
        split = json.loads(df.to_json(orient="split", index=False, date_format="iso",
                                      date_unit="s"))
        return {"columns": split["columns"], "rows": split["data"]}

    def grid(self, x: torch.Tensor, columns: int) -> dict[str, Any]:
        return self.rows(x)

    def walked(self, x: torch.Tensor, context: Callable[[], tuple[torch.Tensor, torch.Tensor]]
               ) -> dict[str, Any]:
        return self.rows(x)

    def download(self, fmt: str, x: torch.Tensor, columns: int) -> tuple[str, str, bytes]:
        csv = self.run.codec.decode(x).to_csv(index=False).encode("utf-8")
        return "text/csv; charset=utf-8", ".csv", csv

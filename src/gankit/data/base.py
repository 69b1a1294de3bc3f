"""The in-memory dataset every source produces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Dataset:
    """Samples as one float32 tensor, optional labels, and what the data's kind needs.

    ``samples`` is (N, C, H, W) with values in [0, 1] for images, (N, D) for points (2-D
    mixtures), whose values are used as they are, or (N, width) encoded rows for tables.
    ``labels`` is an int64 tensor (N,) with values in [0, num_classes) or None for unlabelled
    data. ``kind`` names the data kind (see ``gankit.kinds``); a table carries its fitted
    ``codec`` and its real rows (``frames``: the training and held-out DataFrames).
    """

    samples: torch.Tensor
    labels: torch.Tensor | None
    name: str
    kind: str = ""  # "" = images for (N, C, H, W), points for (N, D)
    codec: Any = None
    frames: Any = None
    notes: tuple[str, ...] = ()  # what loading decided that the user should hear

    def __post_init__(self) -> None:
        if self.samples.ndim not in (2, 4) or self.samples.dtype != torch.float32:
            raise ValueError(f"samples must be float32 (N, C, H, W) or (N, D), got "
                             f"{self.samples.dtype} {tuple(self.samples.shape)}")
        if self.labels is not None and self.labels.shape != (self.samples.shape[0],):
            raise ValueError("labels must have one entry per sample")
        if not self.kind:
            object.__setattr__(self, "kind", "images" if self.samples.ndim == 4 else "points")

    @property
    def images(self) -> torch.Tensor:
        """The samples (the name from when every dataset held images)."""
        return self.samples

    def __len__(self) -> int:
        return int(self.samples.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """(channels, height, width) of one image, (D,) of one point or row."""
        return tuple(int(s) for s in self.samples.shape[1:])

    @property
    def is_image(self) -> bool:
        """Whether the samples are images."""
        return self.kind == "images"

    @property
    def num_classes(self) -> int:
        """Number of classes (0 when unlabelled)."""
        return 0 if self.labels is None else int(self.labels.max().item()) + 1

"""The in-memory dataset every source produces."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dataset:
    """Samples as one float32 tensor, and optional labels.

    ``images`` is (N, C, H, W) with values in [0, 1] for images, or (N, D) for points (2-D
    mixtures), whose values are used as they are. `labels` is an int64 tensor (N,) with values
    in [0, num_classes) or None for unlabelled data.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    name: str

    def __post_init__(self) -> None:
        if self.images.ndim not in (2, 4) or self.images.dtype != torch.float32:
            raise ValueError(f"images must be float32 (N, C, H, W) or (N, D), got "
                             f"{self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels is not None and self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must have one entry per image")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """(channels, height, width) of one image, or (D,) of one point."""
        return tuple(int(s) for s in self.images.shape[1:])

    @property
    def is_image(self) -> bool:
        """Whether the samples are images (else points)."""
        return self.images.ndim == 4

    @property
    def num_classes(self) -> int:
        """Number of classes (0 when unlabelled)."""
        return 0 if self.labels is None else int(self.labels.max().item()) + 1

"""Differentiable augmentation (DiffAugment, Zhao et al. 2020): translation, cutout, colour.

Applied to every image D sees, real and generated alike, so gradients flow through it to G.
Each image gets its own random parameters, drawn from the (CPU) generator the caller passes in
and moved to the images' device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .training.devices import upload

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _rand(x: torch.Tensor, gen: torch.Generator, *shape: int) -> torch.Tensor:
    return upload(torch.rand(x.shape[0], *shape, generator=gen), x.device)


def _grid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices (H, W) of the images ``x``, on their device."""
    h, w = x.shape[-2:]
    return torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device),
                          indexing="ij")


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random brightness (±0.5), saturation (×0..2) and contrast (×0.5..1.5) per image."""
    x = x + (_rand(x, gen, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x, gen, 1, 1, 1) * 2.0) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x, gen, 1, 1, 1) + 0.5) + mean


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size in x and y, filling with zeros."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = upload(torch.randint(-sy, sy + 1, (n, 1, 1), generator=gen), x.device)
    tx = upload(torch.randint(-sx, sx + 1, (n, 1, 1), generator=gen), x.device)
    gy, gx = _grid(x)
    gy = (gy.unsqueeze(0) + ty + 1).clamp(0, h + 1)
    gx = (gx.unsqueeze(0) + tx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    idx = (gy * (w + 2) + gx).view(n, 1, h * w).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, idx).view_as(x)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ``ratio`` times the image size at a random place in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = upload(torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen), x.device)
    ox = upload(torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen), x.device)
    gy, gx = _grid(x)
    inside = (((gy.unsqueeze(0) >= oy - ch // 2) & (gy.unsqueeze(0) < oy - ch // 2 + ch))
              & ((gx.unsqueeze(0) >= ox - cw // 2) & (gx.unsqueeze(0) < ox - cw // 2 + cw)))
    return x * (~inside).unsqueeze(1).to(x.dtype)


AUGMENTS: dict[str, Augment] = {"translation": translation, "cutout": cutout, "color": color}


def diff_augment(x: torch.Tensor, names: Sequence[str], gen: torch.Generator) -> torch.Tensor:
    """Apply the named augmentations in the fixed order color, translation, cutout."""
    for name in ("color", "translation", "cutout"):
        if name in names:
            x = AUGMENTS[name](x, gen)
    return x

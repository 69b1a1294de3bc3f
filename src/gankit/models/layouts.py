"""Memory layouts at the seams between fully connected and convolutional layers.

A trainer may put the convolutions in channels-last layout (``train.channels_last``). Where a
flat vector becomes a feature map (G's projection) or a feature map becomes a vector (D's head),
the plain reshape leaves the elementwise layers next to the seam with an input in one layout and
a gradient in the other, and torch's kernels for mixed layouts are 5-10x slower than for one
(a leaky ReLU's backward on 128x64x7x7 bf16: 0.3-0.7 ms against 0.06). These keep one layout on
each side; values and gradients are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


def _nhwc(t: torch.Tensor) -> bool:
    """Whether a 4-D tensor is channels-last and not also plainly contiguous."""
    return (t.dim() == 4 and not t.is_contiguous()
            and t.is_contiguous(memory_format=torch.channels_last))


def layout_of(module: nn.Module) -> torch.memory_format:
    """The memory format of ``module``'s first 4-D weight (channels-last or contiguous)."""
    for p in module.parameters():
        if p.dim() == 4:
            return torch.channels_last if _nhwc(p) else torch.contiguous_format
    return torch.contiguous_format


def as_map(h: torch.Tensor, shape: tuple[int, int, int], module: nn.Module) -> torch.Tensor:
    """Vectors (N, C*H*W) as feature maps (N, C, H, W) in the layout of ``module``'s weights."""
    return h.view(-1, *shape).contiguous(memory_format=layout_of(module))


class _Flatten(torch.autograd.Function):
    """``x.flatten(1)`` of a channels-last map whose gradient comes back channels-last."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.shape = x.shape
        return x.flatten(1)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return g.reshape(ctx.shape).contiguous(memory_format=torch.channels_last)


def flatten(x: torch.Tensor) -> torch.Tensor:
    """Feature maps (N, C, H, W) as vectors (N, C*H*W) in channel-major order, the gradient in
    the maps' own layout."""
    return _Flatten.apply(x) if _nhwc(x) else x.flatten(1)

"""Memory layout at the seam where a discriminator's feature maps become a vector.

A trainer may put the convolutions in channels-last layout (``train.channels_last``). D's head
flattens its last map in channel-major order; the plain reshape sends the gradient back NCHW
into a channels-last leaky ReLU, and torch's kernels for mixed layouts are 5-10x slower than for
one (the leaky ReLU's backward on 128x64x7x7 bf16: 0.3-0.7 ms against 0.06). ``flatten`` keeps
the map's layout for its gradient; values and gradients are unchanged, bit for bit.

G's seam (its projection reshaped to a map) is left NCHW: putting it in channels-last runs G's
first batch norm in another kernel, whose rounding changed the trajectory of the `stacked`
preset (KL 0.153 / 0.173 against 0.121 / 0.105 on seeds 0 and 1; BENCHMARKS.md, "Session 23").
"""

from __future__ import annotations

import torch


def _nhwc(t: torch.Tensor) -> bool:
    """Whether a 4-D tensor is channels-last and not also plainly contiguous."""
    return (t.dim() == 4 and not t.is_contiguous()
            and t.is_contiguous(memory_format=torch.channels_last))


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

"""Memory layout at the seams between a network's maps and its vectors.

A trainer may put the convolutions in channels-last layout (``train.channels_last``). Torch's
elementwise kernels for mixed layouts are 5-10x slower than for one (the leaky ReLU's backward
on 128x64x7x7 bf16: 0.3-0.7 ms against 0.06), so each seam keeps one layout on each side, for the
values and for their gradients:

- D's head flattens its last map in channel-major order; the plain reshape would send the
  gradient back NCHW into a channels-last leaky ReLU. ``flatten`` keeps the map's layout for its
  gradient.
- G's projection is reshaped to an NCHW map, and stays NCHW through G's first batch norm and ReLU
  (a channels-last batch norm runs another kernel, whose rounding changed the trajectory of the
  `stacked` preset: KL 0.153 / 0.173 against 0.121 / 0.105 on seeds 0 and 1; BENCHMARKS.md,
  "Session 23"). ``enter`` then puts the map in the first convolution's layout, and sends its
  gradient back NCHW: neither the transposed convolution nor the ReLU's backward meets a mixed
  pair (measured: about 0.8 ms of their 1.6 ms at batch 64; the dcgan step 2-4% faster at
  batch 64 and 128; BENCHMARKS.md, "Session 27").

Values and gradients are unchanged, bit for bit (30 steps of each DCGAN preset, measured).
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


class _Enter(torch.autograd.Function):
    """``x.contiguous(memory_format=channels_last)`` of an NCHW map whose gradient goes back
    NCHW."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return g.contiguous()


def enter(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Feature maps (N, C, H, W) in the layout of the convolution ``weight`` they go into: an
    NCHW map meeting a channels-last weight becomes channels-last, its gradient NCHW; anything
    else is returned as it is."""
    if _nhwc(weight) and x.dim() == 4 and x.is_contiguous() and not x.is_contiguous(
            memory_format=torch.channels_last):
        return _Enter.apply(x)
    return x

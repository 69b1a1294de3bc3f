"""Convolutions with a single channel on one side (a grey image in, a grey image out), done on the
CPU as one matrix product and a col2im.

oneDNN's kernels for a convolution whose output has one channel run at 10-25 GFLOP/s on the CPU:
a DCGAN's last transposed convolution (32 channels to one, batch 64) took 0.9-1.4 ms for 13
MFLOP, and the input gradient of its discriminator's first convolution (the same operation) as
long (AVX-512, torch 2.13; BENCHMARKS.md, "Session 23"). As a product of the input's pixels by the
weight's taps followed by ``F.fold``, the same sums take a half to three quarters of that. With
three channels (RGB) the fold is slower than oneDNN (measured), so there, on CUDA, and for other
convolutions the layers are torch's own. The fold's own gradient (im2col) is gathered by one
strided view (``unfold``): the same values, 85 against 266 us for a DCGAN's batch of 64 (2
threads, measured).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype autocast gives convolutions on ``x``'s device here, or None where it is off."""
    kind = x.device.type
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
    return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None


def unfold(x: torch.Tensor, k: int, stride: int, padding: int) -> torch.Tensor:
    """``F.unfold(x, k, stride=stride, padding=padding)`` of maps (N, C, H, W), the same values,
    as one strided view of the padded maps and one copy (2-3x faster than torch's im2col on the
    CPU for a 28x28 map, measured)."""
    n, c, hh, ww = x.shape
    xp = F.pad(x, (padding,) * 4)
    oh, ow = (hh + 2 * padding - k) // stride + 1, (ww + 2 * padding - k) // stride + 1
    sn, sc, sh, sw = xp.stride()
    taps = xp.as_strided((n, c, k, k, oh, ow), (sn, sc, sh, sw, stride * sh, stride * sw))
    return taps.reshape(n, c * k * k, oh * ow)


class _Fold(torch.autograd.Function):
    """``F.fold`` (col2im) whose gradient is ``unfold``."""

    @staticmethod
    def forward(ctx, cols: torch.Tensor, size: tuple[int, int], k: int,  # noqa: ANN001
                stride: int, padding: int) -> torch.Tensor:
        ctx.conf = (k, stride, padding)
        return F.fold(cols, size, k, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple:  # noqa: ANN001
        return unfold(g, *ctx.conf), None, None, None, None


def fold_up(h: torch.Tensor, w: torch.Tensor, stride: int, padding: int,
            size: tuple[int, int]) -> torch.Tensor:
    """``conv_transpose2d(h, w, stride, padding)`` of spatial ``size`` for a weight (C, O, k, k):
    each input pixel times each tap as one product, then overlapping taps summed by col2im (in
    fp32, rounded once to the product's dtype)."""
    n, c, hh, ww = h.shape
    o, k = w.shape[1], w.shape[2]
    pixels = h.permute(0, 2, 3, 1).reshape(n, hh * ww, c).transpose(1, 2)  # a view of NHWC maps
    cols = torch.matmul(w.reshape(c, o * k * k).t(), pixels)  # (N, O*k*k, H*W), contiguous
    return _Fold.apply(cols.float(), size, k, stride, padding).to(cols.dtype)


def _square(value: tuple[int, ...] | int | str) -> int | None:
    """The one int of a square stride or padding, else None."""
    if isinstance(value, int):
        return value
    if isinstance(value, tuple) and len(set(value)) == 1 and isinstance(value[0], int):
        return value[0]
    return None


def _plain(conv: nn.Conv2d | nn.ConvTranspose2d) -> bool:
    """Whether a layer is a plain square 2-D convolution (no groups, dilation or output padding)."""
    return (conv.groups == 1 and set(conv.dilation) == {1} and _square(conv.stride) is not None
            and _square(conv.padding) is not None and conv.padding_mode == "zeros"
            and set(getattr(conv, "output_padding", (0,))) == {0}
            and conv.kernel_size[0] == conv.kernel_size[1])


class _GreyInput(torch.autograd.Function):
    """conv2d of a one-channel input whose input gradient (a transposed convolution to one
    channel) is ``fold_up``; the forward pass and the weight gradient are oneDNN's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,  # noqa: ANN001
                stride: int, padding: int) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.conf = (stride, padding, b is not None)
        return F.conv2d(x, w, b, stride, padding)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple:  # noqa: ANN001
        x, w = ctx.saved_tensors
        stride, padding, has_bias = ctx.conf
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = fold_up(g, w, stride, padding, tuple(x.shape[2:]))
        if ctx.needs_input_grad[1] or (has_bias and ctx.needs_input_grad[2]):
            _, gw, gb = torch.ops.aten.convolution_backward(
                g, x, w, [w.shape[0]] if has_bias else None, [stride] * 2, [padding] * 2,
                [1, 1], False, [0, 0], 1, [False, True, has_bias])
        return gx, gw, gb, None, None


def _grey(conv: nn.Conv2d | nn.ConvTranspose2d, channels: int) -> tuple[int, int] | None:
    """(stride, padding) of a plain square convolution with one channel on the side that counts
    (``channels``), else None: the layer then runs as torch's own."""
    return (_square(conv.stride), _square(conv.padding)) if channels == 1 and _plain(conv) else None


class GreyInConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, same sums) whose input gradient for a one-channel input
    on the CPU is a product and a col2im."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grey = _grey(self, self.in_channels)  # decided once, not at each step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or self.grey is None:
            return super().forward(x)
        w, b = self.weight, self.bias
        dtype = _autocast_dtype(x)
        if dtype is None:
            return _GreyInput.apply(x, w, b, *self.grey)
        x, w = x.to(dtype), w.to(dtype)
        b = None if b is None else b.to(dtype)
        with torch.autocast("cpu", enabled=False):  # the casts above are autocast's
            return _GreyInput.apply(x, w, b, *self.grey)


class GreyOutConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters, same sums) that makes a one-channel output on the
    CPU as a product and a col2im."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grey = _grey(self, self.out_channels)  # decided once, not at each step

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if x.device.type != "cpu" or self.grey is None or output_size is not None:
            return super().forward(x, output_size)
        stride, padding = self.grey
        k = self.kernel_size[0]
        size = tuple((s - 1) * stride - 2 * padding + k for s in x.shape[2:])
        out = fold_up(x, self.weight, stride, padding, size)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1).to(out.dtype)

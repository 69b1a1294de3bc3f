"""Speed levers of the training step, each switchable in [train]: fused Adam, mixed precision
(bf16 autocast; fp16 autocast with gradient scaling on CUDA), channels-last memory layout."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch

from ..optim import Adam


def adam(params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, ...],
         fused: bool = True) -> Adam:
    """Adam as one fused kernel where this torch and device have one, else multi-tensor."""
    return Adam(params, lr=lr, betas=tuple(betas), fused=fused)


def channels_last(x: torch.Tensor, *modules: torch.nn.Module | None) -> torch.Tensor:
    """Put ``modules`` in the NHWC memory layout (faster convolutions) and return ``x`` in it."""
    for module in modules:
        if module is not None:
            module.to(memory_format=torch.channels_last)
    return x.contiguous(memory_format=torch.channels_last)


def match_layout(opt: Adam) -> None:
    """Give each per-parameter optimizer tensor its parameter's memory layout.

    Checkpoints store tensors contiguous; restored moments of a channels-last parameter must be
    channels-last again, or the update takes another kernel path and resume is not bitwise.
    """
    for p, s in opt.state.items():
        for key, value in s.items():
            if isinstance(value, torch.Tensor) and value.shape == p.shape:
                s[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def cpu_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX-512 BF16, AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``auto`` becomes bf16 on a CPU with fast bf16 matrix units, else fp32 (GPUs included).

    The trainer then keeps fp32 where its fused step applies (``trainer.auto_precision``).

    On GPUs, measured on an H100 (BENCHMARKS.md, "GPU"): for the shipped presets' networks bf16
    autocast ran at 0.92x and fp16 at 0.78x of fp32, their casts costing more than the tensor
    cores save; large networks should ask for bf16 by name.
    """
    if precision == "auto":
        return "bf16" if device == "cpu" and cpu_bf16() else "fp32"
    return precision


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: str | torch.device = "cpu"
             ) -> contextlib.AbstractContextManager:
    """The mixed-precision context of the forward passes on ``device`` (a no-op for fp32)."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=str(device).split(":")[0], dtype=dtype)


def grad_scaler(precision: str, device: str | torch.device = "cpu") -> torch.amp.GradScaler:
    """A loss scaler for one player: active for fp16 (whose gradients underflow without it),
    a pass-through otherwise (``scale`` returns the loss, ``step`` just steps)."""
    return torch.amp.GradScaler(str(device).split(":")[0], enabled=precision == "fp16")

"""Speed levers of the training step, each switchable in [train]: fused Adam, bf16 autocast."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch


def adam(params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, ...],
         fused: bool = True) -> torch.optim.Adam:
    """Adam as one fused kernel where this torch and device support it, else multi-tensor."""
    params = list(params)
    if fused:
        try:
            return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass  # older torch, or a device without a fused Adam
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), foreach=True)


def bf16_supported(device: str = "cpu") -> bool:
    """Whether bfloat16 matrix multiplication is fast on ``device``."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast(precision: str, device: str = "cpu") -> contextlib.AbstractContextManager:
    """The mixed-precision context of the forward passes (a no-op for fp32)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()

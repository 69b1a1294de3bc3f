"""Penalties, input transforms and spectral norm for the discriminator, as pure functions.

Every random draw comes from a (CPU) ``torch.Generator`` the caller passes in, so training that
uses them stays exactly resumable; draws move to the data's device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .training.devices import upload

Critic = Callable[[torch.Tensor], torch.Tensor]


def _input_gradients(critic: Critic, x: torch.Tensor) -> torch.Tensor:
    """d sum(critic(x)) / dx, kept in the graph so a penalty on it can be trained."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(
    critic: Critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor,
    one_sided: bool = False,
) -> torch.Tensor:
    """WGAN-GP: E[(||grad D(x_hat)|| - 1)^2] at x_hat = eps * real + (1 - eps) * fake.

    ``eps`` holds one mixing weight per sample, shape (N,). One-sided: only norms above 1 count.
    """
    mix = eps.view(-1, *([1] * (real.ndim - 1)))
    x_hat = mix * real.detach() + (1.0 - mix) * fake.detach()
    norm = _input_gradients(critic, x_hat).norm(2, dim=1)
    excess = (norm - 1.0).clamp(min=0.0) if one_sided else norm - 1.0
    return (excess ** 2).mean()


def r1_penalty(critic: Critic, real: torch.Tensor) -> torch.Tensor:
    """R1: E[||grad D(x)||^2] on real data (multiply by gamma / 2 for the usual loss term)."""
    return _input_gradients(critic, real).pow(2).sum(1).mean()


def r2_penalty(critic: Critic, fake: torch.Tensor) -> torch.Tensor:
    """R2: E[||grad D(x)||^2] on generated samples (R3GAN pairs it with R1 and the relativistic
    pairing loss); multiply by gamma / 2 for the loss term."""
    return _input_gradients(critic, fake).pow(2).sum(1).mean()


def maybe_sn(module: nn.Module, use: bool) -> nn.Module:
    """``module`` with spectral normalisation of its weight when ``use``."""
    return spectral_norm(module) if use else module


def instance_noise(x: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    """``x`` plus Gaussian noise of standard deviation ``std`` (``x`` itself when std is 0)."""
    if std <= 0.0:
        return x
    return x + std * upload(torch.randn(x.shape, generator=gen, dtype=x.dtype), x.device)


def annealed(std: float, step: int, total: int) -> float:
    """Noise level decayed linearly from ``std`` at step 0 to 0 at step ``total``."""
    return std * max(0.0, 1.0 - step / max(1, total))


def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """PacGAN: join each run of ``m`` consecutive samples along channels, (N, C, ...) ->
    (N/m, m*C, ...), so the discriminator judges them together."""
    if m == 1:
        return x
    n = x.shape[0]
    if n % m:
        raise ValueError(f"pack size {m} does not divide the batch of {n}")
    return x.reshape(n // m, m * x.shape[1], *x.shape[2:])

"""Adversarial losses as pure functions of discriminator logits.

Every function takes raw logits (never probabilities), so ``log(sigmoid(x))`` is always computed
as ``-softplus(-x)`` and cannot overflow. Each returns a scalar mean over the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

DLoss = Callable[..., torch.Tensor]
GLoss = Callable[[torch.Tensor], torch.Tensor]


def d_non_saturating(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0
) -> torch.Tensor:
    """Discriminator cross-entropy: real scored toward ``real_label``, generated toward 0.

    Equals BCE-with-logits(real, real_label) + BCE-with-logits(fake, 0). A ``real_label`` below
    1 is one-sided label smoothing.
    """
    real = real_label * F.softplus(-real_logits) + (1.0 - real_label) * F.softplus(real_logits)
    return real.mean() + F.softplus(fake_logits).mean()


def g_non_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss -log D(G(z)): the generator is trained to make D say 'real'."""
    return F.softplus(-fake_logits).mean()


def g_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """The original minimax generator loss log(1 - D(G(z))), which saturates early on."""
    return -F.softplus(fake_logits).mean()


LOSSES: dict[str, tuple[DLoss, GLoss]] = {
    "non_saturating": (d_non_saturating, g_non_saturating),
    "minimax": (d_non_saturating, g_minimax),
}

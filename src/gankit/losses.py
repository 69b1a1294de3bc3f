"""Adversarial losses as pure functions of discriminator logits.

Every function takes raw logits (never probabilities), so ``log(sigmoid(x))`` is always computed
as ``-softplus(-x)`` and cannot overflow. Each returns a scalar mean over the batch.

Discriminator losses take ``(real_logits, fake_logits, real_label)``; generator losses take
``(fake_logits, real_logits)``, where only the relativistic losses read the real logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

DLoss = Callable[..., torch.Tensor]
GLoss = Callable[..., torch.Tensor]


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean binary cross-entropy of ``logits`` against a constant target in [0, 1]."""
    if target == 1.0:
        return F.softplus(-logits).mean()
    if target == 0.0:
        return F.softplus(logits).mean()
    return (target * F.softplus(-logits) + (1.0 - target) * F.softplus(logits)).mean()


def d_non_saturating(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0
) -> torch.Tensor:
    """Discriminator cross-entropy: real scored toward ``real_label``, generated toward 0.

    Equals BCE-with-logits(real, real_label) + BCE-with-logits(fake, 0). A ``real_label`` below
    1 is one-sided label smoothing.
    """
    real = real_label * F.softplus(-real_logits) + (1.0 - real_label) * F.softplus(real_logits)
    return real.mean() + F.softplus(fake_logits).mean()


def g_non_saturating(
    fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None
) -> torch.Tensor:
    """Generator loss -log D(G(z)): the generator is trained to make D say 'real'."""
    return F.softplus(-fake_logits).mean()


def g_minimax(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """The original minimax generator loss log(1 - D(G(z))), which saturates early on."""
    return -F.softplus(fake_logits).mean()


def d_least_squares(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0
) -> torch.Tensor:
    """LSGAN discriminator: 1/2 (D(x) - real_label)^2 + 1/2 D(G(z))^2 (targets a=0, b=1)."""
    return 0.5 * ((real_logits - real_label) ** 2).mean() + 0.5 * (fake_logits ** 2).mean()


def g_least_squares(
    fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None
) -> torch.Tensor:
    """LSGAN generator: 1/2 (D(G(z)) - 1)^2 (target c=1)."""
    return 0.5 * ((fake_logits - 1.0) ** 2).mean()


def d_wasserstein(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0
) -> torch.Tensor:
    """Wasserstein critic: E[D(G(z))] - E[D(x)] (pair with a gradient penalty or spectral norm)."""
    return fake_logits.mean() - real_logits.mean()


def g_wasserstein(
    fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None
) -> torch.Tensor:
    """Wasserstein generator (also the hinge generator): -E[D(G(z))]."""
    return -fake_logits.mean()


def d_hinge(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0
) -> torch.Tensor:
    """Hinge discriminator: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def d_relativistic(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0
) -> torch.Tensor:
    """Relativistic average discriminator (RaSGAN): real judged against the mean fake, and back.

    BCE(D(x) - E[D(G(z))], real_label) + BCE(D(G(z)) - E[D(x)], 0).
    """
    return (_bce(real_logits - fake_logits.mean(), real_label)
            + _bce(fake_logits - real_logits.mean(), 0.0))


def g_relativistic(fake_logits: torch.Tensor, real_logits: torch.Tensor | None) -> torch.Tensor:
    """Relativistic average generator: BCE(D(G(z)) - E[D(x)], 1) + BCE(D(x) - E[D(G(z))], 0)."""
    if real_logits is None:
        raise ValueError("the relativistic generator loss needs the real logits")
    return (_bce(fake_logits - real_logits.mean(), 1.0)
            + _bce(real_logits - fake_logits.mean(), 0.0))


def d_relativistic_pair(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0
) -> torch.Tensor:
    """Relativistic pairing discriminator (RpGAN, RSGAN): each real sample judged against the
    generated one at the same position, BCE(D(x_i) - D(G(z_i)), real_label).

    Its loss landscape has no mode-dropping basins (Sun et al. 2020); with R1 and R2 it is the
    loss of R3GAN (Huang et al. 2024).
    """
    return _bce(real_logits - fake_logits, real_label)


def g_relativistic_pair(fake_logits: torch.Tensor,
                        real_logits: torch.Tensor | None) -> torch.Tensor:
    """Relativistic pairing generator: BCE(D(G(z_i)) - D(x_i), 1)."""
    if real_logits is None:
        raise ValueError("the relativistic generator loss needs the real logits")
    return _bce(fake_logits - real_logits, 1.0)


LOSSES: dict[str, tuple[DLoss, GLoss]] = {
    "non_saturating": (d_non_saturating, g_non_saturating),
    "minimax": (d_non_saturating, g_minimax),
    "least_squares": (d_least_squares, g_least_squares),
    "wasserstein": (d_wasserstein, g_wasserstein),
    "hinge": (d_hinge, g_wasserstein),
    "relativistic": (d_relativistic, g_relativistic),
    "relativistic_pair": (d_relativistic_pair, g_relativistic_pair),
}

# Generator losses that need D's logits on a real batch too.
NEEDS_REAL_FOR_G = frozenset({"relativistic", "relativistic_pair"})
# Of those, the ones whose real logits are scored on their own, without a graph (constants for
# G). The average form keeps one pass over both batches: the `text` preset's runs on record
# were trained that way.
REAL_SCORED_ALONE = frozenset({"relativistic_pair"})

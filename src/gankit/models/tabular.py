"""The tabular family (CTGAN-class): a residual generator with one output head per column
block, and a discriminator that judges packs of rows with their condition vectors."""

from __future__ import annotations

import torch
from torch import nn

from ..regularizers import maybe_sn


class Residual(nn.Module):
    """Linear -> batch norm -> ReLU, concatenated to its input (CTGAN's residual layer)."""

    def __init__(self, width_in: int, width_out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width_in, width_out)
        self.bn = nn.BatchNorm1d(width_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.relu(self.bn(self.fc(x))), x], dim=1)


TAU = 0.2  # Gumbel-softmax temperature (CTGAN's)


def gumbel(noise: torch.Tensor) -> torch.Tensor:
    """Standard normal draws turned into standard Gumbel draws (through their uniform CDF)."""
    u = torch.special.ndtr(noise).clamp(1e-10, 1.0 - 1e-7)
    return -torch.log(-torch.log(u))


def apply_heads(raw: torch.Tensor, heads: tuple[tuple[int, str], ...],
                noise: torch.Tensor | None = None) -> torch.Tensor:
    """Per block of columns: tanh for scalars; for one-hot blocks a Gumbel-softmax at TAU
    with the Gumbel draws ``noise`` (one per softmax cell, in order), a softmax without."""
    parts, pos, cell = [], 0, 0
    for width, act in heads:
        block = raw[:, pos:pos + width]
        if act == "tanh":
            parts.append(torch.tanh(block))
        elif noise is None:
            parts.append(torch.softmax(block, dim=1))
        else:
            parts.append(torch.softmax((block + noise[:, cell:cell + width]) / TAU, dim=1))
            cell += width
        pos += width
    return torch.cat(parts, dim=1)


class TabularGenerator(nn.Module):
    """Maps noise (N, latent_dim) and condition vectors (N, C) to encoded rows (N, width).

    The noise holds ``code_dim`` inputs of the network, then one draw per softmax cell that
    becomes its Gumbel noise: every random choice of G is in its input, so a seed fixes a
    sample and a run's random streams fix its training.
    """

    def __init__(self, code_dim: int, hidden: tuple[int, ...],
                 heads: tuple[tuple[int, str], ...], cond_dim: int = 0) -> None:
        super().__init__()
        self.code_dim = code_dim
        self.heads = tuple(heads)
        self.latent_dim = code_dim + sum(w for w, a in heads if a == "softmax")
        self.cond_dim = cond_dim
        width = sum(w for w, _ in heads)
        self.image_shape = (width,)
        layers: list[nn.Module] = []
        dim = code_dim + cond_dim
        for h in hidden:
            layers.append(Residual(dim, h))
            dim += h
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(dim, width)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        code, noise = z[:, :self.code_dim], gumbel(z[:, self.code_dim:])
        if self.cond_dim:
            if y is None:
                raise ValueError("a conditional tabular generator needs condition vectors")
            code = torch.cat([code, y.to(z.dtype)], dim=1)
        return apply_heads(self.out(self.body(code)), self.heads, noise)


class TabularDiscriminator(nn.Module):
    """Scores packs of ``pack`` rows, each with its condition vector, with one logit (N/pack,).

    Rows arrive already packed by the recipe (N/pack, pack*width); conditions arrive per row and
    are packed here the same way.
    """

    def __init__(self, width: int, hidden: tuple[int, ...], leaky_slope: float = 0.2,
                 use_spectral_norm: bool = False, cond_dim: int = 0, pack: int = 1) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.pack = pack
        layers: list[nn.Module] = []
        dim = pack * (width + cond_dim)
        for h in hidden:
            layers += [maybe_sn(nn.Linear(dim, h), use_spectral_norm), nn.LeakyReLU(leaky_slope)]
            dim = h
        layers.append(maybe_sn(nn.Linear(dim, 1), use_spectral_norm))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)
        if self.cond_dim:
            if y is None:
                raise ValueError("a conditional tabular discriminator needs condition vectors")
            n, p = x.shape[0], self.pack
            x = torch.cat([x.view(n, p, -1), y.to(x.dtype).reshape(n, p, -1)], 2).flatten(1)
        return self.net(x).squeeze(1)

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


def apply_heads(raw: torch.Tensor, heads: tuple[tuple[int, str], ...]) -> torch.Tensor:
    """Per block of columns: tanh for scalars, softmax for one-hot blocks."""
    parts, pos = [], 0
    for width, act in heads:
        block = raw[:, pos:pos + width]
        parts.append(torch.tanh(block) if act == "tanh" else torch.softmax(block, dim=1))
        pos += width
    return torch.cat(parts, dim=1)


class TabularGenerator(nn.Module):
    """Maps noise (N, latent_dim) and condition vectors (N, C) to encoded rows (N, width)."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...],
                 heads: tuple[tuple[int, str], ...], cond_dim: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.heads = tuple(heads)
        self.cond_dim = cond_dim
        width = sum(w for w, _ in heads)
        self.image_shape = (width,)
        layers: list[nn.Module] = []
        dim = latent_dim + cond_dim
        for h in hidden:
            layers.append(Residual(dim, h))
            dim += h
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(dim, width)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond_dim:
            if y is None:
                raise ValueError("a conditional tabular generator needs condition vectors")
            z = torch.cat([z, y.to(z.dtype)], dim=1)
        return apply_heads(self.out(self.body(z)), self.heads)


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

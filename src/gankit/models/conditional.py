"""Conditioning helpers shared by the families: class embeddings, conditional batch norm and
the projection discriminator's head."""

from __future__ import annotations

import torch
from torch import nn

from ..regularizers import maybe_sn

EMBED_DIM = 32  # width of the class embedding concatenated to the generator's noise


def with_labels(z: torch.Tensor, embed: nn.Embedding | None,
                y: torch.Tensor | None) -> torch.Tensor:
    """Noise with the class embedding concatenated (``z`` itself for unconditional models)."""
    if embed is None:
        return z
    if y is None:
        raise ValueError("a conditional generator needs class labels")
    return torch.cat([z, embed(y)], dim=1)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per class (de Vries et al. 2017)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g = self.gain(y)[:, :, None, None]
        b = self.bias(y)[:, :, None, None]
        return self.bn(x) * g + b


class ProjectionHead(nn.Module):
    """D's last layers: ``hidden`` fully connected layers (leaky ReLU of ``slope``), then a
    linear score plus, when conditional, <embed(y), h> of the last features (Miyato & Koyama
    2018)."""

    def __init__(self, features: int, num_classes: int, use_sn: bool,
                 hidden: tuple[int, ...] = (), slope: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [maybe_sn(nn.Linear(features, width), use_sn), nn.LeakyReLU(slope)]
            features = width
        self.hidden = nn.Sequential(*layers) if layers else None
        self.linear = maybe_sn(nn.Linear(features, 1), use_sn)
        self.embed = (maybe_sn(nn.Embedding(num_classes, features), use_sn)
                      if num_classes else None)

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.hidden is not None:
            h = self.hidden(h)
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional discriminator needs class labels")
            out = out + (self.embed(y) * h).sum(1)
        return out

"""DCGAN (Radford et al. 2015): transposed convolutions with batch norm and ReLU in G, strided
convolutions with leaky ReLU in D. Square images of side 28, 32 or 64, with 1 or 3 channels."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..regularizers import maybe_sn
from . import layouts
from .conditional import EMBED_DIM, ProjectionHead, with_labels
from .mlp import OUTPUT_LAYERS
from .thin import GreyInConv2d, GreyOutConvTranspose2d

SIZES = (28, 32, 64)


def plan(side: int) -> tuple[int, int]:
    """(start side, number of 2x up/downsamplings) for an image side in SIZES."""
    if side not in SIZES:
        raise ValueError(f"DCGAN makes images of side {SIZES}, not {side}")
    start = 7 if side == 28 else 4
    return start, int(math.log2(side // start))


class DCGANGenerator(nn.Module):
    """Noise (N, latent_dim) [+ labels (N,)] -> images (N, C, H, W)."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], base: int = 64,
                 output: str = "tanh", num_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = image_shape
        self.num_classes = num_classes
        c, side, _ = image_shape
        self.start, n = plan(side)
        self.width = base * 2 ** (n - 1)
        self.embed = nn.Embedding(num_classes, EMBED_DIM) if num_classes else None
        in_dim = latent_dim + (EMBED_DIM if num_classes else 0)
        self.project = nn.Linear(in_dim, self.width * self.start ** 2, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(self.width), nn.ReLU()]
        ch = self.width
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        layers += [GreyOutConvTranspose2d(ch, c, 4, 2, 1), OUTPUT_LAYERS[output]()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(with_labels(z, self.embed, y)).view(-1, self.width, self.start,
                                                             self.start)
        for layer in self.net:
            if isinstance(layer, nn.ConvTranspose2d):  # the NCHW seam meets a channels-last one
                h = layouts.enter(h, layer.weight)
            h = layer(h)
        return h


class DCGANDiscriminator(nn.Module):
    """Images (N, C, H, W) [+ labels (N,)] -> one logit each (N,); projection when conditional.
    ``head``: hidden widths between the convolutions and the logit."""

    def __init__(self, image_shape: tuple[int, int, int], base: int = 64, leaky_slope: float = 0.2,
                 use_spectral_norm: bool = False, num_classes: int = 0,
                 head: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.num_classes = num_classes
        c, side, _ = image_shape
        start, n = plan(side)
        layers: list[nn.Module] = []
        ch_in, ch = c, base
        for i in range(n):
            conv = (GreyInConv2d if i == 0 else nn.Conv2d)(ch_in, ch, 4, 2, 1)
            layers += [maybe_sn(conv, use_spectral_norm),
                       nn.LeakyReLU(leaky_slope)]
            ch_in, ch = ch, ch * 2
        self.net = nn.Sequential(*layers)
        self.head = ProjectionHead(ch_in * start * start, num_classes, use_spectral_norm, head,
                                   leaky_slope)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(layouts.flatten(self.net(x)), y)

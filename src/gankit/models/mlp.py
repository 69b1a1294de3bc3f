"""The classic fully connected GAN: noise -> hidden layers -> image, image -> hidden -> logit."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..regularizers import maybe_sn
from .conditional import EMBED_DIM, with_labels


def activation(name: str, leaky_slope: float) -> nn.Module:
    """The activation layer named in the config."""
    table = {
        "leaky_relu": lambda: nn.LeakyReLU(leaky_slope),
        "relu": nn.ReLU,
        "elu": nn.ELU,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "tanh": nn.Tanh,
    }
    return table[name]()


OUTPUT_LAYERS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "linear": nn.Identity}


class MLPGenerator(nn.Module):
    """Maps noise (N, latent_dim) to samples (N, *shape): images (C, H, W) or points (D,)."""

    def __init__(
        self,
        latent_dim: int,
        hidden: tuple[int, ...],
        image_shape: tuple[int, ...],
        act: str = "leaky_relu",
        leaky_slope: float = 0.2,
        output: str = "tanh",
        num_classes: int = 0,
        skip: bool = False,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = image_shape
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, EMBED_DIM) if num_classes else None
        layers: list[nn.Module] = []
        width = inputs = latent_dim + (EMBED_DIM if num_classes else 0)
        for h in hidden:
            layers += [nn.Linear(width, h), activation(act, leaky_slope)]
            width = h
        layers += [nn.Linear(width, math.prod(image_shape)), OUTPUT_LAYERS[output]()]
        self.net = nn.Sequential(*layers)
        # skip: a linear map of the input added before the output activation
        self.skip = nn.Linear(inputs, math.prod(image_shape), bias=False) if skip else None

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = with_labels(z, self.embed, y)
        if self.skip is None:
            out = self.net(x)
        else:
            out = self.net[-1](self.net[:-1](x) + self.skip(x))
        return out.view(z.shape[0], *self.image_shape)


class MLPDiscriminator(nn.Module):
    """Maps samples (N, *shape) to one real-vs-generated logit each, shape (N,).

    Conditional (``num_classes`` > 0): the logit gains a projection term <embed(y), h> on the
    last hidden features h.
    """

    def __init__(
        self,
        image_shape: tuple[int, ...],
        hidden: tuple[int, ...],
        act: str = "leaky_relu",
        leaky_slope: float = 0.2,
        use_spectral_norm: bool = False,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        width = math.prod(image_shape)
        for h in hidden:
            layers += [maybe_sn(nn.Linear(width, h), use_spectral_norm),
                       activation(act, leaky_slope)]
            width = h
        layers.append(maybe_sn(nn.Linear(width, 1), use_spectral_norm))
        self.net = nn.Sequential(*layers)
        self.embed = (maybe_sn(nn.Embedding(num_classes, width), use_spectral_norm)
                      if num_classes else None)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is None:
            return self.net(x.flatten(1)).squeeze(1)
        if y is None:
            raise ValueError("a conditional discriminator needs class labels")
        h = self.net[:-1](x.flatten(1))
        return self.net[-1](h).squeeze(1) + (self.embed(y) * h).sum(1)

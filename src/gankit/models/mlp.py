"""The classic fully connected GAN: noise -> hidden layers -> image, image -> hidden -> logit."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


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
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = image_shape
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), activation(act, leaky_slope)]
            width = h
        layers += [nn.Linear(width, math.prod(image_shape)), OUTPUT_LAYERS[output]()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


class MLPDiscriminator(nn.Module):
    """Maps samples (N, *shape) to one real-vs-generated logit each, shape (N,)."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        hidden: tuple[int, ...],
        act: str = "leaky_relu",
        leaky_slope: float = 0.2,
        use_spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        wrap = spectral_norm if use_spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        width = math.prod(image_shape)
        for h in hidden:
            layers += [wrap(nn.Linear(width, h)), activation(act, leaky_slope)]
            width = h
        layers.append(wrap(nn.Linear(width, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)

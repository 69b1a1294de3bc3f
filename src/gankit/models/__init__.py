"""Generator and discriminator families, built from the model config."""

from __future__ import annotations

from torch import nn

from ..config import ModelConfig
from .mlp import MLPDiscriminator, MLPGenerator

# The range data in [0, 1] is mapped to for each output; "linear" leaves data as it is
# (points keep their coordinates, images stay in [0, 1]).
OUTPUT_RANGES: dict[str, tuple[float, float]] = {
    "tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "linear": (0.0, 1.0),
}


def build(cfg: ModelConfig, image_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """A fresh (generator, discriminator) pair for samples of shape (C, H, W) or (D,)."""
    g = MLPGenerator(cfg.latent_dim, cfg.g_hidden, image_shape, cfg.activation,
                     cfg.leaky_slope, cfg.output)
    d = MLPDiscriminator(image_shape, cfg.d_hidden, cfg.activation, cfg.leaky_slope,
                         cfg.d_spectral_norm)
    return g, d


def output_range(cfg: ModelConfig) -> tuple[float, float]:
    """The (low, high) range of the generator's output, which data is scaled to."""
    return OUTPUT_RANGES[cfg.output]

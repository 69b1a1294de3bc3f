"""Generator and discriminator families, built from the model config.

Every generator is called as ``G(z, y=None)`` and every discriminator as ``D(x, y=None)``;
``y`` (class labels) is needed only by conditional models.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..config import FAMILY_SIZES, ModelConfig, sizes_text
from ..errors import ConfigError
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .mlp import MLPDiscriminator, MLPGenerator
from .resnet import ResNetDiscriminator, ResNetGenerator
from .tabular import TabularDiscriminator, TabularGenerator
from .text import TextDiscriminator, TextGenerator

# The range data in [0, 1] is mapped to for each output; "linear" leaves data as it is
# (points keep their coordinates, images stay in [0, 1]).
OUTPUT_RANGES: dict[str, tuple[float, float]] = {
    "tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "linear": (0.0, 1.0),
}


class SigmoidOutput(nn.Module):
    """A discriminator whose output is squashed to a probability in (0, 1)."""

    def __init__(self, d: nn.Module) -> None:
        super().__init__()
        self.d = d

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.d(x, y))


def check(cfg: ModelConfig, image_shape: tuple[int, ...], num_classes: int,
          heads: tuple[tuple[int, str], ...] | None = None) -> None:
    """Refuse data the configured models cannot be built for (ConfigError, one line)."""
    text = heads is not None and all(a == "token" for _, a in heads)  # text: per position
    if (cfg.family == "text") != text:
        raise ConfigError("model.family=text is for text (.txt, .smi), and text needs it: "
                          + (f"use model.family=text, not {cfg.family}" if text
                             else "this data is not text"))
    if text:
        return
    if (cfg.family == "tabular") != (heads is not None):
        raise ConfigError("model.family=tabular is for tables, and tables need it: "
                          + ("this data is not a table" if heads is None
                             else f"use model.family=tabular, not {cfg.family}"))
    if heads is not None:
        return
    if len(image_shape) != 3:
        if cfg.family != "mlp":
            raise ConfigError(f"model.family={cfg.family} makes images, but the data is points "
                              f"of shape {tuple(image_shape)}: use model.family=mlp")
    else:
        _check_image(cfg, image_shape)
    if cfg.conditional and num_classes < 2:
        raise ConfigError("model.conditional needs labelled data with at least 2 classes, "
                          "and this data has none (an image folder is labelled by its "
                          "sub-folders)")


def _check_image(cfg: ModelConfig, image_shape: tuple[int, ...]) -> None:
    c, h, w = image_shape
    sizes = FAMILY_SIZES.get(cfg.family)
    if sizes is not None and not (h == w and h in sizes):
        raise ConfigError(f"model.family={cfg.family} makes square images of side "
                          f"{sizes_text(sizes)} pixels, but the data is {c}x{h}x{w}: "
                          "set data.size to one of those sides")


def build(cfg: ModelConfig, image_shape: tuple[int, ...], num_classes: int = 0,
          pack: int = 1, heads: tuple[tuple[int, str], ...] | None = None,
          cond_dim: int = 0) -> tuple[nn.Module, nn.Module]:
    """A fresh (generator, discriminator) pair for samples of shape ``image_shape``.

    ``num_classes`` (classes or clusters) is used only when ``cfg.conditioned``; D sees
    ``pack`` samples at once. Tables give their codec's output ``heads`` and the width of
    their condition vectors ``cond_dim``.
    """
    check(cfg, image_shape, num_classes, heads)
    if cfg.family == "text" and heads is not None:
        g_text = TextGenerator(cfg.latent_dim, cfg.g_hidden[0], len(heads), heads[0][0])
        d_text: nn.Module = TextDiscriminator(len(heads), heads[0][0], cfg.d_hidden,
                                              cfg.leaky_slope, cfg.d_spectral_norm, pack)
        return g_text, SigmoidOutput(d_text) if cfg.d_output == "sigmoid" else d_text
    if heads is not None:
        width = sum(w for w, _ in heads)
        g_tab = TabularGenerator(cfg.latent_dim, cfg.g_hidden, heads, cond_dim)
        d_tab: nn.Module = TabularDiscriminator(width, cfg.d_hidden, cfg.leaky_slope,
                                                cfg.d_spectral_norm, cond_dim, pack)
        return g_tab, SigmoidOutput(d_tab) if cfg.d_output == "sigmoid" else d_tab
    k = num_classes if cfg.conditioned else 0
    d_shape = (image_shape[0] * pack, *image_shape[1:])  # a pack joins samples along axis 1
    if cfg.family == "mlp":
        g: nn.Module = MLPGenerator(cfg.latent_dim, cfg.g_hidden, image_shape, cfg.activation,
                                    cfg.leaky_slope, cfg.output, k, cfg.g_skip)
        d: nn.Module = MLPDiscriminator(d_shape, cfg.d_hidden, cfg.activation, cfg.leaky_slope,
                                        cfg.d_spectral_norm, k)
    elif cfg.family == "dcgan":
        g = DCGANGenerator(cfg.latent_dim, image_shape, cfg.base_channels, cfg.output, k)
        d = DCGANDiscriminator(d_shape, cfg.base_channels, cfg.leaky_slope,
                               cfg.d_spectral_norm, k, cfg.d_head)
    else:
        g = ResNetGenerator(cfg.latent_dim, image_shape, cfg.base_channels, cfg.output, k)
        d = ResNetDiscriminator(d_shape, cfg.base_channels, cfg.d_spectral_norm, k, cfg.d_head)
    if cfg.d_output == "sigmoid":
        d = SigmoidOutput(d)
    return g, d


# Families whose D is fully connected layers of ``d_hidden``, as G's are of ``g_hidden``
WIDENABLE = ("mlp", "tabular")


def as_wide_as_g(cfg: ModelConfig) -> ModelConfig | None:
    """``cfg`` with D as wide as G (D's hidden widths G's, reversed), or None for a family whose
    D is not made of ``d_hidden`` layers (the guard's ``wider_d`` remedy)."""
    if cfg.family not in WIDENABLE:
        return None
    return dataclasses.replace(cfg, d_hidden=tuple(reversed(cfg.g_hidden)))


def output_range(cfg: ModelConfig) -> tuple[float, float]:
    """The (low, high) range of the generator's output, which data is scaled to."""
    return OUTPUT_RANGES[cfg.output]

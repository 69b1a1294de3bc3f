"""SNGAN-style residual networks (Miyato et al. 2018): upsampling residual blocks with batch norm
(class-conditional when labelled) in G; downsampling residual blocks, spectral norm and global
sum pooling in D. Square images of side 32, 64 or 128."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..regularizers import maybe_sn
from .conditional import ConditionalBatchNorm2d, ProjectionHead
from .mlp import OUTPUT_LAYERS

SIZES = (32, 64, 128)


def depth(side: int) -> int:
    """Number of 2x up/downsampling blocks between 4x4 and an image side in SIZES."""
    if side not in SIZES:
        raise ValueError(f"the residual networks make images of side {SIZES}, not {side}")
    return int(math.log2(side // 4))


class _Norm(nn.Module):
    """Batch norm, class-conditional when ``num_classes`` > 0."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = (ConditionalBatchNorm2d(channels, num_classes) if num_classes
                   else nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.bn(x, y) if isinstance(self.bn, ConditionalBatchNorm2d) else self.bn(x)


class GBlock(nn.Module):
    """BN-ReLU-up-conv3-BN-ReLU-conv3, plus an upsampled 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, num_classes: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = _Norm(cin, num_classes), _Norm(cout, num_classes)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """(ReLU)-conv3-ReLU-conv3-avgpool, plus a 1x1 shortcut; ``first`` skips the leading ReLU."""

    def __init__(self, cin: int, cout: int, sn: bool, first: bool = False) -> None:
        super().__init__()
        self.first = first
        self.conv1 = maybe_sn(nn.Conv2d(cin, cout, 3, padding=1), sn)
        self.conv2 = maybe_sn(nn.Conv2d(cout, cout, 3, padding=1), sn)
        self.skip = maybe_sn(nn.Conv2d(cin, cout, 1), sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(h))), 2)
        s = self.skip(F.avg_pool2d(x, 2)) if self.first else F.avg_pool2d(self.skip(x), 2)
        return h + s


class ResNetGenerator(nn.Module):
    """Noise (N, latent_dim) [+ labels (N,)] -> images (N, C, H, W)."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], base: int = 64,
                 output: str = "tanh", num_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = image_shape
        self.num_classes = num_classes
        n = depth(image_shape[1])
        self.width = base * 2 ** n
        self.project = nn.Linear(latent_dim, self.width * 16)
        self.blocks = nn.ModuleList(
            GBlock(base * 2 ** (n - k), base * 2 ** (n - k - 1), num_classes) for k in range(n))
        self.bn = nn.BatchNorm2d(base)
        self.out = nn.Conv2d(base, image_shape[0], 3, padding=1)
        self.act = OUTPUT_LAYERS[output]()

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes and y is None:
            raise ValueError("a conditional generator needs class labels")
        h = self.project(z).view(-1, self.width, 4, 4)
        for block in self.blocks:
            h = block(h, y)
        return self.act(self.out(F.relu(self.bn(h))))


class ResNetDiscriminator(nn.Module):
    """Images (N, C, H, W) [+ labels (N,)] -> one logit each (N,); projection when conditional."""

    def __init__(self, image_shape: tuple[int, int, int], base: int = 64,
                 use_spectral_norm: bool = True, num_classes: int = 0,
                 head: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.num_classes = num_classes
        n = depth(image_shape[1])
        blocks = [DBlock(image_shape[0], base, use_spectral_norm, first=True)]
        blocks += [DBlock(base * 2 ** k, base * 2 ** (k + 1), use_spectral_norm)
                   for k in range(n - 1)]
        self.blocks = nn.Sequential(*blocks)
        self.head = ProjectionHead(base * 2 ** (n - 1), num_classes, use_spectral_norm, head,
                                   0.0)  # ReLU, as the blocks

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return self.head(h, y)

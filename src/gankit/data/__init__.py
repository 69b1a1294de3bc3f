"""Data sources, one module each; ``build`` picks one from ``data.source``."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import DataConfig
from ..errors import DataError
from ..untrusted import refuse_pickle
from .arrays import load_array
from .base import Dataset
from .digits import load_digits
from .folder import load_folder
from .mixtures import MIXTURES, load_mixture
from .mnist import load_mnist
from .stacked import NAME as STACKED
from .stacked import load_stacked

BUILTIN = ("digits", "mnist", STACKED, *MIXTURES)
FOLDER_SIZE = 64


def build(cfg: DataConfig) -> Dataset:
    """Load the dataset named by ``cfg.source`` and bring it to ``cfg.size`` / ``cfg.channels``.

    ``source`` is a built-in name (digits, mnist, stacked-digits, ring8, grid25), a folder of
    PNG/JPEG images, or a .npy/.npz file.
    """
    source = cfg.source
    if source not in BUILTIN:
        refuse_pickle(Path(source), "data source")
    if source in MIXTURES:
        return load_mixture(source)
    if source == "digits":
        data = load_digits()
    elif source == STACKED:
        data = load_stacked()
    elif source == "mnist":
        data = load_mnist(Path(cfg.dir) if cfg.dir else None, download=cfg.download)
    elif source.lower().endswith((".npy", ".npz")):
        data = load_array(Path(source))
    elif Path(source).is_dir():
        return load_folder(Path(source), cfg.size or FOLDER_SIZE, cfg.channels)
    elif Path(source).exists():
        raise DataError(f"data source {source} is neither a folder nor a .npy/.npz file")
    else:
        raise DataError(f"data source '{source}' not found: give a built-in name "
                        f"({', '.join(BUILTIN)}), a folder of images, or a .npy/.npz file")
    return conform(data, cfg.size, cfg.channels)


def conform(data: Dataset, size: int = 0, channels: int = 0) -> Dataset:
    """Resize to ``size``×``size`` (0: keep) and convert to ``channels`` (0: keep)."""
    if not data.is_image:
        return data
    x = data.samples
    c, h, w = data.shape
    if channels and channels != c:
        if channels == 3:
            x = x.expand(-1, 3, -1, -1)
        else:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            x = (x * weights).sum(1, keepdim=True)
    if size and (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False).clamp_(0.0, 1.0)
    if x is data.samples:
        return data
    return Dataset(samples=x.contiguous(), labels=data.labels, name=data.name)

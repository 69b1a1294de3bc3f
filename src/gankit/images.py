"""Turning generator output into uint8 images, grids and PNG files."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .fileio import atomic_write_bytes


def to_uint8(x: torch.Tensor, value_range: tuple[float, float]) -> np.ndarray:
    """Images (N, C, H, W) with values in ``value_range`` as uint8 (N, H, W, C)."""
    lo, hi = value_range
    y = ((x.detach().float() - lo) / (hi - lo)).clamp_(0.0, 1.0).mul_(255.0).round_()
    return y.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def make_grid(images: np.ndarray, nrow: int = 0, pad: int = 2) -> np.ndarray:
    """Tile uint8 (N, H, W, C) images into one (H', W', C) image, ``nrow`` per row (0: square)."""
    n, h, w, c = images.shape
    cols = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    out = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[y:y + h, x:x + w] = images[i]
    return out


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """A uint8 (H, W, C) image, C in {1, 3}, encoded as PNG, enlarged ``scale`` times."""
    arr = image[..., 0] if image.shape[-1] == 1 else image
    pil = Image.fromarray(arr)
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def png_data_url(png: bytes) -> str:
    """PNG bytes as a ``data:`` URL (for a page's ``<img src>``)."""
    import base64

    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def save_png(image: np.ndarray, path: str | Path, scale: int = 1) -> None:
    """Write a uint8 (H, W, C) image to ``path`` as PNG, atomically."""
    atomic_write_bytes(path, png_bytes(image, scale))


def points_extent(points: torch.Tensor | np.ndarray) -> float:
    """A half-width that frames 2-D points with a margin: 1.25 max |coordinate|, at least 1."""
    a = np.abs(np.asarray(points, dtype=np.float64))
    return max(1.0, 1.25 * float(a.max())) if a.size else 1.0


def scatter(points: np.ndarray, extent: float, size: int = 320) -> np.ndarray:
    """A uint8 (size, size, 3) scatter plot of (N, 2) points over [-extent, extent]²."""
    from PIL import ImageDraw

    pil = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(pil)
    mid = size // 2
    draw.line([(0, mid), (size, mid)], fill=(220, 220, 220))
    draw.line([(mid, 0), (mid, size)], fill=(220, 220, 220))
    p = np.asarray(points, dtype=np.float64)
    px = (p[:, 0] / extent + 1.0) * 0.5 * (size - 1)
    py = (1.0 - (p[:, 1] / extent + 1.0) * 0.5) * (size - 1)
    for x, y in zip(px, py, strict=True):
        if 0 <= x < size and 0 <= y < size:
            draw.rectangle([x - 1, y - 1, x + 1, y + 1], fill=(31, 119, 180))
    return np.asarray(pil)


def sample_png(x: torch.Tensor, value_range: tuple[float, float],
               reference: torch.Tensor | None = None, nrow: int = 0) -> bytes:
    """PNG of generator output: a grid of images (N, C, H, W), ``nrow`` per row (0: square),
    drawn at scale 2, or a scatter plot of points (N, 2) framed by ``reference`` points (else by
    the points themselves)."""
    if x.ndim == 4:
        return png_bytes(make_grid(to_uint8(x, value_range), nrow=nrow), scale=2)
    frame = points_extent((reference if reference is not None else x).detach().cpu())
    return png_bytes(scatter(x.detach().cpu().numpy(), frame))

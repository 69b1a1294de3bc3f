"""A folder of PNG and JPEG images, optionally sorted into one sub-folder per class."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import DataError
from .base import Dataset

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
MAX_SIZE = 4096

# Modes whose pixels carry one (grey) value; "I;16*" and "I" hold 16-bit data.
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
_WIDE_GRAY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


def _check_folder(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"Image folder {path} does not exist.")
    if not path.is_dir():
        raise DataError(f"Image folder {path} is not a folder.")
    return path


def _image_files(path: Path) -> list[Path]:
    """The images below `path` in sorted order, skipping hidden files and folders."""
    found: list[Path] = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                found.append(Path(root) / name)
    return found


def _classes(path: Path, files: list[Path]) -> list[str]:
    """Class names when every image lies below one of at least two sub-folders, else []."""
    tops: set[str] = set()
    for f in files:
        parts = f.relative_to(path).parts
        if len(parts) < 2:
            return []
        tops.add(parts[0])
    return sorted(tops) if len(tops) >= 2 else []


def class_names(path: Path) -> list[str]:
    """The class names `load_folder(path)` labels 0, 1, ... (sub-folder names), or [] if none.

    A folder is labelled when every image lies inside (at any depth) one of at least two
    sub-folders; the sorted sub-folder names are then the classes.
    """
    path = _check_folder(path)
    return _classes(path, _image_files(path))


def _open(file: Path, size: int) -> Image.Image:
    """The decoded, upright image in `file`; a DataError if it cannot be decoded."""
    try:
        with Image.open(file) as img:
            img.draft(None, (size, size))  # JPEG: let the decoder shrink large images cheaply
            img.load()
            return ImageOps.exif_transpose(img)
    except Exception as e:  # any decoder failure means a damaged or foreign file
        raise DataError(f"Image {file} cannot be decoded ({type(e).__name__}: {e}).") from e


def _is_gray(img: Image.Image) -> bool:
    """Whether the image has grey pixels only (grey mode, or identical colour channels)."""
    if img.mode in _GRAY_MODES:
        return True
    rgb = np.asarray(_flatten(img, "RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _flatten(img: Image.Image, mode: str) -> Image.Image:
    """`img` in `mode` ("L" or "RGB"), with 16-bit grey scaled down and alpha laid on white."""
    if img.mode in _WIDE_GRAY_MODES:
        a = np.asarray(img, dtype=np.float64)
        if img.mode == "I" and a.max(initial=0) <= 255:
            a8 = np.clip(a, 0, 255)
        else:
            a8 = np.clip(a / 257.0, 0, 255)
        img = Image.fromarray(np.rint(a8).astype(np.uint8), "L")
    if "A" in img.getbands() or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img if img.mode == mode else img.convert(mode)


def _square(img: Image.Image, size: int) -> Image.Image:
    """Crop the centre square of `img` and resize it to size x size."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    resample = Image.Resampling.LANCZOS if side > size else Image.Resampling.BICUBIC
    box = (left, top, left + side, top + side)
    return img.resize((size, size), resample=resample, box=box, reducing_gap=3.0)


def load_folder(path: Path, size: int = 64, channels: int = 0) -> Dataset:
    """All .png/.jpg/.jpeg images below `path`, centre-cropped and resized to size x size.

    `channels` is 1 (grey), 3 (RGB) or 0 (3 if any image has colour, else 1). Transparent
    pixels are laid on white. Images inside at least two sub-folders (and none at the top)
    are labelled by sub-folder, in the order of :func:`class_names`; otherwise unlabelled.
    Hidden files and folders (names starting with ".") are skipped.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise DataError(f"Image size must be a whole number from 1 to {MAX_SIZE}, got {size!r}.")
    if isinstance(channels, bool) or channels not in (0, 1, 3):
        raise DataError(f"Channels must be 0 (automatic), 1 or 3, got {channels!r}.")
    path = _check_folder(path)
    files = _image_files(path)
    if not files:
        raise DataError(f"Image folder {path} holds no .png, .jpg or .jpeg files.")
    classes = _classes(path, files)

    arrays: list[np.ndarray] = []
    any_colour = False
    for file in files:
        img = _open(file, size)
        if channels == 0:
            colour = not _is_gray(img)
            any_colour |= colour
            mode = "RGB" if colour else "L"
        else:
            mode = "L" if channels == 1 else "RGB"
        arrays.append(np.asarray(_square(_flatten(img, mode), size)))

    out_channels = channels or (3 if any_colour else 1)
    batch = np.empty((len(arrays), out_channels, size, size), dtype=np.uint8)
    for i, a in enumerate(arrays):
        batch[i] = a if a.ndim == 2 else a.transpose(2, 0, 1)
    images = torch.from_numpy(batch).to(torch.float32).div_(255.0)

    labels = None
    if classes:
        index = {name: i for i, name in enumerate(classes)}
        labels = torch.tensor([index[f.relative_to(path).parts[0]] for f in files],
                              dtype=torch.int64)
    return Dataset(samples=images, labels=labels, name=path.resolve().name or "folder")


def peek(path: Path) -> tuple[int, int, bool]:
    """(side of the first image's centre square, channels guessed from it, labelled) without
    loading the folder; DataError when it holds no images."""
    path = _check_folder(path)
    files = _image_files(path)
    if not files:
        raise DataError(f"Image folder {path} holds no .png, .jpg or .jpeg files.")
    img = _open(files[0], MAX_SIZE)
    return min(img.size), (1 if _is_gray(img) else 3), bool(_classes(path, files))

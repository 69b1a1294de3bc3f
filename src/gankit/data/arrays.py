"""Images stored as a numpy array in a .npy or .npz file."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from ..errors import DataError
from .base import Dataset

SUFFIXES = frozenset({".npy", ".npz"})
# How far float values may stray outside their range (rounding) before they are refused.
_SLACK = 1e-4


def _read(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The images array and the labels array (or None) stored in `path`."""
    try:
        with open(path, "rb") as f:
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                return loaded, None
            with loaded as z:
                keys = list(z.keys())
                images = z[_images_key(path, keys)]
                labels = z["labels"] if "labels" in keys else None
                return images, labels
    except DataError:
        raise
    except Exception as e:  # numpy, zipfile and pickle-refusal errors for damaged files
        raise _unreadable(path, e) from e


def _images_key(path: Path, keys: list[str]) -> str:
    """The .npz member holding the images: 'images', else the only one besides 'labels'."""
    candidates = [k for k in keys if k != "labels"]
    if "images" in keys:
        return "images"
    if len(candidates) == 1:
        return candidates[0]
    listed = ", ".join(repr(k) for k in keys) or "none"
    raise DataError(f"Array file {path} must hold an array called 'images' or a "
                    f"single array, but holds {listed}.")


def _unreadable(path: Path, e: Exception) -> DataError:
    return DataError(f"Array file {path} cannot be read as a numpy array without pickle "
                     f"({type(e).__name__}: {e}).")


def _header_shape(f: BinaryIO) -> tuple[int, ...]:
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    return tuple(read(f)[0])


def _check_file(path: Path) -> None:
    """Refuse a path that is not a non-empty .npy/.npz file."""
    if not path.exists():
        raise DataError(f"Array file {path} does not exist.")
    if not path.is_file():
        raise DataError(f"Array file {path} is not a file.")
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"Array file {path} must end in .npy or .npz.")
    if path.stat().st_size == 0:
        raise DataError(f"Array file {path} is empty.")


def peek(path: Path) -> tuple[tuple[int, int, int], bool]:
    """(C, H, W) of the images in ``path`` and whether its labels span two or more classes,
    read from the array headers (and the labels) without loading the images."""
    _check_file(path)
    try:
        if path.suffix.lower() == ".npy":
            with open(path, "rb") as f:
                shape, labels = _header_shape(f), None
        else:
            with zipfile.ZipFile(path) as zf:
                keys = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
                with zf.open(_images_key(path, keys) + ".npy") as f:
                    shape = _header_shape(f)
            labels = None
            if "labels" in keys:
                with np.load(path, allow_pickle=False) as z:
                    labels = z["labels"]
    except DataError:
        raise
    except Exception as e:  # damaged headers and archives
        raise _unreadable(path, e) from e
    layout = _layout(path, shape)
    n_h_w_c = {"NHW": (shape[1], shape[2], 1), "NHWC": shape[1:], "NCHW": (*shape[2:], shape[1])}
    h, w, c = n_h_w_c[layout]
    labelled = labels is not None and labels.size > 0 and int(labels.max()) >= 1
    return (int(c), int(h), int(w)), labelled


def _layout(path: Path, shape: tuple[int, ...]) -> str:
    """"NHW", "NHWC" or "NCHW" for an images array of this shape."""
    if len(shape) == 3:
        if shape[2] in (1, 3, 4) and shape[1] > 4:
            raise DataError(f"Array file {path} holds shape {shape}, which looks like one "
                            "(H, W, C) image; store a batch as (N, H, W) or (N, H, W, C).")
        return "NHW"
    if len(shape) != 4:
        raise DataError(f"Array file {path} holds a {len(shape)}-dimensional array of shape "
                        f"{shape}; images must be (N, H, W), (N, H, W, C) or (N, C, H, W).")
    last, first = shape[3] in (1, 3), shape[1] in (1, 3)
    if last and first:  # ambiguous: take the reading whose spatial dims are closest to square
        last_square = abs(shape[1] - shape[2]) <= abs(shape[2] - shape[3])
        return "NHWC" if last_square else "NCHW"
    if last:
        return "NHWC"
    if first:
        return "NCHW"
    raise DataError(f"Array file {path} holds shape {shape}, but images need 1 or 3 channels "
                    "on the second or last axis.")


def _scale(path: Path, a: np.ndarray) -> np.ndarray:
    """`a` as float32 in [0, 1]."""
    kind = a.dtype.kind
    if a.dtype == np.uint8:
        return np.divide(a, np.float32(255.0), dtype=np.float32, order="C")
    if kind == "b":
        return a.astype(np.float32, order="C")
    if kind in "iu":
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise DataError(f"Array file {path} holds {a.dtype} values from {lo} to {hi}; "
                            "integer images must lie in 0..255 (store other data as float "
                            "in [0, 1]).")
        return np.divide(a, np.float32(255.0), dtype=np.float32, order="C")
    if kind == "f":
        if not np.isfinite(a).all():  # before the cast, which would turn 1e300 into inf
            raise DataError(f"Array file {path} holds NaN or infinite values.")
        lo, hi = float(a.min()), float(a.max())
        if lo < -1 - _SLACK or hi > 1 + _SLACK:
            raise DataError(f"Array file {path} holds float values from {lo:g} to {hi:g}; "
                            "float images must lie in [0, 1] or [-1, 1].")
        x = a.astype(np.float32, order="C")
        if lo < -_SLACK:  # images in [-1, 1]
            x += 1.0
            x *= 0.5
        return np.clip(x, 0.0, 1.0, out=x)
    raise DataError(f"Array file {path} holds {a.dtype} data; images must be uint8, integers "
                    "in 0..255, bool or float.")


def _labels(path: Path, labels: np.ndarray, n: int) -> torch.Tensor:
    """The labels as int64, checked to be non-negative integers, one per image."""
    if labels.dtype.kind not in "iu":
        raise DataError(f"Array file {path} holds labels of type {labels.dtype}; labels must be "
                        "integers.")
    if labels.shape != (n,):
        raise DataError(f"Array file {path} holds labels of shape {labels.shape} for {n} "
                        f"images; there must be one label per image, shape ({n},).")
    if n and int(labels.min()) < 0:
        raise DataError(f"Array file {path} holds negative labels; labels must be 0 or more.")
    if labels.dtype == np.uint64 and n and int(labels.max()) > np.iinfo(np.int64).max:
        raise DataError(f"Array file {path} holds labels too large for int64.")
    return torch.from_numpy(labels.astype(np.int64))


def load_array(path: Path) -> Dataset:
    """Images from a .npy file, or the 'images' (else only) array of a .npz file.

    Shapes: (N, H, W) for grey, (N, H, W, C) or (N, C, H, W) with C 1 or 3 (channels-last
    wins when both readings fit equally well). Values: uint8 and other integers in 0..255 are
    divided by 255; bool becomes 0/1; floats must be finite and in [0, 1], or in [-1, 1], in
    which case they are mapped to [0, 1] (any value below 0 selects this reading). An .npz
    may hold 'labels': non-negative integers, one per image. Pickled data is never loaded.
    """
    path = Path(path)
    _check_file(path)
    images, labels = _read(path)
    if images.dtype.kind in "OVSUcmM":
        raise DataError(f"Array file {path} holds {images.dtype} data; images must be numbers.")
    shape = tuple(int(s) for s in images.shape)
    layout = _layout(path, shape)
    if 0 in shape:
        raise DataError(f"Array file {path} holds an empty array of shape {shape}.")
    if layout == "NHW":
        images = images[:, None]
    elif layout == "NHWC":
        images = images.transpose(0, 3, 1, 2)
    x = torch.from_numpy(np.ascontiguousarray(_scale(path, images)))
    y = None if labels is None else _labels(path, labels, shape[0])
    return Dataset(samples=x, labels=y, name=path.stem)

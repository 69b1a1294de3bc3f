"""The full MNIST set (70,000 digits) read from the four standard IDX files.

The files are looked for in a folder the user names, or in the cache folder, where they are
downloaded (and checked against SHA-256 sums) when missing.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import Dataset

# Mirrors tried in order; each holds the four .gz files under their standard names.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# SHA-256 of each compressed file, keyed by the file name without ".gz".
MNIST_SHA256: Mapping[str, str] = {
    "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

# (images, labels) file names of the training and test parts, in the order they are joined.
_PARTS = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)

# IDX type byte -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """Where MNIST is cached: ``$GANKIT_CACHE/mnist``, else ``~/.cache/gankit/mnist``."""
    root = os.environ.get("GANKIT_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "gankit"
    return base / "mnist"


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (plain or gzip-compressed) into a native-endian numpy array."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file {path} does not exist or is not a file.")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"IDX file {path} could not be read or decompressed ({e}).") from e

    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"IDX file {path} does not start with the IDX magic number.")
    type_byte, ndim = raw[2], raw[3]
    dtype = _IDX_DTYPES.get(type_byte)
    if dtype is None:
        raise DataError(f"IDX file {path} has an unknown data type code 0x{type_byte:02X}.")
    if ndim == 0:
        raise DataError(f"IDX file {path} declares zero dimensions.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated inside its header.")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = 1
    for d in dims:
        count *= d
    expected = header + count * dtype.itemsize
    if len(raw) != expected:
        what = "is truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"IDX file {path} {what}: it holds {len(raw)} bytes, but its header "
                        f"{dims} needs {expected}.")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _fetch(url: str, dest: Path, sha256: str, timeout: float) -> str | None:
    """Download `url` to `dest` atomically if its SHA-256 matches; the reason it failed, or None."""
    want = sha256.strip().lower()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        return f"could not create a file in {dest.parent} ({e})"
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                while chunk := r.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except (OSError, ValueError, http.client.HTTPException) as e:
            return f"could not download {url} ({getattr(e, 'reason', None) or e})"
        got = digest.hexdigest()
        if got != want:
            return f"the download of {url} has SHA-256 {got} instead of {want} and was discarded"
        os.replace(tmp, dest)
        return None
    finally:
        tmp.unlink(missing_ok=True)


def download_file(url: str, dest: Path, sha256: str, timeout: float = 60.0) -> Path:
    """Download `url` to `dest`, keeping it only if its SHA-256 equals `sha256`; returns `dest`.

    The data goes to a temporary file in the destination folder that replaces `dest` only
    after the checksum matched; on any failure nothing is left behind, an existing `dest` is
    untouched, and a DataError says where to put the file by hand.
    """
    dest = Path(dest)
    reason = _fetch(url, dest, sha256, timeout)
    if reason is not None:
        raise DataError(f"{reason[0].upper()}{reason[1:]}; download it by hand and save it as "
                        f"{dest}.")
    return dest


def _find(folder: Path, name: str) -> Path | None:
    """The plain or .gz file called `name` in `folder`, or None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def download_mnist(
    folder: Path,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    checksums: Mapping[str, str] = MNIST_SHA256,
    timeout: float = 60.0,
) -> None:
    """Download into `folder` each of the four .gz files that is not already there."""
    folder = Path(folder)
    for name, sha in checksums.items():
        if _find(folder, name) is not None:
            continue
        reasons: list[str] = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + f"/{name}.gz"
            reason = _fetch(url, folder / f"{name}.gz", sha, timeout)
            if reason is None:
                break
            reasons.append(reason)
        else:
            tried = "; ".join(reasons) if reasons else "no mirror was given"
            raise DataError(f"Could not download MNIST file {name}.gz from any mirror ({tried}); "
                            f"put the four MNIST files (plain or .gz) in {folder} by hand, or "
                            "pass a folder that holds them.")


def _load_part(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) of one part, checked against each other."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"MNIST image file {images_path} holds {images.dtype} data of shape "
                        f"{images.shape} instead of uint8 (N, 28, 28).")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"MNIST label file {labels_path} holds {labels.dtype} data of shape "
                        f"{labels.shape} instead of uint8 (N,).")
    if len(images) != len(labels):
        raise DataError(f"MNIST image file {images_path} holds {len(images)} images but "
                        f"{labels_path} holds {len(labels)} labels.")
    if labels.size and int(labels.max()) > 9:
        raise DataError(f"MNIST label file {labels_path} holds a label above 9.")
    return images, labels


def load_mnist(
    data_dir: Path | None,
    download: bool = True,
    cache_dir: Path | None = None,
    *,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    checksums: Mapping[str, str] = MNIST_SHA256,
) -> Dataset:
    """All MNIST digits (training then test part) as a (N, 1, 28, 28) dataset with labels 0-9.

    Reads the four standard IDX files (plain or .gz) from `data_dir`. Without `data_dir` they
    come from `cache_dir` (default: :func:`default_cache_dir`), where missing ones are
    downloaded and checked when `download` is true. A folder named by `data_dir` is never
    written to.
    """
    if data_dir is not None:
        folder = Path(data_dir)
        if not folder.is_dir():
            raise DataError(f"MNIST folder {folder} does not exist or is not a folder.")
    else:
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        names = [n for part in _PARTS for n in part]
        if download and any(_find(folder, n) is None for n in names):
            download_mnist(folder, mirrors=mirrors, checksums=checksums)

    found: dict[str, Path] = {}
    for name in (n for part in _PARTS for n in part):
        p = _find(folder, name)
        if p is None:
            hint = "" if data_dir is not None or download else " (downloading is turned off)"
            raise DataError(f"MNIST file {name} (or {name}.gz) is missing from {folder}{hint}.")
        found[name] = p

    images, labels = [], []
    for img_name, lbl_name in _PARTS:
        x, y = _load_part(found[img_name], found[lbl_name])
        images.append(x)
        labels.append(y)
    x = torch.from_numpy(np.concatenate(images)).unsqueeze(1).to(torch.float32).div_(255.0)
    y = torch.from_numpy(np.concatenate(labels).astype(np.int64))
    return Dataset(samples=x, labels=y, name="mnist")

"""MNIST: IDX parsing, loading from a folder, and checked downloads (all offline, via file://)."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.data.mnist import (
    MNIST_MIRRORS,
    MNIST_SHA256,
    default_cache_dir,
    download_file,
    load_mnist,
    read_idx,
)
from gankit.errors import DataError

_TYPE_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
               np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(a: np.ndarray) -> bytes:
    """The IDX encoding of `a`."""
    code = _TYPE_CODES[a.dtype.type]
    header = bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, a: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(a)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fake_mnist(folder: Path, n_train: int = 6, n_test: int = 4, gz: bool = True) -> None:
    """Small IDX files under the standard names (train and test parts differ in content)."""
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{part}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(folder / f"{part}-labels-idx1-ubyte{suffix}", labels, gz)


@pytest.mark.parametrize("dtype", list(_TYPE_CODES))
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, dtype: type, gz: bool) -> None:
    a = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    if dtype is np.uint8:
        a = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    out = read_idx(write_idx(tmp_path / ("x.idx.gz" if gz else "x.idx"), a, gz))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, a)
    out.flat[0] = 1  # writable, so torch.from_numpy works without warnings


def test_read_idx_detects_gzip_by_content(tmp_path: Path) -> None:
    a = np.arange(10, dtype=np.uint8)
    path = tmp_path / "labels-without-gz-suffix"
    path.write_bytes(gzip.compress(idx_bytes(a)))
    np.testing.assert_array_equal(read_idx(path), a)


def test_read_idx_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "magic"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown data type"),
        (b"\x00\x00\x08\x02" + struct.pack(">I", 1), "header"),
        (b"\x00\x00\x08\x00", "zero dimensions"),
    ],
)
def test_read_idx_bad_header(tmp_path: Path, data: bytes, match: str) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(DataError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_truncated_and_trailing(tmp_path: Path) -> None:
    data = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
    path = tmp_path / "x.idx"
    path.write_bytes(data[:-1])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)
    path.write_bytes(data + b"\x00")
    with pytest.raises(DataError, match="trailing"):
        read_idx(path)
    # A huge declared size with a tiny body must fail cleanly, not allocate.
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 2**31, 2**31, 2**31))
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_read_idx_truncated_gzip(tmp_path: Path) -> None:
    gz = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8)))
    path = tmp_path / "x.idx.gz"
    path.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataError, match=str(path).replace("\\", "\\\\")):
        read_idx(path)


def test_load_mnist_from_folder(tmp_path: Path) -> None:
    fake_mnist(tmp_path, n_train=6, n_test=4, gz=True)
    ds = load_mnist(tmp_path, download=False)
    assert ds.name == "mnist"
    assert ds.images.shape == (10, 1, 28, 28) and ds.images.dtype == torch.float32
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    assert ds.labels is not None and ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]  # train part, then test part
    train = read_idx(tmp_path / "train-images-idx3-ubyte.gz")
    torch.testing.assert_close(ds.images[:6, 0], torch.from_numpy(train).float() / 255)


def test_load_mnist_plain_files(tmp_path: Path) -> None:
    fake_mnist(tmp_path, gz=False)
    assert len(load_mnist(tmp_path)) == 10


def test_load_mnist_missing_file_no_download(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)  # an explicit folder is never downloaded into
    assert not (tmp_path / "t10k-labels-idx1-ubyte.gz").exists()


def test_load_mnist_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "nope")


def test_load_mnist_count_mismatch(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8), gz=True)
    with pytest.raises(DataError, match="6 images but"):
        load_mnist(tmp_path)


def test_load_mnist_wrong_image_shape(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((4, 32, 32), np.uint8), gz=True)
    with pytest.raises(DataError, match=r"\(N, 28, 28\)"):
        load_mnist(tmp_path)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "mnist"
    monkeypatch.delenv("GANKIT_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "gankit" / "mnist"


def test_constants() -> None:
    assert MNIST_MIRRORS and all(m.startswith("https://") for m in MNIST_MIRRORS)
    assert sorted(MNIST_SHA256) == sorted(
        f"{p}-{k}" for p in ("train", "t10k")
        for k in ("images-idx3-ubyte", "labels-idx1-ubyte"))
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in MNIST_SHA256.values())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_file_good(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload" * 1000)
    dest = tmp_path / "out" / "file.bin"
    assert download_file(src.as_uri(), dest, _sha(src.read_bytes()).upper()) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]


def test_download_file_bad_checksum_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"evil")
    out = tmp_path / "out"
    dest = out / "file.bin"
    with pytest.raises(DataError, match="SHA-256") as info:
        download_file(src.as_uri(), dest, "0" * 64)
    assert "by hand" in str(info.value) and str(dest) in str(info.value)
    assert list(out.iterdir()) == []


def test_download_file_failure_keeps_existing_file(tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"good")
    src = tmp_path / "src.bin"
    src.write_bytes(b"bad")
    with pytest.raises(DataError, match="SHA-256"):
        download_file(src.as_uri(), dest, _sha(b"good"))
    with pytest.raises(DataError, match="Could not download"):
        download_file((tmp_path / "missing.bin").as_uri(), dest, _sha(b"good"))
    assert dest.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin", "src.bin"]


def test_download_file_bad_url(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Could not download"):
        download_file("nonsense://x", tmp_path / "f", "0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_load_mnist_downloads_into_cache(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    fake_mnist(mirror, gz=True)
    sums = {p.name[:-3]: _sha(p.read_bytes()) for p in mirror.iterdir()}
    cache = tmp_path / "cache"
    dead = (tmp_path / "dead-mirror").as_uri() + "/"
    ds = load_mnist(None, cache_dir=cache, mirrors=(dead, mirror.as_uri()), checksums=sums)
    assert len(ds) == 10
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in mirror.iterdir())
    # A second load reads the cache only.
    assert len(load_mnist(None, cache_dir=cache, mirrors=(), checksums=sums)) == 10


def test_load_mnist_download_checksum_mismatch(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    fake_mnist(mirror, gz=True)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="by hand") as info:
        load_mnist(None, cache_dir=cache, mirrors=(mirror.as_uri(),))  # the real checksums
    assert "SHA-256" in str(info.value) and str(cache) in str(info.value)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_load_mnist_cache_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="downloading is turned off"):
        load_mnist(None, download=False, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()

"""Arrays in .npy/.npz files: layouts, value types, labels and damaged or unsafe files."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.data.arrays import load_array
from gankit.errors import DataError


def save_npy(path: Path, a: np.ndarray) -> Path:
    np.save(path, a)
    return path


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((5, 8, 8), (5, 1, 8, 8)),
        ((5, 8, 8, 1), (5, 1, 8, 8)),
        ((5, 8, 8, 3), (5, 3, 8, 8)),
        ((5, 1, 8, 8), (5, 1, 8, 8)),
        ((5, 3, 8, 8), (5, 3, 8, 8)),
        ((5, 3, 9, 3), (5, 3, 3, 9)),  # ambiguous, NHWC spatial (3, 9) vs NCHW (9, 3): tie
        ((5, 3, 3, 3), (5, 3, 3, 3)),
        ((5, 1, 3, 3), (5, 1, 3, 3)),  # both fit; NCHW (3, 3) is square, NHWC (1, 3) is not
    ],
)
def test_shapes(tmp_path: Path, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    ds = load_array(save_npy(tmp_path / "x.npy", np.zeros(shape, dtype=np.uint8)))
    assert ds.images.shape == expected and ds.images.dtype == torch.float32
    assert ds.labels is None and ds.name == "x"


def test_channels_last_values_transposed(tmp_path: Path) -> None:
    a = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    a[..., 0] = 255  # red channel
    ds = load_array(save_npy(tmp_path / "x.npy", a))
    assert ds.images[0, 0].min() == 1.0 and ds.images[0, 1:].max() == 0.0
    assert ds.images.is_contiguous()


@pytest.mark.parametrize("shape", [(5,), (5, 8), (2, 5, 8, 8, 3), (5, 8, 8, 4), (5, 2, 8, 8),
                                   (8, 8, 3)])
def test_bad_shapes(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = save_npy(tmp_path / "x.npy", np.zeros(shape, dtype=np.uint8))
    with pytest.raises(DataError, match="x.npy"):
        load_array(path)


def test_empty_array(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty array"):
        load_array(save_npy(tmp_path / "x.npy", np.zeros((0, 8, 8), dtype=np.uint8)))


def test_uint8_scaled(tmp_path: Path) -> None:
    a = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    ds = load_array(save_npy(tmp_path / "x.npy", a))
    torch.testing.assert_close(ds.images[0, 0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]))


@pytest.mark.parametrize("dtype", [np.int16, np.int64, np.uint16, np.uint64])
def test_other_ints_in_byte_range(tmp_path: Path, dtype: type) -> None:
    a = np.array([[[0, 255], [51, 102]]], dtype=dtype)
    ds = load_array(save_npy(tmp_path / "x.npy", a))
    torch.testing.assert_close(ds.images[0, 0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]))


def test_ints_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="0..255"):
        load_array(save_npy(tmp_path / "x.npy", np.full((1, 2, 2), 1000, dtype=np.uint16)))
    with pytest.raises(DataError, match="0..255"):
        load_array(save_npy(tmp_path / "x.npy", np.full((1, 2, 2), -1, dtype=np.int32)))


def test_bool(tmp_path: Path) -> None:
    ds = load_array(save_npy(tmp_path / "x.npy", np.array([[[True, False]]])))
    assert ds.images.flatten().tolist() == [1.0, 0.0]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_unit_range(tmp_path: Path, dtype: type) -> None:
    a = np.array([[[0.0, 0.5], [0.25, 1.0]]], dtype=dtype)
    ds = load_array(save_npy(tmp_path / "x.npy", a))
    torch.testing.assert_close(ds.images[0, 0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))


def test_float_symmetric_range_rescaled(tmp_path: Path) -> None:
    a = np.array([[[-1.0, 0.0], [0.5, 1.0]]], dtype=np.float32)
    ds = load_array(save_npy(tmp_path / "x.npy", a))
    torch.testing.assert_close(ds.images[0, 0], torch.tensor([[0.0, 0.5], [0.75, 1.0]]))


def test_float_rounding_slack_clipped(tmp_path: Path) -> None:
    a = np.array([[[-1e-6, 1.00001]]], dtype=np.float64)
    ds = load_array(save_npy(tmp_path / "x.npy", a))
    assert ds.images.flatten().tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    ("value", "match"), [(np.nan, "NaN"), (np.inf, "NaN or infinite"), (2.0, r"\[0, 1\]"),
                         (-1.5, r"\[-1, 1\]")])
def test_float_bad_values(tmp_path: Path, value: float, match: str) -> None:
    a = np.zeros((2, 4, 4), dtype=np.float32)
    a[1, 2, 3] = value
    with pytest.raises(DataError, match=match):
        load_array(save_npy(tmp_path / "x.npy", a))


def test_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="complex"):
        load_array(save_npy(tmp_path / "x.npy", np.zeros((1, 2, 2), dtype=np.complex64)))
    with pytest.raises(DataError, match="numbers"):
        load_array(save_npy(tmp_path / "x.npy", np.full((1, 2, 2), "a")))


def test_npz_images_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    np.savez(path, images=np.zeros((3, 8, 8, 3), np.uint8), labels=np.array([2, 0, 1], np.uint8),
             extra=np.ones(4))
    ds = load_array(path)
    assert ds.images.shape == (3, 3, 8, 8) and ds.name == "set"
    assert ds.labels is not None and ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == [2, 0, 1] and ds.num_classes == 3


def test_npz_single_array_any_name(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez_compressed(path, faces=np.zeros((2, 6, 6), np.uint8), labels=np.array([0, 1]))
    ds = load_array(path)
    assert ds.images.shape == (2, 1, 6, 6) and ds.labels is not None


def test_npz_ambiguous_keys(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, a=np.zeros((2, 6, 6)), b=np.zeros((2, 6, 6)))
    with pytest.raises(DataError, match="'a', 'b'"):
        load_array(path)


@pytest.mark.parametrize(
    ("labels", "match"),
    [(np.array([0, 1]), "one label per image"),
     (np.array([[0], [1], [2]]), "one label per image"),
     (np.array([0.0, 1.0, 2.0]), "integers"),
     (np.array([0, -1, 2]), "negative")],
)
def test_npz_bad_labels(tmp_path: Path, labels: np.ndarray, match: str) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, images=np.zeros((3, 6, 6), np.uint8), labels=labels)
    with pytest.raises(DataError, match=match):
        load_array(path)


class _Boom:
    """Unpickling this would create a marker file: proof that pickle was executed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (Path(self.marker),))


def test_object_array_npz_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    obj = np.empty((1,), dtype=object)
    obj[0] = _Boom(str(marker))
    path = tmp_path / "evil.npz"
    np.savez(path, images=obj)
    assert not marker.exists()
    with pytest.raises(DataError, match="evil.npz"):
        load_array(path)
    assert not marker.exists()


def test_object_array_npy_and_plain_pickle_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    obj = np.empty((1,), dtype=object)
    obj[0] = _Boom(str(marker))
    npy = tmp_path / "evil.npy"
    np.save(npy, obj, allow_pickle=True)
    pkl = tmp_path / "pickle.npy"
    pkl.write_bytes(pickle.dumps(_Boom(str(marker))))
    for path in (npy, pkl):
        with pytest.raises(DataError, match="without pickle"):
            load_array(path)
    assert not marker.exists()


def test_missing_dir_and_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_array(tmp_path / "nope.npy")
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(DataError, match="not a file"):
        load_array(tmp_path / "d.npy")
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(DataError, match=".npy or .npz"):
        load_array(tmp_path / "x.png")


@pytest.mark.parametrize("name", ["x.npy", "x.npz"])
def test_zero_byte_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        load_array(tmp_path / name)


def test_truncated_npy(tmp_path: Path) -> None:
    path = save_npy(tmp_path / "x.npy", np.zeros((4, 8, 8), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="x.npy"):
        load_array(path)


@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_npz(tmp_path: Path, compressed: bool) -> None:
    path = tmp_path / "x.npz"
    rng = np.random.default_rng(0)
    save = np.savez_compressed if compressed else np.savez
    save(path, images=rng.integers(0, 256, (4, 16, 16), dtype=np.uint8))
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        path.write_bytes(data[:cut])
        with pytest.raises(DataError, match="x.npz"):
            load_array(path)


def test_corrupt_member_in_npz(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("images.npy", b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="x.npz"):
        load_array(path)


@pytest.mark.parametrize("shape", [(5, 8, 8), (5, 8, 8, 3), (5, 3, 8, 8), (5, 8, 8, 1)])
@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_peek_agrees_with_load(tmp_path: Path, shape: tuple[int, ...], suffix: str) -> None:
    from gankit.data.arrays import peek

    path = tmp_path / f"a{suffix}"
    images = np.zeros(shape, dtype=np.uint8)
    if suffix == ".npy":
        np.save(path, images)
    else:
        np.savez(path, images=images, labels=np.arange(5) % 2)
    assert peek(path) == (load_array(path).shape, suffix == ".npz")

"""Image folders: formats, modes, sizes, classes and damaged files (all images made here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data.folder import class_names, load_folder
from gankit.errors import DataError


def gray(path: Path, w: int = 20, h: int = 20, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (w, h), value).save(path)
    return path


def colour(path: Path, w: int = 20, h: int = 20, rgb: tuple[int, int, int] = (255, 0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), rgb).save(path)
    return path


def test_grayscale_png_auto(tmp_path: Path) -> None:
    gray(tmp_path / "a.png", value=0)
    gray(tmp_path / "b.PNG", value=255)
    ds = load_folder(tmp_path, size=8)
    assert ds.images.shape == (2, 1, 8, 8) and ds.images.dtype == torch.float32
    assert ds.labels is None and ds.name == tmp_path.name
    assert ds.images[0].max() == 0.0 and ds.images[1].min() == 1.0  # sorted file order


def test_any_colour_makes_rgb(tmp_path: Path) -> None:
    gray(tmp_path / "a.jpg", value=255)
    colour(tmp_path / "b.jpeg", rgb=(255, 0, 0))
    ds = load_folder(tmp_path, size=4)
    assert ds.shape == (3, 4, 4)
    assert torch.allclose(ds.images[0], torch.ones(3, 4, 4), atol=0.02)  # grey copied to RGB
    red = ds.images[1].mean(dim=(1, 2))
    assert red[0] > 0.9 and red[1] < 0.1 and red[2] < 0.1


def test_rgb_file_with_grey_content_counts_as_grey(tmp_path: Path) -> None:
    colour(tmp_path / "a.png", rgb=(70, 70, 70))
    assert load_folder(tmp_path, size=4).shape == (1, 4, 4)


@pytest.mark.parametrize("channels", [1, 3])
def test_forced_channels(tmp_path: Path, channels: int) -> None:
    gray(tmp_path / "a.png")
    colour(tmp_path / "b.png", rgb=(0, 255, 0))
    ds = load_folder(tmp_path, size=6, channels=channels)
    assert ds.images.shape == (2, channels, 6, 6)
    if channels == 1:  # luma of pure green is about 0.587
        assert abs(float(ds.images[1].mean()) - 0.587) < 0.01


def test_mixed_sizes_centre_crop(tmp_path: Path) -> None:
    # 40 x 20: black left quarter, white middle half, black right quarter -> white after crop.
    a = np.zeros((20, 40), dtype=np.uint8)
    a[:, 10:30] = 255
    Image.fromarray(a, "L").save(tmp_path / "wide.png")
    gray(tmp_path / "small.png", w=5, h=7, value=255)  # upscaled
    gray(tmp_path / "tall.png", w=30, h=90, value=255)
    ds = load_folder(tmp_path, size=16)
    assert ds.images.shape == (3, 1, 16, 16)
    assert float(ds.images.min()) > 0.95


def test_transparency_on_white(tmp_path: Path) -> None:
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    ds = load_folder(tmp_path, size=4, channels=3)
    assert float(ds.images.min()) == 1.0


def test_sixteen_bit_grey_png(tmp_path: Path) -> None:
    a = np.full((10, 10), 65535, dtype=np.uint16)
    a[:, :5] = 0
    Image.fromarray(a).save(tmp_path / "deep.png")
    ds = load_folder(tmp_path, size=10)
    assert ds.shape == (1, 10, 10)
    assert float(ds.images[0, 0, 0, 0]) == 0.0 and float(ds.images[0, 0, 0, 9]) == 1.0


def test_palette_png(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), (0, 0, 255)).convert("P").save(tmp_path / "p.png")
    ds = load_folder(tmp_path, size=8)
    assert ds.shape == (3, 8, 8) and float(ds.images[0, 2].mean()) > 0.9


def test_subfolder_classes(tmp_path: Path) -> None:
    gray(tmp_path / "dogs" / "1.png", value=10)
    gray(tmp_path / "cats" / "2.png", value=20)
    gray(tmp_path / "cats" / "deeper" / "3.png", value=30)
    gray(tmp_path / "dogs" / "4.jpg", value=40)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    assert class_names(tmp_path) == ["cats", "dogs"]
    ds = load_folder(tmp_path, size=4)
    assert ds.labels is not None and ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == [0, 0, 1, 1]  # cats/2, cats/deeper/3, dogs/1, dogs/4
    assert ds.num_classes == 2


def test_no_classes_with_top_level_image_or_one_subfolder(tmp_path: Path) -> None:
    gray(tmp_path / "one" / "a.png")
    gray(tmp_path / "one" / "b.png")
    assert class_names(tmp_path) == [] and load_folder(tmp_path, size=4).labels is None
    gray(tmp_path / "two" / "c.png")
    gray(tmp_path / "top.png")
    assert class_names(tmp_path) == [] and load_folder(tmp_path, size=4).labels is None


def test_hidden_files_skipped(tmp_path: Path) -> None:
    gray(tmp_path / "a.png")
    (tmp_path / "._a.png").write_bytes(b"AppleDouble junk")
    (tmp_path / ".thumbs").mkdir()
    (tmp_path / ".thumbs" / "x.png").write_bytes(b"junk")
    assert len(load_folder(tmp_path, size=4)) == 1


def test_missing_and_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_folder(tmp_path / "nope")
    f = gray(tmp_path / "a.png")
    with pytest.raises(DataError, match="not a folder"):
        load_folder(f)
    with pytest.raises(DataError, match="not a folder"):
        class_names(f)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match="holds no .png"):
        load_folder(tmp_path)


def test_corrupt_file(tmp_path: Path) -> None:
    gray(tmp_path / "a.png")
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(DataError, match="cannot be decoded") as info:
        load_folder(tmp_path, size=4)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(0)
    src = tmp_path / f"full{suffix}"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB").save(src)
    data = src.read_bytes()
    src.unlink()
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot be decoded") as info:
        load_folder(tmp_path, size=8)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"size": 0}, "size"), ({"size": 3.5}, "size"), ({"size": True}, "size"),
     ({"channels": 2}, "Channels"), ({"channels": 4}, "Channels")],
)
def test_invalid_options(tmp_path: Path, kwargs: dict, match: str) -> None:
    gray(tmp_path / "a.png")
    with pytest.raises(DataError, match=match):
        load_folder(tmp_path, **kwargs)


def test_large_jpeg_drafted(tmp_path: Path) -> None:
    Image.new("RGB", (1600, 1200), (0, 0, 200)).save(tmp_path / "big.jpg")
    ds = load_folder(tmp_path, size=32)
    assert ds.shape == (3, 32, 32) and float(ds.images[0, 2].mean()) > 0.7


def test_exif_orientation_applied(tmp_path: Path) -> None:
    a = np.full((10, 30), 255, dtype=np.uint8)
    a[:5] = 0  # stored: top half black
    img = Image.fromarray(a, "L")
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: the black half ends up on the right
    img.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    x = load_folder(tmp_path, size=10).images[0, 0]
    assert float(x[:, :4].mean()) > 0.9 and float(x[:, 6:].mean()) < 0.1

"""The bad-input matrix: each bad input gives one clear line, exit code 2, and changes nothing."""

from __future__ import annotations

import errno
import gzip
import io
import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit import data as data_sources
from gankit.cli import main
from gankit.config import DataConfig
from gankit.fileio import is_temp
from gankit.training import checkpoint

TINY = ["--batch-size", "16", "--set", "train.log_every=2", "--set", "train.checkpoint_every=3",
        "--set", "train.sample_every=3", "--set", "train.grid_size=4",
        "--set", "train.threads=1", "--quiet"]


def png(size: tuple[int, int] = (8, 8), mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(size: tuple[int, int] = (16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 40).convert("RGB").save(buf, format="JPEG")
    return buf.getvalue()


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def idx(a: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[a.dtype]
    header = bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def mnist(tmp: Path, images: bytes, labels: bytes | None = None) -> list[str]:
    folder = tmp / "mnist"
    folder.mkdir()
    good_labels = idx(np.zeros(2, dtype=np.uint8))
    for part in ("train", "t10k"):
        (folder / f"{part}-images-idx3-ubyte").write_bytes(images)
        (folder / f"{part}-labels-idx1-ubyte").write_bytes(labels or good_labels)
    return ["--data", "mnist", "--data-dir", "mnist", "--set", "data.download=false"]


def folder(tmp: Path, files: dict[str, bytes]) -> list[str]:
    (tmp / "imgs").mkdir()
    for name, content in files.items():
        (tmp / "imgs" / name).write_bytes(content)
    return ["--data", "imgs"]


def file(tmp: Path, name: str, content: bytes, flag: str = "--data") -> list[str]:
    (tmp / name).write_bytes(content)
    return [flag, name]


def toml(tmp: Path, text: str) -> list[str]:
    return file(tmp, "cfg.toml", text.encode(), "--config")


# name -> (set up the files and return the extra arguments, words the error line must contain)
Case = tuple[Callable[[Path], list[str]], tuple[str, ...]]
CASES: dict[str, Case] = {
    "corrupt_png": (lambda t: folder(t, {"a.png": png(), "b.png": png()[:8] + b"\0" * 60}),
                    ("b.png", "cannot be decoded")),
    "truncated_png": (lambda t: folder(t, {"a.png": png((64, 64))[:50]}), ("a.png",)),
    "corrupt_jpeg": (lambda t: folder(t, {"a.jpg": b"\xff\xd8\xff\xe0" + b"junk" * 20}),
                     ("a.jpg",)),
    "truncated_jpeg": (lambda t: folder(t, {"a.jpg": jpeg((64, 64))[:300]}), ("a.jpg",)),
    "empty_folder": (lambda t: folder(t, {}), ("holds no .png",)),
    "folder_without_images": (lambda t: folder(t, {"notes.txt": b"hi"}), ("holds no .png",)),
    "zero_byte_npz": (lambda t: file(t, "a.npz", b""), ("a.npz", "empty")),
    "truncated_npz": (lambda t: file(t, "a.npz", npz(images=np.zeros((4, 8, 8), np.uint8))[:60]),
                      ("a.npz",)),
    "zero_byte_npy": (lambda t: file(t, "a.npy", b""), ("a.npy", "empty")),
    "truncated_npy": (lambda t: file(t, "a.npy", npy(np.zeros((4, 8, 8), np.uint8))[:100]),
                      ("a.npy",)),
    "nan_in_array": (lambda t: file(t, "a.npy", npy(np.full((4, 8, 8), np.nan, np.float32))),
                     ("NaN",)),
    "inf_in_array": (lambda t: file(t, "a.npz", npz(images=np.full((4, 8, 8), np.inf))),
                     ("infinite",)),
    "complex_dtype": (lambda t: file(t, "a.npy", npy(np.zeros((4, 8, 8), np.complex64))),
                      ("complex64",)),
    "string_dtype": (lambda t: file(t, "a.npy", npy(np.full((4, 8, 8), "x"))), ("<U1",)),
    "int_out_of_range": (lambda t: file(t, "a.npy", npy(np.full((4, 8, 8), 1000, np.int16))),
                         ("0..255",)),
    "float_out_of_range": (lambda t: file(t, "a.npy", npy(np.full((4, 8, 8), 7.0))),
                           ("[0, 1]",)),
    "shape_2d": (lambda t: file(t, "a.npy", npy(np.zeros((4, 8), np.uint8))), ("shape",)),
    "shape_5d": (lambda t: file(t, "a.npy", npy(np.zeros((2, 1, 8, 8, 1), np.uint8))),
                 ("5-dimensional",)),
    "empty_array": (lambda t: file(t, "a.npy", npy(np.zeros((0, 8, 8), np.uint8))), ("empty",)),
    "bad_labels": (lambda t: file(t, "a.npz", npz(images=np.zeros((4, 8, 8), np.uint8),
                                                  labels=np.zeros(3, np.int64))), ("labels",)),
    "two_arrays": (lambda t: file(t, "a.npz", npz(x=np.zeros(2), y=np.zeros(2))), ("'images'",)),
    "idx_bad_magic": (lambda t: mnist(t, b"\x01\x02" + idx(np.zeros((2, 28, 28), np.uint8))[2:]),
                      ("magic number",)),
    "idx_truncated": (lambda t: mnist(t, idx(np.zeros((2, 28, 28), np.uint8))[:-7]),
                      ("truncated",)),
    "idx_trailing_bytes": (lambda t: mnist(t, idx(np.zeros((2, 28, 28), np.uint8)) + b"xx"),
                           ("trailing",)),
    "idx_unknown_type": (lambda t: mnist(t, b"\0\0\x42\x03" + b"\0" * 12), ("0x42",)),
    "idx_bad_gzip": (lambda t: mnist(t, gzip.compress(b"x" * 100)[:30]), ("IDX",)),
    "idx_wrong_image_size": (lambda t: mnist(t, idx(np.zeros((2, 14, 14), np.uint8))),
                             ("28",)),
    "toml_unknown_key": (lambda t: toml(t, "[train]\nstepz = 3\n"), ("train.stepz",)),
    "toml_unknown_section": (lambda t: toml(t, "[trian]\nsteps = 3\n"), ("trian",)),
    "toml_wrong_type": (lambda t: toml(t, '[train]\nema = "high"\n'), ("train.ema",)),
    "toml_bool_as_int": (lambda t: toml(t, "[train]\nd_steps = true\n"), ("train.d_steps",)),
    "toml_bool_as_float": (lambda t: toml(t, "[loss]\nreal_label = true\n"),
                           ("loss.real_label",)),
    "toml_list_as_int": (lambda t: toml(t, "[model]\nlatent_dim = [1, 2]\n"),
                         ("model.latent_dim",)),
    "toml_negative": (lambda t: toml(t, "[train]\nd_steps = -1\n"), ("train.d_steps",)),
    "toml_huge_int": (lambda t: toml(t, "[model]\nlatent_dim = 9223372036854775807\n"),
                      ("model.latent_dim",)),
    "toml_beyond_int64": (lambda t: toml(t, "[model]\ng_hidden = [99999999999999999999]\n"),
                          ("model.g_hidden",)),
    "toml_huge_float": (lambda t: toml(t, "[train]\nlr_g = 1e308\n"), ("train.lr_g",)),
    "toml_inf": (lambda t: toml(t, "[train]\nlr_d = inf\n"), ("train.lr_d", "finite")),
    "toml_nan": (lambda t: toml(t, "[guard]\nlr_factor = nan\n"), ("guard.lr_factor",)),
    "toml_section_not_table": (lambda t: toml(t, "model = 3\n"), ("model",)),
    "toml_syntax": (lambda t: toml(t, "[train\n"), ("TOML",)),
    "toml_binary": (lambda t: file(t, "cfg.toml", b"\xff\xfe\x00garbage", "--config"),
                    ("cfg.toml",)),
    "toml_preset_unknown": (lambda t: toml(t, 'preset = "nope"\n'), ("nope",)),
    "toml_preset_module": (lambda t: toml(t, 'preset = "../../etc/passwd"\n'), ("preset",)),
    "set_guard_out_of_range": (lambda t: ["--set", "guard.lr_factor=2"], ("guard.lr_factor",)),
    "out_in_proc": (lambda t: ["--out", "/proc/gankit-no-such/run"], ("/proc/gankit-no-such",)),
    "out_under_a_file": (lambda t: file(t, "f", b"x", "--out") + ["--out", "f/run"],
                         ("f/run",)),
    "out_is_dev_null": (lambda t: ["--out", "/dev/null"], ("/dev/null",)),
}


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def one_line(capsys: pytest.CaptureFixture[str], code: int, *needles: str) -> str:
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("gankit: error: "), err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    setup, needles = CASES[name]
    args = setup(tmp_path)
    before = snapshot(tmp_path)
    code = main(["train", "--steps", "2", *TINY, *args])
    one_line(capsys, code, *needles)
    assert snapshot(tmp_path) == before  # nothing written, nothing changed


def test_mixed_sizes_and_modes_are_fine(tmp_path: Path) -> None:
    # Not an error: every image is brought to one size and one number of channels.
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    files = {"a.png": png((8, 12), "L"), "b.png": png((30, 20), "RGB"),
             "c.png": png((5, 5), "RGBA"), "d.png": png((9, 9), "P"), "e.png": png((7, 7), "1"),
             "f.png": png((16, 16), "I;16"), "g.jpg": jpeg((40, 17))}
    for n, content in files.items():
        (imgs / n).write_bytes(content)
    data = data_sources.build(DataConfig(source=str(imgs), size=16))
    assert data.images.shape == (7, 3, 16, 16)
    assert bool((data.images >= 0).all() and (data.images <= 1).all())


# -- run directories ----------------------------------------------------------------------------


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--steps", "3", "--out", "run", *TINY]) == 0
    capsys.readouterr()
    return tmp_path / "run"


def test_run_from_a_newer_gankit(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta_path = run / "checkpoints" / "step-000000003.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = checkpoint.VERSION + 1
    meta_path.write_text(json.dumps(meta))
    before = snapshot(run)
    one_line(capsys, main(["train", "--resume", "--out", "run", "--steps", "6"]), "newer gankit")
    one_line(capsys, main(["sample", "run", "--num", "2", "--out", "x.npz"]), "newer gankit")
    assert snapshot(run) == before and not (run.parent / "x.npz").exists()


def test_run_config_from_a_newer_gankit(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open(run / "config.toml", "a") as f:
        f.write("\n[hyperspace]\nwarp = 9\n")
    before = snapshot(run)
    one_line(capsys, main(["train", "--resume", "--out", "run", "--steps", "6"]), "hyperspace")
    one_line(capsys, main(["sample", "run", "--num", "2", "--out", "x.npz"]), "hyperspace")
    assert snapshot(run) == before


def raise_enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_during_a_checkpoint(run: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    good = checkpoint.latest(run / "checkpoints")
    with monkeypatch.context() as m:
        m.setattr(checkpoint, "save_file", raise_enospc)
        code = main(["train", "--resume", "--out", "run", "--steps", "6", "--quiet"])
    one_line(capsys, code, "No space left on device", "step-000000006")
    assert checkpoint.list_steps(run / "checkpoints") == [3]
    after = checkpoint.latest(run / "checkpoints")  # the previous checkpoint is intact
    assert after["step"] == 3 and after["G"].keys() == good["G"].keys()
    assert not [p for p in run.rglob("*") if is_temp(p.name)]
    # Space freed: the run resumes from that checkpoint.
    assert main(["train", "--resume", "--out", "run", "--steps", "6", "--quiet"]) == 0
    assert checkpoint.latest(run / "checkpoints")["step"] == 6


def test_disk_full_while_logging(run: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from gankit import runlog

    def full(path: Path, record: dict[str, object]) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runlog, "append", full)
    one_line(capsys, main(["train", "--resume", "--out", "run", "--steps", "6", "--quiet"]),
             "No space left on device", "metrics.jsonl")
    assert checkpoint.latest(run / "checkpoints")["step"] == 3

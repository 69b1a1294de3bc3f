"""Strangers' files: a malicious pickle given to any command is refused and never executed."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import gankit
from gankit.cli import main
from gankit.config import resolve
from gankit.errors import ConfigError
from gankit.untrusted import is_pickle

SRC = Path(gankit.__file__).parent
TINY = ["--batch-size", "16", "--set", "train.log_every=2", "--set", "train.checkpoint_every=2",
        "--set", "train.grid_size=4", "--set", "train.threads=1", "--quiet"]


class Payload:
    """Unpickling this creates ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def pickle_bytes(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker), protocol=4)


def torch_zip(path: Path, marker: Path) -> Path:
    """A file laid out like ``torch.save`` output, its data.pkl the payload."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle_bytes(marker))
        z.writestr("archive/version", "3\n")
    return path


def test_the_payload_works(tmp_path: Path) -> None:
    marker = tmp_path / "owned"
    pickle.loads(pickle_bytes(marker))  # noqa: S301 - the control experiment
    assert marker.exists()


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path (the cwd) stocked with pickles in every disguise; ``owned`` must never appear."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "owned"
    raw = pickle_bytes(marker)
    for name in ("evil.pkl", "evil.pt", "evil.pth", "evil.ckpt", "looks.npy", "looks.toml"):
        (tmp_path / name).write_bytes(raw)
    torch_zip(tmp_path / "model.pt", marker)
    torch_zip(tmp_path / "zipped.npz", marker)
    with open(tmp_path / "objects.npz", "wb") as f:
        np.savez(f, images=np.array([Payload(marker), 1], dtype=object))
    with open(tmp_path / "objects.npy", "wb") as f:
        np.save(f, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    (tmp_path / "mnist").mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / "mnist" / name).write_bytes(raw)
    yield tmp_path
    assert not marker.exists(), "a pickle was executed"


def refused(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> str:
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith("gankit: error: "), err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("name", ["evil.pkl", "evil.pt", "evil.pth", "evil.ckpt", "model.pt",
                                  "looks.npy", "zipped.npz"])
def test_data_pickle_refused(evil: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    refused(capsys, ["train", "--data", name, "--out", "run", *TINY], name, "pickle")
    assert not (evil / "run").exists()


@pytest.mark.parametrize("name", ["objects.npz", "objects.npy"])
def test_object_arrays_refused(evil: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    refused(capsys, ["train", "--data", name, "--out", "run", *TINY], name)
    assert not (evil / "run").exists()


def test_mnist_files_that_are_pickles(evil: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused(capsys, ["train", "--data", "mnist", "--data-dir", "mnist", "--out", "run",
                     "--set", "data.download=false", *TINY], "IDX")


@pytest.mark.parametrize("name", ["evil.pt", "evil.pkl", "looks.toml", "model.pt"])
def test_config_pickle_refused(evil: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    refused(capsys, ["train", "--config", name, "--out", "run"], name)


@pytest.mark.parametrize("name", ["evil.pt", "model.pt", "evil.pkl"])
def test_sample_pickle_refused(evil: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    refused(capsys, ["sample", name, "--num", "2", "--out", "x.png"], name, "pickle")
    assert not (evil / "x.png").exists()


@pytest.fixture
def run_with_stranger(evil: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["train", "--steps", "2", "--out", "run", *TINY]) == 0
    capsys.readouterr()
    return evil / "run"


@pytest.mark.parametrize("name", ["model.pt", "weights.bin"])
def test_run_holding_a_pickle(run_with_stranger: Path, capsys: pytest.CaptureFixture[str],
                              name: str) -> None:
    (run_with_stranger / "checkpoints" / name).write_bytes(
        (run_with_stranger.parent / "evil.pt").read_bytes())
    refused(capsys, ["sample", "run", "--num", "2", "--out", "x.npz"], name, "pickle")
    refused(capsys, ["train", "--resume", "--out", "run", "--steps", "4"], name, "pickle")
    with pytest.raises(gankit.GankitError, match="pickle"):
        gankit.load_run(run_with_stranger)


def test_checkpoint_pointing_at_a_pickle(run_with_stranger: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # A forged state file: its weights entry names a pickle, with the right checksum.
    folder = run_with_stranger / "checkpoints"
    evil = folder / "step-000000002.safetensors"
    evil.write_bytes((run_with_stranger.parent / "evil.pt").read_bytes())
    meta = json.loads((folder / "step-000000002.json").read_text())
    meta["sha256"] = hashlib.sha256(evil.read_bytes()).hexdigest()
    (folder / "step-000000002.json").write_text(json.dumps(meta))
    for p in folder.glob("step-*.json"):
        if p.name != "step-000000002.json":
            p.unlink()
    refused(capsys, ["sample", "run", "--num", "2", "--out", "x.npz"], "unreadable")


def test_subprocess_refuses_without_running_the_payload(evil: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "gankit", "train", "--data", "model.pt"],
                         capture_output=True, text=True, cwd=evil, timeout=120)
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr


def test_detection() -> None:
    assert not is_pickle(SRC / "data" / "digits.npz")
    assert not is_pickle(SRC / "weights" / "digit_classifier.safetensors")
    assert not is_pickle(SRC / "presets" / "classic.toml")


def test_no_unpickling_anywhere_in_the_source() -> None:
    forbidden = re.compile(r"torch\.load\b|pickle\.loads?\b|import (pickle|joblib|dill)|"
                           r"allow_pickle=True|(?<![.\w])(eval|exec)\(|import_module|__import__")
    offenders = [f"{p.relative_to(SRC)}: {m.group(0)}" for p in SRC.rglob("*.py")
                 for m in forbidden.finditer(p.read_text())]
    assert offenders == []


@pytest.mark.parametrize("key", ["model.family", "model.activation", "model.output",
                                 "loss.name"])
@pytest.mark.parametrize("value", ["os.system", "subprocess", "builtins.eval",
                                   "__import__('os').system('true')", "gankit.cli"])
def test_config_names_only_from_registries(key: str, value: str) -> None:
    before = set(sys.modules)
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=re.escape(key)):
        resolve(values={section: {name: value}})
    assert set(sys.modules) == before  # nothing was imported by name

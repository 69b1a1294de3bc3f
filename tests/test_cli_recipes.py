"""The command line with recipes: combinations refused before training (one line, exit 2), the
preset picked for a folder, `sample --class` and the class grid."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit.autopreset import pick
from gankit.cli import main
from gankit.config import resolve
from gankit.errors import ConfigError

from .test_cli import TINY, assert_one_error_line

FAST = [*TINY, "--set", "model.base_channels=4"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(("args", "needle"), [
    (["--preset", "dcgan", "--set", "model.d_output=sigmoid", "--set", "loss.name=wasserstein"],
     "model.d_output=sigmoid"),
    (["--preset", "pacgan", "--set", "reg.pack=3"], "reg.pack=3 must divide"),
    (["--preset", "cgan", "--data", "flat.npy"], "model.conditional needs labelled data"),
    (["--preset", "sngan", "--set", "data.size=0"], "model.family=resnet"),
    (["--preset", "dcgan", "--set", "data.size=48"], "model.family=dcgan"),
    (["--preset", "wgan-gp", "--set", "loss.real_label=0.9"], "loss.real_label"),
    (["--preset", "dcgan", "--set", "reg.augment=['flip']"], "reg.augment"),
    (["--preset", "cgan", "--set", "reg.pack=2"], "reg.pack"),
    (["--preset", "cgan", "--set", "model.clusters=10"], "replaces model.conditional"),
    (["--preset", "pacgan", "--set", "model.clusters=10"], "a pack would mix clusters"),
    (["--preset", "dcgan", "--set", "model.clusters=1"], "model.clusters=1"),
    (["--preset", "dcgan", "--set", "model.clusters=-3"], "model.clusters must be 0..10000"),
    (["--data", "ring8", "--set", "model.clusters=20000"], "model.clusters must be 0..10000"),
])
def test_impossible_combinations_are_refused(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    np.save(tmp_path / "flat.npy", np.zeros((8, 28, 28), dtype=np.uint8))
    assert main(["train", "--steps", "2", "--out", "run", *args, *FAST]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err, needle)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_config_refusals_name_their_keys() -> None:
    for override, key in (("reg.gp_weight=-1", "reg.gp_weight"), ("reg.r1_every=0", "reg.r1_every"),
                          ("reg.r2_gamma=-1", "reg.r2_gamma"),
                          ("reg.pack=0", "reg.pack"), ("model.base_channels=2",
                                                       "model.base_channels"),
                          ("model.d_output=tanh", "model.d_output"),
                          ("reg.augment=['color', 'color']", "reg.augment")):
        with pytest.raises(ConfigError, match=re.escape(key)):
            resolve(overrides=[override])


def test_pick() -> None:
    assert pick(28, False) == ("dcgan", 28)
    assert pick(16, False) == ("dcgan", 28)
    assert pick(32, True) == ("cgan", 32)
    assert pick(500, False) == ("dcgan", 64)


def test_folder_without_preset_gets_one(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "pics" / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                tmp_path / "pics" / cls / f"{i}.png")
    assert main(["train", "--data", "pics", "--steps", "2", "--out", "run", *FAST,
                 "--batch-size", "4"]) == 0
    err = capsys.readouterr().err
    assert "picked preset 'cgan' at 32x32 for 3-channel images of side 40, labelled" in err
    assert "training preset 'cgan'" in err
    # The class grid: one row per class; --class K draws only class K.
    assert main(["sample", "run", "--num", "6", "--out", "grid.png"]) == 0
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size == (3 * 34 + 2, 2 * 34 + 2)  # 3 columns, 2 rows (classes) of 32px
    assert main(["sample", "run", "--num", "3", "--class", "1", "--out", "one.npz"]) == 0
    with np.load(tmp_path / "one.npz") as z:
        assert z["images"].shape == (3, 32, 32, 3)
    capsys.readouterr()
    assert main(["sample", "run", "--num", "3", "--class", "2", "--out", "x.npz"]) == 2
    assert_one_error_line(capsys.readouterr().err, "class 2")


def test_class_on_an_unconditional_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--preset", "classic", "--steps", "1", "--out", "run", "--quiet",
                 *TINY]) == 0
    assert main(["sample", "run", "--num", "2", "--class", "3", "--out", "x.npz"]) == 2
    assert_one_error_line(capsys.readouterr().err, "not conditional")


def test_builtin_data_keeps_the_default_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", "digits", "--steps", "1", "--out", "run", *TINY]) == 0
    err = capsys.readouterr().err
    assert "picked" not in err and "training preset 'digits'" in err

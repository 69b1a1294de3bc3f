"""``gankit export``: the ONNX file of each family, run in ONNX Runtime beside PyTorch."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import gankit
from gankit.cli import main
from gankit.run import load_run

# Tiny runs: two steps on one thread (the machine running the tests is shared).
TINY = ("train.steps=2", "train.batch_size=8", "train.log_every=1", "train.sample_every=2",
        "train.checkpoint_every=2", "train.grid_size=4", "train.threads=1")
FAMILIES = {  # preset and overrides; the model family each exercises
    "mlp": ("classic", ()),
    "dcgan": ("dcgan", ("model.base_channels=8",)),
    "resnet": ("sngan", ("model.base_channels=8",)),
    "conditional": ("cgan", ("model.base_channels=8",)),
    "clusters": ("mixture", ("model.clusters=4", "data.source=ring8")),  # 2-D points
    "tabular": ("tabular", ("model.g_hidden=[16]", "model.d_hidden=[16]", "reg.pack=2")),
}


def small_table(path: Path, n: int = 120) -> Path:
    """A CSV with a number, an integer, a category and a flag per row."""
    rng = np.random.default_rng(0)
    pd.DataFrame({"height": rng.normal(170, 10, n).round(1),
                  "age": rng.integers(18, 90, n),
                  "city": rng.choice(["Oslo", "Lima", "Pune"], n),
                  "smoker": rng.random(n) < 0.3}).to_csv(path, index=False)
    return path


def tiny_run(folder: Path, family: str) -> Path:
    """A run of ``family`` (a key of FAMILIES) trained for two steps in ``folder``/family."""
    preset, extra = FAMILIES[family]
    values = None
    if family == "tabular":
        values = {"data": {"source": str(small_table(folder / "t.csv"))}}
    cfg = gankit.resolve(preset, overrides=[*TINY, *extra], values=values)
    out = folder / family
    gankit.train(cfg, out, progress=False)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ship")
    return {family: tiny_run(folder, family) for family in FAMILIES}


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gankit: error: "), err
    return err


@pytest.mark.parametrize("family", list(FAMILIES))
def test_onnx_matches_pytorch(runs: dict[str, Path], family: str, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    from gankit.ship.export import example_inputs, read_metadata

    out = tmp_path / "g.onnx"
    assert main(["export", str(runs[family]), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    run = load_run(runs[family])
    which = "EMA" if run.config.train.ema > 0 else "raw"  # the tabular preset keeps no EMA
    assert err.startswith(f"gankit: wrote {out}") and f"{which} generator of step 2" in err
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = read_metadata(out)
    assert meta["gankit.step"] == "2" and meta["gankit.version"] == gankit.__version__
    assert meta["gankit.family"] == run.config.model.family
    inputs = json.loads(meta["gankit.inputs"])
    assert [i.name for i in session.get_inputs()] == list(inputs)
    for n in (1, 5):  # the batch axis is dynamic
        args = example_inputs(run, n, seed=7)
        got = session.run(None, {i.name: a.numpy()
                                 for i, a in zip(session.get_inputs(), args, strict=True)})
        with torch.no_grad():
            want = run.generator(*args).numpy()
        np.testing.assert_allclose(got[-1], want, rtol=0, atol=1e-5)
        if run.is_image:  # uint8 (N, H, W, C), as gankit sample writes them
            images = run.sample(n, seed=7, labels=args[1] if len(args) > 1 else None)
            assert got[0].dtype == np.uint8 and got[0].shape == images.shape
            assert np.abs(got[0].astype(int) - images).max() <= 1
            assert (got[0] != images).mean() < 1e-3
    if family == "tabular":  # the rows decode with the codec stored in the file
        from gankit.kinds.tables.codec import TableCodec

        codec = TableCodec.from_json(json.loads(meta["gankit.codec"]))
        args = example_inputs(run, 50, seed=3)
        rows = session.run(None, {"z": args[0].numpy(), "condition": args[1].numpy()})[0]
        with torch.no_grad():
            want = run.codec.decode(run.generator(*args))
        pd.testing.assert_frame_equal(codec.decode(torch.from_numpy(rows)), want)
        options = json.loads(meta["gankit.conditions"])
        assert len(options) == args[1].shape[1]
        assert {o["column"] for o in options} == {"city", "smoker", "age"} - {"age"}
    if family in ("conditional", "clusters"):
        assert meta["gankit.labels"] == ("classes" if family == "conditional" else "clusters")
        assert len(json.loads(meta["gankit.label_share"])) == int(meta["gankit.num_labels"])


def test_export_refuses_a_run_without_checkpoint(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = gankit.resolve("classic", overrides=list(TINY))
    gankit.prepare(cfg, tmp_path / "empty")  # a run directory, never trained
    assert main(["export", str(tmp_path / "empty"), "--out", str(tmp_path / "g.onnx")]) == 2
    assert "has no checkpoint" in one_error_line(capsys)
    assert not (tmp_path / "g.onnx").exists()


@pytest.mark.parametrize("out, message", [
    ("missing/g.onnx", "does not exist"), ("g.txt", "must end in .onnx"),
    ("folder.onnx", "is a folder")])
def test_export_refuses_a_bad_out(runs: dict[str, Path], tmp_path: Path, out: str,
                                  message: str, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "folder.onnx").mkdir()
    assert main(["export", str(runs["mlp"]), "--out", str(tmp_path / out)]) == 2
    assert message in one_error_line(capsys)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="root writes anywhere")
def test_export_refuses_an_unwritable_folder(runs: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert main(["export", str(runs["mlp"]), "--out", str(locked / "g.onnx")]) == 2
    assert "permission denied" in one_error_line(capsys)


def test_export_without_onnx_says_how_to_install(runs: dict[str, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    assert main(["export", str(runs["mlp"]), "--out", str(tmp_path / "g.onnx")]) == 2
    assert "pip install 'gankit[export]'" in one_error_line(capsys)

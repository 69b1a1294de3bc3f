"""``train.tensorboard``: RUN/tb/ holds the records of metrics.jsonl and the sample grids."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import gankit
from gankit import runlog
from gankit.cli import main
from gankit.ship.tensorboard import Board

TINY = ["--batch-size", "16", "--set", "train.log_every=2", "--set", "train.sample_every=3",
        "--set", "train.checkpoint_every=3", "--set", "train.grid_size=9",
        "--set", "train.threads=1", "--quiet"]


def events(folder: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[int]],
                                  dict[str, list[tuple[int, str]]]]:
    """(scalars, image steps, texts) by tag, read back from the event files in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0,
                                                      "tensors": 0})
    ea.Reload()
    tags = ea.Tags()
    scalars = {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in tags["scalars"]}
    images = {t: [e.step for e in ea.Images(t)] for t in tags["images"]}
    texts = {t.removesuffix("/text_summary"): [(e.step, e.tensor_proto.string_val[0].decode())
                                               for e in ea.Tensors(t)]
             for t in tags["tensors"]}
    return scalars, images, texts


def test_tensorboard_mirrors_metrics_and_samples(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    assert main(["train", "--preset", "classic", "--steps", "6", "--out", str(run),
                 "--tensorboard", "--eval-every", "3", "--set", "eval.num=100", *TINY]) == 0
    assert gankit.load_run(run).config.train.tensorboard is True  # kept for --resume
    assert main(["train", "--resume", "--out", str(run), "--steps", "8", *TINY]) == 0
    scalars, images, _ = events(run / "tb")
    records = runlog.read(run / "metrics.jsonl")
    want: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        group = "train" if "loss_g" in r else "eval"  # training statistics, or evaluations
        for key, value in r.items():
            if key not in ("step", "time") and isinstance(value, (int, float)) \
                    and not isinstance(value, bool):
                want.setdefault(f"{group}/{key}", []).append((r["step"], value))
    assert set(scalars) == set(want)
    assert {"train/loss_d", "train/steps_per_s", "eval/fd", "eval/precision"} <= set(want)
    for key, points in want.items():  # every record, once, at its step
        assert [s for s, _ in scalars[key]] == [s for s, _ in points], key
        for (_, got), (_, value) in zip(scalars[key], points, strict=True):
            assert got == pytest.approx(value, rel=1e-6, abs=1e-6), key
    assert images == {"samples": [3, 6, 8]}


def test_events_and_table_previews_become_text(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    (tmp_path / "samples").mkdir()
    runlog.append(tmp_path / "metrics.jsonl", {"step": 1, "time": 1.0, "loss_d": 0.5})
    board = Board(tmp_path, (1,))  # what is there already counts as shown
    event = {"event": "divergence", "reason": "nan", "step": 4, "rollback_to": 2}
    runlog.append(tmp_path / "metrics.jsonl", event)
    runlog.append(tmp_path / "metrics.jsonl", {"step": 3, "time": 2.0, "loss_g": 0.25})
    runlog.append(tmp_path / "metrics.jsonl", {"step": 3, "time": 2.0, "fd": 7.5, "best": True})
    (tmp_path / "samples" / "step-000000003.csv").write_text("a,b\n1,x\n")
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "loss')  # a torn line is skipped
    board.sync()
    board.close()
    scalars, images, texts = events(tmp_path / "tb")
    assert scalars == {"train/loss_g": [(3, 0.25)], "eval/fd": [(3, 7.5)]} and images == {}
    assert texts["events/divergence"] == [(4, "`" + json.dumps(event) + "`")]
    assert texts["samples"] == [(3, "```\na,b\n1,x\n\n```")]


def test_tensorboard_missing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard fails
    run = tmp_path / "run"
    assert main(["train", "--preset", "classic", "--steps", "2", "--out", str(run),
                 "--tensorboard", *TINY]) == 2
    assert capsys.readouterr().err == ("gankit: error: train.tensorboard needs the tensorboard "
                                       "package: pip install 'gankit[tensorboard]'\n")
    assert not run.exists()  # refused before anything is written

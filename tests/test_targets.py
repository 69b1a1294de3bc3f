"""Training to a target (--target) and to a time budget (--time); both resume cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gankit
from gankit import runlog
from gankit.cli import main
from gankit.metrics.goals import Target, parse_duration, parse_target
from gankit.training import checkpoint
from gankit.training.trainer import Trainer
from tests.test_trainer import assert_same, final_state, tiny

# ring8, unconditioned with pack 2 (no k-means to fit): modes hit well (the evaluation's
# ``modes``) go 1, 0, 2, 3 at steps 100-400 (measured)
RING = ["--data", "ring8", "--set", "model.clusters=0", "--set", "reg.pack=2",
        "--set", "train.log_every=50", "--set", "eval.num=200", "--set", "train.lr_decay=0",
        "--set", "train.sample_every=1000", "--quiet"]


def events(run: Path) -> list[dict]:
    return [r for r in runlog.read(run / "metrics.jsonl") if "event" in r]


def test_targets_read_their_direction_from_the_metric() -> None:
    assert parse_target("fd=3") == Target("fd", "<=", 3.0)
    assert parse_target("precision=0.7") == Target("precision", ">=", 0.7)
    assert parse_target(" modes > 7 ") == Target("modes", ">", 7.0)
    assert str(parse_target("detection_auc<0.75")) == "detection_auc<0.75"
    t = parse_target("fd<=3")
    assert t.met({"fd": 2.9}) and t.met({"fd": 3.0}) and not t.met({"fd": 3.1})
    assert not t.met({"modes": 8}) and not t.met({"fd": float("nan")})
    for bad, why in (("fid=3", "unknown metric 'fid'"), ("fd", "is not METRIC=VALUE"),
                     ("fd=three", "is not METRIC=VALUE"), ("fd=1.2.3", "is not a number")):
        with pytest.raises(ValueError, match=why):
            parse_target(bad)


def test_durations() -> None:
    assert parse_duration("90") == parse_duration("90s") == 90.0
    assert parse_duration("5m") == 300.0 and parse_duration("1.5h") == 5400.0
    for bad in ("0s", "-5m", "5x", "m", ""):
        with pytest.raises(ValueError, match="positive duration"):
            parse_duration(bad)


@pytest.mark.parametrize(("args", "needle"), [
    (["--target", "fid=3"], "unknown metric 'fid'"),
    (["--target", "fd=3", "--eval-every", "0"], "set eval.every"),
    (["--time", "5x"], "positive duration"),
])
def test_bad_targets_and_times_are_one_line(args: list[str], needle: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["train", "--steps", "5", "--out", str(tmp_path / "r"), *args])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "r").exists()


def test_train_to_a_target_stops_there_and_resumes(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    cmd = ["train", *RING, "--steps", "1000", "--out", str(run), "--target", "modes=2",
           "--eval-every", "100"]
    assert main(cmd) == 0
    trainer_step = checkpoint.latest(run / "checkpoints")["step"]
    assert 100 <= trainer_step < 1000 and trainer_step % 100 == 0
    stop = [e for e in events(run) if e["event"] == "stopped"]
    assert stop == [stop[0]] and stop[0]["reason"] == "target" and stop[0]["step"] == trainer_step
    assert "modes>=2 reached (modes " in stop[0]["detail"]
    evaluations = [r for r in runlog.read(run / "metrics.jsonl") if "modes" in r and "mode_kl" in r]
    assert evaluations[-1]["step"] == trainer_step and evaluations[-1]["modes"] >= 2
    assert all(r["modes"] < 2 for r in evaluations[:-1])
    # The same command with --resume goes on: the next evaluation meets the target again.
    assert main([*cmd, "--resume"]) == 0
    again = checkpoint.latest(run / "checkpoints")["step"]
    assert again == trainer_step + 100
    # ... and with a target it cannot reach, to the end.
    assert main([*cmd[:-4], "--target", "modes>8", "--eval-every", "100", "--resume",
                 "--steps", str(again + 100)]) == 0
    assert checkpoint.latest(run / "checkpoints")["step"] == again + 100
    assert gankit.resume_config(run).train.target == "modes>8"
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1]).get("event") is None


def test_time_budget_stops_with_a_checkpoint_and_resumes_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A clock that moves one second per reading: the budget of 30 s runs out after a few steps.
    clock = iter(range(10**9))
    monkeypatch.setattr("gankit.training.trainer.time.perf_counter", lambda: float(next(clock)))
    cfg = tiny("classic", steps=40, log_every=4, checkpoint_every=8)
    gankit.train(cfg, out=tmp_path / "a", progress=False)  # the clock has no say without a budget
    trainer = gankit.train(cfg.replace(train={"time_limit": 30.0}), out=tmp_path / "b",
                           progress=False)
    assert trainer.stopped is not None and trainer.stopped[0] == "time"
    stopped_at = trainer.step
    assert 0 < stopped_at < 40
    assert final_state(tmp_path / "b")["step"] == stopped_at
    assert [e["reason"] for e in events(tmp_path / "b")] == ["time"]
    monkeypatch.undo()
    resumed = gankit.resume_config(tmp_path / "b")
    gankit.train(resumed.replace(train={"time_limit": 0.0}), out=tmp_path / "b", resume=True,
                 progress=False)
    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    for key in ("G", "D", "G_ema", "opt_g", "opt_d", "rng"):
        assert_same(a[key], b[key], key)


def test_time_budget_from_the_command_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", *RING, "--steps", "100000", "--out", str(run), "--time", "2s"]) == 0
    step = checkpoint.latest(run / "checkpoints")["step"]
    assert 0 < step < 100000
    assert main(["train", *RING, "--steps", str(step + 50), "--out", str(run), "--resume"]) == 0
    assert checkpoint.latest(run / "checkpoints")["step"] == step + 50


def test_target_on_a_metric_the_run_does_not_have_is_said(tmp_path: Path) -> None:
    cfg = gankit.resolve("mixture", overrides=["model.clusters=0", "reg.pack=2",
                                               "train.log_every=5", "eval.num=100"],
                         values={"data": {"source": "ring8"},
                                 "train": {"steps": 10, "target": "fd=3"}, "eval": {"every": 5}})
    trainer: Trainer = gankit.prepare(cfg, tmp_path / "run")
    trainer.fit(progress=False)
    assert trainer.step == 10 and trainer.stopped is None
    assert any("not among this run's metrics" in w for w in trainer.target_notes)

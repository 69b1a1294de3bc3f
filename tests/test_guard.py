"""The divergence guard: injected NaNs, an exploding learning rate and collapse are rolled back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

import gankit
from gankit import runlog
from gankit.cli import main
from gankit.config import Config, resolve
from gankit.errors import ConfigError, DivergedError
from gankit.training import checkpoint
from gankit.training.trainer import Trainer

TINY = {"steps": 12, "batch_size": 16, "log_every": 2, "sample_every": 100,
        "checkpoint_every": 3, "grid_size": 4, "threads": 1}


def tiny(guard: dict[str, Any] | None = None, **train: Any) -> Config:
    return resolve("classic", values={"train": {**TINY, **train}, "guard": guard or {}})


def inject(monkeypatch: pytest.MonkeyPatch, at: set[int], harm: Any) -> list[int]:
    """Call ``harm(trainer)`` right after each step in ``at`` (each once); returns steps hit."""
    real = Trainer.train_step
    hit: list[int] = []

    def step(self: Trainer) -> None:
        real(self)
        if self.step in at and self.step not in hit:
            hit.append(self.step)
            harm(self)

    monkeypatch.setattr(Trainer, "train_step", step)
    return hit


def nan_weight(trainer: Trainer) -> None:
    with torch.no_grad():
        next(trainer.G.parameters()).view(-1)[0] = float("nan")


def explode_lr(trainer: Trainer) -> None:
    for opt in (trainer.opt_g, trainer.opt_d):
        for group in opt.param_groups:
            group["lr"] = 1e6


def all_finite(state: dict[str, Any]) -> bool:
    return all(bool(torch.isfinite(v).all()) for key in ("G", "D", "G_ema")
               for v in state[key].values() if v.is_floating_point())


def events(run: Path) -> list[dict[str, Any]]:
    return [r for r in runlog.read(run / "metrics.jsonl") if "event" in r]


def test_injected_nan_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    hit = inject(monkeypatch, {7}, nan_weight)
    trainer = gankit.train(tiny(), out=out, progress=False)
    assert hit == [7] and trainer.step == 12
    state = checkpoint.latest(out / "checkpoints")
    assert state["step"] == 12 and all_finite(state)
    assert state["guard"]["retries"] == 1
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.5)
    assert state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.5)
    (event,) = events(out)
    assert event["event"] == "divergence" and event["reason"] == "non_finite"
    assert event["step"] == 8 and event["rollback_to"] == 6 and event["retry"] == 1
    assert event["action"] == "rollback" and event["lr_g"] == pytest.approx(1e-4)
    # Statistics: one record per logged step of the surviving history, every line strict JSON.
    steps = [r["step"] for r in runlog.read(out / "metrics.jsonl") if "event" not in r]
    assert steps == [2, 4, 6, 8, 10, 12]
    text = (out / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text


def test_exploding_learning_rate_is_rolled_back(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    inject(monkeypatch, {4}, explode_lr)
    cfg = tiny(steps=10)  # measured: losses reach 1e5..1e7, gradients vanish
    trainer = gankit.train(cfg, out=out, progress=False)
    assert trainer.step == 10
    evs = events(out)
    assert len(evs) >= 1 and all(e["action"] == "rollback" for e in evs)
    assert evs[0]["reason"] == "exploding" and "loss" in evs[0]["detail"]
    assert evs[0]["rollback_to"] == 3
    state = checkpoint.latest(out / "checkpoints")
    assert all_finite(state)
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.5 ** len(evs))


def test_persistent_divergence_stops_with_a_report(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    real = Trainer.train_step

    def always_nan(self: Trainer) -> None:
        real(self)
        if self.step % 4 == 3:
            nan_weight(self)

    monkeypatch.setattr(Trainer, "train_step", always_nan)
    code = main(["train", "--out", str(tmp_path / "run"), "--quiet", "--steps", "12",
                 "--batch-size", "16", "--set", "train.log_every=2", "--set",
                 "train.checkpoint_every=2", "--set", "train.threads=1",
                 "--set", "train.grid_size=4", "--set", "guard.max_retries=2"])
    assert code == 3
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("gankit: error: training diverged")
    assert "2 rollback(s)" in err and "metrics.jsonl" in err
    evs = events(tmp_path / "run")
    assert [e["action"] for e in evs] == ["rollback", "rollback", "stop"]
    assert [e["retry"] for e in evs] == [1, 2, 2]
    state = checkpoint.latest(tmp_path / "run" / "checkpoints")
    assert all_finite(state)  # the NaN weights were never checkpointed


def test_exploding_gradients_are_detected() -> None:
    cfg = tiny(guard={"grad_norm_max": 1e-3, "max_retries": 2}, steps=6)
    trainer = Trainer(cfg, gankit.load_data(cfg.data))
    with pytest.raises(DivergedError, match="grad_norm"):
        trainer.fit(progress=False)
    assert [e["action"] for e in trainer.guard.events] == ["rollback", "rollback", "stop"]
    assert trainer.guard.events[1]["lr_d"] == pytest.approx(2e-4 * 0.25)


@pytest.mark.parametrize("scaled", [False, True])
def test_overflowed_gradients_of_a_loss_scaler_are_not_a_divergence(scaled: bool) -> None:
    # fp16's scaler skips a step whose gradients overflowed and leaves them in place: with a
    # scaler at work, finite weights and losses, that is not a divergence (without one, it is)
    cfg = tiny(guard={"grad_norm_max": 1e3})
    trainer = Trainer(cfg, gankit.load_data(cfg.data))
    trainer.train_step()
    trainer.scaler_g = torch.amp.GradScaler("cpu", enabled=scaled)  # (fp16 needs CUDA)
    next(trainer.D.parameters()).grad.view(-1)[0] = float("inf")
    record = {"loss_d": 1.3, "loss_g": 0.7, "d_real": 0.5, "d_fake": 0.5}
    verdict = trainer.guard.check(trainer, record)
    assert verdict is None if scaled else verdict == ("non_finite", "grad_norm_d is inf")
    with torch.no_grad():  # a weight that is not finite is a divergence, scaler or not
        next(trainer.G.parameters()).view(-1)[0] = float("nan")
    assert trainer.guard.check(trainer, record) == ("non_finite", "weight_norm_g is nan")


def test_collapse_is_detected() -> None:
    # A learning rate of 1 makes D perfect within ~100 steps (measured: D(x) > 0.99).
    cfg = resolve("classic", values={
        "train": {**TINY, "steps": 400, "log_every": 20, "lr_g": 1.0, "lr_d": 1.0},
        "guard": {"collapse_steps": 60, "collapse_margin": 0.05, "max_retries": 1}})
    trainer = Trainer(cfg, gankit.load_data(cfg.data))
    with pytest.raises(DivergedError, match="collapse"):
        trainer.fit(progress=False)
    reasons = [e["reason"] for e in trainer.guard.events]
    assert reasons[0] == "collapse" and trainer.guard.retries == 1
    assert trainer.guard.events[0]["rollback_to"] == 0  # no checkpoints: back to the start


def test_no_rollback_without_trouble_and_guard_off(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny(steps=4)
    trainer = Trainer(cfg, gankit.load_data(cfg.data))
    trainer.fit(progress=False)
    assert trainer.guard.events == [] and trainer.guard.retries == 0
    inject(monkeypatch, {1}, nan_weight)
    off = Trainer(tiny({"enabled": False}, steps=4), gankit.load_data(cfg.data))
    off.fit(progress=False)  # nothing watches: the NaN stays
    assert off.guard.events == []
    assert not math.isfinite(float(next(off.G.parameters()).detach().sum()))


@pytest.mark.parametrize("key,value", [("max_retries", -1), ("lr_factor", 0.0),
                                       ("lr_factor", 1.5), ("grad_norm_max", -1.0),
                                       ("loss_max", float("inf")),
                                       ("collapse_steps", -5), ("collapse_margin", 0.5),
                                       ("enabled", "yes"), ("nope", 1)])
def test_guard_config_is_validated(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"guard.{key}"):
        resolve(values={"guard": {key: value}})


def test_rollback_raises_the_penalty_and_resume_keeps_it(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    hit = inject(monkeypatch, {5}, nan_weight)
    cfg = resolve("wgan-gp", values={"train": {**TINY, "steps": 8, "d_steps": 1},
                                     "model": {"base_channels": 4},
                                     "guard": {"penalty_factor": 3.0}})
    trainer = gankit.train(cfg, out=out, progress=False)
    assert hit == [5] and trainer.recipe.penalty_scale == pytest.approx(3.0)
    (event,) = events(out)
    assert event["penalty_scale"] == pytest.approx(3.0)
    resumed = gankit.prepare(gankit.resume_config(out, 10), out, resume=True)
    assert resumed.recipe.penalty_scale == pytest.approx(3.0)

"""Training through the Python API: run outputs, exact resume, determinism and sampling."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit.config import Config, load_toml_config, resolve
from gankit.data.base import Dataset
from gankit.errors import RunError
from gankit.training import checkpoint
from gankit.training.trainer import Trainer

TINY = {"steps": 6, "batch_size": 16, "log_every": 2, "sample_every": 3, "checkpoint_every": 3,
        "grid_size": 9, "threads": 1}
STATS = ("loss_d", "loss_g", "d_real", "d_fake")


def tiny(preset: str = "classic", **train: Any) -> Config:
    return resolve(preset, values={"train": {**TINY, **train}})


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Recursive bitwise equality (torch.equal, same dtype) of two checkpoint states."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(map(str, a)) == sorted(map(str, b)), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}/{i}")
    else:
        assert a == b, where


def count_tensors(state: Any) -> int:
    if isinstance(state, torch.Tensor):
        return 1
    if isinstance(state, dict):
        return sum(count_tensors(v) for v in state.values())
    if isinstance(state, list):
        return sum(count_tensors(v) for v in state)
    return 0


def metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def final_state(run: Path) -> dict[str, Any]:
    state = checkpoint.latest(run / "checkpoints")
    assert state is not None
    return state


# -- outputs of a run ---------------------------------------------------------------------------


def test_run_outputs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = tiny()
    trainer = gankit.train(cfg, out=out, progress=False)
    assert trainer.step == 6
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "config.toml",
                                                     "metrics.jsonl", "samples"]
    assert load_toml_config(out / "config.toml") == cfg

    records = metrics(out)
    assert [r["step"] for r in records] == [2, 4, 6]
    for r in records:
        assert {"step", "time", *STATS, "steps_per_s", "images_per_s"} <= set(r)
        assert all(math.isfinite(r[k]) for k in STATS)
        assert r["loss_d"] > 0 and r["loss_g"] > 0
        assert 0.0 <= r["d_real"] <= 1.0 and 0.0 <= r["d_fake"] <= 1.0
        assert r["steps_per_s"] >= 0

    pngs = sorted((out / "samples").iterdir())
    assert [p.name for p in pngs] == ["step-000000003.png", "step-000000006.png"]
    side = (3 * (28 + 2) + 2) * 2  # 3x3 grid of 28px tiles, 2px padding, drawn at scale 2
    for p in pngs:
        with Image.open(p) as im:
            im.load()
            assert im.format == "PNG" and im.size == (side, side) and im.mode == "L"
            assert np.asarray(im).std() > 0

    assert checkpoint.list_steps(out / "checkpoints") == [3, 6]
    state = final_state(out)
    assert state["step"] == 6 and state["image_shape"] == [1, 28, 28]
    assert state["G_ema"] is not None
    assert state["acc_steps"] == 0  # logged at the last step


def test_train_without_writing(tmp_path: Path) -> None:
    data = gankit.load_data(tiny().data)
    trainer = Trainer(tiny(steps=3), data, run_dir=None)
    trainer.fit(progress=False)
    assert trainer.step == 3
    images = trainer.generate(torch.randn(4, 100))
    assert images.shape == (4, 1, 28, 28) and float(images.abs().max()) <= 1.0


def test_progress_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gankit.train(tiny(steps=4), out=tmp_path / "run", progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "4/4" in err and "loss_D" in err


# -- exact resume -------------------------------------------------------------------------------


def run_to(out: Path, cfg: Config, stop: int) -> None:
    """Train ``cfg`` to ``stop`` steps, then resume the same run to ``cfg.train.steps``."""
    gankit.train(cfg.replace(train={"steps": stop}), out=out, progress=False)
    assert final_state(out)["step"] == stop
    resumed = gankit.resume_config(out, cfg.train.steps)
    assert resumed == cfg
    trainer = gankit.train(resumed, out=out, resume=True, progress=False)
    assert trainer.step == cfg.train.steps


def interrupt_at(step: int, cfg: Config, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train ``cfg`` into ``out`` until a KeyboardInterrupt right after step ``step``."""
    real_step = Trainer.train_step

    def interrupted(self: Trainer) -> None:
        real_step(self)
        if self.step == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gankit.train(cfg, out=out, progress=False)
    monkeypatch.setattr(Trainer, "train_step", real_step)


@pytest.mark.parametrize("preset", ["classic", "seed"])
def test_exact_resume(tmp_path: Path, preset: str) -> None:
    # checkpoint_every=3 divides neither the stop step (4) nor the end (10).
    cfg = tiny(preset, steps=10)
    gankit.train(cfg, out=tmp_path / "a", progress=False)
    run_to(tmp_path / "b", cfg, 4)

    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert a["step"] == b["step"] == 10
    for key in ("G", "D", "G_ema", "opt_g", "opt_d", "rng", "acc", "acc_steps"):
        assert key in a
    if preset == "classic":
        assert a["G_ema"] is not None
        assert any("parametrizations" in k for k in a["D"])  # spectral norm vectors included
    else:
        assert a["G_ema"] is None
    assert len(a["opt_g"]["state"]) > 0 and len(a["opt_d"]["state"]) > 0
    assert count_tensors(a) > 20
    assert_same(a, b)

    # The resumed run logged every step once, with the same statistics as the unbroken run.
    ma, mb = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert [r["step"] for r in mb] == [r["step"] for r in ma] == [2, 4, 6, 8, 10]
    for ra, rb in zip(ma, mb, strict=True):
        assert {k: ra[k] for k in STATS} == {k: rb[k] for k in STATS}

    # Samples and checkpoints are on the same schedule.
    assert sorted(p.name for p in (tmp_path / "b" / "samples").iterdir()) == [
        "step-000000003.png", "step-000000004.png", "step-000000006.png",
        "step-000000009.png", "step-000000010.png"]
    assert checkpoint.list_steps(tmp_path / "b" / "checkpoints") == [9, 10]
    for name in ("step-000000006.png", "step-000000009.png", "step-000000010.png"):
        assert (tmp_path / "a" / "samples" / name).read_bytes() == \
            (tmp_path / "b" / "samples" / name).read_bytes()


def test_exact_resume_relativistic_pair_with_r1_and_r2(tmp_path: Path) -> None:
    # The stacked preset's recipe (pairs of packed samples, R1 and R2 on alternate steps, a
    # hidden layer in D's head) on the built-in digits: an interrupted run resumes bit for bit.
    cfg = resolve("pacgan", values={"train": {**TINY, "steps": 6}, "loss": {
        "name": "relativistic_pair"}, "reg": {"r1_gamma": 1.0, "r2_gamma": 1.0, "r1_every": 2},
        "model": {"d_head": [16]}})
    gankit.train(cfg, out=tmp_path / "a", progress=False)
    run_to(tmp_path / "b", cfg, 3)
    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert a["step"] == 6
    assert_same(a, b)


def test_exact_resume_when_stop_is_off_the_log_schedule(tmp_path: Path) -> None:
    # Stop at 5 with log_every=2: the forced log at the stop step changes how statistics are
    # averaged, but weights, moments and RNG state must still match bitwise.
    cfg = tiny("classic", steps=9, log_every=2, checkpoint_every=4)
    gankit.train(cfg, out=tmp_path / "a", progress=False)
    run_to(tmp_path / "b", cfg, 5)
    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert a["step"] == 9
    for key in ("G", "D", "G_ema", "opt_g", "opt_d", "rng"):
        assert_same(a[key], b[key], key)
    steps = [r["step"] for r in metrics(tmp_path / "b")]
    assert steps == sorted(set(steps)) and steps[-1] == 9  # no duplicates, in order
    assert steps == [2, 4, 5, 6, 8, 9]


def test_exact_resume_after_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny("classic", steps=8, checkpoint_every=100, sample_every=100)
    gankit.train(cfg, out=tmp_path / "a", progress=False)

    interrupt_at(5, cfg, tmp_path / "b", monkeypatch)
    assert checkpoint.list_steps(tmp_path / "b" / "checkpoints") == [5]
    assert final_state(tmp_path / "b")["acc_steps"] == 1  # step 5 not yet logged

    gankit.train(gankit.resume_config(tmp_path / "b"), out=tmp_path / "b", resume=True,
                 progress=False)
    assert_same(final_state(tmp_path / "a"), final_state(tmp_path / "b"))
    ma, mb = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert [r["step"] for r in mb] == [2, 4, 6, 8]
    assert [{k: r[k] for k in STATS} for r in ma] == [{k: r[k] for k in STATS} for r in mb]


def test_resume_drops_metrics_after_checkpoint(tmp_path: Path) -> None:
    cfg = tiny("seed", steps=6)
    out = tmp_path / "run"
    gankit.train(cfg, out=out, progress=False)
    # Pretend a crash left records beyond the last checkpoint, and a torn last line.
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 8, "loss_d": 1.0}) + "\n")
        f.write('{"step": 10, "loss')
    gankit.train(gankit.resume_config(out, 10), out=out, resume=True, progress=False)
    steps = [r["step"] for r in metrics(out)]
    assert steps == [2, 4, 6, 8, 10]
    assert metrics(out)[3]["loss_d"] != 1.0


def test_resume_needs_a_run(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="--resume"):
        gankit.train(tiny(), out=tmp_path / "nothing", resume=True, progress=False)


def test_existing_run_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "run"
    gankit.train(tiny(steps=2), out=out, progress=False)
    before = (out / "metrics.jsonl").read_bytes()
    with pytest.raises(RunError, match="already holds a run"):
        gankit.train(tiny(steps=2), out=out, progress=False)
    assert (out / "metrics.jsonl").read_bytes() == before


def test_resume_config(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = tiny(steps=2)
    gankit.train(cfg, out=out, progress=False)
    assert gankit.resume_config(out) == cfg
    assert gankit.resume_config(out, 50) == cfg.replace(train={"steps": 50})


# -- determinism --------------------------------------------------------------------------------


def weights_after(cfg: Config, data: Dataset, global_seed: int) -> dict[str, Any]:
    torch.manual_seed(global_seed)  # the global RNG must not matter
    trainer = Trainer(cfg, data)
    trainer.fit(progress=False)
    return trainer.state()


@pytest.mark.parametrize("preset", ["classic", "seed"])
def test_same_seed_same_weights(preset: str) -> None:
    cfg = tiny(preset, steps=4)
    data = gankit.load_data(cfg.data)
    a = weights_after(cfg, data, 1)
    b = weights_after(cfg, data, 2)
    assert_same(a, b)
    c = weights_after(cfg.replace(train={"seed": 1}), data, 1)
    for key in ("G", "D"):
        for name in a[key]:
            if name.endswith("_u") or name.endswith("_v"):
                continue
            assert not torch.equal(a[key][name], c[key][name]), f"{key}.{name}"


def test_data_is_scaled_to_the_output_range() -> None:
    for preset, (lo, hi) in (("classic", (-1.0, 1.0)), ("seed", (0.0, 1.0))):
        cfg = tiny(preset)
        trainer = Trainer(cfg, gankit.load_data(cfg.data))
        assert trainer.value_range == (lo, hi)
        assert float(trainer.x.min()) == lo and float(trainer.x.max()) == hi


# -- loading and sampling -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def classic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("classic") / "run"
    gankit.train(tiny("classic", steps=6), out=out, progress=False)
    return out


def test_load_run_and_sample(classic_run: Path) -> None:
    run = gankit.load_run(classic_run)
    assert run.step == 6 and run.path == classic_run
    assert run.config == load_toml_config(classic_run / "config.toml")
    assert run.value_range == (-1.0, 1.0)
    images = run.sample(7, seed=3)
    assert images.dtype == np.uint8 and images.shape == (7, 28, 28, 1)
    assert images.std() > 0
    np.testing.assert_array_equal(images, gankit.load_run(classic_run).sample(7, seed=3))
    assert not np.array_equal(images, run.sample(7, seed=4))
    assert run.sample(0).shape == (0, 28, 28, 1)


def test_ema_and_raw_generators_differ(classic_run: Path) -> None:
    ema, raw = gankit.load_run(classic_run), gankit.load_run(classic_run, ema=False)
    assert not np.array_equal(ema.sample(16, seed=0), raw.sample(16, seed=0))
    state = final_state(classic_run)
    g_ema = {k: v for k, v in ema.generator.state_dict().items()}
    for k, v in g_ema.items():
        assert torch.equal(v, state["G_ema"][k])
    for k, v in raw.generator.state_dict().items():
        assert torch.equal(v, state["G"][k])


def test_sample_matches_trainer_generator(tmp_path: Path) -> None:
    out = tmp_path / "run"
    trainer = gankit.train(tiny("seed", steps=3), out=out, progress=False)
    run = gankit.load_run(out)
    assert run.value_range == (0.0, 1.0)
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(4, 100, generator=gen)
    expected = (trainer.generate(z) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(run.sample(4, seed=5), expected)
    # Without EMA both choices give the raw generator.
    np.testing.assert_array_equal(gankit.load_run(out, ema=False).sample(4, seed=5), expected)


def test_load_run_errors(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not found"):
        gankit.load_run(tmp_path / "missing")
    with pytest.raises(RunError, match="no config.toml"):
        gankit.load_run(tmp_path)
    (tmp_path / "config.toml").write_text("[train]\nsteps = 3\n")
    with pytest.raises(RunError, match="no checkpoint"):
        gankit.load_run(tmp_path)


# -- learning-rate decay ------------------------------------------------------------------------


def test_lr_decay_schedule_and_exact_resume(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny("mixture", steps=10, lr_decay=0.5).replace(data={"source": "ring8"})
    trainer = Trainer(cfg, gankit.load_data(cfg.data))
    scales = []
    for _ in range(10):
        scales.append(trainer.lr_scale())
        trainer.train_step()
        assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(cfg.train.lr_g * scales[-1])
        assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(cfg.train.lr_d * scales[-1])
    assert scales == pytest.approx([1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    # The schedule follows the run's total steps, so a run interrupted at 7 resumes exactly.
    gankit.train(cfg, out=tmp_path / "a", progress=False)
    interrupt_at(7, cfg, tmp_path / "b", monkeypatch)
    gankit.train(gankit.resume_config(tmp_path / "b"), out=tmp_path / "b", resume=True,
                 progress=False)
    assert_same(final_state(tmp_path / "a"), final_state(tmp_path / "b"))


def test_lr_decay_is_off_by_default() -> None:
    for preset in gankit.presets():
        assert resolve(preset).train.lr_decay == 0.0 or preset.startswith("mixture") \
            or preset == "stacked"
    trainer = Trainer(tiny(), gankit.load_data(tiny().data))
    trainer.train_step()
    assert trainer.opt_g.param_groups[0]["lr"] == tiny().train.lr_g

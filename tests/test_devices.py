"""train.device and GPU precision: validation, the --devices flag, and (with CUDA) training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import gankit
from gankit.cli import main
from gankit.config import resolve
from gankit.errors import ConfigError
from gankit.training import checkpoint, devices, fast
from gankit.training.distributed import World
from gankit.training.trainer import Trainer

TINY = {"steps": 4, "batch_size": 16, "log_every": 2, "sample_every": 4, "checkpoint_every": 2,
        "grid_size": 9, "threads": 1}
CLI = ["--steps", "2", "--batch-size", "8", "--quiet", "--set", "train.threads=1",
       "--set", "train.grid_size=4"]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_values(device: str) -> None:
    assert resolve("classic", overrides=[f"train.device={device}"]).train.device == device


@pytest.mark.parametrize("device", ["gpu", "CUDA", "cuda:", "cuda:-1", "cuda:x", "cpu:0", "",
                                    "cuda:0\n", "mps"])
def test_bad_device_values(device: str) -> None:
    with pytest.raises(ConfigError, match="train.device must be auto, cpu, cuda or cuda:N"):
        resolve("classic", values={"train": {"device": device}})


def test_precision_values() -> None:
    for precision in ("fp32", "bf16", "fp16", "auto"):
        assert resolve("classic", values={"train": {"precision": precision}})
    with pytest.raises(ConfigError, match="train.precision must be one of"):
        resolve("classic", values={"train": {"precision": "fp8"}})


def test_auto_precision_is_fp32_on_gpus() -> None:
    # Measured on an H100: bf16 autocast slowed the shipped presets' small networks down.
    assert fast.resolve_precision("auto", "cuda") == "fp32"
    assert fast.resolve_precision("auto", "cuda:1") == "fp32"
    assert fast.resolve_precision("bf16", "cuda") == "bf16"
    cpu = "bf16" if fast.cpu_bf16() else "fp32"
    assert fast.resolve_precision("auto", "cpu") == cpu


def test_fp16_on_cpu_is_refused() -> None:
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve("classic", values={"train": {"precision": "fp16", "device": "cpu"}})


@no_cuda
def test_fp16_with_auto_device_refused_at_construction() -> None:
    cfg = resolve("classic", values={"train": {**TINY, "precision": "fp16"}})
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        Trainer(cfg, gankit.load_data(cfg.data))


def test_resolve_device() -> None:
    assert devices.resolve("cpu") == torch.device("cpu")
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert devices.resolve("auto") == expected
    # auto under torchrun: a rank without a GPU of its own trains on the CPU.
    assert devices.resolve("auto", World(3, 4, 3 + devices.cuda_count())).type == "cpu"
    # ...and so does every rank of a machine with fewer GPUs than processes (no mixed devices).
    n = devices.cuda_count()
    assert devices.resolve("auto", World(0, n + 1, 0, n + 1)).type == "cpu"
    if n:
        assert devices.resolve("auto", World(0, n, 0, n)) == torch.device("cuda", 0)


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_one_clear_error(device: str) -> None:
    with pytest.raises(ConfigError, match=f"train.device={device} but no CUDA device"):
        devices.resolve(device)


def test_autocast_and_scaler_levers() -> None:
    assert isinstance(fast.autocast("fp32", "cuda:0"), type(fast.autocast("fp32")))
    with fast.autocast("bf16", torch.device("cpu")):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert not fast.grad_scaler("fp32", "cpu").is_enabled()
    assert not fast.grad_scaler("bf16", torch.device("cpu")).is_enabled()


def test_devices_cpu_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--devices", "cpu", "--out", str(run), *CLI]) == 0
    assert 'device = "cpu"' in (run / "config.toml").read_text()
    assert checkpoint.latest(run / "checkpoints")["step"] == 2
    # The device may change on resume (here to auto); the math config may not.
    assert main(["train", "--resume", "--out", str(run), "--steps", "3", "--devices", "auto",
                 "--quiet"]) == 0
    assert gankit.resume_config(run).train.device == "auto"
    assert checkpoint.latest(run / "checkpoints")["step"] == 3
    capsys.readouterr()


def test_bad_devices_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--devices", "gpu0", "--out", str(tmp_path / "run"), *CLI]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.device must be auto, cpu, cuda or cuda:N" in err


@no_cuda
def test_devices_cuda_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--devices", "cuda", "--out", str(run), *CLI]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "gankit: error: train.device=cuda but no CUDA device is available\n"
    assert not (run / "config.toml").exists()  # refused before the run directory is written


def finite(state: dict[str, Any]) -> bool:
    return all(torch.isfinite(v).all() for key in ("G", "D") for v in state[key].values()
               if v.is_floating_point())


@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_training_and_resume(tmp_path: Path, precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    cfg = resolve("dcgan", values={"train": {**TINY, "device": "cuda", "precision": precision},
                                   "model": {"base_channels": 8}})
    trainer = gankit.train(cfg.replace(train={"steps": 2}), out=tmp_path / "run", progress=False)
    assert trainer.device.type == "cuda" and trainer.precision == precision
    assert next(trainer.G.parameters()).is_cuda and trainer.x.is_cuda
    state = checkpoint.latest(tmp_path / "run" / "checkpoints")
    assert state is not None and finite(state)
    assert ("scalers" in state) == (precision == "fp16")
    # Resume on the GPU, and on the CPU (not fp16) from the same checkpoint format.
    resumed = gankit.train(gankit.resume_config(tmp_path / "run", 4), out=tmp_path / "run",
                           resume=True, progress=False)
    assert resumed.step == 4 and next(resumed.G.parameters()).is_cuda
    if precision == "fp16":
        assert resumed.scaler_g.get_scale() > 0
    else:
        cpu = gankit.train(gankit.resume_config(tmp_path / "run", 5, "cpu"), out=tmp_path / "run",
                           resume=True, progress=False)
        assert cpu.step == 5 and cpu.device.type == "cpu"
    final = checkpoint.latest(tmp_path / "run" / "checkpoints")
    assert final is not None and finite(final)
    assert gankit.load_run(tmp_path / "run").sample(4).shape[0] == 4

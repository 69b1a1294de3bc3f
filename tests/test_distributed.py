"""Training under torchrun on gloo (CPU): rank 0 writes, ranks agree with one process, resume
across world sizes, a failed rank ends the job. Each torchrun job takes a few seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from gankit.cli import main
from gankit.errors import ConfigError
from gankit.training import checkpoint, distributed

from .test_trainer import metrics

WORKER = Path(__file__).with_name("torchrun_worker.py")
TINY = ["--batch-size", "16", "--set", "model.g_hidden=[16]", "--set", "model.d_hidden=[16]",
        "--set", "train.log_every=1", "--set", "train.checkpoint_every=3",
        "--set", "train.sample_every=3", "--set", "train.grid_size=4",
        "--set", "train.threads=1", "--set", 'train.precision="fp32"', "--quiet"]
# fp32: under bf16 a batch split across ranks rounds differently from one process's batch.
SHARED = [*TINY, "--set", "train.shared_draws=true"]  # ranks draw one process's batches


def torchrun(n: int, *args: str, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess:
    """``gankit train`` in ``n`` processes on gloo, on a free port."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={n}", str(WORKER), "train", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)


def weights(run: Path) -> dict[str, Any]:
    state = checkpoint.latest(run / "checkpoints")
    assert state is not None
    return state


def assert_close(a: Any, b: Any, where: str = "", atol: float = 1e-5) -> None:
    """Recursive equality of two checkpoint states, tensors within float tolerance."""
    if isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, where
        if a.is_floating_point():
            diff = (a - b).abs().max().item() if a.numel() else 0.0
            assert diff <= atol, f"{where}: max difference {diff:.3g}"
        else:
            assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert sorted(map(str, a)) == sorted(map(str, b)), where
        for k in a:
            assert_close(a[k], b[k], f"{where}/{k}", atol)
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{where}/{i}", atol)
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=atol), where
    else:
        assert a == b, where


def trained(state: dict[str, Any]) -> dict[str, Any]:
    """What must match across world sizes: weights and optimizer moments (not the RNGs)."""
    return {k: state[k] for k in ("step", "G", "D", "G_ema", "opt_g", "opt_d")}


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-step run of 2 processes, drawing one process's batches (shared_draws)."""
    out = tmp_path_factory.mktemp("dist") / "two"
    done = torchrun(2, *SHARED, "--steps", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same config in one process, 6 steps (checkpoints at 3 and 6)."""
    out = tmp_path_factory.mktemp("dist") / "one"
    assert main(["train", *SHARED, "--steps", "6", "--out", str(out)]) == 0
    return out


def test_self_conditioned_two_processes_equal_one(tmp_path: Path) -> None:
    # Every rank trains on rank 0's clusters, so the ranks agree with a single process.
    args = [*SHARED, "--data", "ring8", "--set", "model.clusters=8", "--steps", "3"]
    done = torchrun(2, *args, "--out", str(tmp_path / "two"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["train", *args, "--out", str(tmp_path / "one")]) == 0
    two, one = weights(tmp_path / "two"), weights(tmp_path / "one")
    assert_close(trained(two), trained(one))
    assert torch.equal(two["centroids"], one["centroids"])


def test_rank0_writes_the_run_once(two: Path) -> None:
    assert sorted(p.name for p in two.iterdir()) == ["checkpoints", "config.toml",
                                                     "metrics.jsonl", "samples"]
    assert [r["step"] for r in metrics(two)] == [1, 2, 3]  # each step logged once, not per rank
    assert [p.name for p in (two / "samples").iterdir()] == ["step-000000003.png"]
    assert checkpoint.list_steps(two / "checkpoints") == [3]
    assert metrics(two)[0]["images_per_s"] > 0


def test_two_processes_equal_one(two: Path, one: Path) -> None:
    single = checkpoint.read(one / "checkpoints" / "step-000000003.json")
    assert_close(trained(weights(two)), trained(single))
    for a, b in zip(metrics(two), metrics(one)[:3], strict=True):  # statistics of the global batch
        for key in ("loss_d", "loss_g", "d_real", "d_fake"):
            assert a[key] == pytest.approx(b[key], abs=1e-4)


def test_resume_on_one_process(two: Path, one: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(two, run)
    assert main(["train", "--resume", "--out", str(run), "--steps", "6", "--quiet"]) == 0
    assert_close(trained(weights(run)), trained(weights(one)))


def test_resume_on_four_processes(two: Path, one: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(two, run)
    done = torchrun(4, "--resume", "--out", str(run), "--steps", "6", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert_close(trained(weights(run)), trained(weights(one)))
    assert [r["step"] for r in metrics(run)] == [1, 2, 3, 4, 5, 6]


def test_failed_rank_ends_the_job(tmp_path: Path) -> None:
    start = time.monotonic()
    done = torchrun(2, *TINY, "--steps", "100000", "--out", str(tmp_path / "run"),
                    env={"GANKIT_TEST_FAIL_RANK": "1"}, timeout=60)
    assert done.returncode != 0
    assert "rank 1 failed on purpose at step 3" in done.stderr
    assert time.monotonic() - start < 45  # seconds, startup of 3 Python processes included


# -- helpers, in one process ------------------------------------------------------------------


def test_rank_seeds_differ_per_rank_and_restart() -> None:
    seeds = [tuple(distributed.rank_seeds(0, r, s)) for r in (1, 2, 3) for s in (0, 100)]
    assert len(set(seeds)) == len(seeds)
    assert distributed.rank_seeds(5, 1, 0) == distributed.rank_seeds(5, 1, 0)


def test_split_of_the_global_batch() -> None:
    from gankit.config import resolve

    t = resolve("classic", values={"train": {"batch_size": 12}}).train
    assert distributed.split(t, distributed.World(0, 1)) == (12, 12, slice(None))
    assert distributed.split(t, distributed.World(1, 3)) == (4, 4, slice(None))
    shared = resolve("classic", values={"train": {"batch_size": 12, "shared_draws": True}}).train
    assert distributed.split(shared, distributed.World(2, 3)) == (4, 12, slice(8, 12))
    with pytest.raises(ConfigError, match="divisible"):
        distributed.split(t, distributed.World(0, 5))
    with pytest.raises(ConfigError, match="reg.pack"):
        distributed.split(t, distributed.World(0, 4), pack=2)


def test_single_process_world() -> None:
    assert distributed.current() == distributed.World(0, 1, 0)
    assert distributed.backend_for("cuda:1") == "cpu:gloo,cuda:nccl"
    assert distributed.backend_for("cpu") == "gloo"


def test_guard_rolls_back_every_rank_together(tmp_path: Path) -> None:
    # Every log step "explodes": both ranks roll back together twice, then stop with exit code 3.
    out = tmp_path / "run"
    done = torchrun(2, *TINY, "--steps", "6", "--set", "guard.loss_max=0.01",
                    "--set", "guard.max_retries=2", "--out", str(out), timeout=60)
    assert done.returncode != 0
    assert "training diverged at step 1" in done.stderr
    events = [r["event"] for r in metrics(out) if "event" in r]
    assert events == ["divergence", "divergence", "stopped"]

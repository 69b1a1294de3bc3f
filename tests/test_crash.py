"""Crash safety: SIGKILL at random moments (and inside checkpoint writes), then resume; SIGTERM.

The kill loop runs ``GANKIT_KILLS`` kills (CI: a few; ``make stress``: 20 and more). A training
process is either a real ``python -m gankit`` subprocess or, much cheaper, a fork of the test
process calling ``gankit.cli.main`` (the same code without the import time).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from gankit.cli import main
from gankit.fileio import is_temp
from gankit.training import checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# On the CPU: a forked child cannot use CUDA once its parent (this pytest worker) has.
ARGS = ["--devices", "cpu", "--batch-size", "16", "--set", "train.log_every=1",
        "--set", "train.sample_every=2", "--set", "train.checkpoint_every=1",
        "--set", "train.grid_size=4",
        "--set", "train.threads=1", "--set", "model.g_hidden=[32]", "--set", "model.d_hidden=[32]"]
RESUMING = re.compile(r"resuming at step (\d+)")


def kills(default: int) -> int:
    return int(os.environ.get("GANKIT_KILLS", default))


@dataclass
class Proc:
    """A training process: wait for it, kill it, read what it printed."""

    pid: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def poll(self) -> int | None:
        if self.popen is not None:
            return self.popen.poll()
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        self._status = os.waitstatus_to_exitcode(status)
        return self._status

    def wait(self, timeout: float = 120) -> int:
        end = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() > end:
                self.kill(signal.SIGKILL)
                raise AssertionError(f"process {self.pid} did not finish: {self.text()}")
            time.sleep(0.01)
        return code

    def kill(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def spawn_subprocess(argv: list[str], log: Path) -> Proc:
    with open(log, "wb") as f:
        p = subprocess.Popen([sys.executable, "-m", "gankit", *argv], stdout=f, stderr=f,
                             env=ENV)
    return Proc(p.pid, log, p)


def spawn_fork(argv: list[str], log: Path) -> Proc:
    if torch.cuda.is_initialized():  # seen on an H100 machine: forked children then failed
        pytest.skip("this process has used CUDA, and a forked child cannot rely on torch")
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its lazy imports: once, not per child
    log.touch()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            code = main(argv)
        except BaseException:  # what main let through: into the log, not swallowed by _exit
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    return Proc(pid, log)


SPAWNERS: dict[str, Callable[[list[str], Path], Proc]] = {
    "fork": spawn_fork, "subprocess": spawn_subprocess}


@dataclass
class Tally:
    kills: int = 0
    in_writes: int = 0  # kills with a checkpoint write in flight (a temporary file present)
    torn_lines: int = 0  # kills that left a torn last line in metrics.jsonl
    resumes: list[int] = field(default_factory=list)


def temps(folder: Path) -> set[str]:
    """Names of the temporary files in ``folder``."""
    try:
        return {n for n in os.listdir(folder) if is_temp(n)}
    except FileNotFoundError:
        return set()


def wait_for_write(folder: Path, timeout: float, stale: frozenset[str] = frozenset()) -> None:
    """Return as soon as a new temporary checkpoint file appears (or after ``timeout``)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if any(is_temp(n) and n not in stale for n in os.listdir(folder)):
                return
        except FileNotFoundError:
            pass
        time.sleep(0.0005)


def check_metrics(path: Path, tally: Tally) -> None:
    """Every line but the last is strict JSON; a torn last line is counted."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    for line in lines[:-1]:
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    if lines:
        try:
            json.loads(lines[-1])
            assert lines[-1].endswith("\n")
        except (json.JSONDecodeError, AssertionError):
            tally.torn_lines += 1


def kill_loop(tmp_path: Path, spawn: Callable[[list[str], Path], Proc], n: int,
              seed: int) -> Tally:
    rng = random.Random(seed)
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    tally = Tally()
    last_step = -1
    for i in range(n + 1):
        final = i == n
        latest = checkpoint.latest(ckpts)  # never raises: the newest pair is always whole
        if latest is not None:
            newest = checkpoint.list_steps(ckpts)[-1]
            checkpoint.read(ckpts / f"step-{newest:09d}.json")  # no fallback was needed
            assert latest["step"] == newest
        step = latest["step"] if latest else 0
        if (run / "config.toml").is_file():
            steps = str(step + 3) if final else "100000"
            argv = ["train", "--resume", "--out", str(run), "--steps", steps]
        else:
            argv = ["train", "--out", str(run), "--steps", "3" if final else "100000", *ARGS]
        stale = frozenset(temps(ckpts))  # left by the previous kill
        proc = spawn(argv, tmp_path / f"log-{i}.txt")
        if final:
            assert proc.wait() == 0, proc.text()
        else:
            mode = i % 3
            if mode == 0:  # inside a checkpoint write
                wait_for_write(ckpts, 30, stale)
            elif mode == 1:  # any time after training has started
                wait_for_write(ckpts, 30, stale)
                time.sleep(rng.uniform(0, 0.3))
            else:  # any time at all, start-up and first writes included
                time.sleep(rng.uniform(0, 1.0))
            in_write = bool(temps(ckpts) - stale)
            proc.kill(signal.SIGKILL)
            code = proc.wait()
            assert code in (-signal.SIGKILL, 0), proc.text()
            tally.kills += 1
            tally.in_writes += in_write
        if m := RESUMING.search(proc.text()):
            resumed = int(m.group(1))
            assert resumed == step and resumed >= last_step, "the step counter went back"
            last_step = resumed
            tally.resumes.append(resumed)
        check_metrics(run / "metrics.jsonl", tally)

    state = checkpoint.latest(ckpts)
    assert state is not None and state["step"] == last_step + 3
    if n >= 6:  # enough kills that training must have made progress between them
        assert last_step > 0 and len(set(tally.resumes)) > 1
    for key in ("G", "D", "G_ema"):
        assert all(bool(torch.isfinite(v).all()) for v in state[key].values()
                   if v.is_floating_point())
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == state["step"]
    assert not [p for p in run.rglob("*") if is_temp(p.name)]  # crash leftovers cleaned
    return tally


def report(mode: str, tally: Tally) -> None:
    print(f"\n[kill loop {mode}] kills survived: {tally.kills}, during checkpoint writes: "
          f"{tally.in_writes}, torn metrics lines: {tally.torn_lines}, resumed at: "
          f"{tally.resumes}", file=sys.stderr)


def test_kill_loop_forked(tmp_path: Path) -> None:
    tally = kill_loop(tmp_path, spawn_fork, kills(9), seed=1)
    report("fork", tally)
    assert tally.kills == kills(9) and tally.in_writes >= 1


def test_kill_loop_subprocess(tmp_path: Path) -> None:
    tally = kill_loop(tmp_path, spawn_subprocess, kills(1), seed=2)
    report("subprocess", tally)
    assert tally.kills == kills(1)


@pytest.mark.parametrize("sig,mode", [(signal.SIGTERM, "subprocess"), (signal.SIGINT, "fork")])
def test_stop_signal_saves_and_says_how_to_resume(tmp_path: Path, sig: int, mode: str) -> None:
    run = tmp_path / "run"
    proc = SPAWNERS[mode](["train", "--out", str(run), "--steps", "100000", *ARGS],
                          tmp_path / "log.txt")
    wait_for_write(run / "checkpoints", 60)
    proc.kill(sig)
    assert proc.wait() == 128 + sig
    last = proc.text().strip().splitlines()[-1]
    name = signal.Signals(sig).name
    m = re.fullmatch(rf"gankit: stopped by {name}; checkpoint saved at step (\d+); "
                     rf"resume with: gankit train --resume --out {re.escape(str(run))}", last)
    assert m, proc.text()
    step = int(m.group(1))
    assert checkpoint.latest(run / "checkpoints")["step"] == step
    again = spawn_fork(["train", "--resume", "--out", str(run), "--steps", str(step + 2)],
                       tmp_path / "log2.txt")
    assert again.wait() == 0, again.text()
    assert f"resuming at step {step}" in again.text()
    assert checkpoint.latest(run / "checkpoints")["step"] == step + 2

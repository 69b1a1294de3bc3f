"""Runs: create or resume a run directory, train, load a finished run, sample from it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import data as data_sources
from . import models
from .config import Config, load_toml_config, to_toml
from .errors import ConfigError, RunError
from .fileio import atomic_write_bytes
from .training import checkpoint
from .training.trainer import Trainer


def default_out() -> Path:
    """``runs/<timestamp>`` under the current folder."""
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def is_run(path: Path) -> bool:
    """Whether ``path`` is a gankit run directory."""
    return (path / "config.toml").is_file()


def check_out(out: Path, resume: bool) -> None:
    """Refuse an output folder that would be damaged or is not what the user meant."""
    if resume:
        if not is_run(out):
            raise RunError(f"--resume needs an existing run directory, and {out} is not one")
        return
    if out.exists() and not out.is_dir():
        raise RunError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if is_run(out):
            raise RunError(f"{out} already holds a run: pass --resume to continue it, "
                           "or choose another --out")
        raise RunError(f"output folder {out} exists, is not empty and is not a gankit run")


def _prepare(out: Path, cfg: Config) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(exist_ok=True)
        (out / "checkpoints").mkdir(exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot create run directory {out}: {e.strerror or e}") from None
    atomic_write_bytes(out / "config.toml", to_toml(cfg).encode())


def _repair_metrics(path: Path, step: int) -> None:
    """Drop a torn last line and records after ``step`` (they are logged again)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("step", 0) <= step:
            keep.append(line)
    atomic_write_bytes(path, "".join(x + "\n" for x in keep).encode())


def resume_config(out: Path, steps: int | None = None) -> Config:
    """The config of the run in ``out``, with a new total step count if given."""
    cfg = load_toml_config(out / "config.toml")
    return cfg.replace(train={"steps": steps}) if steps is not None else cfg


def prepare(cfg: Config, out: Path | None = None, resume: bool = False) -> Trainer:
    """Check ``out``, load the data, build (or restore) the trainer and write the run directory.

    With ``resume`` the run in ``out`` continues from its latest checkpoint, bitwise as if it
    had never stopped; ``cfg`` is then normally ``resume_config(out, steps)``.
    """
    out = Path(out) if out is not None else default_out()
    check_out(out, resume)
    dataset = data_sources.build(cfg.data)
    trainer = Trainer(cfg, dataset, run_dir=out)
    state = checkpoint.latest(out / "checkpoints") if resume else None
    if state is not None:
        try:
            trainer.load_state(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise RunError(f"checkpoint in {out} does not fit its config: {e}") from None
    _prepare(out, cfg)
    _repair_metrics(out / "metrics.jsonl", trainer.step)
    return trainer


def train(cfg: Config, out: Path | None = None, resume: bool = False,
          progress: bool = True) -> Trainer:
    """Train ``cfg`` into run directory ``out`` (a new ``runs/<timestamp>`` if None).

    See ``prepare`` for ``resume``. Returns the trainer, finished.
    """
    trainer = prepare(cfg, out, resume)
    trainer.fit(progress=progress)
    return trainer


@dataclass
class Run:
    """A run directory opened for reading."""

    path: Path
    config: Config
    step: int
    generator: nn.Module
    num_classes: int = 0  # > 0 for a conditional generator

    @property
    def value_range(self) -> tuple[float, float]:
        """The generator's output range."""
        return models.output_range(self.config.model)

    def labels(self, num: int, label: int | None = None) -> torch.Tensor | None:
        """Class labels for ``num`` samples: all ``label``, or (None) the classes in order, in
        equal runs, so a grid of ``grid_columns(num)`` columns has one row per class.

        None for an unconditional run; ConfigError for a class it cannot make.
        """
        k = self.num_classes
        if not k:
            if label is not None:
                raise ConfigError(f"run {self.path} is not conditional: it has no classes")
            return None
        if label is not None:
            if not 0 <= label < k:
                raise ConfigError(f"class {label} is not one of the run's classes 0..{k - 1}")
            return torch.full((num,), label, dtype=torch.int64)
        return torch.arange(num) // self.grid_columns(num)

    def grid_columns(self, num: int) -> int:
        """Columns for a grid of ``num`` samples: one row per class if conditional, else 0
        (a square grid)."""
        return max(1, -(-num // self.num_classes)) if self.num_classes else 0

    @torch.no_grad()
    def sample(self, num: int, seed: int = 0, label: int | None = None,
               labels: torch.Tensor | None = None) -> np.ndarray:
        """``num`` generated images as uint8 (N, H, W, C), reproducible from ``seed``.

        Conditional runs: all of class ``label``, the given ``labels`` (N,), or by default the
        classes in order (see ``labels``).
        """
        from .images import to_uint8

        if labels is None:
            labels = self.labels(num, label)
        elif not self.num_classes:
            raise ConfigError(f"run {self.path} is not conditional: it has no classes")
        gen = torch.Generator().manual_seed(seed)
        chunks = []
        for start in range(0, num, 1024):
            n = min(1024, num - start)
            z = torch.randn(n, self.config.model.latent_dim, generator=gen)
            y = None if labels is None else labels[start:start + n]
            chunks.append(to_uint8(self.generator(z, y), self.value_range))
        if not chunks:
            c, h, w = self.generator.image_shape
            return np.zeros((0, h, w, c), dtype=np.uint8)
        return np.concatenate(chunks)


def load_run(path: str | Path, ema: bool = True) -> Run:
    """Open a run directory: its config and the generator of its latest checkpoint.

    The moving-average generator is used when the run has one and ``ema`` is True.
    """
    p = Path(path)
    if not p.is_dir():
        raise RunError(f"run directory {p} not found")
    if not is_run(p):
        raise RunError(f"{p} is not a gankit run directory (no config.toml)")
    cfg = load_toml_config(p / "config.toml")
    state = checkpoint.latest(p / "checkpoints")
    if state is None:
        raise RunError(f"run {p} has no checkpoint yet")
    shape = _image_shape(state)
    num_classes = int(state.get("num_classes", 0))
    g, _ = models.build(cfg.model, shape, num_classes)
    key = "G_ema" if ema and state.get("G_ema") is not None else "G"
    try:
        g.load_state_dict(state[key])
    except (KeyError, RuntimeError) as e:
        raise RunError(f"checkpoint in {p} does not fit its config: {e}") from None
    return Run(path=p, config=cfg, step=int(state["step"]), generator=g.eval(),
               num_classes=num_classes)


def _image_shape(state: dict) -> tuple[int, int, int]:
    shape = state.get("image_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) for v in shape)):
        raise RunError("checkpoint does not record the image shape")
    return int(shape[0]), int(shape[1]), int(shape[2])

"""Runs: create or resume a run directory, train, load a finished run, sample from it."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import config as configs
from . import kinds, models, runlog
from .clusters import draw_labels
from .conditioning import Conditioning
from .config import Config, load_toml_config, to_toml
from .data.base import Dataset
from .errors import ConfigError, RunError
from .fileio import atomic_write_bytes, is_temp, remove_temps
from .training import checkpoint, distributed
from .training.trainer import Trainer, derive_seeds
from .untrusted import refuse_pickle


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
    if out.is_dir() and any(not is_temp(p.name) for p in out.iterdir()):
        if is_run(out):
            raise RunError(f"{out} already holds a run: pass --resume to continue it, "
                           "or choose another --out")
        raise RunError(f"output folder {out} exists, is not empty and is not a gankit run")


CODEC = "codec.json"  # a table run's fitted codec (plain JSON)


def _prepare(out: Path, cfg: Config, codec: Any = None) -> None:
    # config.toml first: a crash before it leaves a folder that a new start may still use.
    try:
        out.mkdir(parents=True, exist_ok=True)
        remove_temps(out)
        if codec is not None and hasattr(codec, "to_json"):
            atomic_write_bytes(out / CODEC, json.dumps(codec.to_json(), indent=1).encode())
        atomic_write_bytes(out / "config.toml", to_toml(cfg).encode())
        for sub in ("samples", "checkpoints"):
            (out / sub).mkdir(exist_ok=True)
            remove_temps(out / sub)
    except OSError as e:
        raise RunError(f"cannot create run directory {out}: {e.strerror or e}") from None


def resume_config(out: Path, steps: int | None = None, device: str | None = None) -> Config:
    """The config of the run in ``out``, with a new total step count and device if given.

    The device may change on resume: it changes where the math runs, not what it is.
    """
    cfg = load_toml_config(out / "config.toml")
    train = {k: v for k, v in (("steps", steps), ("device", device)) if v is not None}
    return cfg.replace(train=train) if train else cfg


# What a resuming command may change: how long and where the run trains, not what it trains.
RESUME_MAY_CHANGE = ("steps", "device", "target", "time_limit", "tensorboard")
CHANGEABLE = "--steps, --devices, --target, --time and --tensorboard"


def same_run(stored: Config, preset: str | None = None, file: str | Path | None = None,
             overrides: Sequence[str] = (), values: dict | None = None) -> Config:
    """``stored`` (a run's config) with the values a resuming command gives, read as ``resolve``
    reads them: each must equal the stored value, except those of ``RESUME_MAY_CHANGE``
    (``train.steps``, ``device``, ``target``, ``time_limit``), which are taken. A value that
    differs raises ConfigError naming its key and both values.
    """
    user = configs.read_toml(file) if file is not None else {}
    named = preset if preset is not None else user.get("preset")
    if named is not None and named != stored.preset:
        raise ConfigError(f"preset differs from the run being resumed (the run has "
                          f"{json.dumps(stored.preset)}, this command gives {json.dumps(named)}); "
                          f"only {CHANGEABLE} can change")
    given: dict = {k: v for k, v in user.items() if k != "preset"}
    for text in overrides:
        given = configs.merge(given, configs.parse_override(text))
    given = configs.merge(given, {s: {k: v for k, v in kv.items() if v is not None}
                          for s, kv in (values or {}).items()})
    ours = configs.to_dict(stored)
    theirs = configs.to_dict(configs.from_dict(configs.merge(ours, given)))  # checked as typed
    taken = {}
    for section, keys in given.items():
        for key in keys:
            if section == "train" and key in RESUME_MAY_CHANGE:
                taken[key] = theirs[section][key]
            elif theirs[section][key] != ours[section][key]:
                raise ConfigError(
                    f"{section}.{key} differs from the run being resumed (the run has "
                    f"{json.dumps(ours[section][key])}, this command gives "
                    f"{json.dumps(theirs[section][key])}); only {CHANGEABLE} can change")
    return stored.replace(train=taken) if taken else stored


def prepare(cfg: Config, out: Path | None = None, resume: bool = False,
            dataset: Dataset | None = None) -> Trainer:
    """Check ``out``, load the data, build (or restore) the trainer and write the run directory.

    With ``resume`` the run in ``out`` continues from its latest checkpoint, bitwise as if it
    had never stopped; ``cfg`` is then normally ``resume_config(out, steps)``. ``dataset``
    replaces loading ``cfg.data`` (in-memory data, e.g. a DataFrame).

    Under torchrun only rank 0 reads and writes ``out``; the other ranks get rank 0's checkpoint
    from it and their trainers write nothing (``run_dir`` None).
    """
    world = distributed.current()
    out = Path(out) if out is not None else default_out()
    if world.main:
        check_out(out, resume)
    stored = read_codec(out) if resume and world.main else None
    if resume:
        stored = distributed.broadcast_object(stored, world)
    if dataset is None:
        dataset = kinds.of_source(cfg.data).load(cfg.data, stored)
    trainer = Trainer(cfg, dataset, run_dir=out if world.main else None)
    state = checkpoint.latest(out / "checkpoints") if resume and world.main else None
    if resume:
        state = distributed.broadcast_object(state, world)
    if state is not None:
        try:
            trainer.load_state(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise RunError(f"checkpoint in {out} does not fit its config: {e}") from None
    if world.main:
        _prepare(out, trainer.cfg, dataset.codec)  # its length resolved (train.steps = 0)
        runlog.truncate(out / "metrics.jsonl", trainer.step)
    return trainer


def read_codec(run: Path) -> dict[str, Any] | None:
    """The codec stored in run directory ``run`` as JSON values (None when it has none)."""
    path = run / CODEC
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"cannot read {path}: {e}") from None


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
    num_classes: int = 0  # > 0 for a conditioned generator: classes, or clusters
    label_share: torch.Tensor | None = None  # each label's share of the training data
    codec: Any = None  # a table run's codec
    conditioning: Conditioning | None = None  # a table run's condition vectors

    @property
    def kind(self) -> kinds.Kind:
        """The kind of data the run makes."""
        kind = kinds.of_codec(self.codec.to_json()) if self.codec is not None else None
        if kind is not None:
            return kind
        return kinds.get("images" if self.is_image else "points")

    @property
    def value_range(self) -> tuple[float, float]:
        """The generator's output range."""
        return models.output_range(self.config.model)

    @property
    def self_conditioned(self) -> bool:
        """Whether the generator is conditioned on clusters of the data (not on classes)."""
        return self.config.model.clusters > 0

    def labels(self, num: int, label: int | None = None, seed: int = 0) -> torch.Tensor | None:
        """Labels for ``num`` samples: all ``label``; or (None) for a class-conditional run the
        classes in order, in equal runs, so a grid of ``grid_columns(num)`` columns has one row
        per class; for a self-conditioned run, clusters drawn at their share of the data (from
        ``seed``).

        None for an unconditional run; ConfigError for a class it cannot make.
        """
        k = self.num_classes
        if not k:
            if label is not None:
                raise ConfigError(f"run {self.path} is not conditional: it has no classes")
            return None
        if label is not None:
            kind = "clusters" if self.self_conditioned else "classes"
            if not 0 <= label < k:
                raise ConfigError(f"class {label} is not one of the run's {kind} 0..{k - 1}")
            return torch.full((num,), label, dtype=torch.int64)
        if self.self_conditioned:
            return self.draw_labels(num, seed)
        return torch.arange(num) // self.grid_columns(num)

    def draw_labels(self, num: int, seed: int = 0) -> torch.Tensor:
        """``num`` labels drawn at their share of the training data (uniform for checkpoints
        that do not record it), reproducible from ``seed``."""
        share = self.label_share
        if share is None:
            share = torch.full((self.num_classes,), 1.0 / self.num_classes)
        gen = torch.Generator().manual_seed(derive_seeds(seed, 1)[0])
        return draw_labels(share, num, gen)

    def grid_columns(self, num: int) -> int:
        """Columns for a grid of ``num`` samples: one row per class if class-conditional, else
        0 (a square grid)."""
        if not self.num_classes or self.self_conditioned:
            return 0
        return max(1, -(-num // self.num_classes))

    @torch.no_grad()
    def generate(self, num: int, seed: int = 0,
                 labels: torch.Tensor | None = None) -> torch.Tensor:
        """``num`` raw generator outputs (N, *shape) in its output range, from ``seed``.

        A conditioned run draws its labels at their share of the data unless ``labels`` are
        given.
        """
        if labels is None and self.num_classes:
            labels = self.draw_labels(num, seed)
        elif labels is None and self.conditioning is not None:
            cond_gen = torch.Generator().manual_seed(derive_seeds(seed, 1)[0])
            labels = self.conditioning.sample(num, cond_gen)
        gen = torch.Generator().manual_seed(seed)
        chunks = [torch.empty(0, *self.generator.image_shape)]
        for start in range(0, num, 1024):
            n = min(1024, num - start)
            z = torch.randn(n, self.generator.latent_dim, generator=gen)
            y = None if labels is None else labels[start:start + n]
            chunks.append(self.generator(z, y))
        return torch.cat(chunks)

    @property
    def is_image(self) -> bool:
        """Whether the run generates images (else points)."""
        return len(self.generator.image_shape) == 3

    @torch.no_grad()
    def sample(self, num: int, seed: int = 0, label: int | None = None,
               labels: torch.Tensor | None = None) -> np.ndarray:
        """``num`` generated samples, reproducible from ``seed``: images as uint8 (N, H, W, C),
        points as float32 (N, D).

        Conditional runs: all of class ``label``, the given ``labels`` (N,), or by default the
        classes in order (see ``labels``).
        """
        from .images import to_uint8

        if labels is None:
            labels = self.labels(num, label, seed)
        elif not self.num_classes:
            raise ConfigError(f"run {self.path} is not conditional: it has no classes")
        x = self.generate(num, seed, labels)
        return to_uint8(x, self.value_range) if self.is_image else x.numpy().astype(np.float32)


def load_run(path: str | Path, ema: bool = True) -> Run:
    """Open a run directory: its config and the generator of its latest checkpoint.

    The moving-average generator is used when the run has one and ``ema`` is True.
    """
    p = Path(path)
    refuse_pickle(p, "run")
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
    share = state.get("label_share")
    if share is not None and not (tuple(share.shape) == (num_classes,) and num_classes
                                  and bool(torch.isfinite(share).all())
                                  and bool((share >= 0).all()) and float(share.sum()) > 0):
        raise RunError(f"checkpoint in {p} records invalid label shares for its "
                       f"{num_classes} labels")
    kind = kinds.of_codec(read_codec(p)) or kinds.of_source(cfg.data)
    codec, cond = kind.sampling(p, cfg)  # a table's codec and condition vectors
    heads, cond_dim = kind.layout(codec, cfg.model) if codec is not None else (None, 0)
    try:
        g, _ = models.build(cfg.model, shape, num_classes, heads=heads, cond_dim=cond_dim)
    except ConfigError as e:
        raise RunError(f"run {p} cannot be rebuilt: {e}") from None
    key = "G_ema" if ema and state.get("G_ema") is not None else "G"
    try:
        g.load_state_dict(state[key])
    except (KeyError, RuntimeError) as e:
        raise RunError(f"checkpoint in {p} does not fit its config: {e}") from None
    return Run(path=p, config=cfg, step=int(state["step"]), generator=kind.settled(g, cond),
               num_classes=num_classes, label_share=share, codec=codec, conditioning=cond)


def _image_shape(state: dict) -> tuple[int, ...]:
    shape = state.get("image_shape")
    if not (isinstance(shape, list) and len(shape) in (1, 3)
            and all(isinstance(v, int) for v in shape)):
        raise RunError("checkpoint does not record the sample shape")
    return tuple(int(v) for v in shape)

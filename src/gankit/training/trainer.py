"""The training loop: D step(s), G step, EMA; logs, sample grids and checkpoints of a run."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import models, runlog
from ..config import Config
from ..data.base import Dataset
from ..fileio import atomic_write_bytes
from ..images import sample_png
from ..losses import LOSSES
from . import checkpoint
from .evaluation import Evaluator
from .guard import Guard, weights_finite
from .progress import Progress

STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake")


def derive_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 63-bit seeds derived from one."""
    words = np.random.SeedSequence(seed).generate_state(n, dtype=np.uint64)
    return [int(w) >> 1 for w in words]


class Trainer:
    """Trains a generator against a discriminator on in-memory data, writing to ``run_dir``.

    With ``run_dir`` None nothing is written. All randomness comes from generators owned by the
    trainer (model init, data indices, noise), so a run is fully determined by its config.
    """

    def __init__(self, cfg: Config, data: Dataset, run_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        t, m = cfg.train, cfg.model
        init_seed, data_seed, noise_seed, fixed_seed = derive_seeds(t.seed, 4)
        self.image_shape = data.shape
        self.value_range = models.output_range(m)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            self.G, self.D = models.build(m, self.image_shape)
        self.G_ema: nn.Module | None = None
        if t.ema > 0:
            self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        lo, hi = self.value_range
        self.x = (data.images * (hi - lo) + lo).contiguous()
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr_g, betas=t.betas_g,
                                      foreach=True)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr_d, betas=t.betas_d,
                                      foreach=True)
        self.d_loss, self.g_loss = LOSSES[cfg.loss.name]
        self.gen_data = torch.Generator().manual_seed(data_seed)
        self.gen_noise = torch.Generator().manual_seed(noise_seed)
        self.fixed_z = torch.randn(t.grid_size, m.latent_dim,
                                   generator=torch.Generator().manual_seed(fixed_seed))
        self.evaluator = Evaluator(cfg, data, derive_seeds(t.seed, 5)[4])
        self.step = 0
        self._acc = torch.zeros(len(STAT_NAMES))
        self._acc_steps = 0
        self.guard = Guard(cfg.guard)
        self.stop_requested = False

    # -- one step ---------------------------------------------------------------------------

    def _noise(self) -> torch.Tensor:
        return torch.randn(self.cfg.train.batch_size, self.cfg.model.latent_dim,
                           generator=self.gen_noise)

    def train_step(self) -> None:
        """One iteration: ``d_steps`` discriminator updates, one generator update, EMA."""
        b = self.cfg.train.batch_size
        if self.cfg.train.lr_decay > 0:
            self._decay_lr()
        for _ in range(self.cfg.train.d_steps):
            real = self.x[torch.randint(self.x.shape[0], (b,), generator=self.gen_data)]
            with torch.no_grad():
                fake = self.G(self._noise())
            logits = self.D(torch.cat([real, fake]))
            real_logits, fake_logits = logits[:b], logits[b:]
            loss_d = self.d_loss(real_logits, fake_logits, self.cfg.loss.real_label)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()

        self.D.requires_grad_(False)
        loss_g = self.g_loss(self.D(self.G(self._noise())))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)

        if self.G_ema is not None:
            self._update_ema()
        with torch.no_grad():
            self._acc += torch.stack([loss_d.detach(), loss_g.detach(),
                                      torch.sigmoid(real_logits).mean(),
                                      torch.sigmoid(fake_logits).mean()])
        self._acc_steps += 1
        self.step += 1

    def lr_scale(self) -> float:
        """The schedule's factor on both learning rates for the coming step.

        1 until the last ``train.lr_decay`` share of the steps, then falling linearly to
        1/(decay steps) at the last step. A pure function of the step, so resume is exact.
        """
        t = self.cfg.train
        span = t.lr_decay * t.steps
        return 1.0 if span <= 0 else min(1.0, (t.steps - self.step) / span)

    def _decay_lr(self) -> None:
        # The guard's rollbacks scale the configured rates by lr_factor ** retries; keep that.
        scale = self.lr_scale() * self.guard.cfg.lr_factor ** self.guard.retries
        for opt, lr in ((self.opt_g, self.cfg.train.lr_g), (self.opt_d, self.cfg.train.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Warm-up: early on the average follows the generator closely, then settles at cfg.ema.
        decay = min(self.cfg.train.ema, (1.0 + self.step) / (10.0 + self.step))
        ema_params = list(self.G_ema.parameters())
        torch._foreach_lerp_(ema_params, list(self.G.parameters()), 1.0 - decay)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)

    # -- the loop -----------------------------------------------------------------------------

    def fit(self, progress: bool = True) -> None:
        """Train until ``train.steps``; log, sample and checkpoint on schedule.

        On KeyboardInterrupt, or at the end of the step in which ``request_stop`` was called, a
        checkpoint is saved (unless the weights are not finite) and KeyboardInterrupt propagates.
        The guard checks each log step and may roll back (see ``guard.py``).
        """
        t = self.cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        bar = Progress(t.steps, enabled=progress)
        self._clock = (time.perf_counter(), self.step)
        self.G.train()
        self.D.train()
        self.guard.start(self)
        try:
            while self.step < t.steps:
                self.train_step()
                last = self.step == t.steps
                if self.step % t.log_every == 0 or last:
                    record = self._log()
                    if self._rolled_back(record, bar):
                        continue
                    bar.update(self.step, record)
                if self.run_dir is not None and (self.step % t.sample_every == 0 or last):
                    self.save_samples()
                if self.run_dir is not None and self.evaluator.due(self.step, last):
                    self.evaluator(self)
                if self.run_dir is not None and (self.step % t.checkpoint_every == 0 or last):
                    if self._rolled_back(None, bar):  # never checkpoint broken weights
                        continue
                    self.save_checkpoint()
                if self.stop_requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            if self.run_dir is not None and self.step > 0 and weights_finite(self):
                self.save_checkpoint()
            raise
        bar.close()

    def request_stop(self) -> None:
        """Ask ``fit`` to stop cleanly at the end of the current step (signal-handler safe)."""
        self.stop_requested = True

    def _rolled_back(self, record: dict[str, Any] | None, bar: Progress) -> bool:
        """Let the guard check (see ``Guard.watch``); True when it rolled the run back."""
        message = self.guard.watch(self, record)
        if message is None:
            return False
        bar.message(f"gankit: {message}")
        self._clock = (time.perf_counter(), self.step)
        return True

    def _log(self) -> dict[str, Any]:
        now = time.perf_counter()
        t0, s0 = self._clock
        self._clock = (now, self.step)
        rate = (self.step - s0) / max(now - t0, 1e-9)
        means = (self._acc / max(1, self._acc_steps)).tolist()
        self._acc.zero_()
        self._acc_steps = 0
        record: dict[str, Any] = {"step": self.step, "time": time.time()}
        record.update({k: round(v, 6) for k, v in zip(STAT_NAMES, means, strict=True)})
        record["steps_per_s"] = round(rate, 2)
        record["images_per_s"] = round(rate * self.cfg.train.batch_size, 1)
        if self.run_dir is not None:
            runlog.append(self.run_dir / "metrics.jsonl", record)
        return record

    # -- outputs ------------------------------------------------------------------------------

    @property
    def sampler(self) -> nn.Module:
        """The generator used for samples: the moving average when enabled."""
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images from noise ``z`` with the sampling generator, in its output range."""
        g = self.sampler
        was_training = g.training
        g.eval()
        out = g(z)
        g.train(was_training)
        return out

    def save_samples(self) -> Path:
        """Write the grid (or scatter plot) of the fixed noise batch to ``samples/step-N.png``."""
        assert self.run_dir is not None
        folder = self.run_dir / "samples"
        folder.mkdir(exist_ok=True)
        path = folder / f"step-{self.step:09d}.png"
        atomic_write_bytes(path, sample_png(self.generate(self.fixed_z), self.value_range, self.x))
        return path

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimizer moments, RNG states."""
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": {"data": self.gen_data.get_state(), "noise": self.gen_noise.get_state()},
            "acc": self._acc, "acc_steps": self._acc_steps,
            "image_shape": list(self.image_shape),
            "guard": self.guard.state_dict(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a state written by ``state()`` (as read back from a checkpoint)."""
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.gen_data.set_state(state["rng"]["data"])
        self.gen_noise.set_state(state["rng"]["noise"])
        self._acc = state["acc"].clone()
        self._acc_steps = int(state["acc_steps"])
        self.step = int(state["step"])
        self.guard.load_state_dict(state.get("guard"))

    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the current step to ``checkpoints/``."""
        assert self.run_dir is not None
        return checkpoint.save(self.run_dir / "checkpoints", self.step, self.state(),
                               keep=self.cfg.train.keep_checkpoints)

"""The training loop: D step(s), G step, EMA; logs, sample grids and checkpoints of a run."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import kinds, models, runlog
from ..conditioning import Conditioning, Labels
from ..config import Config, ModelConfig
from ..data.base import Dataset
from ..errors import ConfigError
from ..fileio import atomic_write_bytes
from ..metrics.goals import GOALS, parse_target
from ..recipe import Recipe
from ..ship.tensorboard import board
from . import checkpoint, devices, distributed, fast, fused, graphed
from .collapse import CollapseWatch
from .evaluation import Evaluator
from .guard import Guard, weights_finite
from .progress import Progress

STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake")
PRETRAIN_BETAS = (0.9, 0.999)  # Adam's betas in MLE pre-training (train.pretrain_steps)
PRETRAIN_CLIP = 5.0  # the gradient norm MLE pre-training clips to (as the CharLM baseline)


def _count(module: nn.Module) -> int:
    """How many parameters ``module`` has."""
    return sum(p.numel() for p in module.parameters())


def derive_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 63-bit seeds derived from one."""
    words = np.random.SeedSequence(seed).generate_state(n, dtype=np.uint64)
    return [int(w) >> 1 for w in words]


def auto_precision(trainer: Trainer) -> str:
    """``train.precision=auto`` where it resolved to mixed precision: that precision if the
    fused step trains this config at it, else fp32 if the fused step trains it in fp32, else the
    mixed precision it resolved to (the generic step under autocast).

    Measured on a CPU with bf16 units (AVX-512-BF16 and AMX, one thread, BENCHMARKS.md): the
    fused fp32 step of ``classic`` at batch 128 took 9.8 ms against bf16 autocast's generic step
    21.8 ms; the fused step's own bf16 products are faster still where it takes them.
    """
    if fused.unsupported(trainer, trainer.precision) is None:
        return trainer.precision
    return "fp32" if fused.unsupported(trainer, "fp32") is None else trainer.precision


def sized(cfg: Config, data: Dataset) -> Config:
    """``cfg`` with its length in steps and its pack size, where ``train.steps = 0`` and
    ``reg.pack = 0`` leave them to the data kind."""
    kind, rows = kinds.get(data.kind), len(data.samples)
    if not cfg.train.steps:
        steps = kind.steps_for(rows, cfg.train.batch_size)
        if steps is None:
            raise ConfigError(f"train.steps=0 leaves the length to the data, and {data.kind} "
                              f"have no length of their own; give a number of steps")
        cfg = cfg.replace(train={"steps": steps})
    if not cfg.reg.pack:
        pack = kind.pack_for(rows)
        if pack is None:
            raise ConfigError(f"reg.pack=0 leaves packing to the data, and {data.kind} have no "
                              f"pack size of their own; give one (1: no packing)")
        if cfg.train.batch_size % pack:
            raise ConfigError(f"reg.pack=0 packs {pack} rows of {data.kind} of this size, which "
                              f"does not divide train.batch_size={cfg.train.batch_size}")
        cfg = cfg.replace(reg={"pack": pack})
    return cfg


class Trainer:
    """Trains a generator against a discriminator on in-memory data, writing to ``run_dir``.

    With ``run_dir`` None nothing is written. All randomness comes from generators owned by the
    trainer (model init, data indices, noise), so a run is fully determined by its config.
    They draw on the CPU and the draws move to ``train.device``, so a run draws the same batches,
    noise and initial weights on any device.
    """

    def __init__(self, cfg: Config, data: Dataset, run_dir: Path | None = None) -> None:
        self.cfg = cfg = sized(cfg, data)
        self.run_dir = run_dir
        t, m = cfg.train, cfg.model
        (init_seed, data_seed, noise_seed, fixed_seed, aug_seed, eval_seed, cluster_seed,
         watch_seed) = derive_seeds(t.seed, 8)
        # Under torchrun: this rank's share of the batch, and its own random streams.
        self.world = distributed.current()
        self.device = devices.resolve(t.device, self.world)
        self.precision = fast.resolve_precision(t.precision, self.device.type)
        if self.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError(f"train.precision=fp16 needs a CUDA device, and train.device="
                              f"{t.device} is the CPU here; use bf16 or fp32")
        self.batch, self.draw, self.part = distributed.split(t, self.world, cfg.reg.pack)
        if self.world.rank and not t.shared_draws:
            data_seed, noise_seed, aug_seed = distributed.rank_seeds(t.seed, self.world.rank)
        self.data = data
        self.kind = kinds.get(data.kind)
        self.image_shape = data.shape  # the shape of one sample (the name is historical)
        self.value_range = models.output_range(m)
        self.num_classes = m.clusters or (data.num_classes if m.conditional else 0)
        heads, cond_dim = self.kind.layout(data.codec, m)  # a table's heads and conditions
        self._build = (init_seed, heads, cond_dim)  # what ``_rebuild_d`` builds D from
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            self.G, self.D = models.build(m, self.image_shape, self.num_classes, cfg.reg.pack,
                                          heads, cond_dim)
        self.G.to(self.device)
        self.D.to(self.device)
        # A D with few parameters beside G's: the guard's wider_d remedy applies to it
        self.small_d = (models.as_wide_as_g(m) is not None
                        and _count(self.D) < cfg.guard.wider_d_below * _count(self.G))
        self.d_wide = False  # whether D is the wider_d remedy's
        self.G_ema: nn.Module | None = None
        if t.ema > 0:
            self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        if self.world.size > 1:
            distributed.broadcast_modules([self.G, self.D, self.G_ema])
        lo, hi = self.value_range
        self.x = (data.samples.to(self.device) * (hi - lo) + lo).contiguous()
        if t.channels_last and self.x.ndim == 4 and m.family != "mlp":
            self.x = fast.channels_last(self.x, self.G, self.D, self.G_ema)
        self.cond: Conditioning = self.kind.conditioning(cfg, data, self.x, cluster_seed,
                                                         self.device)
        if isinstance(self.cond, Labels) and self.cond.centroids is not None \
                and self.world.size > 1:  # every rank: rank 0's clusters
            centroids = distributed.broadcast_tensor(self.cond.centroids, self.world,
                                                     self.device)
            self.cond.relabel(self.x, centroids)
        self.opt_g = fast.adam(self.G.parameters(), t.lr_g, t.betas_g, t.fused_adam)
        self.opt_d = fast.adam(self.D.parameters(), t.lr_d, t.betas_d, t.fused_adam)
        # MLE pre-training of G (train.pretrain_steps, RelGAN): its own Adam, used only then
        self._anneal = getattr(self.G, "anneal", None)  # G's per-step schedule, if it has one
        self.opt_pre = (fast.adam(self.G.parameters(), t.pretrain_lr, PRETRAIN_BETAS,
                                  t.fused_adam) if t.pretrain_steps else None)
        self.scaler_g = fast.grad_scaler(self.precision, self.device)
        self.scaler_d = fast.grad_scaler(self.precision, self.device)
        self.recipe = Recipe(cfg)
        self.gen_data = torch.Generator().manual_seed(data_seed)
        self.gen_noise = torch.Generator().manual_seed(noise_seed)
        self.gen_aug = torch.Generator().manual_seed(aug_seed)  # augmentation, noise, GP mixing
        # The grid of samples/: one row per class for class-conditional models; clusters are
        # drawn at their share of the data, as samples are.
        self.grid_cols = (max(1, t.grid_size // self.num_classes)
                          if m.conditional and self.num_classes else 0)
        self.fixed_y = (torch.arange(self.num_classes).repeat_interleave(self.grid_cols)
                        if self.grid_cols else None)
        n_fixed = len(self.fixed_y) if self.fixed_y is not None else t.grid_size
        fixed_gen = torch.Generator().manual_seed(fixed_seed)
        # G's noise: model.latent_dim, and for tables one Gumbel draw per category (G.latent_dim)
        self.noise_dim = int(self.G.latent_dim)
        self.fixed_z = torch.randn(n_fixed, self.noise_dim, generator=fixed_gen).to(self.device)
        if not self.grid_cols:  # clusters and table conditions: drawn at their shares
            self.fixed_y = self.cond.sample(n_fixed, fixed_gen)
        if self.fixed_y is not None:
            self.fixed_y = self.fixed_y.to(self.device)
        self.evaluator = Evaluator(cfg, data, eval_seed, self.cond, self.noise_dim)
        self.target = parse_target(t.target) if t.target else None
        self.target_notes: list[str] = []
        self.step = 0
        self._acc = torch.zeros(len(STAT_NAMES), device=self.device)
        self._acc_steps = 0
        self.guard = Guard(cfg.guard)
        self.watch = CollapseWatch(self, watch_seed)
        self.board = board(cfg, run_dir)  # train.tensorboard: RUN/tb/ mirrors the run's records
        self.stop_requested = False
        self.notices: list[str] = []  # what a step reports once (``fit`` prints it)
        self._stop_agreed = False  # under torchrun: whether any rank asked to stop this step
        # The fused step where the config allows it (training/fused.py), else the generic one;
        # on CUDA either is captured as a CUDA graph where it can be (training/graphed.py).
        if t.precision == "auto" and self.precision != "fp32":
            self.precision = auto_precision(self)
        self._ema_weight: torch.Tensor | None = None  # the EMA's weight, held by a graphed step
        # gradients zeroed in place, not freed (a graphed step's: the tensors it writes stay
        # the ones the guard reads)
        self._static_grads = False
        self.graph_refused: str | None = None  # why this run's CUDA graph was dropped, if it was
        self._build_step()

    # -- one step ---------------------------------------------------------------------------

    def draw_noise(self) -> torch.Tensor:
        """This rank's part of one batch of G's noise, on the host (from ``gen_noise``)."""
        return torch.randn(self.draw, self.noise_dim, generator=self.gen_noise)[self.part]

    def _noise(self) -> torch.Tensor:
        return devices.upload(self.draw_noise(), self.device)

    def penalty_due(self) -> bool:
        """Whether this step's D loss takes R1 or R2 (every ``reg.r1_every`` steps)."""
        r = self.recipe.reg
        return (r.r1_gamma > 0 or r.r2_gamma > 0) and self.step % r.r1_every == 0

    def train_step(self) -> None:
        """One iteration: ``d_steps`` discriminator updates, one generator update, EMA (in
        the first ``train.pretrain_steps``: one step of MLE pre-training instead)."""
        if self.pretraining:
            return self.pretrain_step()
        if self._fused is not None:
            return self._fused()
        if self._graphed is not None:
            return self._graphed()
        self.eager_step()

    def eager_step(self) -> None:
        """One iteration of the generic step as written (not replayed from a CUDA graph)."""
        t = self.cfg.train
        if self._anneal is not None:  # a generator with a schedule of its own (text)
            self._anneal(self.step, t)
        if t.lr_decay > 0:
            self.set_rates()
        b = self.draw  # this rank's share of the batch is [self.part] of it
        self._acc += self.generic_step(
            lambda: self.cond.batch(b, self.gen_data, self.part, self.device), self._noise)
        self._acc_steps += 1
        self.step += 1

    def generic_step(self, batch: Callable[[], tuple[torch.Tensor, torch.Tensor | None]],
                     noise: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The generic step's updates (autograd over the modules, one Adam per player) and
        the EMA, on the batches and noise the two functions give (in the order they are
        drawn); returns the step's statistics (D's loss, G's loss, D's mean outputs)."""
        t, r = self.cfg.train, self.recipe
        # With one D step, G's step reuses the batch D just saw (as the textbook loop does):
        # one generator forward pass per step instead of two.
        reuse = t.reuse_fake and t.d_steps == 1
        for _ in range(t.d_steps):
            idx, y = batch()
            # index_select: the same rows as self.x[idx], 5x faster on the CPU (measured)
            real = self.x.index_select(0, idx)
            with fast.autocast(self.precision, self.device):
                with torch.set_grad_enabled(reuse):
                    fake = self.G(noise(), y)  # generated with the real batch's labels
                loss_d, real_logits, fake_logits = r.d_loss(self.D, real, fake.detach(), y,
                                                            self.step, self.gen_aug)
            self.opt_d.zero_grad(set_to_none=not self._static_grads)
            self.scaler_d.scale(loss_d).backward()
            if self.world.size > 1:  # scaled gradients: every rank then skips or steps alike
                self._stop_agreed = distributed.average_grads(
                    self.D.parameters(), self.world, self.stop_requested)
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()

        self.D.requires_grad_(False)
        with fast.autocast(self.precision, self.device):
            if not reuse:
                fake = self.G(noise(), y)
            loss_g = r.g_loss(self.D, fake, real, y, self.step, self.gen_aug)
            extra = self.cond.penalty(fake, y)  # e.g. a table's conditioned category
            if extra is not None:
                loss_g = loss_g + extra
        self.opt_g.zero_grad(set_to_none=not self._static_grads)
        self.scaler_g.scale(loss_g).backward()
        if self.world.size > 1:
            distributed.average_grads(self.G.parameters(), self.world)
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        self.D.requires_grad_(True)

        if self.G_ema is not None:
            self._update_ema()
        with torch.no_grad():
            return torch.stack([loss_d.detach(), loss_g.detach(),
                                torch.sigmoid(real_logits).mean(),
                                torch.sigmoid(fake_logits).mean()])

    def pretrain_step(self) -> None:
        """One step of MLE pre-training: G alone, by its teacher-forced next-token
        cross-entropy (``G.nll``) on a real batch; the loss is logged as ``loss_mle``."""
        if self.cfg.train.pretrain_lr_final < 1.0:
            self.set_rates()
        idx, _ = self.cond.batch(self.draw, self.gen_data, self.part, self.device)
        real = self.x.index_select(0, idx)
        with fast.autocast(self.precision, self.device):
            loss = self.G.nll(self._noise(), real)
        self.opt_pre.zero_grad(set_to_none=True)
        self.scaler_g.scale(loss).backward()
        if self.world.size > 1:
            distributed.average_grads(self.G.parameters(), self.world)
        self.scaler_g.unscale_(self.opt_pre)
        nn.utils.clip_grad_norm_(self.G.parameters(), PRETRAIN_CLIP)
        self.scaler_g.step(self.opt_pre)
        self.scaler_g.update()
        if self.G_ema is not None:
            self._update_ema()
        with torch.no_grad():
            self._acc[1] += loss.detach()
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

    def pretrain_lr_scale(self) -> float:
        """The factor on ``train.pretrain_lr`` for the coming step: 1 at the first step of
        pre-training, falling linearly to ``train.pretrain_lr_final`` at its last. A pure
        function of the step, so resume is exact."""
        t = self.cfg.train
        done = min(self.step, t.pretrain_steps - 1) / max(1, t.pretrain_steps - 1)
        return 1.0 - (1.0 - t.pretrain_lr_final) * done

    def set_rates(self) -> tuple[float, float]:
        """Set both optimizers' learning rates for the coming step; returns (lr_g, lr_d).

        The configured rates times the schedule (``lr_scale``) times the guard's cut after its
        rollbacks so far (``Guard.lr_scale``), each at most the guard's cap after its collapse
        rate cuts (``Guard.lr_cap``) times the schedule. G's pre-training rate, if it has one,
        takes the guard's cut too (a rollback into pre-training retries it slower).
        """
        cut, schedule = self.guard.lr_scale(), self.lr_scale()
        scale, cap = schedule * cut, self.guard.lr_cap() * schedule
        rates = (min(self.cfg.train.lr_g * scale, cap), min(self.cfg.train.lr_d * scale, cap))
        for opt, lr in zip((self.opt_g, self.opt_d), rates, strict=True):
            for group in opt.param_groups:
                group["lr"] = lr
        if self.opt_pre is not None:
            for group in self.opt_pre.param_groups:
                group["lr"] = self.cfg.train.pretrain_lr * self.pretrain_lr_scale() * cut
        return rates

    def _d_model(self, wide: bool) -> ModelConfig:
        """The model config D is built from: as configured, or as wide as G (``wider_d``)."""
        wider = models.as_wide_as_g(self.cfg.model) if wide else None
        return wider or self.cfg.model

    @property
    def d_hidden(self) -> tuple[int, ...]:
        """D's hidden widths now (G's, reversed, after a ``wider_d`` remedy)."""
        return tuple(self._d_model(self.d_wide).d_hidden)

    def _rebuild_d(self, wide: bool) -> None:
        """D (and its Adam) afresh: as configured, or, ``wide``, as wide as G (its hidden widths
        G's reversed, the ``wider_d`` remedy); seeded, so every rank and every resume build the
        same one with no message between ranks (a collective here could meet another rank's
        broadcast of a rolled-back state)."""
        init_seed, heads, cond_dim = self._build
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed + 1 if wide else init_seed)
            _, self.D = models.build(self._d_model(wide), self.image_shape, self.num_classes,
                                     self.cfg.reg.pack, heads, cond_dim)
        self.D.to(self.device)
        t = self.cfg.train
        self.opt_d = fast.adam(self.D.parameters(), t.lr_d, t.betas_d, t.fused_adam)
        self.d_wide = wide
        self._build_step()

    def _build_step(self) -> None:
        """The step this config trains with, and its name for the start line: the fused step
        where it applies, else the generic one (on CUDA either captured as a graph where it
        can be)."""
        self._fused, why = fused.build(self)
        self._graphed = None if self._fused is not None else graphed.build_generic(self)
        self.step_kind = _kind(self._fused or self._graphed, why)

    def apply_remedies(self) -> None:
        """Make the networks and the recipe what the guard's rollbacks so far made them (a
        wider D, penalties, remedies); the generic step takes over where a remedy needs what
        the fused one does not do."""
        self.recipe.reg, self.recipe.noise_from = self.guard.regularisers(self.cfg.reg)
        self.recipe.penalty_scale = self.guard.penalty_scale()
        if self.guard.widened != self.d_wide:  # after the recipe: the step is built for it
            self._rebuild_d(self.guard.widened)
        if self._fused is not None:
            why = fused.unsupported(self)
            if why is not None:
                self._fused = None
                self._graphed = graphed.build_generic(self)
                self.step_kind = _kind(self._graphed, why)
        elif self._graphed is not None:
            why = graphed.recipe_unsupported(self)
            if why is not None:  # a remedy the captured step cannot replay: eager from now
                self._graphed, self.step_kind = None, f"generic ({why})"

    def ema_decay(self) -> float:
        """The EMA's decay at this step: early on the average follows the generator closely,
        then settles at ``train.ema``."""
        return min(self.cfg.train.ema, (1.0 + self.step) / (10.0 + self.step))

    @torch.no_grad()
    def _update_ema(self) -> None:
        ema_params = list(self.G_ema.parameters())
        if self._ema_weight is not None:  # (a captured step: the weight is a device scalar)
            lerp = torch._foreach_sub(list(self.G.parameters()), ema_params)
            torch._foreach_mul_(lerp, self._ema_weight)
            torch._foreach_add_(ema_params, lerp)
        else:
            torch._foreach_lerp_(ema_params, list(self.G.parameters()), 1.0 - self.ema_decay())
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
        split = f" (batch {self.world.size}x{self.batch})" if self.world.size > 1 else ""
        bar = Progress(t.steps, enabled=progress and self.world.main, note=split)
        self._clock = (time.perf_counter(), self.step)
        self._started = self._clock[0]
        self.stopped: tuple[str, str] | None = None  # (reason, detail) of an early stop
        self.G.train()
        self.D.train()
        self.guard.start(self)
        try:
            while self.step < t.steps:
                self.train_step()
                if self.notices:
                    for note in self.notices:
                        bar.message(f"gankit: note: {note}")
                    self.notices.clear()
                last = self.step == t.steps
                # a log step also ends pre-training, so no record mixes the two phases
                if self.step % t.log_every == 0 or last or self.step == t.pretrain_steps:
                    record = self._log()
                    if self._rolled_back(record, bar):
                        continue
                    bar.update(self.step, record)
                if self.run_dir is not None and (self.step % t.sample_every == 0 or last):
                    self.save_samples()
                reached = None
                if self.run_dir is not None and self.evaluator.due(self.step, last):
                    scores = self.evaluator(self)
                    reached = self._reached(scores)
                    note = self._target_note(scores)
                    if note is not None:
                        bar.message(f"gankit: warning: {note}")
                if self.target is not None and self.evaluator.due(self.step, last):
                    if self.world.size > 1:  # rank 0 evaluates, and every rank stops with it
                        agreed = distributed.agree(reached is not None, self.world)
                        reached = (reached or f"{self.target} reached") if agreed else None
                    if reached is not None and not last:
                        self._stop_early("target", reached)
                        break
                if self._out_of_time(last):
                    self._stop_early("time", f"train.time_limit {t.time_limit:g} s spent")
                    break
                checks = self.run_dir is not None or self.world.size > 1
                if checks and (self.step % t.checkpoint_every == 0 or last):
                    if self._rolled_back(None, bar):  # never checkpoint broken weights
                        continue
                    if self.run_dir is not None:
                        self.save_checkpoint()
                if self.board is not None and self.board.due(self.step, last):
                    self.board.sync()
                if self._stop_agreed if self.world.size > 1 else self.stop_requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            if self.run_dir is not None and self.step > 0 and weights_finite(self):
                self.save_checkpoint()
            raise
        finally:
            if self.board is not None:
                self.board.close()
        bar.close()
        if self.stopped is None:  # a run stopped early may be resumed: no last word yet
            self.guard.final_check(self)

    def _reached(self, scores: dict[str, Any]) -> str | None:
        """The account of ``train.target`` met by ``scores``, else None."""
        if self.target is None or not self.target.met(scores):
            return None
        return f"{self.target} reached ({self.target.metric} {scores[self.target.metric]:.4g})"

    def _target_note(self, scores: dict[str, Any]) -> str | None:
        """Once per run: a note that ``train.target``'s metric is not one this run measures."""
        if self.target is None or self.target.metric in scores or self.target_notes:
            return None
        have = ", ".join(k for k in scores if k in GOALS)
        note = (f"train.target {self.target}: {self.target.metric} is not among this run's "
                f"metrics ({have}); training goes on to train.steps")
        self.target_notes.append(note)
        return note

    def _out_of_time(self, last: bool) -> bool:
        """Whether ``train.time_limit`` is spent (every step alone; at log steps under
        torchrun, where rank 0's clock decides)."""
        limit = self.cfg.train.time_limit
        if limit <= 0 or last:
            return False
        spent = time.perf_counter() - self._started > limit
        if self.world.size > 1:
            if self.step % self.cfg.train.log_every:
                return False
            spent = distributed.agree(spent, self.world)
        return spent

    def _stop_early(self, reason: str, detail: str) -> None:
        """End ``fit`` before ``train.steps``: samples, a checkpoint and a ``stopped`` event."""
        self.stopped = (reason, detail)
        if self.run_dir is None:
            return
        self.save_samples()
        if weights_finite(self):
            self.save_checkpoint()
        runlog.append(self.run_dir / "metrics.jsonl",
                      {"event": "stopped", "step": self.step, "time": time.time(),
                       "reason": reason, "detail": detail, "action": "stop"})

    def request_stop(self) -> None:
        """Ask ``fit`` to stop cleanly at the end of the current step (signal-handler safe)."""
        self.stop_requested = True

    def _rolled_back(self, record: dict[str, Any] | None, bar: Progress) -> bool:
        """Let the guard check (see ``Guard.watch``); True when it rolled the run back."""
        message = self.guard.watch(self, record)
        while self.guard.warnings:
            bar.message(f"gankit: {self.guard.warnings.pop(0)}")
        if self.world.size > 1:  # rank 0 decides, and every rank takes its state
            message = distributed.sync_rollback(self, message)
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
        if self.world.size > 1:  # the statistics of the global batch, the same on every rank
            distributed.mean_(self._acc, self.world)
        means = (self._acc / max(1, self._acc_steps)).tolist()
        self._acc.zero_()
        self._acc_steps = 0
        record: dict[str, Any] = {"step": self.step, "time": time.time()}
        if self.step <= self.cfg.train.pretrain_steps:  # D has not trained yet
            record.update(phase="pretrain", loss_mle=round(means[1], 6))
        else:
            record.update({k: round(v, 6) for k, v in zip(STAT_NAMES, means, strict=True)})
        record["steps_per_s"] = round(rate, 2)
        record["images_per_s"] = round(rate * self.cfg.train.batch_size, 1)
        if self.watch.due(self):  # the collapse watch's figures (training/collapse.py)
            record.update(self.watch(self))
        if self.run_dir is not None:
            runlog.append(self.run_dir / "metrics.jsonl", record)
        return record

    # -- outputs ------------------------------------------------------------------------------

    @property
    def pretraining(self) -> bool:
        """Whether the coming step is one of MLE pre-training (``train.pretrain_steps``)."""
        return self.step < self.cfg.train.pretrain_steps

    @property
    def sampler(self) -> nn.Module:
        """The generator used for samples: the moving average when enabled."""
        return self.G_ema if self.G_ema is not None else self.G

    @property
    def label_share(self) -> torch.Tensor | None:
        """Each class's (or cluster's) share of the training data; None without labels."""
        return self.cond.share if isinstance(self.cond, Labels) else None

    @property
    def centroids(self) -> torch.Tensor | None:
        """The k-means centroids of a self-conditioned run's clusters; None otherwise."""
        return self.cond.centroids if isinstance(self.cond, Labels) else None

    def draw_labels(self, n: int, gen: torch.Generator) -> torch.Tensor | None:
        """``n`` conditions (labels, or a table's condition vectors) drawn at their share of
        the data; None for an unconditioned model."""
        return self.cond.sample(n, gen)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images from noise ``z`` (and labels ``y``, if conditioned: see ``draw_labels``) with
        the sampling generator, in its output range, on the CPU."""
        g = self.sampler
        was_training = g.training
        settled = self.kind.settled(g, self.cond, len(z))
        out = settled(z.to(self.device), None if y is None else y.to(self.device))
        g.train(was_training)
        return out.cpu()

    def save_samples(self) -> Path:
        """Write the grid (or scatter plot) of the fixed noise batch to ``samples/step-N.png``."""
        assert self.run_dir is not None
        folder = self.run_dir / "samples"
        folder.mkdir(exist_ok=True)
        path = folder / f"step-{self.step:09d}.png"
        x = self.generate(self.fixed_z, self.fixed_y)
        suffix, data = self.kind.preview(x, self.value_range, self.data, self.x, self.grid_cols)
        path = path.with_suffix(suffix)
        atomic_write_bytes(path, data)
        return path

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimizer moments, RNG states."""
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            **({"opt_pre": self.opt_pre.state_dict()} if self.pretraining else {}),
            "rng": {"data": self.gen_data.get_state(), "noise": self.gen_noise.get_state(),
                    "aug": self.gen_aug.get_state()},
            "acc": self._acc, "acc_steps": self._acc_steps,
            "image_shape": list(self.image_shape), "num_classes": self.num_classes,
            **self.cond.state(),
            "guard": self.guard.state_dict(),
        } | ({"scalers": {"g": self.scaler_g.state_dict(), "d": self.scaler_d.state_dict()}}
             if self.scaler_g.is_enabled() else {})

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a state written by ``state()`` (as read back from a checkpoint)."""
        self.guard.load_state_dict(state.get("guard"))  # first: which D the state trained
        if self.guard.widened != self.d_wide:
            self._rebuild_d(self.guard.widened)
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["G_ema"])
        opts = [(self.opt_g, "opt_g"), (self.opt_d, "opt_d")]
        if self.opt_pre is not None and int(state["step"]) < self.cfg.train.pretrain_steps:
            opts.append((self.opt_pre, "opt_pre"))  # stopped while pre-training
        for opt, key in opts:
            opt.load_state_dict(state[key])
            fast.match_layout(opt)
        self.gen_data.set_state(state["rng"]["data"])
        self.gen_noise.set_state(state["rng"]["noise"])
        if "aug" in state["rng"]:  # absent in checkpoints from before recipes (none drawn)
            self.gen_aug.set_state(state["rng"]["aug"])
        if "scalers" in state and self.scaler_g.is_enabled():
            self.scaler_g.load_state_dict(state["scalers"]["g"])
            self.scaler_d.load_state_dict(state["scalers"]["d"])
        self._acc = state["acc"].to(self.device, copy=True)
        self._acc_steps = int(state["acc_steps"])
        self.step = int(state["step"])
        mine = self.cond.centroids if isinstance(self.cond, Labels) else None
        if mine is not None and state.get("centroids") is not None:
            # The clusters the run was trained on, even if k-means differed here (threads).
            c = state["centroids"]
            if c.shape != mine.shape or not torch.isfinite(c).all():
                raise ValueError(f"its {tuple(c.shape)} cluster centroids do not fit this run's "
                                 f"{tuple(mine.shape)}")
            self.cond.relabel(self.x, c.to(torch.float32))
        self.apply_remedies()
        if self.world.rank and not self.cfg.train.shared_draws:  # the checkpoint holds rank 0's
            for gen, seed in zip((self.gen_data, self.gen_noise, self.gen_aug),
                                 distributed.rank_seeds(self.cfg.train.seed, self.world.rank,
                                                        self.step), strict=True):
                gen.manual_seed(seed)

    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the current step to ``checkpoints/``."""
        assert self.run_dir is not None
        return checkpoint.save(self.run_dir / "checkpoints", self.step, self.state(),
                               keep=self.cfg.train.keep_checkpoints)


def _kind(step: Any, why: str | None) -> str:
    """The step's name for the start line: the fused or graphed step's, else the generic one's
    with why the fused step does not apply."""
    return step.kind if step is not None else f"generic ({why})"

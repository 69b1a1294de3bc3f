"""Divergence guard: spot a run going wrong at each log step, roll it back, lower the rates.

Checks, all from statistics the trainer already gathers plus one small reduction (one host sync
per log step, none per training step):

- ``non_finite``: a NaN or infinite loss or D output, or a NaN/infinite weight;
- ``exploding``: a logged loss of G or D above ``loss_max`` in size, or the last step's gradient
  norm of G or D above ``grad_norm_max``;
- ``collapse``: D(x) >= 1 - margin while D(G(z)) <= margin, for ``collapse_steps`` steps;
- ``mode_collapse``: the collapse watch's figures (``training/collapse.py``) out of bounds
  (diversity below ``diversity_min``, near-duplicates above ``duplicates_max``, classes covered
  below ``modes_min`` of the real batch's, or, from step ``realism_after`` on and where the kind
  judges it, fewer than ``realism_min`` of the samples near the real data) at
  ``diversity_checks`` measurements in a row, from step ``diversity_after`` on;
  after a remedy, from ``recovery_steps`` past its rollback (or past ``diversity_after``, when
  it rolled back into the warm-up) on, covering fewer than ``recovered_min`` of the real modes
  counts too (a remedied run must win its modes back).

On detection the trainer is rolled back to the newest checkpoint from before the trouble (for a
mode collapse: from the last measurement within bounds, or the oldest state there is when none
was), or to the state at the start of ``fit`` when there is none. After a divergence the
learning rates are multiplied by ``lr_factor`` and the penalty weights by ``penalty_factor``;
after a mode collapse the next of ``remedies`` is applied (``wider_d``: D rebuilt afresh as
wide as G, where the configured D has fewer than ``wider_d_below`` of G's parameters, else
passed over; ``r1``: an R1 penalty, or a stronger one; ``lr``: the rates times
``collapse_lr_factor``, and at most ``collapse_lr_max`` (a factor lower at each later cut);
``noise``: instance noise that fades out over ``reg.noise_steps`` from then): a wider D and rate
cuts hold on, while a penalty holds only until the next rollback (one that did not cure is
taken back). Training goes on; after ``max_retries`` rollbacks it
stops with DivergedError. With no remedies a mode collapse is only warned about. A run that
was remedied must end covering ``final_modes_min`` of the real modes by the kind's finest judge
(``final_check``), or it too ends with DivergedError. Each event goes to metrics.jsonl with an
``event`` key.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any

import torch

from .. import runlog
from ..config import GuardConfig
from ..errors import DivergedError, RunError
from . import checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer


def _norms(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """The 2-norm of a list of tensors taken together (0 for none), on ``device``."""
    if not tensors:
        return torch.zeros((), device=device)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)))


def health(trainer: Trainer) -> dict[str, float]:
    """Norms of the weights and last gradients of G and D, read with one host sync."""
    g, d = list(trainer.G.parameters()), list(trainer.D.parameters())
    values = torch.stack([
        _norms([p.detach() for p in g], trainer.device),
        _norms([p.detach() for p in d], trainer.device),
        _norms([p.grad for p in g if p.grad is not None], trainer.device),
        _norms([p.grad for p in d if p.grad is not None], trainer.device),
    ]).tolist()
    return dict(zip(("weight_norm_g", "weight_norm_d", "grad_norm_g", "grad_norm_d"), values,
                    strict=True))


def weights_finite(trainer: Trainer) -> bool:
    """Whether every weight of G and D is finite."""
    h = health(trainer)
    return math.isfinite(h["weight_norm_g"]) and math.isfinite(h["weight_norm_d"])


class Guard:
    """Watches one trainer; ``check`` at log steps, ``recover`` when something is wrong."""

    def __init__(self, cfg: GuardConfig) -> None:
        self.cfg = cfg
        self.retries = 0
        self.collapse_since: int | None = None
        self.mode_since: int | None = None  # first failing diversity measurement of a stretch
        self.mode_fails = 0  # failing measurements in a row
        self.healthy: int | None = None  # the step of the last measurement within bounds
        self.remedies: list[tuple[str, int]] = []  # (remedy, step applied) of mode collapses
        self.events: list[dict[str, Any]] = []
        self.warnings: list[str] = []  # lines to show, taken by the trainer
        self._start: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the rollbacks and remedies so far, the trouble stretches."""
        return {"retries": self.retries, "collapse_since": self.collapse_since,
                "mode_since": self.mode_since, "mode_fails": self.mode_fails,
                "healthy": self.healthy,
                "remedies": [list(r) for r in self.remedies]}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore ``state_dict()``; None (an older checkpoint) means a fresh guard."""
        state = state or {}
        self.retries = int(state.get("retries", 0))
        since = state.get("collapse_since")
        self.collapse_since = None if since is None else int(since)
        since = state.get("mode_since")
        self.mode_since = None if since is None else int(since)
        self.mode_fails = int(state.get("mode_fails", 0))
        healthy = state.get("healthy")
        self.healthy = None if healthy is None else int(healthy)
        self.remedies = [(str(r), int(s)) for r, s in state.get("remedies", [])]

    @property
    def divergences(self) -> int:
        """Rollbacks for a divergence so far (each lowered the rates and raised the penalties):
        every rollback that did not apply a mode-collapse remedy."""
        return self.retries - len(self.remedies)

    @property
    def rate_cuts(self) -> int:
        """Rollbacks for a mode collapse so far that cut the rates (the ``lr`` remedy)."""
        return sum(1 for remedy, _ in self.remedies if remedy == "lr")

    def lr_scale(self) -> float:
        """The factor on the configured learning rates after the rollbacks so far."""
        g = self.cfg
        return g.lr_factor ** self.divergences * g.collapse_lr_factor ** self.rate_cuts

    def lr_cap(self) -> float:
        """The most either learning rate may be after the collapse rate cuts so far
        (``collapse_lr_max``, a ``collapse_lr_factor`` lower at each cut after the first; no
        limit before the first cut or with ``collapse_lr_max`` 0)."""
        if self.rate_cuts == 0 or self.cfg.collapse_lr_max <= 0:
            return math.inf
        return self.cfg.collapse_lr_max * self.cfg.collapse_lr_factor ** (self.rate_cuts - 1)

    @property
    def widened(self) -> bool:
        """Whether a rollback so far rebuilt D wider (the ``wider_d`` remedy)."""
        return any(remedy == "wider_d" for remedy, _ in self.remedies)

    def applicable(self, trainer: Trainer) -> list[str]:
        """The configured remedies that apply to ``trainer``'s run: ``wider_d`` only where its
        configured D is small (``Trainer.small_d``)."""
        return [r for r in self.cfg.remedies if r != "wider_d" or trainer.small_d]

    def regularisers(self, base: Any) -> tuple[Any, int]:
        """(``base`` reg config with the remedies so far applied, the step instance noise
        fades from)."""
        reg, noise_from = base, 0
        # A penalty that did not cure is taken back: only the newest remedy's penalty holds
        # (rate cuts hold on, see ``lr_scale``).
        for remedy, step in self.remedies[-1:]:
            if remedy == "noise":
                reg = dataclasses.replace(reg, instance_noise=max(reg.instance_noise, 0.1))
                noise_from = step
            elif remedy == "r1":
                gamma = reg.r1_gamma * self.cfg.penalty_factor if reg.r1_gamma > 0 else 10.0
                reg = dataclasses.replace(reg, r1_gamma=gamma)
        return reg, noise_from

    def start(self, trainer: Trainer) -> None:
        """Remember the trainer's state at the start of ``fit``: the rollback of last resort."""
        if self.cfg.enabled:
            self._start = copy.deepcopy(trainer.state()) | {"step": trainer.step}

    def watch(self, trainer: Trainer, record: dict[str, Any] | None) -> str | None:
        """Check the statistics just logged (None: only the weights); on trouble, recover.

        Returns a one-line account of the rollback, or None when all is well (a mode collapse
        with no remedies is only warned about: see ``warnings``).
        """
        if not self.cfg.enabled:
            return None
        if record is not None:
            trouble = self.check(trainer, record)
        else:
            trouble = None if weights_finite(trainer) else ("non_finite", "weights")
        if trouble is None:
            return None
        if trouble[0] == "mode_collapse" and not self.applicable(trainer):
            self.warn(trainer, trouble[1])
            return None
        e = self.recover(trainer, *trouble)
        change = f", {e['remedy']}" if e.get("remedy") not in (None, "lr") else ""
        if "d_hidden" in e:
            change += f" (D's hidden widths now {e['d_hidden']})"
        return (f"{e['reason']} at step {e['step']} ({e['detail']}); rolled back to step "
                f"{e['rollback_to']}, lr_g {e['lr_g']:.3g}, lr_d {e['lr_d']:.3g}{change} "
                f"(retry {e['retry']} of {e['max_retries']})")

    def warn(self, trainer: Trainer, detail: str) -> None:
        """Record and announce a mode collapse that is not acted upon (no remedies)."""
        event = {"event": "warning", "step": trainer.step, "time": time.time(),
                 "reason": "mode_collapse", "detail": detail, "action": "none"}
        self._record(trainer, event)
        self.warnings.append(f"warning: mode collapse at step {trainer.step} ({detail}); "
                             "no guard.remedies apply, so training goes on")

    def check_diversity(self, trainer: Trainer, record: dict[str, Any]) -> str | None:
        """The detail of a mode collapse if the figures in ``record`` make one, else None."""
        g = self.cfg
        if "diversity" not in record:
            return None
        low = []
        if record["diversity"] < g.diversity_min:
            low.append(f"diversity {record['diversity']:.3g} < {g.diversity_min:g}")
        if record["duplicates"] > g.duplicates_max:
            low.append(f"duplicates {record['duplicates']:.3g} > {g.duplicates_max:g}")
        seen, real = record["modes_seen"], record["modes_real"]
        # a remedy has recovery_steps past its rollback, or past the warm-up when it rolled back
        # into it (a run rolled back to its start is a fresh run, on a fresh run's clock)
        recovering = bool(self.remedies) and trainer.step < max(
            self.remedies[-1][1], g.diversity_after) + g.recovery_steps
        if real and seen < g.modes_min * real:
            low.append(f"{seen} of {real} modes")
        elif real and self.remedies and not recovering and seen < g.recovered_min * real:
            low.append(f"{seen} of {real} modes after {self.remedies[-1][0]}")
        if trainer.step >= g.realism_after and record.get("realism", 1.0) < g.realism_min:
            low.append(f"realism {record['realism']:.3g} < {g.realism_min:g}")
        # warm-up figures prove nothing, nor do figures not yet judged on everything (realism,
        # a remedy's recovery)
        judged = trainer.step >= g.diversity_after and not recovering and (
            "realism" not in record or trainer.step >= g.realism_after)
        if not low and judged:
            self.healthy = trainer.step
        if not low or trainer.step < g.diversity_after:
            self.mode_since, self.mode_fails = None, 0
            return None
        if self.mode_since is None:
            self.mode_since = trainer.step
        self.mode_fails += 1
        if self.mode_fails != g.diversity_checks:  # once per stretch (a rollback ends it)
            return None
        return ", ".join(low) + f" since step {self.mode_since}"

    def check(self, trainer: Trainer, record: dict[str, Any]) -> tuple[str, str] | None:
        """``(reason, detail)`` if the statistics just logged show trouble, else None."""
        if not self.cfg.enabled:
            return None
        # a record of MLE pre-training (train.pretrain_steps) has G's loss alone
        keys = ("loss_mle",) if "loss_mle" in record else ("loss_d", "loss_g", "d_real",
                                                           "d_fake")
        stats = {k: record[k] for k in keys}
        bad = [k for k, v in stats.items() if not math.isfinite(v)]
        if bad:
            return "non_finite", f"{bad[0]} is {stats[bad[0]]}"
        h = health(trainer)
        # fp16's loss scaler skips a step whose gradients overflowed and leaves them in place:
        # non-finite gradients there are the scaler at work, not a divergence (the weights and
        # losses still tell)
        grads = [k for k in ("grad_norm_g", "grad_norm_d")
                 if math.isfinite(h[k]) or not trainer.scaler_g.is_enabled()]
        for key in ("weight_norm_g", "weight_norm_d", *grads):
            if not math.isfinite(h[key]):
                return "non_finite", f"{key} is {h[key]}"
        checks = [(k, abs(stats[k]), self.cfg.loss_max) for k in ("loss_d", "loss_g", "loss_mle")
                  if k in stats]
        checks += [(k, h[k], self.cfg.grad_norm_max) for k in grads]
        for key, value, limit in checks:
            if limit and value > limit:
                return "exploding", f"{key} {value:.3g} > {limit:g}"
        margin, window = self.cfg.collapse_margin, self.cfg.collapse_steps
        if window and "d_real" in stats and stats["d_real"] >= 1 - margin \
                and stats["d_fake"] <= margin:
            if self.collapse_since is None:
                self.collapse_since = max(0, trainer.step - trainer.cfg.train.log_every)
            if trainer.step - self.collapse_since >= window:
                return "collapse", (f"D(x) {stats['d_real']:.4f}, D(G(z)) "
                                    f"{stats['d_fake']:.4f} since step {self.collapse_since}")
        else:
            self.collapse_since = None
        detail = self.check_diversity(trainer, record)
        return None if detail is None else ("mode_collapse", detail)

    def recover(self, trainer: Trainer, reason: str, detail: str) -> dict[str, Any]:
        """Roll ``trainer`` back and change what ``reason`` calls for (lower rates and higher
        penalties, or the next remedy of a mode collapse); DivergedError when out of retries.

        Returns the event record (also appended to metrics.jsonl).
        """
        step = trainer.step
        limit = self.collapse_since if reason == "collapse" and self.collapse_since else step
        if reason == "mode_collapse":  # the last measurement within bounds; none: the oldest
            limit = -1 if self.healthy is None else self.healthy
        event: dict[str, Any] = {"event": "divergence", "step": step, "time": time.time(),
                                 "reason": reason, "detail": detail,
                                 "retry": self.retries + 1, "max_retries": self.cfg.max_retries}
        target = self._rollback_state(trainer, limit) if self.retries < self.cfg.max_retries \
            else None
        if target is None:
            event.update(event="stopped", action="stop", retry=self.retries)
            self._record(trainer, event)
            where = f" in {trainer.run_dir}/metrics.jsonl" if trainer.run_dir else ""
            tried = ", ".join(f"{r} at step {s}" for r, s in self.remedies)
            tried = f"; tried {tried}" if tried else ""
            what = "collapsed to few modes" if reason == "mode_collapse" else "diverged"
            raise DivergedError(
                f"training {what} at step {step} ({reason}: {detail}) after {self.retries} "
                f"rollback(s) (guard.max_retries = {self.cfg.max_retries}{tried}); stopped, "
                f"the last good checkpoint is kept and the events are listed{where}")
        kept = (self.retries + 1, list(self.remedies))
        trainer.load_state(target)  # restores the guard's state of then: count from now
        self.retries, self.remedies = kept
        self.collapse_since, self.mode_since, self.mode_fails = None, None, 0
        remedy = None
        if reason == "mode_collapse":
            remedies = self.applicable(trainer)
            remedy = remedies[min(len(self.remedies), len(remedies) - 1)]
            self.remedies.append((remedy, trainer.step))
        trainer.apply_remedies()
        lr_g, lr_d = trainer.set_rates()
        event.update(action="rollback", rollback_to=trainer.step, lr_g=lr_g, lr_d=lr_d,
                     penalty_scale=trainer.recipe.penalty_scale)
        if remedy is not None:
            event["remedy"] = remedy
        if remedy == "wider_d":
            event["d_hidden"] = list(trainer.d_hidden)
        if trainer.run_dir is not None:
            runlog.truncate(trainer.run_dir / "metrics.jsonl", trainer.step)
            trainer.save_checkpoint()  # keeps the new rates; drops the abandoned checkpoints
        self._record(trainer, event)
        return event

    def final_check(self, trainer: Trainer) -> None:
        """At the end of a run remedied for a mode collapse: DivergedError unless its samples
        cover ``final_modes_min`` of the real modes (``CollapseWatch.verdict``)."""
        g = self.cfg
        if not g.enabled or not self.remedies or g.final_modes_min <= 0:
            return
        counts = trainer.watch.verdict(trainer)
        seen, real = counts["modes_seen"], counts["modes_real"]
        num = g.final_num
        event: dict[str, Any] = {"event": "verdict", "step": trainer.step, "time": time.time(),
                                 "reason": "mode_collapse", "modes_seen": seen,
                                 "modes_real": real, "num": num,
                                 "detail": f"{seen} of {real} modes in {num} samples"}
        if not real or seen >= g.final_modes_min * real:
            self._record(trainer, event | {"action": "none"})
            return
        self._record(trainer, event | {"event": "stopped", "action": "stop"})
        where = f" in {trainer.run_dir}/metrics.jsonl" if trainer.run_dir else ""
        tried = ", ".join(f"{r} at step {s}" for r, s in self.remedies)
        raise DivergedError(
            f"training ended at step {trainer.step} with {seen} of {real} modes after "
            f"{len(self.remedies)} mode-collapse rollback(s) (tried {tried}; "
            f"guard.final_modes_min = {g.final_modes_min:g}): not recovered; the last "
            f"checkpoint is kept and the events are listed{where}")

    def penalty_scale(self) -> float:
        """The factor on the configured penalty weights after the rollbacks so far."""
        return self.cfg.penalty_factor ** self.divergences

    def _record(self, trainer: Trainer, event: dict[str, Any]) -> None:
        self.events.append(event)
        if trainer.run_dir is not None:
            runlog.append(trainer.run_dir / "metrics.jsonl", event)

    def _rollback_state(self, trainer: Trainer, limit: int) -> dict[str, Any] | None:
        """The newest saved state at or before step ``limit``, else the oldest one there is."""
        states: list[dict[str, Any]] = []
        if trainer.run_dir is not None:
            folder = trainer.run_dir / "checkpoints"
            for s in checkpoint.list_steps(folder):
                try:
                    states.append(checkpoint.read(folder / f"step-{s:09d}.json"))
                except RunError:
                    continue
        if self._start is not None:
            states.append(copy.deepcopy(self._start))
        states.sort(key=lambda st: st["step"])
        before = [st for st in states if st["step"] <= limit]
        if before:
            return before[-1]
        return states[0] if states else None

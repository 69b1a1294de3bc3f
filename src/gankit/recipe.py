"""A recipe: how one training step scores the discriminator and the generator.

It composes, from the config, the pure pieces of ``losses``, ``regularizers`` and ``augment``:
the adversarial loss and its label smoothing, gradient penalty, R1 and R2, DiffAugment, instance
noise and minibatch packing. The trainer only samples batches and steps the optimizers.
"""

from __future__ import annotations

import torch
from torch import nn

from .augment import diff_augment
from .config import Config
from .losses import LOSSES, NEEDS_REAL_FOR_G, REAL_SCORED_ALONE
from .regularizers import annealed, gradient_penalty, instance_noise, pack, r1_penalty, r2_penalty
from .training.devices import upload


class Recipe:
    """The D and G losses of one step, with every stabiliser the config switches on."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.reg = cfg.reg  # the divergence guard's remedies may replace it
        self.real_label = cfg.loss.real_label
        self.d_fn, self.g_fn = LOSSES[cfg.loss.name]
        self.needs_real = cfg.loss.name in NEEDS_REAL_FOR_G
        self.real_alone = cfg.loss.name in REAL_SCORED_ALONE
        self.sigmoid_d = cfg.model.d_output == "sigmoid"
        self.penalty_scale = 1.0  # raised by the divergence guard at each rollback
        self.noise_from = 0  # the step instance noise fades from (a guard remedy may move it)

    def score(self, D: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """D's logits for (already transformed) inputs ``x``."""
        out = D(x, y).float()  # logits in fp32 even under bf16 autocast
        # A sigmoid-bounded D gives probabilities; losses read logits (clamped like BCELoss).
        return torch.logit(out, eps=1e-6) if self.sigmoid_d else out

    def view(self, x: torch.Tensor, step: int, gen: torch.Generator) -> torch.Tensor:
        """What D sees of a batch: augmented, with instance noise, packed."""
        if self.reg.augment:
            x = diff_augment(x, self.reg.augment, gen)
        std = annealed(self.reg.instance_noise, max(0, step - self.noise_from),
                       self.reg.noise_steps)
        return pack(instance_noise(x, std, gen), self.reg.pack)

    def _both(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
              y: torch.Tensor | None, step: int,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of real and fake batches (one forward pass over both)."""
        logits = self.score(D, self.view(torch.cat([real, fake]), step, gen),
                            None if y is None else torch.cat([y, y]))
        half = logits.shape[0] // 2
        return logits[:half], logits[half:]

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
               y: torch.Tensor | None, step: int,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """D's loss with penalties, and the (detached) real and fake logits."""
        real_logits, fake_logits = self._both(D, real, fake, y, step, gen)
        loss = self.d_fn(real_logits, fake_logits, self.real_label)
        r = self.reg
        critic = lambda v: self.score(D, v, y)  # noqa: E731
        if r.gp_weight > 0:
            pr, pf = pack(real, r.pack), pack(fake, r.pack)
            eps = upload(torch.rand(pr.shape[0], generator=gen), pr.device)
            gp = gradient_penalty(critic, pr, pf, eps, r.gp_one_sided)
            loss = loss + self.penalty_scale * r.gp_weight * gp
        lazy = step % r.r1_every == 0  # R1 and R2 every r1_every steps, scaled by it
        if r.r1_gamma > 0 and lazy:
            r1 = r1_penalty(critic, pack(real, r.pack))
            loss = loss + self.penalty_scale * 0.5 * r.r1_gamma * r.r1_every * r1
        if r.r2_gamma > 0 and lazy:
            r2 = r2_penalty(critic, pack(fake, r.pack))
            loss = loss + self.penalty_scale * 0.5 * r.r2_gamma * r.r1_every * r2
        return loss, real_logits.detach(), fake_logits.detach()

    def g_loss(self, D: nn.Module, fake: torch.Tensor, real: torch.Tensor,
               y: torch.Tensor | None, step: int, gen: torch.Generator) -> torch.Tensor:
        """G's loss on generated images ``fake`` (``real`` is read by relativistic losses)."""
        if self.real_alone:  # the real logits are constants for G: no graph through them
            with torch.no_grad():
                real_logits = self.score(D, self.view(real, step, gen), y)
            return self.g_fn(self.score(D, self.view(fake, step, gen), y), real_logits)
        if self.needs_real:
            real_logits, fake_logits = self._both(D, real, fake, y, step, gen)
            return self.g_fn(fake_logits, real_logits)
        return self.g_fn(self.score(D, self.view(fake, step, gen), y))

"""The textbook eager PyTorch GAN loop, the baseline gankit's benchmarks compare against."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from gankit.config import Config
from gankit.training.trainer import Trainer


def unsupported(cfg: Config) -> str | None:
    """Why the textbook loop cannot stand beside ``cfg``'s step, or None: it writes one D step
    of the plain loss, with neither a gradient penalty nor packed samples."""
    r, t = cfg.reg, cfg.train
    if t.d_steps != 1:
        return f"the textbook loop takes one D step, not {t.d_steps}"
    if r.gp_weight > 0:
        return "the textbook loop has no gradient penalty"
    if r.pack > 1:
        return "the textbook loop does not pack samples"
    return None


class ReferenceLoop:
    """The textbook eager loop for a gankit config's model (its stabilisers written plainly)."""

    def __init__(self, cfg, data, seed: int = 0) -> None:
        torch.manual_seed(seed)
        # The same networks as gankit builds (same layers, same init), trained the plain way.
        proto = Trainer(cfg.replace(train={"channels_last": False}), data)
        self.G, self.D = proto.G, proto.D
        self.x = proto.x
        # a conditioned model (classes or clusters) takes each real row's label, as a cGAN does
        self.labels = getattr(proto.cond, "labels", None)
        self.device = proto.device
        self.cfg = cfg
        t = cfg.train
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr_g, betas=tuple(t.betas_g))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr_d, betas=tuple(t.betas_d))
        self.ema = copy.deepcopy(self.G) if t.ema > 0 else None

    def train_step(self) -> None:
        """One D step then one G step, as tutorials write them."""
        b, zdim = self.cfg.train.batch_size, self.cfg.model.latent_dim
        dev = self.device
        idx = torch.randint(0, self.x.shape[0], (b,), device=dev)
        real = self.x[idx]
        y = None if self.labels is None else self.labels[idx]
        ones, zeros = torch.ones(b, device=dev), torch.zeros(b, device=dev)
        fake = self.G(torch.randn(b, zdim, device=dev), y)
        d_loss = (F.binary_cross_entropy_with_logits(self.D(real, y), ones)
                  + F.binary_cross_entropy_with_logits(self.D(fake.detach(), y), zeros))
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(self.D(fake, y), ones)
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        if self.ema is not None:
            decay = self.cfg.train.ema
            with torch.no_grad():
                for pe, p in zip(self.ema.parameters(), self.G.parameters(), strict=True):
                    pe.mul_(decay).add_(p, alpha=1 - decay)
        d_loss.item()
        g_loss.item()

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Samples from the generator used for sampling (its EMA when the config has one), of
        labels ``y`` for a conditioned model."""
        g = self.ema if self.ema is not None else self.G
        was = g.training
        g.eval()
        out = g(z.to(self.device), None if y is None else y.to(self.device))
        g.train(was)
        return out

"""The text family (RelGAN-style, Nie et al. 2019): a recurrent generator whose every token is
a Gumbel-softmax draw, so the discriminator's gradient reaches G through the relaxed one-hot
sequence, and a convolutional discriminator over one-hot (real) or relaxed (generated)
sequences."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..regularizers import maybe_sn
from .tabular import gumbel

if TYPE_CHECKING:
    from ..config import TrainConfig

TAU = 0.5  # Gumbel-softmax temperature while training (RelGAN's 1/beta; lower is harder)
EMBED = 32


def gumbel_tau(step: int, start: int, end: int, beta_max: float) -> float:
    """The Gumbel-softmax temperature of training step ``step``: TAU when ``beta_max`` is 0,
    else RelGAN's exponential schedule, 1 / beta with beta rising from 1 at step ``start`` to
    ``beta_max`` at step ``end`` (beta = beta_max ** (done share))."""
    if beta_max <= 0:
        return TAU
    span = max(1, end - start)
    share = min(1.0, max(0.0, (step - start) / span))
    return 1.0 / beta_max ** share


def one_hot(idx: torch.Tensor, width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Indices (N,) as one-hot rows (N, width), by operations that keep N dynamic in ONNX."""
    return (idx.unsqueeze(1) == torch.arange(width, device=idx.device)).to(dtype)


class TextGenerator(nn.Module):
    """Maps noise (N, latent_dim) to sequences (N, length * vocab) of per-position token
    distributions, token 0 ending a string (all later positions are then token 0).

    The noise holds ``code_dim`` inputs, then one draw per position and token that becomes its
    Gumbel noise, so a seed fixes a sample. Training emits Gumbel-softmax relaxations at
    ``tau`` (TAU unless annealed, ``anneal``);
    in eval mode each position is the one-hot of argmax(logits / temperature + Gumbel noise)
    (a draw from softmax(logits / temperature); temperature 0: the most likely token). Either
    way the next step reads the hard token.
    """

    def __init__(self, code_dim: int, hidden: int, length: int, vocab: int) -> None:
        super().__init__()
        self.code_dim, self.length, self.vocab = code_dim, length, vocab
        self.latent_dim = code_dim + length * vocab
        self.image_shape = (length * vocab,)
        self.temperature = 1.0  # sampling temperature (eval mode)
        self.tau = TAU  # Gumbel-softmax temperature (training mode)
        self.init = nn.Linear(code_dim, hidden)
        self.embed = nn.Embedding(vocab + 1, EMBED)  # token ``vocab`` starts a string
        self.cell = nn.GRUCell(EMBED + code_dim, hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        code = z[:, :self.code_dim]
        noise = gumbel(z[:, self.code_dim:]).reshape(-1, self.length, self.vocab)
        h = torch.tanh(self.init(code))
        # shapes from z's own (not Python numbers), so an exported model keeps N dynamic
        alive = torch.ones_like(z[:, :1])  # not yet ended
        tok = (alive[:, 0] * self.vocab).long()  # the start token
        end = one_hot((alive[:, 0] * 0).long(), self.vocab, z.dtype)
        outs = []
        for t in range(self.length):
            h = self.cell(torch.cat([self.embed(tok), code], 1), h)
            logits = self.out(h)
            if self.training:
                scores = logits + noise[:, t]
                soft = torch.softmax(scores / self.tau, 1)
            else:
                temp = self.temperature
                scores = logits / temp + noise[:, t] if temp > 0 else logits
                soft = None
            tok = scores.argmax(1)
            y_t = soft if soft is not None else one_hot(tok, self.vocab, z.dtype)
            outs.append(alive * y_t + (1.0 - alive) * end)
            alive = alive * (1.0 - y_t[:, :1])
        return torch.stack(outs, 1).flatten(1)

    def anneal(self, step: int, train: TrainConfig) -> None:
        """Set the Gumbel-softmax temperature of training step ``step`` (``gumbel_tau`` over
        the adversarial steps when ``train.gumbel_beta_max`` is set; a pure function of the
        step, so resume is exact)."""
        self.tau = gumbel_tau(step, train.pretrain_steps, train.steps, train.gumbel_beta_max)

    def nll(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The mean next-token cross-entropy (nats per scored token: each character and the
        first end token) of one-hot sequences ``x`` (N, length * vocab) read with teacher
        forcing, given the codes in noise ``z``: the loss of MLE pre-training (RelGAN)."""
        from ..kinds.text.lm import scored

        code = z[:, :self.code_dim]
        ids = x.reshape(len(x), self.length, self.vocab).argmax(2)
        start = torch.full((len(x), 1), self.vocab, dtype=torch.int64, device=x.device)
        inputs = self.embed(torch.cat([start, ids[:, :-1]], 1))
        h = torch.tanh(self.init(code))
        logits = []
        for t in range(self.length):
            h = self.cell(torch.cat([inputs[:, t], code], 1), h)
            logits.append(self.out(h))
        logp = torch.log_softmax(torch.stack(logits, 1), 2).gather(2, ids.unsqueeze(2))
        mask = scored(ids)
        return -(logp.squeeze(2) * mask).sum() / mask.sum().clamp(min=1)


class TextDiscriminator(nn.Module):
    """Scores (packs of) sequences with one logit (N/pack,): a linear embedding of each
    position's token distribution, 1-D convolutions, and a linear read-out of all positions."""

    def __init__(self, length: int, vocab: int, hidden: tuple[int, ...], leaky_slope: float = 0.2,
                 use_spectral_norm: bool = False, pack: int = 1) -> None:
        super().__init__()
        self.length, self.vocab, self.pack = length, vocab, pack
        self.embed = maybe_sn(nn.Linear(pack * vocab, EMBED * pack, bias=False),
                              use_spectral_norm)
        layers: list[nn.Module] = []
        dim = EMBED * pack
        for h in hidden:
            layers += [maybe_sn(nn.Conv1d(dim, h, 3, padding=1), use_spectral_norm),
                       nn.LeakyReLU(leaky_slope)]
            dim = h
        self.convs = nn.Sequential(*layers)
        self.head = maybe_sn(nn.Linear(dim * length, 1), use_spectral_norm)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        n, p = x.shape[0], self.pack
        x = x.reshape(n, p, self.length, self.vocab).transpose(1, 2).reshape(n, self.length, -1)
        e = self.embed(x).transpose(1, 2)  # (n, channels, length)
        return self.head(self.convs(e).flatten(1)).squeeze(1)

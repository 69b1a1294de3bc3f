"""The honest baseline for text: a character language model trained by maximum likelihood
(a GRU, as MOSES's CharRNN), sampled at a temperature. ``gankit eval`` scores samples by their
likelihood under one trained on the real strings; ``benchmarks/text.py`` sweeps its
temperature beside the GAN's."""

from __future__ import annotations

import time

import torch
from torch import nn

from ...optim import Adam
from .codec import END

EMBED = 32


class CharLM(nn.Module):
    """p(token_t | tokens before t) over a codec's vocabulary (token ``vocab`` starts a string)."""

    def __init__(self, vocab: int, hidden: int = 128) -> None:
        super().__init__()
        self.vocab = vocab
        self.embed = nn.Embedding(vocab + 1, EMBED)
        self.gru = nn.GRU(EMBED, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits (N, L, vocab) for token ids (N, L) read with teacher forcing."""
        start = torch.full((len(ids), 1), self.vocab, dtype=torch.int64, device=ids.device)
        h, _ = self.gru(self.embed(torch.cat([start, ids[:, :-1]], 1)))
        return self.out(h)


def scored(ids: torch.Tensor) -> torch.Tensor:
    """Which positions a string's likelihood counts (N, L): each character and its first end
    token; the padding after it is not scored."""
    ended = (ids == END).long().cumsum(1)
    return (ended - (ids == END).long()) == 0


def string_nll(model: CharLM, ids: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Each string's negative log-likelihood in nats (N,), end token included."""
    out = []
    with torch.no_grad():
        for i in range(0, len(ids), chunk):
            part = ids[i:i + chunk]
            logp = torch.log_softmax(model(part), 2).gather(2, part.unsqueeze(2)).squeeze(2)
            out.append(-(logp * scored(part)).sum(1))
    return torch.cat(out) if out else torch.empty(0)


def mean_nll(model: CharLM, ids: torch.Tensor) -> float:
    """Negative log-likelihood per scored token (nats), over strings ``ids`` (N, L)."""
    return float(string_nll(model, ids).sum() / scored(ids).sum().clamp(min=1))


def fit_lm(ids: torch.Tensor, vocab: int, steps: int, seed: int = 0, hidden: int = 128,
           batch: int = 128, lr: float = 2e-3, seconds: float = 0.0,
           lr_final: float = 1.0) -> CharLM:
    """A CharLM trained by maximum likelihood on ``ids`` for ``steps`` Adam steps (or until
    ``seconds`` of training when > 0), reproducible from ``seed`` (with ``seconds``, up to the
    number of steps the time allows). The rate falls linearly from ``lr`` to
    ``lr * lr_final`` over the steps (or the seconds); 1 keeps it constant."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CharLM(vocab, hidden)
    gen = torch.Generator().manual_seed(seed)
    opt = Adam(model.parameters(), lr=lr)
    mask = scored(ids)
    start = time.perf_counter()
    step = 0
    while step < steps if seconds <= 0 else (elapsed := time.perf_counter() - start) < seconds:
        if lr_final < 1.0:
            done = step / max(1, steps - 1) if seconds <= 0 else elapsed / seconds
            for group in opt.param_groups:
                group["lr"] = lr * (1.0 - (1.0 - lr_final) * done)
        idx = torch.randint(len(ids), (batch,), generator=gen)
        x, m = ids[idx], mask[idx]
        logp = torch.log_softmax(model(x), 2).gather(2, x.unsqueeze(2)).squeeze(2)
        loss = -(logp * m).sum() / m.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
    return model.eval()


def next_token(logits: torch.Tensor, temperature: float, gen: torch.Generator,
               alive: torch.Tensor) -> torch.Tensor:
    """The next token (N, 1) from ``logits`` (N, V): drawn at ``temperature`` (0: the most
    likely), END for strings that have ended (``alive`` False)."""
    if temperature > 0:
        nxt = torch.multinomial(torch.softmax(logits / temperature, 1), 1, generator=gen)
    else:
        nxt = logits.argmax(1, keepdim=True)
    return torch.where(alive.unsqueeze(1), nxt, torch.full_like(nxt, END))


@torch.no_grad()
def sample_lm(model: CharLM, num: int, length: int, temperature: float = 1.0,
              seed: int = 0) -> torch.Tensor:
    """``num`` strings drawn token by token (ids (N, length), end-padded) at ``temperature``
    (0: the most likely token each time), reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    tok = torch.full((num, 1), model.vocab, dtype=torch.int64)
    h = None
    out = torch.full((num, length), END, dtype=torch.int64)
    alive = torch.ones(num, dtype=torch.bool)
    for t in range(length):
        y, h = model.gru(model.embed(tok), h)
        nxt = next_token(model.out(y[:, 0]), temperature, gen, alive)
        out[:, t] = nxt[:, 0]
        alive &= nxt[:, 0] != END
        tok = nxt
    return out


REVERSE_STEPS = 300  # steps of the language model trained on samples (``reverse_nll``)


def reverse_nll(samples: torch.Tensor, real: torch.Tensor, vocab: int,
                steps: int = REVERSE_STEPS, seed: int = 0) -> float:
    """Per-token NLL of real strings ``real`` (ids) under a CharLM trained ``steps`` steps on
    generated strings ``samples`` (ids): high when the samples miss much of the real data."""
    return mean_nll(fit_lm(samples, vocab, steps, seed=seed), real)

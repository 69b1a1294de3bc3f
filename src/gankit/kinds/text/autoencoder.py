"""The latent-space text model's autoencoder (ARAE, Zhao et al. 2018; LatentGAN for molecules):
a GRU encoder of strings to codes in [-1, 1]^d, a GRU decoder back, trained by reconstruction
with noise on the codes so that nearby codes decode to similar strings. A GAN then learns the
codes of the training strings (WGAN-GP on points, the ``text-latent`` preset), and walks between
two strings are straight lines between their codes."""

from __future__ import annotations

import base64
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import nn

from ...errors import DataError
from ...optim import Adam
from .codec import END
from .lm import next_token, scored

EMBED = 32
CODE_NOISE = 0.1  # std of the Gaussian noise on codes while training (smooths the code space)


class TextAutoencoder(nn.Module):
    """Strings (token ids (N, L)) to codes (N, code_dim) in [-1, 1] and back."""

    def __init__(self, vocab: int, code_dim: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.vocab, self.code_dim, self.hidden = vocab, code_dim, hidden
        self.embed = nn.Embedding(vocab + 1, EMBED)  # token ``vocab`` starts a string
        self.enc = nn.GRU(EMBED, hidden, batch_first=True)
        self.to_code = nn.Linear(hidden, code_dim)
        self.from_code = nn.Linear(code_dim, hidden)
        self.dec = nn.GRU(EMBED + code_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """Codes (N, code_dim) of token ids (N, L)."""
        _, h = self.enc(self.embed(ids))
        return torch.tanh(self.to_code(h[0]))

    def logits(self, code: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits (N, L, vocab) of ``ids`` given their codes (teacher forcing)."""
        start = torch.full((len(ids), 1), self.vocab, dtype=torch.int64)
        inp = self.embed(torch.cat([start, ids[:, :-1]], 1))
        inp = torch.cat([inp, code.unsqueeze(1).expand(-1, ids.shape[1], -1)], 2)
        h, _ = self.dec(inp, torch.tanh(self.from_code(code)).unsqueeze(0))
        return self.out(h)

    @torch.no_grad()
    def decode(self, code: torch.Tensor, length: int, temperature: float = 0.0,
               seed: int = 0) -> torch.Tensor:
        """Token ids (N, length) of codes, each token the most likely one (temperature 0) or
        drawn at ``temperature`` (reproducible from ``seed``)."""
        n = len(code)
        gen = torch.Generator().manual_seed(seed)
        tok = torch.full((n, 1), self.vocab, dtype=torch.int64)
        h = torch.tanh(self.from_code(code)).unsqueeze(0)
        out = torch.full((n, length), END, dtype=torch.int64)
        alive = torch.ones(n, dtype=torch.bool)
        for t in range(length):
            y, h = self.dec(torch.cat([self.embed(tok), code.unsqueeze(1)], 2), h)
            nxt = next_token(self.out(y[:, 0]), temperature, gen, alive)
            out[:, t] = nxt[:, 0]
            alive &= nxt[:, 0] != END
            tok = nxt
        return out

    def to_json(self) -> dict[str, Any]:
        """The autoencoder as JSON values: its sizes and its weights (safetensors, base64)."""
        weights = save_bytes({k: v.contiguous() for k, v in self.state_dict().items()})
        return {"vocab": self.vocab, "code_dim": self.code_dim, "hidden": self.hidden,
                "weights": base64.b64encode(weights).decode("ascii")}

    @classmethod
    def from_json(cls, d: Any) -> TextAutoencoder:
        """An autoencoder from ``to_json``'s values; DataError for anything else."""
        try:
            ae = cls(int(d["vocab"]), int(d["code_dim"]), int(d["hidden"]))
            ae.load_state_dict(load_bytes(base64.b64decode(d["weights"], validate=True)))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise DataError(f"the stored text autoencoder is damaged: {e}") from None
        return ae.eval()


def fit_autoencoder(ids: torch.Tensor, vocab: int, steps: int, seed: int = 0,
                    code_dim: int = 32, hidden: int = 128, batch: int = 128,
                    lr: float = 2e-3) -> TextAutoencoder:
    """An autoencoder trained to reconstruct ``ids`` for ``steps`` Adam steps from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ae = TextAutoencoder(vocab, code_dim, hidden)
    gen = torch.Generator().manual_seed(seed)
    opt = Adam(ae.parameters(), lr=lr)
    mask = scored(ids)
    for _ in range(steps):
        idx = torch.randint(len(ids), (batch,), generator=gen)
        x, m = ids[idx], mask[idx]
        code = ae.encode(x)
        code = code + CODE_NOISE * torch.randn(code.shape, generator=gen)
        logp = torch.log_softmax(ae.logits(code, x), 2).gather(2, x.unsqueeze(2)).squeeze(2)
        loss = -(logp * m).sum() / m.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(ae.parameters(), 5.0)
        opt.step()
    return ae.eval()

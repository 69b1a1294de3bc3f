"""The text codec: a character vocabulary fitted on the training strings, and strings <-> the
one-hot sequences a GAN learns.

Token 0 ends a string (and pads it to the codec's ``length``); tokens 1..K are the characters
seen in the training data, so a decoded sample can only hold those: an unknown character is
impossible by construction. The fitted codec is plain JSON (``to_json`` / ``from_json``).

A latent codec (``data.text_codec = "autoencoder"``) also holds a trained autoencoder: strings
are then encoded as its codes (N, code_dim) and decoded by its decoder; its weights ride in the
JSON as base64 safetensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

from ...errors import DataError

END = 0  # the token that ends (and pads) every string
ENCODE_CHUNK = 4096  # strings an autoencoder encodes at a time (190,000 at once took > 24 GB)
FORMAT = 1

if TYPE_CHECKING:
    from .autoencoder import TextAutoencoder


@dataclass(frozen=True)
class TextCodec:
    """Characters ``chars`` (token i+1 is ``chars[i]``) and ``length`` positions per string."""

    chars: tuple[str, ...]
    length: int
    autoencoder: TextAutoencoder | None = field(default=None, compare=False, repr=False)

    @property
    def latent(self) -> bool:
        """Whether strings are encoded as an autoencoder's codes (else as one-hot tokens)."""
        return self.autoencoder is not None

    def with_autoencoder(self, autoencoder: TextAutoencoder) -> TextCodec:
        """This vocabulary, encoding strings by ``autoencoder``."""
        return replace(self, autoencoder=autoencoder)

    @property
    def vocab_size(self) -> int:
        """Tokens per position: the end token plus every character."""
        return len(self.chars) + 1

    @property
    def width(self) -> int:
        """The width of one encoded string (length x vocabulary)."""
        return self.length * self.vocab_size

    @classmethod
    def fit(cls, strings: list[str]) -> TextCodec:
        """The vocabulary of ``strings`` and their longest length; DataError when there is
        nothing to learn (no strings, or a single character)."""
        if not strings:
            raise DataError("no strings to learn from")
        chars = tuple(sorted(set("".join(strings))))
        if len(chars) < 2:
            shown = repr(chars[0]) if chars else "none"
            raise DataError(f"the strings use a vocabulary of one character ({shown}): there "
                            "is nothing for a model to learn")
        return cls(chars=chars, length=max(len(s) for s in strings))

    def unseen(self, text: str) -> list[str]:
        """The characters of ``text`` outside the vocabulary, in order of first appearance."""
        known = set(self.chars)
        return list(dict.fromkeys(c for c in text if c not in known))

    def ids(self, strings: list[str]) -> torch.Tensor:
        """Token ids (N, length), int64: characters then end tokens. DataError for a string
        that is too long or holds an unseen character."""
        index = {c: i + 1 for i, c in enumerate(self.chars)}
        out = torch.full((len(strings), self.length), END, dtype=torch.int64)
        for row, s in enumerate(strings):
            if len(s) > self.length:
                raise DataError(f"'{s}' is longer than the {self.length} characters this "
                                "model makes")
            bad = self.unseen(s)
            if bad:
                raise DataError(f"'{s}' holds characters the model never saw: "
                                f"{' '.join(map(repr, bad))}")
            if s:
                out[row, :len(s)] = torch.tensor([index[c] for c in s])
        return out

    def encode(self, strings: list[str]) -> torch.Tensor:
        """One-hot sequences (N, length * vocabulary), float32; a latent codec's codes
        (N, code_dim)."""
        ids = self.ids(strings)
        if self.autoencoder is not None:
            with torch.no_grad():
                parts = ids.split(ENCODE_CHUNK) if len(ids) else (ids,)
                return torch.cat([self.autoencoder.encode(p).float() for p in parts])
        x = torch.zeros(len(strings), self.length, self.vocab_size)
        x.scatter_(2, ids.unsqueeze(2), 1.0)
        return x.reshape(len(strings), self.width)

    def to_ids(self, x: torch.Tensor) -> torch.Tensor:
        """The most likely token at each position of encoded sequences (N, width) or
        (N, length, vocabulary)."""
        return x.reshape(len(x), self.length, self.vocab_size).argmax(2)

    def strings(self, ids: torch.Tensor) -> list[str]:
        """Token ids (N, length) as strings, each cut at its first end token."""
        out = []
        for row in ids.tolist():
            chars = []
            for t in row:
                if t == END:
                    break
                chars.append(self.chars[t - 1])
            out.append("".join(chars))
        return out

    def decode(self, x: torch.Tensor, temperature: float = 0.0, seed: int = 0) -> list[str]:
        """Encoded sequences (N, width) as strings; a latent codec's codes decoded with each
        token the most likely (``temperature`` 0) or drawn (reproducible from ``seed``)."""
        if self.autoencoder is not None:
            return self.strings(self.autoencoder.decode(x.float(), self.length, temperature,
                                                        seed))
        return self.strings(self.to_ids(x))

    def heads(self) -> tuple[tuple[int, str], ...]:
        """The generator's output blocks: one token (a distribution over the vocabulary) per
        position."""
        return tuple((self.vocab_size, "token") for _ in range(self.length))

    def to_json(self) -> dict[str, Any]:
        """The codec as JSON values."""
        out: dict[str, Any] = {"kind": "text", "format": FORMAT, "chars": list(self.chars),
                               "length": self.length}
        if self.autoencoder is not None:
            out["autoencoder"] = self.autoencoder.to_json()
        return out

    @classmethod
    def from_json(cls, d: Any) -> TextCodec:
        """A codec from ``to_json``'s values; DataError for anything else."""
        ok = (isinstance(d, dict) and d.get("kind") == "text" and d.get("format") == FORMAT
              and isinstance(d.get("chars"), list) and isinstance(d.get("length"), int)
              and not isinstance(d.get("length"), bool) and d["length"] >= 1
              and all(isinstance(c, str) and len(c) == 1 for c in d["chars"])
              and len(set(d["chars"])) == len(d["chars"]) >= 2)
        if not ok:
            raise DataError("the stored text codec is not one gankit wrote (codec.json)")
        codec = cls(chars=tuple(d["chars"]), length=int(d["length"]))
        if d.get("autoencoder") is not None:
            from .autoencoder import TextAutoencoder

            ae = TextAutoencoder.from_json(d["autoencoder"])
            if ae.vocab != codec.vocab_size:
                raise DataError("the stored text autoencoder does not fit its vocabulary")
            codec = codec.with_autoencoder(ae)
        return codec

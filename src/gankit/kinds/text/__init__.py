"""Text: short strings, one per line (names, molecules as SMILES, codes), RelGAN-class.

A character vocabulary fitted on the data (``codec``) turns strings into one-hot sequences;
the ``text`` family learns them; ``gankit eval`` judges samples by BLEU, self-BLEU, novelty,
uniqueness, validity (SMILES) and their likelihood under a character language model trained
on the real strings (``lm``), which is also the baseline a GAN has to beat.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...conditioning import Conditioning
from ...config import TEXT_SUFFIXES
from ...errors import ConfigError, DataError, GankitError
from ..base import Kind, Scorer, View, stored_codec
from .codec import TextCodec
from .files import read_strings, write_strings

if TYPE_CHECKING:
    from ...config import Config, DataConfig, ModelConfig
    from ...data.base import Dataset
    from ...run import Run

PREVIEW_STRINGS = 50  # strings of the fixed batch written to samples/step-N.txt
LM_EPOCHS = 16  # passes over the training strings of the language model eval scores with
LM_STEPS = (100, 1500)  # ... in this many steps at least and at most


def lm_steps(num_strings: int) -> int:
    """Training steps of the scoring language model for ``num_strings`` training strings."""
    return min(LM_STEPS[1], max(LM_STEPS[0], LM_EPOCHS * num_strings // 128))
MAIN = "bleu4"


def checker_of(cfg: DataConfig) -> str:
    """What validity means for ``cfg``'s strings: ``data.validity``, else smiles for .smi."""
    if cfg.validity:
        return cfg.validity
    return "smiles" if Path(cfg.source).suffix.lower() in (".smi", ".smiles") else "none"


def split(strings: list[str], holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """(training strings, held-out strings): a seeded ``holdout`` share held out, at least one."""
    n = len(strings)
    k = min(n - 1, max(1, round(holdout * n)))
    order = np.random.default_rng(seed).permutation(n)
    return [strings[i] for i in np.sort(order[k:])], [strings[i] for i in np.sort(order[:k])]


def load_strings(cfg: DataConfig) -> tuple[list[str], list[str], list[str]]:
    """(training strings, held-out strings, notes) of ``cfg``'s text file."""
    strings, notes = read_strings(Path(cfg.source), cfg.max_length, cfg.truncate)
    train, holdout = split(strings, cfg.holdout, cfg.split_seed)
    return train, holdout, notes


class TextScorer(Scorer):
    """Decoded strings scored against the held-out strings (``gankit.metrics.text``)."""

    main = MAIN

    def __init__(self, codec: TextCodec, frames: tuple[list[str], list[str]], checker: str,
                 seed: int) -> None:
        self.codec = codec
        self.train = set(frames[0])
        self.holdout = frames[1]
        self.checker = checker
        self.seed = seed

    def __call__(self, samples: torch.Tensor, value_range: tuple[float, float]
                 ) -> dict[str, float]:
        scores = self.strings(self.codec.decode(samples))
        return {k: v for k, v in scores.items() if isinstance(v, float)}

    def strings(self, samples: list[str], seed: int | None = None) -> dict[str, Any]:
        """Metrics of generated strings (subsamples drawn from ``seed``, by default the
        scorer's)."""
        from ...metrics.text import text_scores

        return text_scores(samples, self.train, self.holdout, self.checker,
                           self.seed if seed is None else seed)


def sample_strings(run: Run, num: int, seed: int, temperature: float | None = None
                   ) -> list[str]:
    """``num`` strings of a text run at sampling ``temperature``, reproducible from ``seed``:
    by default 1 for the token GAN (its own distribution) and 0 for the latent one (each code
    decoded to its most likely string)."""
    if temperature is not None and not 0.0 <= temperature <= 100.0:
        raise ConfigError(f"--temperature must be in 0..100, got {temperature}")
    if run.codec.latent:
        return run.codec.decode(run.generate(num, seed), temperature or 0.0, seed)
    temperature = 1.0 if temperature is None else temperature
    g = run.generator
    before = g.temperature
    g.temperature = temperature
    try:
        return run.codec.decode(run.generate(num, seed))
    finally:
        g.temperature = before


def with_autoencoder(codec: TextCodec, cfg: DataConfig, train: list[str], holdout: list[str]
                     ) -> tuple[TextCodec, str]:
    """(``codec`` encoding by an autoencoder trained on ``train``, a note on how well it
    reconstructs ``holdout``)."""
    from .autoencoder import fit_autoencoder

    ae = fit_autoencoder(codec.ids(train), codec.vocab_size, cfg.autoencoder_steps,
                         seed=cfg.split_seed, code_dim=cfg.code_dim)
    latent = codec.with_autoencoder(ae)
    some = holdout[:1000]
    exact = float(np.mean([a == b for a, b in zip(latent.decode(latent.encode(some)), some,
                                                  strict=True)]))
    return latent, (f"autoencoder: {cfg.autoencoder_steps} steps, codes of {cfg.code_dim}; it "
                    f"rebuilds {exact:.0%} of {len(some)} held-out strings exactly")


def walk(run: Run, a: str, b: str, steps: int) -> list[str]:
    """``steps`` strings on the straight line between the codes of ``a`` and ``b`` (a latent
    run), ends included. DataError for strings the vocabulary cannot hold."""
    codec = run.codec
    if not codec.latent:
        raise GankitError("--between walks the code space of a latent text model (--preset "
                          "text-latent); this run's GAN makes tokens")
    if steps < 2:
        raise GankitError(f"--steps must be at least 2 (the two ends), got {steps}")
    for s in (a, b):
        if not s or len(s) > codec.length:
            raise DataError(f"--between '{s}': strings of 1..{codec.length} characters only")
    ends = codec.encode([a, b])  # DataError for unseen characters
    t = torch.linspace(0.0, 1.0, steps).unsqueeze(1)
    return codec.decode((1 - t) * ends[0] + t * ends[1])


class TextKind(Kind):
    """Text (see the package docstring)."""

    name = "text"
    sample_suffixes = (".txt",)

    def load(self, cfg: DataConfig, codec: dict[str, Any] | None = None) -> Dataset:
        from ...data.base import Dataset

        train, holdout, notes = load_strings(cfg)
        # The vocabulary is every character of the file (held-out strings included), so held-out
        # strings can be scored; the length is the longest string.
        if codec is not None:
            fitted = TextCodec.from_json(codec)
        else:
            fitted = TextCodec.fit(train + holdout)
            if cfg.text_codec == "autoencoder":
                fitted, note = with_autoencoder(fitted, cfg, train, holdout)
                notes.append(note)
        return Dataset(samples=fitted.encode(train), labels=None, name=Path(cfg.source).stem,
                       kind="text", codec=fitted, frames=(train, holdout), notes=tuple(notes))

    def layout(self, codec: Any, m: ModelConfig) -> tuple[tuple[tuple[int, str], ...] | None,
                                                           int]:
        if codec.latent:
            if m.family != "mlp":
                raise ConfigError(f"data.text_codec=autoencoder trains a GAN on codes, which "
                                  f"model.family={m.family} cannot make: use --preset "
                                  "text-latent (model.family=mlp)")
            return None, 0
        return codec.heads(), 0

    def sampling(self, run: Path, cfg: Config) -> tuple[Any, Conditioning | None]:
        return stored_codec(run, TextCodec.from_json), None

    def conditioning(self, cfg: Config, data: Dataset, x: torch.Tensor, seed: int,
                     device: torch.device) -> Conditioning:
        if cfg.model.conditional or cfg.model.clusters:
            raise ConfigError("model.conditional and model.clusters are not offered for text: "
                              "its strings have no labels")
        return Conditioning(len(x))

    def preview(self, x: torch.Tensor, value_range: tuple[float, float], data: Dataset,
                data_x: torch.Tensor, nrow: int) -> tuple[str, bytes]:
        strings = data.codec.decode(x[:PREVIEW_STRINGS])
        return ".txt", "".join(s + "\n" for s in strings).encode("utf-8")

    def write(self, run: Run, out: Path, num: int, seed: int, label: int | None,
              where: list[str]) -> int:
        return self.write_with(run, out, num, seed, label, where, {})

    def write_with(self, run: Run, out: Path, num: int, seed: int, label: int | None,
                   where: list[str], options: dict[str, Any]) -> int:
        if label is not None or where:
            raise GankitError("--class and --where are for images and tables; text runs are "
                              "unconditioned")
        between = options.get("between")
        if between is not None:
            strings = walk(run, between[0], between[1], options.get("steps") or 8)
        else:
            strings = sample_strings(run, num, seed, options.get("temperature"))
        write_strings(strings, out)
        return len(strings)

    def scorer(self, data: Dataset, cfg: Config) -> Scorer:
        return TextScorer(data.codec, data.frames, checker_of(cfg.data), cfg.train.seed)

    def evaluator(self, run: Run, extractor: str, data: str | None = None,
                  data_dir: str | None = None) -> Callable[[int, int], dict[str, Any]]:
        from .lm import fit_lm, mean_nll, reverse_nll

        if data is not None:
            raise GankitError("--data is for image runs: a text run is scored against its "
                              "own held-out strings")
        cfg = run.config.data
        train, holdout, _ = load_strings(cfg)
        codec = run.codec
        scorer = TextScorer(codec, (train, holdout), checker_of(cfg), 0)
        # the scoring language model, trained once
        lm = fit_lm(codec.ids(train), codec.vocab_size, lm_steps(len(train)), seed=0)
        holdout_ids = codec.ids(holdout)
        real_nll = mean_nll(lm, holdout_ids)

        def judge(num: int, seed: int) -> dict[str, Any]:
            samples = sample_strings(run, num, seed)
            scores = scorer.strings(samples, seed)
            ids = codec.ids(samples)
            return {"source": str(run.path), "step": run.step, "data": cfg.source,
                    "num": len(samples), "holdout_strings": len(holdout),
                    "nll": round(mean_nll(lm, ids), 6),
                    "nll_holdout": round(real_nll, 6),
                    "rev_nll": round(reverse_nll(ids, holdout_ids, codec.vocab_size,
                                                 seed=seed), 6),
                    **{k: round(float(v), 6) if isinstance(v, float) else v
                       for k, v in scores.items()}}

        return judge

    def describe(self, data: Dataset) -> str:
        c = data.codec
        return f"{len(data)} strings of up to {c.length} characters, {len(c.chars)} distinct"

    def report(self, run: Run) -> str:
        from .report import text_panels

        return text_panels(run)

    def view(self, run: Run) -> View:
        from .view import TextView

        return TextView(run)


__all__ = ["TEXT_SUFFIXES", "TextCodec", "TextKind", "sample_strings", "walk"]

"""Feature extractors by name, like torch-fidelity's registry.

An extractor turns images (N, C, H, W) in [0, 1] into features (N, D) for the Fréchet distance,
KID and precision/recall, and optionally into class probabilities (N, K) for the inception-style
score and class coverage. Built in: ``digits`` (the shipped classifier, 28x28 grayscale) and
``inception`` (FID Inception-v3 through the optional ``gankit[inception]`` extra). Register your
own with ``register_extractor``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError

Fn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Extractor:
    """Features (and optionally class probabilities) of images in [0, 1], in batches, no grad."""

    name: str
    features_fn: Fn
    probs_fn: Fn | None = None
    batch_size: int = 500

    def _batched(self, fn: Fn, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([fn(images[i:i + self.batch_size]).float().cpu()
                              for i in range(0, images.shape[0], self.batch_size)])

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Features (N, D) float32."""
        return self._batched(self.features_fn, images)

    def probs(self, images: torch.Tensor) -> torch.Tensor | None:
        """Class probabilities (N, K), or None when the extractor has no classifier."""
        return None if self.probs_fn is None else self._batched(self.probs_fn, images)


def _digits() -> Extractor:
    from .digit_classifier import load_digit_classifier

    model = load_digit_classifier()
    return Extractor("digits", model.features, lambda x: model(x).softmax(1))


def _inception() -> Extractor:
    from .inception import load_inception

    return load_inception()


# User registrations, filled only by explicit register_extractor calls.
_USER: dict[str, Callable[[], Extractor]] = {}
BUILTIN: dict[str, Callable[[], Extractor]] = {"digits": _digits, "inception": _inception}


def _as_fn(f: nn.Module | Fn) -> Fn:
    if isinstance(f, nn.Module):
        f.eval()
    return f


def register_extractor(name: str, features: nn.Module | Fn,
                       classifier: nn.Module | Fn | None = None, batch_size: int = 500) -> None:
    """Make ``name`` usable wherever an extractor is chosen (``eval.extractor``, ``--extractor``).

    ``features`` maps images (N, C, H, W) in [0, 1] to (N, D); ``classifier``, if given, to
    class logits (N, K). Modules are put in eval mode. Built-in names cannot be replaced.
    """
    if name in BUILTIN:
        raise ValueError(f"'{name}' is a built-in extractor and cannot be replaced")
    probs: Fn | None = None
    if classifier is not None:
        clf = _as_fn(classifier)

        def probs(x: torch.Tensor) -> torch.Tensor:
            return clf(x).softmax(1)

    extractor = Extractor(name, _as_fn(features), probs, batch_size)
    _USER[name] = lambda: extractor


def unregister_extractor(name: str) -> None:
    """Forget a user extractor (no error when unknown)."""
    _USER.pop(name, None)


def extractor_names() -> list[str]:
    """Built-in and registered extractor names."""
    return [*BUILTIN, *sorted(_USER)]


def get_extractor(name: str) -> Extractor:
    """The extractor called ``name``, loaded now; ConfigError for unknown names."""
    factory = BUILTIN.get(name) or _USER.get(name)
    if factory is None:
        raise ConfigError(f"unknown feature extractor '{name}' "
                          f"(choose from: {', '.join(extractor_names())})")
    return factory()


def default_extractor(shape: tuple[int, ...]) -> str:
    """``digits`` for 28x28 grayscale images, ``inception`` for any other images."""
    return "digits" if tuple(shape) == (1, 28, 28) else "inception"

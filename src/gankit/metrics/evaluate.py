"""The metric suite: everything gankit measures about a set of samples against its data.

Images are compared in an extractor's feature space (Fréchet distance, KID, precision/recall,
density/coverage) and, when the extractor classifies, by an inception-style score and class
coverage. Points of a built-in 2-D mixture get the PacGAN mode scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.base import Dataset
from ..data.mixtures import MIXTURES, Mixture, mixture
from ..errors import DataError
from .classes import class_coverage
from .extractors import Extractor, default_extractor, get_extractor
from .frechet import frechet_distance
from .goals import GOALS, TIEBREAK
from .kid import kernel_distance
from .modes import mode_scores
from .prdc import density_coverage, knn_radii, precision_recall
from .score import inception_score

REFERENCE_MAX = 10_000  # reference samples used at most (a fixed random subset beyond that)


@dataclass(frozen=True)
class Reference:
    """What samples are compared with, computed once: the data's features or its mixture."""

    shape: tuple[int, ...]
    extractor: Extractor | None = None
    features: np.ndarray | None = None
    radii: dict[int, np.ndarray] | None = None  # k -> k-NN radii of the features (k = 3, 5)
    classes: np.ndarray | None = None  # the extractor's predicted classes for the data
    num_classes: int = 0
    mixture: Mixture | None = None

    @property
    def main(self) -> str:
        """The default metric that ranks checkpoints."""
        return "modes" if self.mixture is not None else "fd"


def reference(data: Dataset, extractor: str = "", seed: int = 0) -> Reference:
    """Prepare ``data`` for comparisons; ``extractor`` "" picks the default for its shape."""
    if not data.is_image:
        if data.name not in MIXTURES:
            raise DataError(f"points can only be scored against {', '.join(MIXTURES)}")
        return Reference(shape=data.shape, mixture=mixture(data.name))
    ext = get_extractor(extractor or default_extractor(data.shape))
    x = data.samples
    if len(x) > REFERENCE_MAX:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:REFERENCE_MAX]]
    probs = ext.probs(x)
    feats = ext.features(x).numpy()
    return Reference(shape=data.shape, extractor=ext, features=feats,
                     radii={k: knn_radii(feats, k) for k in (3, 5)},
                     classes=None if probs is None else probs.argmax(1).numpy(),
                     num_classes=0 if probs is None else int(probs.shape[1]))


def evaluate(samples: torch.Tensor, ref: Reference, seed: int = 0) -> dict[str, float]:
    """All metrics of ``samples`` against ``ref``: images (N, C, H, W) in [0, 1] or points (N, D).

    Needs at least 10 samples. Values are plain floats (``modes``, ``classes`` integers). A class
    counts as covered when it gets at least a tenth of its fair share (1/K) of the samples.
    """
    if tuple(samples.shape[1:]) != ref.shape:
        raise DataError(f"samples of shape {tuple(samples.shape[1:])} cannot be compared with "
                        f"data of shape {ref.shape}")
    if samples.shape[0] < 10:
        raise DataError(f"evaluation needs at least 10 samples, got {samples.shape[0]}")
    if ref.mixture is not None:
        return mode_scores(samples, ref.mixture.means, ref.mixture.std)
    assert ref.extractor is not None and ref.features is not None
    feats = ref.extractor.features(samples).numpy()
    out: dict[str, float] = {"fd": frechet_distance(ref.features, feats)}
    out["kid"], out["kid_std"] = kernel_distance(ref.features, feats, seed=seed)
    radii = ref.radii or {}
    out["precision"], out["recall"] = precision_recall(ref.features, feats, 3, radii.get(3))
    out["density"], out["coverage"] = density_coverage(ref.features, feats, 5, radii.get(5))
    probs = ref.extractor.probs(samples)
    if probs is not None and ref.classes is not None:
        out["is"], out["is_std"] = inception_score(probs)
        out["classes"], out["class_kl"] = class_coverage(
            probs.argmax(1), ref.classes, ref.num_classes, min_fraction=0.1 / ref.num_classes)
    return out


def is_better(new: dict[str, float], old: dict[str, float] | None, main: str) -> bool:
    """Whether scores ``new`` beat ``old`` on ``main`` (ties broken by TIEBREAK)."""
    if main not in new:
        return False
    if old is None or main not in old:
        return True
    for key in (main, TIEBREAK.get(main)):
        if key is None or new.get(key) == old.get(key):
            continue
        sign = 1.0 if GOALS[key] == "max" else -1.0
        return sign * (new[key] - old[key]) > 0
    return False

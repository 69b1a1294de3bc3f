"""``gankit eval``: metrics of a run's generator or of a file of samples against a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import data as data_sources
from .config import DataConfig
from .data.arrays import load_array
from .errors import DataError
from .metrics.evaluate import Reference, reference
from .metrics.evaluate import evaluate as evaluate_samples
from .metrics.prdc import density_coverage, precision_recall
from .run import is_run, load_run


def load_samples(path: Path, num: int) -> torch.Tensor:
    """At most ``num`` samples from a file: ``samples`` points (N, D), else images in [0, 1]."""
    if path.suffix.lower() == ".npz" and path.is_file():
        try:
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                points = z["samples"] if "samples" in z.files else None
        except Exception:  # a damaged archive: load_array below reports it as a DataError
            points = None
        if points is not None:
            if points.ndim != 2 or points.dtype.kind != "f":
                raise DataError(f"{path}: 'samples' must be float points (N, D), got "
                                f"{points.dtype} {points.shape}")
            return torch.from_numpy(points[:num].astype(np.float32))
    return load_array(path).images[:num]


def evaluate_source(source: Path, data: str | None = None, data_dir: str | None = None,
                    num: int = 2500, extractor: str = "", seed: int = 0) -> dict[str, Any]:
    """Metrics of a run (``num`` fresh samples from its EMA generator, judged by its data's
    kind) or of a file of image or point samples.

    ``data`` is the dataset to compare with: by default the run's own, or digits for a file.
    """
    if source.is_dir() or is_run(source):
        run = load_run(source)
        return run.kind.evaluate(run, num, seed, extractor, data, data_dir)
    x = load_samples(source, num)
    if x.ndim == 2 and data is None:
        raise DataError(f"{source} holds 2-D points: name the mixture with --data "
                        "(ring8 or grid25)")
    return score_samples(x, {"source": str(source)}, DataConfig(), data, data_dir, extractor,
                         seed)


def score_samples(x: torch.Tensor, head: dict[str, Any], cfg: DataConfig, data: str | None,
                  data_dir: str | None, extractor: str, seed: int,
                  labels: torch.Tensor | None = None) -> dict[str, Any]:
    """Images in [0, 1] or points ``x`` scored against ``data`` (default: ``cfg``'s source);
    ``labels``, the classes a class-conditional run was asked for, add within-class scores."""
    if data is not None:
        cfg = DataConfig(source=data, dir=data_dir or "")
    elif data_dir is not None:
        cfg = DataConfig(source=cfg.source, dir=data_dir)
    dataset = data_sources.build(cfg)
    ref = reference(dataset, extractor)
    scores = evaluate_samples(x, ref, seed=seed)
    name = ref.extractor.name if ref.extractor is not None else "mixture"
    if labels is not None and name == "digits" and cfg.source in ("digits", "mnist"):
        scores.update(class_scores(x, labels.numpy(), ref))  # the classifier's classes are theirs
    return {**head, "data": cfg.source, "features": name, "num": int(x.shape[0]),
            **{k: round(float(v), 6) if isinstance(v, float) else v for k, v in scores.items()}}


def class_scores(x: torch.Tensor, labels: np.ndarray, ref: Reference) -> dict[str, Any]:
    """Within-class diversity of a class-conditional generator: for each class asked for, the
    recall and coverage of its samples against the real images of that class (as the
    extractor classifies them); the worst class of each, and the share of samples that are the
    class they were asked for (``class_hit``)."""
    assert ref.extractor is not None and ref.features is not None and ref.classes is not None
    feats = ref.extractor.features(x).numpy()
    probs = ref.extractor.probs(x)
    hit = float((probs.argmax(1).numpy() == labels).mean()) if probs is not None else float("nan")
    recalls, coverages = {}, {}
    for k in np.unique(labels):
        real, fake = ref.features[ref.classes == k], feats[labels == k]
        if len(real) <= 5 or len(fake) <= 5:
            continue  # too few for 5 nearest neighbours
        recalls[int(k)] = precision_recall(real, fake, 3)[1]
        coverages[int(k)] = density_coverage(real, fake, 5)[1]
    worst_r = min(recalls, key=recalls.get) if recalls else -1
    worst_c = min(coverages, key=coverages.get) if coverages else -1
    return {"class_hit": hit,
            "class_recall_min": recalls.get(worst_r, float("nan")), "class_recall_worst": worst_r,
            "class_coverage_min": coverages.get(worst_c, float("nan")),
            "class_coverage_worst": worst_c}


def format_scores(scores: dict[str, Any]) -> str:
    """A two-column table of the scores, one per line."""
    width = max(len(k) for k in scores)
    return "\n".join(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in scores.items())

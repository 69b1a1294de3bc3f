"""``gankit eval``: metrics of a run's generator or of a file of samples against a dataset."""

from __future__ import annotations

from collections.abc import Callable
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

DEFAULT_REPLICATES = 20  # draws behind an interval (gankit eval --ci)
# Keys of a score record that describe it rather than measure it
HEADER = ("source", "step", "data", "features", "num", "holdout_rows", "ci", "replicates")


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
                    num: int = 2500, extractor: str = "", seed: int = 0, ci: float = 0.0,
                    replicates: int = DEFAULT_REPLICATES) -> dict[str, Any]:
    """Metrics of a run (``num`` fresh samples from its EMA generator, judged by its data's
    kind) or of a file of image or point samples.

    ``data`` is the dataset to compare with: by default the run's own, or digits for a file.
    With ``ci`` (e.g. 0.95), each metric also gets a ``<metric>_ci`` interval (see
    ``replicated``).
    """
    judge = judge_source(source, data, data_dir, extractor)
    if ci <= 0:
        return judge(num, seed)
    return with_intervals(replicated(judge, num, seed, replicates), ci)


def judge_source(source: Path, data: str | None = None, data_dir: str | None = None,
                 extractor: str = "") -> Callable[[int, int], dict[str, Any]]:
    """A function of (num, seed) scoring ``source``: for a run, ``num`` fresh samples drawn with
    ``seed``; for a file, its first ``num`` samples (seed 0) or a bootstrap resample of them
    drawn with replacement (any other seed). The data's reference is prepared once."""
    if source.is_dir() or is_run(source):
        run = load_run(source)
        return run.kind.evaluator(run, extractor, data, data_dir)
    loaded: dict[int, torch.Tensor] = {}  # read once per sample count, not once per draw
    prepared: list[tuple[DataConfig, Reference]] = []

    def judge(num: int, seed: int) -> dict[str, Any]:
        if num not in loaded:
            loaded[num] = load_samples(source, num)
        x = loaded[num]
        if x.ndim == 2 and data is None:
            raise DataError(f"{source} holds 2-D points: name the mixture with --data "
                            "(ring8 or grid25)")
        if not prepared:
            prepared.append(prepare_reference(DataConfig(), data, data_dir, extractor))
        if seed:
            gen = torch.Generator().manual_seed(seed)
            x = x[torch.randint(len(x), (len(x),), generator=gen)]
        return score_samples(x, {"source": str(source)}, prepared[0], seed)

    return judge


def prepare_reference(cfg: DataConfig, data: str | None, data_dir: str | None,
                      extractor: str) -> tuple[DataConfig, Reference]:
    """(the data compared with: ``data``, by default ``cfg``'s source, and its reference)."""
    if data is not None:
        cfg = DataConfig(source=data, dir=data_dir or "")
    elif data_dir is not None:
        cfg = DataConfig(source=cfg.source, dir=data_dir)
    return cfg, reference(data_sources.build(cfg), extractor)


def score_samples(x: torch.Tensor, head: dict[str, Any],
                  prepared: tuple[DataConfig, Reference], seed: int,
                  labels: torch.Tensor | None = None) -> dict[str, Any]:
    """Images in [0, 1] or points ``x`` scored against a prepared reference; ``labels``, the
    classes a class-conditional run was asked for, add within-class scores."""
    cfg, ref = prepared
    scores = evaluate_samples(x, ref, seed=seed)
    name = ref.extractor.name if ref.extractor is not None else "mixture"
    if labels is not None and name == "digits" and cfg.source in ("digits", "mnist"):
        scores.update(class_scores(x, labels.numpy(), ref))  # the classifier's classes are theirs
    return {**head, "data": cfg.source, "features": name, "num": int(x.shape[0]),
            **{k: round(float(v), 6) if isinstance(v, float) else v for k, v in scores.items()}}


def replicated(judge: Callable[[int, int], dict[str, Any]], num: int, seed: int,
               replicates: int) -> list[dict[str, Any]]:
    """``replicates`` scorings of ``judge`` at seeds ``seed``, ``seed + 1``, ...: for a run,
    independent draws of ``num`` samples from its generator (a parametric bootstrap: the
    spread is that of the metric's estimate from ``num`` samples against a fixed reference);
    for a file, the file itself and then bootstrap resamples of it."""
    return [judge(num, seed + i) for i in range(replicates)]


def metric_names(scores: dict[str, Any]) -> list[str]:
    """The keys of ``scores`` that are metric values (numbers other than the header's)."""
    return [k for k, v in scores.items() if k not in HEADER
            and not k.endswith(("_worst", "_std"))
            and isinstance(v, (int, float)) and not isinstance(v, bool)]


def percentile_interval(values: list[float], ci: float) -> tuple[float, float]:
    """The central ``ci`` share of ``values`` (linear interpolation between order statistics)."""
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    if len(a) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - ci) / 2.0
    return float(np.quantile(a, tail)), float(np.quantile(a, 1.0 - tail))


def with_intervals(draws: list[dict[str, Any]], ci: float) -> dict[str, Any]:
    """The first draw's scores, each metric with ``<metric>_ci`` ([low, high] over the draws),
    and ``ci`` and ``replicates``."""
    out = dict(draws[0])
    for k in metric_names(out):
        lo, hi = percentile_interval([d[k] for d in draws if k in d], ci)
        out[f"{k}_ci"] = [round(lo, 6), round(hi, 6)]
    return {**out, "ci": ci, "replicates": len(draws)}


def compare(a: list[dict[str, Any]], b: list[dict[str, Any]], ci: float) -> list[dict[str, Any]]:
    """Metric by metric, B against A from paired draws (the same seeds): each value, the
    difference B - A with its ``ci`` interval, and the verdict: which is better, or
    ``within noise`` when the interval holds 0."""
    from .metrics.goals import GOALS

    rows = []
    for k in metric_names(a[0]):
        if k not in b[0]:
            continue
        diffs = [y[k] - x[k] for x, y in zip(a, b, strict=True) if k in x and k in y]
        lo, hi = percentile_interval(diffs, ci)
        verdict = "within noise"
        goal = GOALS.get(k)
        if goal is not None and (lo > 0 or hi < 0):
            b_better = (lo > 0) == (goal == "max")
            verdict = "B better" if b_better else "A better"
        elif goal is None and (lo > 0 or hi < 0):
            verdict = "B higher" if lo > 0 else "B lower"
        rows.append({"metric": k, "a": a[0][k], "b": b[0][k], "diff": b[0][k] - a[0][k],
                     "diff_ci": [lo, hi], "verdict": verdict})
    return rows


def format_comparison(rows: list[dict[str, Any]], ci: float, names: tuple[str, str]) -> str:
    """The comparison as a table, one metric per line."""
    width = max([len(r["metric"]) for r in rows] + [6])
    lines = [f"A = {names[0]}", f"B = {names[1]}",
             f"{'metric':<{width}}  {'A':>10}  {'B':>10}  {'B - A':>10}  "
             f"{f'{ci:.0%} interval':>22}  verdict"]
    for r in rows:
        lo, hi = r["diff_ci"]
        lines.append(f"{r['metric']:<{width}}  {r['a']:>10.4g}  {r['b']:>10.4g}  "
                     f"{r['diff']:>+10.4g}  [{lo:>+9.4g}, {hi:>+9.4g}]  {r['verdict']}")
    return "\n".join(lines)


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
    """A two-column table of the scores, one per line; a metric's interval beside it."""
    shown = {k: v for k, v in scores.items() if not k.endswith("_ci")}
    width = max(len(k) for k in shown)
    lines = []
    for k, v in shown.items():
        text = f"{v:.6g}" if isinstance(v, float) else str(v)
        interval = scores.get(f"{k}_ci")
        if interval is not None:
            text = f"{text:<10}  [{interval[0]:.4g}, {interval[1]:.4g}]"
        lines.append(f"{k:<{width}}  {text}")
    return "\n".join(lines)

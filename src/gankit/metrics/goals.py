"""Which way each metric is better, and training targets on them (``--target fd=3``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Whether a metric is better low or high. "fd" is FID when the extractor is inception.
GOALS = {
    "fd": "min", "kid": "min", "precision": "max", "recall": "max", "density": "max",
    "coverage": "max", "is": "max", "classes": "max", "class_kl": "min",
    "high_quality": "max", "modes": "max", "mode_kl": "min",
    # tables (gankit.metrics.tabular)
    "column_shapes": "max", "pair_trends": "max", "missing_similarity": "max",
    "detection_auc": "min", "detection_auc_logistic": "min", "efficacy_f1_ratio": "max",
    "efficacy_r2_ratio": "max",
    "dcr_share": "min",
    # time series (gankit.metrics.sequences)
    "discriminative": "min", "predictive": "min", "marginal_ks": "min",
    "autocorrelation_gap": "min", "correlation_gap": "min", "length_distance": "min",
    "tstr_accuracy": "max", "tstr_ratio": "max",
    # text (gankit.metrics.text)
    "bleu4": "max", "self_bleu4": "min", "novelty": "max", "uniqueness": "max",
    "validity": "max", "nll": "min",
}
# Ties on the main metric are broken by this one (modes are often all captured).
TIEBREAK = {"modes": "high_quality"}

OPS = ("<=", ">=", "<", ">", "=")
_TARGET = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|<|>|=)\s*([-+0-9.eE]+|inf)\s*$")


@dataclass(frozen=True)
class Target:
    """A bound on one metric: ``fd<=3`` is met by an evaluation with fd at most 3."""

    metric: str
    op: str
    value: float

    def met(self, scores: dict[str, object]) -> bool:
        """Whether ``scores`` (one evaluation) reach the bound."""
        v = scores.get(self.metric)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            return False
        return {"<=": v <= self.value, ">=": v >= self.value, "<": v < self.value,
                ">": v > self.value}[self.op]

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_target(text: str) -> Target:
    """``metric=value`` (at most for metrics better low, at least for those better high), or
    ``metric<value``, ``<=``, ``>``, ``>=``; ValueError with the reason when it is not one."""
    m = _TARGET.match(text)
    if m is None:
        raise ValueError(f"'{text}' is not METRIC=VALUE (or <, <=, >, >=), e.g. fd=3")
    metric, op, raw = m.groups()
    if metric not in GOALS:
        raise ValueError(f"unknown metric '{metric}' (choose from {', '.join(GOALS)})")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"'{raw}' is not a number") from None
    if op == "=":
        op = "<=" if GOALS[metric] == "min" else ">="
    return Target(metric, op, value)


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``5m``, ``1.5h``; ValueError when it is not one."""
    m = re.match(r"^\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h|)\s*$", text)
    if m is None or float(m.group(1)) <= 0:
        raise ValueError(f"'{text}' is not a positive duration such as 90s, 5m or 1h")
    return float(m.group(1)) * _UNITS[m.group(2)]

"""One-dimensional Gaussian mixtures for mode-specific normalisation (CTGAN), fitted by EM.

Vectorised over the rows: one fit is a few dozen (n, K) array operations, so a column of a
million values is fitted on a seeded subsample in well under a second and encoded in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIT_ROWS = 20_000  # a mixture is fitted on at most this many values (a seeded subsample)
MIN_WEIGHT = 0.005  # components lighter than this are dropped, as CTGAN's weight threshold
ITERATIONS = 60
TOLERANCE = 1e-5  # EM stops when the mean log-likelihood gains less than this


@dataclass(frozen=True)
class Mixture1D:
    """Weights, means and standard deviations of a 1-D Gaussian mixture, largest weight first."""

    weights: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    def log_densities(self, x: np.ndarray) -> np.ndarray:
        """log(w_k N(x; mu_k, s_k)) for every value and component, (n, K)."""
        z = (x[:, None] - self.means[None, :]) / self.stds[None, :]
        return np.log(self.weights)[None, :] - np.log(self.stds)[None, :] - 0.5 * z * z

    def modes(self, x: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
        """The most probable component of each value (n,), int64."""
        out = np.empty(len(x), dtype=np.int64)
        for i in range(0, len(x), chunk):
            out[i:i + chunk] = self.log_densities(x[i:i + chunk]).argmax(1)
        return out

    def to_json(self) -> dict[str, list[float]]:
        """Plain lists, for the codec's JSON."""
        return {"weights": self.weights.tolist(), "means": self.means.tolist(),
                "stds": self.stds.tolist()}

    @classmethod
    def from_json(cls, d: dict[str, list[float]]) -> Mixture1D:
        """Inverse of ``to_json`` (shapes and values checked)."""
        w, m, s = (np.asarray(d[k], dtype=np.float64) for k in ("weights", "means", "stds"))
        if not (w.ndim == 1 and len(w) >= 1 and w.shape == m.shape == s.shape
                and np.isfinite(w).all() and np.isfinite(m).all() and np.isfinite(s).all()
                and (w > 0).all() and (s > 0).all()):
            raise ValueError("invalid mixture")
        return cls(w / w.sum(), m, s)


def fit_mixture(x: np.ndarray, components: int = 10, seed: int = 0) -> Mixture1D:
    """A Gaussian mixture of at most ``components`` modes fitted to finite values ``x`` by EM.

    Means start at evenly spaced quantiles; each std is floored at 1e-3 of the data's spread
    (so a spike such as many exact zeros is one narrow mode); modes lighter than MIN_WEIGHT
    are dropped at the end.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) > FIT_ROWS:
        x = np.random.default_rng(seed).choice(x, FIT_ROWS, replace=False)
    spread = float(x.std())
    floor = max(spread * 1e-3, 1e-12 * max(1.0, float(np.abs(x).max())))
    if spread == 0.0:
        return Mixture1D(np.ones(1), np.array([float(x[0])]), np.array([max(floor, 1e-12)]))
    center = float(x.mean())
    xs = (x - center) / spread  # fitted standardised: no cancellation for large magnitudes
    floor = max(1e-3, floor / spread)
    k = max(1, min(components, len(np.unique(xs))))
    means = np.quantile(xs, (np.arange(k) + 0.5) / k)
    weights, means, stds = _em(xs, np.full(k, 1.0 / k), means, np.full(k, 1.0 / k), floor,
                               ITERATIONS)
    keep = weights >= MIN_WEIGHT
    if not keep.all():  # the kept modes re-fitted, so they cover the dropped ones' values
        weights, means, stds = _em(xs, weights[keep] / weights[keep].sum(), means[keep],
                                   stds[keep], floor, ITERATIONS // 2)
    order = np.argsort(-weights, kind="stable")
    return Mixture1D(weights[order], means[order] * spread + center, stds[order] * spread)


def _em(x: np.ndarray, weights: np.ndarray, means: np.ndarray, stds: np.ndarray,
        floor: float, iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EM iterations from the given mixture until the mean log-likelihood settles."""
    prev = -np.inf
    for _ in range(iterations):
        logp = Mixture1D(weights, means, stds).log_densities(x)
        top = logp.max(1, keepdims=True)
        resp = np.exp(logp - top)
        total = resp.sum(1, keepdims=True)
        ll = float((np.log(total) + top).mean())
        resp /= total
        nk = resp.sum(0) + 1e-12
        weights = nk / nk.sum()
        means = (x @ resp) / nk
        var = ((x * x) @ resp) / nk - means * means
        stds = np.sqrt(np.maximum(var, floor * floor))
        if ll - prev < TOLERANCE:
            break
        prev = ll
    return weights, means, stds

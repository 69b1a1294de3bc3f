"""How close synthetic time series are to real ones (TimeGAN's scores and simpler statistics).

Every function is pure: it takes real and synthetic series as float arrays (N, T, C) in the
scale the scores are read in (min-max scaled to [0, 1], as TimeGAN scores them), optional
``lengths`` (N,) for variable-length sets (steps at or past a series' length are padding and
never read), and a ``seed`` that fixes every random draw (splits, batches, initial weights).
The post-hoc networks train ``iterations`` steps, by default the module's constants (TimeGAN's
counts), read at each call.

* ``discriminative_score``: TimeGAN's ``metrics/discriminative_metrics.py``: a post-hoc GRU
  (hidden size C/2, at least 1 — TimeGAN's own is 0 for one channel, which cannot train) with a
  linear head on its last valid state, Adam (lr 1e-3), 2,000 iterations of 128 real and 128
  synthetic series from an 80/20 split of each; |accuracy - 0.5| on the held-out 20%.
* ``predictive_score``: TimeGAN's ``metrics/predictive_metrics.py``: a GRU (hidden C/2, at
  least 1) with a sigmoid head trained 5,000 iterations of 128 synthetic series to predict the
  last channel one step ahead from the other channels (the last channel itself for one channel,
  where TimeGAN has no inputs), then its mean absolute error on every real series.
* ``marginal_ks``: per channel, the Kolmogorov-Smirnov statistic between all valid real and
  synthetic values; ``autocorrelation_gap``: mean |ACF_real - ACF_syn| over lags 1..L and
  channels, each ACF pooled over series; ``correlation_gap``: mean |corr_real - corr_syn| over
  channel pairs (the values pooled over time); ``length_distance``: total variation between the
  length histograms; ``classifier_accuracy``: a ROCKET classifier (``metrics.rocket``) trained
  on one set of labelled series and tested on another (train on synthetic, test on real).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from ..optim import Adam

DISCRIMINATIVE_ITERATIONS = 2000
PREDICTIVE_ITERATIONS = 5000
BATCH = 128
TRAIN_SHARE = 0.8


def full_lengths(x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """``lengths``, or every series' full length when there are none."""
    if lengths is None:
        return np.full(len(x), x.shape[1], dtype=np.int64)
    return np.asarray(lengths, dtype=np.int64)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """torch's global generator seeded for the block and restored after it (initial weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one CPU thread for the block, as before after it: the post-hoc networks are
    tiny (hidden size C/2), and more threads only wait on each other (measured on a busy
    2-core machine: 10 s on one thread, 466 s on two, for one discriminative score)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _PostHocGRU(nn.Module):
    """A one-layer GRU with a linear head on every step (``steps``) or on the last valid one."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        out, _ = self.gru(x)
        if lengths is None:
            return self.head(out)
        last = out[torch.arange(len(x)), lengths - 1]
        return self.head(last).squeeze(1)


def hidden_size(channels: int) -> int:
    """TimeGAN's post-hoc hidden size, int(C / 2), at least 1."""
    return max(1, channels // 2)


def _discriminative_score(real: np.ndarray, synthetic: np.ndarray, seed: int = 0,
                         real_lengths: np.ndarray | None = None,
                         synthetic_lengths: np.ndarray | None = None,
                         iterations: int | None = None) -> float:
    """|accuracy - 0.5| of a post-hoc GRU telling real from synthetic series (0 is best)."""
    iterations = iterations or DISCRIMINATIVE_ITERATIONS
    rng = np.random.default_rng(seed)
    xr, xs = (torch.as_tensor(np.asarray(a, dtype=np.float32)) for a in (real, synthetic))
    lr = torch.as_tensor(full_lengths(real, real_lengths))
    ls = torch.as_tensor(full_lengths(synthetic, synthetic_lengths))
    split_r, split_s = (_split(len(a), rng) for a in (xr, xs))
    with _seeded(seed):
        model = _PostHocGRU(xr.shape[2], hidden_size(xr.shape[2]))
    opt = Adam(model.parameters(), lr=1e-3)
    bce = nn.BCEWithLogitsLoss()
    for _ in range(iterations):
        br = rng.choice(split_r[0], min(BATCH, len(split_r[0])), replace=False)
        bs = rng.choice(split_s[0], min(BATCH, len(split_s[0])), replace=False)
        logits = model(torch.cat([xr[br], xs[bs]]), torch.cat([lr[br], ls[bs]]))
        logit_r, logit_s = logits[:len(br)], logits[len(br):]
        loss = (bce(logit_r, torch.ones_like(logit_r))
                + bce(logit_s, torch.zeros_like(logit_s)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        tr, ts = split_r[1], split_s[1]
        right = int((model(xr[tr], lr[tr]) > 0).sum()) + int((model(xs[ts], ls[ts]) <= 0).sum())
    accuracy = right / (len(tr) + len(ts))
    return abs(accuracy - 0.5)


def _split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, held-out indices): a seeded TRAIN_SHARE of ``n``, each side >= 1."""
    order = rng.permutation(n)
    k = min(n - 1, max(1, int(n * TRAIN_SHARE)))
    return order[:k], order[k:]


def _predictive_parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets): the other channels up to T-1, the last channel from step 1."""
    inputs = x[:, :-1, :-1] if x.shape[2] > 1 else x[:, :-1, :]
    return inputs, x[:, 1:, -1:]


def _predictive_score(real: np.ndarray, synthetic: np.ndarray, seed: int = 0,
                     real_lengths: np.ndarray | None = None,
                     synthetic_lengths: np.ndarray | None = None,
                     iterations: int | None = None) -> float:
    """Mean absolute error on real series of a one-step-ahead GRU trained on ``synthetic``
    (train it on real data for the floor); lower is better."""
    iterations = iterations or PREDICTIVE_ITERATIONS
    rng = np.random.default_rng(seed)
    xr, xs = (torch.as_tensor(np.asarray(a, dtype=np.float32)) for a in (real, synthetic))
    if xr.shape[1] < 2:
        raise ValueError("the predictive score needs series of at least 2 steps")
    lr = torch.as_tensor(full_lengths(real, real_lengths)) - 1
    ls = torch.as_tensor(full_lengths(synthetic, synthetic_lengths)) - 1
    in_s, out_s = _predictive_parts(xs)
    in_r, out_r = _predictive_parts(xr)
    with _seeded(seed):
        model = _PostHocGRU(in_s.shape[2], hidden_size(xr.shape[2]))
    opt = Adam(model.parameters(), lr=1e-3)
    steps = torch.arange(in_s.shape[1])
    for _ in range(iterations):
        b = rng.choice(len(xs), min(BATCH, len(xs)), replace=False)
        mask = (steps[None, :] < ls[b, None]).unsqueeze(2).float()
        pred = torch.sigmoid(model(in_s[b]))
        loss = ((pred - out_s[b]).abs() * mask).sum() / mask.sum().clamp(min=1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = torch.sigmoid(model(in_r))
    mask = (steps[None, :] < lr[:, None]).unsqueeze(2).float()
    per_series = ((pred - out_r).abs() * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1)
    return float(per_series.mean())


def _valid_values(x: np.ndarray, lengths: np.ndarray | None) -> list[np.ndarray]:
    """Per channel, every valid value of every series."""
    n = full_lengths(x, lengths)
    keep = np.arange(x.shape[1])[None, :] < n[:, None]
    return [x[:, :, c][keep] for c in range(x.shape[2])]


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the ECDFs."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    if len(a) == 0 or len(b) == 0:
        return 1.0
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def marginal_ks(real: np.ndarray, synthetic: np.ndarray,
                real_lengths: np.ndarray | None = None,
                synthetic_lengths: np.ndarray | None = None) -> np.ndarray:
    """Per channel, the KS statistic between real and synthetic values (C,); 0 is best."""
    vr, vs = _valid_values(real, real_lengths), _valid_values(synthetic, synthetic_lengths)
    return np.array([ks_statistic(a, b) for a, b in zip(vr, vs, strict=True)])


def autocorrelation(x: np.ndarray, max_lag: int, lengths: np.ndarray | None = None
                    ) -> np.ndarray:
    """(max_lag, C): per lag k and channel, the correlation of x_t with x_{t+k}, pooled over
    series (each centred on the pooled mean), over pairs where both steps are valid."""
    n = full_lengths(x, lengths)
    t = x.shape[1]
    valid = np.arange(t)[None, :] < n[:, None]
    out = np.zeros((max_lag, x.shape[2]))
    for c in range(x.shape[2]):
        v = x[:, :, c].astype(np.float64)
        mean = v[valid].mean()
        var = ((v - mean) ** 2)[valid].mean()
        centred = np.where(valid, v - mean, 0.0)
        for k in range(1, max_lag + 1):
            both = valid[:, :-k] & valid[:, k:]
            if var <= 0 or not both.any():
                continue
            out[k - 1, c] = (centred[:, :-k] * centred[:, k:])[both].mean() / var
    return out


def autocorrelation_gap(real: np.ndarray, synthetic: np.ndarray, max_lag: int = 0,
                        real_lengths: np.ndarray | None = None,
                        synthetic_lengths: np.ndarray | None = None) -> float:
    """Mean |ACF_real - ACF_syn| over lags 1..``max_lag`` (0: up to T/2) and channels."""
    lag = max_lag or max(1, real.shape[1] // 2)
    lag = min(lag, real.shape[1] - 1)
    if lag < 1:
        return 0.0
    a = autocorrelation(real, lag, real_lengths)
    b = autocorrelation(synthetic, lag, synthetic_lengths)
    return float(np.abs(a - b).mean())


def channel_correlation(x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """(C, C) Pearson correlations between channels over every valid step (a constant
    channel correlates 0 with the others)."""
    n = full_lengths(x, lengths)
    keep = np.arange(x.shape[1])[None, :] < n[:, None]
    v = x[keep].astype(np.float64)  # (valid steps, C)
    v = v - v.mean(axis=0)
    sd = np.sqrt((v ** 2).mean(axis=0))
    z = np.divide(v, sd, out=np.zeros_like(v), where=sd > 0)
    corr = (z.T @ z) / max(1, len(z))
    np.fill_diagonal(corr, 1.0)
    return corr


def correlation_gap(real: np.ndarray, synthetic: np.ndarray,
                    real_lengths: np.ndarray | None = None,
                    synthetic_lengths: np.ndarray | None = None) -> float:
    """Mean |corr_real - corr_syn| over the channel pairs (0 for one channel)."""
    c = real.shape[2]
    if c < 2:
        return 0.0
    a = channel_correlation(real, real_lengths)
    b = channel_correlation(synthetic, synthetic_lengths)
    upper = np.triu_indices(c, 1)
    return float(np.abs(a - b)[upper].mean())


def length_distance(real_lengths: np.ndarray, synthetic_lengths: np.ndarray,
                    max_length: int) -> float:
    """Total variation distance between the two length histograms over 1..max_length."""
    bins = np.arange(1, max_length + 2)
    a = np.histogram(real_lengths, bins)[0].astype(np.float64)
    b = np.histogram(synthetic_lengths, bins)[0].astype(np.float64)
    return float(0.5 * np.abs(a / max(1.0, a.sum()) - b / max(1.0, b.sum())).sum())


def discriminative_score(real: np.ndarray, synthetic: np.ndarray, seed: int = 0,
                         real_lengths: np.ndarray | None = None,
                         synthetic_lengths: np.ndarray | None = None,
                         iterations: int | None = None) -> float:
    """|accuracy - 0.5| of a post-hoc GRU telling real from synthetic series (0 is best)."""
    with one_thread():
        return _discriminative_score(real, synthetic, seed, real_lengths, synthetic_lengths,
                                     iterations)


def predictive_score(real: np.ndarray, synthetic: np.ndarray, seed: int = 0,
                     real_lengths: np.ndarray | None = None,
                     synthetic_lengths: np.ndarray | None = None,
                     iterations: int | None = None) -> float:
    """Mean absolute error on real series of a one-step-ahead GRU trained on ``synthetic``
    (train it on real data for the floor); lower is better."""
    with one_thread():
        return _predictive_score(real, synthetic, seed, real_lengths, synthetic_lengths,
                                 iterations)


def classifier_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                        test_y: np.ndarray, seed: int = 0,
                        train_lengths: np.ndarray | None = None,
                        test_lengths: np.ndarray | None = None,
                        kernels: int | None = None) -> float:
    """Accuracy on (``test_x``, ``test_y``) of a ROCKET classifier (``metrics.rocket``, its
    ``kernels`` random kernels drawn by ``seed``) trained on (``train_x``, ``train_y``): with
    synthetic training series, train on synthetic, test on real (TSTR)."""
    from . import rocket

    with one_thread():
        return rocket.accuracy(train_x, train_y, full_lengths(train_x, train_lengths),
                               test_x, test_y, full_lengths(test_x, test_lengths), seed,
                               kernels or rocket.KERNELS)

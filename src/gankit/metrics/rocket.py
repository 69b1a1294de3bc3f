"""A time-series classifier whose accuracy is a property of the data, not of its seed.

ROCKET (Dempster, Petitjean and Webb, "ROCKET: exceptionally fast and accurate time series
classification using random convolutional kernels", 2020): many random dilated convolution
kernels, two features per kernel (the share of positive outputs and the largest output) over
each series' valid steps, and a ridge classifier on them with its penalty chosen by leave-one-out
cross-validation. Among the most accurate classifiers on the UEA/UCR archives, and with no
training loop its accuracy barely moves with the seed: a GRU trained on BasicMotions' 40 series
reached 0.45-0.95 on the same held-out series depending on its initial weights alone (measured).

Kernels (as the paper's multivariate version): length 7, 9 or 11; weights N(0, 1) centred;
bias U(-1, 1); dilation 2**U(0, log2((T - 1) / (length - 1))); zero padding on half of them;
each reads a random subset of the channels. Series are standardised per channel with the
training series' mean and deviation.
"""

from __future__ import annotations

import math

import numpy as np
import torch

KERNELS = 2000
LENGTHS = (7, 9, 11)
ALPHAS = np.logspace(-3, 3, 10)


def _kernels(channels: int, steps: int, count: int, rng: np.random.Generator
             ) -> list[tuple[int, int, bool, torch.Tensor, torch.Tensor]]:
    """Kernels grouped by (length, dilation, padded): weights (K, C, L) and biases (K,)."""
    groups: dict[tuple[int, int, bool], tuple[list[np.ndarray], list[float]]] = {}
    for _ in range(count):
        length = int(rng.choice(LENGTHS))
        top = math.log2(max(1.0, (steps - 1) / (length - 1)))
        dilation = int(2 ** rng.uniform(0, top))
        padded = bool(rng.integers(2))
        used = int(2 ** rng.uniform(0, math.log2(min(channels, length) + 1)))
        pick = rng.choice(channels, min(channels, max(1, used)), replace=False)
        w = np.zeros((channels, length))
        w[pick] = rng.normal(0.0, 1.0, (len(pick), length))
        w[pick] -= w[pick].mean()
        ws, bs = groups.setdefault((length, dilation, padded), ([], []))
        ws.append(w)
        bs.append(float(rng.uniform(-1.0, 1.0)))
    return [(length, dilation, padded, torch.from_numpy(np.stack(ws)).float(),
             torch.tensor(bs, dtype=torch.float32))
            for (length, dilation, padded), (ws, bs) in sorted(groups.items())]


def features(x: np.ndarray, lengths: np.ndarray, kernels: list) -> np.ndarray:
    """(N, 2K) features of series ``x`` (N, T, C) with valid ``lengths``: per kernel, the share
    of positive outputs and the largest output over the outputs that read valid steps only (the
    first output where a series is shorter than the kernel's span)."""
    xs = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1), dtype=np.float32))
    t = x.shape[1]
    steps = torch.arange(t)
    n = torch.as_tensor(lengths)
    xs = xs * (steps[None, :] < n[:, None])[:, None, :]  # padding steps read as zeros
    out = []
    with torch.no_grad():
        for length, dilation, padded, w, b in kernels:
            span = (length - 1) * dilation
            pad = span // 2 if padded else 0
            short = span + 1 - (t + 2 * pad)  # a series shorter than the kernel: zeros after it
            xi = torch.nn.functional.pad(xs, (0, short)) if short > 0 else xs
            y = torch.nn.functional.conv1d(xi, w, b, padding=pad, dilation=dilation)
            pos = torch.arange(y.shape[2])
            last = (n - 1) if padded else (n - 1 - span).clamp(min=0)
            valid = (pos[None, :] <= last[:, None])[:, None, :]  # (N, 1, T')
            count = valid.sum(2).clamp(min=1)
            ppv = ((y > 0) & valid).sum(2) / count
            top = y.masked_fill(~valid, -torch.inf).amax(2)
            out += [ppv, top]
    return torch.cat(out, 1).double().numpy()


def accuracy(train_x: np.ndarray, train_y: np.ndarray, train_lengths: np.ndarray,
             test_x: np.ndarray, test_y: np.ndarray, test_lengths: np.ndarray,
             seed: int = 0, kernels: int = KERNELS) -> float:
    """Accuracy on the test series of ROCKET trained on the training series."""
    from sklearn.linear_model import RidgeClassifierCV

    classes = np.unique(train_y)
    if len(classes) == 1:  # nothing to tell apart: every test series gets the one class
        return float((np.asarray(test_y) == classes[0]).mean())
    train_x = np.asarray(train_x, dtype=np.float64)
    test_x = np.asarray(test_x, dtype=np.float64)
    alive = np.arange(train_x.shape[1])[None, :] < np.asarray(train_lengths)[:, None]
    mean = train_x[alive].mean(0)
    sd = train_x[alive].std(0)
    sd = np.where(sd > 0, sd, 1.0)
    bank = _kernels(train_x.shape[2], train_x.shape[1], kernels, np.random.default_rng(seed))
    fa = features((train_x - mean) / sd, train_lengths, bank)
    fb = features((test_x - mean) / sd, test_lengths, bank)
    mu, scale = fa.mean(0), fa.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    model = RidgeClassifierCV(alphas=ALPHAS).fit((fa - mu) / scale, np.asarray(train_y))
    return float((model.predict((fb - mu) / scale) == np.asarray(test_y)).mean())

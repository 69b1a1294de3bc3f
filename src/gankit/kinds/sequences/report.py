"""Pictures of a sequence run: series real against synthetic, their autocorrelation, and a
two-dimensional PCA of whole series (TimeGAN's visual check)."""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING

import numpy as np

from .codec import SequenceCodec

if TYPE_CHECKING:
    from ...run import Run

REPORT_SERIES = 1000  # series per side in the PCA and autocorrelation panels
MAX_CHANNELS = 6  # channels drawn in the series panels
Pair = tuple[np.ndarray, np.ndarray | None]


def _figure(width: float, height: float):  # noqa: ANN202 (a matplotlib Figure)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=80)
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _steps(x: np.ndarray, lengths: np.ndarray | None, i: int) -> int:
    return int(lengths[i]) if lengths is not None else x.shape[1]


def series_png(real: Pair | None, fake: Pair, codec: SequenceCodec) -> bytes:
    """PNG: per channel (up to MAX_CHANNELS), a few real series (a row, unless None) above a
    few synthetic ones, in the scaled [0, 1] units."""
    channels = codec.channels[:MAX_CHANNELS]
    rows = [(fake, "synthetic")] if real is None else [(real, "real"), (fake, "synthetic")]
    fig = _figure(2.6 * len(channels), 2.2 * len(rows))
    for row, ((x, lens), name) in enumerate(rows):
        for c, channel in enumerate(channels):
            ax = fig.add_subplot(len(rows), len(channels), row * len(channels) + c + 1)
            for i in range(len(x)):
                n = _steps(x, lens, i)
                ax.plot(np.arange(n), x[i, :n, c], lw=1)
            ax.set_ylim(-0.05, 1.05)
            ax.set_title(f"{name}: {channel}"[:28], fontsize=8)
            ax.tick_params(labelsize=6)
    return _png_bytes(fig)


def acf_png(real: Pair, fake: Pair, codec: SequenceCodec) -> bytes:
    """PNG: per channel, the autocorrelation by lag, real against synthetic."""
    from ...metrics.sequences import autocorrelation

    lag = max(1, codec.length // 2)
    a = autocorrelation(real[0], lag, real[1])
    b = autocorrelation(fake[0], lag, fake[1])
    channels = codec.channels[:MAX_CHANNELS]
    fig = _figure(2.6 * len(channels), 2.4)
    for c, channel in enumerate(channels):
        ax = fig.add_subplot(1, len(channels), c + 1)
        ax.plot(range(1, lag + 1), a[:, c], label="real")
        ax.plot(range(1, lag + 1), b[:, c], label="synthetic", ls="--")
        ax.set_title(channel[:20], fontsize=8)
        ax.set_xlabel("lag", fontsize=7)
        ax.tick_params(labelsize=6)
        if c == 0:
            ax.legend(fontsize=7)
    return _png_bytes(fig)


def pca_png(real: Pair, fake: Pair) -> bytes:
    """PNG: series averaged over channels (TimeGAN's visualisation), projected on the real
    data's first two principal components."""
    a, b = real[0].mean(axis=2), fake[0].mean(axis=2)
    mean = a.mean(axis=0)
    _, _, vt = np.linalg.svd(a - mean, full_matrices=False)
    pa, pb = (a - mean) @ vt[:2].T, (b - mean) @ vt[:2].T
    fig = _figure(4.0, 3.6)
    ax = fig.add_subplot()
    ax.scatter(pa[:, 0], pa[:, 1], s=3, alpha=0.4, label="real")
    ax.scatter(pb[:, 0], pb[:, 1], s=3, alpha=0.4, label="synthetic")
    ax.set_title("PCA of whole series", fontsize=9)
    ax.legend(fontsize=7)
    return _png_bytes(fig)


def sequence_panels(run: Run) -> str:
    """HTML of the sequence panels: series, autocorrelation and PCA, real against synthetic."""
    from ...report import data_uri
    from . import generated, real_series

    data = run.kind.load(run.config.data, run.codec.to_json())
    xr, lr = real_series(data)
    n = min(REPORT_SERIES, len(xr))
    pick = np.random.default_rng(0).choice(len(xr), n, replace=False)
    real = (xr[pick], None if lr is None else lr[pick])
    values, lengths, _ = generated(run, n, 0)
    fake = (values, lengths)
    few = (slice(0, 5),)
    show_r = (real[0][few], None if real[1] is None else real[1][few])
    show_f = (fake[0][few], None if fake[1] is None else fake[1][few])
    codec = run.codec
    c = len(codec.channels)
    shown = f" (the first {MAX_CHANNELS} channels of {c})" if c > MAX_CHANNELS else ""
    return ("<h2>Series</h2><p>Five real and five synthetic series from step "
            f"{run.step}, each channel min-max scaled to [0, 1]{shown}.</p>"
            f"<img alt='series' src='{data_uri(series_png(show_r, show_f, codec))}' "
            "style='max-width:100%'>"
            f"<h2>Autocorrelation</h2><p>Per channel, over {n} series each.</p>"
            f"<img alt='autocorrelation' src='{data_uri(acf_png(real, fake, codec))}' "
            "style='max-width:100%'>"
            "<h2>PCA</h2><p>Whole series (averaged over channels) on the real series' first "
            "two principal components: synthetic points should cover the real cloud.</p>"
            f"<img alt='pca' src='{data_uri(pca_png(real, fake))}'>"
            + f"<!-- {html.escape(run.config.data.source)} -->")

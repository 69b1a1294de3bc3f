"""The report panels of a table run: marginals and association maps, real against synthetic."""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...metrics.tabular import numeric_values
from .codec import DISCRETE, NUMERIC, Column, TableCodec, typed
from .dependencies import Derived

if TYPE_CHECKING:
    from ...run import Run

REPORT_ROWS = 5000  # synthetic rows drawn for the panels (at most as many as held out)
BINS = 10
TOP_CATEGORIES = 12


def _as_numbers(s: pd.Series) -> np.ndarray:
    kind = "datetime" if pd.api.types.is_datetime64_any_dtype(s.dtype) else "continuous"
    return numeric_values(s, kind)


def binned(s: pd.Series, kind: str, edges: np.ndarray | None) -> np.ndarray:
    """A column as small integer codes: categories as they are, numbers in quantile bins of
    the real data (``edges``); -1 for missing."""
    if kind in NUMERIC and edges is not None:
        x = _as_numbers(s)
        codes = np.searchsorted(edges, x, side="right")
        codes[np.isnan(x)] = -1
        return codes
    codes, _ = pd.factorize(s.astype(str).where(s.notna(), None), sort=True)
    return codes


def cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Cramér's V of two code arrays (0: independent, 1: one determines the other)."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    ka, kb = ia.max() + 1, ib.max() + 1
    if min(ka, kb) < 2:
        return 0.0
    table = np.zeros((ka, kb))
    np.add.at(table, (ia, ib), 1.0)
    n = table.sum()
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / np.where(expected > 0, expected, 1)).sum())
    return float(np.sqrt(chi2 / (n * (min(ka, kb) - 1))))


def shown(codec: TableCodec) -> list[Column | Derived]:
    """The columns the panels draw: learned and derived ones, in the table's order."""
    by_name: dict[str, Column | Derived] = {c.name: c for c in codec.columns}
    by_name.update({d.name: d for d in codec.derived})
    return [by_name[n] for n in codec.names]


def associations(df: pd.DataFrame, codec: TableCodec,
                 edges: dict[str, np.ndarray]) -> np.ndarray:
    """Pairwise association (C, C): |Spearman| between numeric columns, else Cramér's V of the
    binned columns."""
    cols = [c for c in shown(codec) if c.kind in (*NUMERIC, *DISCRETE)]
    codes = {c.name: binned(df[c.name], c.kind, edges.get(c.name)) for c in cols}
    ranks = {c.name: pd.Series(_as_numbers(df[c.name])).rank().to_numpy()
             for c in cols if c.kind in NUMERIC}
    out = np.eye(len(cols))
    for i, a in enumerate(cols):
        for j in range(i + 1, len(cols)):
            b = cols[j]
            if a.name in ranks and b.name in ranks:
                ra, rb = ranks[a.name], ranks[b.name]
                ok = ~(np.isnan(ra) | np.isnan(rb))
                r = np.corrcoef(ra[ok], rb[ok])[0, 1] if ok.sum() > 2 else 0.0
                v = abs(float(r)) if np.isfinite(r) else 0.0
            else:
                v = cramers_v(codes[a.name], codes[b.name])
            out[i, j] = out[j, i] = v
    return out


def _png(fig) -> str:
    from ...report import data_uri

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return data_uri(buf.getvalue())


def marginals_png(real: pd.DataFrame, synth: pd.DataFrame, codec: TableCodec) -> str:
    """Small multiples: per column, real against synthetic (histogram or category shares)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = [c for c in shown(codec) if c.kind != "constant"]
    ncol = 4
    nrow = max(1, -(-len(cols) // ncol))
    fig = Figure(figsize=(3.2 * ncol, 2.4 * nrow), dpi=80)
    FigureCanvasAgg(fig)
    for k, c in enumerate(cols):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        if c.kind in NUMERIC:
            a, b = _as_numbers(real[c.name]), _as_numbers(synth[c.name])
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            lo, hi = (float(np.min(a)), float(np.max(a))) if len(a) else (0.0, 1.0)
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
            ax.hist(a, bins=bins, density=True, alpha=0.5, label="real")
            ax.hist(b, bins=bins, density=True, alpha=0.5, label="synthetic")
            ax.set_xticks([])
        else:
            ra = real[c.name].astype(str).where(real[c.name].notna(), "(missing)")
            sb = synth[c.name].astype(str).where(synth[c.name].notna(), "(missing)")
            top = ra.value_counts().index[:TOP_CATEGORIES]
            pos = np.arange(len(top))
            ax.bar(pos - 0.2, ra.value_counts(normalize=True).reindex(top).fillna(0), 0.4,
                   label="real")
            ax.bar(pos + 0.2, sb.value_counts(normalize=True).reindex(top).fillna(0), 0.4,
                   label="synthetic")
            ax.set_xticks(pos)
            ax.set_xticklabels([str(t)[:10] for t in top], rotation=60, fontsize=6)
        ax.set_title(c.name, fontsize=9)
        ax.tick_params(labelsize=6)
        if k == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def associations_png(real: pd.DataFrame, synth: pd.DataFrame, codec: TableCodec) -> str:
    """Three heat maps: associations in the real rows, in the synthetic rows, and their gap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [c.name for c in shown(codec) if c.kind in (*NUMERIC, *DISCRETE)]
    edges = {}
    for c in shown(codec):
        if c.kind in NUMERIC:
            x = _as_numbers(real[c.name])
            x = x[~np.isnan(x)]
            if len(x):
                edges[c.name] = np.unique(np.quantile(x, np.linspace(0, 1, BINS + 1)[1:-1]))
    a, b = associations(real, codec, edges), associations(synth, codec, edges)
    fig = Figure(figsize=(15, 5), dpi=80)
    FigureCanvasAgg(fig)
    for k, (m, title) in enumerate(((a, "real (held out)"), (b, "synthetic"),
                                    (np.abs(a - b), "|difference|"))):
        ax = fig.add_subplot(1, 3, k + 1)
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        ax.set_title(title)
        ax.set_xticks(range(len(names)))
        ax.set_yticks(range(len(names)))
        ax.set_xticklabels([n[:12] for n in names], rotation=90, fontsize=6)
        ax.set_yticklabels([n[:12] for n in names], fontsize=6)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _png(fig)


def table_panels(run: Run) -> str:
    """HTML of the table panels: a preview of synthetic rows, marginals, association maps."""
    from . import load_frames, sample_rows

    _, holdout = load_frames(run.config.data)
    real = typed(holdout, run.codec)
    synth = sample_rows(run, min(REPORT_ROWS, max(len(real), 100)), seed=0)
    preview = synth.head(10).to_html(index=False, border=0, classes="rows")
    return ("<h2>Synthetic rows</h2>"
            f"<p>The first 10 of {len(synth)} rows drawn from step {run.step}.</p>{preview}"
            "<h2>Marginals</h2><p>Each column in the held-out real rows and the synthetic "
            "rows (numbers: density; categories: the share of the real table's most common "
            f"ones).</p><img alt='marginals' src='{marginals_png(real, synth, run.codec)}'>"
            "<h2>Correlation maps</h2><p>Association of each pair of columns (|Spearman| "
            "between numbers, else Cramér's V of the binned columns), real against "
            f"synthetic.</p><img alt='associations' "
            f"src='{associations_png(real, synth, run.codec)}' style='max-width:100%'>"
            + f"<!-- {html.escape(run.config.data.source)} -->")

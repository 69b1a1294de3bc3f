"""The report panels of a text run: samples beside real strings, and their length and
character distributions."""

from __future__ import annotations

import html
import io
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ...run import Run

REPORT_STRINGS = 2000  # generated strings drawn for the panels
SHOWN = 30


def _png(fig) -> str:
    from ...report import data_uri

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return data_uri(buf.getvalue())


def distributions_png(real: list[str], synth: list[str], chars: tuple[str, ...]) -> str:
    """Two panels: string lengths, and each character's share, real against generated."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.2), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    top = max(max(map(len, real), default=1), max(map(len, synth), default=1))
    bins = np.arange(-0.5, top + 1.5)
    ax.hist([len(s) for s in real], bins=bins, density=True, alpha=0.5, label="real")
    ax.hist([len(s) for s in synth], bins=bins, density=True, alpha=0.5, label="generated")
    ax.set_title("length")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 2, 2)
    cr, cs = Counter("".join(real)), Counter("".join(synth))
    nr, ns = max(1, sum(cr.values())), max(1, sum(cs.values()))
    pos = np.arange(len(chars))
    ax.bar(pos - 0.2, [cr[c] / nr for c in chars], 0.4, label="real")
    ax.bar(pos + 0.2, [cs[c] / ns for c in chars], 0.4, label="generated")
    ax.set_xticks(pos)
    ax.set_xticklabels([c if c.strip() else "␣" for c in chars], fontsize=7)
    ax.set_title("characters")
    fig.tight_layout()
    return _png(fig)


def text_panels(run: Run) -> str:
    """HTML of the text panels: generated strings beside held-out ones, their scores, and
    length and character distributions."""
    from . import TextScorer, checker_of, load_strings, sample_strings

    train, holdout, _ = load_strings(run.config.data)
    synth = sample_strings(run, REPORT_STRINGS, seed=0)
    scores = TextScorer(run.codec, (train, holdout), checker_of(run.config.data), 0
                        ).strings(synth)
    known = set(train)
    rows = "".join(f"<tr><td>{html.escape(s)}{' (in training)' * (s in known)}</td>"
                   f"<td>{html.escape(r)}</td></tr>"
                   for s, r in zip(synth[:SHOWN], holdout[:SHOWN], strict=False))
    metrics = "".join(f"<tr><td>{k}</td><td>{v:.4g}</td></tr>" if isinstance(v, float)
                      else f"<tr><td>{k}</td><td>{html.escape(str(v))}</td></tr>"
                      for k, v in scores.items())
    return ("<h2>Generated strings</h2>"
            f"<p>The first {SHOWN} of {len(synth)} strings drawn from step {run.step} at "
            "temperature 1, beside held-out real ones.</p>"
            f"<table class='rows'><tr><th>generated</th><th>real (held out)</th></tr>{rows}"
            f"</table><h2>Text metrics</h2><table class='rows'>{metrics}</table>"
            "<p>BLEU-4 against held-out strings (quality) and self-BLEU-4 among samples "
            "(lower is more diverse), on 500 samples; <code>gankit eval</code> adds the "
            "likelihood under a character language model trained on the real strings.</p>"
            "<h2>Distributions</h2>"
            f"<img alt='distributions' src='{distributions_png(holdout, synth, run.codec.chars)}'"
            " style='max-width:100%'>")

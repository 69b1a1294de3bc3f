"""``gankit report``: a run directory as one self-contained HTML page (no network needed).

Charts are drawn with matplotlib's Agg canvas (no pyplot, no global backend) and embedded, like
the sample grids, as PNG data URIs.
"""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path
from typing import Any

from . import runlog
from .config import load_toml_config, to_toml
from .errors import RunError
from .fileio import atomic_write_bytes
from .metrics.evaluate import GOALS
from .run import is_run
from .training import checkpoint
from .training.evaluation import BEST

LOSS_KEYS = ("loss_d", "loss_g", "loss_mle")  # loss_mle: G's MLE pre-training (text)
D_KEYS = ("d_real", "d_fake")
WATCH_KEYS = ("diversity", "duplicates")
MAX_GRIDS = 12


def data_uri(png: bytes) -> str:
    """PNG bytes as a data: URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def line_chart(series: dict[str, tuple[list[float], list[float]]], title: str,
               ylabel: str = "") -> bytes:
    """PNG of one chart with a line per series name -> (steps, values)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, label=name, marker="o" if len(xs) <= 20 else None, markersize=3)
    ax.set_title(title)
    ax.set_xlabel("step")
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _series(records: list[dict[str, Any]], keys: tuple[str, ...] | list[str]
            ) -> dict[str, tuple[list[float], list[float]]]:
    out = {}
    for k in keys:
        pts = [(r["step"], r[k]) for r in records if isinstance(r.get(k), (int, float))]
        if pts:
            out[k] = ([p[0] for p in pts], [p[1] for p in pts])
    return out


def _grids(run: Path) -> list[tuple[int, Path]]:
    """Up to MAX_GRIDS sample grids, evenly spread over time, always with the last one."""
    found = sorted((int(p.stem.split("-")[1]), p) for p in (run / "samples").glob("step-*.png")
                   if p.stem.split("-")[1].isdigit())
    if len(found) <= MAX_GRIDS:
        return found
    idx = {round(i * (len(found) - 1) / (MAX_GRIDS - 1)) for i in range(MAX_GRIDS)}
    return [found[i] for i in sorted(idx)]


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in rows)
    return f"<table>{body}</table>"


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def final_metrics(run: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The last logged evaluation, or a fresh one of the latest checkpoint when none was logged."""
    evals = [r for r in records if any(k in GOALS for k in r)]
    if evals:
        return {k: v for k, v in evals[-1].items() if k not in ("time", "best")}
    from .evaluation import evaluate_source

    cfg = load_toml_config(run / "config.toml")
    return evaluate_source(run, num=cfg.eval.num)


CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
.row{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{font-size:.85em;color:#555}
table{border-collapse:collapse}th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
td{font-family:monospace}pre{background:#f6f6f6;padding:1em;overflow:auto}
img.grid{max-width:330px;image-rendering:pixelated}"""


def _kind_panels(run: Path) -> str:
    """The panels the run's data kind adds (tables: marginals, correlation maps)."""
    from .run import load_run

    try:
        opened = load_run(run)
    except RunError:  # no checkpoint yet: nothing to draw from
        return ""
    return opened.kind.report(opened)


def render(run: Path) -> str:
    """The report page of run directory ``run`` as HTML text."""
    if not is_run(run):
        raise RunError(f"{run} is not a gankit run directory (no config.toml)")
    cfg = load_toml_config(run / "config.toml")
    records = runlog.read(run / "metrics.jsonl")
    train = [r for r in records if "loss_d" in r or "loss_mle" in r]
    evals = [r for r in records if any(k in GOALS for k in r)]
    parts = [f"<h1>gankit run {html.escape(run.name)}</h1>",
             f"<p>{html.escape(str(run.resolve()))} · preset <b>{html.escape(cfg.preset)}</b> "
             f"on <b>{html.escape(cfg.data.source)}</b> · written "
             f"{html.escape(time.strftime('%Y-%m-%d %H:%M'))}</p>"]

    charts = []
    if train:
        charts.append(line_chart(_series(train, LOSS_KEYS), "losses"))
        charts.append(line_chart(_series(train, D_KEYS), "discriminator outputs", "mean D"))
    watched = [r for r in train if "diversity" in r]
    if watched:  # the collapse watch (training/collapse.py): 1 is as varied as real data
        shares = [{"step": r["step"], "modes / real modes": r["modes_seen"] / r["modes_real"]}
                  for r in watched if r.get("modes_real")]
        charts.append(line_chart({**_series(watched, WATCH_KEYS),
                                  **_series(shares, ["modes / real modes"])},
                                 "mode collapse watch", "against real data"))
    metric_keys = [k for k in GOALS if any(k in r for r in evals)]
    for k in metric_keys:
        charts.append(line_chart(_series(evals, [k]), f"{k} ({GOALS[k]}imise)"))
    parts.append("<h2>Training curves</h2>")
    if charts:
        parts.append('<div class="row">' + "".join(
            f'<img class="chart" alt="chart" src="{data_uri(c)}">' for c in charts) + "</div>")
    else:
        parts.append("<p>No statistics logged yet.</p>")

    grids = _grids(run)
    panels = _kind_panels(run)
    if grids or not panels:
        parts.append("<h2>Samples over time</h2>")
        parts.append('<div class="row">' + "".join(
            f'<figure><img class="grid" alt="samples at step {s}" '
            f'src="{data_uri(p.read_bytes())}"><figcaption>step {s}</figcaption></figure>'
            for s, p in grids) + "</div>" if grids else "<p>No sample grids yet.</p>")
    parts.append(panels)

    events = [r for r in records if "event" in r]
    if events:
        parts.append("<h2>Events</h2>")
        parts.append(_events_table(events))

    parts.append("<h2>Final metrics</h2>")
    try:
        final = final_metrics(run, records)
    except RunError as e:
        final = {"unavailable": str(e)}
    best = checkpoint.list_steps(run / "checkpoints" / BEST)
    if best:
        final = {**final, "best checkpoint": f"step {best[-1]} (checkpoints/{BEST}/)"}
    parts.append(_table([(k, _fmt(v)) for k, v in final.items()]))

    parts.append("<h2>Configuration</h2>")
    parts.append(f"<pre>{html.escape(to_toml(cfg))}</pre>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>gankit report: {html.escape(run.name)}</title><style>{CSS}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


EVENT_KEYS = ("step", "event", "reason", "detail", "action", "remedy", "rollback_to", "retry",
              "lr_g", "lr_d", "penalty_scale")


def _events_table(events: list[dict[str, Any]]) -> str:
    """The divergence guard's events (rollbacks, stops) as an HTML table."""
    head = "".join(f"<th>{k}</th>" for k in EVENT_KEYS)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(e.get(k, '')))}</td>"
                                    for k in EVENT_KEYS) + "</tr>" for e in events)
    return f'<table class="events"><tr>{head}</tr>{rows}</table>'


def write_report(run: Path, out: Path | None = None) -> Path:
    """Write the report of ``run`` to ``out`` (default ``run/report.html``); returns the path."""
    target = out or run / "report.html"
    page = render(run)
    atomic_write_bytes(target, page.encode("utf-8"))
    return target

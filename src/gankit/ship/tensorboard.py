"""``train.tensorboard``: a run's metrics.jsonl records and sample previews, mirrored as
TensorBoard event files under ``RUN/tb/`` (written with ``torch.utils.tensorboard``).

The board reads what the run has already written (new lines of metrics.jsonl, new files in
samples/), so TensorBoard shows exactly the run's own records, from every writer (training
statistics, evaluations, the guard's events), and the trainer only says when to look.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

INSTALL = "pip install 'gankit[tensorboard]'"
FOLDER = "tb"


def _summary_writer() -> Any:
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(f"train.tensorboard needs the tensorboard package: {INSTALL}") from None
    return SummaryWriter


class Board:
    """Mirrors run directory ``run_dir`` into TensorBoard from now on: what the run holds
    already is taken as shown (a resumed run's earlier records are in its event files from
    before). ConfigError at once when the tensorboard package is missing; nothing is written
    before the first ``sync``."""

    def __init__(self, run_dir: Path, every: tuple[int, ...] = ()) -> None:
        self.run_dir = run_dir
        self.every = tuple(e for e in every if e > 0)  # steps at which ``due`` says look
        self._writer_class = _summary_writer()
        self._writer: Any = None
        self._lines = set(self._read_lines())
        self._files = {p.name for p in self._sample_files()}

    def due(self, step: int, last: bool = False) -> bool:
        """Whether the trainer should ``sync`` after ``step``."""
        return last or any(step % e == 0 for e in self.every)

    def sync(self) -> None:
        """Write the records and previews the run gained since the last sync."""
        if self._writer is None:
            self._writer = self._writer_class(log_dir=str(self.run_dir / FOLDER))
        for line in self._read_lines():
            if line in self._lines:
                continue
            self._lines.add(line)
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a torn last line: it is rewritten whole later
                self._lines.discard(line)
                continue
            if isinstance(record, dict):
                self.record(record)
        for path in self._sample_files():
            if path.name not in self._files:
                self._files.add(path.name)
                self.preview(path)
        self._writer.flush()

    def record(self, record: dict[str, Any]) -> None:
        """One metrics.jsonl record: numbers as scalars at its step (``train/KEY`` for the
        training statistics, ``eval/KEY`` for evaluations), events as text."""
        w = self._writer
        step = record.get("step")
        step = step if isinstance(step, int) else None
        when = record.get("time") if isinstance(record.get("time"), (int, float)) else None
        if "event" in record:
            w.add_text(f"events/{record['event']}", "`" + json.dumps(record) + "`", step, when)
            return
        group = "train" if "loss_g" in record or "loss_mle" in record else "eval"
        for key, value in record.items():
            if key in ("step", "time") or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                w.add_scalar(f"{group}/{key}", value, step, when)

    def preview(self, path: Path) -> None:
        """One file of samples/: a PNG grid as an image, a table's CSV preview as text."""
        try:
            step = int(path.stem.split("-")[-1])
        except ValueError:
            return
        try:
            data = path.read_bytes()
        except OSError:
            return
        if path.suffix == ".png":
            from PIL import Image

            image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            self._writer.add_image("samples", image, step, dataformats="HWC")
        elif path.suffix == ".csv":
            self._writer.add_text("samples", "```\n" + data.decode("utf-8", "replace")
                                  + "\n```", step)

    def close(self) -> None:
        """A last sync, then close the event file."""
        if self._writer is None:
            return
        self.sync()
        self._writer.close()
        self._writer = None

    def _read_lines(self) -> list[str]:
        try:
            text = (self.run_dir / "metrics.jsonl").read_text(encoding="utf-8",
                                                              errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()]

    def _sample_files(self) -> list[Path]:
        folder = self.run_dir / "samples"
        return sorted(p for p in folder.glob("step-*.*")) if folder.is_dir() else []


def board(cfg: Any, run_dir: Path | None) -> Board | None:
    """The board of a trainer with config ``cfg`` writing ``run_dir`` (None when
    ``train.tensorboard`` is off or nothing is written)."""
    t = cfg.train
    if not t.tensorboard or run_dir is None:
        return None
    return Board(run_dir, (t.log_every, t.sample_every, cfg.eval.every))

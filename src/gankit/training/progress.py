"""A one-line progress display on stderr: redrawn in place on a terminal, one line per log else."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Shows step, speed and training statistics; silent when ``enabled`` is False."""

    def __init__(self, total: int, enabled: bool = True, stream: TextIO | None = None,
                 note: str = "") -> None:
        self.total = total
        self.note = note  # shown after the speed, e.g. how the batch is split across processes
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._width = 0

    def update(self, step: int, stats: dict[str, float]) -> None:
        """Redraw with the latest logged statistics."""
        if not self.enabled:
            return
        pct = 100.0 * step / max(1, self.total)
        filled = int(20 * step / max(1, self.total))
        bar = "#" * filled + "-" * (20 - filled)
        line = (f"[{bar}] {step}/{self.total} {pct:3.0f}% "
                f"{stats['steps_per_s']:.0f} steps/s{self.note} "
                + (f"pre-training G: loss_MLE {stats['loss_mle']:.3f}" if "loss_mle" in stats
                   else f"loss_D {stats['loss_d']:.3f} loss_G {stats['loss_g']:.3f} "
                        f"D(x) {stats['d_real']:.3f} D(G(z)) {stats['d_fake']:.3f}"))
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """Print a line of text without breaking the bar."""
        if not self.enabled:
            return
        self.close()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the in-place line."""
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

"""metrics.jsonl: one JSON object per line, appended during training, read back tolerantly.

Records with a ``step`` are statistics; records with an ``event`` key (divergence, rollback,
stop) are history and survive every repair. Non-finite numbers are written as null, so every
line is strict JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .fileio import atomic_write_bytes


def _strict(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (strict JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def append(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a line of strict JSON."""
    line = json.dumps(_strict(record), allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)


def read(path: Path) -> list[dict[str, Any]]:
    """Every well-formed record of ``path``; a torn or foreign line is skipped, not fatal."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def truncate(path: Path, step: int) -> None:
    """Keep events and the records up to ``step``; drop torn lines and a future that was undone."""
    if not path.exists():
        return
    keep = [r for r in read(path)
            if "event" in r or (isinstance(r.get("step", 0), int) and r.get("step", 0) <= step)]
    text = "".join(json.dumps(_strict(r), allow_nan=False) + "\n" for r in keep)
    atomic_write_bytes(path, text.encode())

"""Data kinds: one home per kind of data (images, points, tables).

A kind owns how raw files become tensors and back (its codec), which model families fit it, the
conditioning it offers, what the trainer's ``samples/`` previews and ``gankit sample`` write,
which metrics judge it and what the report shows. The engine asks ``of_source`` (a config's
data source) or ``get`` (a dataset's ``kind``) and never branches on the kind itself.
"""

from __future__ import annotations

from ..config import is_table_source, is_text_source
from ..data.mixtures import MIXTURES
from .base import Kind


def get(name: str) -> Kind:
    """The kind called ``name`` (images, points, tables or text); each is imported on first use
    (tables bring in pandas, which image runs never need)."""
    if name in ("images", "points"):
        from .images import ImageKind, PointKind

        return ImageKind() if name == "images" else PointKind()
    if name == "tables":
        from .tables import TableKind

        return TableKind()
    if name == "text":
        from .text import TextKind

        return TextKind()
    raise KeyError(f"unknown data kind '{name}'")


def of_source(source: str) -> Kind:
    """The kind of the data named by ``data.source``: tables for .csv/.tsv/.parquet and the
    built-in tables, text for .txt/.smi, points for the 2-D mixtures, else images (built-ins,
    folders, arrays).

    Points in an array file are recognised only once loaded (``get(dataset.kind)``).
    """
    if is_table_source(source):
        return get("tables")
    if is_text_source(source):
        return get("text")
    if source in MIXTURES:
        return get("points")
    return get("images")


__all__ = ["Kind", "get", "of_source"]

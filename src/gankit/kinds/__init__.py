"""Data kinds: one home per kind of data (images, points, tables, sequences).

A kind owns how raw files become tensors and back (its codec), which model families fit it, the
conditioning it offers, what the trainer's ``samples/`` previews and ``gankit sample`` write,
which metrics judge it and what the report shows. The engine asks ``of_source`` (a config's
data source) or ``get`` (a dataset's ``kind``) and never branches on the kind itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import is_sequence_source, is_table_source, is_text_source
from ..data.mixtures import MIXTURES
from .base import Kind

if TYPE_CHECKING:
    from ..config import DataConfig


def get(name: str) -> Kind:
    """The kind called ``name`` (images, points, tables, sequences or text); each is imported
    on first use (tables bring in pandas, which image runs never need)."""
    if name in ("images", "points"):
        from .images import ImageKind, PointKind

        return ImageKind() if name == "images" else PointKind()
    if name == "tables":
        from .tables import TableKind

        return TableKind()
    if name == "sequences":
        from .sequences import SequenceKind

        return SequenceKind()
    if name == "text":
        from .text import TextKind

        return TextKind()
    raise KeyError(f"unknown data kind '{name}'")


SEQUENCE_CODEC = "gankit-sequence-codec-1"  # the ``format`` of a sequence run's codec.json


def of_codec(stored: dict[str, Any] | None) -> Kind | None:
    """The kind whose codec ``stored`` is (a run's codec.json as JSON values): sequences,
    text or tables; None without a codec. A finished run is known by its codec, not by its
    data source, which may since have moved."""
    if stored is None:
        return None
    if stored.get("kind") in ("text", "sequences"):  # a codec that names its kind
        return get(stored["kind"])
    return get("sequences" if stored.get("format") == SEQUENCE_CODEC else "tables")


def of_source(data: DataConfig) -> Kind:
    """The kind of the data ``data`` names: sequences for the built-in series, .npz files
    holding ``series`` and table files read by ``data.id`` or ``data.window``; tables for
    other .csv/.tsv/.parquet files and the built-in tables; text for .txt/.smi; points for the
    2-D mixtures; else images (built-ins, folders, arrays).

    Points in an array file are recognised only once loaded (``get(dataset.kind)``).
    """
    source = data.source
    if is_sequence_source(source, data.id, data.window):
        return get("sequences")
    if is_table_source(source):
        return get("tables")
    if is_text_source(source):
        return get("text")
    if source in MIXTURES:
        return get("points")
    return get("images")


__all__ = ["Kind", "get", "of_codec", "of_source"]

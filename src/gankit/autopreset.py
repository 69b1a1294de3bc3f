"""Choosing a preset for user data when none is named: by image size, channels and labels."""

from __future__ import annotations

from pathlib import Path

from .config import is_sequence_source
from .data.arrays import peek as peek_array
from .data.folder import peek
from .untrusted import refuse_pickle

BUILTIN = ("digits", "mnist")


def pick(side: int, labelled: bool) -> tuple[str, int]:
    """(preset, data.size) for square images of ``side`` pixels.

    The DCGAN networks (fast on a CPU) at the nearest side they make (28, 32 or 64); their
    conditional form (cgan) when the data has labels.
    """
    size = 28 if side <= 28 else 32 if side <= 48 else 64
    return ("cgan" if labelled else "dcgan"), size


def choose(source: str) -> tuple[str, int, str] | None:
    """(preset, data.size, description of the data) for a folder or array file of images;
    None for the built-in sources and series (they keep their default preset). Errors in the
    data raise DataError."""
    if source in BUILTIN or is_sequence_source(source):
        return None  # series pick `timeseries` from their source (config.DEFAULT_PRESETS)
    path = Path(source)
    refuse_pickle(path, "data source")
    if source.lower().endswith((".npy", ".npz")) and path.is_file():
        (c, h, w), labelled = peek_array(path)
    elif path.is_dir():
        side, c, labelled = peek(path)
        h = w = side
    else:
        return None  # not found: the data loader reports it
    preset, size = pick(min(h, w), labelled)
    what = f"{c}-channel images of side {min(h, w)}" + (", labelled" if labelled else "")
    return preset, size, what

"""Columns that are a function of one discrete column (``data.derive``): written, not learned.

A table often carries one fact twice: Adult's ``education-num`` is a number for each
``education`` category, a state has its code, a product its name. A GAN learns such a pair as two
loosely related columns (on Adult, a 3,000-step generator agreed with the real map in 27% of its
rows), and the broken relation is the first thing a detector sees. A column whose value is the
same for every training row of each category of a discrete column is stored as that map and
decoded from the column, so the relation holds in every generated row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MIN_ROWS = 5  # every category of a source must occur this often for its map to be trusted
TARGET_KINDS = ("continuous", "integer", "categorical", "boolean")  # what may be derived


@dataclass
class Derived:
    """A column decoded from the category of its ``source``: ``values[i]`` for ``keys[i]``."""

    name: str
    kind: str  # the kind the column would have had if learned (metrics read it)
    dtype: str  # the input's pandas dtype, restored on decode
    source: str
    keys: list[Any]  # the source's categories (JSON values, None = missing)
    values: list[Any]  # this column's value for each key (JSON values, None = missing)

    def lookup(self) -> dict[Any, Any]:
        """The map from a source category to this column's value."""
        return dict(zip(self.keys, self.values, strict=True))

    def to_json(self) -> dict[str, Any]:
        """The derived column as plain JSON values."""
        return {"name": self.name, "kind": self.kind, "dtype": self.dtype,
                "source": self.source, "keys": self.keys, "values": self.values}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Derived:
        """Inverse of ``to_json``; ValueError for anything that does not fit."""
        out = cls(name=str(d["name"]), kind=str(d["kind"]), dtype=str(d["dtype"]),
                  source=str(d["source"]), keys=list(d["keys"]), values=list(d["values"]))
        if out.kind not in TARGET_KINDS:
            raise ValueError(f"derived column {out.name}: unknown kind {out.kind!r}")
        if not out.keys or len(out.keys) != len(out.values):
            raise ValueError(f"derived column {out.name}: keys and values do not match")
        return out


def find_dependencies(df: pd.DataFrame, kinds: dict[str, str], sources: set[str],
                      keep: set[str] | frozenset[str] = frozenset()) -> dict[str, str]:
    """Derived column -> its source, for ``df``'s columns of ``kinds``.

    A source is a column in ``sources`` (the learned discrete ones) whose every category holds
    at least MIN_ROWS rows; a column (of TARGET_KINDS, not in ``keep``, with at least two
    values, missing counting as one) depends on it when each of its categories sees a single
    value. A source is never derived and a derived column is never a source; earlier columns
    are sources first.
    """
    codes: dict[str, np.ndarray] = {}
    sizes: dict[str, int] = {}
    for name, kind in kinds.items():
        if kind in TARGET_KINDS or name in sources:
            c, uniques = pd.factorize(df[name], use_na_sentinel=False)
            codes[name], sizes[name] = c.astype(np.int64), len(uniques)
    out: dict[str, str] = {}
    used: set[str] = set()
    for a in (n for n in kinds if n in sources):
        if a in out or sizes[a] < 2 or np.bincount(codes[a]).min() < MIN_ROWS:
            continue
        for b in codes:
            if (b == a or b in out or b in used or b in keep or kinds[b] not in TARGET_KINDS
                    or not 2 <= sizes[b] <= sizes[a]):
                continue
            if np.unique(codes[a] * sizes[b] + codes[b]).size == sizes[a]:
                out[b] = a
                used.add(a)
    return out


def fit_derived(df: pd.DataFrame, name: str, kind: str, source: str,
                json_value: Any) -> Derived:
    """The map of column ``name`` from ``source`` in ``df`` (``json_value`` turns a cell into a
    JSON value)."""
    codes, _ = pd.factorize(df[source], use_na_sentinel=False)
    first = np.unique(codes, return_index=True)[1]
    keys = [json_value(v) for v in df[source].iloc[first]]
    values = [json_value(v) for v in df[name].iloc[first]]
    return Derived(name=name, kind=kind, dtype=str(df[name].dtype), source=source,
                   keys=keys, values=values)

"""Conditional vectors for tables (CTGAN): one discrete column's category, drawn per sample.

Training draws a column uniformly and a category by log-frequency (training-by-sampling, so rare
categories are learned), then a real row of that category; with a target (``focus``) a share of
the batches condition on it at its real shares instead, as generated rows do. Generated samples
draw the category by its real share, so unconditioned samples keep every category's share.
``--where`` conditions on the rarest asked category and keeps only rows that satisfy every clause.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...conditioning import Conditioning
from ...errors import DataError
from ...training.devices import upload
from .codec import DISCRETE, NUMERIC, TableCodec

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le, ">=": operator.ge, "!=": operator.ne, "=": operator.eq,
    "<": operator.lt, ">": operator.gt,
}
CLAUSE = re.compile(r"^\s*([^<>=!]+?)\s*(<=|>=|!=|==|=|<|>)\s*(.*?)\s*$")


class TableConditions(Conditioning):
    """Conditional vectors over a codec's discrete columns (see the module docstring)."""

    def __init__(self, codec: TableCodec, x: torch.Tensor | None = None,
                 focus: str | None = None, focus_share: float = 0.0) -> None:
        """Conditions over ``codec``'s discrete columns; ``x`` (the encoded training rows) is
        needed only to draw training batches. With ``focus`` (a discrete column, the target)
        generated samples are conditioned on that column alone, at its real shares, so its
        share is the data's however well G learned the rest; ``focus_share`` of the training
        batches are conditioned the same way, so G learns the rows of each target class as
        they are (not only where training-by-sampling drew that column)."""
        super().__init__(0 if x is None else len(x))
        blocks = [(c, s) for c, s in zip(codec.columns, codec.offsets(), strict=True)
                  if c.kind in DISCRETE]
        self.codec = codec
        self.vector_dim = sum(c.width for c, _ in blocks)
        self.positions = torch.tensor([s + j for c, s in blocks for j in range(c.width)],
                                      dtype=torch.int64)  # where each cell is in a sample
        k = max(1, len(blocks))
        # Generated samples: a column uniformly, its category at its share of the data.
        self.p_share = (torch.cat([torch.tensor(c.shares, dtype=torch.float64) / k
                                   for c, _ in blocks]) if blocks else None)
        focused = focus is not None and any(c.name == focus for c, _ in blocks)
        if focused:
            self.p_share = torch.cat([torch.tensor(c.shares, dtype=torch.float64)
                                      * (c.name == focus) for c, _ in blocks])
        self.p_train: torch.Tensor | None = None
        if x is None or not blocks:
            return
        n = len(x)
        counts, starts, rows = [], [], []
        for d, (c, s) in enumerate(blocks):
            codes = x[:, s:s + c.width].argmax(1)
            count = torch.bincount(codes, minlength=c.width)
            rows.append(torch.argsort(codes, stable=True))
            starts.append(d * n + torch.cumsum(count, 0) - count)
            counts.append(count)
        self.rows, self.count, self.start = torch.cat(rows), torch.cat(counts), torch.cat(starts)
        # Training batches: a column uniformly, its category by log-frequency, then a real row.
        log_freq = [torch.log1p(c.to(torch.float64)) * (c > 0) for c in counts]
        self.p_train = torch.cat([f / f.sum() / k for f in log_freq])
        if focused and focus_share > 0:
            self.p_train = (1.0 - focus_share) * self.p_train + focus_share * self.p_share

    def batch(self, n: int, gen: torch.Generator, part: slice, device: torch.device
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert self.p_train is not None
        o = torch.multinomial(self.p_train, n, replacement=True, generator=gen)
        u = torch.rand(n, generator=gen, dtype=torch.float64)
        within = (u * self.count[o]).long().clamp_max(self.count[o] - 1)
        idx = self.rows[self.start[o] + within]
        return upload(idx[part], device), upload(self.vectors(o)[part], device)

    def vectors(self, options: torch.Tensor) -> torch.Tensor:
        """One-hot condition vectors (n, vector_dim) for drawn options."""
        y = torch.zeros(len(options), self.vector_dim)
        y[torch.arange(len(options)), options] = 1.0
        return y

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        assert self.p_share is not None
        return self.vectors(torch.multinomial(self.p_share, n, replacement=True, generator=gen))

    def option(self, column: str, category: Any) -> int:
        """The option (cell of the condition vector) of ``column`` = ``category``."""
        pos = 0
        for c in self.codec.columns:
            if c.kind not in DISCRETE:
                continue
            if c.name == column:
                return pos + c.categories.index(category)
            pos += c.width
        raise KeyError(column)

    def penalty(self, fake: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        """Cross-entropy of G's output for the conditioned category (CTGAN's generator loss)."""
        if y is None:
            return None
        probs = fake.index_select(1, self.positions.to(fake.device)).float()
        return -(y * torch.log(probs + 1e-8)).sum(1).mean()

    def penalty_with_grad(self, fake: torch.Tensor, y: torch.Tensor | None
                          ) -> tuple[torch.Tensor, torch.Tensor] | None:
        if y is None:
            return None
        positions = self.positions.to(fake.device)
        probs = fake.index_select(1, positions) + 1e-8
        loss = -(y * torch.log(probs)).sum(1).mean()
        grad = torch.zeros_like(fake)
        grad.index_add_(1, positions, y / probs, alpha=-1.0 / len(fake))
        return loss, grad


@dataclass(frozen=True)
class Clause:
    """One ``--where`` clause: ``column`` ``op`` ``value`` (value typed for the column)."""

    column: str
    op: str
    value: Any
    text: str

    def holds(self, df: pd.DataFrame) -> np.ndarray:
        """Which rows satisfy the clause (missing values satisfy only ``!=``)."""
        col = df[self.column]
        if self.value is None:  # "col=" / "col!=" : missing / not missing
            hit = col.isna().to_numpy()
            return ~hit if self.op == "!=" else hit
        ok = col.notna().to_numpy()
        out = np.zeros(len(col), dtype=bool)
        values = col[ok]
        if isinstance(self.value, str):
            values = values.astype(str)
        out[ok] = np.asarray(OPERATORS[self.op](values, self.value), dtype=bool)
        return ~ok | out if self.op == "!=" else out


def parse_where(texts: list[str] | tuple[str, ...], codec: TableCodec) -> list[Clause]:
    """``--where`` texts as clauses; DataError for an unknown column or a category never seen."""
    clauses = []
    for text in texts:
        m = CLAUSE.match(text)
        if m is None:
            raise DataError(f"--where '{text}' must look like column=value "
                            "(or !=, <, <=, >, >=)")
        name, op, raw = m.group(1), "=" if m.group(2) == "==" else m.group(2), m.group(3)
        d = codec.derived_column(name)
        c = codec.column(name) if d is None else None
        kind = d.kind if d is not None else c.kind
        if raw == "":
            if op not in ("=", "!="):
                raise DataError(f"--where '{text}': an empty value means missing; use = or !=")
            clauses.append(Clause(name, op, None, text))
            continue
        if kind in DISCRETE:
            if op not in ("=", "!="):
                raise DataError(f"--where '{text}': column '{name}' is {kind}; use = or !=")
            values = ([v for v in c.categories if v is not None] if c is not None
                      else list(dict.fromkeys(v for v in d.values if v is not None)))
            match = [v for v in values if str(v) == raw]
            if not match:
                seen = ", ".join(str(v) for v in values[:12])
                more = ", ..." if len(values) > 12 else ""
                raise DataError(f"--where '{text}': '{raw}' never occurs in column '{name}' "
                                f"in training (values: {seen}{more})")
            clauses.append(Clause(name, op, match[0], text))
        elif kind in NUMERIC:
            try:
                value: Any = pd.Timestamp(raw) if kind == "datetime" else float(raw)
            except ValueError:
                raise DataError(f"--where '{text}': '{raw}' is not a value of {kind} "
                                f"column '{name}'") from None
            if kind == "datetime" and c is not None and c.tz and value.tzinfo is None:
                value = value.tz_localize(c.tz)
            clauses.append(Clause(name, op, value, text))
        else:  # constant
            clauses.append(Clause(name, op, c.value if str(c.value) == raw else raw, text))
    return clauses


def _asked(codec: TableCodec, cl: Clause) -> tuple[str, Any] | None:
    """The (discrete column, category) an ``=`` clause asks for, if it names one: on a derived
    column, its source's category when a single one gives the value."""
    if cl.op != "=" or cl.value is None:
        return None
    d = codec.derived_column(cl.column)
    if d is None:
        return (cl.column, cl.value) if codec.column(cl.column).kind in DISCRETE else None
    keys = [k for k, v in zip(d.keys, d.values, strict=True)
            if v is not None and v == cl.value]
    return (d.source, keys[0]) if len(keys) == 1 else None


def condition_option(cond: Conditioning, clauses: list[Clause]) -> int | None:
    """The option to condition generated rows on: the rarest category asked with ``=``."""
    if not isinstance(cond, TableConditions) or cond.p_share is None:
        return None
    best, best_share = None, 2.0
    for cl in clauses:
        asked = _asked(cond.codec, cl)
        if asked is None:
            continue
        c = cond.codec.column(asked[0])
        o = cond.option(*asked)
        share = c.shares[c.categories.index(asked[1])]
        if share < best_share:
            best, best_share = o, share
    return best

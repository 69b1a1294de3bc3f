"""The table codec: column types, and rows <-> the vectors a GAN learns (CTGAN's encoding).

Each column becomes a block of the encoded vector:

- continuous, integer and datetime, scale "modes": one scalar in [-1, 1] (tanh) and a one-hot
  of the column's Gaussian-mixture mode (softmax), plus one more "missing" mode when the column
  has missing values: mode-specific normalisation, value = mode one-hot + scalar (Xu et al.
  2019), the scalar (value - mean) / (4 std) of the mode;
- the same, scale "gaussian" (``data.numeric``): one scalar, the value's normal score (its
  quantile among the training values through the standard normal's inverse CDF, ties taking
  the middle: ``kinds.normal_scores``) divided by 5 (tanh), plus a present/missing one-hot
  when the column has missing values. A spike (capital gains of 0 in 92% of rows) is then an
  interval of scores that all decode to it, where the mixture's scalar spreads it;
- scale "spike-modes" (what ``auto`` picks for a column with a spike and more than 20 distinct
  values; "gaussian" for fewer): the spike is one more mode of a mixture fitted to the other
  values (and missing one more), so the rare values beside a spike (capital gains other than
  0) keep their share and their own modes (losses near 1,900 and near 1,600 stay apart); the
  scalar is a value's normal score among the training values of its mode (``within``), / 5,
  so heaped values (weekly hours of 45, 50, 60) come back as heaps;
- scale "spike" (runs fitted before "spike-modes"; still read, encoded and decoded): the spike
  as a one-hot of other value / spike (/ missing), the scalar the normal score of a value among
  the other values;
- categorical and boolean: a one-hot of the category (softmax); a missing value is a category;
- constant: nothing (decoded as the constant);
- derived (``data.derive``): nothing; a column that is a function of one discrete column in
  the training rows is decoded from that column's category (``dependencies``).

The fitted codec is plain JSON (``to_json`` / ``from_json``): no pickle anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...errors import DataError
from ..normal_scores import Marginals
from .dependencies import Derived, find_dependencies, fit_derived
from .gmm import Mixture1D, fit_mixture

KINDS = ("continuous", "integer", "categorical", "boolean", "datetime")
CHOICES = (*KINDS, "drop")  # what data.columns.NAME may say
NUMERIC = ("continuous", "integer", "datetime")
DISCRETE = ("categorical", "boolean")
SMALL_INTEGER = 10  # integer columns with at most this many distinct values are categories
ID_MIN_ROWS = 20  # a column unique in every row is id-like only with at least this many rows
MODES = 10  # Gaussian-mixture components per numeric column (before pruning)
SCALES = ("modes", "gaussian", "auto")  # numeric encodings (data.numeric)
SPIKE = 0.2  # scale "auto": a column whose most common value holds this share has a spike
SPIKE_VALUES = 20  # ... and the spike a mode of its own ("spike-modes") with more distinct values
OTHER_MODES = 5  # "spike-modes": mixture modes of the values beside the spike (measured: Adult's
# train-on-synthetic F1 as with 10, credit_data's better, a narrower row: BENCHMARKS.md)
SCORE_SCALE = 5.0  # a normal score is stored as score / SCORE_SCALE (inside tanh's range)
SCORE_EDGE = 1e-6  # quantiles kept in [SCORE_EDGE, 1 - SCORE_EDGE]: scores within +-4.75
FORMAT = 1


def _json_value(v: Any) -> Any:
    """A category as a JSON value (None for missing)."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def infer_kind(col: pd.Series) -> str:
    """The kind of a column: one of KINDS, "id" (unique in every row) or "constant"."""
    values = col.dropna()
    if len(values) == 0:
        return "empty"
    n_unique = values.nunique()
    if n_unique == 1 and len(values) == len(col):
        return "constant"
    if pd.api.types.is_bool_dtype(col.dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(col.dtype):
        integral = bool(np.all(np.mod(values.to_numpy(dtype=np.float64), 1.0) == 0.0))
        if integral:
            if n_unique <= SMALL_INTEGER:
                return "categorical"
            if n_unique == len(col) and len(col) >= ID_MIN_ROWS:
                return "id"
            return "integer"
        return "continuous"
    text = values.astype(str)
    if n_unique == len(col) and len(col) >= ID_MIN_ROWS:
        return "id"
    if _looks_like_dates(text):
        return "datetime"
    return "categorical"


def _looks_like_dates(text: pd.Series) -> bool:
    sample = text.iloc[:200]
    if not sample.str.contains(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}/\d{1,2}/\d{2,4}", regex=True).all():
        return False
    parsed = pd.to_datetime(text, errors="coerce", format="mixed")
    return bool(parsed.notna().all())


@dataclass
class Column:
    """One column's type and fitted encoding."""

    name: str
    kind: str  # one of KINDS or "constant"
    dtype: str  # the input's pandas dtype, restored on decode
    missing: bool = False  # whether the training data has missing values here
    low: float = 0.0  # numeric: the seen range (decoded values stay inside it)
    high: float = 0.0
    scale: str = "modes"  # numeric: "modes", "spike-modes", "gaussian" or "spike" (see above)
    mixture: Mixture1D | None = None  # numeric, "modes" (the other values: "spike-modes")
    quantiles: Marginals | None = None  # numeric, scale "gaussian" (the other values: "spike")
    spike: float = 0.0  # numeric, "spike" and "spike-modes": the value held by many rows
    within: Marginals | None = None  # "spike-modes": each mode's values (None: linear scalar)
    unit: str = ""  # datetime: "D" (dates) or "s"
    tz: str = ""  # datetime: the time zone of a zone-aware column
    categories: list[Any] = field(default_factory=list)  # discrete: values (None = missing)
    shares: list[float] = field(default_factory=list)  # discrete: each category's share
    value: Any = None  # constant

    @property
    def modes(self) -> int:
        """Numeric: mixture modes, then one for the spike ("spike-modes") and one for missing
        values (scale "gaussian": present and missing, or none without missing values;
        "spike": other value, spike, and missing)."""
        if self.scale == "gaussian":
            return 2 if self.missing else 0
        if self.scale == "spike":
            return 2 + int(self.missing)
        assert self.mixture is not None
        return len(self.mixture.weights) + int(self.scale == "spike-modes") + int(self.missing)

    @property
    def width(self) -> int:
        """Width of this column's block in the encoded vector."""
        if self.kind in NUMERIC:
            return 1 + self.modes
        if self.kind in DISCRETE:
            return len(self.categories)
        return 0

    def heads(self) -> list[tuple[int, str]]:
        """The generator's output head for this block: (width, "tanh" | "softmax") pieces."""
        if self.kind in NUMERIC:
            return [(1, "tanh"), (self.modes, "softmax")] if self.modes else [(1, "tanh")]
        if self.kind in DISCRETE:
            return [(len(self.categories), "softmax")]
        return []

    def to_json(self) -> dict[str, Any]:
        """The column as plain JSON values."""
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "dtype": self.dtype,
                             "missing": self.missing}
        if self.kind in NUMERIC:
            d.update(low=self.low, high=self.high, unit=self.unit, tz=self.tz, scale=self.scale)
            if self.scale in ("gaussian", "spike"):
                assert self.quantiles is not None
                d["quantiles"] = self.quantiles.to_json()[0]
            else:
                assert self.mixture is not None
                d["mixture"] = self.mixture.to_json()
                if self.within is not None:
                    d["within"] = self.within.to_json()
            if self.scale in ("spike", "spike-modes"):
                d["spike"] = self.spike
        elif self.kind in DISCRETE:
            d.update(categories=self.categories, shares=self.shares)
        else:
            d["value"] = self.value
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Column:
        """Inverse of ``to_json``; ValueError for anything that does not fit."""
        kind = d["kind"]
        if kind not in (*KINDS, "constant") or not isinstance(d["name"], str):
            raise ValueError(f"unknown column kind {kind!r}")
        c = cls(name=d["name"], kind=kind, dtype=str(d["dtype"]), missing=bool(d["missing"]))
        if kind in NUMERIC:
            c.low, c.high = float(d["low"]), float(d["high"])
            c.scale = str(d.get("scale", "modes"))
            if c.scale in ("gaussian", "spike"):
                try:
                    c.quantiles = Marginals.from_json([d["quantiles"]], 1)
                except DataError as e:
                    raise ValueError(f"column {c.name}: {e}") from None
            elif c.scale in ("modes", "spike-modes"):
                c.mixture = Mixture1D.from_json(d["mixture"])
                if "within" in d:
                    try:
                        c.within = Marginals.from_json(d["within"], len(c.mixture.weights))
                    except DataError as e:
                        raise ValueError(f"column {c.name}: {e}") from None
            else:
                raise ValueError(f"column {c.name}: unknown scale {c.scale!r}")
            if c.scale in ("spike", "spike-modes"):
                c.spike = float(d["spike"])
                if not math.isfinite(c.spike):
                    raise ValueError(f"column {c.name}: the spike is not a number")
            c.unit, c.tz = str(d.get("unit", "")), str(d.get("tz", ""))
        elif kind in DISCRETE:
            c.categories = list(d["categories"])
            c.shares = [float(s) for s in d["shares"]]
            if not c.categories or len(c.shares) != len(c.categories):
                raise ValueError(f"column {c.name}: categories and shares do not match")
        else:
            c.value = d.get("value")
        return c


def _numeric_values(col: pd.Series, kind: str) -> np.ndarray:
    """A numeric or datetime column as float64 (NaN for missing; datetimes in seconds)."""
    if kind == "datetime":
        t = col if pd.api.types.is_datetime64_any_dtype(col.dtype) else pd.to_datetime(
            col, errors="coerce", format="mixed")
        if getattr(t.dt, "tz", None) is not None:
            t = t.dt.tz_convert("UTC").dt.tz_localize(None)
        ns = t.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
        ns[t.isna().to_numpy()] = np.nan
        return ns / 1e9
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)


def _fit_column(name: str, col: pd.Series, kind: str, seed: int,
                max_categories: int, scale: str = "modes") -> Column:
    c = Column(name=name, kind=kind, dtype=str(col.dtype), missing=bool(col.isna().any()))
    if kind in NUMERIC:
        x = _numeric_values(col, kind)
        bad = col.notna().to_numpy() & np.isnan(x)
        if bad.any():
            raise DataError(f"column '{name}' is {kind}, but holds "
                            f"{_json_value(col[bad].iloc[0])!r}: set data.columns.{name}="
                            "categorical, or fix the value")
        ok = x[~np.isnan(x)]
        c.low, c.high = float(ok.min()), float(ok.max())
        if scale in ("auto", "spike", "spike-modes"):
            values, counts = np.unique(ok, return_counts=True)
            top = counts.argmax()
        if scale == "auto":
            scale = ("modes" if counts[top] / len(ok) < SPIKE
                     else "spike-modes" if len(values) > SPIKE_VALUES else "gaussian")
        c.scale = scale
        if scale in ("spike", "spike-modes"):
            c.spike = float(values[top])
            others = ok[ok != c.spike]  # not empty: "auto" picks a spike among > 20 values
        if scale == "gaussian":
            c.quantiles = Marginals.of_columns([ok])
        elif scale == "spike":
            c.quantiles = Marginals.of_columns([others])
        elif scale == "spike-modes":
            c.mixture = fit_mixture(others, OTHER_MODES, seed)
            c.within = _within(c.mixture, others)
        else:
            c.mixture = fit_mixture(ok, MODES, seed)
        if kind == "datetime":
            c.unit = "D" if bool(np.all(np.mod(ok, 86400.0) == 0.0)) else "s"
            tz = getattr(col.dt, "tz", None) if pd.api.types.is_datetime64_any_dtype(
                col.dtype) else None
            c.tz = str(tz) if tz is not None else ""
        return c
    if kind == "constant":
        c.value = _json_value(col.iloc[0])
        return c
    if kind == "boolean" and not pd.api.types.is_bool_dtype(col.dtype):
        raise DataError(f"column '{name}' is not boolean (values such as "
                        f"{_json_value(col.dropna().iloc[0])!r}): choose another kind")
    counts = col.value_counts(dropna=False, sort=True)
    if len(counts) > max_categories:
        raise DataError(f"column '{name}' has {len(counts)} categories, more than "
                        f"data.max_categories={max_categories}: raise data.max_categories, or "
                        f"set data.columns.{name}=drop")
    c.categories = [_json_value(v) for v in counts.index]
    c.shares = (counts.to_numpy(dtype=np.float64) / len(col)).tolist()
    if len(set(map(repr, c.categories))) != len(c.categories):  # e.g. 1 and "1" in one column
        raise DataError(f"column '{name}' has values that differ only in type: clean it first")
    return c


def _within(mixture: Mixture1D, values: np.ndarray) -> Marginals:
    """The quantiles of the values the mixture assigns to each of its modes (a mode assigned
    none: its Gaussian's)."""
    mode = mixture.modes(values)
    parts = []
    for k in range(len(mixture.weights)):
        v = values[mode == k]
        if not len(v):
            v = mixture.means[k] + mixture.stds[k] * torch.special.ndtri(
                torch.linspace(0.001, 0.999, 999, dtype=torch.float64)).numpy()
        parts.append(v)
    return Marginals.of_columns(parts)


def _scalar_of(c: Column, x: np.ndarray, mode: np.ndarray) -> np.ndarray:
    """The scalar of values ``x`` in mixture modes ``mode``."""
    assert c.mixture is not None
    if c.within is None:
        return (x - c.mixture.means[mode]) / (4.0 * c.mixture.stds[mode])
    out = np.empty(len(x))
    for k in np.unique(mode):
        sel = mode == k
        one = Marginals(c.within.quantiles[k:k + 1])
        out[sel] = one.forward(x[sel, None], SCORE_EDGE)[:, 0] / SCORE_SCALE
    return out


def _value_of(c: Column, scalar: np.ndarray, mode: np.ndarray) -> np.ndarray:
    """Inverse of ``_scalar_of``: values from G's scalars in modes ``mode``."""
    assert c.mixture is not None
    if c.within is None:
        return scalar * 4.0 * c.mixture.stds[mode] + c.mixture.means[mode]
    out = np.empty(len(scalar))
    for k in np.unique(mode):
        sel = mode == k
        one = Marginals(c.within.quantiles[k:k + 1])
        out[sel] = one.inverse(scalar[sel, None] * SCORE_SCALE)[:, 0]
    return out


@dataclass
class TableCodec:
    """A fitted encoding of a table's columns (see the module docstring)."""

    columns: list[Column]  # the learned columns
    names: list[str]  # every output column, in the input's order (dropped ones excluded)
    dropped: list[str] = field(default_factory=list)
    derived: list[Derived] = field(default_factory=list)  # decoded from a learned column

    # -- fitting -------------------------------------------------------------------------------

    @classmethod
    def fit(cls, df: pd.DataFrame, kinds: dict[str, str] | None = None,
            max_categories: int = 200, seed: int = 0, scale: str = "modes",
            derive: bool = False, keep: tuple[str, ...] = ()) -> tuple[TableCodec, list[str]]:
        """Infer (or take from ``kinds``) each column's type and fit its encoding.

        ``kinds`` maps a column to one of CHOICES; ``scale`` (one of SCALES) is the encoding of
        numeric columns; with ``derive``, a column that is a function of a discrete column
        (and not in ``keep``, nor named in ``kinds``) is decoded from it, not learned. Returns
        the codec and notes for the user (id-like columns dropped, derived columns). DataError
        for data that cannot be encoded.
        """
        kinds = dict(kinds or {})
        unknown = sorted(set(kinds) - set(map(str, df.columns)))
        if unknown:
            raise DataError(f"data.columns names '{unknown[0]}', which is not a column "
                            f"(columns: {', '.join(map(str, df.columns))})")
        all_names = list(map(str, df.columns))
        twice = sorted({n for n in all_names if all_names.count(n) > 1})
        if twice:
            raise DataError(f"column '{twice[0]}' appears more than once: name columns uniquely")
        notes: list[str] = []
        found: dict[str, str] = {}  # every kept column's kind, in the input's order
        dropped: list[str] = []
        for i, name in enumerate(map(str, df.columns)):
            col = df.iloc[:, i]
            kind = kinds.get(name) or infer_kind(col)
            if kind not in (*CHOICES, "id", "constant", "empty"):
                raise DataError(f"data.columns.{name} must be one of {', '.join(CHOICES)}, "
                                f"got '{kind}'")
            if kind == "empty" or (kind not in ("id", "drop") and col.isna().all()):
                raise DataError(f"column '{name}' is entirely missing: drop it "
                                f"(data.columns.{name}=drop) or fill it")
            if kind == "id":
                notes.append(f"column '{name}' is unique in every row (an id): dropped, not "
                             f"learned (data.columns.{name}=categorical keeps it)")
            if kind in ("id", "drop"):
                dropped.append(name)
                continue
            found[name] = kind
        frame = df.copy(deep=False)
        frame.columns = all_names
        sources = {n for n, k in found.items() if k in DISCRETE}
        links = (find_dependencies(frame, found, sources, set(keep) | set(kinds))
                 if derive else {})
        derived = [fit_derived(frame, n, found[n], links[n], _json_value) for n in found
                   if n in links]
        for d in derived:
            notes.append(f"column '{d.name}' is a function of '{d.source}' in every training "
                         "row: written from it, not learned (data.derive=false learns it)")
        columns = [_fit_column(n, frame[n], k, seed + all_names.index(n), max_categories, scale)
                   for n, k in found.items() if n not in links]
        if not columns:
            raise DataError("the table has no column left to learn")
        return cls(columns=columns, names=list(found), dropped=dropped,
                   derived=derived), notes

    # -- layout --------------------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Width of one encoded row."""
        return sum(c.width for c in self.columns)

    def heads(self) -> list[tuple[int, str]]:
        """The generator's output head: consecutive (width, activation) pieces."""
        return [h for c in self.columns for h in c.heads()]

    def offsets(self) -> list[int]:
        """Start of each column's block in the encoded vector."""
        out, pos = [], 0
        for c in self.columns:
            out.append(pos)
            pos += c.width
        return out

    def column(self, name: str) -> Column:
        """The column named ``name``; DataError if there is none."""
        for c in self.columns:
            if c.name == name:
                return c
        if name in self.dropped:
            raise DataError(f"column '{name}' was dropped before training")
        if self.derived_column(name) is not None:
            raise DataError(f"column '{name}' is not learned: it is written from another column")
        raise DataError(f"no column '{name}' (columns: {', '.join(self.names)})")

    def derived_column(self, name: str) -> Derived | None:
        """The derived column named ``name``, or None."""
        return next((d for d in self.derived if d.name == name), None)

    def kinds(self) -> dict[str, str]:
        """Every output column's kind (derived ones: the kind they have), in output order."""
        known = {c.name: c.kind for c in self.columns} | {d.name: d.kind for d in self.derived}
        return {n: known[n] for n in self.names}

    # -- rows <-> vectors ----------------------------------------------------------------------

    def encode(self, df: pd.DataFrame) -> torch.Tensor:
        """Rows (with at least the codec's columns) as float32 vectors (N, width)."""
        n = len(df)
        out = np.zeros((n, self.width), dtype=np.float32)
        rows = np.arange(n)
        for c, start in zip(self.columns, self.offsets(), strict=True):
            col = df[c.name]
            if c.kind in NUMERIC and c.scale in ("gaussian", "spike"):
                assert c.quantiles is not None
                x = _numeric_values(col, c.kind)
                missing = np.isnan(x)
                if missing.any() and not c.missing:
                    raise DataError(f"column '{c.name}' had no missing values in training")
                spike = (x == c.spike) if c.scale == "spike" else np.zeros(n, bool)
                scored = ~missing & ~spike  # rows whose value is a normal score
                filled = np.where(scored, x, c.quantiles.quantiles[0, 0])
                score = c.quantiles.forward(filled[:, None], SCORE_EDGE)[:, 0]
                out[:, start] = np.where(scored, score / SCORE_SCALE, 0.0)
                if c.modes:  # one-hot of value / spike / missing (gaussian: value / missing)
                    choice = np.where(missing, c.modes - 1, np.where(spike, 1, 0))
                    out[rows, start + 1 + choice] = 1.0
            elif c.kind in NUMERIC:
                assert c.mixture is not None
                x = _numeric_values(col, c.kind)
                missing = np.isnan(x)
                spike = (x == c.spike) if c.scale == "spike-modes" else np.zeros(n, bool)
                filled = np.where(missing | spike, c.mixture.means[0], x)
                mode = c.mixture.modes(filled)
                scalar = _scalar_of(c, filled, mode)
                scalar[missing | spike] = 0.0
                mode[spike] = len(c.mixture.weights)
                if c.missing:
                    mode[missing] = c.modes - 1
                elif missing.any():
                    raise DataError(f"column '{c.name}' had no missing values in training")
                out[:, start] = scalar
                out[rows, start + 1 + mode] = 1.0
            elif c.kind in DISCRETE:
                codes = self.codes(c, col)
                out[rows, start + codes] = 1.0
        return torch.from_numpy(out)

    @staticmethod
    def codes(c: Column, col: pd.Series) -> np.ndarray:
        """The category index of each value of a discrete column (DataError for unseen ones)."""
        present = [i for i, v in enumerate(c.categories) if v is not None]
        index = pd.Index([c.categories[i] for i in present], dtype=object)
        found = index.get_indexer(col.astype(object).where(col.notna(), None))
        codes = np.asarray(present + [-1], dtype=np.int64)[found]
        missing = col.isna().to_numpy()
        if None in c.categories:
            codes[missing] = c.categories.index(None)
        bad = codes < 0
        if bad.any():
            value = _json_value(col[bad].iloc[0])
            raise DataError(f"column '{c.name}' has a value never seen in training: {value!r}")
        return codes

    def decode(self, x: torch.Tensor) -> pd.DataFrame:
        """Vectors (N, width) back to rows: the codec's columns, order and dtypes.

        Softmax blocks are read by their largest entry; numeric values stay in the seen range,
        integers are whole, datetimes keep the data's resolution.
        """
        a = x.detach().cpu().to(torch.float64).numpy()
        if a.ndim != 2 or a.shape[1] != self.width:
            raise DataError(f"vectors of shape {tuple(a.shape)} do not fit this codec's "
                            f"width {self.width}")
        cols: dict[str, Any] = {}
        drawn: dict[str, list[Any]] = {}  # discrete columns' categories, as JSON values
        n = len(a)
        for c, start in zip(self.columns, self.offsets(), strict=True):
            if c.kind in NUMERIC:
                cols[c.name] = self._decode_numeric(c, a[:, start:start + c.width])
            elif c.kind in DISCRETE:
                idx = a[:, start:start + c.width].argmax(1)
                drawn[c.name] = [c.categories[i] for i in idx]
                cols[c.name] = _restore(c.dtype, c.kind, drawn[c.name])
            else:
                cols[c.name] = _restore(c.dtype, c.kind, [c.value] * n)
        for d in self.derived:
            lookup = d.lookup()
            cols[d.name] = _restore(d.dtype, d.kind, [lookup[v] for v in drawn[d.source]])
        return pd.DataFrame(cols, columns=self.names)

    @staticmethod
    def _decode_numeric(c: Column, block: np.ndarray) -> pd.Series:
        if c.scale == "spike":
            assert c.quantiles is not None
            choice = block[:, 1:].argmax(1)
            missing = choice == 2
            value = np.where(choice == 1, c.spike,
                             c.quantiles.inverse(block[:, :1] * SCORE_SCALE)[:, 0])
        elif c.scale == "gaussian":
            assert c.quantiles is not None
            missing = block[:, 2] > block[:, 1] if c.missing else np.zeros(len(block), bool)
            value = c.quantiles.inverse(block[:, :1] * SCORE_SCALE)[:, 0]
        else:
            assert c.mixture is not None
            mode = block[:, 1:].argmax(1)
            k = len(c.mixture.weights)
            missing = mode == c.modes - 1 if c.missing else np.zeros(len(mode), bool)
            at_spike = mode == k if c.scale == "spike-modes" else np.zeros(len(mode), bool)
            mode = np.minimum(mode, k - 1)
            value = np.where(at_spike, c.spike, _value_of(c, block[:, 0], mode))
        value = np.clip(value, c.low, c.high)
        if c.kind == "integer":
            value = np.round(value)
        if c.kind == "datetime":
            step = 86400.0 if c.unit == "D" else 1.0
            value = np.clip(np.round(value / step) * step, c.low, c.high)
            ns = (value * 1e9).round().astype(np.int64).astype("datetime64[ns]")
            t = pd.Series(pd.to_datetime(ns))
            t[missing] = pd.NaT
            if c.tz:
                t = t.dt.tz_localize("UTC").dt.tz_convert(c.tz)
            return t
        s = pd.Series(value)
        if c.kind == "integer":
            if missing.any() or c.missing:
                s = s.astype("Int64")
                s[missing] = pd.NA
                return s
            return s.astype(c.dtype if c.dtype.startswith(("int", "uint")) else "int64")
        s[missing] = np.nan
        return s

    # -- JSON ------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The fitted codec as plain JSON values."""
        return {"format": FORMAT, "names": self.names, "dropped": self.dropped,
                "columns": [c.to_json() for c in self.columns],
                "derived": [d.to_json() for d in self.derived]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TableCodec:
        """Inverse of ``to_json``; DataError for a codec that does not fit together."""
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r}")
            columns = [Column.from_json(c) for c in d["columns"]]
            derived = [Derived.from_json(x) for x in d.get("derived", [])]
            names = [str(n) for n in d["names"]]
            made = {x.name for x in derived}
            if ([c.name for c in columns] != [n for n in names if n not in made]
                    or len(made) != len(derived) or not made <= set(names)):
                raise ValueError("names do not match the columns")
            discrete = {c.name: c for c in columns if c.kind in DISCRETE}
            for x in derived:
                source = discrete.get(x.source)
                if source is None or {repr(k) for k in x.keys} != set(map(repr,
                                                                           source.categories)):
                    raise ValueError(f"derived column {x.name}: its source {x.source!r} is not "
                                     "a learned discrete column with those categories")
            return cls(columns=columns, names=names, dropped=[str(n) for n in d["dropped"]],
                       derived=derived)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"invalid table codec: {e}") from None


def typed(df: pd.DataFrame, codec: TableCodec) -> pd.DataFrame:
    """``df``'s learned columns, with datetime columns read as written (text) parsed to
    datetimes, as decoded rows have them."""
    out = df[codec.names].copy()
    for c in codec.columns:
        if c.kind == "datetime" and not pd.api.types.is_datetime64_any_dtype(out[c.name].dtype):
            out[c.name] = pd.to_datetime(out[c.name], errors="coerce", format="mixed")
    return out


def _restore(dtype: str, kind: str, values: list[Any]) -> pd.Series:
    """Decoded values (JSON values, None = missing) in the column's original dtype where it had
    one."""
    s = pd.Series(values, dtype=object)
    has_missing = any(v is None for v in values)
    if dtype == "bool" or kind == "boolean":
        return s.astype("boolean") if has_missing else s.astype(bool)
    if dtype.startswith(("int", "uint", "Int")):
        return s.astype("Int64") if has_missing or dtype.startswith("Int") else s.astype(dtype)
    if dtype.startswith("float"):
        return s.astype("float64")
    if dtype in ("str", "string"):
        return s.astype(dtype)
    if has_missing:
        s[s.isna()] = np.nan
    return s

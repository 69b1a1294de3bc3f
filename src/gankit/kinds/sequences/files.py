"""Reading time series from the built-ins, .npz arrays and table files, and writing them back.

Every reader returns ``Series``: values (N, T, C) in the data's own units with padding (steps at
or past a series' length) set to 0, lengths (None when every series is full), labels and the
channel names, plus the (low, high) per channel that min-max scaling uses. Anything that cannot
be read as series raises DataError with one sentence.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ...config import SERIES_KEY, DataConfig
from ...errors import DataError
from ...fileio import atomic_write

BUILTIN_WINDOW = 24  # TimeGAN's sequence length for sines, stocks and energy
SINES = (10_000, 5)  # TimeGAN's sines: series, channels


@dataclass(frozen=True)
class Series:
    """Series read from a source (see the module docstring)."""

    values: np.ndarray  # (N, T, C) float64
    lengths: np.ndarray | None  # (N,) int64 in 1..T, or None: every series has T steps
    labels: np.ndarray | None  # (N,) int64 class indices, or None
    classes: tuple[str, ...]  # the name of each class index
    channels: tuple[str, ...]
    low: np.ndarray  # (C,) what min-max scaling maps to 0
    high: np.ndarray  # (C,) ... and to 1
    layout: dict[str, str]  # how `gankit sample --out X.csv` writes them: format, id, time, label


def sines(n: int, length: int, channels: int, seed: int) -> np.ndarray:
    """TimeGAN's sine data: per series and channel sin(f t + p), f and p from U(0, 0.1),
    mapped to [0, 1] by (x + 1) / 2."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.0, 0.1, (n, 1, channels))
    phase = rng.uniform(0.0, 0.1, (n, 1, channels))
    t = np.arange(length, dtype=np.float64)[None, :, None]
    return (np.sin(freq * t + phase) + 1.0) * 0.5


def windows(values: np.ndarray, window: int, stride: int) -> np.ndarray:
    """(N, window, C): every window of ``window`` consecutive rows of ``values`` (rows, C),
    starting every ``stride`` rows (TimeGAN: range(0, rows - window), so the last start is
    rows - window - 1)."""
    rows = len(values)
    if window > rows - 1:
        raise DataError(f"data.window={window} needs a series longer than {window} rows; this "
                        f"one has {rows}")
    starts = np.arange(0, rows - window, stride)
    idx = starts[:, None] + np.arange(window)[None, :]
    return values[idx]


def _range(values: np.ndarray, lengths: np.ndarray | None, channels: tuple[str, ...]
           ) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per channel over the valid steps; DataError on a constant channel."""
    flat = _valid(values, lengths)
    low, high = flat.min(axis=0), flat.max(axis=0)
    constant = [channels[i] for i in np.flatnonzero(high - low <= 0)]
    if constant:
        raise DataError(f"channel {constant[0]!r} is constant (zero variance): nothing to "
                        "learn; drop it (a table file: data.columns.NAME=drop)")
    return low, high


def _valid(values: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    if lengths is None:
        return values.reshape(-1, values.shape[2])
    keep = np.arange(values.shape[1])[None, :] < lengths[:, None]
    return values[keep]


def _check_finite(values: np.ndarray, lengths: np.ndarray | None, source: str) -> None:
    if not np.isfinite(_valid(values, lengths)).all():
        raise DataError(f"{source} holds NaN or infinite values: fill or drop them first")


def builtin_series(name: str, cfg: DataConfig) -> Series:
    """The built-in ``sines`` (generated, seeded by data.split_seed), ``stocks`` or ``energy``
    (TimeGAN's files: rows reversed to run forward in time, min-max scaled over the whole
    series, then cut into stride-1 windows of 24)."""
    length = cfg.window or BUILTIN_WINDOW
    if name == "sines":
        n, c = SINES
        values = sines(n, length, c, cfg.split_seed)
        channels = tuple(f"sine{i}" for i in range(c))
        return Series(values, None, None, (), channels, np.zeros(c), np.ones(c),
                      {"format": "npz"})
    text = resources.files("gankit").joinpath("data", f"{name}.csv.gz").read_bytes()
    df = pd.read_csv(io.BytesIO(gzip.decompress(text)))
    raw = df.to_numpy(dtype=np.float64)[::-1]
    channels = tuple(map(str, df.columns))
    low, high = _range(raw[None], None, channels)
    return Series(windows(raw, length, cfg.stride), None, None, (), channels, low, high,
                  {"format": "wide"})


def read_npz(path: Path) -> Series:
    """An .npz file: ``series`` (N, T, C) (or (N, T) for one channel), optional ``lengths``
    (N,) and ``labels`` (N,) of integers or strings."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"array file {path} cannot be read as numpy arrays without pickle "
                        f"({type(e).__name__}: {e}); ragged series need padding and a "
                        "`lengths` array") from None
    values = arrays[SERIES_KEY]
    if values.ndim == 2:
        values = values[:, :, None]
    if values.ndim != 3 or not np.issubdtype(values.dtype, np.number):
        raise DataError(f"{path}: `series` must be a numeric array (N, T, C), got "
                        f"{values.dtype} {values.shape}")
    values = values.astype(np.float64)
    n, t, c = values.shape
    if n < 2 or t < 2:
        raise DataError(f"{path}: `series` needs at least 2 series of at least 2 steps, got "
                        f"{n} of {t}")
    lengths = _lengths(arrays.get("lengths"), n, t, path)
    if lengths is not None:
        values = np.where(np.arange(t)[None, :, None] < lengths[:, None, None], values, 0.0)
    _check_finite(values, lengths, str(path))
    labels, classes = _labels(arrays.get("labels"), n, str(path))
    channels = tuple(f"channel{i}" for i in range(c))
    low, high = _range(values, lengths, channels)
    return Series(values, lengths, labels, classes, channels, low, high, {"format": "npz"})


def _lengths(raw: np.ndarray | None, n: int, t: int, path: Path) -> np.ndarray | None:
    if raw is None:
        return None
    if raw.shape != (n,) or not np.issubdtype(raw.dtype, np.integer):
        raise DataError(f"{path}: `lengths` must be {n} integers (one per series), got "
                        f"{raw.dtype} {raw.shape}")
    if raw.min() < 2 or raw.max() > t:
        raise DataError(f"{path}: `lengths` must be in 2..{t} (the series' steps), got "
                        f"{int(raw.min())}..{int(raw.max())}")
    return None if (raw == t).all() else raw.astype(np.int64)


def _labels(raw: np.ndarray | None, n: int, source: str
            ) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """(class index per series, class names sorted) of raw labels; DataError on a mismatch."""
    if raw is None:
        return None, ()
    raw = np.asarray(raw)
    if raw.shape != (n,):
        raise DataError(f"{source}: {len(raw) if raw.ndim else 1} labels for {n} series: "
                        "give one label per series")
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        raise DataError(f"{source}: labels must not be missing")
    names, idx = np.unique(raw.astype(str) if raw.dtype.kind in "OUS" else raw,
                           return_inverse=True)
    if len(names) < 2:
        raise DataError(f"{source}: the labels hold one class; conditioning needs at least 2 "
                        "(or leave the labels out)")
    return idx.astype(np.int64), tuple(str(v) for v in names)


def read_frame(path: Path) -> pd.DataFrame:
    """A table file as a DataFrame (through the tables kind's reader; 2 rows are enough: one
    series of two steps)."""
    from ..tables.files import read_table

    return read_table(path, min_rows=2)


def _numeric(df: pd.DataFrame, source: str) -> np.ndarray:
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])
           or pd.api.types.is_bool_dtype(df[c])]
    if bad:
        raise DataError(f"column {bad[0]!r} of {source} is not numeric: a series' channels "
                        "are numbers (drop it with data.columns.NAME=drop, or name it "
                        "data.target for a label)")
    if df.shape[1] == 0:
        raise DataError(f"{source} has no channel columns left")
    return df.to_numpy(dtype=np.float64)


def read_long(path: Path, cfg: DataConfig) -> Series:
    """A table in long format: one row per (series ``data.id``, step), ordered by
    ``data.time`` (else file order), the other numeric columns as channels and ``data.target``
    (constant within a series) as its label."""
    df = read_frame(path)
    source = str(path)
    if cfg.window:
        raise DataError("data.window cuts one long series; a long-format file (data.id) holds "
                        "its series whole")
    for key, col in (("data.id", cfg.id), ("data.time", cfg.time), ("data.target", cfg.target)):
        if col and col not in df.columns:
            raise DataError(f"{key} '{col}' is not a column of {source} (columns: "
                            f"{', '.join(map(str, df.columns))})")
    if df[cfg.id].isna().any():
        raise DataError(f"{source}: {int(df[cfg.id].isna().sum())} rows have no {cfg.id!r} "
                        "(data.id): every row must name its series")
    df = _ordered(df, cfg.time, source, by=cfg.id)
    drop = [c for c, k in cfg.columns if k == "drop"]
    label_col = cfg.target or None
    channel_df = df.drop(columns=[c for c in (cfg.id, cfg.time, label_col, *drop)
                                  if c and c in df.columns])
    values_flat = _numeric(channel_df, source)
    ids = df[cfg.id].to_numpy()
    codes, first = pd.factorize(ids, sort=False)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    n, t = len(counts), int(counts.max())
    if t < 2:
        raise DataError(f"{source}: every series has one time step; a series needs at least 2")
    if counts.min() < 2:
        short = first[int(np.argmin(counts))]
        raise DataError(f"{source}: series {short!r} has one time step; a series needs at "
                        "least 2")
    step = np.arange(len(ids)) - np.repeat(np.cumsum(counts) - counts, counts)
    values = np.zeros((n, t, values_flat.shape[1]))
    values[codes[order], step] = values_flat[order]
    lengths = None if (counts == t).all() else counts.astype(np.int64)
    _check_finite(values, lengths, source)
    labels, classes = None, ()
    if label_col:
        per = df.groupby(codes, sort=True)[label_col].nunique(dropna=False)
        if (per > 1).any():
            raise DataError(f"data.target '{label_col}' changes within series "
                            f"{first[int(per.idxmax())]!r}: a label must be constant per series")
        raw = df.groupby(codes, sort=True)[label_col].first().to_numpy()
        labels, classes = _labels(raw, n, source)
    channels = tuple(map(str, channel_df.columns))
    low, high = _range(values, lengths, channels)
    return Series(values, lengths, labels, classes, channels, low, high,
                  {"format": "long", "id": cfg.id, "time": cfg.time or "t",
                   "label": label_col or ""})


def _ordered(df: pd.DataFrame, time: str, source: str, by: str | None = None) -> pd.DataFrame:
    """``df`` sorted by the ``time`` column (stable; within ``by``); DataError when the times
    are missing, are neither numbers nor dates, or repeat within a series."""
    if not time:
        return df
    col = df[time]
    if col.isna().any():
        raise DataError(f"{source}: {int(col.isna().sum())} rows have no {time!r} (data.time)")
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    try:
        key = col if numeric or pd.api.types.is_datetime64_any_dtype(col) \
            else pd.to_datetime(col.astype(str), format="mixed")
        ranks = pd.Series(np.argsort(np.argsort(key.to_numpy(), kind="stable"), kind="stable"),
                          index=df.index)
    except (TypeError, ValueError) as e:
        raise DataError(f"{source}: the times in {time!r} (data.time) cannot be ordered: "
                        f"they must be numbers or dates ({str(e).splitlines()[0]})") from None
    keys = [by, time] if by else [time]
    if df.duplicated(subset=keys).any():
        where = "within a series" if by else "in the file"
        raise DataError(f"{source}: a time in {time!r} repeats {where}")
    return df.assign(_rank=ranks).sort_values([*([by] if by else []), "_rank"],
                                              kind="stable").drop(columns="_rank")


def read_wide(path: Path, cfg: DataConfig) -> Series:
    """One long series in a table file (a row per step, ordered by ``data.time`` or file
    order), min-max scaled over the whole series as TimeGAN does, cut into ``data.window``
    steps every ``data.stride``."""
    df = read_frame(path)
    source = str(path)
    if cfg.time and cfg.time not in df.columns:
        raise DataError(f"data.time '{cfg.time}' is not a column of {source}")
    df = _ordered(df, cfg.time, source)
    drop = [c for c, k in cfg.columns if k == "drop"]
    channel_df = df.drop(columns=[c for c in (cfg.time, *drop) if c and c in df.columns])
    raw = _numeric(channel_df, source)
    _check_finite(raw[None], None, source)
    channels = tuple(map(str, channel_df.columns))
    low, high = _range(raw[None], None, channels)
    return Series(windows(raw, cfg.window, cfg.stride), None, None, (), channels, low, high,
                  {"format": "wide", "time": cfg.time or "t"})


def read_series(cfg: DataConfig) -> Series:
    """The series ``cfg`` names (see ``gankit.config.is_sequence_source``)."""
    from ...config import SEQUENCE_BUILTINS

    if cfg.source in SEQUENCE_BUILTINS:
        return builtin_series(cfg.source, cfg)
    path = Path(cfg.source)
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    if path.suffix.lower() == ".npz":
        return read_npz(path)
    return read_long(path, cfg) if cfg.id else read_wide(path, cfg)


# --------------------------------------------------------------------------- writing


def write_npz(out: Path, values: np.ndarray, lengths: np.ndarray | None,
              labels: np.ndarray | None) -> None:
    """Series as an .npz file gankit reads back: ``series`` (N, T, C) float32, ``lengths``
    and ``labels`` where there are any."""
    arrays = {SERIES_KEY: values.astype(np.float32)}
    if lengths is not None:
        arrays["lengths"] = lengths.astype(np.int64)
    if labels is not None:
        arrays["labels"] = np.asarray(labels)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_write(out, write)


def long_frame(values: np.ndarray, lengths: np.ndarray | None, labels: np.ndarray | None,
               channels: tuple[str, ...], layout: dict[str, str]) -> pd.DataFrame:
    """Series as a long-format table: one row per (series, step), columns id, time (the
    step 0..L-1), the channels, and the label where there is one."""
    n, t, _ = values.shape
    lens = lengths if lengths is not None else np.full(n, t)
    keep = np.arange(t)[None, :] < lens[:, None]
    series_id, step = np.nonzero(keep)
    id_col = layout.get("id") or "series"
    time_col = layout.get("time") or "t"
    df = pd.DataFrame({id_col: series_id, time_col: step})
    for i, name in enumerate(channels):
        df[name] = values[series_id, step, i]
    if labels is not None:
        df[layout.get("label") or "label"] = np.asarray(labels)[series_id]
    return df

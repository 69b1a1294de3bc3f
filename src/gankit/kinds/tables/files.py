"""Reading and writing tables: CSV, TSV and Parquet, with every bad input named in one line."""

from __future__ import annotations

import csv
import gzip
import io
from importlib import resources
from pathlib import Path

import pandas as pd

from ...errors import DataError
from ...fileio import atomic_write

MIN_ROWS = 10  # fewer rows cannot be split and learned


def read_table(path: Path, min_rows: int = MIN_ROWS) -> pd.DataFrame:
    """A .csv, .tsv or .parquet file as a DataFrame; DataError for anything that is not a
    usable table (missing, empty, header only, fewer than ``min_rows`` rows, ragged, not UTF-8,
    bad column names)."""
    if not path.is_file():
        raise DataError(f"data source '{path}' not found" if not path.exists()
                        else f"data source {path} is not a file")
    if path.suffix.lower() == ".parquet":
        return _checked(path, _read_parquet(path), min_rows)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path} is a damaged gzip file: {e}") from None
    return _checked(path, parse_text(raw, "\t" if path.suffix.lower() == ".tsv" else ",",
                                     str(path)), min_rows)


def parse_text(raw: bytes, sep: str, name: str) -> pd.DataFrame:
    """Delimited UTF-8 text as a DataFrame (see ``read_table`` for what is refused)."""
    if not raw.strip():
        raise DataError(f"{name} is empty")
    if b"\x00" in raw[:4096]:
        raise DataError(f"{name} is not a text table (it holds binary data)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{name} is not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    rows = csv.reader(io.StringIO(text), delimiter=sep)
    try:
        header = next(rows)
        width = len(header)
        for i, row in enumerate(rows, start=2):
            if row and len(row) != width:
                raise DataError(f"{name}: row {i} has {len(row)} fields, the header has {width}")
    except csv.Error as e:
        raise DataError(f"{name} is not a readable table: {e}") from None
    names = [h.strip() for h in header]
    if any(not n for n in names):
        raise DataError(f"{name}: column {names.index('') + 1} has no name in the header")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{name}: column name '{dup[0]}' appears twice in the header")
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, skipinitialspace=True)
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(f"{name} is not a readable table: {str(e).splitlines()[0]}") from None
    df.columns = names
    return df


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise DataError("reading .parquet needs pyarrow: pip install pyarrow") from None
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises many types for a damaged file
        raise DataError(f"{path} is not a readable Parquet file: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _checked(path: Path, df: pd.DataFrame, min_rows: int) -> pd.DataFrame:
    names = [str(c) for c in df.columns]
    if any(not n.strip() for n in names):
        raise DataError(f"{path}: a column has an empty name")
    if len(set(names)) != len(names):
        raise DataError(f"{path}: a column name appears twice")
    if len(df) == 0:
        raise DataError(f"{path} has a header but no rows")
    if len(df) < min_rows:
        raise DataError(f"{path} has {len(df)} row{'s' * (len(df) != 1)}; a table needs at "
                        f"least {min_rows}")
    df.columns = names
    return df


def builtin_table(name: str) -> pd.DataFrame:
    """A table shipped with gankit (``adult``)."""
    raw = resources.files("gankit").joinpath("data", f"{name}.csv.gz").read_bytes()
    return parse_text(gzip.decompress(raw), ",", name)


def write_table(df: pd.DataFrame, out: Path) -> None:
    """Write ``df`` to ``out`` (.csv, .tsv or .parquet) atomically: a failure leaves no file."""
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DataError("writing .parquet needs pyarrow: pip install pyarrow") from None
        atomic_write(out, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        sep = "\t" if suffix == ".tsv" else ","
        atomic_write(out, lambda tmp: df.to_csv(tmp, index=False, sep=sep))

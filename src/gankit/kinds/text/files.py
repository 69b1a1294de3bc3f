"""Reading and writing text data: one string per line (.txt; .smi keeps each line's first field,
the SMILES), with every bad input named in one line."""

from __future__ import annotations

import gzip
from pathlib import Path

from ...errors import DataError
from ...fileio import atomic_write_bytes

MIN_LINES = 10  # fewer strings cannot be split and learned
HEADERS = ("smiles",)  # a first line that only names the column is skipped


def parse_lines(raw: bytes, name: str, first_field: bool = False) -> list[str]:
    """The non-blank lines of UTF-8 text, stripped (with ``first_field``: each line's first
    whitespace-separated field); DataError for empty, binary or non-UTF-8 input."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{name} is a damaged gzip file: {e}") from None
    if not raw.strip():
        raise DataError(f"{name} is empty")
    if b"\x00" in raw:
        raise DataError(f"{name} is not a text file (it holds binary data)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{name} is not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    lines = [line.strip() for line in text.splitlines()]
    if first_field:
        lines = [line.split()[0] if line else line for line in lines]
    lines = [line for line in lines if line]
    if lines and lines[0].lower() in HEADERS:
        lines = lines[1:]
    return lines


def read_strings(path: Path, max_length: int, truncate: bool) -> tuple[list[str], list[str]]:
    """(the strings of a .txt or .smi file, notes on what loading changed): lines longer than
    ``max_length`` are cut to it when ``truncate``, else refused (DataError)."""
    if not path.is_file():
        raise DataError(f"data source '{path}' not found" if not path.exists()
                        else f"data source {path} is not a file")
    lines = parse_lines(path.read_bytes(), str(path),
                        first_field=path.suffix.lower() in (".smi", ".smiles"))
    if len(lines) < MIN_LINES:
        raise DataError(f"{path} has {len(lines)} string{'s' * (len(lines) != 1)}; text "
                        f"data needs at least {MIN_LINES}")
    long = [i for i, s in enumerate(lines) if len(s) > max_length]
    notes = []
    if long:
        if not truncate:
            raise DataError(f"{path}: line {long[0] + 1} has {len(lines[long[0]])} characters, "
                            f"more than data.max_length={max_length} ({len(long)} such lines; "
                            "raise data.max_length or set data.truncate=true)")
        lines = [s[:max_length] for s in lines]
        notes.append(f"{len(long)} of {len(lines)} strings were longer than data.max_length="
                     f"{max_length} and were cut to it")
    return lines, notes


def write_strings(strings: list[str], out: Path) -> None:
    """Write one string per line to ``out`` atomically (a failure leaves no file)."""
    atomic_write_bytes(out, "".join(s + "\n" for s in strings).encode("utf-8"))

"""Crash-safe file writing: a file is either its old self or completely new, never torn."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import RunError


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk (where the platform allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_temp(name: str) -> bool:
    """Whether ``name`` is one of ``atomic_write``'s temporary files (left behind by a crash)."""
    return name.startswith(".") and name.endswith(".tmp")


def remove_temps(folder: Path) -> None:
    """Delete the temporary files a crash left in ``folder`` (not recursive)."""
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if is_temp(p.name) and p.is_file():
            p.unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it over.

    Raises RunError (with the path) when the folder cannot be written.
    """
    target = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as e:
        raise RunError(f"cannot write to {target.parent}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise RunError(f"cannot write {target}: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))

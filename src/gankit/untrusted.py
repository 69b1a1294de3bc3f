"""Files from strangers: recognise pickles (which run code when loaded) and refuse them.

gankit never unpickles anything; this module only makes the refusal early and clear. It looks at
the name and the first bytes, and at a zip's table of contents, never at a pickle's contents.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from .errors import UnsafeFileError

PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".tar"})
_PICKLE_PROTOCOLS = frozenset(range(2, 6))


def is_pickle(path: Path) -> bool:
    """Whether ``path`` is (or is named as) a pickle or a torch.save archive."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        if len(head) == 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS:
            return True
        if head == b"PK" and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return any(name.endswith(".pkl") for name in z.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return False


def refuse_pickle(path: Path, what: str) -> None:
    """Raise UnsafeFileError when ``path`` (given as ``what``) is a pickle."""
    if is_pickle(path):
        raise UnsafeFileError(f"{what} {path} is a pickle file, which gankit never loads "
                              "(unpickling can run arbitrary code); use safetensors, .npy/.npz "
                              "or TOML instead")

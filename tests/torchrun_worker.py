"""A ``gankit train`` process for torchrun in tests/test_distributed.py (not a test module).

With ``GANKIT_TEST_FAIL_RANK=R`` set, rank R raises at step 3, as a crashed rank would.
"""

from __future__ import annotations

import os
import sys

from gankit.cli import main
from gankit.training.trainer import Trainer


def fail_on_rank(rank: int, step: int = 3) -> None:
    """Make ``Trainer.train_step`` raise at ``step`` in this process if it is rank ``rank``."""
    if int(os.environ.get("RANK", "0")) != rank:
        return
    original = Trainer.train_step

    def failing(self: Trainer) -> None:
        if self.step == step:
            raise RuntimeError(f"rank {rank} failed on purpose at step {step}")
        original(self)

    Trainer.train_step = failing  # type: ignore[method-assign]


if __name__ == "__main__":
    if "GANKIT_TEST_FAIL_RANK" in os.environ:
        fail_on_rank(int(os.environ["GANKIT_TEST_FAIL_RANK"]))
    raise SystemExit(main(sys.argv[1:]))

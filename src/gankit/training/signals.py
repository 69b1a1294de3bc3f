"""SIGINT and SIGTERM during training: finish the step, save a checkpoint, stop cleanly."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Protocol


class Stoppable(Protocol):
    """Anything with a ``request_stop`` (the Trainer)."""

    def request_stop(self) -> None: ...


@dataclass
class Caught:
    """The name of the first stop signal received, if any."""

    name: str | None = None


@contextmanager
def stop_on_signals(target: Stoppable) -> Iterator[Caught]:
    """While inside, SIGINT/SIGTERM ask ``target`` to stop after its current step.

    A second signal raises KeyboardInterrupt at once. The previous handlers come back on exit.
    Outside the main thread (where handlers cannot be set) nothing is installed.
    """
    caught = Caught()

    def handle(signum: int, frame: FrameType | None) -> None:
        if caught.name is not None:
            raise KeyboardInterrupt
        caught.name = signal.Signals(signum).name
        target.request_stop()

    wanted = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = {s: signal.signal(s, handle) for s in wanted}
    except ValueError:  # not the main thread
        yield caught
        return
    try:
        yield caught
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

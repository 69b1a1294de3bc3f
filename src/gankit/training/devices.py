"""Which device a training process runs on: ``train.device`` resolved against the machine.

Nothing here touches CUDA at import; CUDA is queried only when a device is resolved.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .distributed import World


def cuda_count() -> int:
    """How many CUDA devices this process can use (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve(name: str, world: World | None = None) -> torch.device:
    """The device of ``train.device`` (auto, cpu, cuda or cuda:N) for this process.

    ``auto`` is CUDA when there is a device for this process, else the CPU. ``cuda`` (and
    ``auto``) under torchrun is ``cuda:LOCAL_RANK``, one GPU per process; ``cuda:N`` names one.
    A CUDA request the machine cannot meet raises ConfigError.
    """
    world = world or World()
    if name == "cpu":
        return torch.device("cpu")
    count = cuda_count()
    if name == "auto":
        return torch.device("cuda", world.local_rank) if world.local_rank < count \
            else torch.device("cpu")
    if count == 0:
        raise ConfigError(f"train.device={name} but no CUDA device is available")
    index = int(name.partition(":")[2]) if ":" in name else world.local_rank
    if index >= count:
        raise ConfigError(f"train.device={name} needs CUDA device {index}, but this machine has "
                          f"{count} (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)

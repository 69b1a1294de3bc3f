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

    ``auto`` is CUDA when every process of the job on this machine has a GPU of its own, else
    the CPU (for all of them alike: one job never mixes devices). ``cuda`` (and ``auto``) under
    torchrun is ``cuda:LOCAL_RANK``, one GPU per process; ``cuda:N`` names one.
    A CUDA request the machine cannot meet raises ConfigError.
    """
    world = world or World()
    if name == "cpu":
        return torch.device("cpu")
    count = cuda_count()
    if name == "auto":
        local = max(world.local_rank + 1, world.local_size)
        return torch.device("cuda", world.local_rank) if local <= count else torch.device("cpu")
    if count == 0:
        raise ConfigError(f"train.device={name} but no CUDA device is available")
    index = int(name.partition(":")[2]) if ":" in name else world.local_rank
    if index >= count:
        raise ConfigError(f"train.device={name} needs CUDA device {index}, but this machine has "
                          f"{count} (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def upload(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` (drawn on the CPU) on ``device``, without making the host wait for the GPU.

    A copy from ordinary (pageable) memory to a GPU first waits for all queued GPU work; staged
    through pinned memory it is queued like a kernel, so the host can run steps ahead.
    """
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)

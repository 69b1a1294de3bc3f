"""torchrun glue: the process group, per-rank seeds, gradient averaging, rank-0 broadcasts.

gankit does not wrap the players in ``DistributedDataParallel``. The discriminator is called
several times per step (real and fake batches, the gradient penalty and R1 through
``autograd.grad``, the generator's step with D frozen), which DDP's bucketed hooks handle only with
``find_unused_parameters``/static-graph workarounds and not at all for double backward. Instead,
after each player's backward pass its gradients are averaged with one ``all_reduce`` of one flat
buffer (``average_grads``): exactly one all-reduce per player per update, whatever the recipe
does, and nothing at all when the world has one process.

Every rank starts from rank 0's weights and takes the same optimizer steps, so the weights stay
identical; spectral norm's power-iteration vectors stay identical too (they depend only on the
weights). Batch norm uses each rank's own batch statistics (not synchronised); its running
averages are rank 0's in checkpoints.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError

TIMEOUT = datetime.timedelta(minutes=10)  # a silent peer fails the job rather than hanging it


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1  # processes of this job on this machine

    @property
    def main(self) -> bool:
        """Whether this process writes the run directory and shows progress."""
        return self.rank == 0


def launched_world() -> World:
    """The world torchrun describes in this process's environment (one process without it)."""
    get = lambda key, default: int(os.environ.get(key, default))  # noqa: E731
    return World(get("RANK", 0), get("WORLD_SIZE", 1), get("LOCAL_RANK", 0),
                 get("LOCAL_WORLD_SIZE", 1))


def current() -> World:
    """The world of the initialised process group, or a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    env = launched_world()
    return World(dist.get_rank(), dist.get_world_size(), env.local_rank, env.local_size)


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process in the job."""
    return launched_world().size > 1


def recorded(fn: Callable[..., int]) -> Callable[..., int]:
    """``fn`` reporting an uncaught exception to torchrun (the failing rank's error in its
    summary)."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(fn)


def backend_for(device: str) -> str:
    """NCCL for CUDA tensors (gloo for any CPU ones) when training on CUDA, else gloo."""
    return "cpu:gloo,cuda:nccl" if device.startswith("cuda") else "gloo"


@contextmanager
def session(device: str = "cpu") -> Iterator[World]:
    """Join the torchrun job (if launched by one) for the duration of the block.

    ``device`` is the requested ``train.device``; on CUDA (``auto`` where this machine has a GPU
    for each of the job's processes on it) each process takes its GPU as its current device
    before joining. A CUDA request the machine cannot meet raises ConfigError in that rank.
    """
    if not launched() or dist.is_initialized():
        yield current()
        return
    from .devices import resolve  # devices imports this module

    where = resolve(device, launched_world())  # auto: CUDA only if every local rank has one
    if where.type == "cuda":
        torch.cuda.set_device(where)
    dist.init_process_group(backend_for(str(where)), timeout=TIMEOUT)
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def rank_seeds(seed: int, rank: int, step: int = 0) -> list[int]:
    """Seeds of rank ``rank``'s data, noise and augmentation generators from step ``step``.

    Rank 0 uses the single-process seeds (``Trainer``); the other ranks use these, different per
    rank and per (re)start step, so no two ranks ever draw the same batch.
    """
    words = np.random.SeedSequence(seed, spawn_key=(rank, step)).generate_state(3, np.uint64)
    return [int(w) >> 1 for w in words]


def average_grads(params: Iterable[nn.Parameter], world: World, flag: bool = False) -> bool:
    """Average the gradients of ``params`` over all ranks in one all-reduce of a flat buffer.

    ``flag`` rides along in the same buffer; returns whether any rank raised it (used to agree
    on a requested stop without a collective of its own).
    """
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads]
                     + [torch.tensor([float(flag)], dtype=grads[0].dtype if grads else None,
                                     device=grads[0].device if grads else None)])
    dist.all_reduce(flat)
    raised = bool(flat[-1] > 0)
    flat = flat[:-1].div_(world.size)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n
    return raised


def mean_(t: torch.Tensor, world: World) -> torch.Tensor:
    """Average ``t`` over all ranks, in place."""
    dist.all_reduce(t)
    return t.div_(world.size)


def broadcast_modules(modules: Iterable[nn.Module | None]) -> None:
    """Give every rank rank 0's parameters and buffers."""
    for m in modules:
        if m is None:
            continue
        for t in [*m.parameters(), *m.buffers()]:
            dist.broadcast(t.data, src=0)


def broadcast_tensor(t: torch.Tensor, world: World, device: torch.device) -> torch.Tensor:
    """Rank 0's ``t`` (of the same shape and dtype on every rank), sent through ``device``
    (NCCL carries only CUDA tensors); returned where ``t`` was."""
    if world.size == 1:
        return t
    buf = t.to(device, copy=True).contiguous()
    dist.broadcast(buf, src=0)
    return buf.to(t.device)


def broadcast_object(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every rank (sent by torch.distributed, between our own processes)."""
    if world.size == 1:
        return obj
    box = [obj if world.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(flag: bool, world: World) -> bool:
    """Rank 0's ``flag`` on every rank."""
    return bool(broadcast_object(flag, world))


def split(t: Any, world: World, pack: int = 1) -> tuple[int, int, slice]:
    """This rank's batch, the batch it draws, and the part of the draw it keeps.

    ``train.batch_size`` is the global batch, split evenly across ranks. Each rank normally draws
    its own share; with ``train.shared_draws`` every rank draws the whole global batch from the
    same generators and keeps its slice, so the job sees exactly one process's batches.
    """
    if t.batch_size % world.size:
        raise ConfigError(f"train.batch_size={t.batch_size} (the global batch) must be divisible "
                          f"by the number of processes, {world.size}")
    batch = t.batch_size // world.size
    if batch % pack:
        raise ConfigError(f"reg.pack={pack} must divide the per-process batch {batch} "
                          f"(train.batch_size {t.batch_size} over {world.size} processes)")
    if not t.shared_draws:
        return batch, batch, slice(None)
    return batch, t.batch_size, slice(world.rank * batch, (world.rank + 1) * batch)


def sync_rollback(trainer: Any, message: str | None) -> str | None:
    """Make a guard rollback collective: rank 0's decision, and its restored state, everywhere.

    Every rank sees the same averaged statistics and weights, so they decide alike; rank 0's
    decision is broadcast anyway so that no rank can go on alone.
    """
    world = trainer.world
    if not agree(message is not None, world):
        return None
    state = broadcast_object(trainer.state() | {"step": trainer.step} if world.main else None,
                             world)
    if not world.main:
        trainer.load_state(state)
    return message or "rolled back by rank 0"

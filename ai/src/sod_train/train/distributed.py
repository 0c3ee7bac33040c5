"""Multi-process training with PyTorch's own engine (torchrun + DistributedDataParallel).

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; :func:`session` turns them into an
initialised process group (NCCL on CUDA, gloo on the CPU) and tears it down again.
Without those variables everything here is a no-op for a single process, so the
trainer has one code path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from sod_train.errors import UserInputError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def current() -> DistInfo:
    """The running job's layout (a single process when no group is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def session(device: str) -> Iterator[DistInfo]:
    """Initialise the process group when launched by torchrun; always clean up.

    ``SOD_TRAIN_DIST_TIMEOUT`` (seconds, default 600) bounds how long a rank waits
    for the others, so a dead rank cannot hang the job forever.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        yield current()
        return
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    raw = os.environ.get("SOD_TRAIN_DIST_TIMEOUT", "600")
    if not raw.isdigit():
        raise UserInputError(f"SOD_TRAIN_DIST_TIMEOUT={raw!r}: expected whole seconds")
    timeout = timedelta(seconds=int(raw))
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timeout)
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (no-op for one process)."""
    if current().enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def average_buffers(model: torch.nn.Module) -> None:
    """Make BatchNorm running statistics the mean over ranks (no-op for one process).

    Ranks keep their own BN statistics while training (per-rank BN on the CPU); this
    makes validation and the saved weights use one set, identical on every rank.
    """
    info = current()
    if not info.enabled:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer.div_(info.world)


def barrier() -> None:
    if current().enabled:
        dist.barrier()

"""torch.distributed for the trainer: find a torchrun launch, start and stop the process group, agree across ranks.

Why a module of its own: the training loop stays one loop. A single process is a `Group` of size 1 whose
collectives are no-ops, so `training._fit` calls the same few functions with or without torchrun.
Backends: gloo for CPU ranks, nccl for CUDA ranks, one device per rank (cuda:LOCAL_RANK).
"""

from __future__ import annotations

import atexit
import gc
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..flow.model import resolve_device

__all__ = ["SINGLE", "Group", "agree", "all_sum", "current", "device_for", "in_sync", "launched", "session",
           "start_group", "stop_group", "wrap"]

#: The environment torchrun (torch.distributed.run) sets for every rank it starts.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Group:
    """This process's place in a training run: its rank among `world_size` ranks and its collective backend.

    `owned`: whether flowscope started the process group; it then lives until the process exits (`stop_group`).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""
    owned: bool = False

    @property
    def active(self) -> bool:
        """Whether there are other ranks to talk to."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files, shows progress and runs callbacks."""
        return self.rank == 0


#: One process, no collectives.
SINGLE = Group()


def launched() -> bool:
    """Whether this process is one of several ranks started by torchrun (its environment says so)."""
    return all(name in os.environ for name in TORCHRUN_ENV) and int(os.environ["WORLD_SIZE"]) > 1


def current() -> Group:
    """The group as it stands, without starting anything: the running process group, else torchrun's
    environment (rank and world size before the group starts), else a single process."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return Group(dist.get_rank(), dist.get_world_size(), local, str(dist.get_backend()))
    if launched():
        return Group(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    return SINGLE


def device_for(requested: str | None, group: Group) -> torch.device:
    """The device of this rank: `requested` (or the best available), with a bare "cuda" meaning
    cuda:LOCAL_RANK when there are several ranks. MPS has no collective backend, so ranks fall back to CPU."""
    if not group.active:
        return resolve_device(requested)
    device = resolve_device(requested)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", group.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        return device
    if device.type == "mps" and requested in (None, "", "auto"):
        return torch.device("cpu")
    if device.type != "cpu":
        raise ValueError(f"distributed training runs on cpu (gloo) or cuda (nccl) ranks, not {device.type!r}")
    return device


def start_group(requested_device: str | None) -> tuple[Group, torch.device]:
    """Join the torchrun process group (nccl for CUDA ranks, gloo for CPU ones) unless one is already running;
    outside torchrun, a single process. Returns the group and this rank's device."""
    if dist.is_available() and dist.is_initialized():
        group = current()
        device = device_for(requested_device, group)
        if group.active and device.type == "cuda" and group.backend != "nccl":
            raise ValueError(f"CUDA ranks need the nccl backend; the running process group uses {group.backend!r}")
        return group, device
    if not launched():
        return SINGLE, resolve_device(requested_device)
    pending = current()
    device = device_for(requested_device, pending)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        dist.init_process_group(backend, device_id=device)
    else:
        dist.init_process_group(backend)
    atexit.register(_destroy)
    return Group(pending.rank, pending.world_size, pending.local_rank, backend, owned=True), device


def stop_group(group: Group) -> None:
    """Leave the process group now if flowscope started it; a user's own group stays up.

    `train` does not call this: a group started by flowscope stays up for the next `train` call in the same
    script (tearing it down and rejoining torchrun's store between calls can hang) and is left at exit.
    """
    if group.owned:
        _destroy()


def _destroy() -> None:
    """Destroy the default process group if there is one (at exit: the orderly end nccl asks for). The ranks
    first meet at a barrier, so that none tears its connections down while rank 0 still evaluates and writes
    (a gloo rank whose peers vanish mid-run can abort at exit); garbage is collected, so that no
    DistributedDataParallel reducer outlives the group into interpreter shutdown."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        if dist.get_world_size() > 1:
            try:
                dist.barrier()
            except RuntimeError:  # a peer already gone (it failed): nothing left to wait for
                pass
        dist.destroy_process_group()


@contextmanager
def session(requested_device: str | None) -> Iterator[tuple[Group, torch.device]]:
    """`start_group` ... `stop_group` for a script's own use, also when the body raises."""
    group, device = start_group(requested_device)
    try:
        yield group, device
    finally:
        stop_group(group)


def wrap(net: nn.Module, group: Group, device: torch.device) -> nn.Module:
    """The module that training calls: DistributedDataParallel over `net` with several ranks (it broadcasts
    rank 0's weights now and averages the gradients in every backward), `net` itself otherwise."""
    if not group.active:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids, output_device=None if ids is None else ids[0])


def all_sum(tensor: Tensor, group: Group) -> Tensor:
    """Sum `tensor` over the ranks, in place (nothing with one rank); returns it."""
    if group.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def agree(flag: bool, group: Group, device: torch.device) -> bool:
    """Whether any rank says yes: rank 0's early stop becomes every rank's stop at the same step."""
    if not group.active:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def in_sync(tensors: Sequence[Tensor], group: Group) -> bool:
    """Whether every rank holds the same values (bit for bit) in `tensors`: the max and the min over ranks agree."""
    if not group.active:
        return True
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
    high, low = flat.clone(), flat.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return bool(torch.equal(high, low))

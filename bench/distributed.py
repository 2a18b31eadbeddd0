"""Data parallelism over several processes (torch.distributed), exact against one process.

The world (rank, local rank, size, master) comes from the launcher's environment, never from
settings a user types: torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT; a SLURM step of N tasks (srun, submitit) sets SLURM_PROCID, SLURM_LOCALID,
SLURM_NTASKS and SLURM_NODELIST, and the master is the first host of the node list;
submitit's local executor with several tasks sets SUBMITIT_LOCAL_GLOBALID/NTASKS.  A run
with neither (or with one task) is a single process: nothing distributed is initialised and
every helper here is a no-op that costs nothing (no collective, no host-device sync).

How a step stays exact (bench/step.py, bench/data.py, bench/engine.py):

* every rank draws the same global multi-task batch and keeps its share of each task's
  sub-batch (`shard_of`: positions rank, rank + N, ...), so shares may be uneven;
* the per-task sample counts are summed across ranks, each rank divides its per-task sum of
  cross-entropies by the GLOBAL count, and the gradients of the trainable parameters are
  summed across ranks after backward (`sum_gradients`): the sum over ranks of each rank's
  gradient is then the one-process gradient of "the sum over tasks of each task's mean", to
  float rounding (the summation order differs), whatever the shares;
* evaluation batches are dealt out whole (`deal`), so every image sits in the same batch as
  in one process, and per-task correct/total counts are summed.

Rank 0 alone writes (`is_writer`): the record, checkpoints, logs, plots and the run lock.
"""
from __future__ import annotations

import datetime
import os
from typing import Sequence, TypeVar

import torch
import torch.distributed as dist

from bench.errors import ConfigError, UserError
from bench.world import World, current, first_host, set_current, world_from_env  # noqa: F401  (this module's API too)

T = TypeVar("T")
#: elements per all-reduce of the gradients (one buffer per bucket: bounded extra memory)
BUCKET_ELEMENTS = 2**24




class PeerLostError(UserError):
    """A collective failed or timed out: another rank of the run died or hangs."""


def _collective(call, *args, **kwargs):
    """A collective whose failure (a peer gone, `runtime.collective_timeout_s` passed) is one
    paragraph naming this rank, not a backend traceback."""
    try:
        return call(*args, **kwargs)
    except RuntimeError as error:  # dist.DistError and the backends' errors are RuntimeErrors
        world = current()
        detail = " ".join(str(error).split())[:160]
        raise PeerLostError(
            f"Rank {world.rank} of {world.size} stopped: a collective operation with the other ranks failed "
            f"({detail}). Another rank of this run died or hangs (the launcher names it: torchrun's "
            f"'Root Cause', srun's 'task N'), or runtime.collective_timeout_s passed. Relaunch the same "
            f"command: every rank resumes from the last checkpoint.") from None


def setup(device_name: str, timeout_s: float) -> World:
    """Initialise the process group once (NCCL on CUDA, gloo on CPU) when the environment
    holds several processes; a single process initialises nothing.  `timeout_s` bounds every
    collective, so a rank that died takes the others down instead of hanging them."""
    world = world_from_env()
    if not world.distributed or dist.is_initialized():
        return current()
    cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(world.local_rank)
    os.environ.setdefault("MASTER_ADDR", world.master_addr)
    os.environ.setdefault("MASTER_PORT", str(world.master_port))
    initialised = set_current(World(world.rank, world.local_rank, world.size, world.master_addr,
                                    world.master_port, world.launcher, backend))
    _collective(dist.init_process_group, backend, init_method="env://", rank=world.rank, world_size=world.size,
                timeout=datetime.timedelta(seconds=timeout_s))
    return initialised


def local_device(device: torch.device) -> torch.device:
    """This rank's GPU (cuda:LOCAL_RANK) when the run is on CUDA over several processes."""
    world = current()
    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def check_splittable(batch_size: int, world: World | None = None) -> None:
    """A task's sub-batch must give every rank at least one sample (before any data loads)."""
    world = world or world_from_env()
    if world.distributed and batch_size < world.size:
        raise ConfigError(
            f"train.batch_size={batch_size} cannot be split over {world.size} processes: each step's "
            f"sub-batch of every task ({batch_size} image(s)) is shared out among the ranks, and each rank "
            f"needs at least one. Set train.batch_size >= {world.size} (it is the global batch per task, the "
            f"same number as in a one-process run), or launch at most {batch_size} process(es).")


# ---- sharding --------------------------------------------------------------------------------
def shard_of(items: Sequence[T], world: World | None = None) -> list[T]:
    """This rank's share of one task's sub-batch: positions rank, rank + N, ..."""
    world = world or current()
    return list(items) if not world.distributed else list(items[world.rank::world.size])


def deal(batches: Sequence[T], world: World | None = None) -> list[T]:
    """Whole batches dealt out in turn (evaluation: each image stays in its one-process batch)."""
    world = world or current()
    return list(batches) if not world.distributed else list(batches[world.rank::world.size])


# ---- reductions ------------------------------------------------------------------------------
def sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over the ranks in place (no-op for one process); returns it."""
    if current().distributed:
        _collective(dist.all_reduce, tensor, op=dist.ReduceOp.SUM)
    return tensor


def sum_numbers(values: Sequence[float], device: torch.device | None = None) -> list[float]:
    """Python numbers summed over the ranks (one collective; free for one process)."""
    world = current()
    if not world.distributed:
        return list(values)
    device = device or _reduce_device(world)
    return sum_(torch.tensor(list(values), dtype=torch.float64, device=device)).tolist()


def max_numbers(values: Sequence[float]) -> list[float]:
    """Python numbers' maximum over the ranks (e.g. the peak memory of any rank)."""
    world = current()
    if not world.distributed:
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=_reduce_device(world))
    _collective(dist.all_reduce, tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


def _reduce_device(world: World) -> torch.device:
    """Where Python numbers are reduced: NCCL reduces GPU tensors only."""
    return torch.device("cuda", torch.cuda.current_device()) if world.backend == "nccl" else torch.device("cpu")


def sum_gradients(params: Sequence[torch.Tensor], extra: torch.Tensor | None = None) -> None:
    """Sum the gradients of `params` (and the flat `extra`, in place) over the ranks.

    A parameter whose gradient is None on every rank stays None (the optimiser then skips it,
    as in one process); None on some ranks only counts as zeros there."""
    if not current().distributed:
        return
    device = next((p.device for p in params), extra.device if extra is not None else torch.device("cpu"))
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    head = [present] + ([extra] if extra is not None else [])
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    parts = head + grads
    bucket: list[torch.Tensor] = []
    size = 0
    for part in parts:
        bucket.append(part)
        size += part.numel()
        if size >= BUCKET_ELEMENTS:
            _reduce_flat(bucket)
            bucket, size = [], 0
    if bucket:
        _reduce_flat(bucket)
    for p, grad, seen in zip(params, grads, present.tolist()):
        p.grad = grad if seen > 0 else None


def _reduce_flat(tensors: list[torch.Tensor]) -> None:
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        _collective(dist.all_reduce, flat, op=dist.ReduceOp.SUM)
        offset = 0
        for t in group:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def barrier() -> None:
    if current().distributed:
        _collective(dist.barrier)


def shutdown() -> None:
    """Leave the process group (end of a distributed run)."""
    if dist.is_initialized():
        dist.destroy_process_group()
    set_current(World())

"""Who this process is among a run's processes, read from the launcher's environment.

Torch-free, so that what only reads the environment (the fault hooks, bench/faults.py) imports
no torch; bench/distributed.py initialises the process group and records the world here.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

from bench.errors import ConfigError

DEFAULT_PORT_BASE = 29500


@dataclass(frozen=True)
class World:
    """Who this process is among the run's processes."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_PORT_BASE
    launcher: str = "none"        # none | torchrun | slurm | submitit_local
    backend: str | None = None    # set once initialised: nccl | gloo

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_writer(self) -> bool:
        return self.rank == 0


_current = World()


def first_host(nodelist: str) -> str:
    """The first host of a SLURM host list: "gpu[03-05,09],cpu1" -> "gpu03"."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise ConfigError(f"SLURM_NODELIST={nodelist!r} is not a SLURM host list: cannot find the master host. "
                          "Set MASTER_ADDR to the first node's address.")
    prefix, ranges = match.groups()
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def world_from_env(env: Mapping[str, str] | None = None) -> World:
    """The world of this process from torchrun's or SLURM's variables (single process otherwise)."""
    env = os.environ if env is None else env
    try:
        if "RANK" in env and "WORLD_SIZE" in env:  # torchrun (also a user's own launcher)
            return World(int(env["RANK"]), int(env.get("LOCAL_RANK", 0)), int(env["WORLD_SIZE"]),
                         env.get("MASTER_ADDR", "127.0.0.1"), int(env.get("MASTER_PORT", DEFAULT_PORT_BASE)),
                         "torchrun")
        local = env.get("SUBMITIT_LOCAL_NTASKS")  # submitit's local executor, tasks_per_node=N
        if local is not None and int(local) > 1:
            job = int(env.get("SUBMITIT_LOCAL_JOB_ID", "0"))
            return World(int(env["SUBMITIT_LOCAL_GLOBALID"]), int(env.get("SUBMITIT_LOCAL_LOCALID", 0)), int(local),
                         env.get("MASTER_ADDR", "127.0.0.1"),
                         int(env.get("MASTER_PORT", DEFAULT_PORT_BASE + 1 + job % 20000)), "submitit_local")
        # srun / submitit: a step of N tasks; the batch script itself (no step) is one process
        tasks = env.get("SLURM_STEP_NUM_TASKS", env.get("SLURM_NTASKS") if "SLURM_STEP_ID" in env else None)
        if tasks is not None and int(tasks) > 1 and "SLURM_PROCID" in env:
            job = int(env.get("SLURM_JOB_ID", "0"))
            return World(int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", 0)), int(tasks),
                         env.get("MASTER_ADDR") or first_host(env.get("SLURM_STEP_NODELIST",
                                                                      env.get("SLURM_NODELIST", "127.0.0.1"))),
                         int(env.get("MASTER_PORT", DEFAULT_PORT_BASE + 1 + job % 20000)), "slurm")
    except ValueError as error:
        raise ConfigError(f"The launcher's environment cannot be read as a process world ({error}): "
                          "check RANK/WORLD_SIZE/LOCAL_RANK (torchrun) or SLURM_PROCID/SLURM_NTASKS.") from None
    return World()


def current() -> World:
    """The world `setup` initialised (a single process before or without it)."""
    return _current


def set_current(world: World) -> World:
    """Record the world `bench.distributed.setup` initialised."""
    global _current
    _current = world
    return world

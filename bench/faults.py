"""Deterministic fault injection for the reliability tests (docs/reliability.md).

`CPB_FAULT` holds comma-separated faults; each fires once, at an exact point, so a test
never races the clock:

- `kill_at_step:K`   SIGKILL this process right after training step K (1-based, counted
                     over the whole run, resumes included), before any checkpoint of step K;
- `raise_at_step:K`  raise RuntimeError there instead (an ordinary crash);
- `sigint_at_step:K`, `sigterm_at_step:K`  send this process SIGINT (Ctrl-C) or SIGTERM
                     (`kill`) there; its handler runs before the next step;
- `hold_at_step:K`   write `<CPB_FAULT_STATE>/held` and wait there until a signal ends or
                     interrupts the process (a scheduler's time-out or preemption);
- `hold_before_run:K` the same in a local sweep's worker, before it starts the K-th run of its
                     list (between two runs: the previous one's record is written);
- `enospc_at_write:K` the K-th atomic file write of this process leaves a partial
                     temporary file and raises OSError(ENOSPC), as a full disk does;
- `eio_at_write:K`   the same with OSError(EIO) (any other write failure);
- `kill_at_extract:K` SIGKILL this process right after `bench.prepare` has written the K-th
                     file of an extraction, as an interrupted extraction;
- `raise_at_extract:K` raise RuntimeError there instead.

Any fault may name one process of a distributed run: `kill_at_step:K@R` fires on rank R
only (bench/distributed.py: RANK under torchrun, SLURM_PROCID under SLURM); without `@R` it fires on every rank.

With `CPB_FAULT_STATE=<folder>` a fault that has fired is remembered there
(`fired-<fault>`), so a resumed or requeued process runs on untouched; without it, a
fault fires at most once per process.  Unset (the normal case) every hook is a no-op.
"""
from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

from bench import world
from bench.observers import TrainObserver

_fired_here: set[str] = set()
_writes = 0


def _faults() -> dict[str, int]:
    spec = os.environ.get("CPB_FAULT", "")
    faults = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kind, _, k = item.partition(":")
        k, _, rank = k.partition("@")
        if not rank or int(rank) == world.current().rank:
            faults[kind] = int(k)
    return faults


def _fire_once(name: str) -> bool:
    """True the first time `name` fires (per CPB_FAULT_STATE folder, else per process)."""
    state = os.environ.get("CPB_FAULT_STATE")
    if state:
        marker = Path(state) / f"fired-{name.replace(':', '-')}"
        if marker.exists():
            return False
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return True
    if name in _fired_here:
        return False
    _fired_here.add(name)
    return True


def at_step(step: int) -> None:
    """Called by the training loop after each optimisation step (`step` counts from 1)."""
    faults = _faults()
    if faults.get("kill_at_step") == step and _fire_once(f"kill_at_step:{step}"):
        os.kill(os.getpid(), signal.SIGKILL)
    if faults.get("raise_at_step") == step and _fire_once(f"raise_at_step:{step}"):
        raise RuntimeError(f"injected fault: raise_at_step:{step} (CPB_FAULT)")
    for name, number in (("sigint", signal.SIGINT), ("sigterm", signal.SIGTERM)):
        if faults.get(f"{name}_at_step") == step and _fire_once(f"{name}_at_step:{step}"):
            os.kill(os.getpid(), number)
    if faults.get("hold_at_step") == step and _fire_once(f"hold_at_step:{step}"):
        _hold()


def before_run(index: int) -> None:
    """Called by a local sweep's worker (bench/sweep.py `drain`) before its `index`-th run (1-based)."""
    if _faults().get("hold_before_run") == index and _fire_once(f"hold_before_run:{index}"):
        _hold()


def _hold() -> None:
    held = Path(os.environ.get("CPB_FAULT_STATE", ".")) / "held"
    held.write_text(str(os.getpid()))
    while True:  # until a signal handler exits the process (time-out, preemption, kill)
        time.sleep(0.1)


def at_extract(count: int) -> None:
    """Called by the archive extraction (datasets/archives.py) after each file it writes."""
    faults = _faults()
    if faults.get("kill_at_extract") == count and _fire_once(f"kill_at_extract:{count}"):
        os.kill(os.getpid(), signal.SIGKILL)
    if faults.get("raise_at_extract") == count and _fire_once(f"raise_at_extract:{count}"):
        raise RuntimeError(f"injected fault: raise_at_extract:{count} (CPB_FAULT)")


def before_write(tmp: Path) -> None:
    """Called by every atomic write before it writes `tmp` (its temporary file)."""
    global _writes
    faults = {k: v for k, v in _faults().items() if k.endswith("_at_write")}
    if not faults:
        return
    _writes += 1
    for kind, code in (("enospc_at_write", errno.ENOSPC), ("eio_at_write", errno.EIO)):
        if faults.get(kind) == _writes and _fire_once(f"{kind}:{_writes}"):
            Path(tmp).write_bytes(b"partial")  # a full disk leaves half a file behind
            raise OSError(code, os.strerror(code), str(tmp))


def reset() -> None:
    """Forget what fired and the write count (for tests that inject faults in-process)."""
    global _writes
    _writes = 0
    _fired_here.clear()


class StepFaults(TrainObserver):
    """The training loop's fault point: `at_step` after each optimiser step, as the loop's last
    observer (after the curves have the step, before any checkpoint of it).  bench/experiment.py
    gives every rank's Trainer one; a no-op while CPB_FAULT is unset."""

    def __init__(self, steps_before: int = 0):
        self.steps_before = steps_before  # steps of the run before this loop's (protocol=sequential's stages)

    def on_step(self, step: int, epoch: int, loss, lr: float) -> None:
        at_step(self.steps_before + step)

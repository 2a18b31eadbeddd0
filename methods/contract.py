"""The contract between a method and the engine: everything the training loop, the
evaluation, the runner and the benchmark know about a method (DomainBed's `Algorithm`).

A method is an `nn.Module` built as `cls(clip, tasks, cfg, seed)`:

* `clip`: the frozen `PromptableCLIP` (bench/clip.py), `tasks`: objects with `.name` and
  `.classnames`, `cfg`: its checked, typed `method` block (a `MethodConfig` subclass,
  bench/schema.py), `seed`: the run's seed;
* `forward(images, task_ids, sample_ids=None) -> logits` (B, C_max): column c of row b
  scores class c of task `task_ids[b]`; columns past that task's class count are -inf;
  `sample_ids` = (split, CPU indices) marks images whose pixels are fixed (cacheable);
* its trainable parameters are exactly those with `requires_grad`; checkpoints hold only
  those (`trainable_state` / `load_trainable_state`);
* three optional hooks, no-ops here: `warmup` (a training run the method needs before its
  own parameters exist, e.g. MmAP's task grouping: a `Warmup` that the engine trains through
  its one Trainer, then hands back to `Warmup.finish`, which may create parameters),
  `extra_loss` (a term added to the multi-task loss every step) and `record_extras` (fields
  for the run's record);
* `task_readers()`: which tasks read each trainable parameter where not every task does (a
  task's own set, a group's set), so that protocol=sequential (bench/sequential.py) leaves what
  a stage's domain never reads exactly as it was: its optimiser's weight decay would otherwise
  shrink the other domains' sets.

`methods/base.py`'s `Method` implements the contract for CLIP methods (cosine logits over
each task's classes, prompt hooks, feature caches); a method may also implement it directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from bench.errors import UserError
from bench.observers import TrainObserver
from bench.schema import MethodConfig, TrainConfig


#: the tasks that read a parameter (`MethodContract.task_readers`): all of it, or row by row
Readers = "frozenset[int] | list[frozenset[int]]"


class MethodError(UserError):
    """A method that cannot be built as configured (one paragraph: what, why, how to fix)."""


@dataclass(frozen=True)
class Warmup:
    """A training run a method needs before training (`MethodContract.warmup`).

    The engine (bench/engine.py `warm_up`) trains `model` with `train` for at most `max_steps`
    steps (None: its epochs) through the run's Trainer: the same step, non-finite guard,
    checkpoints and observers, with `observer` first (what the warm-up gathers; it keeps its
    state in the checkpoints), then calls `finish(steps_run)`."""

    model: nn.Module
    train: TrainConfig
    max_steps: Optional[int]
    observer: TrainObserver
    finish: Callable[[int], None]


class MethodContract(nn.Module):
    """What the engine uses of a method; subclasses implement `forward`."""

    #: sharing modes the method runs in (the first is not a default: the config's is)
    modes: tuple[str, ...] = ("mt",)
    #: set by `register_method`: the registry name and the `method` block's schema
    method_name: str
    config_class: type

    def __init__(self, clip, tasks: Sequence, cfg: MethodConfig, seed: int = 0):
        super().__init__()
        self.clip = clip
        self.tasks = list(tasks)
        self.cfg = cfg
        self.seed = seed
        self.mode = cfg.mode

    def forward(self, images: torch.Tensor, task_ids: torch.Tensor,
                sample_ids: tuple[str, torch.Tensor] | None = None) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def exact_over_processes(cls, cfg: MethodConfig) -> bool:
        """Whether a run over N processes (bench/distributed.py) gives the one-process numbers to
        float rounding.  True when a step's randomness is none or per sample (augmentation is
        seeded per image); False where it is drawn from the global generator per batch
        (dropout): each rank then draws its own masks, statistically equivalent but not equal,
        and the run id names the world size."""
        return True

    # ---- hooks (no-ops unless a method needs them) ----------------------------------------
    def warmup(self, train_cfg: TrainConfig) -> Warmup | None:
        """The training run this method needs before its own (the run's `train` config given);
        None: it needs none."""
        return None

    def extra_loss(self) -> torch.Tensor | None:
        """A term added to the step's multi-task loss (None: nothing)."""
        return None

    def record_extras(self) -> dict[str, Any]:
        """Extra fields for the run's record (e.g. MmAP's task groups)."""
        return {}

    def on_state_loaded(self) -> None:
        """Called after `load_trainable_state` (e.g. to drop cached features)."""

    def task_readers(self) -> dict[str, "Readers"]:
        """For each trainable parameter that not every task's forward reads, the task indices that
        read it: a frozenset (the whole tensor) or a list of frozensets, one per row of its first
        dimension (a stack of parameter sets).  A parameter left out is read by every task (the
        default: everything shared)."""
        return {}

    # ---- parameters and checkpoints ---------------------------------------------------------
    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        names = {n for n, _ in self.trainable_parameters()}
        return {n: t.detach().clone() for n, t in self.state_dict().items() if n in names}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        missing = {n for n, _ in self.trainable_parameters()} - set(state)
        if missing:
            raise MethodError(f"Checkpoint lacks trainable parameters {sorted(missing)[:5]}; it "
                              "was written by a different method or configuration.")
        self.load_state_dict(state, strict=False)
        self.on_state_loaded()


def count_parameters(method: MethodContract) -> dict:
    """Trainable parameters of `method` (all its sets), the size of its CLIP, and the share."""
    total = sum(p.numel() for p in method.clip.model.parameters())
    trainable = sum(p.numel() for _, p in method.trainable_parameters())
    return {"trainable": trainable, "total": total, "trainable_percent": 100.0 * trainable / total}

"""The training loop's listener interface (after Dassl's trainer hooks).

The Trainer (bench/engine.py) calls, on each observer in turn, `on_start` once it knows where
it resumes, `on_task_losses` inside every step before its backward pass, `on_step` after every
optimiser step, `on_epoch_end` with the epoch's history row (loss, lr, per-task validation
accuracy) and `on_end`; every hook is a no-op here.  An observer that gathers something over
the steps (MmAP's task affinities: methods/grouping.py) names itself in `checkpoint_name`: its
`state_dict()` is then saved in the loop's checkpoints and given back to `load_state_dict` on
resume, so a resumed run gathers exactly what an uninterrupted one does.  The observers: the
learning curves (`curves.CurveLogger`), the grouping warm-up's affinities and the reliability
tests' step faults (`faults.StepFaults`), which is why this class has a module of its own that
imports nothing.
"""
from __future__ import annotations


class TrainObserver:
    """Hooks the training loop calls; subclasses override what they need."""

    #: the key of this observer's state in a checkpoint; None: it keeps none
    checkpoint_name: str | None = None

    def on_start(self, steps_done: int) -> None:
        """Training starts (or resumes) after `steps_done` optimiser steps."""

    def on_task_losses(self, per_task, present, images, labels, task_ids) -> None:
        """Inside a step, before its backward pass: each task's mean loss (`per_task`, with the
        step's graph), which tasks the batch holds (`present`) and the batch on the device."""

    def on_step(self, step: int, epoch: int, loss, lr: float) -> None:
        """Global optimiser step `step` (from 1) of epoch `epoch` (from 1) took a step with
        `loss` (a device tensor, or None when the step had no image) at learning rate `lr`."""

    def on_epoch_end(self, step: int, row: dict) -> None:
        """Epoch `row["epoch"]` ended after global step `step`; `row` is its history row."""

    def on_end(self) -> None:
        """Training ended (normally or not): release files."""

    def state_dict(self) -> dict:
        """What a checkpoint keeps of this observer (only called when `checkpoint_name` is set)."""
        raise NotImplementedError(f"{type(self).__name__} sets checkpoint_name but keeps no state")

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned (on resume)."""
        raise NotImplementedError(f"{type(self).__name__} sets checkpoint_name but restores no state")

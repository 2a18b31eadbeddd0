"""The training loop's listener interface (after Dassl's trainer hooks).

The Trainer (bench/engine.py) calls, on each observer in turn, `on_start` once it knows where
it resumes, `on_step` after every optimiser step, `on_epoch_end` with the epoch's history row
(loss, lr, per-task validation accuracy) and `on_end`; every hook is a no-op here.  The
observers: the learning curves (`curves.CurveLogger`) and the reliability tests' step faults
(`faults.StepFaults`), which is why this class has a module of its own that imports nothing.
"""
from __future__ import annotations


class TrainObserver:
    """Hooks the training loop calls; subclasses override what they need."""

    def on_start(self, steps_done: int) -> None:
        """Training starts (or resumes) after `steps_done` optimiser steps."""

    def on_step(self, step: int, epoch: int, loss, lr: float) -> None:
        """Global optimiser step `step` (from 1) of epoch `epoch` (from 1) took a step with
        `loss` (a device tensor, or None when the step had no image) at learning rate `lr`."""

    def on_epoch_end(self, step: int, row: dict) -> None:
        """Epoch `row["epoch"]` ended after global step `step`; `row` is its history row."""

    def on_end(self) -> None:
        """Training ended (normally or not): release files."""

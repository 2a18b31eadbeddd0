"""One optimisation step on a multi-task batch: the loss, the optimiser and the step itself.

Shared by the training loop (bench/engine.py), MmAP's grouping warm-up
(methods/grouping.py) and the speed benchmark, so all three take exactly the same step.

Loss: the sum over tasks of each task's mean cross-entropy over its own classes, so an
ST task's gradient is exactly what it would be if trained alone (`train.task_loss=mean`
divides by the tasks present).  Optimiser: SGD (momentum, CoOp's choice) or AdamW.

Over several processes (bench/distributed.py) each rank holds its share of every task's
sub-batch: the per-task counts are summed across ranks, each rank's per-task sum is divided
by the global count, and the gradients are summed after backward, so the update is the
one-process update to float rounding even when the shares are uneven.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F

from bench import distributed
from bench.data import MultiTaskBatch
from bench.device import autocast_for
from bench.schema import TrainConfig
from bench.speedups import SPEEDUPS


def per_task_losses(logits: torch.Tensor, labels: torch.Tensor, task_ids: torch.Tensor,
                    n_tasks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(each task's mean cross-entropy over its samples, whether the task is in the batch).

    Over several processes the batch is the union of the ranks' shares: the counts are the
    global ones, so each rank's value is its part of the task's mean (they sum to it)."""
    per_sample = F.cross_entropy(logits.float(), labels, reduction="none")
    totals = per_sample.new_zeros(n_tasks).index_add(0, task_ids, per_sample)
    counts = distributed.sum_(per_sample.new_zeros(n_tasks).index_add(0, task_ids, torch.ones_like(per_sample)))
    return totals / counts.clamp(min=1), counts > 0


def reduce_task_losses(per_task: torch.Tensor, present: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Sum (or mean) over the tasks present of their mean cross-entropies."""
    if reduction == "mean":
        return per_task.sum() / present.sum().clamp(min=1)
    return per_task.sum()


def multitask_loss(logits: torch.Tensor, labels: torch.Tensor, task_ids: torch.Tensor,
                   n_tasks: int, reduction: str = "sum") -> torch.Tensor:
    """Sum (or mean) over the tasks in the batch of each task's mean cross-entropy."""
    return reduce_task_losses(*per_task_losses(logits, labels, task_ids, n_tasks), reduction)


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """`train.optimizer` over `params` (values checked against bench/schema.py)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))


class SkipNonFiniteSteps(torch.amp.GradScaler):
    """A GradScaler held at scale 1 (bf16, fp32): no loss scaling (multiplying by 1 is exact),
    only its other half, skipping the optimiser step of a step whose gradients are not finite
    (a NaN/inf loss), as fp16 loss scaling does; `scaler.step` reads that flag once per step."""

    def __init__(self, device: str):
        super().__init__(device, init_scale=1.0, growth_interval=2**31 - 1)

    def update(self, new_scale=None) -> None:
        super().update(1.0)


def build_grad_scaler(device: torch.device, cfg: TrainConfig) -> torch.amp.GradScaler:
    """fp16 autocast: dynamic loss scaling; otherwise a scale-1 scaler that only skips the
    update of a non-finite step.  Either way a NaN/inf step leaves the parameters untouched."""
    if cfg.precision == "fp16":
        return torch.amp.GradScaler(device.type)
    return SkipNonFiniteSteps(device.type)


def fixed_images(batch: MultiTaskBatch, split: str) -> dict:
    """`sample_ids` for a method's forward when the batch carries its sample indices."""
    return {} if batch.indices is None else {"sample_ids": (split, batch.indices)}


def train_images_fixed(augment: bool) -> bool:
    """Train images are fixed (cacheable by a frozen image tower) only without augmentation;
    with it, reusing features is an approximation taken only when asked for."""
    return not augment or SPEEDUPS.cache_augmented_images


def _untimed(part: str):
    return contextlib.nullcontext()


Observer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]


def train_step(method, batch: MultiTaskBatch, optimizer, scaler, device: torch.device, cfg: TrainConfig,
               n_tasks: int, fixed_train: bool, timed=_untimed, observe: Observer | None = None
               ) -> torch.Tensor | None:
    """One optimisation step on a multi-task batch; the detached loss (None: nothing readable).

    `timed(part)` is a context manager around the host-to-device copy ("data") and the
    backward pass ("backward"), for the benchmark; it costs nothing by default.
    `observe(per_task_losses, present, images, labels, task_ids)` sees the step's graph
    before the backward pass (MmAP's grouping warm-up takes per-task gradients there)."""
    if not len(batch.labels):
        return _empty_share(method, optimizer, scaler, device, n_tasks) if distributed.current().distributed else None
    with timed("data"):
        images, labels, task_ids = (x.to(device, non_blocking=True)
                                    for x in (batch.images, batch.labels, batch.task_ids))
    with autocast_for(device, cfg.precision):
        logits = method(images, task_ids, **(fixed_images(batch, "train") if fixed_train else {}))
    per_task, present = per_task_losses(logits, labels, task_ids, n_tasks)
    if observe is not None:
        observe(per_task, present, images, labels, task_ids)
    loss = reduce_task_losses(per_task, present, cfg.task_loss)
    if (extra := method.extra_loss()) is not None:  # every rank adds it: its share is 1/N
        loss = loss + (extra / distributed.current().size if distributed.current().distributed else extra)
    optimizer.zero_grad(set_to_none=True)
    with timed("backward"):
        scaler.scale(loss).backward()
    return _step(optimizer, scaler, loss.detach())


def _step(optimizer, scaler, loss: torch.Tensor) -> torch.Tensor:
    """The optimiser step, after summing the gradients (and the reported loss) over the ranks."""
    if distributed.current().distributed:
        loss = loss.reshape(1).clone()
        distributed.sum_gradients([p for group in optimizer.param_groups for p in group["params"]], loss)
        loss = loss.reshape(())
    scaler.step(optimizer)
    scaler.update()
    return loss


def _empty_share(method, optimizer, scaler, device: torch.device, n_tasks: int) -> torch.Tensor:
    """A rank whose share of the step is empty (every image unreadable) still takes part in
    the step's reductions, contributing nothing (tests/bench/test_distributed.py).  Not
    covered: MmAP's grouping warm-up (`observe`) reduces more per step, so there such a step
    stops the run at the collective timeout with PeerLostError."""
    distributed.sum_(torch.zeros(n_tasks, device=device))
    optimizer.zero_grad(set_to_none=True)
    zero = torch.zeros((), device=device)
    scaler.scale(zero)  # the scaler steps only after it has scaled a loss (it then holds its scale)
    return _step(optimizer, scaler, zero)

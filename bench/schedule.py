"""Learning-rate schedules of the training loop, stepped once per epoch (`step(epoch)` sets the
rate of that epoch), chosen by `train.schedule`.

* `cosine_dassl` (the reference): Dassl's scheduler, under which CoOp, CoCoOp, CLIP-Adapter,
  VPT and MaPLe tuned their settings.  W = `warmup_epochs` epochs at the constant `warmup_lr`,
  then cosine annealing over the *whole* E = `epochs`, its count restarting after the warm-up:

      lr(e) = warmup_lr                                                   for e < W
      lr(e) = lr_min + (base - lr_min) (1 + cos(pi (e - W) / E)) / 2     for e >= W

  (Dassl: `CosineAnnealingLR(T_max=max_epoch)` wrapped in `ConstantWarmupScheduler` with
  `WARMUP_RECOUNT`.)  With E = 5, W = 1, epochs 2-5 get 1.000, 0.905, 0.655, 0.345 of the
  base rate; the annealing never reaches lr_min inside the run.
* `cosine_after_warmup`: timm's `CosineLRScheduler` with the warm-up as a prefix, the cosine
  over the E - W epochs after it (epochs 2-5: 1.000, 0.854, 0.500, 0.146).  The warm-up ramps
  linearly from `warmup_lr` to the base rate over W epochs (constant when W = 1).

* `constant`: every epoch at the base rate `lr` (MmAP's grouping warm-up: methods/grouping.py).

All have `step(epoch)`, `state_dict()` and `load_state_dict()`, which is all the loop and its
checkpoints use.  Without warm-up the two schedules are the same.
"""
from __future__ import annotations

import math

import torch
from timm.scheduler import CosineLRScheduler



class ConstantWarmupCosine:
    """The `cosine_dassl` schedule (formula in the module docstring), per parameter group."""

    def __init__(self, optimizer: torch.optim.Optimizer, epochs: int, warmup_epochs: int,
                 warmup_lr: float, lr_min: float):
        self.optimizer = optimizer
        self.epochs, self.warmup_epochs = epochs, warmup_epochs
        self.warmup_lr, self.lr_min = warmup_lr, lr_min
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_epoch = -1

    def rate(self, base_lr: float, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return self.warmup_lr
        progress = (epoch - self.warmup_epochs) / self.epochs
        return self.lr_min + (base_lr - self.lr_min) * (1 + math.cos(math.pi * progress)) / 2

    def step(self, epoch: int) -> None:
        self.last_epoch = epoch
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.rate(base_lr, epoch)

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.base_lrs, self.last_epoch = list(state["base_lrs"]), state["last_epoch"]


def build_lr_schedule(optimizer: torch.optim.Optimizer, cfg):
    """The scheduler named by `cfg.schedule` (a resolved `train` config)."""
    epochs, warmup = cfg.epochs, cfg.warmup_epochs
    if cfg.schedule == "constant":  # a warm-up as long as the run, at the base rate
        return ConstantWarmupCosine(optimizer, max(1, epochs), epochs, cfg.lr, cfg.lr_min)
    if cfg.schedule == "cosine_dassl":
        return ConstantWarmupCosine(optimizer, max(1, epochs), warmup, cfg.warmup_lr, cfg.lr_min)
    return CosineLRScheduler(optimizer, t_initial=max(1, epochs - warmup), lr_min=cfg.lr_min,
                             warmup_t=warmup, warmup_lr_init=cfg.warmup_lr, warmup_prefix=True,
                             t_in_epochs=True)

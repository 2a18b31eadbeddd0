"""Non-finite losses (NaN/inf): count them without a host-device sync per step, and stop a
run that diverges (docs/reliability.md, "Non-finite losses").

Each step's update is skipped by the grad scaler when its gradients are not finite
(bench/step.py `build_grad_scaler`).  `NonFiniteGuard.observe` keeps, on the device, the
number of non-finite steps, the current streak of consecutive ones and the first run step at
which the streak reached `train.max_nonfinite_steps`: tensor arithmetic only, no `.item()`.
`check` reads those once, at the checkpoint and epoch boundaries, before anything is saved:
a run whose streak reached the limit stops there with `NonFiniteLossError`, and its last
checkpoint (written before the streak, or holding only skipped updates) is the one kept.
`check_parameters` refuses to checkpoint parameters that are themselves NaN/inf (a finite
loss step can still overflow them).
"""
from __future__ import annotations

import torch

from bench.errors import UserError


class NonFiniteLossError(UserError):
    """The loss stayed NaN/inf for `train.max_nonfinite_steps` consecutive steps."""


def _advice(precision: str, lr: float) -> str:
    return (f"(precision {precision}, learning rate {lr:.3g}). The run diverged: lower train.lr, try "
            "train.precision=fp32 (fp16/bf16 overflow first), or raise train.max_nonfinite_steps to tolerate "
            "longer streaks. The last checkpoint, written before the divergence, is kept; nothing non-finite "
            "was saved.")


class NonFiniteGuard:
    """Per-step bookkeeping of non-finite losses on `device` (see the module docstring)."""

    def __init__(self, limit: int, device: torch.device, counted: int = 0):
        self.limit = limit
        self.total = torch.tensor(counted, device=device)
        self.streak = torch.zeros((), dtype=torch.long, device=device)
        self.stopped_at = torch.zeros((), dtype=torch.long, device=device)

    def observe(self, loss: torch.Tensor, run_step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Count `loss` (the detached loss of run step `run_step`); returns it with NaN/inf as 0,
        for the epoch's loss sum, and 1 if it was finite else 0, for the epoch's loss count."""
        finite = torch.isfinite(loss)
        self.total = self.total + (~finite).long()
        self.streak = torch.where(finite, torch.zeros_like(self.streak), self.streak + 1)
        reached = (self.streak >= self.limit) & (self.stopped_at == 0)
        self.stopped_at = torch.where(reached, torch.full_like(self.stopped_at, run_step), self.stopped_at)
        return torch.where(finite, loss, torch.zeros_like(loss)), finite.long()

    @property
    def count(self) -> int:
        return int(self.total.item())

    def check(self, precision: str, lr: float) -> None:
        """One sync: raise NonFiniteLossError when a streak reached the limit."""
        stopped_at = int(self.stopped_at.item())
        if stopped_at:
            raise NonFiniteLossError(
                f"The training loss was NaN or inf for {self.limit} consecutive steps, up to step {stopped_at} "
                f"(train.max_nonfinite_steps={self.limit}); each of those updates was skipped "
                + _advice(precision, lr))

    @staticmethod
    def check_parameters(params, run_step: int, precision: str, lr: float) -> None:
        """Raise NonFiniteLossError when a trainable parameter holds NaN/inf (one sync)."""
        if params and not bool(torch.stack([torch.isfinite(p.detach()).all() for p in params]).all()):
            raise NonFiniteLossError(f"The trainable parameters became NaN or inf by step {run_step} "
                                     + _advice(precision, lr))

"""One training step's pieces (bench/step.py): the multi-task loss."""
from __future__ import annotations

import torch

from bench.step import multitask_loss


def test_multitask_loss_is_sum_of_task_means():
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, 1, 2, 0, 1])
    tasks = torch.tensor([0, 0, 1, 1, 1])
    ce = torch.nn.functional.cross_entropy
    expected = ce(logits[:2], labels[:2]) + ce(logits[2:], labels[2:])
    torch.testing.assert_close(multitask_loss(logits, labels, tasks, 3), expected)
    torch.testing.assert_close(multitask_loss(logits, labels, tasks, 3, "mean"), expected / 2)

"""Test entry point (not a test module), run by both ranks of a torchrun job: one training
step where rank 1's share of the batch is EMPTY (every image of its share unreadable) and
rank 0 holds all of it, against the one-process step on the same batch.

    python -m torch.distributed.run --nproc_per_node=2 tests/bench/distributed_step.py OUT

Rank 0 writes OUT/step.json: the largest difference of the trainable states, of the loss,
and how far the step moved the parameters at all.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from omegaconf import OmegaConf

from bench import distributed
from bench.app import build_method, method_config, train_config
from bench.data import MultiTaskBatch
from bench.models import build_clip
from bench.step import build_grad_scaler, build_optimizer, train_step


def main(out: Path) -> None:
    torch.manual_seed(0)
    tasks = [SimpleNamespace(name=f"task{t}", classnames=("dog", "cat", "car")) for t in range(2)]
    method = build_method(method_config(OmegaConf.create({"name": "coop"})), build_clip("cpb-tiny", "none"), tasks,
                          seed=0)
    cfg = train_config(OmegaConf.create({"lr": 0.05, "optimizer": "sgd"}))
    generator = torch.Generator().manual_seed(1)
    full = MultiTaskBatch(torch.randn(6, 3, 64, 64, generator=generator), torch.tensor([0, 1, 2, 0, 1, 2]),
                          torch.tensor([0, 0, 0, 1, 1, 1]))
    empty = MultiTaskBatch(torch.zeros(0), *(torch.zeros(0, dtype=torch.long),) * 2)
    device = torch.device("cpu")

    def step(model, batch):
        params = [p for _, p in model.trainable_parameters()]
        return train_step(model, batch, build_optimizer(params, cfg), build_grad_scaler(device, cfg), device, cfg,
                          len(tasks), fixed_train=False)

    reference, initial = copy.deepcopy(method), method.trainable_state()
    reference_loss = step(reference, full)  # before setup: one process
    world = distributed.setup("cpu", 60)
    loss = step(method, full if world.rank == 0 else empty)
    if world.is_writer:
        ours, theirs = method.trainable_state(), reference.trainable_state()
        (out / "step.json").write_text(json.dumps({
            "state": max((ours[n] - theirs[n]).abs().max().item() for n in ours),
            "moved": max((theirs[n] - initial[n]).abs().max().item() for n in ours),
            "loss": abs(loss.item() - reference_loss.item()), "world": world.size}))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))

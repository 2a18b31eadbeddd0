"""`model.grad_checkpointing`: each tower block recomputed in backward (bench/clip.py) gives
the same logits and gradients as keeping the activations, and is not part of the run id."""
from __future__ import annotations

import pytest
import torch
from helpers import make_tasks, method_cfg

from bench.app import build_method, check, compose_config
from bench.identity import identity_config


@pytest.mark.parametrize("name", ["full", "maple", "lora"])
def test_checkpointed_blocks_give_the_same_gradients(tiny_clip, name):
    tasks = make_tasks(2)
    images, task_ids = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 0, 1])
    labels = torch.tensor([0, 1, 2, 3])
    results = []
    for checkpointed in (False, True):
        tiny_clip.grad_checkpointing = checkpointed
        try:
            method = build_method(method_cfg(name), tiny_clip, tasks, seed=0)
            method.train()
            torch.manual_seed(0)  # LoRA's dropout: the same masks in both runs (replayed when recomputed)
            saved = []  # what autograd keeps for backward: far less when blocks are recomputed
            with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
                logits = method(images, task_ids)
            torch.nn.functional.cross_entropy(logits, labels).backward()
            results.append((logits.detach(), sum(saved), {n: p.grad.clone() for n, p in method.trainable_parameters()
                                              if p.grad is not None}))
            method.zero_grad(set_to_none=True)
        finally:
            tiny_clip.grad_checkpointing = False
    (plain_logits, plain_saved, plain), (ckpt_logits, ckpt_saved, ckpt) = results
    assert torch.equal(plain_logits, ckpt_logits)
    assert ckpt_saved < plain_saved / 2
    assert plain.keys() == ckpt.keys() and plain
    for n in plain:
        torch.testing.assert_close(ckpt[n], plain[n], rtol=0, atol=1e-7, msg=n)


def test_grad_checkpointing_is_not_part_of_the_run_id():
    plain = check(compose_config(["dataset=toy", "method=full"]))
    checkpointed = check(compose_config(["dataset=toy", "method=full", "model.grad_checkpointing=true"]))
    assert checkpointed.model.grad_checkpointing and not plain.model.grad_checkpointing
    assert identity_config(checkpointed) == identity_config(plain)

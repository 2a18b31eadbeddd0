"""Zero-shot CLIP (methods/zeroshot.py): the hand template, logits over the sample's own task."""
from __future__ import annotations

import torch
from helpers import make_tasks, method_cfg, trainable_count

from bench.app import build_method


def test_logits_cover_only_the_samples_own_task(tiny_clip):
    tasks = [make_tasks(1, ("a", "b", "c"))[0], make_tasks(1, ("d", "e"))[0]]
    method = build_method(method_cfg("zeroshot"), tiny_clip, tasks).eval()
    logits = method(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits[0]).all() and torch.isinf(logits[1, 2]) and torch.isfinite(logits[1, :2]).all()


def test_vit_b16_counts(vit_b16_clip):
    tasks = make_tasks(4, tuple(f"class{i}" for i in range(65)))
    assert trainable_count(build_method(method_cfg("zeroshot"), vit_b16_clip, tasks)) == 0

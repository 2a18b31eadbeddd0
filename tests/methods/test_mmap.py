"""MmAP (methods/mmap.py): against the slow reference of tests/references.py, grouped mode's
group and task prompts, ViT-B/16 counts.  Task grouping itself: tests/methods/test_grouping.py."""
from __future__ import annotations

import pytest
import torch
from helpers import (
    PROMPT_CASES,
    case_id,
    cases_of,
    method_cfg,
    mixed_tasks,
    officehome_like_tasks,
    trainable_count,
)
from references import assert_forward_matches_deep_prompts

from bench.app import build_method

CASES = cases_of("mmap", PROMPT_CASES)


@pytest.mark.parametrize("name,overrides", CASES, ids=[case_id(c) for c in CASES])
def test_forward_matches_slow_reference(tiny_clip, name, overrides):
    assert_forward_matches_deep_prompts(tiny_clip, name, overrides)


def test_grouped_uses_each_tasks_group_and_own_prompts(tiny_clip):
    cfg = method_cfg("mmap", mode="grouped", prompt_depth=2, n_ctx=2, n_task_ctx=2,
                     **{"grouping.strategy": "manual", "grouping.groups": [["task0", "task1"], ["task2"]]})
    method = build_method(cfg, tiny_clip, mixed_tasks()).eval()
    images = torch.randn(6, 3, 64, 64)
    task_ids = torch.tensor([0, 0, 1, 1, 2, 2])

    def changed(parameter, index):
        with torch.no_grad():
            base = method(images, task_ids)
            parameter[index] += 0.5
            method.invalidate_cache()
            after = method(images, task_ids)
            parameter[index] -= 0.5
            method.invalidate_cache()
        per_sample = (base != after).any(dim=1)
        return sorted({int(t) for t in task_ids[per_sample]})

    assert method.groups == [[0, 1], [2]]
    assert changed(method.group_prompts.source, 0) == [0, 1]
    assert changed(method.group_prompts.vision_factor, 1) == [2]
    assert changed(method.task_prompts.source, 1) == [1]
    assert changed(method.task_prompts.text_factor, 2) == [2]
    n_params = sum(p.numel() for _, p in method.trainable_parameters())
    d_s, depth = 32, 2  # gcd(64, 96); (2 groups x 2 tokens + 3 tasks x 2 tokens) per layer
    assert n_params == depth * ((2 + 3) * 2 * d_s + (2 + 3) * (64 // d_s + 96 // d_s))


def test_vit_b16_counts(vit_b16_clip):
    def count(**overrides):
        return trainable_count(build_method(method_cfg("mmap", **overrides), vit_b16_clip, officehome_like_tasks()))

    per_set = 12 * (8 * 256 + 2 + 3)
    assert per_set == 24_636
    assert count(mode="mt") == per_set
    assert count(mode="st") == 4 * per_set
    groups = [["Art", "Clipart"], ["Product", "Real_World"]]
    assert count(mode="grouped", **{"grouping.strategy": "manual", "grouping.groups": groups}) \
        == (2 + 4) * 24_636 == 147_816

"""VPT (methods/vpt.py): against the slow reference of tests/references.py, zero tokens is
zero-shot, ViT-B/16 counts."""
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

CASES = cases_of("vpt", PROMPT_CASES)


@pytest.mark.parametrize("name,overrides", CASES, ids=[case_id(c) for c in CASES])
def test_forward_matches_slow_reference(tiny_clip, name, overrides):
    assert_forward_matches_deep_prompts(tiny_clip, name, overrides)


def test_vpt_zero_tokens_is_zero_shot(tiny_clip):
    tasks = mixed_tasks()
    vpt = build_method(method_cfg("vpt", n_tokens=0), tiny_clip, tasks)
    zeroshot = build_method(method_cfg("zeroshot"), tiny_clip, tasks)
    assert vpt.trainable_parameters() == []
    images = torch.randn(4, 3, 64, 64)
    task_ids = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        assert torch.equal(vpt(images, task_ids), zeroshot(images, task_ids))


def test_vit_b16_counts(vit_b16_clip):
    def count(**overrides):
        return trainable_count(build_method(method_cfg("vpt", **overrides), vit_b16_clip, officehome_like_tasks()))

    assert count(mode="mt") == 8 * 768 * 12 == 73_728
    assert count(mode="st") == 4 * 73_728
    assert count(deep=False) == 8 * 768

"""Full fine-tuning (methods/full.py): every CLIP weight trains, on a private copy per set."""
from __future__ import annotations

import copy

from helpers import CLIP_B16_TOTAL, make_tasks, method_cfg, trainable_count

from bench.app import build_method


def test_full_st_has_one_clip_per_task(tiny_clip):
    tasks = make_tasks(3)
    total = sum(p.numel() for p in tiny_clip.model.parameters())
    full = build_method(method_cfg("full", mode="st"), copy.deepcopy(tiny_clip), tasks)
    assert sum(p.numel() for _, p in full.trainable_parameters()) == 3 * total


def test_vit_b16_counts(vit_b16_clip):
    tasks = make_tasks(4, tuple(f"class{i}" for i in range(65)))
    assert sum(p.numel() for p in vit_b16_clip.model.parameters()) == CLIP_B16_TOTAL
    full = build_method(method_cfg("full", mode="mt"), copy.deepcopy(vit_b16_clip), tasks)
    assert trainable_count(full) == 149_620_737

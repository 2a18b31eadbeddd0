"""LoRA (methods/lora.py): against the slow reference of tests/references.py, dropout only while
training, ViT-B/16 counts.  Zero-shot at init: tests/methods/test_contract.py."""
from __future__ import annotations

import pytest
import torch
from helpers import (
    FORMULA_CASES,
    case_id,
    cases_of,
    make_tasks,
    method_cfg,
    officehome_like_tasks,
    trainable_count,
)
from references import assert_logits_and_gradients_match_formula, perturb

from bench.app import build_method

CASES = cases_of("lora", FORMULA_CASES)


@pytest.mark.parametrize("name,overrides", CASES, ids=[case_id(c) for c in CASES])
def test_logits_and_gradients_match_slow_reference(clip64, name, overrides):
    assert_logits_and_gradients_match_formula(clip64, name, overrides)


def test_lora_dropout_only_while_training(tiny_clip):
    method = build_method(method_cfg("lora", dropout=0.5), tiny_clip, make_tasks(2), seed=1)
    perturb(method)
    images, task_ids = torch.randn(2, 3, 64, 64), torch.tensor([0, 1])
    with torch.no_grad():
        method.train()
        noisy = [method(images, task_ids) for _ in range(2)]
        method.eval()
        clean = [method(images, task_ids) for _ in range(2)]
    assert not torch.equal(noisy[0], noisy[1]) and torch.equal(clean[0], clean[1])
    method.dropout.p = 1e-12  # the dropout path (a mask per projection) keeps everything: eval's result
    method.train()
    with torch.no_grad():
        torch.testing.assert_close(method(images, task_ids), clean[0], atol=1e-5, rtol=1e-6)


def test_vit_b16_counts(vit_b16_clip):
    per_set = 2 * 3 * 2 * (12 * 512 + 12 * 768)
    assert per_set == 184_320
    for mode, sets in (("mt", 1), ("st", 4)):
        method = build_method(method_cfg("lora", mode=mode), vit_b16_clip, officehome_like_tasks())
        assert trainable_count(method) == sets * per_set

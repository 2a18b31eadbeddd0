"""CLIP-Adapter (methods/clip_adapter.py): against the slow reference of tests/references.py,
ViT-B/16 counts."""
from __future__ import annotations

import pytest
from helpers import (
    FORMULA_CASES,
    case_id,
    cases_of,
    method_cfg,
    officehome_like_tasks,
    trainable_count,
)
from references import assert_logits_and_gradients_match_formula

from bench.app import build_method

CASES = cases_of("clip_adapter", FORMULA_CASES)


@pytest.mark.parametrize("name,overrides", CASES, ids=[case_id(c) for c in CASES])
def test_logits_and_gradients_match_slow_reference(clip64, name, overrides):
    assert_logits_and_gradients_match_formula(clip64, name, overrides)


def test_vit_b16_counts(vit_b16_clip):
    per_set = 2 * 512 * 128
    assert per_set == 131_072
    for mode, sets in (("mt", 1), ("st", 4)):
        method = build_method(method_cfg("clip_adapter", mode=mode), vit_b16_clip, officehome_like_tasks())
        assert trainable_count(method) == sets * per_set

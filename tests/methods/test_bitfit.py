"""BitFit (methods/bitfit.py): against the slow reference of tests/references.py, ViT-B/16
counts (every bias of both towers)."""
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

CASES = cases_of("bitfit", FORMULA_CASES)


@pytest.mark.parametrize("name,overrides", CASES, ids=[case_id(c) for c in CASES])
def test_logits_and_gradients_match_slow_reference(clip64, name, overrides):
    assert_logits_and_gradients_match_formula(clip64, name, overrides)


def test_vit_b16_counts(vit_b16_clip):
    tasks = officehome_like_tasks()
    per_set = 11 * 12 * 768 + 2 * 768 + 11 * 12 * 512 + 512
    assert per_set == 171_008
    for mode, sets in (("mt", 1), ("st", 4)):
        assert trainable_count(build_method(method_cfg("bitfit", mode=mode), vit_b16_clip, tasks)) == sets * per_set
    bitfit = build_method(method_cfg("bitfit"), vit_b16_clip, tasks)
    biases = {n for n, _ in vit_b16_clip.model.named_parameters() if n.endswith("bias")}
    assert {k for k in bitfit.biases} == {n.replace(".", "_") for n in biases}
    assert sum(p.numel() for n, p in vit_b16_clip.model.named_parameters() if n in biases) == 171_008

"""CoOp (methods/coop.py): against the slow reference of tests/references.py in every variant
(class token position, class-specific context), zero-shot from the template, ViT-B/16 counts."""
from __future__ import annotations

import pytest
import torch
from helpers import (
    FORMULA_CASES,
    case_id,
    cases_of,
    make_tasks,
    method_cfg,
    mixed_tasks,
    officehome_like_tasks,
    trainable_count,
)
from references import assert_logits_and_gradients_match_formula

from bench.app import build_method

CASES = cases_of("coop", FORMULA_CASES)


@pytest.mark.parametrize("name,overrides", CASES, ids=[case_id(c) for c in CASES])
def test_logits_and_gradients_match_slow_reference(clip64, name, overrides):
    assert_logits_and_gradients_match_formula(clip64, name, overrides)


def test_coop_initialised_from_template_equals_zeroshot(tiny_clip):
    tasks = make_tasks(2)
    images = torch.randn(4, 3, tiny_clip.image_size, tiny_clip.image_size)
    task_ids = torch.tensor([0, 1, 1, 0])
    zeroshot = build_method(method_cfg("zeroshot", template="a photo of a {}."), tiny_clip, tasks).eval()
    for mode in ("mt", "st"):
        coop = build_method(method_cfg("coop", ctx_init="a photo of a", mode=mode), tiny_clip, tasks).eval()
        assert coop.n_ctx == 4
        torch.testing.assert_close(coop(images, task_ids), zeroshot(images, task_ids), rtol=1e-5, atol=1e-5)


def test_coop_csc_shares_a_class_across_tasks_in_mt_only(tiny_clip):
    tasks = mixed_tasks()  # task0 and task2 have the same four classes, task1 three others
    mt = build_method(method_cfg("coop", csc=True, n_ctx=2), tiny_clip, tasks)
    st = build_method(method_cfg("coop", csc=True, n_ctx=2, mode="st"), tiny_clip, tasks)
    assert mt.context.shape[0] == 7 and st.context.shape[0] == 11
    assert torch.equal(mt.context_entry[0, :4], mt.context_entry[2, :4])
    assert len(set(st.context_entry[0, :4].tolist()) & set(st.context_entry[2, :4].tolist())) == 0


def test_coop_default_is_unchanged(tiny_clip):
    """End position, shared context: the prompt texts and initial context of before."""
    coop = build_method(method_cfg("coop", n_ctx=2), tiny_clip, make_tasks(1))
    assert coop.prompt_texts(0)[0] == "X X dog." and coop.context.shape == (1, 2, 64)
    middle = build_method(method_cfg("coop", n_ctx=3, class_token_position="middle"), tiny_clip, make_tasks(1))
    front = build_method(method_cfg("coop", n_ctx=2, class_token_position="front"), tiny_clip, make_tasks(1))
    assert middle.prompt_texts(0)[0] == "X dog X X." and front.prompt_texts(0)[0] == "dog X X."
    assert torch.equal(middle.context[0, :2], coop.context[0])  # per-name seeded: same draws


def test_vit_b16_counts(vit_b16_clip):
    tasks = make_tasks(4, tuple(f"class{i}" for i in range(65)))
    assert trainable_count(build_method(method_cfg("coop", mode="mt"), vit_b16_clip, tasks)) == 16 * 512 == 8192
    assert trainable_count(build_method(method_cfg("coop", mode="st"), vit_b16_clip, tasks)) == 4 * 8192

    def count(**overrides):
        return trainable_count(build_method(method_cfg("coop", **overrides), vit_b16_clip, officehome_like_tasks()))

    assert count(csc=True) == 65 * 16 * 512 == 532_480
    assert count(csc=True, mode="st") == 4 * 532_480
    assert count(class_token_position="middle") == 8_192

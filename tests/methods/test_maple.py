"""MaPLe (methods/maple.py): against the slow reference of tests/references.py, the first
context from the template's words, the default depth, ViT-B/16 counts."""
from __future__ import annotations

import pytest
import torch
from helpers import (
    PROMPT_CASES,
    case_id,
    cases_of,
    make_tasks,
    method_cfg,
    officehome_like_tasks,
    trainable_count,
)
from references import assert_forward_matches_deep_prompts

from bench.app import build_method

CASES = cases_of("maple", PROMPT_CASES)


@pytest.mark.parametrize("name,overrides", CASES, ids=[case_id(c) for c in CASES])
def test_forward_matches_slow_reference(tiny_clip, name, overrides):
    assert_forward_matches_deep_prompts(tiny_clip, name, overrides)


def test_maple_first_context_is_template_words(tiny_clip):
    maple = build_method(method_cfg("maple", prompt_depth=2), tiny_clip, make_tasks(1))
    tokens = tiny_clip.tokenize(["a photo of a"])[0]
    words = tiny_clip.token_embedding(tokens[1:3])
    assert torch.equal(maple.text_context[0, 0].detach(), words.detach())
    assert maple.prompt_texts(0)[0] == "a photo of a dog."


def test_maple_default_depth_is_nine_or_the_whole_shallower_model(tiny_clip, vit_b16_clip):
    assert build_method(method_cfg("maple"), vit_b16_clip, make_tasks(1)).prompt_depth == 9
    assert build_method(method_cfg("maple"), tiny_clip, make_tasks(1)).prompt_depth == 4


def test_vit_b16_counts(vit_b16_clip):
    per_set = 2 * 512 + 8 * 2 * 512 + 9 * (512 * 768 + 768)
    assert per_set == 3_555_072
    for mode, sets in (("mt", 1), ("st", 4)):
        method = build_method(method_cfg("maple", mode=mode), vit_b16_clip, officehome_like_tasks())
        assert trainable_count(method) == sets * per_set

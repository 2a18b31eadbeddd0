"""The CLIP wrapper (bench/clip.py): without prompts it is open_clip; prompts, truncation and the
tower speed-ups are exact; widths and depths come from the model; bad prompts are clear errors."""
from __future__ import annotations

import pytest
import torch

from bench.clip import ModelError, TowerPrompts
from bench.speedups import speedups


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_wrapper_without_prompts_equals_open_clip(tiny_clip):
    tokens = tiny_clip.tokenize(["a photo of a dog.", "cat", "a very long sentence about a house"])
    ours = tiny_clip.encode_text(tokens, truncate=False)
    reference = tiny_clip.model.encode_text(tokens, normalize=True)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)
    images = torch.randn(3, 3, tiny_clip.image_size, tiny_clip.image_size)
    torch.testing.assert_close(tiny_clip.encode_image(images), tiny_clip.model.encode_image(images, normalize=True),
                               rtol=0, atol=1e-6)


def test_text_truncation_is_exact(tiny_clip):
    tokens = tiny_clip.tokenize(["a", "a photo of a small dog on the grass."])
    prompts = TowerPrompts(input=torch.randn(2, 1, tiny_clip.text_width),
                           deep={1: torch.randn(1, 1, tiny_clip.text_width)})
    full = tiny_clip.encode_text(tokens, prompts, truncate=False)
    cut = tiny_clip.encode_text(tokens, prompts, truncate=True)
    torch.testing.assert_close(cut, full, rtol=1e-5, atol=1e-6)


def test_widths_and_depths_read_from_model(tiny_clip, vit_l14_widths_clip, vit_b16_clip):
    assert (tiny_clip.text_width, tiny_clip.vision_width) == (64, 96)
    assert (vit_l14_widths_clip.text_width, vit_l14_widths_clip.vision_width) == (768, 1024)
    assert (vit_b16_clip.text_width, vit_b16_clip.vision_width, vit_b16_clip.vision_depth) == (512, 768, 12)


def test_prompt_deeper_than_model_is_a_clear_error(tiny_clip):
    tokens = tiny_clip.tokenize(["X dog."])
    deep = {tiny_clip.text_depth: torch.zeros(1, 1, tiny_clip.text_width)}
    with pytest.raises(ModelError, match="Lower the prompt depth"):
        tiny_clip.encode_text(tokens, TowerPrompts(input=torch.zeros(1, 1, tiny_clip.text_width), deep=deep))


def test_text_prompt_longer_than_its_placeholders_is_a_clear_error(tiny_clip):
    tokens = tiny_clip.tokenize(["X dog."])  # SOS x dog . EOT: EOT at position 4
    with pytest.raises(ModelError, match="placeholder"):
        tiny_clip.encode_text(tokens, TowerPrompts(input=torch.zeros(1, 4, tiny_clip.text_width)))
    tiny_clip.encode_text(tokens, TowerPrompts(input=torch.zeros(1, 3, tiny_clip.text_width)))


@pytest.mark.parametrize("quick_gelu", [False, True])
def test_prompted_towers_equal_with_and_without_speedups(quick_gelu):
    """Deep prompts written in place and the last block run at CLS / EOT only give the
    baseline's features and prompt gradients (shared and per-sample prompts)."""
    from bench.models import build_clip
    torch.manual_seed(0)
    clip = build_clip("cpb-tiny", "none", quick_gelu=quick_gelu)
    depth, n = clip.vision_depth, 2
    vision = torch.randn(depth, 2, n, clip.vision_width, requires_grad=True)   # per image
    text = torch.randn(depth, 1, n, clip.text_width, requires_grad=True)       # shared by prompts
    images = torch.randn(2, 3, clip.image_size, clip.image_size)
    tokens = clip.tokenize(["X X dog.", "X X a very long class name."])
    results = {}
    for enabled in (False, True):
        with speedups(enabled):
            vision.grad = text.grad = None
            image = clip.encode_image(images, TowerPrompts(vision[0], {j: vision[j] for j in range(1, depth)}))
            words = clip.encode_text(tokens, TowerPrompts(text[0], {j: text[j] for j in range(1, depth)}))
            (image @ words.T * torch.tensor([[1.0, -2.0], [0.5, 3.0]])).sum().backward()
            results[enabled] = (image.detach(), words.detach(), vision.grad.clone(), text.grad.clone())
    for on, off in zip(results[True], results[False]):
        _close(on, off)

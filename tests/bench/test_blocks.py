"""bench/blocks.py and the tower speed-ups of bench/clip.py are exact: the same features and
gradients as open_clip's own blocks, with QuickGELU, LayerScale, trained biases (BitFit) and
an attention module replaced by another of the same call signature (LoRA)."""
from __future__ import annotations

import copy

import pytest
import torch
from open_clip.transformer import QuickGELU, ResidualAttentionBlock
from torch import nn

from bench.blocks import is_plain_block, run_block
from bench.speedups import speedups


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def _causal_mask(length: int) -> torch.Tensor:
    return torch.full((length, length), float("-inf")).triu_(1)


def _output_and_grads(run, x, params):
    for p in [x, *params]:
        p.grad = None
    out = run(x)
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return out.detach(), [t.grad.clone() for t in [x, *params]]


@pytest.mark.parametrize("layer_scale,act", [(None, nn.GELU), (0.3, QuickGELU)])
@pytest.mark.parametrize("causal", [False, True])
def test_run_block_equals_block(layer_scale, act, causal):
    """Outputs, input gradients and bias gradients (BitFit trains them) of the one-matmul
    path equal the block's own; with `rows`, the block's output at those positions."""
    torch.manual_seed(0)
    block = ResidualAttentionBlock(64, 4, ls_init_value=layer_scale, act_layer=act)
    biases = [block.attn.in_proj_bias, block.attn.out_proj.bias, block.ln_1.bias, block.mlp.c_fc.bias]
    x = torch.randn(3, 9, 64, requires_grad=True)
    mask = _causal_mask(9) if causal else None
    assert is_plain_block(block)
    reference, reference_grads = _output_and_grads(lambda t: block(t, attn_mask=mask), x, biases)
    ours, grads = _output_and_grads(lambda t: run_block(block, t, mask), x, biases)
    _close(ours, reference)
    for grad, base in zip(grads, reference_grads):
        _close(grad, base)
    rows = torch.tensor([8, 3, 0])
    picked = (torch.arange(3), rows)
    reference, reference_grads = _output_and_grads(lambda t: block(t, attn_mask=mask)[picked][:, None], x, biases)
    ours, grads = _output_and_grads(lambda t: run_block(block, t, mask, rows), x, biases)
    assert ours.shape == (3, 1, 64)
    _close(ours, reference)
    for grad, base in zip(grads, reference_grads):
        _close(grad, base)


class ReplacedAttention(nn.Module):
    """Stands in for a LoRA module: nn.MultiheadAttention's call signature, its own parameter."""

    def __init__(self, attn: nn.MultiheadAttention):
        super().__init__()
        self.inner = attn
        self.shift = nn.Parameter(torch.full((attn.embed_dim,), 0.01))

    def forward(self, query, key, value, need_weights=False, attn_mask=None):
        out, _ = self.inner(query, key, value, need_weights=False, attn_mask=attn_mask)
        return out * (1 + self.shift), None


def test_replaced_attention_runs_through_the_block(tiny_clip):
    """A block whose `attn` is not a plain nn.MultiheadAttention is run as open_clip runs it:
    features equal open_clip's encode_image/encode_text, with speed-ups on and off, and the
    replacement's parameters get their gradients."""
    clip = copy.deepcopy(tiny_clip)
    for tower in (clip.model.visual.transformer, clip.model.transformer):
        for block in tower.resblocks:
            block.attn = ReplacedAttention(block.attn)
            assert not is_plain_block(block)
    shifts = [m.shift for m in clip.modules() if isinstance(m, ReplacedAttention)]
    images = torch.randn(2, 3, clip.image_size, clip.image_size)
    tokens = clip.tokenize(["a photo of a dog.", "cat"])
    results = {}
    for enabled in (False, True):
        with speedups(enabled):
            for s in shifts:
                s.grad = None
            image, text = clip.encode_image(images), clip.encode_text(tokens)
            (image.sum() + text.sum()).backward()
            results[enabled] = (image.detach(), text.detach(), [s.grad.clone() for s in shifts])
    _close(results[True][0], clip.model.encode_image(images, normalize=True).detach())
    _close(results[True][1], clip.model.encode_text(tokens, normalize=True).detach())
    for on, off in zip(results[True], results[False]):
        for a, b in zip(on if isinstance(on, list) else [on], off if isinstance(off, list) else [off]):
            _close(a, b)

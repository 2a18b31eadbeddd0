"""open_clip residual attention blocks run on the batch-first layout with one matmul per projection.

Why: open_clip 3.x keeps activations batch-first (N, L, D) and its `nn.MultiheadAttention`
(batch_first=True) transposes them to (L, N, D) before the packed in-projection.  A linear
layer on that transposed, non-contiguous input cannot be folded into one matrix product, so
PyTorch runs it as a batched matmul of L products of N rows each (`aten::bmm`, forward and
backward).  With few images (N = 4, L = 197 + prompts) those tiny products cost more than the
rest of the tower: profiled on ViT-B/16, 4 images, forward + backward, one CPU thread,
`aten::bmm` took 2.9 s of 7.2 s, and the tower ran 1.35x slower than the same blocks fed a
contiguous sequence-first (L, N, D) tensor, as OpenAI's CLIP (and the CoOp/MaPLe code on it)
does.

`run_block` computes exactly what the block computes, y = x + ls_1(MHA(ln_1(x))) and
y + ls_2(mlp(ln_2(y))) with MHA = out_proj(SDPA(q, k, v)), [q k v] = ln_1(x) W_in^T + b_in,
but projects the contiguous (N L, D) rows in one matmul and hands per-head strided views to
`scaled_dot_product_attention` (the kernel `nn.MultiheadAttention` itself calls); results
agree with `block(x)` to float rounding.  It reads every weight from the block at call time,
so trained biases (BitFit), LayerScale and QuickGELU work unchanged.  A block it does not
recognise (a LoRA module in place of `attn`, open_clip's custom blocks, dropout, extra k/v
biases) runs through `block(x)` as it is.

`rows` (one position per sample) asks for the block's output at those positions only: keys
and values come from every position, but the query projection, attention output, residual
and MLP run on one row per sample.  Exact when nothing later reads the other positions: the
last block before pooling at CLS (vision) or at EOT (causal text).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn


def is_plain_block(block: nn.Module) -> bool:
    """open_clip's default block around an unmodified self-attention `nn.MultiheadAttention`."""
    attn = getattr(block, "attn", None)
    return (isinstance(block, ResidualAttentionBlock) and not hasattr(block, "ln_1_kv")
            and type(attn) is nn.MultiheadAttention and attn.batch_first and attn._qkv_same_embed_dim
            and attn.bias_k is None and not attn.add_zero_attn and attn.dropout == 0.0)


def run_block(block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
              rows: torch.Tensor | None = None) -> torch.Tensor:
    """`block(x, attn_mask=attn_mask)` for batch-first x (N, L, D); with `rows` (N,) its
    output at position rows[b] of each sample b only, shaped (N, 1, D)."""
    picked = None if rows is None else (torch.arange(x.shape[0], device=x.device), rows)
    if not is_plain_block(block):
        out = block(x, attn_mask=attn_mask)
        return out if picked is None else out[picked][:, None]
    attn = block.attn
    n, length, width = x.shape
    heads = attn.num_heads
    head_width = width // heads
    normed = block.ln_1(x)
    bias = attn.in_proj_bias
    if picked is None:
        qkv = F.linear(normed, attn.in_proj_weight, bias).view(n, length, 3, heads, head_width)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                       # (N, H, L, d) each
        residual = x
    else:
        w_q, w_kv = attn.in_proj_weight.split([width, 2 * width])
        b_q, b_kv = (None, None) if bias is None else bias.split([width, 2 * width])
        kv = F.linear(normed, w_kv, b_kv).view(n, length, 2, heads, head_width)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        q = F.linear(normed[picked], w_q, b_q).view(n, heads, 1, head_width)
        residual = x[picked][:, None]
        if attn_mask is not None:                                            # each query row's own mask row
            attn_mask = attn_mask[rows][:, None, None, :]
    if attn_mask is not None and attn_mask.is_floating_point():  # as open_clip's block casts it
        attn_mask = attn_mask.to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)      # (N, H, Lq, d)
    out = F.linear(out.transpose(1, 2).reshape(n, -1, width), attn.out_proj.weight, attn.out_proj.bias)
    x = residual + block.ls_1(out)
    return x + block.ls_2(block.mlp(block.ln_2(x)))

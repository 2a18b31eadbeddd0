"""Per-task weights applied per row, inside a tower or after it.

Methods keep each trainable tensor stacked over parameter sets, (sets, ...), one set shared by
all tasks (MT) or one per task (ST), and every row of a batch (an image, or a class prompt)
uses the set of its task.  One shared set is used as is (the same kernels as the frozen model,
so MT at its initial values is bit-for-bit the model it starts from); ST gathers each row's set
and applies it with a batched product or a broadcast addition, which is exact: no copy of CLIP
per task is needed.

* `per_row_linear`: small per-set layers after a tower (clip_adapter, cocoop's meta-net).
* `SetRouting`: which set each row of the tower pass under way uses.
* `RoutedLinear`, `RoutedLayerNorm`, `RoutedAttention`: drop-in replacements for open_clip's
  nn.Linear, LayerNorm and nn.MultiheadAttention (self-attention, the call signature open_clip's
  blocks use) that take a per-row bias from a method (bitfit) and, for attention, an addition
  to the fused q/k/v projection (lora).  Each keeps the module it replaces as `base`, so the
  copy's parameters (and counts) stay those of CLIP.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from bench.clip import ModelError, PromptableCLIP


def per_row_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """y = x W^T + b with the weight of each row: x (N, in), weight (N or 1, out, in), bias (N or 1, out)."""
    if weight.shape[0] == 1:
        return F.linear(x, weight[0], None if bias is None else bias[0])
    y = torch.bmm(weight.to(x.dtype), x.unsqueeze(-1)).squeeze(-1)
    return y if bias is None else y + bias.to(y.dtype)


class SetRouting:
    """The parameter set of each row of the tower pass under way (a plain object, so the
    modules holding it do not register anything twice)."""

    def __init__(self) -> None:
        self.rows: torch.Tensor | None = None

    @contextlib.contextmanager
    def __call__(self, rows: torch.Tensor) -> Iterator[None]:
        """Route the rows of the passes inside this block: rows[i] is row i's set index."""
        saved, self.rows = self.rows, rows
        try:
            yield
        finally:
            self.rows = saved

    def pick(self, params: torch.Tensor) -> torch.Tensor:
        """(1, ...) for one shared set, else (rows, ...): each row's set."""
        if params.shape[0] == 1:
            return params
        if self.rows is None:
            raise RuntimeError("per-task weights used outside a routed pass (SetRouting)")
        return params[self.rows]


def _broadcast_rows(bias: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """bias (rows, d) shaped to add to `like` (rows, ..., d)."""
    return bias.reshape(bias.shape[0], *([1] * (like.dim() - 2)), bias.shape[-1]).to(like.dtype)


BiasSource = Callable[[], torch.Tensor]  # -> (1 or rows, d): the routed bias of the pass


class RoutedLinear(nn.Module):
    """nn.Linear with its bias supplied per row by `bias()`."""

    def __init__(self, base: nn.Linear, bias: BiasSource):
        super().__init__()
        self.base, self.bias_of_rows = base, bias

    @property
    def weight(self) -> torch.Tensor:  # open_clip reads blocks' mlp.c_fc.weight for its dtype
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias_of_rows()
        if bias.shape[0] == 1:
            return F.linear(x, self.base.weight, bias[0])
        y = F.linear(x, self.base.weight)
        return y + _broadcast_rows(bias, y)


class RoutedLayerNorm(nn.Module):
    """open_clip's LayerNorm (or LayerNormFp32) with its bias supplied per row by `bias()`."""

    def __init__(self, base: nn.LayerNorm, bias: BiasSource):
        super().__init__()
        self.base, self.bias_of_rows = base, bias
        self.in_fp32 = type(base).__name__ == "LayerNormFp32"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype, base, bias = x.dtype, self.base, self.bias_of_rows()
        x = x.float() if self.in_fp32 else x
        if bias.shape[0] == 1:
            y = F.layer_norm(x, base.normalized_shape, base.weight, bias[0], base.eps)
        else:
            y = F.layer_norm(x, base.normalized_shape, base.weight, None, base.eps)
            y = y + _broadcast_rows(bias, y)
        return y.to(dtype)


class RoutedAttention(nn.Module):
    """Self-attention with nn.MultiheadAttention's call signature,
    `(query, key, value, need_weights=False, attn_mask=None) -> (out, None)`, computed from the
    frozen module's weights (batch_first), with optional per-row biases of the fused in-projection
    and the out-projection (`in_bias`, `out_bias`) and an addition to the projected q|k|v
    (`in_delta(x) -> (N, L, 3d)`, e.g. LoRA's).  With none of them it is the module it replaces
    (the same operations as nn.MultiheadAttention's own path: in-projection, scaled dot-product
    attention per head, out-projection)."""

    def __init__(self, base: nn.MultiheadAttention, in_bias: BiasSource | None = None,
                 out_bias: BiasSource | None = None,
                 in_delta: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        if not (isinstance(base, nn.MultiheadAttention) and base.batch_first and base._qkv_same_embed_dim
                and base.in_proj_weight is not None and base.bias_k is None and not base.add_zero_attn):
            raise ModelError("Per-task attention weights (bitfit, lora) need the batch-first "
                             "nn.MultiheadAttention with a fused in-projection of open_clip's CLIP "
                             f"ViT blocks; this model's attention is {type(base).__name__}. Choose an "
                             "open_clip CLIP ViT architecture (e.g. model.arch=ViT-B-16).")
        self.base = base
        self.in_bias, self.out_bias, self.in_delta = in_bias, out_bias, in_delta

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                need_weights: bool = False, attn_mask: torch.Tensor | None = None):
        if need_weights or not (query is key and key is value):
            raise ModelError("RoutedAttention computes self-attention without attention weights only.")
        base = self.base
        n, length, dim = query.shape
        heads = base.num_heads
        in_bias = self.in_bias() if self.in_bias is not None else base.in_proj_bias[None]
        qkv = self._project(query, base.in_proj_weight, in_bias)
        if self.in_delta is not None:
            qkv = qkv + self.in_delta(query).to(qkv.dtype)
        q, k, v = qkv.view(n, length, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=base.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(n, length, dim)
        out_bias = self.out_bias() if self.out_bias is not None else base.out_proj.bias[None]
        return self._project(out, base.out_proj.weight, out_bias), None

    @staticmethod
    def _project(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if bias.shape[0] == 1:
            return F.linear(x, weight, bias[0])
        y = F.linear(x, weight)
        return y + _broadcast_rows(bias, y)


def tower_blocks(clip: PromptableCLIP) -> dict[str, nn.ModuleList]:
    """The residual blocks of each tower: {"text": ..., "vision": ...}."""
    return {"text": clip._text.transformer.resblocks, "vision": clip.model.visual.transformer.resblocks}

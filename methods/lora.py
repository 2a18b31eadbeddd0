"""LoRA for CLIP: CLIP-LoRA (Zanella & Ben Ayed, "Low-Rank Few-Shot Adaptation of
Vision-Language Models", CVPRW 2024), on the low-rank updates of Hu et al. (ICLR 2022).

Every query, key and value projection W (d x d) of every layer of both towers becomes

    W x + s B A dropout(x),    A: r x d,  B: d x r,  s = alpha / sqrt(r)  (or alpha / r)

with CLIP-LoRA's defaults: rank r = 2, alpha = 1, dropout 0.25 on the LoRA input only (one
mask per projection, training only), A ~ U(-1/sqrt(d), 1/sqrt(d)) (nn.Linear's init) and B = 0,
so at step 0 the model is zero-shot CLIP exactly.  The scaling: CLIP-LoRA's released code uses
s = alpha / sqrt(r) (`scaling: sqrt_rank`, the default here); Hu et al.'s LoRA and the issue's
formula use alpha / r (`scaling: rank`).  Text from the hand template ("a photo of a {}.").

Where we differ on purpose from the published code: CLIP-LoRA hard-codes the logit scale at
100 (CLIP's trained value for OpenAI's weights); we use the model's own `logit_scale`, as every
other method here does, so the method stays correct for weights trained to another scale.

open_clip's blocks use nn.MultiheadAttention with a fused in-projection [W_q; W_k; W_v]: each
block's `attn` is replaced, in a private structural copy of CLIP (methods/private_clip.py and methods/routed_layers.py, the shared
CLIP untouched), by a RoutedAttention that adds [s B_q A_q x; s B_k A_k x; s B_v A_v x] to the
fused projection.  Only A and B train.

Modes: MT (one set of updates for all tasks) and ST (one per task; every image row, and every
class-prompt row of the text pass, goes through its task's set in one batched pass).
Trainable parameters per set: 2 x 3 x r x (L_text d_text + L_vision d_vision); ViT-B/16, r = 2:
6 x 2 x (12 x 512 + 12 x 768) = 184,320 (0.123 % of CLIP) for MT, 737,280 for ST over 4 tasks.
"""
from __future__ import annotations

import math
import functools

import torch
from torch import nn

from bench.methods.registry import implements
from bench.methods.base import seeded_uniform
from bench.methods.routed_layers import RoutedAttention, tower_blocks
from bench.methods.task_weights import TowersWithTaskWeights


@implements("lora")
class LoRA(TowersWithTaskWeights):
    def __init__(self, clip, tasks, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        rank = cfg.rank
        self.scale = cfg.alpha / (rank ** 0.5 if cfg.scaling == "sqrt_rank" else rank)
        self.dropout = nn.Dropout(cfg.dropout)
        for tower, blocks in tower_blocks(self.clip).items():
            width = blocks[0].attn.embed_dim
            shape = (len(blocks), 3, rank, width)  # per layer: q, k, v
            down = torch.stack([seeded_uniform(shape, 1.0 / math.sqrt(width), seed, "lora", tower, "A", name)
                                for name in self.set_names])
            self.register_parameter(f"{tower}_A", nn.Parameter(down))  # (sets, L, 3, r, d)
            self.register_parameter(f"{tower}_B", nn.Parameter(  # (sets, L, 3, d, r)
                torch.zeros(len(self.set_names), len(blocks), 3, width, rank)))
            for layer, block in enumerate(blocks):
                block.attn = RoutedAttention(block.attn, in_delta=functools.partial(self.qkv_update, tower, layer))

    @classmethod
    def exact_over_processes(cls, cfg) -> bool:
        return cfg.dropout == 0  # dropout masks come from each rank's own generator

    def qkv_update(self, tower: str, layer: int, x: torch.Tensor) -> torch.Tensor:
        """[s B_q A_q x'; s B_k A_k x'; s B_v A_v x'] (N, L, 3d) for rows x (N, L, d), x' = dropout(x)
        drawn independently for q, k and v, with each row's set."""
        down = self.routing.pick(getattr(self, f"{tower}_A")[:, layer]).to(x.dtype)  # (1|N, 3, r, d)
        up = self.routing.pick(getattr(self, f"{tower}_B")[:, layer]).to(x.dtype)    # (1|N, 3, d, r)
        rows = "nlpd"
        if self.training and self.dropout.p > 0:  # one mask per projection: x' (N, L, 3, d)
            x = self.dropout(x.unsqueeze(2).expand(-1, -1, 3, -1))
        else:  # no dropout: the same x for q, k and v, not copied
            rows = "nld"
        if down.shape[0] == 1:
            low = torch.einsum(f"{rows},prd->nlpr", x, down[0])
            update = torch.einsum("nlpr,pdr->nlpd", low, up[0])
        else:
            low = torch.einsum(f"{rows},nprd->nlpr", x, down)
            update = torch.einsum("nlpr,npdr->nlpd", low, up)
        return self.scale * update.flatten(2)

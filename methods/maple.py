"""MaPLe: Multi-modal Prompt Learning (Khattak, Rasheed, Maaz, Khan, Khan; CVPR 2023).

Deep text context coupled to deep visual prompts.  For each prompted layer j = 0..D-1
(D = `prompt_depth`; null: MaPLe's 9, capped at the depth of a shallower model) there is a text prompt T_j (n x d_text, n = `n_ctx`,
default 2) and a coupling Linear_j(d_text -> d_vision); the layer's visual prompt is
V_j = T_j W_j^T + b_j (n x d_vision), so the image prompts are a function of the text ones.

* text, layer 0: the tokenized prompt is "a photo of a {class}." (`ctx_init` + class) and
  T_0 replaces its tokens 1..n (here "a photo"), the rest stays fixed words; T_0 is
  initialised from those tokens' word embeddings (without `ctx_init`: "X X {class}." and
  N(0, 0.02^2)).  Layers j >= 1: T_j overwrites hidden states 1..n, init N(0, 0.02^2).
* vision, layer 0: V_0 is appended after the patch tokens (no positional embedding,
  before ln_pre); layers j >= 1: V_j replaces the last n hidden states.
* couplings: PyTorch's Linear init U(-1/sqrt(d_text), 1/sqrt(d_text)); as in MaPLe's code
  layer 0 has its own draw and layers 1..D-1 start as copies of one draw.

Modes: MT (one set for all tasks) and ST (one set per task).
Trainable parameters per set: D n d_text + D (d_text d_vision + d_vision).  ViT-B/16
defaults: 2x512 + 8x2x512 + 9x(512x768 + 768) = 3,555,072 for MT (2.3761 % of CLIP's
149,620,737), 14,220,288 (9.5042 %) for ST over Office-Home's 4 tasks.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from bench.clip import TowerPrompts
from bench.methods.base import Method, prompted_layers, seeded_normal, seeded_uniform
from bench.methods.registry import implements


@implements("maple")
class MaPLe(Method):

    def __init__(self, clip, tasks, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        set_names = self.set_names
        self.n_ctx = cfg.n_ctx
        self.ctx_init = cfg.ctx_init
        max_depth = min(clip.text_depth, clip.vision_depth)
        # null: MaPLe's 9 layers, or every layer of a model shallower than that (tiny test models)
        self.prompt_depth = prompted_layers(cfg, min(9, max_depth), max_depth, "maple")
        d_text, d_vision, depth = clip.text_width, clip.vision_width, self.prompt_depth
        std, bound = cfg.init_std, 1 / math.sqrt(d_text)
        contexts, weights, biases = [], [], []
        for name in set_names:
            parts = (seed, "maple", name)
            first = (self.word_embeddings(self.ctx_init, self.n_ctx) if self.ctx_init
                     else seeded_normal((self.n_ctx, d_text), std, *parts, "ctx0"))
            deeper = seeded_normal((depth - 1, self.n_ctx, d_text), std, *parts, "deep_ctx")
            contexts.append(torch.cat([first[None], deeper]))
            w0 = seeded_uniform((1, d_vision, d_text), bound, *parts, "proj0_weight")
            b0 = seeded_uniform((1, d_vision), bound, *parts, "proj0_bias")
            w = seeded_uniform((1, d_vision, d_text), bound, *parts, "proj_weight")
            b = seeded_uniform((1, d_vision), bound, *parts, "proj_bias")
            weights.append(torch.cat([w0, w.expand(depth - 1, -1, -1)]))
            biases.append(torch.cat([b0, b.expand(depth - 1, -1)]))
        self.text_context = nn.Parameter(torch.stack(contexts))        # (sets, D, n, d_text)
        self.coupling_weight = nn.Parameter(torch.stack(weights))      # (sets, D, d_vision, d_text)
        self.coupling_bias = nn.Parameter(torch.stack(biases))         # (sets, D, d_vision)

    def prompt_texts(self, task: int) -> list[str]:
        prefix = self.ctx_init or " ".join(["X"] * self.n_ctx)
        return [f"{prefix} {name}." for name in self.tasks[task].classnames]

    def visual_prompts(self) -> torch.Tensor:
        """(sets, D, n, d_vision): V_j = T_j W_j^T + b_j for every set and layer."""
        return (torch.einsum("sjnt,sjvt->sjnv", self.text_context, self.coupling_weight)
                + self.coupling_bias[:, :, None])

    def text_prompts(self, tokens, row_task: torch.Tensor, row_class) -> TowerPrompts:
        ctx = self.select_sets(self.text_context, row_task)
        return TowerPrompts(input=ctx[:, 0], deep={j: ctx[:, j] for j in range(1, self.prompt_depth)})

    def image_prompts(self, task_ids: torch.Tensor) -> TowerPrompts:
        visual = self.select_sets(self.visual_prompts(), task_ids)
        return TowerPrompts(input=visual[:, 0], deep={j: visual[:, j] for j in range(1, self.prompt_depth)})

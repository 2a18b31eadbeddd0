"""CoOp: Context Optimization (Zhou, Yang, Loy, Liu; "Learning to Prompt for
Vision-Language Models", IJCV 2022).

The text prompt of class c is  [SOS] v_1 ... v_M [CLASS_c] . [EOT]  where the context
vectors v_1..v_M (M = `n_ctx`, width d_text) are the only parameters; the class token
sits at the end.  Context is initialised N(0, 0.02^2) or, with `ctx_init`, from the word
embeddings of that text (then M = its number of tokens).  The image tower is untouched.

Modes: MT (one context shared by all tasks) and ST (one context per task).
Trainable parameters: M x d_text per set, so MT = M d_text, ST = T M d_text
(ViT-B/16, M=16: 8,192 for MT, 32,768 for ST over Office-Home's 4 tasks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from bench.clip import TowerPrompts
from bench.config import MethodConfig, setting
from methods.base import Method, seeded_normal
from methods.registry import register_method


@dataclass
class CoOpConfig(MethodConfig):
    n_ctx: int = setting(16, "context tokens (ignored with ctx_init)", min=1)
    ctx_init: Optional[str] = setting(None, 'e.g. "a photo of a" (then n_ctx = its token count); null: N(0, 0.02)')


@register_method("coop", config=CoOpConfig, label="CoOp")
class CoOp(Method):
    modes = ("mt", "st")
    image_depends_on_parameters = False

    def __init__(self, clip, tasks, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        set_names = self.use_sharing_sets()
        if cfg.ctx_init:
            context = self.word_embeddings(cfg.ctx_init)
            self.n_ctx = context.shape[0]
            contexts = [context.clone() for _ in set_names]
        else:
            self.n_ctx = cfg.n_ctx
            contexts = [seeded_normal((self.n_ctx, clip.text_width), 0.02, seed, "coop", name)
                        for name in set_names]
        self.context = nn.Parameter(torch.stack(contexts))  # (sets, M, d_text)

    def text_key(self, task: int):
        return self.set_of_task[task]

    def prompt_texts(self, task: int) -> list[str]:
        placeholder = " ".join(["X"] * self.n_ctx)
        return [f"{placeholder} {name}." for name in self.tasks[task].classnames]

    def text_prompts(self, row_task: torch.Tensor) -> TowerPrompts:
        return TowerPrompts(input=self.select_sets(self.context, row_task))

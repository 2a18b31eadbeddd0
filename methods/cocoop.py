"""CoCoOp: Conditional Context Optimization (Zhou, Yang, Loy, Liu; "Conditional Prompt Learning
for Vision-Language Models", CVPR 2022).

CoOp's context v_1..v_M (M = 4, initialised from the words "a photo of a") plus a meta-net
h = Linear(e, e/16) -> ReLU -> Linear(e/16, d_text) (e: joint embedding width) that turns the
normalised image feature x of each image into a bias added to every context token:

    prompt_c(x) = [SOS] v_1 + h(x) ... v_M + h(x) [CLASS_c] . [EOT]
    logit_c(x)  = logit_scale * cos(x, g(prompt_c(x)))

so the class text features depend on the image.  The image tower is frozen and unprompted: its
features are computed without autograd and cached per sample where the images are fixed.  The
cost is a text-tower pass per image: one pass per step holds the classes of every image of
the step (rows padded to the largest class count, padded columns masked to -inf as always),
instead of the reference's loop over images.  Meta-net init: nn.Linear's default,
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases; `ctx_init: null` draws the context
from N(0, 0.02^2) with `n_ctx` tokens instead.

Where we differ on purpose from the published code: as for CoOp (methods/coop.py), the
reference counts `ctx_init` in words and keeps extra sub-word tokens fixed, while we train
every BPE token of it (equal for the default "a photo of a", different for words that split).

Modes: MT (one context and meta-net for all tasks) and ST (one per task).
Trainable parameters per set: M d_text + (e e/16 + e/16) + (e/16 d_text + d_text); ViT-B/16
(e = d_text = 512): 2,048 + 16,416 + 16,896 = 35,360 (0.024 % of CLIP) for MT, 141,440 for ST.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.clip import TowerPrompts
from bench.methods.base import Method, seeded_normal, seeded_uniform
from bench.methods.registry import implements
from bench.methods.routed_layers import per_row_linear


@implements("cocoop")
class CoCoOp(Method):
    image_depends_on_parameters = False  # the meta-net reads the frozen tower's feature

    def __init__(self, clip, tasks, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        set_names = self.set_names
        if cfg.ctx_init:
            context = self.word_embeddings(cfg.ctx_init)
            contexts = [context.clone() for _ in set_names]
        else:
            contexts = [seeded_normal((cfg.n_ctx, clip.text_width), 0.02, seed, "cocoop", name) for name in set_names]
        self.context = nn.Parameter(torch.stack(contexts))  # (sets, M, d_text)
        self.n_ctx = self.context.shape[1]
        self._padded_tokens: torch.Tensor | None = None
        embed, width = clip.model.visual.output_dim, clip.text_width
        hidden = embed // cfg.meta_reduction

        def linear_init(shape, fan_in, part):
            return nn.Parameter(torch.stack([seeded_uniform(shape, 1.0 / math.sqrt(fan_in), seed, "cocoop", part, name)
                                             for name in set_names]))
        self.meta_w1, self.meta_b1 = linear_init((hidden, embed), embed, "w1"), linear_init((hidden,), embed, "b1")
        self.meta_w2, self.meta_b2 = linear_init((width, hidden), hidden, "w2"), linear_init((width,), hidden, "b2")

    def prompt_texts(self, task: int) -> list[str]:
        placeholder = " ".join(["X"] * self.n_ctx)
        return [f"{placeholder} {name}." for name in self.tasks[task].classnames]

    def meta_bias(self, image: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """h(x) (B, d_text) for normalised image features x, each with its task's meta-net."""
        pick = lambda p: self.select_sets(p, task_ids)  # noqa: E731
        hidden = F.relu(per_row_linear(image, pick(self.meta_w1), pick(self.meta_b1)))
        return per_row_linear(hidden, pick(self.meta_w2), pick(self.meta_b2))

    def class_tokens(self) -> torch.Tensor:
        """(T, C_max, L) CPU tokens of every task's class prompts, padded with the task's first
        class (masked out later), cut after the last EOT where the speed-ups allow."""
        if self._padded_tokens is None:  # the prompts never change: tokenized once
            rows = []
            for task in range(len(self.tasks)):
                tokens = self.tokenize_task(task)
                rows.append(torch.cat([tokens, tokens[:1].expand(self.max_classes - len(tokens), -1)]))
            self._padded_tokens = torch.stack(rows)
            self.clip.check_prompt_room(self._padded_tokens.flatten(0, 1), self.n_ctx)
        n_tasks = len(self.tasks)
        return self.truncated(self._padded_tokens.flatten(0, 1)).view(n_tasks, self.max_classes, -1)

    def forward(self, images: torch.Tensor, task_ids: torch.Tensor,
                sample_ids: tuple[str, torch.Tensor] | None = None) -> torch.Tensor:
        image = self.image_embedding(images, task_ids, sample_ids)   # (B, e), normalised
        context = self.select_sets(self.context, task_ids) + self.meta_bias(image, task_ids)[:, None]
        n_classes = self.max_classes
        tokens = self.class_tokens().to(image.device)[task_ids].flatten(0, 1)         # (B C, L)
        prompts = TowerPrompts(input=context.repeat_interleave(n_classes, dim=0))    # (B C, M, d)
        text = self.clip.encode_text(tokens, prompts, truncate=False).view(len(images), n_classes, -1)
        logits = torch.einsum("be,bce->bc", image.to(text.dtype), text)
        logits = self.logit_scales(task_ids).to(logits.dtype) * logits
        return logits.masked_fill(~self.class_mask[task_ids], float("-inf"))

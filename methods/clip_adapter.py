"""CLIP-Adapter (Gao, Geng, Zhang, Ma, Fang, Zhang, Li, Qiao; "CLIP-Adapter: Better
Vision-Language Models with Feature Adapters", IJCV 2024), visual adapter.

A bottleneck MLP on the image feature f (the projected, *unnormalised* CLIP image embedding,
width e), blended with f by the residual ratio a = `ratio` (0.2):

    A(f) = ReLU(W_up ReLU(W_down f)),   W_down: e/4 x e,  W_up: e x e/4  (no biases)
    f'   = a A(f) + (1 - a) f,          logits = logit_scale * cos(f', text)

As in the reference code, the blend acts on the unnormalised feature and f' is normalised
afterwards (not f before the adapter).  Text from the hand template ("a photo of a {}."),
class features computed once.  The image tower is frozen and unprompted, so f is computed
without autograd and cached per sample where the images are fixed (bench/speedups.py);
only the adapter runs with autograd.  Init: nn.Linear's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

Where we differ on purpose from the published code: its trainer hard-codes the adapter's
width at 1024 (RN50's embedding width); we read the width e from the model
(`visual.output_dim`), so the adapter fits any CLIP (512 for ViT-B/16).

Modes: MT (one adapter for all tasks) and ST (one per task, applied per image).
Trainable parameters per set: 2 e^2 / `reduction`; ViT-B/16 (e = 512, reduction 4):
2 x 512 x 128 = 131,072 (0.088 % of CLIP) for MT, 524,288 for ST over 4 tasks.
"""
from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn

from bench.methods.base import TemplateMethod, seeded_uniform
from bench.methods.registry import implements
from bench.methods.routed_layers import per_row_linear


@implements("clip_adapter")
class CLIPAdapter(TemplateMethod):
    text_depends_on_parameters = False
    image_depends_on_parameters = False  # of the frozen CLIP feature f; the adapter comes after

    def __init__(self, clip, tasks, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        set_names = self.set_names
        self.ratio = cfg.ratio
        width = clip.model.visual.output_dim
        hidden = width // cfg.reduction
        self.down = nn.Parameter(torch.stack([seeded_uniform((hidden, width), 1.0 / math.sqrt(width), seed, "adapter", "down", n)
                                              for n in set_names]))  # (sets, e/4, e)
        self.up = nn.Parameter(torch.stack([seeded_uniform((width, hidden), 1.0 / math.sqrt(hidden), seed, "adapter", "up", n)
                                            for n in set_names]))    # (sets, e, e/4)

    def image_features(self, images: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """The frozen tower's unnormalised feature f (what the cache keeps)."""
        return self.clip.encode_image(images, normalize=False)

    def adapt_image(self, features: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """f' = a ReLU(W_up ReLU(W_down f)) + (1 - a) f, each image with its task's adapter,
        normalised after the blend."""
        down, up = self.select_sets(self.down, task_ids), self.select_sets(self.up, task_ids)
        adapted = F.relu(per_row_linear(F.relu(per_row_linear(features, down)), up))
        return F.normalize(self.ratio * adapted + (1 - self.ratio) * features, dim=-1)

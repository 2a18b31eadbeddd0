"""VPT: Visual Prompt Tuning (Jia, Tang, Chen, Cardie, Belongie, Hariharan, Lim; ECCV 2022),
as the CLIP-VPT baseline of MaPLe's code base (Khattak et al., CVPR 2023).

Only the image tower is prompted: M = `n_tokens` learnable tokens P_0 (M x d_vision) are
appended after the patch tokens at the input (after the positional embedding, so they
carry no position, and before ln_pre).  `deep: true` gives every prompted layer
j = 1..D-1 (D = `prompt_depth`, default: every vision layer) fresh tokens P_j that replace
the previous layer's prompt outputs; `deep: false` (shallow) prompts the input only (D = 1).
The text side is the frozen hand template ("a photo of a {}."), so class text features are
computed once and reused.  Init: every prompt entry N(0, 0.02^2), as MaPLe's VPT code.

Modes: MT (one prompt set for all tasks) and ST (one set per task).
Trainable parameters: D M d_vision per set.  ViT-B/16 defaults (M = 8, deep over D = 12):
8 x 768 x 12 = 73,728 for MT (0.0493 % of CLIP's 149,620,737), 294,912 (0.1971 %) for ST over
Office-Home's 4 tasks; shallow: 6,144 per set.  `n_tokens: 0` is zero-shot CLIP exactly.
"""
from __future__ import annotations

import torch
from torch import nn

from bench.clip import TowerPrompts
from bench.methods.base import TemplateMethod, prompted_layers, seeded_normal
from bench.methods.registry import implements


@implements("vpt")
class VPT(TemplateMethod):
    text_depends_on_parameters = False

    def __init__(self, clip, tasks, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        set_names = self.set_names
        self.n_tokens = cfg.n_tokens
        self.prompt_depth = prompted_layers(cfg, clip.vision_depth, clip.vision_depth, "vpt") if cfg.deep else 1
        std = cfg.init_std
        shape = (self.prompt_depth, self.n_tokens, clip.vision_width)
        if self.n_tokens:  # (sets, D, M, d_v)
            self.prompts = nn.Parameter(torch.stack(
                [seeded_normal(shape, std, seed, "vpt", name) for name in set_names]))
        else:  # nothing to train: zero-shot CLIP
            self.register_parameter("prompts", None)

    def image_prompts(self, task_ids: torch.Tensor) -> TowerPrompts | None:
        if self.n_tokens == 0:
            return None
        prompts = self.select_sets(self.prompts, task_ids)
        return TowerPrompts(input=prompts[:, 0],
                            deep={j: prompts[:, j] for j in range(1, self.prompt_depth)})

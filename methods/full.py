"""Full fine-tuning of CLIP: every weight of both towers (and the logit scale) is trained,
class text features come from the hand template ("a photo of a {}.").

Modes: MT (one model for all tasks) and ST (one copy of CLIP per task).
Trainable parameters: all of CLIP per set (ViT-B/16: 149,620,737 for MT, 4x for ST on
Office-Home).  Use AdamW with a small learning rate (configs/method/full.yaml).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from methods.base import Method, TemplateConfig
from methods.registry import register_method


@register_method("full", config=TemplateConfig, label="Full FT")
class FullFineTuning(Method):
    modes = ("mt", "st")

    def __init__(self, clip, tasks, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        set_names = self.use_sharing_sets()
        if self.mode == "mt":
            clip.model.requires_grad_(True)
            self.copies = None
        else:
            self.copies = nn.ModuleList(copy.deepcopy(clip) for _ in set_names)
            for replica in self.copies:
                replica.model.requires_grad_(True)

    def _clip_of(self, task: int):
        return self.clip if self.copies is None else self.copies[self.set_of_task[task]]

    def image_features(self, images: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        if self.copies is None:
            return self.clip.encode_image(images)
        out = None
        for task in range(len(self.tasks)):
            rows = (task_ids == task).nonzero().flatten()
            if rows.numel():
                features = self._clip_of(task).encode_image(images[rows])
                out = features.new_zeros(len(images), features.shape[-1]) if out is None else out
                out = out.index_copy(0, rows, features)
        return out

    def logit_scales(self, task_ids: torch.Tensor) -> torch.Tensor:
        if self.copies is None:
            return self.clip.logit_scale
        scales = torch.stack([self._clip_of(t).logit_scale for t in range(len(self.tasks))])
        return scales[task_ids].unsqueeze(1)

    def compute_class_features(self) -> torch.Tensor:
        rows = []
        for task in range(len(self.tasks)):
            tokens = self.truncated(self.tokenize_task(task)).to(self.class_mask.device)
            features = self._clip_of(task).encode_text(tokens, truncate=False)
            pad = features.new_zeros(self.max_classes - len(features), features.shape[-1])
            rows.append(torch.cat([features, pad]))
        return torch.stack(rows)

"""Full fine-tuning of CLIP: every weight of both towers (and the logit scale) is trained,
class text features come from the hand template ("a photo of a {}.").

Modes: MT (one model for all tasks) and ST (one copy of CLIP per task).  The trained models
are private copies of CLIP, weights included (methods/private_clip.py), so the shared CLIP a
run builds stays bit-identical, as for every other method.
Trainable parameters: all of CLIP per set (ViT-B/16: 149,620,737 for MT, 4x for ST on
Office-Home).  Use AdamW with a small learning rate (configs/method/full.yaml).
"""
from __future__ import annotations

import torch
from torch import nn

from bench.methods.base import TemplateMethod
from bench.methods.private_clip import private_weights
from bench.methods.registry import implements


@implements("full")
class FullFineTuning(TemplateMethod):

    def __init__(self, clip, tasks, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        trained = [private_weights(clip) for _ in self.set_names]
        for replica in trained:
            replica.model.requires_grad_(True)
        if self.mode == "mt":  # the one trained model is the method's CLIP (counts, tokenizer)
            self.clip, self.copies = trained[0], None
        else:  # the shared CLIP stays, frozen, for the counts and the tokenizer
            self.copies = nn.ModuleList(trained)

    @property
    def models(self) -> list:
        """The trained CLIP of each parameter set."""
        return [self.clip] if self.copies is None else list(self.copies)

    def task_readers(self) -> dict:
        """ST: copy s's weights are read by the tasks of set s (MT: one copy, every task)."""
        if self.copies is None:
            return {}
        return {name: self.tasks_of_set(int(name.split(".")[1])) for name, _ in self.trainable_parameters()
                if name.startswith("copies.")}

    def _clip_of(self, task: int):
        return self.models[self.set_of_task[task]]

    def _rows_by_set(self, row_task: torch.Tensor):
        """(set, rows of that set) for the sets present, in set order."""
        sets = self.set_index[row_task]
        for index in range(len(self.models)):
            rows = (sets == index).nonzero().flatten()
            if rows.numel():
                yield index, rows

    def image_features(self, images: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        if self.copies is None:
            return self.clip.encode_image(images)
        out = None
        for index, rows in self._rows_by_set(task_ids):
            features = self.models[index].encode_image(images[rows])
            out = features.new_zeros(len(images), features.shape[-1]) if out is None else out
            out = out.index_copy(0, rows, features)
        return out

    def text_features(self, tokens: torch.Tensor, row_task: torch.Tensor, row_class: torch.Tensor) -> torch.Tensor:
        device = self.class_mask.device
        if self.copies is None:
            return self.clip.encode_text(tokens.to(device), truncate=False)
        out = None
        for index, rows in self._rows_by_set(row_task):
            features = self.models[index].encode_text(tokens[rows.cpu()].to(device), truncate=False)
            out = features.new_zeros(len(tokens), features.shape[-1]) if out is None else out
            out = out.index_copy(0, rows, features)
        return out

    def logit_scales(self, task_ids: torch.Tensor) -> torch.Tensor:
        if self.copies is None:
            return self.clip.logit_scale
        scales = torch.stack([self._clip_of(t).logit_scale for t in range(len(self.tasks))])
        return scales[task_ids].unsqueeze(1)

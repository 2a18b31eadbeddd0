"""Zero-shot CLIP (Radford et al., ICML 2021): nothing is trained.

Class c of a task is represented by the text feature of `template.format(classname)`
("a photo of a {}." by default); with `templates` (a list) the normalised features of all
templates are averaged and renormalised (prompt ensembling).  Trainable parameters: 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from bench.config import setting
from methods.base import Method, TemplateConfig
from methods.registry import register_method


@dataclass
class ZeroShotConfig(TemplateConfig):
    templates: Optional[list[str]] = setting(None, "several templates: their features are averaged (ensemble)")


@register_method("zeroshot", config=ZeroShotConfig, label="Zero-shot")
class ZeroShot(Method):
    modes = ("mt",)
    text_depends_on_parameters = False
    image_depends_on_parameters = False

    def text_key(self, task: int):
        return "template"

    def compute_class_features(self) -> torch.Tensor:
        templates = self.cfg.templates or [self.cfg.template]
        features = None
        for template in templates:
            self._template = template
            one = super().compute_class_features()
            features = one if features is None else features + one
        return F.normalize(features, dim=-1) if len(templates) > 1 else features

    def prompt_texts(self, task: int) -> list[str]:
        template = getattr(self, "_template", self.cfg.template)
        return [template.format(name) for name in self.tasks[task].classnames]

"""Zero-shot CLIP (Radford et al., ICML 2021): nothing is trained.

Class c of a task is represented by the text feature of `template.format(classname)`
("a photo of a {}." by default); with `templates` (a list) the normalised features of all
templates are averaged and renormalised (prompt ensembling).  Trainable parameters: 0.
"""
from __future__ import annotations

from bench.methods.base import TemplateMethod
from bench.methods.registry import implements


@implements("zeroshot")
class ZeroShot(TemplateMethod):
    text_depends_on_parameters = False
    image_depends_on_parameters = False

    def templates(self) -> list[str]:
        return list(self.cfg.templates or [self.cfg.template])

"""The base of methods whose trained weights sit inside CLIP's towers (bitfit, lora)."""
from __future__ import annotations

from bench.methods.base import TemplateMethod
from bench.methods.private_clip import private_towers
from bench.methods.routed_layers import SetRouting


class TowersWithTaskWeights(TemplateMethod):
    """Base of methods whose trained weights sit inside the towers (lora, bitfit): a private
    structural copy of CLIP whose modules read per-task weights through `self.routing`; each
    tower pass routes its rows (images, or class prompts) to their tasks' sets."""

    modes = ("mt", "st")

    def __init__(self, clip, tasks, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        self.clip = private_towers(clip)  # replaced modules never reach the shared CLIP
        self.routing = SetRouting()

    def text_features(self, tokens, row_task, row_class):
        with self.routing(self.set_index[row_task]):
            return super().text_features(tokens, row_task, row_class)

    def image_features(self, images, task_ids):
        with self.routing(self.set_index[task_ids]):
            return self.clip.encode_image(images)

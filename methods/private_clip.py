"""Private copies of a PromptableCLIP, so a method can change modules or train weights without
touching the shared CLIP that other methods (or MmAP's grouping warm-up) use in the same process.

* `private_towers(clip)`: new module objects over the *same* frozen weight tensors (no memory
  for weights): a method may replace modules (bitfit's and lora's routed layers).
* `private_weights(clip)`: a full copy, weights included, for methods that train the weights
  themselves (full fine-tuning).
"""
from __future__ import annotations

import copy

from bench.clip import PromptableCLIP


def private_towers(clip: PromptableCLIP) -> PromptableCLIP:
    """A PromptableCLIP over new module objects that share every parameter and buffer tensor
    with `clip`: replacing its modules leaves `clip` as it was."""
    shared = {id(t): t for t in [*clip.model.parameters(), *clip.model.buffers()]}
    return _like(clip, copy.deepcopy(clip.model, memo=shared))


def private_weights(clip: PromptableCLIP) -> PromptableCLIP:
    """A PromptableCLIP over a deep copy of `clip`'s model, weights included: training it leaves
    `clip` bit-identical."""
    return _like(clip, copy.deepcopy(clip.model))


def _like(clip: PromptableCLIP, model) -> PromptableCLIP:
    """A PromptableCLIP over `model` that runs as `clip` does (gradient checkpointing too)."""
    copied = PromptableCLIP(model, clip.tokenizer, name=clip.name, pretrained=clip.pretrained)
    copied.grad_checkpointing = clip.grad_checkpointing
    return copied

"""BitFit (Ben Zaken, Goldberg, Ravfogel; "BitFit: Simple Parameter-efficient Fine-tuning for
Transformer-based Masked Language-models", ACL 2022) on both CLIP towers.

Every bias of both towers trains, initialised at its pretrained value; every other weight stays
frozen.  The biases that count, per residual block: the attention in-projection bias (3d, q|k|v
fused), the attention out-projection bias (d), the two MLP biases (4d and d) and the two
LayerNorm biases (d each); outside the blocks: ln_pre and ln_post of the image tower and
ln_final of the text tower.  Not counted, because they are not biases: the patch embedding
(a convolution without bias in CLIP ViTs), class and positional embeddings, the token
embedding, both projections (bias-free matrices), LayerNorm weights and the logit scale.
Text from the hand template ("a photo of a {}.").

Modes: MT (one bias set for all tasks) and ST (one per task).  The biases live on the method,
stacked (sets, ...); open_clip's Linear, LayerNorm and attention modules are replaced, in a
private structural copy of CLIP (methods/private_clip.py, methods/routed_layers.py), by modules that add each row's set, so
ST needs no copy of CLIP per task and routes every image and class prompt in one pass.
Trainable parameters per set: per block 3d + d + 4d + d + 2d = 11d, plus 2 d_vision (ln_pre,
ln_post) and d_text (ln_final): 11 (L_v d_v + L_t d_t) + 2 d_v + d_t.  ViT-B/16:
11 x 12 x 768 + 2 x 768 + 11 x 12 x 512 + 512 = 171,008 (0.114 % of CLIP) for MT, 684,032 for
ST over 4 tasks.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from bench.clip import ModelError
from bench.methods.registry import implements
from bench.methods.routed_layers import RoutedAttention, RoutedLayerNorm, RoutedLinear
from bench.methods.task_weights import TowersWithTaskWeights


@implements("bitfit")
class BitFit(TowersWithTaskWeights):
    def __init__(self, clip, tasks, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        self.biases = nn.ParameterDict()  # key: the bias's name in open_clip's model, "." -> "_"
        model = self.clip.model
        replacements = {}
        for name, module in model.named_modules():
            if isinstance(module, nn.MultiheadAttention):
                replacements[name] = RoutedAttention(module, in_bias=self._bias(f"{name}.in_proj_bias"),
                                                     out_bias=self._bias(f"{name}.out_proj.bias"))
            elif isinstance(module, nn.LayerNorm) and module.bias is not None:
                replacements[name] = RoutedLayerNorm(module, self._bias(f"{name}.bias"))
            elif (isinstance(module, nn.Linear) and module.bias is not None
                  and not name.endswith("attn.out_proj")):
                replacements[name] = RoutedLinear(module, self._bias(f"{name}.bias"))
        for name, replacement in replacements.items():
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, replacement)
        expected = {n.replace(".", "_") for n, _ in clip.model.named_parameters()
                    if n.endswith("bias") and n != "logit_bias"}  # logit_bias: SigLIP's, not a tower's
        if expected != set(self.biases):
            raise ModelError(f"BitFit does not know how to train the biases "
                             f"{sorted(expected - set(self.biases))[:4]} of {clip.name}; it supports "
                             "open_clip's CLIP ViT blocks (Linear, LayerNorm, nn.MultiheadAttention).")

    def _bias(self, name: str):
        """Stack the pretrained bias `name` once per set; return its routed source."""
        pretrained = self.clip.model.get_parameter(name).detach()
        key = name.replace(".", "_")
        self.biases[key] = nn.Parameter(pretrained.clone().expand(len(self.set_names), -1).clone())
        return functools.partial(self._routed, key)

    def _routed(self, key: str) -> torch.Tensor:
        return self.routing.pick(self.biases[key])

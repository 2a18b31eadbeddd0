"""One frozen open_clip model with prompt hooks in both towers.

`PromptableCLIP` drives an unmodified open_clip ViT model block by block so that methods
can insert or replace prompt tokens at any layer of either tower without forking
open_clip's code.  With no prompts its features equal open_clip's own `encode_text` /
`encode_image` (tested).  All widths and depths are read from the model.

Where prompts go (MaPLe's convention, shared by CoOp, VPT and MmAP here):

* text, layer 0: `TowerPrompts.input` (N, n, d_text) replaces the token embeddings at
  positions 1..n (placeholder tokens right after SOS) *before* the positional embedding
  is added, so prompts get positions like ordinary words (CoOp); with `input_positions`
  (N, n) row r's prompts replace positions `input_positions[r]` instead (CoOp's class name
  in front of or inside its context).
* text, layer i >= 1: `TowerPrompts.deep[i]` overwrites hidden states 1..n before block i.
* vision, layer 0: `TowerPrompts.input` (B, n, d_vision) is appended after the patch tokens
  *after* the positional embedding (prompts carry no position) and before `ln_pre`.
* vision, layer i >= 1: `TowerPrompts.deep[i]` overwrites the last n hidden states.

A prompt tensor's leading dimension is either the batch size or 1 (broadcast).

Blocks run through `bench.blocks.run_block` (open_clip's arithmetic without its strided
batched matmul; see there); with the speed-ups on (bench/speedups.py) deep prompts are
written in place and each tower's last block runs at its pooled positions only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from bench.blocks import run_block
from bench.errors import UserError
from bench.speedups import SPEEDUPS


class ModelError(UserError):
    """A model that cannot be built or prompted (one paragraph: what, why, how to fix)."""


@dataclass
class TowerPrompts:
    """Prompt tokens for one tower: inserted at the input and/or replaced at deeper layers
    (where: the module docstring)."""

    input: torch.Tensor | None = None
    deep: dict[int, torch.Tensor] = field(default_factory=dict)
    #: text only, host tensor (N, n): the positions each row's input prompts replace (None: 1..n)
    input_positions: torch.Tensor | None = None

    @property
    def n_tokens(self) -> int:
        if self.input is not None:
            return self.input.shape[1]
        return next(iter(self.deep.values())).shape[1] if self.deep else 0

    def check(self, depth: int, width: int, tower: str) -> None:
        n = self.n_tokens
        for layer, tokens in self.deep.items():
            if not 1 <= layer < depth:
                raise ModelError(
                    f"A deep {tower} prompt was given for layer {layer}, but the {tower} "
                    f"transformer has layers 0..{depth - 1} and deep prompts replace layers "
                    f"1..{depth - 1} (layer 0 is the input prompt). Lower the prompt depth.")
            if tokens.shape[1] != n:
                raise ModelError(f"{tower} prompts must keep one length across layers: "
                                 f"layer {layer} has {tokens.shape[1]} tokens, expected {n}.")
        for tokens in [self.input, *self.deep.values()]:
            if tokens is not None and tokens.shape[-1] != width:
                raise ModelError(f"{tower} prompt width {tokens.shape[-1]} does not match the "
                                 f"model's {tower} width {width}.")


def _expand(prompt: torch.Tensor, batch: int, dtype: torch.dtype) -> torch.Tensor:
    return prompt.to(dtype).expand(batch, -1, -1) if prompt.shape[0] == 1 else prompt.to(dtype)


def _put(x: torch.Tensor, prompt: torch.Tensor, start: int) -> torch.Tensor:
    """x with positions start..start+n replaced by `prompt` (N or 1, n, D).  Speed-up: written
    in place (x is a fresh block output or embedding that autograd has not saved; if it had,
    backward would raise, not mis-compute); baseline: a new tensor per layer, as torch.cat."""
    n = prompt.shape[1]
    if SPEEDUPS.enabled:
        x[:, start:start + n] = prompt.to(x.dtype)
        return x
    return torch.cat([x[:, :start], _expand(prompt, x.shape[0], x.dtype), x[:, start + n:]], 1)


def _scatter(x: torch.Tensor, prompt: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x with row r's positions `positions[r]` replaced by `prompt[r]` (N or 1, n, D)."""
    index = positions.to(x.device, non_blocking=True)[..., None].expand(-1, -1, x.shape[-1])
    return x.scatter(1, index, _expand(prompt, x.shape[0], x.dtype))


def _run_blocks(blocks: nn.ModuleList, x: torch.Tensor, deep: dict[int, torch.Tensor], start: int,
                mask: torch.Tensor | None, rows: torch.Tensor | None, checkpointed: bool = False) -> torch.Tensor:
    """The tower's blocks in turn, deep prompts replacing positions start.. before their layer;
    with `rows`, the last block's output at those positions only (N, 1, D).  `checkpointed`:
    each block's activations are recomputed in backward instead of kept (open_clip's
    grad_checkpointing, which our block loop bypasses; exact: the same arithmetic, with the
    random generator's state replayed for dropout)."""
    for i, block in enumerate(blocks):
        if i in deep:
            x = _put(x, deep[i], start)
        last = rows if i == len(blocks) - 1 else None
        x = checkpoint(run_block, block, x, mask, last, use_reentrant=False) if checkpointed else \
            run_block(block, x, mask, last)
    return x


class PromptableCLIP(nn.Module):
    """A frozen open_clip CLIP (ViT image tower, causal text tower) with prompt hooks."""

    def __init__(self, model: nn.Module, tokenizer, name: str = "", pretrained: str = "none"):
        super().__init__()
        text = model.text if hasattr(model, "text") else model
        if not hasattr(model.visual, "conv1") or not hasattr(model.visual, "class_embedding"):
            raise ModelError(
                f"Model '{name}' has a {type(model.visual).__name__} image tower; prompt methods "
                "need an open_clip VisionTransformer (ViT-*). Choose a ViT architecture with "
                "model.arch=ViT-B-16 (or any open_clip ViT config).")
        if getattr(text, "cls_emb", None) is not None or getattr(text, "attn_mask", None) is None:
            raise ModelError(
                f"Model '{name}' has a non-causal text tower; CLIP prompt learning needs the causal "
                "CLIP text transformer pooled at EOT. Choose an open_clip CLIP ViT architecture.")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.pretrained = pretrained
        self.grad_checkpointing = False  # model.grad_checkpointing: set by the run wiring
        self._pool_type = getattr(text, "text_pool_type", getattr(text, "pool_type", "argmax"))
        self._eos_id = getattr(text, "text_eos_id", getattr(text, "eos_id", None))

    def _checkpointed(self) -> bool:
        return self.grad_checkpointing and torch.is_grad_enabled()

    @property
    def _text(self) -> nn.Module:
        # The text tower's modules sit on the CLIP itself (CLIP) or under .text (CustomTextCLIP);
        # a property, not an attribute, so they are not registered twice in the state dict.
        return self.model.text if hasattr(self.model, "text") else self.model

    # ---- shapes read from the model -------------------------------------------------
    @property
    def text_width(self) -> int:
        return self._text.token_embedding.weight.shape[1]

    @property
    def vision_width(self) -> int:
        return self.model.visual.class_embedding.shape[0]

    @property
    def text_depth(self) -> int:
        return len(self._text.transformer.resblocks)

    @property
    def vision_depth(self) -> int:
        return len(self.model.visual.transformer.resblocks)

    @property
    def context_length(self) -> int:
        return self._text.positional_embedding.shape[0]

    @property
    def image_size(self) -> int:
        size = self.model.visual.image_size
        return size[0] if isinstance(size, (tuple, list)) else int(size)

    @property
    def preprocess_cfg(self) -> dict:
        from open_clip.model import get_model_preprocess_cfg
        return get_model_preprocess_cfg(self.model)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp()

    @property
    def token_embedding(self) -> nn.Embedding:
        return self._text.token_embedding

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    def eot_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        if self._pool_type == "eos" and self._eos_id is not None:
            return (tokens == self._eos_id).int().argmax(dim=-1)
        return tokens.argmax(dim=-1)

    def check_prompt_room(self, tokens: torch.Tensor, n_prompt_tokens: int,
                          positions: torch.Tensor | None = None) -> None:
        """Text prompts overwrite positions 1..n (or `positions`, per row), which must hold
        placeholders, not EOT."""
        last = n_prompt_tokens if positions is None else positions.max(dim=1).values
        if n_prompt_tokens and bool((self.eot_positions(tokens) <= last).any()):
            raise ModelError(f"Text prompts of {n_prompt_tokens} tokens need {n_prompt_tokens} placeholder "
                             "tokens after SOS in every tokenized prompt, but an EOT token falls inside them.")

    # ---- text tower -------------------------------------------------------------------
    def encode_text(self, tokens: torch.Tensor, prompts: TowerPrompts | None = None,
                    truncate: bool = True, normalize: bool = True) -> torch.Tensor:
        """Text features for `tokens` (N, L) with optional prompts.

        `truncate`: the tower is causal and pools at EOT, so every position after the last
        EOT of the batch is dead work; cutting the context there is exact.
        """
        text = self._text
        eot = self.eot_positions(tokens)
        if truncate:
            tokens = tokens[:, : int(eot.max()) + 1]
        length = tokens.shape[1]
        dtype = text.transformer.get_cast_dtype()
        x = text.token_embedding(tokens).to(dtype)
        prompts = prompts or TowerPrompts()
        if prompts.input is not None or prompts.deep:
            prompts.check(self.text_depth, self.text_width, "text")
        n = prompts.n_tokens
        if n and tokens.device.type == "cpu":  # on an accelerator the caller checks (no sync)
            self.check_prompt_room(tokens, n, prompts.input_positions)
        if prompts.input is not None:
            x = _put(x, prompts.input, 1) if prompts.input_positions is None else \
                _scatter(x, prompts.input, prompts.input_positions)
        x = x + text.positional_embedding[:length].to(dtype)
        mask = text.attn_mask[:length, :length]
        # Causal and pooled at EOT: the last block is needed at the EOT rows only (speed-up).
        rows = eot if SPEEDUPS.enabled else None
        x = _run_blocks(text.transformer.resblocks, x, prompts.deep, 1, mask, rows, self._checkpointed())
        x = text.ln_final(x)
        pooled = x[:, 0] if rows is not None else x[torch.arange(x.shape[0], device=x.device), eot]
        projection = text.text_projection
        if projection is not None:
            pooled = projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection
        return F.normalize(pooled, dim=-1) if normalize else pooled

    # ---- image tower ------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor, prompts: TowerPrompts | None = None,
                     normalize: bool = True) -> torch.Tensor:
        """Image features for `images` (B, 3, H, W) with optional visual prompts."""
        visual = self.model.visual
        prompts = prompts or TowerPrompts()
        if prompts.input is not None or prompts.deep:
            prompts.check(self.vision_depth, self.vision_width, "vision")
        n = prompts.n_tokens
        x = visual.conv1(images.to(visual.conv1.weight.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        x = visual.patch_dropout(x)
        if prompts.input is not None:
            x = torch.cat([x, _expand(prompts.input, x.shape[0], x.dtype)], dim=1)
        elif n:
            raise ModelError("Deep visual prompts replace tokens inserted at the input; "
                             "give TowerPrompts.input as well.")
        x = visual.ln_pre(x)
        # Pooled at CLS: the last block is needed at position 0 only (speed-up).
        cls_only = SPEEDUPS.enabled and visual.attn_pool is None and visual.pool_type == "tok"
        rows = torch.zeros(x.shape[0], dtype=torch.long, device=x.device) if cls_only else None
        x = _run_blocks(visual.transformer.resblocks, x, prompts.deep, x.shape[1] - n, None, rows,
                        self._checkpointed())
        if n and not cls_only:
            x = x[:, :-n]
        pooled, _ = visual._pool(x)
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return F.normalize(pooled, dim=-1) if normalize else pooled

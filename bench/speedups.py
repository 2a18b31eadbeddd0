"""The one switch for exact speed-ups, and the image-feature cache it enables.

`SPEEDUPS` is read by the methods and the training loop; `python -m bench.speed
--baseline` (and the exactness tests) turn it off with `speedups(False)`.  With it on:

* text context truncation: the causal text tower pools at EOT, so the context is cut after
  the batch's last EOT (on the CPU tokens, no host-device sync);
* class text features are computed once where they cannot change (text neither prompted
  nor trained: zeroshot, vpt) and once per evaluation for every method, with one text pass
  per distinct prompt set (tasks with identical prompts share it);
* a tower with no trainable input runs under `torch.no_grad()` (coop, zeroshot: images);
* the last block of each tower runs at the pooled positions only (CLS, EOT): its keys and
  values come from every position, its query, attention output and MLP from one row per
  sample (bench/blocks.py);
* deep prompts are written into the hidden states in place instead of one torch.cat per layer;
* image features of a frozen, unprompted image tower (coop, zeroshot) are cached per sample
  for the run: evaluation images always, training images when augmentation is off.  With
  augmentation on they are cached only with `cache_augmented_images=True`, which is an
  approximation (the first epoch's crops are reused) and is reported as such.

With it off (the baseline) every step recomputes everything on the full 77-token context,
one text pass per task, as the reference implementations (CoOp, MaPLe on Dassl) do.  Both
paths run open_clip's blocks through bench/blocks.py (one matmul per projection), which does
the blocks' own arithmetic at the speed of the reference code's sequence-first layout: that is
the plain path's cost, not a speed-up.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Hashable, Iterator

import torch


@dataclass
class Speedups:
    enabled: bool = True                  # every exact speed-up above; False: the baseline path
    cache_augmented_images: bool = False  # approximate: reuse features of augmented train images


SPEEDUPS = Speedups()


@contextlib.contextmanager
def speedups(enabled: bool = True, cache_augmented_images: bool = False) -> Iterator[Speedups]:
    """Run a block with the speed-ups on or off (restored afterwards)."""
    saved = (SPEEDUPS.enabled, SPEEDUPS.cache_augmented_images)
    SPEEDUPS.enabled, SPEEDUPS.cache_augmented_images = enabled, cache_augmented_images
    try:
        yield SPEEDUPS
    finally:
        SPEEDUPS.enabled, SPEEDUPS.cache_augmented_images = saved


class ImageFeatureCache:
    """Features of fixed images, keyed by (split, sample index in that split's dataset).

    Lives as long as its method (one run).  Lookups are decided on the host from the CPU
    index tensor the sampler produced, so a cached step has no host-device sync."""

    def __init__(self) -> None:
        self.rows: dict[Hashable, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def clear(self) -> None:
        self.rows.clear()

    def features(self, split: str, indices: torch.Tensor,
                 compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        keys = [(split, int(i)) for i in indices.tolist()]
        if keys and all(k in self.rows for k in keys):
            return torch.stack([self.rows[k] for k in keys])
        features = compute().detach()
        self.rows.update(zip(keys, features))
        return features

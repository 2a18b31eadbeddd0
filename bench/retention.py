"""What stays on disk once a run is complete (`runtime.keep_checkpoint`).

A finished run's training checkpoint (trainable state, optimiser moments, the best state so
far) is only needed to resume an unfinished run; once the record is written it is dead
weight: a toy full fine-tuning run keeps 60 MB, ViT-B/16 full fine-tuning gigabytes.

- `nothing` (default): the checkpoint is removed; a sweep's disk use stays bounded by the
  records and the small per-run files (lock, grouping) whatever the method.
- `trainable`: only the selected trainable state is kept, as `trainable.pt` beside the
  checkpoint (`{"run_id", "trainable"}`; load it with `Method.load_trainable_state`).
- `everything`: the last training checkpoint stays as it is.

The record's `checkpoint_kept` names what was kept and where.
"""
from __future__ import annotations

from pathlib import Path

import torch

from bench.atomic_io import atomic_write

TRAINABLE_FILE = "trainable.pt"


def kept_after_completion(policy: str, checkpoint_path: Path) -> str:
    """What `policy` keeps of the run whose checkpoint is `checkpoint_path`, for the record."""
    if policy == "nothing":
        return "nothing"
    if policy == "trainable":
        return f"trainable: {checkpoint_path.parent / TRAINABLE_FILE}"
    return f"everything: {checkpoint_path}"


def save_trainable(policy: str, checkpoint_path: Path, trainable_state: dict, run_id: str) -> None:
    """Before the record is written: with `trainable`, write the selected trainable state."""
    if policy == "trainable":
        saved = {"run_id": run_id, "trainable": trainable_state}
        atomic_write(checkpoint_path.parent / TRAINABLE_FILE, lambda tmp: torch.save(saved, tmp))


def remove_checkpoint(policy: str, checkpoint_path: Path) -> None:
    """After the record is written: remove the training checkpoint unless `everything` is kept."""
    if policy != "everything":
        checkpoint_path.unlink(missing_ok=True)

"""Test entry point (not a test module): every registered method and mode on the toy data at
a tiny size, run one after another in this process, or in every rank of one torchrun job.

    python tests/bench/distributed_matrix.py OUT                                   # one process
    python -m torch.distributed.run --nproc_per_node=2 tests/bench/distributed_matrix.py OUT

Rank 0 writes OUT/summary.json: per case the run id, accuracies, history, world size and
backend, and where its checkpoint (the final trainable state) is.  tests/bench/
test_distributed.py compares the summaries of both launches.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import distributed
from bench.app import compose_config
from bench.experiment import run_experiment
from bench.methods import METHODS

#: batch 3 over 2 ranks: uneven shares (2 and 1 per task); eval batch 8 deals the batches unevenly.
#: SGD for every method: AdamW's first step is lr * g / |g|, so a gradient that is zero in exact
#: arithmetic but rounding noise in floats (the attention's key bias) moves by +-lr either way,
#: which says nothing about the reduction (with their own AdamW, full/BitFit/LoRA states differ
#: there by ~lr and nowhere else).
BASE = ["dataset=toy", "train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=3", "train.warmup_epochs=0",
        "train.lr=0.01", "train.optimizer=sgd", "train.selection=last", "train.eval_batch_size=8",
        "dataset.val_fraction=0.015", "dataset.test_fraction=0.015", "runtime.progress=false", "runtime.num_workers=0"]


def cases() -> dict[str, list[str]]:
    """label -> overrides: every registered method and mode, plus MmAP's look-ahead affinity,
    LoRA with its default dropout (per-step randomness: not exact, other run id), two
    leave-one-domain-out runs (selection on the sources' val, and the oracle) and two runs of the
    domains in sequence (one shared set carried through the stages, and one set per domain)."""
    found = {}
    for name, cls in METHODS.items():
        for mode in cls.modes:
            extra = {"lora": ["method.dropout=0"], "mmap": ["method.grouping.warmup_steps=2"]}.get(name, [])
            found[f"{name}:{mode}"] = [f"method={name}", f"method.mode={mode}", *extra]
    found["mmap:grouped:lookahead"] = ["method=mmap", "method.mode=grouped", "method.grouping.strategy=lookahead",
                                       "method.grouping.warmup_steps=2"]
    found["lora:mt:dropout"] = ["method=lora", "method.mode=mt"]
    # protocol=leave_one_out (bench/protocols.py): the sources train, the held-out domain is tested
    found["coop:mt:leave_one_out"] = ["method=coop", "protocol=leave_one_out", "dataset.target=sketch",
                                      "train.selection=val"]
    found["maple:mt:leave_one_out:oracle"] = ["method=maple", "protocol=leave_one_out", "dataset.target=photo",
                                              "train.selection=oracle"]
    # protocol=sequential (bench/sequential.py): a Trainer per stage, every domain measured after each
    found["coop:mt:sequential"] = ["method=coop", "protocol=sequential", "dataset.task_order=[clipart,photo,painting,sketch]"]
    found["vpt:st:sequential"] = ["method=vpt", "method.mode=st", "protocol=sequential"]
    return found


def main(out: Path, only: list[str]) -> None:
    summary = {}
    for label, overrides in cases().items():
        if only and label not in only:
            continue
        record = run_experiment(compose_config(BASE + overrides + [
            f"runtime.results_dir={out}/runs", f"runtime.checkpoint_dir={out}/checkpoints"]))
        checkpoint = out / "checkpoints" / record.run_id / "checkpoint.pt"
        summary[label] = {"run_id": record.run_id, "accuracy": record.accuracy, "history": record.history,
                          "world_size": record.world_size, "backend": record.backend,
                          "train_images": round(record.train_images_per_s * record.train_time_s)
                          if record.train_images_per_s else 0,
                          "checkpoint": str(checkpoint) if checkpoint.exists() else None,
                          "accuracy_matrix": record.accuracy_matrix}
    if distributed.current().is_writer:
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])

"""`python -m bench.run [overrides]`: train and evaluate one method on one dataset.

Every launcher (a plain call, Hydra multirun, the submitit sweep) ends in `run_experiment`,
so every run of every method goes through the same code path.
"""
from __future__ import annotations

import logging
import random
import resource
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from tabulate import tabulate

from bench.clip import ModelError
from bench.errors import ConfigError
from bench.lock import RunLock
from bench.preflight import check_writable, load_dataset, resolve_num_workers
from bench.records import SCHEMA_VERSION, image_counts, load_complete_record, write_record
from bench.results import git_commit, identity_config, package_versions, record_path, run_id
from methods.base import MethodError

log = logging.getLogger("bench.run")
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")


def _user_errors() -> tuple[type[Exception], ...]:
    from datasets import DatasetError
    return (ConfigError, DatasetError, MethodError, ModelError)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device={name} was asked for but CUDA is not available here. Use "
                          "runtime.device=auto (GPU when there is one) or runtime.device=cpu.")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def count_parameters(method) -> dict:
    total = sum(p.numel() for p in method.clip.model.parameters())
    trainable = sum(p.numel() for _, p in method.trainable_parameters())
    return {"trainable": trainable, "total": total, "trainable_percent": 100.0 * trainable / total}


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def build_components(cfg: DictConfig, device: torch.device, dataset=None):
    """Dataset, frozen CLIP and method, exactly as a run builds them (also used by tools)."""
    from bench.models import build_clip
    from methods import build_method

    dataset = dataset if dataset is not None else load_dataset(cfg)[0]
    clip = build_clip(cfg.model.arch, cfg.model.pretrained, cfg.model.cache_dir, cfg.model.quick_gelu)
    method = build_method(cfg.method, clip, dataset.tasks, seed=int(cfg.seed)).to(device)
    return dataset, clip, method


def run_experiment(cfg: DictConfig) -> dict:
    """Train, select, evaluate and write the run's record; returns the record."""
    path = record_path(cfg)
    check_writable({"runtime.results_dir": cfg.runtime.results_dir,
                    "runtime.checkpoint_dir": cfg.runtime.checkpoint_dir})
    with RunLock(cfg.runtime.checkpoint_dir, run_id(cfg)):  # one process per run id
        if cfg.runtime.get("skip_done", True) and (done := load_complete_record(path)) is not None:
            log.info("Run %s is already complete (%s); pass runtime.skip_done=false to run it again.",
                     done["run_id"], path)
            print_summary(done)
            return done
        return _train_and_record(cfg, path)


def _train_and_record(cfg: DictConfig, path: Path) -> dict:
    from bench.data import MultiTaskData
    from bench.engine import evaluate_counted, fit

    started = time.perf_counter()
    device = resolve_device(cfg.runtime.device)
    seed_everything(int(cfg.seed))
    dataset, screened = load_dataset(cfg)  # unreadable images and empty splits: before the model
    dataset, clip, method = build_components(cfg, device, dataset)
    data = MultiTaskData(dataset, clip, cfg.train, seed=int(cfg.seed),
                         num_workers=resolve_num_workers(cfg.runtime.num_workers),
                         pin_memory=device.type == "cuda", unreadable=cfg.dataset.unreadable)
    checkpoint = Path(cfg.runtime.checkpoint_dir) / run_id(cfg) / "checkpoint.pt"
    if hasattr(method, "prepare"):  # e.g. MmAP's task grouping; may create parameters, so first
        method.prepare(data, cfg.train, device, checkpoint.parent)
    params = count_parameters(method)
    log.info("%s (%s) on %s: %d tasks, %s of %s parameters trainable (%.4f%%)", cfg.method.name,
             method.mode, dataset.name, len(dataset.tasks), f"{params['trainable']:,}",
             f"{params['total']:,}", params["trainable_percent"])
    if not cfg.runtime.get("resume", True) and checkpoint.exists():
        checkpoint.unlink()
    outcome = fit(method, data, cfg.train, device, checkpoint, progress=bool(cfg.runtime.progress))

    val, val_counts = evaluate_counted(method, data, "val", device, cfg.train.precision)
    eval_start = time.perf_counter()
    test, test_counts = evaluate_counted(method, data, "test", device, cfg.train.precision)
    eval_seconds = time.perf_counter() - eval_start
    n_test = sum(len(t.test) for t in dataset.tasks)
    record = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id(cfg), "status": "complete",
        "method": cfg.method.name, "mode": method.mode, "dataset": dataset.name,
        "model": cfg.model.arch, "pretrained": str(cfg.model.pretrained), "seed": int(cfg.seed),
        "tasks": [t.name for t in dataset.tasks],
        "accuracy": {"val": val, "test": test},
        "params": params,
        "sweep": cfg.runtime.get("sweep"),
        "selected_epoch": outcome.best_epoch,
        "history": outcome.history,
        "extras": method.run_extras() if hasattr(method, "run_extras") else {},
        "config": identity_config(cfg),
        "wall_time_s": outcome.earlier_wall_s + time.perf_counter() - started,  # over every resume
        "train_time_s": outcome.train_seconds, "resumes": outcome.resumes,
        "images": image_counts(dataset, screened, {"val": val_counts, "test": test_counts}),
        "train_images_per_s": outcome.images_per_s,
        "eval_images_per_s": n_test / eval_seconds if eval_seconds > 0 else None,
        "peak_memory_mb": peak_memory_mb(device),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "git_commit": git_commit(), "versions": package_versions(),
        "unreadable_images": outcome.unreadable_images,
    }
    write_record(record, path)
    print_summary(record)
    log.info("Record written to %s", path)
    return record


def print_summary(record: dict) -> None:
    acc = {split: record["accuracy"].get(split, {}) for split in ("val", "test")}
    cell = lambda split, name: f"{acc[split][name]:.2f}" if name in acc[split] else "–"  # noqa: E731
    rows = [[name, cell("val", name), cell("test", name)] for name in [*record["tasks"], "average"]]
    params = record["params"]
    print(f"\n{record['method']} ({record['mode']}) on {record['dataset']}, {record['model']}, "
          f"seed {record['seed']}")
    print(tabulate(rows, headers=["task", "val acc (%)", "test acc (%)"], tablefmt="github"))
    print(f"trainable parameters: {params['trainable']:,} of {params['total']:,} "
          f"({params['trainable_percent']:.4f}% of CLIP)")
    if record.get("unreadable_images"):
        print(f"WARNING: {record['unreadable_images']} unreadable images were skipped during training.")
    for split, tasks in record.get("images", {}).items():
        skipped = [f"{t} {n['skipped']} of {n['listed']}" for t, n in tasks.items() if n.get("skipped")]
        if skipped:
            print(f"WARNING: unreadable {split} images left out (dataset.unreadable=skip): {', '.join(skipped)}")
    resumed = f", {record['resumes']} resume(s)" if record.get("resumes") else ""
    print(f"run id {record['run_id']}, wall time {record['wall_time_s']:.1f} s{resumed}")


def main_guarded(cfg: DictConfig) -> dict | None:
    try:
        return run_experiment(cfg)
    except _user_errors() as error:
        print(f"\nError: {error}", file=sys.stderr)
        sys.exit(2)


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    main_guarded(cfg)


if __name__ == "__main__":
    main()

"""`python -m bench.run [overrides]`: train and evaluate one method on one dataset.

Every launcher (a plain call, Hydra multirun, the submitit sweep) ends in `run_experiment`,
so every run of every method goes through the same code path.
"""
from __future__ import annotations

import logging
import random
import re
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from tabulate import tabulate

from bench.config import register_schemas, unknown_setting, validate
from bench.errors import ConfigError, guarded
from bench.identity import experiment_id_of, identity, run_id_of
from bench.lock import RunLock
from bench.preflight import check_writable, resolve_num_workers, screen_dataset
from bench.records import SCHEMA_VERSION, image_counts, load_complete_record, write_record
from bench.results import git_commit, package_versions

log = logging.getLogger("bench.run")
CONFIG_DIR = str(Path(__file__).resolve().parent / "configs")
register_schemas()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device={name} was asked for but CUDA is not available here. Use "
                          "runtime.device=auto (GPU when there is one) or runtime.device=cpu.")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (every draw of ours has its own seeded generator too)."""
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


@dataclass
class RunPlan:
    """Everything known about a run before any model is built or step taken."""

    cfg: DictConfig
    dataset: Any
    identity: dict
    run_id: str
    experiment_id: str
    record_path: Path
    checkpoint_path: Path


def plan_run(cfg: DictConfig) -> RunPlan:
    """Validate the config, list the data (no decoding) and fingerprint data and weights:
    the run's identity (bench/identity.py), its record and its checkpoint."""
    from bench.identity import data_fingerprint, weights_fingerprint
    from datasets import build_dataset

    validate(cfg)
    dataset = build_dataset(cfg.dataset)
    ident = identity(cfg, data_fingerprint(dataset), weights_fingerprint(cfg.model.pretrained, cfg.runtime.cache_dir))
    run_id = run_id_of(ident)
    return RunPlan(cfg, dataset, ident, run_id, experiment_id_of(ident),
                   Path(cfg.runtime.results_dir) / f"{run_id}.json",
                   Path(cfg.runtime.checkpoint_dir) / run_id / "checkpoint.pt")


def build_model_and_method(cfg: DictConfig, tasks, device: torch.device):
    """The frozen CLIP and the method on it, exactly as a run builds them (also for tools)."""
    from bench.models import build_clip
    from methods import build_method

    clip = build_clip(cfg.model.arch, cfg.model.pretrained, cfg.model.cache_dir, cfg.model.quick_gelu)
    return clip, build_method(cfg.method, clip, tasks, seed=cfg.seed).to(device)


def run_experiment(cfg: DictConfig) -> dict:
    """Train, select, evaluate and write the run's record; returns the record."""
    validate(cfg)
    check_writable({"runtime.results_dir": cfg.runtime.results_dir,
                    "runtime.checkpoint_dir": cfg.runtime.checkpoint_dir})
    plan = plan_run(cfg)
    with RunLock(cfg.runtime.checkpoint_dir, plan.run_id):  # one process per run id
        if cfg.runtime.skip_done and (done := load_complete_record(plan.record_path)) is not None:
            log.info("Run %s is already complete (%s); pass runtime.skip_done=false to run it again.",
                     done["run_id"], plan.record_path)
            print_summary(done)
            return done
        if (not cfg.runtime.skip_done or not cfg.runtime.resume) and plan.checkpoint_path.exists():
            # skip_done=false means "train again from scratch", never "resume a finished checkpoint"
            log.info("Starting over: removing %s", plan.checkpoint_path)
            plan.checkpoint_path.unlink()
        return _train_and_record(plan)


def _train_and_record(plan: RunPlan) -> dict:
    from bench.data import MultiTaskData
    from bench.engine import evaluate_counted, fit

    cfg = plan.cfg
    started = time.perf_counter()
    device = resolve_device(cfg.runtime.device)
    seed_everything(cfg.seed)
    dataset, screened = screen_dataset(cfg, plan.dataset)  # unreadable images, empty splits: before the model
    clip, method = build_model_and_method(cfg, dataset.tasks, device)
    data = MultiTaskData(dataset, clip, cfg.train, seed=cfg.seed,
                         num_workers=resolve_num_workers(cfg.runtime.num_workers),
                         pin_memory=device.type == "cuda", unreadable=cfg.dataset.unreadable)
    method.prepare(data, cfg.train, device, plan.checkpoint_path.parent)  # may create parameters: first
    params = count_parameters(method)
    log.info("%s (%s) on %s: %d tasks, %s of %s parameters trainable (%.4f%%)", cfg.method.name,
             method.mode, dataset.name, len(dataset.tasks), f"{params['trainable']:,}",
             f"{params['total']:,}", params["trainable_percent"])
    outcome = fit(method, data, cfg.train, device, plan.checkpoint_path, run_id=plan.run_id,
                  progress=cfg.runtime.progress, checkpoint_every_steps=cfg.runtime.checkpoint_every_steps)

    val, val_counts = evaluate_counted(method, data, "val", device, cfg.train.precision)
    eval_start = time.perf_counter()
    test, test_counts = evaluate_counted(method, data, "test", device, cfg.train.precision)
    eval_seconds = time.perf_counter() - eval_start
    n_test = sum(len(t.test) for t in dataset.tasks)
    record = {
        "schema_version": SCHEMA_VERSION, "run_id": plan.run_id, "experiment_id": plan.experiment_id,
        "status": "complete",
        "method": cfg.method.name, "mode": method.mode, "dataset": dataset.name,
        "model": cfg.model.arch, "pretrained": str(cfg.model.pretrained), "seed": cfg.seed,
        "tasks": [t.name for t in dataset.tasks],
        "accuracy": {"val": val, "test": test},
        "params": params,
        "sweep": cfg.runtime.sweep,
        "selected_epoch": outcome.best_epoch,
        "history": outcome.history,
        "extras": method.record_extras(),
        "config": plan.identity["config"],
        "data_fingerprint": plan.identity["data_fingerprint"],
        "weights_fingerprint": plan.identity["weights_fingerprint"],
        "dataset_root": str(dataset.root),
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
    write_record(record, plan.record_path)
    print_summary(record)
    log.info("Record written to %s", plan.record_path)
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


def check_command_line(overrides: list[str]) -> None:
    """Compose and validate the config of a single run before Hydra sets up its job, so a
    misspelt key or value is one paragraph and exit 2, not a traceback or a late crash."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as error:
        text = " ".join(str(error).split()).split(" Config search path")[0]
        unknown = re.search(r"Could not override '([^']+)'", text)
        if unknown:
            method = next((o.split("=", 1)[1] for o in overrides if o.startswith("method=")), None)
            if method is None:
                with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                    method = compose(config_name="config").method.name
            raise unknown_setting(unknown.group(1), method) from None
        raise ConfigError(f"The command line could not be applied: {text}. `python -m bench.run --help` "
                          "lists the config groups and their choices; bench/config.py lists every "
                          "setting with its type and default.") from None
    validate(cfg)


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    guarded(run_experiment)(cfg)


def main() -> None:
    arguments = sys.argv[1:]
    if not any(a.startswith("-") for a in arguments):  # a single run (not -m, --cfg, --help)
        guarded(check_command_line)(arguments)
    hydra_main()


if __name__ == "__main__":
    main()

"""The run wiring's planning half: a checked config to the run it names, before any model.

`plan_run` lists the data (no decoding), fingerprints data and weights and so fixes the run's
identity (bench/identity.py), its record path and its checkpoint path.  Torch-free, so that
`bench.sweep PRESET status|list|cancel` plans a whole preset without importing torch; the
running half (bench/experiment.py) starts from the same plan.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench import world as process_world
from bench.app import method_card
from bench.datasets import MultiDomainDataset, build_dataset
from bench.identity import data_fingerprint, experiment_id_of, identity, run_id_of, weights_fingerprint
from bench.protocols import check_target
from bench.schema import RunConfig


@dataclass
class RunPlan:
    """Everything known about a run before any model is built or step taken."""

    cfg: RunConfig
    dataset: MultiDomainDataset
    identity: dict
    run_id: str
    experiment_id: str
    record_path: Path
    checkpoint_path: Path


def plan_run(cfg: RunConfig) -> RunPlan:
    """List the data (no decoding) and fingerprint data and weights: the run's identity
    (bench/identity.py), its record and its checkpoint."""
    dataset = build_dataset(cfg.dataset)
    if cfg.protocol == "leave_one_out":  # dataset.domains null: the listed domains are known only now
        check_target(cfg.dataset.target, dataset.task_names)
    data = data_fingerprint(dataset, cfg.dataset.fingerprint == "content", cfg.runtime.cache_dir)
    ident = identity(cfg, data, weights_fingerprint(cfg.model.pretrained, cfg.runtime.cache_dir))
    world = process_world.current()
    if world.distributed and not method_card(cfg.method.name).load().exact_over_processes(cfg.method):
        ident["world_size"] = world.size  # per-step randomness differs with the world: another experiment
    run_id = run_id_of(ident)
    return RunPlan(cfg, dataset, ident, run_id, experiment_id_of(ident),
                   Path(cfg.runtime.results_dir) / f"{run_id}.json",
                   Path(cfg.runtime.checkpoint_dir) / run_id / "checkpoint.pt")

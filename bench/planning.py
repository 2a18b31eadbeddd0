"""The run wiring's planning half: a checked config to the run it names, before any model.

`plan_run` lists the data (no decoding), fingerprints data and weights and so fixes the run's
identity (bench/identity.py), its record path and its checkpoint path.  Torch-free, so that
`bench.sweep PRESET status|list|cancel` plans a whole preset without importing torch; the
running half (bench/experiment.py) starts from the same plan.

`plan_runs` plans many command lines at once, as a sweep does.  Composing and checking a
command line costs Hydra about 0.2 s, so the checked configs are kept in
`<runtime.cache_dir>/plans/` under the fingerprint of everything that decides them: the
override list, every config YAML and every module of the package (their paths, sizes and
modification times), each registered method's config module, the environment variables
the configs read (`oc.env:NAME`) and the versions of Hydra and OmegaConf.  The data and the
weights are fingerprinted afresh on every call (once per distinct dataset and weights), so a
changed dataset still changes the run ids.  Each edit of the code or the configs makes a
new fingerprint, so the folder keeps only the `PLAN_FILES_KEPT` most recently written files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from bench import datasets as datasets_package
from bench import methods as methods_package
from bench import world as process_world
from bench.app import check, compose_command_line, method_card
from bench.atomic_io import write_json_atomic
from bench.datasets import MultiDomainDataset, build_dataset
from bench.identity import (data_fingerprint, experiment_id_of, identity, run_id_of, weights_fingerprint,
                            with_skipped)
from bench.input_checks import unreadable_images
from bench.methods import METHODS
from bench.protocols import check_target, check_task_order
from bench.schema import RunConfig, RuntimeConfig, defaults_of
from bench.config_checks import instantiate

#: plan files kept in the cache: one per code and config state, so a few edits back
PLAN_FILES_KEPT = 8
#: the package's folders whose files decide what a command line composes to (bench/ holds configs/)
PACKAGE_ROOTS = (Path(__file__).parent, Path(datasets_package.__file__).parent, Path(methods_package.__file__).parent)


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

    @property
    def run_folder(self) -> Path:
        """`<checkpoint_dir>/<run id>/`: the run's checkpoints, lock and, while it trains, its curves."""
        return self.checkpoint_path.parent

    @property
    def warmup_checkpoint_path(self) -> Path:
        """The checkpoint of the run's warm-up (MmAP's grouping), beside the training one."""
        return self.checkpoint_path.with_name("warmup.pt")

    @property
    def stages_checkpoint_path(self) -> Path:
        """protocol=sequential: the stages done and the parameters after them (bench/sequential.py)."""
        return self.checkpoint_path.with_name("stages.pt")

    @property
    def checkpoint_paths(self) -> tuple[Path, ...]:
        """Every checkpoint a run may write: removed once its record is safe, or to start over."""
        return self.checkpoint_path, self.warmup_checkpoint_path, self.stages_checkpoint_path


def plan_run(cfg: RunConfig, _listed: dict | None = None) -> RunPlan:
    """List the data (no decoding) and fingerprint data and weights: the run's identity
    (bench/identity.py), its record and its checkpoint.  `_listed` (plan_runs) keeps the
    listing and fingerprints of each dataset and weights across the runs of one call."""
    listed = {} if _listed is None else _listed
    data_key = json.dumps(["data", dataclasses.asdict(cfg.dataset), cfg.runtime.cache_dir], sort_keys=True)
    if data_key not in listed:
        dataset = build_dataset(cfg.dataset)
        fingerprint = data_fingerprint(dataset, cfg.dataset.fingerprint == "content", cfg.runtime.cache_dir)
        if cfg.dataset.unreadable == "skip":  # what the run will leave out is part of its data (cached scan)
            fingerprint = with_skipped(fingerprint, dataset.root, unreadable_images(dataset, cfg.runtime.cache_dir))
        listed[data_key] = dataset, fingerprint
    dataset, data = listed[data_key]
    if cfg.protocol == "leave_one_out":  # dataset.domains null: the listed domains are known only now
        check_target(cfg.dataset.target, dataset.task_names)
    if cfg.protocol == "sequential" and cfg.dataset.task_order is not None:
        check_task_order(cfg.dataset.task_order, dataset.task_names)
        if list(cfg.dataset.task_order) == list(dataset.task_names):  # the default order: one run id for both
            cfg = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, task_order=None))
    weights_key = json.dumps(["weights", cfg.model.pretrained, cfg.runtime.cache_dir])
    if weights_key not in listed:
        listed[weights_key] = weights_fingerprint(cfg.model.pretrained, cfg.runtime.cache_dir)
    world = process_world.current()
    ident = identity(cfg, data, listed[weights_key], world.size,
                     not world.distributed or method_card(cfg.method.name).load().exact_over_processes(cfg.method))
    run_id = run_id_of(ident)
    return RunPlan(cfg, dataset, ident, run_id, experiment_id_of(ident),
                   Path(cfg.runtime.results_dir) / f"{run_id}.json",
                   Path(cfg.runtime.checkpoint_dir) / run_id / "checkpoint.pt")


def plan_runs(command_lines: Sequence[Sequence[str]], roots: Sequence[Path] = PACKAGE_ROOTS) -> list[RunPlan]:
    """`plan_run(check(compose_command_line(overrides)))` for each override list, the checked configs
    kept in the plan cache (module docstring) and each dataset listed once."""
    listed: dict = {}
    return [plan_run(cfg, listed) for cfg in checked_configs(command_lines, roots)]


def checked_configs(command_lines: Sequence[Sequence[str]], roots: Sequence[Path] = PACKAGE_ROOTS) -> list[RunConfig]:
    """`check(compose_command_line(overrides))` for each override list, through the plan cache: what
    Hydra composes, never a reading of the override strings."""
    cache_file = config_cache_dir() / f"{configs_fingerprint(roots)}.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    configs, changed = [], False
    for overrides in command_lines:
        key = json.dumps(list(overrides))
        if key in cache:
            values = cache[key]
            cfg = instantiate(RunConfig, values, {"method": method_card(values["method"]["name"]).config_class})
        else:
            cfg = check(compose_command_line(list(overrides)))
            cache[key], changed = dataclasses.asdict(cfg), True
        configs.append(cfg)
    if changed:
        try:
            write_json_atomic(cache, cache_file)
            prune_plan_cache(cache_file.parent)
        except OSError:
            pass  # an unwritable cache only costs composing again next time
    return configs


def prune_plan_cache(folder: Path, keep: int = PLAN_FILES_KEPT) -> None:
    """Delete all but the `keep` most recently written plan files (a file another process
    deletes first is not an error)."""
    written = {}
    for path in folder.glob("*.json"):
        try:
            written[path] = path.stat().st_mtime_ns
        except FileNotFoundError:
            continue
    for stale in sorted(written, key=written.get, reverse=True)[keep:]:
        stale.unlink(missing_ok=True)


def config_cache_dir() -> Path:
    """`<runtime.cache_dir>/plans` at runtime.cache_dir's default (the schema's, env included)."""
    default = OmegaConf.create({"dir": defaults_of(RuntimeConfig)["cache_dir"]}).dir
    return Path(os.path.expanduser(default)) / "plans"


def configs_fingerprint(roots: Sequence[Path] = PACKAGE_ROOTS) -> str:
    """Hash of what decides a composed config besides its overrides (module docstring)."""
    hasher = hashlib.sha256()
    read_env: set[str] = set()
    files = sorted({p for root in roots for p in Path(root).rglob("*") if p.suffix in (".py", ".yaml", ".json")}
                   | {Path(inspect.getfile(card.config_class)) for card in METHODS.values()})
    for path in files:
        stat = path.stat()
        hasher.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        if path.suffix in (".py", ".yaml"):
            read_env |= set(re.findall(r"oc\.env:([A-Za-z_][A-Za-z0-9_]*)", path.read_text(errors="replace")))
    for name in sorted(read_env):
        hasher.update(f"env {name}={os.environ.get(name)!r}\n".encode())
    for package in ("hydra-core", "omegaconf"):
        hasher.update(f"{package} {metadata.version(package)}\n".encode())
    return hasher.hexdigest()[:20]

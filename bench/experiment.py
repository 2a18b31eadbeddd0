"""The run wiring's running half: one experiment from a checked config to its record.

Every launcher (a plain `python -m bench.run`, Hydra multirun, the submitit sweep, the
sweep's local runner) ends in `run_experiment`, so every run of every method goes through
the same code path: check the config once (bench/app.py), plan the run (its identity,
record and checkpoint), take the run lock, screen the data, build CLIP and the method, train
(bench/engine.py), evaluate, and write the `RunRecord`.

Launched over several processes (torchrun, a SLURM step: bench/distributed.py) every rank
runs this same path on its share of the data; rank 0 alone takes the lock and writes the
record, checkpoints and logs.  The world is not part of the run id: the numbers do not depend
on it (to float rounding), except for methods with per-step randomness (`exact_over_processes`
False, e.g. LoRA with dropout), whose identity then names the world size (the rule:
bench/identity.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from tabulate import tabulate

from bench import distributed, faults
from bench.app import build_method, check
from bench.planning import RunPlan, plan_run
from bench.curves import (CurveLogger, curves_path, publish_curves, stage_curves_path, tensorboard_path,
                          warmup_curves_path)
from bench.data import MultiTaskData
from bench.datasets import MultiDomainDataset
from bench.datasets.published_counts import completeness, shortfall
from bench.device import peak_memory_mb, resolve_device
from bench.engine import TrainOutcome, evaluate, fit, warm_up
from bench.grouping_files import write_grouping
from bench.lock import RunLock
from bench.methods.base import Method
from bench.methods.contract import count_parameters
from bench.observers import TrainObserver
from bench.models import build_clip
from bench.data_warnings import degenerate_data_warnings
from bench.protocols import resolved_task_order, task_roles
from bench.sequential import SequentialOutcome, Stages
from bench.input_checks import check_writable, resolve_num_workers, screen_dataset
from bench.retention import kept_after_completion, remove_checkpoint, save_trainable
from bench.records import Provenance, RunRecord, image_counts, load_complete_record, write_record
from bench.schema import RunConfig
from bench.seeding import seed_everything, stable_seed

log = logging.getLogger("bench.run")


def build_model_and_method(cfg: RunConfig, tasks, device: torch.device) -> tuple:
    """The frozen CLIP and the method on it, exactly as a run builds them (also for tools)."""
    clip = build_clip(cfg.model.arch, cfg.model.pretrained, cfg.model.cache_dir, cfg.model.quick_gelu)
    clip.grad_checkpointing = cfg.model.grad_checkpointing
    return clip, build_method(cfg.method, clip, tasks, seed=cfg.seed).to(device)


def run_experiment(cfg: DictConfig | RunConfig) -> RunRecord:
    """Train, select, evaluate and write the run's record; returns the record."""
    cfg = cfg if isinstance(cfg, RunConfig) else check(cfg)
    distributed.check_splittable(cfg.train.batch_size)  # before any data or model loads
    world = distributed.setup(cfg.runtime.device, cfg.runtime.collective_timeout_s)
    if not world.is_writer:
        _quiet_follower()
    check_writable({"runtime.results_dir": cfg.runtime.results_dir,
                    "runtime.checkpoint_dir": cfg.runtime.checkpoint_dir})
    if not world.is_writer:
        distributed.barrier()  # rank 0 lists (or generates) the data and fills the caches first
    plan = plan_run(cfg)
    if world.is_writer:
        distributed.barrier()
    lock = RunLock(cfg.runtime.checkpoint_dir, plan.run_id) if world.is_writer else contextlib.nullcontext()
    with lock:  # one process per run id (one writer of a distributed run)
        if cfg.runtime.skip_done and (done := load_complete_record(plan.record_path)) is not None:
            log.info("Run %s is already complete (%s); pass runtime.skip_done=false to run it again.",
                     done.run_id, plan.record_path)
            if world.is_writer:
                publish_curves(plan.run_folder, cfg.runtime.results_dir, plan.run_id)  # a move a kill cut short
                print_summary(done)
            return done
        return _train_and_record(plan)  # (its _start_over_if_asked lines the ranks up on one checkpoint)


def _quiet_follower() -> None:
    """Ranks other than 0 log warnings only, and to the console: rank 0 writes the run's log."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
    logging.getLogger("bench").setLevel(logging.WARNING)


def _start_over_if_asked(plan: RunPlan) -> None:
    """skip_done=false means "train again from scratch", never "resume a finished checkpoint";
    called once every check that can fail has passed, so a failing check deletes nothing.
    Rank 0 deletes; every rank then waits, so all of them see the same checkpoint, or none."""
    cfg = plan.cfg
    if (not cfg.runtime.skip_done or not cfg.runtime.resume) and distributed.current().is_writer:
        for path in plan.checkpoint_paths:
            if path.exists():
                log.info("Starting over: removing %s", path)
                path.unlink()
    distributed.barrier()


def _train_and_record(plan: RunPlan) -> RunRecord:
    cfg = plan.cfg
    started = time.perf_counter()
    device = distributed.local_device(resolve_device(cfg.runtime.device))
    seed_everything(cfg.seed)
    dataset, screened = screen_dataset(cfg, plan.dataset)  # unreadable images, empty splits: before the model
    counts = completeness(dataset, cfg.dataset)  # the images seen against the published counts, kept in the record
    if short := shortfall(counts):
        log.warning("%s", short)
    warnings = degenerate_data_warnings(cfg.dataset, dataset)  # single-class tasks, short few-shot classes
    clip, method = build_model_and_method(cfg, dataset.tasks, device)

    def make_data(roles) -> MultiTaskData:
        return MultiTaskData(dataset, clip, cfg.train, seed=cfg.seed,
                             num_workers=resolve_num_workers(cfg.runtime.num_workers),
                             pin_memory=device.type == "cuda", unreadable=cfg.dataset.unreadable,
                             prefetch_factor=cfg.runtime.prefetch_factor, cache_dir=cfg.runtime.cache_dir, roles=roles,
                             worker_malloc_trim_mib=cfg.runtime.worker_malloc_trim_mib)
    data = make_data(task_roles(cfg.protocol, dataset.task_names, cfg.dataset.target, cfg.train.selection))
    _start_over_if_asked(plan)
    _warm_up(plan, method, data, device)  # may create parameters: first
    params = count_parameters(method)
    log.info("%s (%s) on %s: %d tasks, %s of %s parameters trainable (%.4f%%)", cfg.method.name,
             method.mode, dataset.name, len(dataset.tasks), f"{params['trainable']:,}",
             f"{params['total']:,}", params["trainable_percent"])
    if distributed.current().distributed:  # per-step randomness (dropout): each rank its own stream
        torch.manual_seed(stable_seed(cfg.seed, "rank", distributed.current().rank))
    stages = None
    if cfg.protocol == "sequential":  # the stages, each a Trainer on one domain (bench/sequential.py)
        order = resolved_task_order(cfg.dataset.task_order, dataset.task_names)
        stages = Stages(plan, method, data, order, make_data, device, lambda stage, before: _observers(
            plan, stage_curves_path(plan.run_folder, plan.run_id, stage), [order[stage]], tensorboard=False,
            steps_before=before)).run()
        outcome = stages.outcome
    else:
        outcome = fit(method, data, cfg.train, device, plan.checkpoint_path, run_id=plan.run_id,
                      progress=cfg.runtime.progress, checkpoint_every_steps=cfg.runtime.checkpoint_every_steps,
                      observers=_observers(plan, curves_path(plan.run_folder, plan.run_id),
                                           data.eval_task_names("val")))

    if outcome.nonfinite_steps:  # in the record too, not only on the console
        warnings = [*warnings, f"{outcome.nonfinite_steps} training step(s) had a NaN or inf loss; their updates "
                    "were skipped (an epoch with no finite loss has loss NaN in the history)."]
    eval_seconds = 0.0  # the test split's evaluation (protocol=sequential: measured in the stages, not timed)
    if stages is None:
        val = evaluate(method, data, "val", device, cfg.train.precision)
        eval_start = time.perf_counter()
        test = evaluate(method, data, "test", device, cfg.train.precision)
        eval_seconds = time.perf_counter() - eval_start
    else:  # the last stage's row, measured after it
        val, test = stages.last["val"], stages.last["test"]
    record = _record(plan, dataset, method, outcome, params, device, stages,
                     accuracy={"val": val.accuracy, "test": test.accuracy},
                     images=image_counts(dataset, screened, {"val": val.counts, "test": test.counts}),
                     dataset_counts=[c.as_dict() for c in counts],
                     wall_time_s=outcome.earlier_wall_s + time.perf_counter() - started,  # over every resume
                     eval_images_per_s=sum(len(t.test) for t in dataset.tasks) / eval_seconds
                     if eval_seconds > 0 else None, warnings=warnings)
    if distributed.current().is_writer:
        save_trainable(cfg.runtime.keep_checkpoint, plan.checkpoint_path, method.trainable_state(), plan.run_id)
        write_record(record, plan.record_path)
        publish_curves(plan.run_folder, cfg.runtime.results_dir, plan.run_id)  # beside the record, now it is
        for path in plan.checkpoint_paths:  # only once the record is safe
            remove_checkpoint(cfg.runtime.keep_checkpoint, path)
        print_summary(record)
        log.info("Record written to %s", plan.record_path)
    return record


def _warm_up(plan: RunPlan, method: Method, data: MultiTaskData, device: torch.device) -> None:
    """The warm-up the method needs, if any (MmAP's grouping: bench/engine.py `warm_up`), with
    its own checkpoint and learning curves beside the run's; then the grouping's files."""
    cfg = plan.cfg
    warm_up(method, data, cfg.train, device, plan.warmup_checkpoint_path, plan.run_id, cfg.runtime.progress,
            cfg.runtime.checkpoint_every_steps,
            _observers(plan, warmup_curves_path(plan.run_folder, plan.run_id), (), tensorboard=False))
    extras = method.record_extras()
    if "grouping" in extras and distributed.current().is_writer:  # a method that groups its tasks (MmAP)
        write_grouping(plan.run_folder / "grouping", extras["grouping"])


def _observers(plan: RunPlan, curves: Path, val_tasks, tensorboard: bool = True,
               steps_before: int = 0) -> list[TrainObserver]:
    """A training loop's observers: its learning curves at `curves` (one writer: rank 0;
    `val_tasks` validated at each epoch end; TensorBoard with runtime.logger=tensorboard) and
    the fault point of the reliability tests, last (`steps_before`: the run's steps before this
    loop's, protocol=sequential's earlier stages)."""
    runtime = plan.cfg.runtime
    board = tensorboard_path(plan.run_folder, plan.run_id) if tensorboard and runtime.logger == "tensorboard" \
        else None
    curve_logger = [CurveLogger(curves, list(val_tasks), runtime.log_every_steps, board)]
    return [*(curve_logger if distributed.current().is_writer else []), faults.StepFaults(steps_before)]


def _record(plan: RunPlan, dataset: MultiDomainDataset, method: Method, outcome: TrainOutcome, params: dict,
            device: torch.device, stages: SequentialOutcome | None, **measured) -> RunRecord:
    cfg = plan.cfg
    sequential = {} if stages is None else dict(
        task_order=stages.order, stages=[{k: v for k, v in s.items() if k != "history"} for s in stages.stages],
        accuracy_matrix=stages.matrix, sequential_metrics=stages.metrics)
    return RunRecord(
        run_id=plan.run_id, experiment_id=plan.experiment_id, status="complete",
        method=cfg.method.name, mode=method.mode, dataset=dataset.name, model=cfg.model.arch,
        pretrained=str(cfg.model.pretrained), seed=cfg.seed, tasks=[t.name for t in dataset.tasks],
        params=params, sweep=cfg.runtime.sweep, selected_epoch=outcome.best_epoch, history=outcome.history,
        extras=method.record_extras(), config=plan.identity["config"],
        data_fingerprint=plan.identity["data_fingerprint"], weights_fingerprint=plan.identity["weights_fingerprint"],
        dataset_root=str(dataset.root), train_time_s=outcome.train_seconds, resumes=outcome.resumes,
        train_images_per_s=outcome.images_per_s, peak_memory_mb=peak_memory_mb(device),
        device=str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        **dataclasses.asdict(Provenance.of_this_process()), unreadable_images=outcome.unreadable_images,
        world_size=distributed.current().size, backend=distributed.current().backend,
        trial=cfg.runtime.trial, dataset_key=cfg.dataset.name, nonfinite_steps=outcome.nonfinite_steps,
        checkpoint_kept=kept_after_completion(cfg.runtime.keep_checkpoint, plan.checkpoint_path),
        protocol=cfg.protocol, target=cfg.dataset.target, selection=cfg.train.selection, **sequential, **measured)


def print_summary(record: RunRecord) -> None:
    acc = {split: record.accuracy.get(split, {}) for split in ("val", "test")}
    cell = lambda split, name: f"{acc[split][name]:.2f}" if name in acc[split] else "–"  # noqa: E731
    rows = [[name, cell("val", name), cell("test", name)] for name in [*record.tasks, "average"]]
    params = record.params
    print(f"\n{record.method} ({record.mode}) on {record.dataset}, {record.model}, seed {record.seed}")
    print(tabulate(rows, headers=["task", "val acc (%)", "test acc (%)"], tablefmt="github"))
    if record.accuracy_matrix:  # protocol=sequential: every domain after every stage, and the metrics
        order = record.task_order
        rows = [[f"{k + 1}: {order[k]}", *(f"{a:.2f}" for a in row)]
                for k, row in enumerate(record.accuracy_matrix["test"])]
        print(f"\ntest accuracy (%) after each stage ({' -> '.join(order)}):")
        print(tabulate(rows, headers=["after stage", *order], tablefmt="github"))
        metrics = record.sequential_metrics["test"]
        print(", ".join(f"{name.replace('_', ' ')} {'–' if value is None else f'{value:.2f}'}"
                        for name, value in metrics.items()))
    print(f"trainable parameters: {params['trainable']:,} of {params['total']:,} "
          f"({params['trainable_percent']:.4f}% of CLIP)")
    for warning in record.warnings:
        print(f"WARNING: {warning}")
    if record.nonfinite_steps and not any("NaN or inf loss" in w for w in record.warnings):  # older records
        print(f"WARNING: {record.nonfinite_steps} step(s) had a non-finite loss; their updates were skipped.")
    if record.unreadable_images:
        print(f"WARNING: {record.unreadable_images} unreadable images were skipped during training.")
    for split, tasks in (record.images or {}).items():
        skipped = [f"{t} {n['skipped']} of {n['listed']}" for t, n in tasks.items() if n.get("skipped")]
        if skipped:
            print(f"WARNING: unreadable {split} images left out (dataset.unreadable=skip): {', '.join(skipped)}")
    resumed = f", {record.resumes} resume(s)" if record.resumes else ""
    print(f"run id {record.run_id}, wall time {record.wall_time_s:.1f} s{resumed}")

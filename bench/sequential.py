"""protocol=sequential's stages (bench/protocols.py): the domains trained one after another.

Stage k trains domain `task_order[k]` alone through the engine's one Trainer (it knows nothing
of protocols): the stage's data serves that domain for training and for model selection
(`stage_roles`: `train.selection` on the stage's domain), the `train` settings run in full
with their optimiser and schedule built anew, and the parameters start where stage k-1 left
them.  After every stage every domain's validation and test accuracy is measured: row k of the
two accuracy matrices (bench/continual.py computes the metrics from them).

What a stage's domain never reads (`task_readers`: the other domains' sets in `st`, the other
groups' and tasks' sets of MmAP `grouped`) is put back exactly as it was at the start of the
stage: the stage's optimiser steps over whole tensors, and its weight decay would otherwise
shrink sets no gradient of this stage reaches.  So `st` forgets nothing by construction (each
set changes only in its own stage), `mt` carries its one set through every stage, and MmAP
`grouped` carries each group's shared set through its members' stages.  Zero-shot trains
nothing: it is measured once, the same row after every stage (the transfer reference).

Checkpoints: `stages.pt` beside the run's checkpoint holds the stages done (their rows, times
and histories) and the trainable state after the last of them; the stage in progress
checkpoints through its Trainer into the run's `checkpoint.pt`, stamped `<run id>#stage<k>`,
so a run killed in any stage at any step resumes that stage where it stopped, and a checkpoint
of a stage already done is dropped.  Learning curves: one file per stage,
`<run id>.stage<k>.curves.csv`; the fault points count steps over the whole run.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from bench import distributed
from bench.atomic_io import atomic_write
from bench.continual import sequential_metrics
from bench.data import MultiTaskData
from bench.engine import Evaluation, TrainOutcome, evaluate, fit, load_checkpoint
from bench.methods.base import Method
from bench.protocols import TaskRoles, stage_roles

log = logging.getLogger("bench.run")


#: what `stages.pt` holds (`load_checkpoint` refuses a file that lacks one)
STAGES_KEYS = ("run_id", "order", "stages", "matrix", "boundary_resumes", "trainable")


def stage_run_id(run_id: str, stage: int) -> str:
    """The stamp of stage `stage`'s (from 0) checkpoints."""
    return f"{run_id}#stage{stage + 1}"


@dataclass
class SequentialOutcome:
    """What the stages did: per stage its summary (domain, selected epoch, steps, time, history),
    the accuracy matrices per split (rows: stages, columns: domains, both in `order`), the
    metrics per split, the last row's evaluations and the summed training outcome."""

    order: list[str]
    stages: list[dict] = field(default_factory=list)
    matrix: dict[str, list[list[float]]] = field(default_factory=lambda: {"val": [], "test": []})
    last: dict[str, Evaluation] = field(default_factory=dict)
    outcome: TrainOutcome = field(default_factory=TrainOutcome)

    @property
    def metrics(self) -> dict[str, dict]:
        return {split: sequential_metrics(rows) for split, rows in self.matrix.items()}


def unread_entries(method: Method, domain: int) -> dict[str, tuple]:
    """A copy of the trainable entries task `domain` does not read (`task_readers`): {parameter
    name: (its rows, or ... for the whole tensor; their values)}; empty when every task reads
    everything (mt, zero-shot)."""
    params = dict(method.trainable_parameters())
    saved = {}
    for name, who in method.task_readers().items():
        rows = (... if domain not in who else None) if isinstance(who, frozenset) else \
            [r for r, tasks in enumerate(who) if domain not in tasks] or None
        if rows is not None:
            saved[name] = (rows, params[name].detach()[rows].clone())
    return saved


def restore_unread(method: Method, saved: dict[str, tuple]) -> None:
    """Put the entries `unread_entries` copied back, in place."""
    if not saved:
        return
    params = dict(method.trainable_parameters())
    with torch.no_grad():
        for name, (rows, values) in saved.items():
            params[name][rows] = values
    method.on_state_loaded()


class Stages:
    """Runs the stages of one run (see the module docstring); `observers(stage, steps_before)`
    gives each stage's Trainer its observers."""

    def __init__(self, plan, method: Method, everything: MultiTaskData, order,
                 make_data: Callable[[TaskRoles], MultiTaskData], device: torch.device,
                 observers: Callable[[int, int], list]):
        self.plan, self.cfg, self.method, self.device = plan, plan.cfg, method, device
        self.order = list(order)
        self.everything = everything  # every domain's val and test: the matrices' rows
        self.index = {name: t for t, name in enumerate(everything.task_names)}
        self.make_data, self.observers = make_data, observers
        self.progress_path = plan.stages_checkpoint_path

    def run(self) -> SequentialOutcome:
        done = self._resume()
        result = SequentialOutcome(self.order, stages=list(done["stages"]), matrix=done["matrix"])
        trains = bool(self.method.trainable_parameters()) and self.cfg.train.epochs > 0
        boundary_resumes, n_done = done["boundary_resumes"], len(done["stages"])
        # the wall time of earlier processes of this run: the stages they finished, and their part of this one's
        earlier_wall = sum(s["wall_time_s"] for s in done["stages"])
        for stage in range(n_done, len(self.order)):
            started = time.perf_counter()
            domain = self.order[stage]
            unread = unread_entries(self.method, self.index[domain])  # as the stage finds them
            self._drop_stale_checkpoint(stage)
            if n_done and stage == n_done and not self.plan.checkpoint_path.exists():
                boundary_resumes += 1  # resumed at a stage boundary: no Trainer counts it
            data = self.make_data(stage_roles(self.order, stage))
            steps_before = sum(s["steps_run"] for s in result.stages)
            log.info("Stage %d/%d: training %s", stage + 1, len(self.order), domain)
            outcome = fit(self.method, data, self.cfg.train, self.device, self.plan.checkpoint_path,
                          run_id=stage_run_id(self.plan.run_id, stage), progress=self.cfg.runtime.progress,
                          checkpoint_every_steps=self.cfg.runtime.checkpoint_every_steps,
                          observers=self.observers(stage, steps_before))
            restore_unread(self.method, unread)
            earlier_wall += outcome.earlier_wall_s
            if trains or not result.last:
                val, test = self._evaluate()
            else:  # nothing trained (zero-shot, or no epoch): every row is the first one, measured once
                val, test = result.last["val"], result.last["test"]
            result.last = {"val": val, "test": test}
            for split, evaluation in (("val", val), ("test", test)):
                result.matrix[split].append([evaluation.accuracy[d] for d in self.order])
            result.stages.append(_stage_summary(stage, domain, outcome, val, test,
                                                outcome.earlier_wall_s + time.perf_counter() - started))
            self._save(result, boundary_resumes)
            log.info("Stage %d/%d (%s): val average %.2f, test average %.2f", stage + 1, len(self.order), domain,
                     val.accuracy["average"], test.accuracy["average"])
        if not result.last:  # every stage was done before this process: the last row again, measured
            val, test = self._evaluate()
            result.last = {"val": val, "test": test}
            boundary_resumes += 1
        result.outcome = _summed(result.stages, boundary_resumes)
        result.outcome.earlier_wall_s = earlier_wall  # the record adds this process's wall time
        return result

    def _evaluate(self) -> tuple[Evaluation, Evaluation]:
        precision = self.cfg.train.precision
        return (evaluate(self.method, self.everything, "val", self.device, precision),
                evaluate(self.method, self.everything, "test", self.device, precision))

    # ---- the stages' checkpoint ------------------------------------------------------------
    def _resume(self) -> dict:
        """The stages done (their summaries and matrix rows) and the parameters after them."""
        fresh = {"stages": [], "matrix": {"val": [], "test": []}, "boundary_resumes": 0}
        path = self.progress_path
        if not self.cfg.runtime.resume or not path.exists():
            return fresh
        saved = load_checkpoint(path, STAGES_KEYS, "stages checkpoint")
        if saved["run_id"] != self.plan.run_id or saved["order"] != self.order:
            log.warning("Ignoring %s: written for run %s, not %s.", path, saved["run_id"], self.plan.run_id)
            return fresh
        self.method.load_trainable_state(saved["trainable"])
        log.info("Resumed after stage %d of %d (%s)", len(saved["stages"]), len(self.order), path)
        return {"stages": saved["stages"], "matrix": saved["matrix"], "boundary_resumes": saved["boundary_resumes"]}

    def _save(self, result: SequentialOutcome, boundary_resumes: int) -> None:
        if not distributed.current().is_writer:
            return
        saved = dict(zip(STAGES_KEYS, (self.plan.run_id, self.order, result.stages, result.matrix, boundary_resumes,
                                       self.method.trainable_state())))
        atomic_write(self.progress_path, lambda tmp: torch.save(saved, tmp))

    def _drop_stale_checkpoint(self, stage: int) -> None:
        """The run's checkpoint of a stage already done (killed between its end and the next
        stage's first checkpoint) is dropped; one of another stage-to-come is the Trainer's to refuse."""
        path = self.plan.checkpoint_path
        if not path.exists() or not distributed.current().is_writer:
            distributed.barrier()
            return
        stamp = load_checkpoint(path)["run_id"]
        if stamp in {stage_run_id(self.plan.run_id, k) for k in range(stage)}:
            path.unlink()
        distributed.barrier()


def _stage_summary(stage: int, domain: str, outcome: TrainOutcome, val: Evaluation, test: Evaluation,
                   wall_s: float) -> dict:
    return {"stage": stage + 1, "domain": domain, "selected_epoch": outcome.best_epoch,
            "epochs_run": outcome.epochs_run, "steps_run": outcome.steps_run, "train_images": outcome.train_images,
            "train_time_s": outcome.train_seconds, "wall_time_s": wall_s, "resumes": outcome.resumes,
            "nonfinite_steps": outcome.nonfinite_steps, "unreadable_images": outcome.unreadable_images,
            "val_average": val.accuracy["average"], "test_average": test.accuracy["average"],
            "history": [{"stage": stage + 1, "domain": domain, **row} for row in outcome.history]}


def _summed(stages: list[dict], boundary_resumes: int) -> TrainOutcome:
    """The run's training outcome over its stages (history: every stage's rows, in turn)."""
    outcome = TrainOutcome()
    for s in stages:
        outcome.epochs_run += s["epochs_run"]
        outcome.steps_run += s["steps_run"]
        outcome.train_images += s["train_images"]
        outcome.train_seconds += s["train_time_s"]
        outcome.unreadable_images += s["unreadable_images"]
        outcome.nonfinite_steps += s["nonfinite_steps"]
        outcome.history += s["history"]
    outcome.resumes = boundary_resumes + sum(s["resumes"] for s in stages)
    outcome.best_epoch = stages[-1]["selected_epoch"] if stages else None
    return outcome

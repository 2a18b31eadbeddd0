"""The one training loop and the one evaluation every method runs through.

`fit` trains a method with the `train` config as a small state machine (after Dassl's
trainer, with the loop's state as one object): `_resume` loads the last checkpoint,
`_run_epoch` takes the epoch's steps (bench/step.py: the multi-task loss, the optimiser
step), `_select` evaluates on validation and keeps the best trainable state, and `_save`
writes a `TrainState` atomically at every epoch end and every `checkpoint_every_steps`
steps.  The learning-rate schedule is stepped per epoch (`train.schedule`:
bench/schedule.py).  bf16 autocast on CUDA; no host-device synchronisation inside a step.
A restarted run resumes from the latest checkpoint; one of another run id is never resumed.
Over several processes (bench/distributed.py) the step reduces losses and gradients, the
image counts and evaluation counts are summed over the ranks, and rank 0 alone writes.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from bench import distributed
from bench.atomic_io import atomic_write
from bench.observers import TrainObserver
from bench.datasets import DatasetError
from bench.device import autocast_for
from bench.errors import ConfigError, Interrupted, StorageError
from bench.nonfinite import NonFiniteGuard
from bench.input_checks import check_readable
from bench.schedule import build_lr_schedule
from bench.schema import TrainConfig
from bench.step import build_grad_scaler, build_optimizer, fixed_images, train_images_fixed, train_step

log = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    """What training did, for the run's record (summed over every process of a resumed run)."""

    epochs_run: int = 0
    steps_run: int = 0
    train_images: int = 0
    train_seconds: float = 0.0
    unreadable_images: int = 0
    nonfinite_steps: int = 0        # steps whose loss was NaN/inf (their update skipped: bench/nonfinite.py)
    resumes: int = 0                # times this run was resumed from a checkpoint
    earlier_wall_s: float = 0.0     # wall time of earlier processes of this run, to their last checkpoint
    best_epoch: int | None = None
    best_val_average: float | None = None
    history: list[dict] = field(default_factory=list)

    @property
    def images_per_s(self) -> float | None:
        return self.train_images / self.train_seconds if self.train_seconds > 0 else None


@dataclass
class EpochProgress:
    """The running sums of an epoch, kept in a mid-epoch checkpoint: the finite losses' sum and
    count (the epoch's loss is their mean; NaN when no step had a finite loss, never 0)."""

    loss_sum: float = 0.0
    unreadable: int = 0
    losses: int = 0


#: the parts of a checkpoint that are other objects' states, by the name of what they restore
#: ("observers": the state of each observer with a `checkpoint_name`, by that name)
COMPONENT_KEYS = ("trainable", "optimizer", "scheduler", "scaler", "observers")
#: everything a checkpoint holds, no more and no less: the run it belongs to, the components'
#: states and the loop's (`TrainState`'s fields)
CHECKPOINT_KEYS = ("run_id", *COMPONENT_KEYS, "epoch", "step", "best_state", "partial", "outcome")


@dataclass
class TrainState:
    """Where the loop is (`epoch` to run, `step` within it), the best validation state so far,
    the progress of an interrupted epoch and the outcome so far: with the components' states
    (COMPONENT_KEYS), what a checkpoint holds."""

    epoch: int = 0
    step: int = 0
    best_state: dict | None = None
    partial: EpochProgress = field(default_factory=EpochProgress)
    outcome: TrainOutcome = field(default_factory=TrainOutcome)

    def to_checkpoint(self, run_id: str | None, components: dict, wall_s: float) -> dict:
        """The checkpoint of this state: exactly CHECKPOINT_KEYS; `components` maps each of
        COMPONENT_KEYS to its state dict; `wall_s` is the run's wall time so far, every process
        of it, which a resumed process adds to."""
        assert tuple(components) == COMPONENT_KEYS, tuple(components)
        return {"run_id": run_id, **components, "epoch": self.epoch, "step": self.step,
                "best_state": self.best_state, "partial": dataclasses.asdict(self.partial),
                "outcome": {**dataclasses.asdict(self.outcome), "earlier_wall_s": wall_s}}

    @classmethod
    def from_checkpoint(cls, saved: dict) -> tuple["TrainState", dict]:
        """(the state, the components' states) of a checkpoint as `load_checkpoint` returns it;
        the inverse of `to_checkpoint`."""
        state = cls(saved["epoch"], saved["step"], saved["best_state"], EpochProgress(**saved["partial"]),
                    TrainOutcome(**saved["outcome"]))
        return state, {key: saved[key] for key in COMPONENT_KEYS}


class Trainer:
    """Trains `method` on `data` (a `MultiTaskData`); checkpoints go to `checkpoint_path`
    stamped with `run_id`.  Everything it uses is built here; `fit` resumes and runs it."""

    def __init__(self, method, data, cfg: TrainConfig, device: torch.device,
                 checkpoint_path: Path | None = None, run_id: str | None = None, progress: bool = True,
                 checkpoint_every_steps: int = 0, observers: Sequence[TrainObserver] = (),
                 max_steps: int | None = None):
        self.method, self.data, self.cfg, self.device = method, data, cfg, device
        self.observers = list(observers)  # learning curves and other listeners (bench/curves.py)
        self.kept_observers = {o.checkpoint_name: o for o in self.observers if o.checkpoint_name}
        # only an observer that looks inside the step is handed the step's graph
        in_step = [o for o in self.observers if type(o).on_task_losses is not TrainObserver.on_task_losses]
        self.observe_losses = (lambda *step: [o.on_task_losses(*step) for o in in_step]) if in_step else None
        self.max_steps = max_steps  # stop after this many steps (None: every step of every epoch)
        self.checkpoint_path, self.run_id = checkpoint_path, run_id
        self.progress, self.every = progress, checkpoint_every_steps
        self.params = [p for _, p in method.trainable_parameters()]
        self.trains = bool(self.params) and cfg.epochs > 0  # zero-shot, or no epoch: nothing to do
        if self.trains:
            self.optimizer = build_optimizer(self.params, cfg)
            self.scheduler = build_lr_schedule(self.optimizer, cfg)
            self.scaler = build_grad_scaler(device, cfg)
        self.nonfinite = NonFiniteGuard(cfg.max_nonfinite_steps, device)
        self.state = TrainState()
        self.saved_steps = 0  # the run step of the last checkpoint written
        self.n_tasks = len(data.task_names)
        self.started = time.perf_counter()

    def fit(self) -> TrainOutcome:
        if not self.trains:
            return self.state.outcome
        self._resume()
        for observer in self.observers:
            observer.on_start(self.state.outcome.steps_run)
        try:
            self._epochs()
        except KeyboardInterrupt as stop:  # SIGINT, or SIGTERM through errors.raise_on_signal
            raise Interrupted(getattr(stop, "signal_name", "SIGINT"), self._where()) from None
        for observer in self.observers:  # each row is flushed as written: a crash loses none
            observer.on_end()
        if self.cfg.selection != "last" and self.state.best_state is not None:
            self.method.load_trainable_state(self.state.best_state)
        return self.state.outcome

    def _where(self) -> str:
        saved = self.checkpoint_path is not None and self.checkpoint_path.exists()
        kept = (f"the last checkpoint {self.checkpoint_path} (after step {self.saved_steps}) is kept" if saved
                else "no checkpoint had been written yet, so a relaunch starts over")
        return f"at training step {self.state.outcome.steps_run} of the run; {kept}"

    def _epochs(self) -> None:
        for epoch in range(self.state.epoch, self.cfg.epochs):
            if self._at_max_steps():
                break
            row = self._run_epoch(epoch)
            self._select(epoch, row)
            for observer in self.observers:
                observer.on_epoch_end(self.state.outcome.steps_run, row)
            self.state.outcome.history.append(row)
            self.state.outcome.epochs_run = epoch + 1
            log.info("epoch %d/%d loss %.4f lr %.2e%s", epoch + 1, self.cfg.epochs, row["loss"], row["lr"],
                     f" val avg {row['val']['average']:.2f}" if "val" in row else "")
            self.state.epoch, self.state.step = epoch + 1, 0
            self._save()

    # ---- the states ----------------------------------------------------------------------
    def _resume(self) -> None:
        path = self.checkpoint_path
        if path is None or not path.exists():
            return
        saved = load_checkpoint(path)
        if saved["run_id"] != self.run_id:
            raise ConfigError(
                f"The checkpoint {path} was written for run {saved['run_id'] or '(unknown)'}, "
                f"not for this run ({self.run_id}): its config, data or weights differ, so resuming it "
                "would mix two experiments. Delete it or move it aside, or pass runtime.resume=false to "
                "start this run over.")
        self.state, components = TrainState.from_checkpoint(saved)
        self.method.load_trainable_state(components["trainable"])
        self.optimizer.load_state_dict(components["optimizer"])
        self.scheduler.load_state_dict(components["scheduler"])
        if components["scaler"]:  # checkpoints of a disabled scaler (before non-finite skipping) hold none
            self.scaler.load_state_dict(components["scaler"])
        for name, observer in self.kept_observers.items():
            observer.load_state_dict(components["observers"][name])
        self.state.outcome.resumes += 1
        self.nonfinite = NonFiniteGuard(self.cfg.max_nonfinite_steps, self.device, self.state.outcome.nonfinite_steps)
        self.saved_steps = self.state.outcome.steps_run
        log.info("Resumed from %s at epoch %d, step %d", path, self.state.epoch, self.state.step)

    def _run_epoch(self, epoch: int) -> dict:
        """The epoch's steps from `state.step` on; its history row (loss, lr, unreadable)."""
        state, outcome, data = self.state, self.state.outcome, self.data
        self.scheduler.step(epoch)
        self.method.train()
        loss_sum = torch.full((), state.partial.loss_sum, device=self.device)
        losses = torch.full((), state.partial.losses, dtype=torch.long, device=self.device)
        unreadable = state.partial.unreadable
        trained = skipped = 0  # this process's images trained and unreadable since the last save point
        started = time.perf_counter()
        loader = data.train_loader(epoch, state.step)
        end_step = len(loader) + state.step
        fixed_train = train_images_fixed(self.cfg.augment)
        step = state.step
        for batch in tqdm(loader, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", leave=False,
                          disable=not self.progress or not on_terminal() or not distributed.current().is_writer):
            check_readable(batch, "train", data.unreadable, data.task_names)
            skipped += len(batch.unreadable)
            step += 1
            loss = train_step(self.method, batch, self.optimizer, self.scaler, self.device, self.cfg,
                              self.n_tasks, fixed_train, observe=self.observe_losses)
            if loss is not None:
                finite_loss, finite = self.nonfinite.observe(loss, outcome.steps_run + 1)
                loss_sum, losses = loss_sum + finite_loss, losses + finite
                trained += len(batch.labels)
            outcome.steps_run += 1
            for observer in self.observers:
                observer.on_step(outcome.steps_run, epoch + 1, loss, self.optimizer.param_groups[0]["lr"])
            if self.every and step % self.every == 0 and step < end_step:
                outcome.train_seconds += time.perf_counter() - started
                started = time.perf_counter()
                unreadable += self._add_images(trained, skipped)
                trained = skipped = 0
                state.step, state.partial = step, EpochProgress(loss_sum.item(), unreadable, int(losses.item()))
                self._save()
            if self._at_max_steps():
                break
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        outcome.train_seconds += time.perf_counter() - started
        unreadable += self._add_images(trained, skipped)
        outcome.unreadable_images += unreadable
        state.partial = EpochProgress()
        finite_steps = int(losses.item())
        return {"epoch": epoch + 1, "loss": loss_sum.item() / finite_steps if finite_steps else float("nan"),
                "lr": self.optimizer.param_groups[0]["lr"], "unreadable": unreadable}

    def _at_max_steps(self) -> bool:
        return self.max_steps is not None and self.state.outcome.steps_run >= self.max_steps

    def _add_images(self, trained: int, skipped: int) -> int:
        """Add the images trained since the last save point (every rank's: one reduction at a
        save point, never per step) to the outcome; return the unreadable ones (every rank's)."""
        images, unreadable = (int(n) for n in distributed.sum_numbers([trained, skipped]))
        self.state.outcome.train_images += images
        return unreadable

    def _select(self, epoch: int, row: dict) -> None:
        """`train.selection=val` (or `oracle`: the data's val split then serves the held-out domain,
        bench/protocols.py): evaluate on validation into the epoch's history `row`, keep the best
        state (first best wins)."""
        if self.cfg.selection == "last":
            return
        row["val"] = evaluate(self.method, self.data, "val", self.device, self.cfg.precision).accuracy
        outcome = self.state.outcome
        if outcome.best_val_average is None or row["val"]["average"] > outcome.best_val_average:
            outcome.best_val_average, outcome.best_epoch = row["val"]["average"], epoch + 1
            self.state.best_state = self.method.trainable_state()

    def _save(self) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        self.nonfinite.check(self.cfg.precision, lr)  # a diverged run stops before it saves anything
        self.nonfinite.check_parameters(self.params, self.state.outcome.steps_run, self.cfg.precision, lr)
        self.state.outcome.nonfinite_steps = self.nonfinite.count
        if self.checkpoint_path is None or not distributed.current().is_writer:  # one writer: rank 0
            return
        components = {"trainable": self.method.trainable_state(), "optimizer": self.optimizer.state_dict(),
                      "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                      "observers": {name: o.state_dict() for name, o in self.kept_observers.items()}}
        saved = self.state.to_checkpoint(self.run_id, components,
                                         self.state.outcome.earlier_wall_s + time.perf_counter() - self.started)
        atomic_write(self.checkpoint_path, lambda tmp: torch.save(saved, tmp))
        self.saved_steps = self.state.outcome.steps_run


def fit(method, data, cfg: TrainConfig, device: torch.device, checkpoint_path: Path | None = None,
        run_id: str | None = None, progress: bool = True, checkpoint_every_steps: int = 0,
        observers: Sequence[TrainObserver] = ()) -> TrainOutcome:
    """Train `method` on `data` with the `train` config; leaves the selected weights loaded.

    Checkpoints go to `checkpoint_path` at every epoch end and every `checkpoint_every_steps`
    steps (0: epoch ends only), stamped with `run_id`; a checkpoint of another run id is
    never resumed.  `observers` hear every step and epoch (bench/curves.py)."""
    return Trainer(method, data, cfg, device, checkpoint_path, run_id, progress, checkpoint_every_steps,
                   observers).fit()


def warm_up(method, data, cfg: TrainConfig, device: torch.device, checkpoint_path: Path | None = None,
            run_id: str | None = None, progress: bool = True, checkpoint_every_steps: int = 0,
            observers: Sequence[TrainObserver] = ()) -> TrainOutcome | None:
    """Train the warm-up `method` needs before `fit` (`method.warmup(cfg)`: MmAP's grouping),
    through the same Trainer as `fit`: its step, guard, checkpoints (at `checkpoint_path`) and
    `observers` after the warm-up's own; then hand the steps taken to `Warmup.finish`.  Returns
    the warm-up's outcome, or None when the method needs no warm-up."""
    warmup = method.warmup(cfg)
    if warmup is None:
        return None
    outcome = Trainer(warmup.model, data, warmup.train, device, checkpoint_path, run_id, progress,
                      checkpoint_every_steps, [warmup.observer, *observers], warmup.max_steps).fit()
    warmup.finish(outcome.steps_run)
    return outcome


def on_terminal() -> bool:
    """Progress bars only on a terminal: piped into a log, their carriage returns would leave
    hundreds of fragments; there the epoch's log line is the one line per epoch."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def load_checkpoint(path: Path, keys: Sequence[str] = CHECKPOINT_KEYS, what: str = "checkpoint") -> dict:
    """The state saved at `path` (the Trainer's: `keys` = CHECKPOINT_KEYS; protocol=sequential's
    stages checkpoint names its own); a file that cannot be read or lacks one of `keys`
    (truncated, zero bytes, not a checkpoint) is a StorageError naming it and the way to start over."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        missing = [k for k in keys if k not in state]
    except Exception as error:  # noqa: BLE001 - torch raises many types for a damaged file
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:100] if str(error) else 'no detail'}"
    else:
        if not missing:
            return state
        reason = "it lacks " + ", ".join(missing)
        if keys == CHECKPOINT_KEYS and set(missing) <= {"partial", "run_id", "observers"}:
            reason += ": it was written by an older version of this harness"
    size = path.stat().st_size if path.exists() else 0
    raise StorageError(
        f"The {what} {path} ({size} bytes) cannot be resumed from: it is truncated, empty or not a "
        f"{what} of this harness ({reason}). It is left untouched. To start this run over, relaunch "
        f"with runtime.resume=false (the bad file is then replaced), or move it aside "
        f"(mv {path} {path}.bad) and relaunch.")


# ---- evaluation ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Evaluation:
    """One split's evaluation: `accuracy` is the top-1 accuracy (%) per task the split serves
    and their "average"; `counts` per task {"evaluated": n, "skipped": images that failed to
    decode} (every rank's)."""

    accuracy: dict[str, float]
    counts: dict[str, dict[str, int]]


@torch.no_grad()
def evaluate(method, data, split: str, device: torch.device, precision: str = "auto") -> Evaluation:
    """Top-1 accuracy (%) per task over that task's own classes, their average, and the image
    counts.  A task with no image evaluated is an error, never 0 %."""
    method.eval()
    n_tasks = len(data.task_names)
    skipped = [0] * n_tasks
    correct = torch.zeros(n_tasks, dtype=torch.long, device=device)
    total = torch.zeros(n_tasks, dtype=torch.long, device=device)
    with autocast_for(device, precision):
        for batch in data.eval_loader(split):
            check_readable(batch, split, data.unreadable, data.task_names)
            for bad in batch.unreadable:
                skipped[bad.task] += 1
            if not len(batch.labels):
                continue
            images, labels, task_ids = (x.to(device, non_blocking=True)
                                        for x in (batch.images, batch.labels, batch.task_ids))
            hits = (method(images, task_ids, **fixed_images(batch, split)).argmax(dim=-1) == labels).long()
            correct.index_add_(0, task_ids, hits)
            total.index_add_(0, task_ids, torch.ones_like(hits))
    correct, total = distributed.sum_(correct).tolist(), distributed.sum_(total).tolist()  # all ranks' batches
    skipped = [int(n) for n in distributed.sum_numbers(skipped)]
    tasks = data.eval_task_names(split)  # the tasks this split serves (bench/protocols.py: all, or some)
    empty = [name for t, name in enumerate(data.task_names) if total[t] == 0 and name in tasks]
    if empty:
        raise DatasetError(
            f"No {split} image of task(s) {', '.join(empty)} could be evaluated "
            f"({', '.join(f'{skipped[data.task_names.index(n)]} unreadable' for n in empty)}): an accuracy "
            "over no images would read as 0 %. Fix the images (python -m bench.check) or the split.")
    accuracy = {name: 100.0 * correct[t] / total[t] for t, name in enumerate(data.task_names) if name in tasks}
    accuracy["average"] = sum(accuracy[n] for n in tasks) / len(tasks)
    counts = {name: {"evaluated": total[t], "skipped": skipped[t]} for t, name in enumerate(data.task_names)
              if name in tasks}
    return Evaluation(accuracy, counts)

"""The one training loop and the one evaluation every method runs through.

Loss: the sum over tasks of each task's mean cross-entropy over its own classes, so an
ST task's gradient is exactly what it would be if trained alone.  Optimiser: SGD
(momentum 0.9, CoOp's choice) or AdamW; cosine schedule with a constant warm-up, stepped per
epoch (`train.schedule`: Dassl's reference schedule or timm's, bench/schedule.py).  bf16 autocast on
CUDA; no host-device synchronisation inside a step.  Checkpoints (trainable parameters,
optimiser, scheduler, scaler, step, best validation state) are written atomically every
epoch and every `checkpoint_every_steps` steps; a restarted run resumes from the latest.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from bench import faults
from bench.errors import ConfigError, StorageError
from bench.feature_cache import SPEEDUPS
from bench.preflight import check_readable
from bench.results import atomic_write
from bench.schedule import build_lr_schedule
from datasets import DatasetError

log = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    epochs_run: int = 0
    steps_run: int = 0
    train_images: int = 0
    train_seconds: float = 0.0
    unreadable_images: int = 0
    resumes: int = 0                # times this run was resumed from a checkpoint
    earlier_wall_s: float = 0.0     # wall time of earlier processes of this run, to their last checkpoint
    best_epoch: int | None = None
    best_val_average: float | None = None
    history: list[dict] = field(default_factory=list)

    @property
    def images_per_s(self) -> float | None:
        return self.train_images / self.train_seconds if self.train_seconds > 0 else None


def autocast_for(device: torch.device, precision: str):
    """bf16 autocast on CUDA for `auto`; fp32 elsewhere (CPU bf16 only when asked)."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def per_task_losses(logits: torch.Tensor, labels: torch.Tensor, task_ids: torch.Tensor,
                    n_tasks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(each task's mean cross-entropy over its samples, whether the task is in the batch)."""
    per_sample = F.cross_entropy(logits.float(), labels, reduction="none")
    totals = per_sample.new_zeros(n_tasks).index_add(0, task_ids, per_sample)
    counts = per_sample.new_zeros(n_tasks).index_add(0, task_ids, torch.ones_like(per_sample))
    return totals / counts.clamp(min=1), counts > 0


def reduce_task_losses(per_task: torch.Tensor, present: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Sum (or mean) over the tasks present of their mean cross-entropies."""
    if reduction == "mean":
        return per_task.sum() / present.sum().clamp(min=1)
    return per_task.sum()


def multitask_loss(logits: torch.Tensor, labels: torch.Tensor, task_ids: torch.Tensor,
                   n_tasks: int, reduction: str = "sum") -> torch.Tensor:
    """Sum (or mean) over the tasks in the batch of each task's mean cross-entropy."""
    return reduce_task_losses(*per_task_losses(logits, labels, task_ids, n_tasks), reduction)


def build_optimizer(params, cfg) -> torch.optim.Optimizer:
    """`train.optimizer` over `params` (values validated by bench/config.py)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))


def build_grad_scaler(device: torch.device, cfg) -> torch.amp.GradScaler:
    """Loss scaling for fp16 autocast only (bf16 and fp32 need none: then it is a no-op)."""
    return torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")


def build_scheduler(optimizer, cfg):
    """The per-epoch learning-rate schedule `train.schedule` (bench/schedule.py)."""
    return build_lr_schedule(optimizer, cfg)


def fixed_images(batch, split: str) -> dict:
    """`sample_ids` for a method's forward when the batch carries its sample indices."""
    indices = getattr(batch, "indices", None)
    return {} if indices is None else {"sample_ids": (split, indices)}


def train_images_fixed(augment: bool) -> bool:
    """Train images are fixed (cacheable by a frozen image tower) only without augmentation;
    with it, reusing features is an approximation taken only when asked for."""
    return not augment or SPEEDUPS.cache_augmented_images


def _untimed(part: str):
    return contextlib.nullcontext()


def train_step(method, batch, optimizer, scaler, device: torch.device, cfg, n_tasks: int,
               fixed_train: bool, timed=_untimed, observe=None) -> torch.Tensor | None:
    """One optimisation step on a multi-task batch; the detached loss (None: nothing readable).

    `timed(part)` is a context manager around the host-to-device copy ("data") and the
    backward pass ("backward"), for the benchmark; it costs nothing by default.
    `observe(per_task_losses, present, images, labels, task_ids)` sees the step's graph
    before the backward pass (MmAP's grouping warm-up takes per-task gradients there)."""
    images, labels, task_ids, _ = batch
    if not len(labels):
        return None
    with timed("data"):
        images, labels, task_ids = (x.to(device, non_blocking=True) for x in (images, labels, task_ids))
    with autocast_for(device, cfg.precision):
        logits = method(images, task_ids, **(fixed_images(batch, "train") if fixed_train else {}))
    per_task, present = per_task_losses(logits, labels, task_ids, n_tasks)
    if observe is not None:
        observe(per_task, present, images, labels, task_ids)
    loss = reduce_task_losses(per_task, present, cfg.task_loss)
    if (extra := method.extra_loss()) is not None:
        loss = loss + extra
    optimizer.zero_grad(set_to_none=True)
    with timed("backward"):
        scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def evaluate(method, data, split: str, device: torch.device, precision: str = "auto") -> dict[str, float]:
    """Top-1 accuracy (%) per task over that task's own classes, and their average."""
    return evaluate_counted(method, data, split, device, precision)[0]


@torch.no_grad()
def evaluate_counted(method, data, split: str, device: torch.device,
                     precision: str = "auto") -> tuple[dict[str, float], dict[str, dict[str, int]]]:
    """(accuracies as `evaluate`, {task: {"evaluated": n, "skipped": images that failed to
    decode}}).  A task with no image evaluated is an error, never 0 %."""
    method.eval()
    skipped = [0] * len(data.task_names)
    n_tasks = len(data.task_names)
    correct = torch.zeros(n_tasks, dtype=torch.long, device=device)
    total = torch.zeros(n_tasks, dtype=torch.long, device=device)
    with autocast_for(device, precision):
        for batch in data.eval_loader(split):
            images, labels, task_ids, _ = batch
            check_readable(batch, split, data.unreadable, data.task_names)
            for bad in getattr(batch, "unreadable", ()):
                skipped[bad.task] += 1
            if not len(labels):
                continue
            images, labels, task_ids = (x.to(device, non_blocking=True) for x in (images, labels, task_ids))
            hits = (method(images, task_ids, **fixed_images(batch, split)).argmax(dim=-1) == labels).long()
            correct.index_add_(0, task_ids, hits)
            total.index_add_(0, task_ids, torch.ones_like(hits))
    correct, total = correct.tolist(), total.tolist()
    empty = [name for t, name in enumerate(data.task_names) if total[t] == 0]
    if empty:
        raise DatasetError(
            f"No {split} image of task(s) {', '.join(empty)} could be evaluated "
            f"({', '.join(f'{skipped[data.task_names.index(n)]} unreadable' for n in empty)}): an accuracy "
            "over no images would read as 0 %. Fix the images (python -m datasets.check) or the split.")
    results = {name: 100.0 * correct[t] / total[t] for t, name in enumerate(data.task_names)}
    results["average"] = sum(results[n] for n in data.task_names) / n_tasks
    counts = {name: {"evaluated": total[t], "skipped": skipped[t]} for t, name in enumerate(data.task_names)}
    return results, counts


def fit(method, data, cfg, device: torch.device, checkpoint_path: Path | None = None,
        run_id: str | None = None, progress: bool = True, checkpoint_every_steps: int = 0) -> TrainOutcome:
    """Train `method` on `data` with the `train` config; leaves the selected weights loaded.

    Checkpoints go to `checkpoint_path` at every epoch end and every `checkpoint_every_steps`
    steps (0: epoch ends only), stamped with `run_id`; a checkpoint of another run id is
    never resumed."""
    outcome = TrainOutcome()
    params = [p for _, p in method.trainable_parameters()]
    epochs = int(cfg.epochs)
    if not params or epochs == 0:
        return outcome
    optimizer = build_optimizer(params, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    scaler = build_grad_scaler(device, cfg)
    start_epoch, start_step, best_state = 0, 0, None
    partial = {"loss_sum": 0.0, "unreadable": 0}  # progress of an epoch interrupted mid-way

    fit_started = time.perf_counter()
    if checkpoint_path is not None and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        if state.get("run_id") != run_id:
            raise ConfigError(
                f"The checkpoint {checkpoint_path} was written for run {state.get('run_id') or '(unknown)'}, "
                f"not for this run ({run_id}): its config, data or weights differ, so resuming it would "
                "mix two experiments. Delete it or move it aside, or pass runtime.resume=false to start "
                "this run over.")
        method.load_trainable_state(state["trainable"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, start_step, best_state = state["epoch"], state["step"], state["best_state"]
        partial = state.get("partial", partial)
        for key, value in state["outcome"].items():
            setattr(outcome, key, value)
        outcome.resumes += 1
        log.info("Resumed from %s at epoch %d, step %d", checkpoint_path, start_epoch, start_step)

    def save(epoch: int, step: int) -> None:
        if checkpoint_path is None:
            return
        wall = outcome.earlier_wall_s + time.perf_counter() - fit_started
        state = {"trainable": method.trainable_state(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                 "epoch": epoch, "step": step, "best_state": best_state, "partial": partial,
                 "outcome": {**vars(outcome), "earlier_wall_s": wall}, "run_id": run_id}
        atomic_write(checkpoint_path, lambda tmp: torch.save(state, tmp))

    every = checkpoint_every_steps
    n_tasks = len(data.task_names)
    for epoch in range(start_epoch, epochs):
        scheduler.step(epoch)
        method.train()
        loss_sum = torch.full((), partial["loss_sum"], device=device)
        unreadable = partial["unreadable"]
        started = time.perf_counter()
        loader = data.train_loader(epoch, start_step)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        step = start_step
        fixed_train = train_images_fixed(cfg.augment)
        for batch in bar:
            check_readable(batch, "train", data.unreadable, data.task_names)
            unreadable += batch[3]
            step += 1
            loss = train_step(method, batch, optimizer, scaler, device, cfg, n_tasks, fixed_train)
            if loss is not None:
                loss_sum = loss_sum + loss
                outcome.train_images += len(batch[1])
            outcome.steps_run += 1
            faults.at_step(outcome.steps_run)
            if every and step % every == 0 and step < len(loader) + start_step:
                outcome.train_seconds += time.perf_counter() - started
                started = time.perf_counter()
                partial = {"loss_sum": loss_sum.item(), "unreadable": unreadable}
                save(epoch, step)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        outcome.train_seconds += time.perf_counter() - started
        outcome.unreadable_images += unreadable
        steps_this_epoch = max(step, 1)
        start_step, partial = 0, {"loss_sum": 0.0, "unreadable": 0}
        record = {"epoch": epoch + 1, "loss": loss_sum.item() / steps_this_epoch,
                  "lr": optimizer.param_groups[0]["lr"], "unreadable": unreadable}
        if cfg.selection == "val":
            record["val"] = evaluate(method, data, "val", device, cfg.precision)
            if outcome.best_val_average is None or record["val"]["average"] > outcome.best_val_average:
                outcome.best_val_average, outcome.best_epoch = record["val"]["average"], epoch + 1
                best_state = method.trainable_state()
        outcome.history.append(record)
        outcome.epochs_run = epoch + 1
        log.info("epoch %d/%d loss %.4f lr %.2e%s", epoch + 1, epochs, record["loss"], record["lr"],
                 f" val avg {record['val']['average']:.2f}" if "val" in record else "")
        save(epoch + 1, 0)

    if cfg.selection == "val" and best_state is not None:
        method.load_trainable_state(best_state)
    return outcome


def load_checkpoint(path: Path) -> dict:
    """The training state saved at `path`; a file that cannot be read (truncated, zero bytes,
    not a checkpoint) is a StorageError naming it and the way to start over."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        missing = [k for k in CHECKPOINT_KEYS if k not in state]
    except Exception as error:  # noqa: BLE001 - torch raises many types for a damaged file
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:100] if str(error) else 'no detail'}"
    else:
        if not missing:
            return state
        reason = "it lacks " + ", ".join(missing)
    size = path.stat().st_size if path.exists() else 0
    raise StorageError(
        f"The checkpoint {path} ({size} bytes) cannot be resumed from: it is truncated, empty or not a "
        f"checkpoint of this harness ({reason}). It is left untouched. To start this run over, relaunch "
        f"with runtime.resume=false (the bad file is then replaced), or move it aside "
        f"(mv {path} {path}.bad) and relaunch.")


CHECKPOINT_KEYS = ("trainable", "optimizer", "scheduler", "scaler", "epoch", "step", "best_state", "outcome")

"""Learning curves: what the training loop reports as it goes, and where it is written.

`CurveLogger` is a `TrainObserver` (bench/observers.py) of the loop's steps and epochs, and
writes them:

* `<run id>.curves.csv`, one row per logged step with the columns
  `CURVE_COLUMNS` and then `val <task>` per task and `val average`: a row at every epoch end
  (kind `epoch`: the epoch's mean training loss and its validation accuracies) and, with
  `runtime.log_every_steps=k`, one every k steps (kind `step`: the mean loss since the last
  row; validation columns empty);
* `<run id>.warmup.curves.csv` the same for a method's warm-up (MmAP's grouping), if it has one;
* `<run id>.stage<k>.curves.csv` instead of the first, one per stage of protocol=sequential
  (bench/sequential.py), each validating its stage's domain (`read_stage_curves` joins them);
* with `runtime.logger=tensorboard`, the same scalars as TensorBoard event files in
  `<run id>.tb/` (torch.utils.tensorboard; the `tensorboard` extra).

While a run trains, these files are beside its checkpoint (`<checkpoint_dir>/<run id>/`, where a
resume continues them); once its record is written, `publish_curves` moves them beside the record,
so the results folder holds the curves of finished runs only.

A resumed run first drops the rows logged after its checkpoint, so the file holds each step
once however often the run was interrupted.  Only the loss of a logged step is read from
the device (one synchronisation every k steps, none in between).
"""
from __future__ import annotations

import csv
import errno
import os
import shutil
from pathlib import Path
from typing import Sequence

import pandas as pd

from bench.errors import ConfigError, StorageError
from bench.observers import TrainObserver

CURVE_COLUMNS = ("kind", "epoch", "step", "loss", "lr")


class CurveLogger(TrainObserver):
    """Writes the learning curves of one run to CSV (and TensorBoard).  The loss summed since the
    last step row is kept in the loop's checkpoints, so after a resume the first row still covers
    `every_steps` steps, as in the uninterrupted run."""

    checkpoint_name = "curves"

    def __init__(self, csv_path: Path, tasks: Sequence[str], every_steps: int = 0,
                 tensorboard_dir: Path | None = None):
        self.path, self.tasks, self.every = Path(csv_path), list(tasks), every_steps
        self.columns = [*CURVE_COLUMNS, *[f"val {t}" for t in self.tasks], "val average"]
        self.tensorboard_dir = tensorboard_dir
        self.writer = None
        self.loss_sum, self.losses = None, 0

    def on_start(self, steps_done: int) -> None:
        kept = []
        if self.path.exists() and steps_done > 0:
            with self.path.open(newline="") as file:
                kept = [row for row in csv.DictReader(file) if int(row["step"]) <= steps_done]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as file:
            writer = csv.DictWriter(file, self.columns)
            writer.writeheader()
            writer.writerows(kept)
        if self.tensorboard_dir is not None:
            self.writer = tensorboard_writer(self.tensorboard_dir, purge_step=steps_done + 1)

    def on_step(self, step: int, epoch: int, loss, lr: float) -> None:
        if not self.every:
            return
        if loss is not None:
            self.loss_sum = loss.detach() if self.loss_sum is None else self.loss_sum + loss.detach()
            self.losses += 1
        if step % self.every == 0:
            mean = float(self.loss_sum) / self.losses if self.losses else float("nan")
            self._write({"kind": "step", "epoch": epoch, "step": step, "loss": mean, "lr": lr})
            self.loss_sum, self.losses = None, 0

    def on_epoch_end(self, step: int, row: dict) -> None:
        values = {"kind": "epoch", "epoch": row["epoch"], "step": step, "loss": row["loss"], "lr": row["lr"]}
        for task, accuracy in row.get("val", {}).items():
            values[f"val {task}"] = accuracy
        self._write(values)

    def state_dict(self) -> dict:
        return {"loss_sum": None if self.loss_sum is None else float(self.loss_sum), "losses": self.losses}

    def load_state_dict(self, state: dict) -> None:
        self.loss_sum, self.losses = state["loss_sum"], state["losses"]

    def on_end(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _write(self, values: dict) -> None:
        with self.path.open("a", newline="") as file:
            csv.DictWriter(file, self.columns).writerow(values)
        if self.writer is not None:
            prefix = "epoch" if values["kind"] == "epoch" else "step"
            for key, value in values.items():
                if key not in ("kind", "epoch", "step") and value is not None:
                    # "val Real World" -> val/Real World: the first space only, a task name keeps its own
                    self.writer.add_scalar(f"{prefix}/{key.replace(' ', '/', 1)}", value, values["step"])
            self.writer.flush()


def tensorboard_writer(folder: Path, purge_step: int):
    """A TensorBoard SummaryWriter on `folder` (events from `purge_step` on are dropped)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("runtime.logger=tensorboard needs TensorBoard, which is not installed. Install the "
                          "extra (pip install -e '.[tensorboard]') or keep the default runtime.logger=csv "
                          "(the curves CSV is written either way).") from None
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


def curves_path(results_dir: Path | str, run_id: str) -> Path:
    return Path(results_dir) / f"{run_id}.curves.csv"


def warmup_curves_path(results_dir: Path | str, run_id: str) -> Path:
    """The curves of the run's warm-up (MmAP's grouping: bench/engine.py `warm_up`), its own steps."""
    return Path(results_dir) / f"{run_id}.warmup.curves.csv"


def stage_curves_path(folder: Path | str, run_id: str, stage: int) -> Path:
    """The curves of stage `stage` (from 0) of a protocol=sequential run."""
    return Path(folder) / f"{run_id}.stage{stage + 1}.curves.csv"


def tensorboard_path(results_dir: Path | str, run_id: str) -> Path:
    return Path(results_dir) / f"{run_id}.tb"


def publish_curves(live_folder: Path, results_dir: Path | str, run_id: str) -> None:
    """Move a finished run's curves (`<run id>.curves.csv`, `.warmup.curves.csv`,
    `.stage<k>.curves.csv`, the `.tb` folder: every `<run id>.*` beside its checkpoint) to beside
    its record; each arrives whole (a rename, or a copy renamed into place across file systems).
    Called after the record is written, and again by a relaunch that finds the record, which
    finishes a move that a kill cut short."""
    for source in sorted(Path(live_folder).glob(f"{run_id}.*")):
        target = Path(results_dir) / source.name
        try:
            _move(source, target)
        except OSError as error:
            raise StorageError(f"The run's record is written, but its learning curves could not be moved from "
                               f"{source} to {target} ({error.strerror}). Free space or fix the permissions "
                               "there, then relaunch the same command: it finds the record and moves them.") from None


def _move(source: Path, target: Path) -> None:
    if target.is_dir():  # a rerun's (runtime.skip_done=false) TensorBoard folder replaces the earlier one
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, partial)
        os.replace(partial, target)
        (shutil.rmtree if source.is_dir() else os.unlink)(source)


def read_epoch_curves(path: Path) -> pd.DataFrame | None:
    """The epoch rows of a curves CSV (None when the run wrote none: nothing trained)."""
    if not Path(path).exists():
        return None
    frame = pd.read_csv(path)
    frame = frame[frame["kind"] == "epoch"]
    return frame if len(frame) else None


def read_stage_curves(results_dir: Path | str, run_id: str, stages: int) -> pd.DataFrame | None:
    """The epoch rows of every stage of a protocol=sequential run, one after another: epochs
    numbered over the whole run, a `stage` column (None when no stage trained: zero-shot)."""
    frames, done = [], 0
    for stage in range(stages):
        frame = read_epoch_curves(stage_curves_path(results_dir, run_id, stage))
        if frame is None:
            continue
        frame = frame.assign(epoch=frame["epoch"] + done, stage=stage + 1)
        done = int(frame["epoch"].max())
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else None

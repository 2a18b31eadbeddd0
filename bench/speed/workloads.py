"""What the benchmark measures on: method configs, synthetic tasks and images, or a dataset's loaders."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from bench.app import CONFIG_DIR, method_config
from bench.data import MultiTaskBatch
from bench.methods import METHODS
from bench.schema import MethodConfig, RunConfig, SpeedConfig


OFFICE_HOME_CLASSES = tuple(name.replace("_", " ") for name in (
    "Alarm_Clock Backpack Batteries Bed Bike Bottle Bucket Calculator Calendar Candles Chair "
    "Clipboards Computer Couch Curtains Desk_Lamp Drill Eraser Exit_Sign Fan File_Cabinet Flipflops "
    "Flowers Folder Fork Glasses Hammer Helmet Kettle Keyboard Knives Lamp_Shade Laptop Marker Monitor "
    "Mop Mouse Mug Notebook Oven Pan Paper_Clip Pen Pencil Postit_Notes Printer Push_Pin Radio "
    "Refrigerator Ruler Scissors Screwdriver Shelf Sink Sneakers Soda Speaker Spoon TV Table Telephone "
    "ToothBrush Toys Trash_Can Webcam").split())
VARIANTS = {"compare": ("baseline", "fast"), "fast": ("fast",), "baseline": ("baseline",)}
PARTS = ("text", "image", "backward", "data")


# ---- what to measure ------------------------------------------------------------------------
def method_configs(cfg: RunConfig, scfg: SpeedConfig) -> list[MethodConfig]:
    """Typed method configs to benchmark: `method=...` on the command line picks that one,
    else `speed.methods` (all: every registered method in each of its modes)."""
    chosen = [o.split("=", 1)[1] for o in _task_overrides() if o.split("=", 1)[0] == "method"]
    if chosen:
        return [cfg.method]
    wanted = scfg.methods
    if wanted == "all":
        wanted = [f"{name}:{mode}" for name in METHODS for mode in METHODS[name].modes]
    out = []
    for item in wanted:
        name, _, mode = str(item).partition(":")
        method = OmegaConf.load(Path(CONFIG_DIR) / "method" / f"{name}.yaml").method
        if mode:
            method.mode = mode
        out.append(method_config(method))
    return out


def _task_overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:  # not under Hydra (tests)
        return []


def synthetic_tasks(n_tasks: int, n_classes: int) -> list[SimpleNamespace]:
    names = [OFFICE_HOME_CLASSES[c % len(OFFICE_HOME_CLASSES)] + ("" if c < len(OFFICE_HOME_CLASSES)
             else f" {c // len(OFFICE_HOME_CLASSES)}") for c in range(n_classes)]
    return [SimpleNamespace(name=f"task{t}", classnames=tuple(names)) for t in range(n_tasks)]


class SyntheticData:
    """Random images as a seeded loader would give them: sample i of an epoch is a pure function
    of (i, epoch) with augmentation, of i alone without.  An epoch has `epoch_steps` steps."""

    unreadable = "skip"  # every synthetic image is readable

    def __init__(self, n_tasks: int, n_classes: int, batch_size: int, epoch_steps: int,
                 eval_per_task: int, image_size: int):
        self.n_tasks, self.n_classes, self.batch = n_tasks, n_classes, batch_size
        self.epoch_steps, self.eval_per_task, self.size = max(1, epoch_steps), eval_per_task, image_size

    def _images(self, indices, salt: int) -> torch.Tensor:
        return torch.stack([torch.randn(3, self.size, self.size,
                                        generator=torch.Generator().manual_seed(int(i) * 1_000_003 + salt))
                            for i in indices])

    def _batch(self, indices: torch.Tensor, per_task: int, salt: int) -> MultiTaskBatch:
        tasks = torch.arange(self.n_tasks).repeat_interleave(per_task)
        labels = indices % self.n_classes
        return MultiTaskBatch(self._images(indices, salt), labels, tasks, indices)

    def train_batch(self, step: int, augment: bool) -> MultiTaskBatch:
        epoch, slot = divmod(step, self.epoch_steps)
        pool = self.batch * self.epoch_steps
        indices = torch.cat([t * pool + slot * self.batch + torch.arange(self.batch) for t in range(self.n_tasks)])
        return self._batch(indices, self.batch, epoch + 1 if augment else 0)

    @property
    def task_names(self) -> list[str]:
        return [f"task{t}" for t in range(self.n_tasks)]

    @property
    def eval_images(self) -> int:
        return self.n_tasks * self.eval_per_task

    def eval_task_names(self, split: str) -> list[str]:
        return self.task_names

    def eval_loader(self, split: str) -> list[MultiTaskBatch]:
        """One fixed batch of every task (what bench.engine.evaluate iterates)."""
        return [self._batch(torch.arange(self.eval_images), self.eval_per_task, 0)]


class RealData:
    """The dataset's own loaders (as bench.run builds them), cycled over epochs."""

    def __init__(self, data):
        self.data, self.task_names, self.unreadable = data, data.task_names, data.unreadable
        self.eval_images = sum(len(t.test) for t in data.dataset.tasks)
        self._iter, self._epoch = None, -1

    def train_batch(self, step: int, augment: bool):
        while True:
            if self._iter is None:
                self._epoch += 1
                self._iter = iter(self.data.train_loader(self._epoch))
            try:
                return next(self._iter)
            except StopIteration:
                self._iter = None

    def eval_task_names(self, split: str) -> list[str]:
        return self.data.eval_task_names(split)

    def eval_loader(self, split: str):
        return self.data.eval_loader(split)

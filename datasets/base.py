"""Core data types shared by every dataset builder.

A *multi-domain dataset* is a tuple of :class:`Task` objects, one per domain
(cross-domain multi-task learning: every domain is a task with its own label
space, usually the same class list). Samples are ``(absolute image path, label)``
pairs; images are decoded lazily by ``ImageListDataset`` (datasets/decoding.py, the
torch side: this module imports no torch, so a command that only checks a config or a
dataset's files never pays for it).
"""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from bench.errors import UserError

Sample = tuple[str, int]


class DatasetError(UserError):
    """A dataset could not be found or built.

    The message is one self-contained paragraph: what was expected, what was
    found, and how to fix it (e.g. ``dataset.root=/path`` or ``CPB_DATA``).
    """


@dataclass(frozen=True)
class Task:
    """One domain of a multi-domain dataset, i.e. one task.

    ``classnames[label]`` is the readable class name used in text prompts
    (``"Alarm_Clock" -> "alarm clock"``).
    """

    name: str
    classnames: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    test: tuple[Sample, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def split(self, name: str) -> tuple[Sample, ...]:
        """The samples of split ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; expected train, val or test")
        return getattr(self, name)


@dataclass(frozen=True)
class MultiDomainDataset:
    """A dataset whose domains are the tasks (``tasks[i].name`` is the domain)."""

    name: str
    root: str
    tasks: tuple[Task, ...]

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"no task {name!r} in {self.name}; tasks: {', '.join(self.task_names)}")


def load_rgb(path: str) -> Image.Image:
    """Open ``path`` and return a fully decoded RGB image (raises on failure)."""
    with Image.open(path) as im:
        return im.convert("RGB")

"""Core data types shared by every dataset builder.

A *multi-domain dataset* is a tuple of :class:`Task` objects, one per domain
(cross-domain multi-task learning: every domain is a task with its own label
space, usually the same class list). Samples are ``(absolute image path, label)``
pairs; images are decoded lazily by :class:`ImageListDataset`.

Unreadable images never crash an epoch: :class:`ImageListDataset` returns
``None`` for them and :func:`collate_skip_unreadable` drops those items and
returns how many it dropped, so the training loop can count and report them.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
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


class ImageListDataset(torch.utils.data.Dataset):
    """Map-style dataset over ``(path, label)`` samples.

    ``__getitem__`` returns ``(transform(rgb_image), label)``, or ``None`` when
    the file is missing, truncated or not an image (use
    :func:`collate_skip_unreadable` as the DataLoader's ``collate_fn``).
    """

    def __init__(self, samples: Sequence[Sample], transform: Optional[Callable] = None, lazy: bool = False):
        self.samples = list(samples)
        self.transform = transform
        self.lazy = lazy  # the transform receives the image opened, not decoded (it decodes it: draft)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            image = Image.open(path) if self.lazy else load_rgb(path)
            if self.lazy and self.transform is not None:  # decoding happens inside the transform
                return self.transform(image), label
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            # OSError covers FileNotFoundError and PIL.UnidentifiedImageError.
            warnings.warn(f"skipping unreadable image {path}: {exc}", RuntimeWarning, stacklevel=2)
            return None
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def collate_skip_unreadable(batch) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Collate ``(image, label)`` items, dropping ``None`` (unreadable) ones.

    Returns ``(images, labels, num_unreadable)``. When every item was
    unreadable, ``images`` and ``labels`` are empty tensors (``numel() == 0``);
    the caller should skip such a batch.
    """
    items = [item for item in batch if item is not None]
    num_unreadable = len(batch) - len(items)
    if not items:
        return torch.empty(0), torch.empty(0, dtype=torch.long), num_unreadable
    images = torch.stack([img for img, _ in items])
    labels = torch.as_tensor([int(lbl) for _, lbl in items], dtype=torch.long)
    return images, labels, num_unreadable

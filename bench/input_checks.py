"""Checks of a run's inputs, so that a bad input ends in one clear paragraph rather than a
traceback (or a wrong number) after an epoch: most run before the run loads a model or trains
a step, `check_readable` on every batch.  See docs/reliability.md for every case.

- `check_writable`: every folder the run will write to exists or can be made, and
  accepts a file (a read-only results or checkpoint folder is found before any work).
- `screen_images`: every image of every split passes the cheap check of
  `datasets.image_scan` (cached); with `dataset.unreadable=error` (default) a bad file is an
  error listing the files, with `dataset.unreadable=skip` the files are left out and
  counted per split and task, and the record gives those counts and the denominators.
- `check_splits`: no task has an empty train, val or test split (an empty split would
  otherwise read as 0 % accuracy and be averaged in);
- `check_readable`: a batch's images that failed to decode are an error under
  `dataset.unreadable=error`, counted under `skip` (per batch, in the loop and the evaluation);
- `resolve_num_workers`: `runtime.num_workers=auto` as a number, capped by the usable cores.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from bench.errors import ConfigError, StorageError
from bench.datasets import DatasetError
from bench.datasets.image_scan import cache_file_for, scan

SPLITS = ("train", "val", "test")
POLICIES = ("error", "skip")


def check_writable(folders: Mapping[str, str | Path], user: str = "the run") -> None:
    """`folders`: {config key or option: folder}.  Raises StorageError naming the key, the
    folder and `user` (who would fail)."""
    for key, folder in folders.items():
        folder = Path(folder).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".cpb-write-test-"):
                pass
        except OSError as error:
            raise StorageError(
                f"{key}={folder} is not writable ({error.strerror or error}); {user} would fail "
                f"when it first writes there. Make the folder writable, or pass {key}=<a writable "
                "folder>.") from None


def unreadable_images(dataset, cache_dir: str | Path | None, workers: int = 8) -> dict[str, str]:
    """{path: why} of the images the splits list that cannot be read (the start-up scan,
    datasets/image_scan.py; its verdicts cached in `cache_dir` by path, size and mtime)."""
    paths = [p for task in dataset.tasks for split in SPLITS for p, _ in task.split(split)]
    cache = cache_file_for(cache_dir, dataset.root) if cache_dir else None
    return scan(paths, cache, workers)


def screen_images(dataset, policy: str, cache_dir: str | Path | None, workers: int = 8):
    """(dataset without the unreadable images, {split: {task: number left out}}).

    With policy "error" any unreadable image raises a DatasetError listing them."""
    if policy not in POLICIES:
        raise ConfigError(f"dataset.unreadable={policy!r}: use error (stop and list unreadable images, "
                          "the default) or skip (leave them out and count them in the record).")
    bad = unreadable_images(dataset, cache_dir, workers)
    skipped = {split: {task.name: sum(p in bad for p, _ in task.split(split)) for task in dataset.tasks}
               for split in SPLITS}
    if bad and policy == "error":
        listed = "; ".join(f"{p} ({why})" for p, why in list(sorted(bad.items()))[:10])
        more = f" ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        per_split = ", ".join(f"{split} {sum(n.values())}" for split, n in skipped.items())
        raise DatasetError(
            f"{dataset.name}: {len(bad)} image(s) listed in the splits cannot be read ({per_split}): "
            f"{listed}{more}. Fix or remove those files (python -m bench.check lists them all), or "
            "pass dataset.unreadable=skip to leave them out; the record then counts them per split and "
            "task and accuracy is over the readable images only.")
    if not bad:
        return dataset, skipped
    tasks = tuple(dataclasses.replace(task, **{split: tuple(s for s in task.split(split) if s[0] not in bad)
                                               for split in SPLITS}) for task in dataset.tasks)
    return dataclasses.replace(dataset, tasks=tasks), skipped


def check_readable(batch, split: str, policy: str, task_names: Sequence[str]) -> None:
    """Apply `dataset.unreadable` to the images of `batch` that failed to decode (the
    start-up check finds the others): "error" stops with their list; "skip" leaves them
    out, counted by the caller."""
    bad = getattr(batch, "unreadable", ())
    if bad and policy == "error":
        raise DatasetError(
            f"{len(bad)} {split} image(s) could not be decoded: "
            f"{'; '.join(f'{task_names[b.task]}: {b.path}' for b in bad[:10])}. Fix or remove those "
            "files, or pass dataset.unreadable=skip to leave them out (counted in the record). The "
            "run's last checkpoint is kept: a relaunch resumes from it.")


def check_splits(dataset, skipped: Mapping[str, Mapping[str, int]] | None = None) -> None:
    """Raise a DatasetError when any task has an empty split, with every task's counts."""
    empty = [(task.name, split) for task in dataset.tasks for split in SPLITS if not task.split(split)]
    if not empty:
        return
    skipped = skipped or {}
    counts = "; ".join(
        f"{task.name}: " + ", ".join(f"{split} {len(task.split(split))}"
                                     + (f" (+{skipped[split][task.name]} unreadable)"
                                        if skipped.get(split, {}).get(task.name) else "")
                                     for split in SPLITS)
        for task in dataset.tasks)
    which = ", ".join(f"{task} {split}" for task, split in empty)
    raise DatasetError(
        f"{dataset.name}: empty split(s): {which}. An empty split cannot be trained on or would read "
        f"as 0 % accuracy. Images per task: {counts}. Raise dataset.val_fraction / dataset.test_fraction "
        "(each class needs at least one image per split after rounding), list images in the split "
        "files of dataset.split_dir, or fix the unreadable images.")


def resolve_num_workers(setting) -> int:
    """`runtime.num_workers`: an integer, or `auto` = the cores this process may use, at most 8
    (more workers than cores only adds contention and a DataLoader warning)."""
    if str(setting) == "auto":
        return min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)
    try:
        workers = int(setting)
    except (TypeError, ValueError):
        workers = -1
    if workers < 0:
        raise ConfigError(f"runtime.num_workers={setting!r}: use auto (the usable cores, at most 8), 0 "
                          "(load in the main process) or a positive number of loader processes.")
    return workers


def screen_dataset(cfg, dataset):
    """The run's dataset after the start-up checks: (dataset, {split: {task: images left out}})."""
    workers = max(1, resolve_num_workers(cfg.runtime.num_workers))
    dataset, screened = screen_images(dataset, cfg.dataset.unreadable, cfg.runtime.cache_dir, workers * 4)
    check_splits(dataset, screened)
    return dataset, screened

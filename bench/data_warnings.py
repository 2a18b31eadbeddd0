"""Degenerate data a run must not pass over in silence (docs/reliability.md, "Degenerate data").

Decided case by case, after the listing and the image screen and before the model is built:

- a task with a single class is an **error**: its accuracy is 100 % with loss 0 whatever the
  method does, which reads as a result and means nothing;
- `dataset.few_shot=k` with a class that has fewer than k training images: an **error** by
  default (the record would claim k shots that were never there); with
  `dataset.few_shot_short=warn` the run trains on what there is and the record's `warnings`
  state the shots actually used (its `images.train` gives the counts per task);
- a class with no training image at all (its images all in val/test, or all unreadable and
  skipped): a **warning** in the record; the class is still scored, a zero-shot prior at best.
"""
from __future__ import annotations

from collections import Counter

from bench.datasets import DatasetError
from bench.schema import DatasetConfig


def _per_class(task) -> Counter:
    return Counter(label for _, label in task.train)


def degenerate_data_warnings(cfg: DatasetConfig, dataset) -> list[str]:
    """The warnings for the record; raises DatasetError for the cases that are errors."""
    single = [f"{t.name} ({t.classnames[0] if t.classnames else 'no class'})" for t in dataset.tasks
              if t.num_classes < 2]
    if single:
        raise DatasetError(
            f"Task(s) {', '.join(single)} of {dataset.name} have a single class: their accuracy would be 100 % "
            "with loss 0 whatever the method learns, which means nothing. Give every domain at least two class "
            f"folders under {dataset.root}, or leave those domains out with dataset.domains=[...].")
    warnings = []
    if cfg.few_shot is not None:
        short = {t.name: {t.classnames[c]: n for c, n in sorted(_per_class(t).items()) if n < cfg.few_shot}
                 for t in dataset.tasks}
        short = {task: classes for task, classes in short.items() if classes}
        if short:
            used = {task: min(classes.values()) for task, classes in short.items()}
            detail = "; ".join(f"{task}: {len(classes)} class(es) below, as few as {used[task]} (e.g. "
                               f"{next(iter(classes))})" for task, classes in short.items())
            text = (f"dataset.few_shot={cfg.few_shot} but some classes have fewer training images: {detail}")
            if cfg.few_shot_short == "error":
                raise DatasetError(
                    f"{text}. The record would claim {cfg.few_shot} shots that were never there. Lower "
                    f"dataset.few_shot to at most {min(used.values())}, or pass dataset.few_shot_short=warn to "
                    "train on what there is (the record then states it).")
            warnings.append(f"{text}; trained on what there is (dataset.few_shot_short=warn).")
    for task in dataset.tasks:
        present = _per_class(task)
        empty = [name for c, name in enumerate(task.classnames) if not present.get(c)]
        if empty:
            warnings.append(f"{task.name}: {len(empty)} class(es) without a training image "
                            f"({', '.join(empty[:5])}{', ...' if len(empty) > 5 else ''}).")
    return warnings

"""The training loop (bench/engine.py): reproducible whatever the number of workers; unreadable
images are counted, not fatal.  That only a method's own parameters move: tests/methods/test_contract.py."""
from __future__ import annotations

import copy

import torch
from helpers import method_cfg, train_cfg

from bench.app import build_method
from bench.data import MultiTaskData
from bench.engine import evaluate, fit

#: every registered method in each of its modes: a new method is covered without edits here


def test_training_is_reproducible_and_independent_of_workers(tiny_clip, toy_dataset):
    results = []
    for workers in (0, 2):
        clip = copy.deepcopy(tiny_clip)
        method = build_method(method_cfg("coop"), clip, toy_dataset.tasks, seed=1)
        cfg = train_cfg()
        data = MultiTaskData(toy_dataset, clip, cfg, seed=1, num_workers=workers)
        fit(method, data, cfg, torch.device("cpu"), progress=False)
        results.append((method.context.detach().clone(), evaluate(method, data, "val", torch.device("cpu"))))
    assert torch.equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]


def test_unreadable_images_are_counted_not_fatal(tiny_clip, toy_dataset, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    task = toy_dataset.tasks[0]
    tasks = (type(task)(task.name, task.classnames, ((str(broken), 0),) + task.train[:7], task.val, task.test),)
    dataset = type(toy_dataset)(toy_dataset.name, toy_dataset.root, tasks)
    clip = copy.deepcopy(tiny_clip)
    method = build_method(method_cfg("coop"), clip, dataset.tasks, seed=1)
    cfg = train_cfg(steps_per_epoch=None, batch_size=8)
    outcome = fit(method, MultiTaskData(dataset, clip, cfg, seed=1), cfg, torch.device("cpu"), progress=False)
    assert outcome.unreadable_images == 1 and outcome.train_images == 7

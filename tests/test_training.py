"""The training loop: only a method's own parameters move; data is reproducible."""
from __future__ import annotations

import copy

import pytest
import torch
from bench.methods import METHODS
from conftest import method_cfg, train_cfg

from bench.app import build_method
from bench.data import MultiTaskData
from bench.engine import evaluate, fit


def snapshot(module):
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


#: every registered method in each of its modes: a new method is covered without edits here
EVERY_METHOD_AND_MODE = [(name, mode) for name, cls in METHODS.items() for mode in cls.modes]


@pytest.mark.parametrize("name,mode", EVERY_METHOD_AND_MODE, ids=[f"{n}-{m}" for n, m in EVERY_METHOD_AND_MODE])
def test_only_the_methods_parameters_change(name, mode, tiny_clip, toy_dataset):
    clip = copy.deepcopy(tiny_clip)
    frozen_before = snapshot(clip)
    overrides = {"grouping": {"strategy": "one_group"}} if (name, mode) == ("mmap", "grouped") else {}
    method = build_method(method_cfg(name, mode=mode, **overrides), clip, toy_dataset.tasks, seed=1)
    cfg = train_cfg(optimizer="adamw", lr=1e-3)
    data = MultiTaskData(toy_dataset, clip, cfg, seed=1)
    trainable = {n for n, _ in method.trainable_parameters()}
    before = snapshot(method)
    fit(method, data, cfg, torch.device("cpu"), progress=False)
    after = snapshot(method)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed <= trainable, f"frozen tensors changed: {sorted(changed - trainable)[:5]}"
    assert changed == trainable, f"trainable tensors that did not move: {sorted(trainable - changed)[:5]}"
    if trainable and not any(n.startswith("clip.") for n in trainable):  # CLIP itself stays frozen
        assert all(torch.equal(frozen_before[n], t) for n, t in snapshot(clip).items())


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

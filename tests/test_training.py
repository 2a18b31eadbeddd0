"""The training loop: only a method's own parameters move; data is reproducible."""
from __future__ import annotations

import copy

import pytest
import torch

from bench.data import MultiTaskData
from bench.engine import evaluate, fit
from conftest import method_cfg, train_cfg
from methods import build_method


def snapshot(module):
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


@pytest.mark.parametrize("name,mode", [("coop", "mt"), ("coop", "st"), ("full", "mt"), ("full", "st")])
def test_only_the_methods_parameters_change(name, mode, tiny_clip, toy_dataset):
    clip = copy.deepcopy(tiny_clip)
    method = build_method(method_cfg(name, mode=mode), clip, toy_dataset.tasks, seed=1)
    cfg = train_cfg(optimizer="adamw" if name == "full" else "sgd", lr=1e-3 if name == "full" else 0.01)
    data = MultiTaskData(toy_dataset, clip, cfg, seed=1)
    trainable = {n for n, _ in method.trainable_parameters()}
    before = snapshot(method)
    fit(method, data, cfg, torch.device("cpu"), progress=False)
    after = snapshot(method)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed, "training changed nothing"
    assert changed <= trainable, f"frozen tensors changed: {sorted(changed - trainable)[:5]}"
    if name == "coop":
        assert changed == trainable
        assert all(not p.requires_grad for p in clip.model.parameters())


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

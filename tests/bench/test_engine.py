"""The training loop (bench/engine.py): reproducible whatever the number of workers; unreadable
images are counted, not fatal.  That only a method's own parameters move: tests/methods/test_contract.py."""
from __future__ import annotations

import copy

import pytest
import torch
from helpers import method_cfg, train_cfg

from bench.app import build_method
from bench.data import MultiTaskData
from bench.engine import CHECKPOINT_KEYS, TrainState, evaluate, fit, load_checkpoint
from bench.errors import StorageError

#: every registered method in each of its modes: a new method is covered without edits here


def test_training_is_reproducible_and_independent_of_workers(tiny_clip, toy_dataset):
    results = []
    for workers in (0, 2):
        clip = copy.deepcopy(tiny_clip)
        method = build_method(method_cfg("coop"), clip, toy_dataset.tasks, seed=1)
        cfg = train_cfg()
        data = MultiTaskData(toy_dataset, clip, cfg, seed=1, num_workers=workers)
        fit(method, data, cfg, torch.device("cpu"), progress=False)
        results.append((method.context.detach().clone(), evaluate(method, data, "val", torch.device("cpu")).accuracy))
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


# ---- the checkpoint: one shape, written and read through TrainState ----------------------------
def _trained_checkpoint(tiny_clip, toy_dataset, tmp_path):
    clip = copy.deepcopy(tiny_clip)
    method = build_method(method_cfg("coop"), clip, toy_dataset.tasks, seed=1)
    cfg = train_cfg(epochs=2)
    path = tmp_path / "checkpoint.pt"
    fit(method, MultiTaskData(toy_dataset, clip, cfg, seed=1), cfg, torch.device("cpu"), path, run_id="r1",
        progress=False)
    return path


def test_a_checkpoint_holds_exactly_its_keys_and_reads_back_to_the_same_state(tiny_clip, toy_dataset, tmp_path):
    path = _trained_checkpoint(tiny_clip, toy_dataset, tmp_path)
    saved = load_checkpoint(path)
    assert tuple(saved) == CHECKPOINT_KEYS and saved["run_id"] == "r1"
    state, components = TrainState.from_checkpoint(saved)
    assert (state.epoch, state.step, state.outcome.epochs_run, state.outcome.steps_run) == (2, 0, 2, 4)
    again = state.to_checkpoint("r1", components, saved["outcome"]["earlier_wall_s"])
    assert again.keys() == saved.keys()
    for key in ("epoch", "step", "partial", "outcome", "run_id"):
        assert again[key] == saved[key], key
    assert all(torch.equal(again["trainable"][n], saved["trainable"][n]) for n in saved["trainable"])


def test_a_checkpoint_of_an_older_harness_is_refused_with_the_fix(tiny_clip, toy_dataset, tmp_path):
    path = _trained_checkpoint(tiny_clip, toy_dataset, tmp_path)
    saved = torch.load(path, weights_only=False)
    del saved["partial"], saved["observers"]  # before the mid-epoch progress, and the observers' states
    torch.save(saved, path)
    with pytest.raises(StorageError, match="it lacks observers, partial: it was written by an older version of "
                                           "this harness.*runtime.resume=false"):
        load_checkpoint(path)

"""The speed-ups of bench/speedups.py are exact: the optimised path gives the baseline
path's logits and gradients (for every method: tests/methods/test_contract.py) and the toy
run's accuracies; no timing here (timings live in `python -m bench.speed`)."""
from __future__ import annotations

import pytest
import torch
from helpers import make_tasks, method_cfg, random_batch, train_cfg

from bench.app import build_method
from bench.data import MultiTaskData
from bench.engine import evaluate, fit
from bench.speedups import SPEEDUPS, speedups


def test_baseline_recomputes_and_does_not_share(tiny_clip, monkeypatch):
    """The baseline runs one full-context text pass per task and step; the optimised path one
    truncated pass for all tasks with identical prompts, once (frozen text)."""
    method = build_method(method_cfg("vpt", mode="mt"), tiny_clip, make_tasks(3), seed=0)
    calls = []
    original = type(tiny_clip).encode_text

    def spy(self, tokens, *args, **kwargs):
        calls.append(tuple(tokens.shape))
        return original(self, tokens, *args, **kwargs)

    monkeypatch.setattr(type(tiny_clip), "encode_text", spy)
    images, _, task_ids = random_batch(tiny_clip)
    method.train()
    with speedups(False):
        method(images, task_ids)
        method(images, task_ids)
    assert calls == [(12, 77), (12, 77)]  # 3 tasks x 4 classes, full context, every step
    calls.clear()
    with speedups(True):
        method(images, task_ids)
        method(images, task_ids)
    assert len(calls) == 1 and calls[0][0] == 4 and calls[0][1] < 77


@pytest.mark.parametrize("augment", [False, True])
def test_toy_accuracies_identical_with_and_without_speedups(tiny_clip, toy_dataset, augment):
    """Same seed, CPU, augmentation cache off: the toy run's accuracies do not change."""
    dataset = toy_dataset
    cfg = train_cfg(epochs=2, augment=augment)
    results = {}
    for enabled in (False, True):
        with speedups(enabled):
            torch.manual_seed(0)
            method = build_method(method_cfg("coop", mode="mt"), tiny_clip, dataset.tasks, seed=0)
            data = MultiTaskData(dataset, tiny_clip, cfg, seed=0, num_workers=0)
            outcome = fit(method, data, cfg, torch.device("cpu"), progress=False)
            accuracy = [evaluate(method, data, "test", torch.device("cpu")).accuracy for _ in range(2)]
            assert accuracy[0] == accuracy[1]
            results[enabled] = (accuracy[0], [h["loss"] for h in outcome.history])
            if enabled:  # eval images always cached; train images only without augmentation
                n_test = sum(len(t.test) for t in dataset.tasks)
                trained = 0 if augment else len(set(k for k in method.image_cache.rows if k[0] == "train"))
                assert len(method.image_cache) == n_test + trained
    assert results[True][0] == results[False][0]
    assert results[True][1] == pytest.approx(results[False][1], rel=1e-5)
    assert SPEEDUPS.enabled  # the switch is restored

"""The speed-ups of bench/speedups.py are exact: the optimised path gives the baseline
path's logits and gradients (no timing here: timings live in `python -m bench.speed`)."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch
from conftest import make_tasks, method_cfg, train_cfg
from torch.utils.data._utils.pin_memory import pin_memory

from bench.app import build_method
from bench.data import MultiTaskBatch, MultiTaskData
from bench.engine import evaluate, fit
from bench.speedups import SPEEDUPS, speedups

METHOD_SETTINGS = [
    ("zeroshot", {}), ("coop", {"mode": "mt"}), ("coop", {"mode": "st"}), ("vpt", {"mode": "mt"}),
    ("maple", {"mode": "mt", "prompt_depth": 3}), ("maple", {"mode": "st", "prompt_depth": 3}),
    ("mmap", {"mode": "mt"}),
    ("mmap", {"mode": "grouped", "grouping.strategy": "manual",
              "grouping.groups": [["task0", "task1"], ["task2"]]}),
    ("full", {"mode": "mt"}), ("full", {"mode": "st"}),
]


def _batch(tiny_clip, n_tasks=3, per_task=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    size = tiny_clip.image_size
    images = torch.randn(n_tasks * per_task, 3, size, size, generator=generator)
    task_ids = torch.arange(n_tasks).repeat_interleave(per_task)
    labels = torch.randint(0, 4, (len(task_ids),), generator=generator)
    return images, labels, task_ids


def _logits_and_grads(method, images, labels, task_ids, sample_ids=None):
    method.zero_grad(set_to_none=True)
    logits = method(images, task_ids, sample_ids=sample_ids)
    params = [p for _, p in method.trainable_parameters()]
    if params:
        torch.nn.functional.cross_entropy(logits, labels).backward()
    grads = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    return logits.detach(), grads


@pytest.mark.parametrize("name,overrides", METHOD_SETTINGS)
def test_optimised_step_equals_baseline(tiny_clip, name, overrides):
    """Truncated text context, shared and cached text features, no-grad frozen towers and
    cached image features give the baseline's logits and gradients, step after step."""
    clip = copy.deepcopy(tiny_clip)  # full fine-tuning unfreezes the model it is given
    tasks = make_tasks(3, ("dog", "cat", "car", "a very long class name indeed"))
    method = build_method(method_cfg(name, **overrides), clip, tasks, seed=0)
    method.train()
    images, labels, task_ids = _batch(clip)
    ids = ("train", torch.arange(len(images)))
    with speedups(False):
        base_logits, base_grads = _logits_and_grads(method, images, labels, task_ids)
    with speedups(True):
        for _ in range(2):  # the second step reads the image cache (coop, zeroshot)
            logits, grads = _logits_and_grads(method, images, labels, task_ids, ids)
            assert torch.allclose(logits, base_logits, rtol=1e-5, atol=1e-4)
            for grad, base in zip(grads, base_grads):
                # float summation order differs (one shared pass vs one per task): compare to scale
                assert (grad - base).abs().max() <= 1e-4 * base.abs().max() + 1e-7
    if not method.image_depends_on_parameters:
        assert len(method.image_cache) == len(images)


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
    images, _, task_ids = _batch(tiny_clip)
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


def test_multitask_batch_keeps_indices_through_pinning_and_workers():
    batch = MultiTaskBatch(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([5, 7]))
    pinned = pin_memory(batch) if torch.cuda.is_available() else batch
    for copy_ in (pickle.loads(pickle.dumps(batch)), pinned):
        assert isinstance(copy_, MultiTaskBatch)
        assert copy_.indices.tolist() == [5, 7] and copy_.unreadable == () and copy_.labels.tolist() == [0, 1]


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
            accuracy = [evaluate(method, data, "test", torch.device("cpu")) for _ in range(2)]
            assert accuracy[0] == accuracy[1]
            results[enabled] = (accuracy[0], [h["loss"] for h in outcome.history])
            if enabled:  # eval images always cached; train images only without augmentation
                n_test = sum(len(t.test) for t in dataset.tasks)
                trained = 0 if augment else len(set(k for k in method.image_cache.rows if k[0] == "train"))
                assert len(method.image_cache) == n_test + trained
    assert results[True][0] == results[False][0]
    assert results[True][1] == pytest.approx(results[False][1], rel=1e-5)
    assert SPEEDUPS.enabled  # the switch is restored


def test_speed_command_writes_a_table(tmp_path):
    """The benchmark runs end to end on a tiny model (its figures are not checked)."""
    from hydra import compose, initialize_config_dir

    from bench.app import CONFIG_DIR
    from bench.speed import run_speed
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("speed", overrides=["model=tiny", "speed.methods=[coop:mt,vpt:mt]", "speed.tasks=2",
                                          "speed.classes=3", "speed.warmup_steps=1", "speed.steps=1",
                                          "speed.batch_size=2", "speed.eval_images=2", "runtime.device=cpu",
                                          f"speed.output={tmp_path / 'speed.md'}"])
    rows = run_speed(cfg)
    assert {(r["method"], r["variant"], r["augment"]) for r in rows} == {
        ("coop", "baseline", True), ("coop", "baseline", False), ("coop", "fast", True),
        ("coop", "fast", False), ("vpt", "baseline", True), ("vpt", "fast", True)}
    text = (tmp_path / "speed.md").read_text()
    assert "| coop | mt | off |" in text and (tmp_path / "speed.json").is_file()
    assert "Wrapper vs open_clip" in text and "| image | forward + backward |" in text and "| text | forward |" in text

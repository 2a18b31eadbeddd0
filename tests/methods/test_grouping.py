"""Gradient-driven task grouping: partition search, warm-up affinities through the engine's
Trainer on the real data pipeline, the run's grouping files and their reuse."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from bench.methods.grouping import (
    best_partition,
    greedy_partition,
    partition_score,
    set_partitions,
)
from helpers import method_cfg
from PIL import Image

from bench.app import build_method
from bench.data import MultiTaskData
from bench.engine import warm_up
from bench.grouping_files import write_grouping
from bench.schema import TrainConfig


def planted(blocks, n, inside=0.9, across=-0.1, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    a = np.full((n, n), across) + rng.uniform(-noise, noise, (n, n))
    for block in blocks:
        a[np.ix_(block, block)] = inside + rng.uniform(-noise, noise, (len(block), len(block)))
    return (a + a.T) / 2


@pytest.mark.parametrize("n,k,stirling", [(4, 2, 7), (5, 3, 25), (6, 2, 31), (8, 4, 1701)])
def test_set_partitions_are_all_distinct_and_complete(n, k, stirling):
    seen = {tuple(map(tuple, p)) for p in set_partitions(n, k)}
    assert len(seen) == stirling
    for p in seen:
        assert len(p) == k and sorted(t for g in p for t in g) == list(range(n))


def test_exhaustive_finds_the_planted_partition():
    blocks = [[0, 3, 5], [1, 2], [4, 6, 7]]
    affinity = planted(blocks, 8)
    assert best_partition(affinity, 3) == blocks
    # brute force over all labelings agrees on the best score
    best = max(partition_score(affinity, p) for p in set_partitions(8, 3))
    assert partition_score(affinity, blocks) == pytest.approx(best)
    assert best_partition(affinity, 3, objective="mean") == blocks


def test_objectives():
    a = np.array([[1.0, 0.8, 0.1, 0.0], [0.8, 1.0, 0.2, 0.1], [0.1, 0.2, 1.0, 0.5], [0.0, 0.1, 0.5, 1.0]])
    assert best_partition(a, 2) == best_partition(a, 2, objective="sum") == [[0, 1], [2, 3]]
    assert partition_score(a, [[0, 1], [2, 3]], "sum") == pytest.approx(1.3)
    assert partition_score(a, [[0, 1, 2], [3]], "mean") == pytest.approx((0.9 + 1.0 + 0.3) / 2)
    # two identical pairs, positive affinity across: the pair sum prefers a 1 + 3 split
    pairs = np.array([[1, 1, .76, .76], [1, 1, .76, .76], [.76, .76, 1, 1], [.76, .76, 1, 1]])
    assert best_partition(pairs, 2, objective="sum") != [[0, 1], [2, 3]]
    assert best_partition(pairs, 2, objective="mean") == [[0, 1], [2, 3]]
    assert best_partition(a, 4) == [[0], [1], [2], [3]]
    assert best_partition(a, 1) == [[0, 1, 2, 3]]
    with pytest.raises(Exception, match="non-empty groups"):
        best_partition(a, 5)


def test_greedy_fallback_is_sane():
    blocks = [[0, 4, 8], [1, 5, 9, 11], [2, 6, 10], [3, 7]]
    affinity = planted(blocks, 12)
    assert best_partition(affinity, 4) == blocks  # 12 > 8 tasks: greedy path
    rng = np.random.default_rng(1)
    for _ in range(5):
        a = rng.normal(size=(7, 7))
        a = (a + a.T) / 2
        greedy = greedy_partition(a, 3)
        assert len(greedy) == 3 and sorted(t for g in greedy for t in g) == list(range(7))
        scores = sorted(partition_score(a, p) for p in set_partitions(7, 3))
        assert partition_score(a, greedy) >= scores[len(scores) // 2]  # better than the median
        assert partition_score(a, greedy) <= scores[-1] + 1e-12


def two_pairs_dataset(root, n_images=6, classes=("circle", "square", "cross")):
    """Tasks a0, a1 share one set of images and labels; b0, b1 share another set of images
    whose labels are a different permutation."""
    rng = np.random.default_rng(0)

    def samples(prefix, permutation):
        out = []
        for i in range(n_images):
            path = root / f"{prefix}{i}.png"
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
            out.append((str(path), permutation[i % len(classes)]))
        return out

    a, b = samples("a", [0, 1, 2]), samples("b", [2, 0, 1])
    tasks = [SimpleNamespace(name=name, classnames=classes, train=s, val=s, test=s)
             for name, s in (("a0", a), ("a1", a), ("b0", b), ("b1", b))]
    return SimpleNamespace(name="pairs", tasks=tasks)


@pytest.mark.parametrize("strategy", ["gradient", "lookahead"])
def test_warmup_groups_identical_tasks_together(tiny_clip, tmp_path, strategy):
    dataset = two_pairs_dataset(tmp_path)
    train_cfg = TrainConfig(batch_size=6, eval_batch_size=6, steps_per_epoch=3, augment=False, optimizer="sgd",
                            lr=0.01, precision="fp32", task_loss="sum")
    data = MultiTaskData(dataset, tiny_clip, train_cfg, seed=0)
    cfg = method_cfg("mmap", prompt_depth=2, n_ctx=2, n_task_ctx=1,
                     **{"grouping.strategy": strategy, "grouping.warmup_epochs": 1,
                        "grouping.warmup_steps": 3 if strategy == "gradient" else 1})
    method = build_method(cfg, tiny_clip, dataset.tasks, seed=0)
    assert method.trainable_parameters() == []  # grouped parameters come after grouping
    checkpoint = tmp_path / "warmup.pt"
    outcome = warm_up(method, data, train_cfg, torch.device("cpu"), checkpoint, "run")
    assert method.groups == [[0, 1], [2, 3]]
    extras = method.record_extras()["grouping"]
    affinity = np.array(extras["affinity"])
    assert affinity[0, 1] > affinity[0, 2] and affinity[2, 3] > affinity[1, 3]
    if strategy == "gradient":  # identical tasks, full batches: identical gradients
        assert affinity[0, 1] == pytest.approx(1, abs=1e-6) and affinity[2, 3] == pytest.approx(1, abs=1e-6)
    steps = 3 if strategy == "gradient" else 1
    assert extras["groups"] == [["a0", "a1"], ["b0", "b1"]] and extras["warmup_steps"] == steps
    assert outcome.steps_run == steps and [row["lr"] for row in outcome.history] == [0.01]  # constant base rate
    n_params = sum(p.numel() for _, p in method.trainable_parameters())
    assert n_params == 2 * ((2 * 2 + 4 * 1) * 32 + (2 + 4) * (2 + 3))  # depth 2, d_s 32

    # the run's files of the grouping, and their reuse (no warm-up)
    out = tmp_path / "grouping"
    write_grouping(out, extras)
    saved = json.loads((out / "groups.json").read_text())
    assert saved == extras  # float64 affinities, exactly
    assert (out / "affinity.png").stat().st_size > 0
    csv_rows = (out / "affinity.csv").read_text().splitlines()
    assert csv_rows[0] == "task,a0,a1,b0,b1" and len(csv_rows) == 5
    for path in (out / "groups.json", out / "affinity.csv"):
        reused = build_method(method_cfg("mmap", prompt_depth=2, n_ctx=2, n_task_ctx=1,
                                         **{"grouping.affinity_file": str(path)}), tiny_clip, dataset.tasks)
        assert reused.groups == [[0, 1], [2, 3]] and reused.warmup(train_cfg) is None

    # a relaunch resumes the finished warm-up from its checkpoint: the same affinities, no step taken
    resumed = build_method(cfg, tiny_clip, dataset.tasks, seed=0)
    again = warm_up(resumed, data, train_cfg, torch.device("cpu"), checkpoint, "run")
    assert again.resumes == 1 and again.steps_run == steps
    assert resumed.groups == [[0, 1], [2, 3]] and resumed.record_extras() == method.record_extras()
    images, labels, task_ids, *_ = next(iter(data.train_loader(0)))
    with torch.no_grad():
        assert torch.isfinite(method(images, task_ids).gather(1, labels[:, None])).all()


def test_manual_groups_are_validated(tiny_clip):
    tasks = [SimpleNamespace(name=n, classnames=("a", "b")) for n in ("x", "y", "z")]
    with pytest.raises(Exception, match="exactly once"):
        build_method(method_cfg("mmap", **{"grouping.strategy": "manual", "grouping.groups": [["x"], ["y"]]}),
                     tiny_clip, tasks)
    one = build_method(method_cfg("mmap", **{"grouping.strategy": "one_group"}), tiny_clip, tasks)
    assert one.groups == [[0, 1, 2]]

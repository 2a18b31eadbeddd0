"""Gradient-driven task grouping (MmAP, Du et al., AAAI 2024): warm-up affinities and the
best partition of tasks into groups.

Warm-up: one prompt shared by all tasks is trained for `warmup_epochs` (at most
`warmup_steps` steps) with the run's optimiser, data pipeline and multi-task loss at the
constant base rate, through the engine's one Trainer (bench/engine.py `warm_up`: its step,
non-finite guard, checkpoints and learning curves).  At every step the `TaskAffinity`
observer takes each task's gradient g_t of its own mean cross-entropy L_t with respect to the
shared prompt parameters (`torch.autograd.grad`), and accumulates a pairwise affinity:

* `gradient` (default): A_ij = cos(g_i, g_j), averaged over steps;
* `lookahead` (Fifty et al., "Efficiently Identifying Task Groupings for Multi-Task
  Networks", NeurIPS 2021): Z_{i->j} = 1 - L_j(theta - lr g_i) / L_j(theta) on the same batch
  (a plain SGD step on task i alone), averaged over steps and symmetrised A = (Z + Z^T)/2.

Partition: the split of the T tasks into exactly `n_groups` non-empty groups that maximises
the total intra-group affinity.  `objective: mean` (the config default) is TAG's total
affinity: the sum over tasks of each task's mean affinity to the other members of its group
(a singleton scores 0).  `objective: sum` adds A_ij over all pairs i < j inside each group;
with positive affinities (usual for related domains) it prefers one large group plus
singletons, e.g. affinities 1 within two identical pairs and 0.76 across them give
{a0}{a1, b0, b1} a higher pair sum (2.52) than {a0, a1}{b0, b1} (2.0).
Exhaustive over all set partitions for T <= 8 (S(8, 4) = 1,701 candidates), greedy beyond
(agglomerative merging from singletons, then single-task moves while they improve).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from bench import distributed
from bench.device import autocast_for
from bench.methods.contract import MethodError
from bench.observers import TrainObserver
from bench.step import per_task_losses

log = logging.getLogger(__name__)
STRATEGIES = ("gradient", "lookahead", "manual", "one_group", "singletons")


# ---- affinities from a warm-up ---------------------------------------------------------
class TaskAffinity(TrainObserver):
    """The warm-up's observer: at every step, before the backward pass, each present task's
    gradient of its own loss on `model`'s (shared) trainable parameters, and the step's pairwise
    affinity (module docstring), accumulated; `matrix()` is their mean over the steps that held
    both tasks.  Its sums are kept in the loop's checkpoints, so a resumed warm-up gives the
    affinities of an uninterrupted one.  `train_cfg`: the warm-up's (its constant `lr` is the
    look-ahead's step)."""

    checkpoint_name = "task_affinity"

    def __init__(self, model, n_tasks: int, strategy: str, train_cfg, device: torch.device):
        named = model.trainable_parameters()
        self.model, self.names, self.params = model, [n for n, _ in named], [p for _, p in named]
        self.strategy, self.train_cfg, self.device = strategy, train_cfg, device
        self.total = torch.zeros(n_tasks, n_tasks, dtype=torch.float64)
        self.seen = torch.zeros(n_tasks, n_tasks, dtype=torch.float64)

    def on_task_losses(self, losses, present, images, labels, task_ids) -> None:
        tasks = present.nonzero().flatten().tolist()
        grads = [torch.cat([g.flatten() for g in torch.autograd.grad(losses[t], self.params, retain_graph=True)])
                 for t in tasks]
        if distributed.current().distributed:  # each rank holds its part of every task's gradient
            grads = list(distributed.sum_(torch.stack(grads)))
        if self.strategy == "gradient":
            unit = F.normalize(torch.stack(grads).double(), dim=1)
            step_affinity = unit @ unit.T
        else:
            step_affinity = _lookahead(self.model, self.names, self.params, grads, losses, tasks, images, labels,
                                       task_ids, self.train_cfg.lr, self.device, self.train_cfg)
        index = torch.tensor(tasks)
        self.total[index[:, None], index[None, :]] += step_affinity.cpu()
        self.seen[index[:, None], index[None, :]] += 1

    def matrix(self) -> np.ndarray:
        return (self.total / self.seen.clamp(min=1)).numpy()

    def state_dict(self) -> dict:
        return {"total": self.total.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.total.copy_(state["total"])
        self.seen.copy_(state["seen"])


def warmup_settings(train_cfg, epochs: int):
    """The warm-up's training settings: the run's optimiser, batches and loss for `epochs`
    epochs at the constant base rate, no selection (the last state is the measured one)."""
    return dataclasses.replace(train_cfg, epochs=epochs, schedule="constant", selection="last")


def check_warmup_ran(steps: int) -> None:
    if steps == 0:
        raise MethodError("The grouping warm-up ran no steps: set method.grouping.warmup_epochs >= 1 "
                          "(and warmup_steps >= 1 or null), or give manual groups.")


def _lookahead(model, names, params, grads, losses, tasks, images, labels, task_ids, lr, device, train_cfg):
    """Z_{i->j} = 1 - L_j(theta - lr g_i) / L_j(theta), symmetrised, for the present tasks."""
    n_tasks = losses.shape[0]
    before = distributed.sum_(losses.detach()[tasks].double())  # the ranks' parts of each task's mean
    rows = []
    with torch.no_grad():
        for flat in grads:
            stepped, offset = {}, 0
            for name, p in zip(names, params):
                stepped[name] = p - lr * flat[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
            with autocast_for(device, train_cfg.precision):
                logits = functional_call(model, stepped, (images, task_ids), strict=False)
            after, _ = per_task_losses(logits, labels, task_ids, n_tasks)
            rows.append(1 - distributed.sum_(after[tasks].double()) / before)
    z = torch.stack(rows)
    return (z + z.T) / 2


# ---- the best partition ----------------------------------------------------------------
def set_partitions(n: int, k: int) -> Iterator[list[list[int]]]:
    """Every partition of range(n) into exactly k non-empty blocks (each once)."""
    def grow(i: int, blocks: list[list[int]]):
        if n - i < k - len(blocks):
            return
        if i == n:
            if len(blocks) == k:
                yield [list(b) for b in blocks]
            return
        for b in blocks:
            b.append(i)
            yield from grow(i + 1, blocks)
            b.pop()
        if len(blocks) < k:
            blocks.append([i])
            yield from grow(i + 1, blocks)
            blocks.pop()
    if 1 <= k <= n:
        yield from grow(0, [])


def partition_score(affinity: np.ndarray, groups: Sequence[Sequence[int]], objective: str = "mean") -> float:
    symmetric = (np.asarray(affinity) + np.asarray(affinity).T) / 2
    score = 0.0
    for group in groups:
        block = symmetric[np.ix_(group, group)]
        off_diagonal = block.sum() - np.trace(block)
        if objective == "sum":
            score += off_diagonal / 2
        elif objective == "mean":
            score += off_diagonal / (len(group) - 1) if len(group) > 1 else 0.0
        else:
            raise MethodError(f"Unknown grouping objective '{objective}': use sum or mean.")
    return float(score)


def greedy_partition(affinity: np.ndarray, n_groups: int, objective: str = "mean") -> list[list[int]]:
    """Merge the pair of groups that raises the score most until `n_groups` remain, then move
    single tasks between groups while that improves the score."""
    groups = [[i] for i in range(len(affinity))]
    while len(groups) > n_groups:
        best = None
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                merged = groups[:a] + groups[a + 1:b] + groups[b + 1:] + [groups[a] + groups[b]]
                score = partition_score(affinity, merged, objective)
                if best is None or score > best[0] + 1e-12:
                    best = (score, merged)
        groups = best[1]
    improved = True
    while improved:
        improved = False
        current = partition_score(affinity, groups, objective)
        for g, group in enumerate(groups):
            if len(group) == 1:
                continue
            for task in list(group):
                for h in range(len(groups)):
                    if h == g:
                        continue
                    moved = [[t for t in x if t != task] + ([task] if i == h else []) for i, x in enumerate(groups)]
                    if partition_score(affinity, moved, objective) > current + 1e-12:
                        groups, improved = moved, True
                        break
                if improved:
                    break
            if improved:
                break
    return canonical(groups)


def best_partition(affinity: np.ndarray, n_groups: int, objective: str = "mean",
                   exhaustive_max: int = 8) -> list[list[int]]:
    """The partition into exactly `n_groups` groups with the highest intra-group affinity."""
    n = len(affinity)
    if not 1 <= n_groups <= n:
        raise MethodError(f"Cannot split {n} tasks into {n_groups} non-empty groups: set "
                          f"method.grouping.n_groups between 1 and {n}.")
    if n > exhaustive_max:
        return greedy_partition(affinity, n_groups, objective)
    best = max(set_partitions(n, n_groups), key=lambda p: partition_score(affinity, p, objective))
    return canonical(best)


def canonical(groups: Sequence[Sequence[int]]) -> list[list[int]]:
    return sorted((sorted(g) for g in groups if g), key=lambda g: g[0])


def fixed_groups(strategy: str, task_names: Sequence[str], manual=None) -> list[list[int]]:
    """Groups that need no warm-up: one_group, singletons, or manual (lists of task names)."""
    n = len(task_names)
    if strategy == "one_group":
        return [list(range(n))]
    if strategy == "singletons":
        return [[t] for t in range(n)]
    if strategy != "manual":
        raise MethodError(f"Unknown grouping strategy '{strategy}': use one of {', '.join(STRATEGIES)}.")
    if not manual:
        raise MethodError("method.grouping.strategy=manual needs method.grouping.groups, a list of "
                          f"lists of task names covering each of {list(task_names)} exactly once.")
    index = {name: t for t, name in enumerate(task_names)}
    groups = [[index.get(name, -1) for name in group] for group in manual]
    flat = sorted(t for g in groups for t in g)
    if flat != list(range(n)) or any(not g for g in groups):
        named = [str(name) for group in manual for name in group]
        unknown = sorted({name for name in named if name not in index})
        twice = sorted({name for name in named if name in index and named.count(name) > 1})
        left = [name for name in task_names if name not in named]
        what = "; ".join(part for part in (
            f"not a task of this run: {', '.join(map(repr, unknown))}" if unknown else "",
            f"in more than one group: {', '.join(map(repr, twice))}" if twice else "",
            f"in no group: {', '.join(map(repr, left))}" if left else "",
            f"group {[len(g) for g in groups].index(0) + 1} is empty" if any(not g for g in groups) else "") if part)
        raise MethodError(f"method.grouping.groups={[list(g) for g in manual]} must use each task of "
                          f"{list(task_names)} exactly once, in non-empty groups ({what}). Task names are "
                          "case-sensitive; quote names with spaces: '[[Art,Clipart],[Product,\"Real World\"]]'.")
    return canonical(groups)


# ---- reuse ------------------------------------------------------------------------------
def load_grouping(path, task_names: Sequence[str]) -> dict:
    """A saved groups.json (or affinity.csv) whose tasks match `task_names`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MethodError(f"method.grouping.affinity_file={path} does not exist. Point it at the "
                          "groups.json (or affinity.csv) that a previous run saved, or set it to null.")
    if path.suffix == ".csv":
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        record = {"tasks": rows[0][1:], "affinity": [[float(v) for v in r[1:]] for r in rows[1:]],
                  "groups": None}
    else:
        record = json.loads(path.read_text())
    if list(record["tasks"]) != list(task_names):
        theirs, ours = list(record["tasks"]), list(task_names)
        differ = ([f"{name!r} only in the file" for name in theirs if name not in ours]
                  + [f"{name!r} only in this run" for name in ours if name not in theirs]) or ["the same tasks in "
                                                                                                 "another order"]
        raise MethodError(f"{path} was saved for tasks {theirs}, but this run has {ours} "
                          f"({', '.join(differ)}). Use a file from a run on the same dataset and domains.")
    return record


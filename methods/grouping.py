"""Gradient-driven task grouping (MmAP, Xin et al., AAAI 2024): warm-up affinities and the
best partition of tasks into groups.

Warm-up: one prompt shared by all tasks is trained for `warmup_epochs` (at most
`warmup_steps` steps) with the run's optimiser, data pipeline and multi-task loss.  At every
step each task's gradient g_t of its own mean cross-entropy L_t with respect to the shared
prompt parameters is taken (`torch.autograd.grad`), and a pairwise affinity is accumulated:

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
import json
import logging
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from bench import distributed
from bench.atomic_io import atomic_write
from bench.device import autocast_for
from bench.step import build_grad_scaler, build_optimizer, per_task_losses, train_step
from bench.methods.contract import MethodError

log = logging.getLogger(__name__)
STRATEGIES = ("gradient", "lookahead", "manual", "one_group", "singletons")


# ---- affinities from a warm-up ---------------------------------------------------------
def warmup_affinity(model, data, train_cfg, device: torch.device, strategy: str = "gradient",
                    epochs: int = 1, max_steps: int | None = None) -> tuple[np.ndarray, int]:
    """Train `model` (its trainable parameters shared by all tasks) on `data` (a
    `MultiTaskData`) and return (T x T affinity matrix, steps taken)."""
    named = model.trainable_parameters()
    names, params = [n for n, _ in named], [p for _, p in named]
    optimizer = build_optimizer(params, train_cfg)
    scaler = build_grad_scaler(device, train_cfg)
    n_tasks = len(data.task_names)
    total = torch.zeros(n_tasks, n_tasks, dtype=torch.float64)
    seen = torch.zeros(n_tasks, n_tasks, dtype=torch.float64)

    def accumulate(losses, present, images, labels, task_ids) -> None:
        """Before the engine's backward: each present task's gradient on the shared prompt."""
        tasks = present.nonzero().flatten().tolist()
        grads = [torch.cat([g.flatten() for g in torch.autograd.grad(losses[t], params, retain_graph=True)])
                 for t in tasks]
        if distributed.current().distributed:  # each rank holds its part of every task's gradient
            grads = list(distributed.sum_(torch.stack(grads)))
        if strategy == "gradient":
            unit = F.normalize(torch.stack(grads).double(), dim=1)
            step_affinity = unit @ unit.T
        else:
            step_affinity = _lookahead(model, names, params, grads, losses, tasks, images, labels,
                                       task_ids, optimizer.param_groups[0]["lr"], device, train_cfg)
        index = torch.tensor(tasks)
        total[index[:, None], index[None, :]] += step_affinity.cpu()
        seen[index[:, None], index[None, :]] += 1

    steps = 0
    model.train()
    for epoch in range(epochs):
        for batch in data.train_loader(epoch):
            if max_steps is not None and steps >= max_steps:
                break
            if train_step(model, batch, optimizer, scaler, device, train_cfg, n_tasks,
                          fixed_train=False, observe=accumulate) is not None:
                steps += 1
    if steps == 0:
        raise MethodError("The grouping warm-up ran no steps: set method.grouping.warmup_epochs >= 1 "
                          "(and warmup_steps >= 1 or null), or give manual groups.")
    return (total / seen.clamp(min=1)).numpy(), steps


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


# ---- artefacts --------------------------------------------------------------------------
def save_grouping(output_dir, task_names: Sequence[str], groups, affinity: np.ndarray | None,
                  info: dict) -> dict:
    """Write groups.json (+ affinity.csv and affinity.png when there is a matrix) atomically."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"tasks": list(task_names), "groups": [[task_names[t] for t in g] for g in groups],
              "affinity": None if affinity is None else np.asarray(affinity).tolist(), **info}
    atomic_write(out / "groups.json", lambda tmp: tmp.write_text(json.dumps(record, indent=2)))
    if affinity is not None:
        rows = [["task", *task_names]] + [[n, *map(repr, map(float, r))] for n, r in zip(task_names, affinity)]
        atomic_write(out / "affinity.csv", lambda tmp: tmp.write_text("".join(",".join(r) + "\n" for r in rows)))
        _heatmap(out / "affinity.png", task_names, np.asarray(affinity), info.get("strategy", ""))
    return record


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


def _heatmap(path: Path, names: Sequence[str], affinity: np.ndarray, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(1.2 + 0.7 * len(names), 1 + 0.6 * len(names)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(affinity, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{affinity[i, j]:.2f}", ha="center", va="center", color="w", fontsize=7)
    ax.set_title(f"task affinity ({title})")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))

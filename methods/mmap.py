"""MmAP: Multi-modal Alignment Prompt (Du, Yan, Wang, Ding, Xin; "MmAP: Multi-modal
Alignment Prompt for Cross-domain Multi-task Learning", AAAI 2024, arXiv 2312.08636).

One MmAP has, for each prompted layer j = 0..D-1, a source prompt S_j (n x d_s) and two
factors U_t,j (1 x d_text/d_s) and U_v,j (1 x d_vision/d_s); the layer's aligned prompts are
Kronecker products of the same source:

    text prompt  P_t,j = S_j (x) U_t,j   (n x d_text)
    visual prompt P_v,j = S_j (x) U_v,j  (n x d_vision),   d_s = gcd(d_text, d_vision)

inserted as MaPLe's: layer 0 text prompts replace the n placeholder tokens after SOS
("X ... X {class}."), visual prompts are appended after the patch tokens; deeper layers
replace them.  Multi-task framework (mode `grouped`, the default): tasks are split into
groups (see methods/grouping.py: gradient-driven by default); a sample of task t gets its
group's shared MmAP (n = `n_ctx` tokens) and its own task-specific MmAP (`n_task_ctx`
tokens) concatenated, in both towers.  Modes `mt` (one MmAP for all tasks) and `st` (one
per task) use `n_ctx` tokens.  Grouped parameters are created after grouping (`warmup`).

The paper's prompt length, depth, factor shapes and init are not available to us; they are
knobs with these defaults: n_ctx = n_task_ctx = 8, prompt depth = every layer of the
shallower tower (12 for ViT-B/16), d_s = gcd, S ~ N(0, 0.02^2) and U = 1 (so each prompt
entry starts N(0, 0.02^2) like MaPLe's), text template "X ... X {class}.".

Trainable parameters per MmAP: D (n d_s + d_text/d_s + d_vision/d_s).  ViT-B/16
(d_s = 256; U_t 2, U_v 3 entries): 12 x (8 x 256 + 5) = 24,636 per MmAP, so MT 24,636
(0.0165 % of CLIP's 149,620,737), ST 98,544 (0.0659 %) and grouped with 2 groups over
Office-Home's 4 tasks (2 + 4) x 24,636 = 147,816 (0.0988 %; the paper reports ~0.09 %).
"""
from __future__ import annotations

import dataclasses
import logging
import math

import torch
from torch import nn

from bench.clip import TowerPrompts
from bench.methods import grouping
from bench.methods.base import Method, MethodError, prompted_layers, seeded_normal
from bench.methods.contract import Warmup
from bench.methods.registry import implements

log = logging.getLogger(__name__)


def kron_rows(source: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Batched torch.kron(S, U) for S (..., n, d_s) and U (..., 1, k): (..., n, d_s k)."""
    return (source[..., :, :, None] * factor[..., :, None, :]).flatten(-2)


class MmAPSets(nn.Module):
    """A stack of MmAPs (one per name): sources (sets, D, n, d_s) and factors (sets, D, 1, k)."""

    def __init__(self, names, depth: int, n_ctx: int, source_dim: int, text_factor: int,
                 vision_factor: int, std: float, factor_init: str, seed: int):
        super().__init__()
        self.source = nn.Parameter(torch.stack(
            [seeded_normal((depth, n_ctx, source_dim), std, seed, "mmap", name, "source") for name in names]))
        factors = []
        for k, tower in ((text_factor, "text"), (vision_factor, "vision")):
            if factor_init == "ones":
                factors.append(torch.ones(len(names), depth, 1, k))
            elif factor_init == "normal":
                factors.append(torch.stack([seeded_normal((depth, 1, k), std, seed, "mmap", name, tower)
                                            for name in names]))
            else:
                raise MethodError(f"Unknown method.factor_init '{factor_init}': use ones or normal.")
        self.text_factor, self.vision_factor = (nn.Parameter(f) for f in factors)

    def text(self) -> torch.Tensor:
        return kron_rows(self.source, self.text_factor)

    def vision(self) -> torch.Tensor:
        return kron_rows(self.source, self.vision_factor)


@implements("mmap")
class MmAP(Method):

    def __init__(self, clip, tasks, cfg, seed: int = 0):
        super().__init__(clip, tasks, cfg, seed)
        d_text, d_vision = clip.text_width, clip.vision_width
        self.source_dim = cfg.source_dim or math.gcd(d_text, d_vision)
        if d_text % self.source_dim or d_vision % self.source_dim:
            raise MethodError(f"method.source_dim={self.source_dim} must divide both the text width "
                              f"{d_text} and the vision width {d_vision} (Kronecker factors); use "
                              f"null for their gcd, {math.gcd(d_text, d_vision)}.")
        max_depth = min(clip.text_depth, clip.vision_depth)
        self.prompt_depth = prompted_layers(cfg, max_depth, max_depth, "mmap")
        self.n_ctx = cfg.n_ctx
        self.n_task_ctx = cfg.n_task_ctx if self.mode == "grouped" else 0
        self.grouping_cfg = cfg.grouping
        self.groups: list[list[int]] | None = None
        self.grouping_record: dict = {}
        if self.mode in ("st", "mt"):
            self.prompts = self._sets(self.set_names, self.n_ctx)
            return
        strategy = self.grouping_cfg.strategy
        names = [t.name for t in self.tasks]
        if self.grouping_cfg.affinity_file:
            self._use_record(grouping.load_grouping(self.grouping_cfg.affinity_file, names), "affinity_file")
        elif strategy in ("manual", "one_group", "singletons"):
            self._use_groups(grouping.fixed_groups(strategy, names, self.grouping_cfg.groups),
                             None, {"strategy": strategy})

    # ---- parameters ----------------------------------------------------------------------
    def _sets(self, names, n_ctx: int) -> MmAPSets:
        d_s = self.source_dim
        return MmAPSets(names, self.prompt_depth, n_ctx, d_s, self.clip.text_width // d_s,
                        self.clip.vision_width // d_s, self.cfg.init_std,
                        self.cfg.factor_init, self.seed).to(self.class_mask.device)

    def _use_groups(self, groups, affinity, info: dict) -> None:
        """Create the group-shared and task-specific MmAPs for `groups` (lists of task indices)."""
        names = [t.name for t in self.tasks]
        n_groups = self.grouping_cfg.n_groups
        if info["strategy"] in ("gradient", "lookahead") and len(groups) != n_groups:
            raise MethodError(f"Grouping gave {len(groups)} groups, expected {n_groups}.")
        self.groups = [list(g) for g in groups]
        group_of_task = [0] * len(self.tasks)
        for g, members in enumerate(self.groups):
            for t in members:
                group_of_task[t] = g
        self.group_of_task = group_of_task
        self.group_prompts = self._sets(["group:" + "+".join(names[t] for t in g) for g in self.groups], self.n_ctx)
        self.task_prompts = self._sets([f"task:{n}" for n in names], self.n_task_ctx) if self.n_task_ctx else None
        self.register_buffer("group_index", torch.tensor(group_of_task, device=self.class_mask.device),
                             persistent=False)
        self.grouping_record = {"strategy": info["strategy"], "tasks": names,
                                "groups": [[names[t] for t in g] for g in self.groups],
                                "affinity": None if affinity is None else [list(map(float, r)) for r in affinity],
                                **{k: v for k, v in info.items() if k != "strategy"}}
        log.info("MmAP groups (%s): %s", info["strategy"], self.grouping_record["groups"])

    def _use_record(self, record: dict, source: str) -> None:
        names = [t.name for t in self.tasks]
        affinity = record.get("affinity")
        info = {"strategy": record.get("strategy", source), "reused_from": source}
        if affinity is not None:
            groups = grouping.best_partition(torch.tensor(affinity).numpy(), self.grouping_cfg.n_groups,
                                             self.grouping_cfg.objective)
        else:
            groups = grouping.fixed_groups("manual", names, record["groups"])
        info["strategy"] = "manual" if affinity is None else info["strategy"]
        self._use_groups(groups, affinity, info)

    # ---- grouping (needs data: the engine trains the warm-up before counting parameters) ----
    def warmup(self, train_cfg) -> Warmup | None:
        """Grouped mode without fixed or reused groups: a shared (mt) MmAP trained on every task
        while `grouping.TaskAffinity` measures the affinities; `finish` then partitions the
        tasks and builds the group and task MmAPs."""
        if self.mode != "grouped" or self.groups is not None:
            return None
        strategy, objective = self.grouping_cfg.strategy, self.grouping_cfg.objective
        shared = MmAP(self.clip, self.tasks, dataclasses.replace(self.cfg, mode="mt"), seed=self.seed)
        device = self.class_mask.device
        train = grouping.warmup_settings(train_cfg, self.grouping_cfg.warmup_epochs)
        affinity = grouping.TaskAffinity(shared.to(device), len(self.tasks), strategy, train, device)

        def finish(steps_run: int) -> None:
            grouping.check_warmup_ran(steps_run)
            matrix = affinity.matrix()
            groups = grouping.best_partition(matrix, self.grouping_cfg.n_groups, objective)
            self._use_groups(groups, matrix, {"strategy": strategy, "objective": objective,
                                              "warmup_steps": steps_run})
        return Warmup(shared, train, self.grouping_cfg.warmup_steps, affinity, finish)

    def task_readers(self) -> dict:
        """Grouped: group g's shared MmAP is read by its members, task t's own MmAP by t alone."""
        if self.mode != "grouped":
            return super().task_readers()
        groups = [frozenset(g) for g in self.groups or []]
        readers = {f"group_prompts.{name}": groups for name, _ in self.group_prompts.named_parameters()} \
            if self.groups is not None else {}
        if self.task_prompts is not None:
            readers.update({f"task_prompts.{name}": [frozenset([t]) for t in range(len(self.tasks))]
                            for name, _ in self.task_prompts.named_parameters()})
        return readers

    def record_extras(self) -> dict:
        return {"grouping": self.grouping_record} if self.mode == "grouped" else {}

    # ---- prompts ---------------------------------------------------------------------------
    def _layer_prompts(self, tower: str, rows: torch.Tensor) -> torch.Tensor:
        """(rows or 1, D, tokens, width) prompts of the given rows' tasks."""
        if self.mode != "grouped":
            return self.select_sets(getattr(self.prompts, tower)(), rows)
        if self.groups is None:
            raise MethodError("MmAP in grouped mode has no groups yet: run its warm-up first "
                              "(bench.engine.warm_up; bench.run does), or use "
                              "method.grouping.strategy=manual|one_group|singletons or an affinity_file.")
        shared = getattr(self.group_prompts, tower)()[self.group_index[rows]]
        if self.task_prompts is None:
            return shared
        return torch.cat([shared, getattr(self.task_prompts, tower)()[rows]], dim=2)

    def _tower_prompts(self, tower: str, rows: torch.Tensor) -> TowerPrompts:
        prompts = self._layer_prompts(tower, rows)
        return TowerPrompts(input=prompts[:, 0], deep={j: prompts[:, j] for j in range(1, self.prompt_depth)})

    def text_prompts(self, tokens, row_task: torch.Tensor, row_class) -> TowerPrompts:
        return self._tower_prompts("text", row_task)

    def image_prompts(self, task_ids: torch.Tensor) -> TowerPrompts:
        return self._tower_prompts("vision", task_ids)

    def text_key(self, task: int):
        if self.mode != "grouped":
            return super().text_key(task)
        if self.groups is None or self.task_prompts is not None:
            return task
        return ("group", self.group_of_task[task])

    def prompt_texts(self, task: int) -> list[str]:
        placeholder = " ".join(["X"] * (self.n_ctx + self.n_task_ctx))
        template = self.cfg.template
        return [f"{placeholder} {template.format(name)}" for name in self.tasks[task].classnames]

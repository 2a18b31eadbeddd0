"""Dataset registry: ``DATASETS[builder](cfg) -> MultiDomainDataset``.

``cfg`` is the checked, typed ``dataset`` block (``bench.schema.DatasetConfig``, from
``configs/dataset/<name>.yaml``; bench/app.py checks it). The builder is chosen by
``cfg.builder`` so several YAMLs (PACS, VLCS, Office-31, ...) can share the generic
``imagefolder`` builder. ``build_dataset`` applies the few-shot option after the split
(``few_shot: k`` keeps k train images per class per domain, seeded by ``few_shot_seed``;
val and test untouched).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from bench.schema import DatasetConfig

from .base import DatasetError, MultiDomainDataset
from .splits import few_shot_subset

Builder = Callable[[DatasetConfig], MultiDomainDataset]
DATASETS: dict[str, Builder] = {}


def register_dataset(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``fn(cfg) -> MultiDomainDataset`` under ``name``."""

    def decorator(fn: Builder) -> Builder:
        if name in DATASETS and DATASETS[name] is not fn:
            raise ValueError(f"dataset builder {name!r} is registered twice")
        DATASETS[name] = fn
        return fn

    return decorator


def build_dataset(cfg: DatasetConfig) -> MultiDomainDataset:
    """Build the dataset described by the typed ``cfg`` (see the module docstring)."""
    builder = cfg.builder
    if builder not in DATASETS:
        found = "no 'builder' key" if not builder else f"builder '{builder}'"
        raise DatasetError(
            f"Unknown dataset builder: the dataset config has {found}. Registered builders: "
            f"{', '.join(sorted(DATASETS))}. Pick a YAML from configs/dataset/ (dataset=officehome, "
            f"dataset=minidomainnet, dataset=pacs, dataset=toy, ...) or set dataset.builder to one "
            f"of the registered names."
        )
    dataset = DATASETS[builder](cfg)
    if cfg.few_shot is not None:
        tasks = tuple(
            dataclasses.replace(t, train=tuple(few_shot_subset(t.train, cfg.few_shot, cfg.few_shot_seed, t.name)))
            for t in dataset.tasks
        )
        dataset = dataclasses.replace(dataset, tasks=tasks)
    return dataset

"""Run wiring (bench/app.py): config precedence, and every method on every dataset composes
and validates."""
from __future__ import annotations

import pytest
from bench.methods import METHODS
from helpers import REPO, make_tasks
from omegaconf import OmegaConf

from bench.app import build_method, dataset_config, method_config, train_config
from bench.schema import SpeedConfig, TrainConfig, defaults_of
from bench.sweep import compose_config


def test_precedence_command_line_over_method_over_dataset_over_schema():
    maple_on_toy = compose_config(["method=maple", "dataset=toy"])
    assert maple_on_toy.train.batch_size == 4 and maple_on_toy.train.lr == 0.0035  # the method's own
    assert maple_on_toy.train.eval_batch_size == 128                             # the dataset's default
    assert maple_on_toy.train.task_loss == defaults_of(TrainConfig)["task_loss"]  # the schema's
    assert compose_config(["method=maple", "train.batch_size=2"]).train.batch_size == 2


def test_speed_and_every_yaml_compose_and_validate():
    from bench.app import check as validate
    for method in METHODS:
        for dataset in (p.stem for p in (REPO / "configs" / "dataset").glob("*.yaml")):
            validate(compose_config([f"method={method}", f"dataset={dataset}"]))
    assert set(defaults_of(SpeedConfig)) >= {"variant", "methods", "steps"}


def test_factories_take_typed_or_composed_blocks_only(tiny_clip):
    """One way in: a plain dict is refused with the way to type it, never completed silently."""
    with pytest.raises(TypeError, match="build_method takes a typed MethodConfig, not dict.*method_config"):
        build_method({"name": "coop"}, tiny_clip, make_tasks(1))
    for factory, block in ((method_config, {"name": "coop"}), (dataset_config, {"name": "toy"}),
                           (train_config, {"lr": 0.1})):
        with pytest.raises(TypeError, match="block must be an omegaconf DictConfig.*not dict"):
            factory(block)
    assert train_config(OmegaConf.create({"lr": 0.1})).lr == 0.1

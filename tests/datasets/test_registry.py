"""The dataset registry (datasets/registry.py) and the dataset configs: builders register by
name, an unknown one names the choices, every YAML loads and composes."""
from __future__ import annotations

import pytest
from bench.datasets import (
    DATASETS,
    DatasetError,
    MultiDomainDataset,
    Task,
    register_dataset,
)
from helpers import (
    REPO,
)

from helpers import load_dataset
from bench.check import load_dataset_config


def test_registry_has_builders_and_decorator():
    assert {"officehome", "minidomainnet", "imagefolder", "toy"} <= set(DATASETS)

    @register_dataset("_unit_test_dataset")
    def _build(cfg):
        task = Task("d", ("a",), (("x.jpg", 0),), (), ())
        return MultiDomainDataset("unit", "/", (task,))

    try:
        ds = load_dataset({"builder": "_unit_test_dataset"})
        assert ds.task_names == ("d",)
    finally:
        DATASETS.pop("_unit_test_dataset")


def test_unknown_builder_names_choices():
    with pytest.raises(DatasetError, match="officehome.*toy|Registered builders"):
        load_dataset({"builder": "nope"})
    with pytest.raises(DatasetError, match="imagefolder"):
        load_dataset({"name": "x"})


def test_every_yaml_loads_and_has_builder():
    for yaml in sorted((REPO / "configs" / "dataset").glob("*.yaml")):
        assert yaml.read_text().splitlines()[0] == "# @package dataset"
        cfg = load_dataset_config(yaml.stem)
        assert cfg.builder in DATASETS


def test_hydra_composes_dataset_group(tmp_path):
    hydra = pytest.importorskip("hydra")
    with hydra.initialize_config_dir(str(REPO / "configs"), version_base=None):
        cfg = hydra.compose(overrides=["+dataset=officehome", f"dataset.root={tmp_path}"])
    assert cfg.dataset.builder == "officehome" and cfg.dataset.root == str(tmp_path)
    assert cfg.dataset.domains[-1] == "Real World"

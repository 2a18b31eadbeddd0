"""A generic image folder (datasets/imagefolder.py): <domain>/<class>/*.jpg."""
from __future__ import annotations

import pytest
from bench.datasets import (
    DatasetError,
)
from helpers import (
    make_imagefolder,
)

from helpers import load_dataset
from bench.check import load_dataset_config


def test_generic_imagefolder(tmp_path):
    root = make_imagefolder(tmp_path / "pacs", ["photo", "sketch"], ["dog", "guitar"], 5)
    ds = load_dataset(load_dataset_config("imagefolder", [f"dataset.root={root}"]))
    assert ds.task_names == ("photo", "sketch")  # domains: null = every sub-folder
    assert ds.tasks[0].classnames == ("dog", "guitar")
    assert [len(ds.tasks[0].split(s)) for s in ("train", "val", "test")] == [6, 2, 2]
    with pytest.raises(DatasetError, match="'art_painting', 'cartoon' not found"):
        load_dataset(load_dataset_config("pacs", [f"dataset.root={root}", "dataset.num_classes=2"]))
    with pytest.raises(DatasetError, match="val_fraction"):
        load_dataset(load_dataset_config("imagefolder", [f"dataset.root={root}", "dataset.test_fraction=0.9"]))

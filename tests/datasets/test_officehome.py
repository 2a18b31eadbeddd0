"""Office-Home (datasets/officehome.py): counts and stratified splits of a tiny copy of its layout,
and every layout mistake as one clear error."""
from __future__ import annotations

import os

import pytest
from bench.datasets import (
    DatasetError,
)
from helpers import (
    OH_CLASSES,
    OH_DOMAINS,
    make_imagefolder,
    oh_cfg,
    paths,
)

from helpers import load_dataset
from bench.check import load_dataset_config


def test_officehome_counts_and_stratified_split(officehome_root):
    ds = load_dataset(oh_cfg(officehome_root))
    assert ds.task_names == tuple(OH_DOMAINS)
    for task in ds.tasks:
        assert task.classnames == ("alarm clock", "backpack", "tv stand")
        assert (len(task.train), len(task.val), len(task.test)) == (18, 6, 6)
        for split in (task.train, task.val, task.test):  # stratified: equal per class
            counts = [sum(1 for _, y in split if y == c) for c in range(3)]
            assert len(set(counts)) == 1
        assert not paths(task.train) & paths(task.val)
        assert not paths(task.train) & paths(task.test)
        assert not paths(task.val) & paths(task.test)
        assert len(paths(task.train) | paths(task.val) | paths(task.test)) == 30
        for p, y in task.train + task.val + task.test:
            assert os.path.isabs(p) and os.path.isfile(p)
            assert os.path.basename(os.path.dirname(p)) == OH_CLASSES[y]
            assert os.path.basename(os.path.dirname(os.path.dirname(p))) == task.name


def test_real_world_underscore_under_archive_folder(tmp_path):
    make_imagefolder(tmp_path / "OfficeHomeDataset_10072016", ["Art", "Clipart", "Product", "Real_World"], OH_CLASSES)
    ds = load_dataset(oh_cfg(tmp_path))
    assert ds.task_names == tuple(OH_DOMAINS)
    assert ds.root.endswith("OfficeHomeDataset_10072016")
    assert "Real_World" in ds.task("Real World").train[0][0]


def test_officehome_missing_root(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_dataset(oh_cfg(tmp_path / "nowhere"))
    msg = str(err.value)
    assert "Office-Home not found at" in msg and "Art/<class>" in msg
    assert "dataset.root=" in msg and "CPB_DATA" in msg and "hemanthdv" in msg


def test_officehome_wrong_layout(tmp_path):
    make_imagefolder(tmp_path / "oh" / "images", OH_DOMAINS, OH_CLASSES, 2)  # one level too deep
    with pytest.raises(DatasetError, match=r"not found in .*found folders: images"):
        load_dataset(oh_cfg(tmp_path / "oh"))


def test_officehome_unknown_domain(officehome_root):
    with pytest.raises(DatasetError, match="no domain 'Sketch'"):
        load_dataset(oh_cfg(officehome_root, "dataset.domains=[Art,Sketch]"))
    ds = load_dataset(oh_cfg(officehome_root, "dataset.domains=[Art,Real_World]"))
    assert ds.task_names == ("Art", "Real World")


def test_class_list_mismatch(officehome_root):
    (officehome_root / "Product" / "Backpack").rename(officehome_root / "Product" / "Back_pack")
    with pytest.raises(DatasetError) as err:
        load_dataset(oh_cfg(officehome_root))
    assert "'Product' lacks Backpack and has extra Back_pack" in str(err.value)


def test_empty_class_folder(officehome_root):
    (officehome_root / "Art" / "Empty_Class").mkdir()
    with pytest.raises(DatasetError, match="contain no images.*Empty_Class"):
        load_dataset(oh_cfg(officehome_root))


def test_num_classes_check(officehome_root):
    with pytest.raises(DatasetError, match="expected 65 classes but found 3"):
        load_dataset(load_dataset_config("officehome", [f"dataset.root={officehome_root}"]))

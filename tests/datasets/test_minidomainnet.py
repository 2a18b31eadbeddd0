"""MiniDomainNet (datasets/minidomainnet.py): Dassl's split files on a tiny copy of its layout."""
from __future__ import annotations

import os

import pytest
from bench.datasets import (
    DatasetError,
)
from helpers import (
    DN_CLASSES,
    DN_DOMAINS,
    dn_cfg,
    paths,
)

from helpers import load_dataset
from bench.check import load_dataset_config


def test_minidomainnet(minidomainnet_root):
    ds = load_dataset(dn_cfg(minidomainnet_root, "dataset.val_fraction=0.34"))
    assert ds.task_names == tuple(DN_DOMAINS)
    for t in ds.tasks:
        assert t.classnames == ("aircraft carrier", "the eiffel tower", "zebra")
        assert (len(t.train), len(t.val), len(t.test)) == (18, 9, 9)
        assert not paths(t.train) & paths(t.val)
        for p, y in t.train + t.val + t.test:
            assert os.path.basename(os.path.dirname(p)) == DN_CLASSES[y]
    assert load_dataset(dn_cfg(minidomainnet_root)) == load_dataset(dn_cfg(minidomainnet_root))


def test_minidomainnet_missing_split_file(minidomainnet_root):
    (minidomainnet_root / "splits_mini" / "sketch_test.txt").unlink()
    with pytest.raises(DatasetError, match="sketch_test.txt not found.*splits_mini.*Dassl"):
        load_dataset(dn_cfg(minidomainnet_root))


def test_minidomainnet_bad_inputs(tmp_path, minidomainnet_root):
    with pytest.raises(DatasetError, match="MiniDomainNet not found at"):
        load_dataset(dn_cfg(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="no domain 'quickdraw'"):
        load_dataset(dn_cfg(minidomainnet_root, "dataset.domains=[quickdraw]"))
    with pytest.raises(DatasetError, match="expected 126 classes"):
        load_dataset(load_dataset_config("minidomainnet", [f"dataset.root={minidomainnet_root}"]))
    os.rename(minidomainnet_root / "real", minidomainnet_root / "real_images")
    with pytest.raises(DatasetError, match="domain folder.*real.*found folders"):
        load_dataset(dn_cfg(minidomainnet_root))

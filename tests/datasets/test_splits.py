"""Splitting (datasets/splits.py), on a tiny Office-Home: readable class names, seeded stratified
splits, few-shot subsets, user split files."""
from __future__ import annotations

import pytest
from bench.datasets import (
    DatasetError,
    readable_classname,
)
from helpers import (
    OH_CLASSES,
    OH_DOMAINS,
    oh_cfg,
    paths,
)

from helpers import load_dataset


def test_readable_classname():
    assert readable_classname("Alarm_Clock") == "alarm clock"
    assert readable_classname("tv_stand") == "tv stand"
    assert readable_classname("The_Eiffel_Tower") == "the eiffel tower"
    assert readable_classname("Flip-Flops") == "flip flops"


def test_split_is_seeded(officehome_root):
    a = load_dataset(oh_cfg(officehome_root))
    b = load_dataset(oh_cfg(officehome_root))
    c = load_dataset(oh_cfg(officehome_root, "dataset.split_seed=1"))
    assert a == b
    assert a.tasks[0].test != c.tasks[0].test
    assert a.tasks[0].test != a.tasks[1].test  # domains draw independently


def test_few_shot(officehome_root):
    full = load_dataset(oh_cfg(officehome_root))
    ds = load_dataset(oh_cfg(officehome_root, "dataset.few_shot=2", "dataset.few_shot_seed=3"))
    for t_full, t in zip(full.tasks, ds.tasks):
        assert len(t.train) == 2 * 3
        assert all(sum(1 for _, y in t.train if y == c) == 2 for c in range(3))
        assert paths(t.train) <= paths(t_full.train)
        assert t.val == t_full.val and t.test == t_full.test
    again = load_dataset(oh_cfg(officehome_root, "dataset.few_shot=2", "dataset.few_shot_seed=3"))
    other = load_dataset(oh_cfg(officehome_root, "dataset.few_shot=2", "dataset.few_shot_seed=4"))
    assert again == ds
    assert any(a.train != b.train for a, b in zip(ds.tasks, other.tasks))


def test_user_split_files(officehome_root, tmp_path):
    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    for d in OH_DOMAINS:
        for split, idx in (("train", range(0, 6)), ("val", range(6, 8)), ("test", range(8, 10))):
            if d == "Art" and split == "val":
                continue  # val file optional: carved from train
            lines = [f"{d}/{c}/{i:05d}.jpg {label}" for label, c in enumerate(OH_CLASSES) for i in idx]
            name = d.replace(" ", "_") if d == "Real World" else d  # both spellings accepted
            (split_dir / f"{name}_{split}.txt").write_text("# comment\n" + "\n".join(lines) + "\n")
    ds = load_dataset(oh_cfg(officehome_root, f"dataset.split_dir={split_dir}"))
    rw = ds.task("Real World")
    assert (len(rw.train), len(rw.val), len(rw.test)) == (18, 6, 6)
    assert all(p.endswith(("00008.jpg", "00009.jpg")) for p in paths(rw.test))
    art = ds.task("Art")
    assert len(art.train) + len(art.val) == 18 and len(art.val) > 0
    assert not paths(art.train) & paths(art.val)

    (split_dir / "Clipart_test.txt").unlink()
    with pytest.raises(DatasetError, match="Clipart_test.txt not found"):
        load_dataset(oh_cfg(officehome_root, f"dataset.split_dir={split_dir}"))
    (split_dir / "Clipart_test.txt").write_text("Clipart/Backpack/00000.jpg 0\n")
    with pytest.raises(DatasetError, match="label 0 to .*Backpack"):
        load_dataset(oh_cfg(officehome_root, f"dataset.split_dir={split_dir}"))
    (split_dir / "Clipart_test.txt").write_text("no-label-here\n")
    with pytest.raises(DatasetError, match="line 1"):
        load_dataset(oh_cfg(officehome_root, f"dataset.split_dir={split_dir}"))

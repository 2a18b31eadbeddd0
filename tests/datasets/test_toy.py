"""The generated toy dataset (datasets/toy.py): deterministic, cached, its default root, and a
half-written folder rejected."""
from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
from bench.datasets import (
    DatasetError,
)
from bench.datasets import toy as toy_module
from PIL import Image

from helpers import REPO, load_dataset
from omegaconf import OmegaConf
from bench.datasets.splits import expand_root
from bench.check import load_dataset_config


def test_toy_generation_is_deterministic(tmp_path, toy_dataset):
    # a generation here against the session's cached copy, which another call (in another
    # process, maybe) wrote: the same bytes twice
    a, b = tmp_path / "a", Path(expand_root(OmegaConf.load(REPO / "configs" / "dataset" / "toy.yaml").root))
    toy_module.generate_toy(str(a))
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert len(files) == 4 * 5 * 200 + 1
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    with Image.open(a / "photo" / "star" / "star_000.jpg") as im:
        assert im.size == (64, 64)


def test_toy_build_and_cache(tmp_path, monkeypatch):
    root = tmp_path / "cache" / "toy_v2"
    cfg = load_dataset_config("toy", [f"dataset.root={root}"])
    ds = load_dataset(cfg)
    assert ds.task_names == ("photo", "sketch", "clipart", "painting")
    assert ds.tasks[0].classnames == ("circle", "cross", "square", "star", "triangle")
    assert [len(ds.tasks[0].split(s)) for s in ("train", "val", "test")] == [600, 200, 200]
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no temp left

    def fail(_):
        raise AssertionError("regenerated the cached toy dataset")

    monkeypatch.setattr(toy_module, "generate_toy", fail)
    assert load_dataset(cfg) == ds
    assert toy_module.ensure_toy(str(root)) is False


def test_toy_env_default_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CPB_CACHE", str(tmp_path))
    cfg = load_dataset_config("toy")
    assert cfg.root == f"{tmp_path}/toy_v2"
    monkeypatch.delenv("CPB_CACHE")
    assert load_dataset_config("toy").root == "~/.cache/clip-prompt-bench/toy_v2"


def test_toy_half_written_folder_is_rejected(tmp_path):
    root = tmp_path / "toy_v2"
    (root / "photo").mkdir(parents=True)
    with pytest.raises(DatasetError, match="not a complete toy dataset"):
        load_dataset(load_dataset_config("toy", [f"dataset.root={root}"]))

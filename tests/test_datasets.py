"""Tests for the datasets/ package: real layouts generated as tiny files in tmp_path."""
from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bench.datasets import (
    DATASETS,
    DatasetError,
    ImageListDataset,
    MultiDomainDataset,
    Task,
    collate_skip_unreadable,
    readable_classname,
    register_dataset,
)
from bench.datasets import toy as toy_module
from bench.datasets.check import check_dataset
from PIL import Image

from bench.app import load_dataset
from bench.check import load_dataset_config

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

OH_DOMAINS = ["Art", "Clipart", "Product", "Real World"]
OH_CLASSES = ["Alarm_Clock", "Backpack", "tv_stand"]
DN_DOMAINS = ["clipart", "painting", "real", "sketch"]
DN_CLASSES = ["aircraft_carrier", "The_Eiffel_Tower", "zebra"]


def _image(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (value % 256, 40, 90)).save(path, format="JPEG")


def make_imagefolder(root: Path, domains, classes, n_per_class=10) -> Path:
    for d in domains:
        for ci, c in enumerate(classes):
            for i in range(n_per_class):
                _image(root / d / c / f"{i:05d}.jpg", ci * 20 + i)
    return root


@pytest.fixture
def officehome_root(tmp_path) -> Path:
    return make_imagefolder(tmp_path / "office_home", OH_DOMAINS, OH_CLASSES)


def oh_cfg(root, *overrides):
    return load_dataset_config("officehome", [f"dataset.root={root}", "dataset.num_classes=3", *overrides])


@pytest.fixture
def minidomainnet_root(tmp_path) -> Path:
    root = tmp_path / "domainnet"
    (root / "splits_mini").mkdir(parents=True)
    for d in DN_DOMAINS:
        lines = {"train": [], "test": []}
        for label, c in enumerate(DN_CLASSES):
            for i in range(12):
                rel = f"{d}/{c}/{d}_{label:03d}_{i:06d}.jpg"
                _image(root / rel, i)
                lines["train" if i < 9 else "test"].append(f"{rel} {label}")
        for split, ls in lines.items():
            (root / "splits_mini" / f"{d}_{split}.txt").write_text("\n".join(ls) + "\n")
    return root


def dn_cfg(root, *overrides):
    return load_dataset_config("minidomainnet", [f"dataset.root={root}", "dataset.num_classes=3", *overrides])


def paths(samples):
    return {p for p, _ in samples}


# --------------------------------------------------------------------- helpers
def test_readable_classname():
    assert readable_classname("Alarm_Clock") == "alarm clock"
    assert readable_classname("tv_stand") == "tv stand"
    assert readable_classname("The_Eiffel_Tower") == "the eiffel tower"
    assert readable_classname("Flip-Flops") == "flip flops"


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


# ----------------------------------------------------------------- Office-Home
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


def test_split_is_seeded(officehome_root):
    a = load_dataset(oh_cfg(officehome_root))
    b = load_dataset(oh_cfg(officehome_root))
    c = load_dataset(oh_cfg(officehome_root, "dataset.split_seed=1"))
    assert a == b
    assert a.tasks[0].test != c.tasks[0].test
    assert a.tasks[0].test != a.tasks[1].test  # domains draw independently


def test_real_world_underscore_under_archive_folder(tmp_path):
    make_imagefolder(tmp_path / "OfficeHomeDataset_10072016", ["Art", "Clipart", "Product", "Real_World"], OH_CLASSES)
    ds = load_dataset(oh_cfg(tmp_path))
    assert ds.task_names == tuple(OH_DOMAINS)
    assert ds.root.endswith("OfficeHomeDataset_10072016")
    assert "Real_World" in ds.task("Real World").train[0][0]


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


# ---------------------------------------------------------------- MiniDomainNet
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


# ------------------------------------------------------------------ ImageFolder
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


# ------------------------------------------------------- unreadable images
def test_corrupt_image_returns_none_and_collate_counts(tmp_path):
    good = tmp_path / "good.jpg"
    _image(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    missing = tmp_path / "missing.jpg"
    to_tensor = lambda im: torch.from_numpy(__import__("numpy").asarray(im).copy()).permute(2, 0, 1).float()
    data = ImageListDataset([(str(good), 1), (str(bad), 2), (str(missing), 0)], to_tensor)
    with pytest.warns(RuntimeWarning):
        items = [data[i] for i in range(3)]
    assert items[0][1] == 1 and items[0][0].shape == (3, 4, 4)
    assert items[1] is None and items[2] is None
    images, labels, n_bad = collate_skip_unreadable(items)
    assert images.shape == (1, 3, 4, 4) and labels.tolist() == [1] and labels.dtype == torch.long
    assert n_bad == 2
    images, labels, n_bad = collate_skip_unreadable([None, None])
    assert images.numel() == 0 and labels.numel() == 0 and n_bad == 2
    loader = torch.utils.data.DataLoader(data, batch_size=3, collate_fn=collate_skip_unreadable)
    with pytest.warns(RuntimeWarning):
        assert next(iter(loader))[2] == 2


# ---------------------------------------------------------------------- check
def test_check_dataset_report(officehome_root):
    (officehome_root / "Art" / "Backpack" / "00003.jpg").write_bytes(b"garbage")
    report = check_dataset(oh_cfg(officehome_root))
    assert not report.ok
    art = report.domains[0]
    assert (art.name, art.classes, art.images, art.train, art.val, art.test) == ("Art", 3, 30, 18, 6, 6)
    assert len(art.unreadable) == 1 and art.unreadable[0].endswith("00003.jpg")
    assert "1 unreadable file(s)" in report.format()


def run_check(*args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([PYTHON, "-m", "bench.check", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_check_cli_exit_codes(officehome_root, tmp_path):
    ok = run_check("dataset=officehome", f"dataset.root={officehome_root}", "dataset.num_classes=3")
    assert ok.returncode == 0, ok.stderr
    assert "Real World" in ok.stdout and "OK" in ok.stdout
    assert "train" in ok.stdout and "unreadable" in ok.stdout

    (officehome_root / "Clipart" / "tv_stand" / "00001.jpg").write_bytes(b"\xff\xd8 truncated")
    bad = run_check("dataset=officehome", f"dataset.root={officehome_root}", "dataset.num_classes=3")
    assert bad.returncode == 1
    assert "Clipart: 1 unreadable" in bad.stdout

    missing = run_check("dataset=officehome", f"dataset.root={tmp_path / 'nowhere'}")
    assert missing.returncode == 2
    assert "Office-Home not found at" in missing.stderr and "Traceback" not in missing.stderr



def test_check_main_usage_errors(capsys):
    from bench.check import main

    assert main(["dataset=nope"]) == 2
    assert "No dataset config 'nope'" in capsys.readouterr().err
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err
    assert main(["dataset=toy", "root=/x"]) == 2  # overrides need the dataset. prefix


# ------------------------------------------------------------------------ toy
def test_toy_generation_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    toy_module.generate_toy(str(a))
    toy_module.generate_toy(str(b))
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

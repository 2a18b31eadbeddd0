"""MiniDomainNet (Zhou et al., "Domain Adaptive Ensemble Learning", TIP 2021).

A 126-class subset of DomainNet (Peng et al., ICCV 2019) over 4 domains
(clipart, painting, real, sketch). Layout::

    <root>/<domain>/<class>/<image>.jpg          # the DomainNet images
    <root>/splits_mini/<domain>_train.txt        # from Dassl's splits_mini
    <root>/splits_mini/<domain>_test.txt

Split lines are ``clipart/aircraft_carrier/clipart_001_000018.jpg 0`` (path
relative to ``root``, label). Class names come from the split files (label ->
class folder, the path's parent folder), checked to be consistent and identical
across domains. Validation is carved from train: ``val_fraction`` (0.1) of each
class's train images, seeded by ``split_seed``; the official test split is kept.
"""
from __future__ import annotations

import os

from bench.schema import DatasetConfig

from .base import DatasetError, MultiDomainDataset, Task
from .registry import register_dataset
from .splits import (
    as_list, check_fractions, check_same_classes, expand_root, list_subdirs, read_split_file,
    readable_classname, short_list, stratified_split,
)

DOMAINS = ("clipart", "painting", "real", "sketch")
SPLITS_HINT = (
    "The splits_mini folder comes with Dassl (KaiyangZhou/Dassl.pytorch, DATASETS.md, section "
    "'miniDomainNet'): download splits_mini.zip from the link there and unzip it into the DomainNet "
    "root, next to the domain folders; the images come from "
    "http://ai.bu.edu/M3SDA/ (DomainNet, 'cleaned' version)."
)


@register_dataset("minidomainnet")
def build_minidomainnet(cfg: DatasetConfig) -> MultiDomainDataset:
    root = expand_root(cfg.root)
    return build_listed(cfg, name="MiniDomainNet", root=root, all_domains=DOMAINS,
                        split_dir=os.path.join(root, "splits_mini"), hint=SPLITS_HINT)


def build_listed(cfg: DatasetConfig, *, name: str, root: str, all_domains: tuple[str, ...], split_dir: str,
                 hint: str) -> MultiDomainDataset:
    """A DomainNet-style dataset: ``<root>/<domain>/<class>/*`` images listed by
    ``<split_dir>/<domain>_{train,test}.txt`` (MiniDomainNet, and DomainNet's own lists)."""
    domains = as_list(cfg.domains) or list(all_domains)
    unknown = [d for d in domains if d not in all_domains]
    if unknown:
        raise DatasetError(
            f"{name} has no domain {', '.join(repr(u) for u in unknown)}; its domains are "
            f"{', '.join(all_domains)}. Fix dataset.domains (or null for all of them)."
        )
    lists = os.path.relpath(os.path.join(split_dir, "clipart_train.txt"), root)
    if not os.path.isdir(root):
        raise DatasetError(
            f"{name} not found at {root}. Expected {root}/clipart/<class>/*.jpg (domains "
            f"{', '.join(all_domains)}) and {root}/{lists}. {hint} Then pass "
            f"dataset.root=/path/to/domainnet or set CPB_DATA (default root $CPB_DATA/domainnet)."
        )
    found = list_subdirs(root)
    missing = [d for d in domains if d not in found]
    if missing:
        raise DatasetError(
            f"{name}: domain folder(s) {', '.join(missing)} not found in {root}. Expected domains: "
            f"{', '.join(domains)}; found folders: {short_list(found)}. Point dataset.root at "
            f"the DomainNet folder that holds the domain folders and the split lists ({lists})."
        )
    val_fraction = cfg.val_fraction
    seed = cfg.split_seed
    check_fractions(val_fraction, 0.0, name)

    per_domain = {}
    class_maps = {}
    for d in domains:
        files = {s: os.path.join(split_dir, f"{d}_{s}.txt") for s in ("train", "test")}
        for path in files.values():
            if not os.path.isfile(path):
                raise DatasetError(f"{name}: split file {path} not found. {hint}")
        train = read_split_file(files["train"], root, name)
        test = read_split_file(files["test"], root, name)
        first = train[0][0]
        if not os.path.isfile(first):
            raise DatasetError(
                f"{name}: {files['train']} lists {first}, which does not exist. The split files' "
                f"paths are relative to the DomainNet root ({root}); check dataset.root and that "
                f"the '{d}' images are extracted there."
            )
        label_to_folder: dict[int, str] = {}
        for path, label in train + test:
            folder = os.path.basename(os.path.dirname(path))
            if label_to_folder.setdefault(label, folder) != folder:
                raise DatasetError(
                    f"{name}: label {label} is used for both '{label_to_folder[label]}' and "
                    f"'{folder}' in the {d} split files ({split_dir}); the split files are corrupt."
                )
        if sorted(label_to_folder) != list(range(len(label_to_folder))):
            raise DatasetError(
                f"{name}: the {d} split files use labels {sorted(label_to_folder)[:5]}... which are "
                f"not 0..{len(label_to_folder) - 1}; the split files are corrupt or incomplete."
            )
        class_maps[d] = [label_to_folder[i] for i in range(len(label_to_folder))]
        per_domain[d] = (train, test)

    check_same_classes(class_maps, name)
    class_folders = class_maps[domains[0]]
    expected = cfg.num_classes
    if expected is not None and int(expected) != len(class_folders):
        raise DatasetError(
            f"{name}: expected {expected} classes but the split files in {split_dir} define "
            f"{len(class_folders)}. Use the official split lists, or set dataset.num_classes=null."
        )
    classnames = tuple(readable_classname(c) for c in class_folders)
    tasks = []
    for d in domains:
        train_all, test = per_domain[d]
        train, val, _ = stratified_split(train_all, val_fraction, 0.0, seed, d)
        tasks.append(Task(d, classnames, tuple(train), tuple(val), tuple(test)))
    return MultiDomainDataset(name=name, root=root, tasks=tuple(tasks))

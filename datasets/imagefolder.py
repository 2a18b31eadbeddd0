"""Generic multi-domain ImageFolder: ``<root>/<domain>/<class>/<image>``.

Config keys (``configs/dataset/imagefolder.yaml``; PACS, VLCS, Office-31 and
DomainNet need only a YAML like ``pacs.yaml``):

* ``root`` -- folder holding the domain folders.
* ``domains`` -- list of domain folder names; ``null`` = every sub-folder.
* ``val_fraction``, ``test_fraction``, ``split_seed`` -- seeded stratified split
  per domain and class (:func:`datasets.splits.stratified_split`).
* ``split_dir`` -- optional folder of user split files
  ``{domain}_{train,val,test}.txt`` (``Real World`` may also be written
  ``Real_World``), lines ``relative/path label`` with paths relative to
  ``root`` (format in :mod:`datasets.splits`). ``train`` and ``test`` are
  required; without a ``val`` file, validation is carved from train
  (``val_fraction`` of each class's train images, seeded by ``split_seed``).
  Labels must index the sorted class-folder list.
* ``num_classes`` -- optional sanity check of the class count.
* ``few_shot``, ``few_shot_seed`` -- applied by :func:`datasets.build_dataset`.

Labels are indices into the sorted class-folder names, which must be identical
across domains; ``Task.classnames`` holds their readable forms.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from bench.schema import DatasetConfig

from .base import DatasetError, MultiDomainDataset, Task
from .registry import register_dataset
from .splits import (
    as_list, check_fractions, check_same_classes, expand_root, find_split_file, list_subdirs,
    read_split_file, readable_classname, scan_class_folders, short_list, stratified_split,
)


def build_imagefolder(
    cfg: DatasetConfig,
    *,
    name: str,
    root: str,
    domains: Sequence[str] | None,
    aliases: Mapping[str, Sequence[str]] | None = None,
    download_hint: str = "",
    builder: str = "imagefolder",
) -> MultiDomainDataset:
    """Shared implementation for every ``<root>/<domain>/<class>/*`` dataset.

    ``aliases`` maps a domain's canonical name (used as ``Task.name``) to other
    accepted folder names (``{"Real World": ["Real_World"]}``).
    """
    aliases = dict(aliases or {})
    env_hint = "pass dataset.root=/path/to/data or set CPB_DATA (see configs/dataset/)"
    if not os.path.isdir(root):
        example = f"{root}/{domains[0] if domains else '<domain>'}/<class>/*.jpg"
        raise DatasetError(
            f"{name} not found at {root}. Expected {example}"
            f"{' (domains ' + ', '.join(domains) + ')' if domains else ''}. "
            f"{download_hint + ' ' if download_hint else ''}Then {env_hint}."
        )
    found = list_subdirs(root)
    if domains is None:
        domains = found
        if not domains:
            raise DatasetError(
                f"{name}: {root} has no sub-folders; expected one folder per domain, "
                f"{root}/<domain>/<class>/<image>. {env_hint[0].upper() + env_hint[1:]}."
            )
    folders: dict[str, str] = {}
    missing = []
    for d in domains:
        for candidate in [d, *aliases.get(d, [])]:
            if candidate in found:
                folders[d] = os.path.join(root, candidate)
                break
        else:
            missing.append(d)
    if missing:
        raise DatasetError(
            f"{name}: domain folder(s) {', '.join(repr(m) for m in missing)} not found in {root}. "
            f"Expected domains: {', '.join(domains)}; found folders: {short_list(found)}. "
            f"Point dataset.root at the folder that directly contains the domain folders "
            f"(layout <root>/<domain>/<class>/<image>) or fix dataset.domains."
        )

    per_domain = {d: scan_class_folders(folders[d], name) for d in domains}
    check_same_classes({d: list(v) for d, v in per_domain.items()}, name)
    class_folders = list(per_domain[domains[0]])
    expected = cfg.num_classes
    if expected is not None and int(expected) != len(class_folders):
        raise DatasetError(
            f"{name}: expected {expected} classes but found {len(class_folders)} class folders in "
            f"{folders[domains[0]]} ({', '.join(class_folders[:5])}{' ...' if len(class_folders) > 5 else ''}). "
            f"Check dataset.root, or set dataset.num_classes=null to skip this check."
        )
    classnames = tuple(readable_classname(c) for c in class_folders)

    split_dir = cfg.split_dir
    val_fraction = cfg.val_fraction
    seed = cfg.split_seed
    tasks = []
    for d in domains:
        key = d
        if split_dir is None:
            test_fraction = cfg.test_fraction
            check_fractions(val_fraction, test_fraction, name)
            samples = [(p, label) for label, c in enumerate(class_folders) for p in per_domain[d][c]]
            train, val, test = stratified_split(samples, val_fraction, test_fraction, seed, key)
        else:
            train, val, test = _read_user_splits(
                expand_root(split_dir), d, os.path.basename(folders[d]), root, class_folders,
                val_fraction, seed, name,
            )
        tasks.append(Task(d, classnames, tuple(train), tuple(val), tuple(test)))
    return MultiDomainDataset(name=name, root=root, tasks=tuple(tasks))


def _read_user_splits(split_dir, domain, folder, root, class_folders, val_fraction, seed, name):
    if not os.path.isdir(split_dir):
        raise DatasetError(
            f"{name}: split_dir {split_dir} does not exist. Expected files "
            f"{split_dir}/{domain}_train.txt, {domain}_val.txt (optional), {domain}_test.txt; "
            f"or set dataset.split_dir=null for the seeded stratified split."
        )
    splits = {}
    for split in ("train", "val", "test"):
        path = find_split_file(split_dir, [domain, folder], split)
        if path is None:
            if split == "val":
                continue
            raise DatasetError(
                f"{name}: split file {os.path.join(split_dir, domain + '_' + split + '.txt')} not found "
                f"(found: {', '.join(sorted(os.listdir(split_dir))) or 'nothing'}). Expected "
                f"{{domain}}_{{train,val,test}}.txt with lines 'relative/path label' (val optional)."
            )
        samples = read_split_file(path, root, name)
        for p, label in samples:
            if label >= len(class_folders):
                raise DatasetError(
                    f"{name}: label {label} in {path} is out of range; {len(class_folders)} classes "
                    f"(labels 0..{len(class_folders) - 1} index the sorted class folders)."
                )
            parent = os.path.basename(os.path.dirname(p))
            if parent in class_folders and class_folders.index(parent) != label:
                raise DatasetError(
                    f"{name}: {path} gives label {label} to {p}, but its class folder '{parent}' has "
                    f"label {class_folders.index(parent)} (labels index the sorted class folder names). "
                    f"Renumber the split file."
                )
        splits[split] = samples
    if "val" in splits:
        return splits["train"], splits["val"], splits["test"]
    train, val, _ = stratified_split(splits["train"], val_fraction, 0.0, seed, domain)
    return train, val, splits["test"]


@register_dataset("imagefolder")
def build_generic_imagefolder(cfg: DatasetConfig) -> MultiDomainDataset:
    """Any ``<root>/<domain>/<class>/*`` dataset (PACS, VLCS, Office-31, DomainNet)."""
    return build_imagefolder(
        cfg,
        name=cfg.name,
        root=expand_root(cfg.root),
        domains=as_list(cfg.domains),
        download_hint=cfg.download_hint,
    )

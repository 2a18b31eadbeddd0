"""Office-Home (Venkateswara et al., CVPR 2017): 4 domains x 65 classes.

Layout ``<root>/<Domain>/<Class>/*.jpg`` with domains ``Art``, ``Clipart``,
``Product`` and ``Real World`` (the folder may also be named ``Real_World``);
``root`` may also be the parent folder holding ``OfficeHomeDataset_10072016``.
Task names are the canonical domain names (``"Real World"``).

Splits: seeded stratified 60/20/20 per domain and class
(``val_fraction: 0.2, test_fraction: 0.2, split_seed: 0``), or user split
files in ``split_dir`` -- ``{domain}_{train,val,test}.txt``, one
``relative/path label`` per line, path relative to the folder holding the
domain folders, e.g. ``Real World/Alarm_Clock/00001.jpg 0`` (label = index in
the sorted class-folder list; the label is the last field so paths may contain
spaces; files may also be named ``Real_World_train.txt``; the val file is
optional, see :mod:`datasets.imagefolder`).
"""
from __future__ import annotations

import os

from bench.schema import DatasetConfig

from .base import DatasetError, MultiDomainDataset
from .imagefolder import build_imagefolder
from .registry import register_dataset
from .splits import as_list, expand_root

DOMAINS = ("Art", "Clipart", "Product", "Real World")
ALIASES = {"Real World": ["Real_World", "RealWorld"]}
ARCHIVE_FOLDER = "OfficeHomeDataset_10072016"
DOWNLOAD = (
    "Download OfficeHomeDataset_10072016.zip from https://www.hemanthdv.org/officeHomeDataset.html "
    "and unzip it."
)


@register_dataset("officehome")
def build_officehome(cfg: DatasetConfig) -> MultiDomainDataset:
    root = expand_root(cfg.root)
    if os.path.isdir(os.path.join(root, ARCHIVE_FOLDER)):
        root = os.path.join(root, ARCHIVE_FOLDER)
    domains = as_list(cfg.domains) or list(DOMAINS)
    unknown = [d for d in domains if d not in DOMAINS and not any(d in a for a in ALIASES.values())]
    if unknown:
        raise DatasetError(
            f"Office-Home has no domain {', '.join(repr(u) for u in unknown)}; its domains are "
            f"{', '.join(DOMAINS)}. Fix dataset.domains (or null for all four)."
        )
    canonical = {alias: d for d, names in ALIASES.items() for alias in names}
    domains = [canonical.get(d, d) for d in domains]
    return build_imagefolder(
        cfg, name="Office-Home", root=root, domains=domains, aliases=ALIASES,
        download_hint=DOWNLOAD, builder="officehome",
    )

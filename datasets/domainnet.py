"""DomainNet (Peng et al., "Moment Matching for Multi-Source Domain Adaptation", ICCV 2019):
6 domains x 345 classes, the "cleaned" release, with its official train/test lists.

Layout (what ``python -m bench.prepare domainnet`` makes from the official zips and lists)::

    <root>/<domain>/<class>/<image>.jpg     # clipart, infograph, painting, quickdraw, real, sketch
    <root>/<domain>_train.txt               # the official lists, lines
    <root>/<domain>_test.txt                #   "clipart/aircraft_carrier/clipart_001_000018.jpg 0"

Lists may also sit in ``<root>/splits/``.  Class names come from the lists (label -> class
folder), checked to agree across domains; validation is carved from train (``val_fraction``,
seeded by ``split_seed``); the official test list is kept.  Shares its reader with
MiniDomainNet (:func:`datasets.minidomainnet.build_listed`).
"""
from __future__ import annotations

import os

from bench.schema import DatasetConfig

from .base import MultiDomainDataset
from .minidomainnet import build_listed
from .registry import register_dataset
from .splits import expand_root

DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
SITE = "http://ai.bu.edu/M3SDA/"
#: The archives' addresses as the DomainNet page links them (clipart and painting moved to
#: groundtruth/ when the "cleaned" release replaced them).
BASE = "http://csr.bu.edu/ftp/visda/2019/multi-source"
URLS = {
    "clipart": f"{BASE}/groundtruth/clipart.zip", "infograph": f"{BASE}/infograph.zip",
    "painting": f"{BASE}/groundtruth/painting.zip", "quickdraw": f"{BASE}/quickdraw.zip",
    "real": f"{BASE}/real.zip", "sketch": f"{BASE}/sketch.zip",
}
LIST_URL = f"{BASE}/domainnet/txt/{{domain}}_{{split}}.txt"
HINT = (f"Download the domain zips and the <domain>_train.txt / <domain>_test.txt lists from {SITE} "
        "('cleaned' version) and run python -m bench.prepare domainnet --archive <files> --root <root>.")


@register_dataset("domainnet")
def build_domainnet(cfg: DatasetConfig) -> MultiDomainDataset:
    root = expand_root(cfg.root)
    nested = os.path.join(root, "splits")
    split_dir = nested if os.path.isfile(os.path.join(nested, f"{DOMAINS[0]}_train.txt")) else root
    return build_listed(cfg, name="DomainNet", root=root, all_domains=DOMAINS, split_dir=split_dir, hint=HINT)

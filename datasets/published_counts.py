"""How many images a complete copy of each dataset has, as its authors publish them, and the
comparison of a built dataset with those numbers.

* Office-Home (Venkateswara et al., CVPR 2017; the dataset's page): 15,588 images, 65 classes,
  Art 2,427, Clipart 4,365, Product 4,439, Real World 4,357.
* DomainNet, "cleaned" release (Peng et al., ICCV 2019; the M3SDA page): 345 classes, train/test
  images per domain from the official ``<domain>_train.txt`` / ``<domain>_test.txt`` lists.
* mini-DomainNet (Zhou et al., TIP 2021; Dassl's ``splits_mini``): 126 classes, 4 domains; no
  table of its own: a copy is complete when every line of its split files names a file that exists.

``completeness(dataset, cfg, expected=None)`` gives one row per domain and split group with
the images seen and expected; ``expected`` replaces the published table (tests pass tiny counts).
The counts are of the dataset as built (the listed files that exist), never of a folder walk.
A deliberate subset is not compared with the published numbers (its rows have no expected
count): ``dataset.few_shot`` set, or ``dataset.num_classes`` set to another number than published.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Mapping

from bench.schema import DatasetConfig

from .base import MultiDomainDataset

#: {builder: {domain: {split group: images}}}; "images" = the whole domain (no official split).
PUBLISHED: dict[str, dict[str, dict[str, int]]] = {
    "officehome": {
        "Art": {"images": 2427}, "Clipart": {"images": 4365},
        "Product": {"images": 4439}, "Real World": {"images": 4357},
    },
    "domainnet": {
        "clipart": {"train": 33525, "test": 14604}, "infograph": {"train": 36023, "test": 15582},
        "painting": {"train": 50416, "test": 21850}, "quickdraw": {"train": 120750, "test": 51750},
        "real": {"train": 120906, "test": 52041}, "sketch": {"train": 48212, "test": 20916},
    },
}
PUBLISHED_CLASSES = {"officehome": 65, "domainnet": 345, "minidomainnet": 126}
#: Datasets complete when every line of their split files is present (no published table).
LISTED = ("minidomainnet",)
Expected = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class DomainCount:
    """One domain's images in one split group: seen (present on disk) against expected."""

    domain: str
    split: str       # "images" (the whole domain), "train" (train + val carved from it) or "test"
    seen: int
    expected: int | None  # None: no published number for this dataset

    @property
    def short(self) -> bool:
        return self.expected is not None and self.seen < self.expected

    def as_dict(self) -> dict:
        return asdict(self)


def _groups(task) -> dict[str, list[str]]:
    """The task's listed files by split group: train and val together, as the official lists have them."""
    return {"train": [p for p, _ in task.train + task.val], "test": [p for p, _ in task.test]}


def subset_reason(cfg: DatasetConfig) -> str | None:
    """Why `cfg` asks for a deliberate subset (no comparison with the published counts), or None.
    A listed dataset is always compared with its own lists, whatever its subset."""
    if cfg.builder in LISTED:
        return None
    if cfg.few_shot is not None:
        return f"dataset.few_shot={cfg.few_shot}"
    published = PUBLISHED_CLASSES.get(cfg.builder)
    if cfg.num_classes is not None and published is not None and cfg.num_classes != published:
        return f"dataset.num_classes={cfg.num_classes} (published: {published})"
    return None


def completeness(dataset: MultiDomainDataset, cfg: DatasetConfig, expected: Expected | None = None) -> list[DomainCount]:
    """Rows of images seen against expected per domain (see the module docstring)."""
    builder = cfg.builder
    if expected is None and subset_reason(cfg):
        expected = {}
    table = PUBLISHED.get(builder) if expected is None else expected
    rows = []
    for task in dataset.tasks:
        groups = _groups(task)
        present = {g: sum(os.path.isfile(p) for p in paths) for g, paths in groups.items()}
        numbers = (table or {}).get(task.name)
        if builder in LISTED and expected is None:  # complete = every listed line present
            rows += [DomainCount(task.name, g, present[g], len(groups[g])) for g in groups]
        elif numbers is not None and "images" in numbers:
            rows.append(DomainCount(task.name, "images", sum(present.values()), int(numbers["images"])))
        else:
            rows += [DomainCount(task.name, g, present[g], None if numbers is None else int(numbers[g]))
                     for g in groups]
    return rows


def shortfall(rows: list[DomainCount]) -> str | None:
    """One warning naming every short domain with its counts, or None when nothing is short."""
    short = [f"{r.domain} {r.split} {r.seen:,} of {r.expected:,}" for r in rows if r.short]
    if not short:
        return None
    return ("incomplete copy: fewer images than published for " + "; ".join(short)
            + ". Re-extract the archives (python -m bench.prepare ... resumes and fills the gaps) or "
              "download them again; results on a short copy are not comparable with published ones.")


def format_counts(rows: list[DomainCount]) -> str:
    """The counts table: domain, split, seen, expected, status."""
    header = ("domain", "split", "images", "published", "status")
    body = [(r.domain, r.split, f"{r.seen:,}", "-" if r.expected is None else f"{r.expected:,}",
             "SHORT" if r.short else ("more" if r.expected is not None and r.seen > r.expected else "ok"))
            for r in rows]
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    line = lambda row: "  ".join(str(v).ljust(w) if i < 2 else str(v).rjust(w)  # noqa: E731
                                 for i, (v, w) in enumerate(zip(row, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])

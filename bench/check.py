"""`python -m bench.check dataset=<name> [dataset.key=value ...]`: check a dataset before training.

Usage::

    python -m bench.check dataset=officehome dataset.root=/path/to/OfficeHome
    python -m bench.check dataset=toy dataset.few_shot=4

Loads ``configs/dataset/<name>.yaml``, applies ``dataset.key=value`` overrides, checks the
block against the schema, builds the dataset, opens every image (PIL ``verify``) and prints
a per-domain table (bench/datasets/dataset_report.py) and each domain's images against the counts the
dataset's authors publish (datasets/published_counts.py). Exit codes: 0 all good, 1 problems
found (unreadable or missing files, empty or overlapping splits, classes without train images,
fewer images than published: a warning naming the domains and counts),
2 the dataset could not be built (the one-paragraph error, no traceback) or bad arguments.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from bench.app import CONFIG_DIR, dataset_config
from bench.datasets import DatasetError
from bench.datasets.dataset_report import check_dataset
from bench.datasets.published_counts import Expected
from bench.errors import EXIT_USER_ERROR, UserError
from bench.schema import DatasetConfig

DATASET_CONFIGS = Path(CONFIG_DIR) / "dataset"
USAGE = "usage: python -m bench.check dataset=<name> [dataset.key=value ...]"


def dataset_dotlist(overrides: Sequence[str]) -> list[str]:
    """`key=value` (or `dataset.key=value`) overrides as OmegaConf's dotlist.  One without `=` is
    an error: OmegaConf would read `num_classes` as num_classes=null without a word."""
    bare = [o for o in overrides if "=" not in o]
    if bare:
        raise DatasetError(f"The dataset override(s) {', '.join(map(repr, bare))} have no '=', so they set nothing "
                           "(or null). Write each as key=value, e.g. --set num_classes=3 or dataset.num_classes=3.")
    return [o[len("dataset."):] if o.startswith("dataset.") else o for o in overrides]


def load_dataset_config(name: str, overrides: Sequence[str] = ()) -> DatasetConfig:
    """``configs/dataset/<name>.yaml`` with ``key=value`` (or ``dataset.key=value``) overrides, checked."""
    path = DATASET_CONFIGS / f"{name}.yaml"
    if not path.is_file():
        choices = ", ".join(sorted(p.stem for p in DATASET_CONFIGS.glob("*.yaml"))) or "none"
        raise DatasetError(
            f"No dataset config '{name}': {path} does not exist. Available: {choices}. "
            f"Use dataset=<one of them>, or add a YAML to {DATASET_CONFIGS}."
        )
    dotlist = dataset_dotlist(overrides)
    try:
        cfg = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(dotlist))
        OmegaConf.resolve(cfg)
    except Exception as exc:  # OmegaConf's errors: bad override syntax or interpolation
        raise DatasetError(
            f"Could not apply the overrides {' '.join(overrides)} to {path}: {exc}. "
            f"Write them as dataset.key=value, e.g. dataset.root=/data/office_home."
        ) from None
    return dataset_config(cfg)


def main(argv: Sequence[str] | None = None, expected: Expected | None = None) -> int:
    """The command; `expected` replaces the published counts (tests pass tiny ones)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0
    names = [a.split("=", 1)[1] for a in argv if a.startswith("dataset=")]
    overrides = [a for a in argv if a.startswith("dataset.") and "=" in a]
    bad = [a for a in argv if not a.startswith("dataset=") and a not in overrides]
    if len(names) != 1 or bad:
        print(f"{USAGE}\n(got: {' '.join(argv) or 'no arguments'})", file=sys.stderr)
        return 2
    try:
        report = check_dataset(load_dataset_config(names[0], overrides), expected=expected)
    except UserError as exc:  # a missing dataset, a bad layout or a bad dataset.* value
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(report.format())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

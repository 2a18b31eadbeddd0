"""Check a dataset before training: every image opened, counts per domain.

Usage (from the repository root)::

    python -m datasets.check dataset=officehome dataset.root=/path/to/OfficeHome
    python -m datasets.check dataset=toy dataset.few_shot=4

Loads ``configs/dataset/<name>.yaml`` with OmegaConf, applies
``dataset.key=value`` overrides, builds the dataset, opens every image (PIL
``verify``) and prints a per-domain table. Exit codes: 0 all good, 1 problems
found (unreadable or missing files, empty or overlapping splits, classes without
train images), 2 the dataset could not be built (the one-paragraph DatasetError, no
traceback) or bad arguments.
"""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from bench.errors import EXIT_USER_ERROR, UserError

from .base import DatasetError
from .registry import build_dataset
from .verify import image_problem

CONFIG_DIR = Path(__file__).resolve().parent.parent / "bench" / "configs" / "dataset"


@dataclass
class DomainReport:
    name: str
    classes: int
    images: int
    train: int
    val: int
    test: int
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    dataset: str
    root: str
    domains: list[DomainReport]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        header = ("domain", "classes", "images", "train", "val", "test", "missing", "unreadable")
        rows = [header] + [
            (d.name, d.classes, d.images, d.train, d.val, d.test, len(d.missing), len(d.unreadable))
            for d in self.domains
        ]
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
        line = lambda r: "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
        out = [f"dataset {self.dataset} at {self.root}", line(header), line(["-" * w for w in widths])]
        out += [line(r) for r in rows[1:]]
        if self.problems:
            out.append(f"{len(self.problems)} problem(s):")
            out += [f"  - {p}" for p in self.problems]
        else:
            out.append("OK: every image opened.")
        return "\n".join(out)


def _verify(path: str) -> str | None:
    """None if ``path`` is a readable image, else 'missing' or 'unreadable' (datasets.verify)."""
    problem = image_problem(path)
    return None if problem is None else ("missing" if problem == "missing" else "unreadable")


def check_dataset(cfg: Mapping[str, Any], workers: int = 8) -> CheckReport:
    """Build the dataset from ``cfg``, open every image and report per domain.

    Raises :class:`DatasetError` when the dataset cannot be built at all.
    """
    ds = build_dataset(cfg)
    domains, problems = [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for task in ds.tasks:
            splits = {s: task.split(s) for s in ("train", "val", "test")}
            paths = sorted({p for samples in splits.values() for p, _ in samples})
            status = dict(zip(paths, pool.map(_verify, paths)))
            rep = DomainReport(
                task.name, task.num_classes, len(paths), *(len(splits[s]) for s in ("train", "val", "test")),
                missing=[p for p, s in status.items() if s == "missing"],
                unreadable=[p for p, s in status.items() if s == "unreadable"],
            )
            domains.append(rep)
            for kind in ("missing", "unreadable"):
                files = getattr(rep, kind)
                if files:
                    shown = ", ".join(files[:5]) + (" ..." if len(files) > 5 else "")
                    problems.append(f"{task.name}: {len(files)} {kind} file(s): {shown}")
            for split, samples in splits.items():
                if not samples:
                    problems.append(f"{task.name}: the {split} split is empty (train {rep.train}, val {rep.val}, "
                                    f"test {rep.test}); raise dataset.{split}_fraction or fix the split files"
                                    if split != "train" else f"{task.name}: the train split is empty")
            sets = {s: {p for p, _ in samples} for s, samples in splits.items()}
            for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
                overlap = sets[a] & sets[b]
                if overlap:
                    problems.append(f"{task.name}: {len(overlap)} image(s) in both {a} and {b}")
            no_train = sorted(set(range(task.num_classes)) - {lbl for _, lbl in splits["train"]})
            if no_train:
                names = ", ".join(task.classnames[i] for i in no_train[:5])
                problems.append(f"{task.name}: {len(no_train)} class(es) without train images: {names}")
    return CheckReport(ds.name, ds.root, domains, problems)


def load_dataset_config(name: str, overrides: Sequence[str] = ()):
    """``configs/dataset/<name>.yaml`` with ``key=value`` (or ``dataset.key=value``) overrides."""
    from omegaconf import OmegaConf

    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        choices = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))) or "none"
        raise DatasetError(
            f"No dataset config '{name}': {path} does not exist. Available: {choices}. "
            f"Use dataset=<one of them>, or add a YAML to {CONFIG_DIR}."
        )
    dotlist = [o[len("dataset."):] if o.startswith("dataset.") else o for o in overrides]
    try:
        cfg = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(dotlist))
        OmegaConf.resolve(cfg)
    except Exception as exc:  # OmegaConf's errors: bad override syntax or interpolation
        raise DatasetError(
            f"Could not apply the overrides {' '.join(overrides)} to {path}: {exc}. "
            f"Write them as dataset.key=value, e.g. dataset.root=/data/office_home."
        ) from None
    return cfg


USAGE = "usage: python -m datasets.check dataset=<name> [dataset.key=value ...]"


def main(argv: Sequence[str] | None = None) -> int:
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
        report = check_dataset(load_dataset_config(names[0], overrides))
    except UserError as exc:  # a missing dataset, a bad layout or a bad dataset.* value
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(report.format())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

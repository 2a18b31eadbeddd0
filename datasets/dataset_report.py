"""Check a dataset before training: every image opened, counts per domain, and the counts
against the published ones.

``check_dataset(cfg)`` builds the dataset of a typed ``dataset`` block, opens every image
(PIL ``verify``), compares each domain's image count with the numbers its authors publish
(datasets/published_counts.py; ``expected=`` replaces them) and returns a per-domain report;
``python -m bench.check`` is its command and ``python -m bench.prepare`` ends with it.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bench.schema import DatasetConfig

from .published_counts import DomainCount, Expected, completeness, format_counts, shortfall, subset_reason
from .registry import build_dataset
from .image_scan import image_problem

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
    counts: list[DomainCount] = field(default_factory=list)  # seen against published, per domain
    not_compared: str | None = None  # why a deliberate subset is not compared with the published counts

    @property
    def short(self) -> str | None:
        """The warning naming the domains with fewer images than published, or None."""
        return shortfall(self.counts)

    @property
    def ok(self) -> bool:
        return not self.problems and self.short is None

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
        if self.counts:
            why = f" (not compared: {self.not_compared} asks for a subset)" if self.not_compared else ""
            out += ["", f"images against the published counts{why}:", format_counts(self.counts)]
        if self.short:
            out.append(f"WARNING: {self.short}")
        if self.problems:
            out.append(f"{len(self.problems)} problem(s):")
            out += [f"  - {p}" for p in self.problems]
        elif not self.short:
            out.append("OK: every image opened.")
        return "\n".join(out)


def _verify(path: str) -> str | None:
    """None if ``path`` is a readable image, else 'missing' or 'unreadable' (datasets.image_scan)."""
    problem = image_problem(path)
    return None if problem is None else ("missing" if problem == "missing" else "unreadable")


def check_dataset(cfg: DatasetConfig, workers: int = 8, expected: Expected | None = None) -> CheckReport:
    """Build the dataset from ``cfg``, open every image and report per domain; ``expected``
    ({domain: {split group: images}}) replaces the published counts.

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
    return CheckReport(ds.name, ds.root, domains, problems, completeness(ds, cfg, expected),
                       subset_reason(cfg) if expected is None else None)

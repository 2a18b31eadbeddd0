"""Split logic shared by every builder (one place, no duplicates).

* :func:`stratified_split` -- seeded per-class split into train/val/test.
  Each class's images are sorted, shuffled with a ``random.Random`` seeded by
  ``f"{seed}/{domain}/{label}"`` (a string seed, stable across Python versions
  and platforms) and cut into ``round(n*test_fraction)`` test images,
  ``round(n*val_fraction)`` val images and the rest train (at least one train
  image per non-empty class). Seeding per (domain, class) means adding a domain
  or a class never changes the split of the others.
* :func:`read_split_file` -- user split files, one sample per line::

      relative/path/to/image.jpg 17

  i.e. the path relative to the dataset root, whitespace, the integer label.
  The label is the *last* whitespace-separated field, so paths may contain
  spaces (``Real World/Alarm_Clock/00001.jpg 0``). Blank lines and lines
  starting with ``#`` are ignored. This is the format of DomainNet's and
  MiniDomainNet's split files.
* :func:`few_shot_subset` -- keep ``k`` train images per class (seeded the same
  way, with ``few_shot_seed``).
"""
from __future__ import annotations

import math
import os
import random
import re
from typing import Any, Iterable, Mapping, Sequence

from .base import DatasetError, Sample

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def readable_classname(folder: str) -> str:
    """Folder name -> prompt-ready class name: ``"Alarm_Clock" -> "alarm clock"``."""
    name = re.sub(r"[_\-]+", " ", folder)
    return re.sub(r"\s+", " ", name).strip().lower()


def as_list(value: Any) -> list | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def expand_root(root: Any) -> str:
    return os.path.abspath(os.path.expanduser(os.path.expandvars(str(root))))


# ------------------------------------------------------------------- scanning
def list_subdirs(path: str) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``path``."""
    try:
        entries = os.listdir(path)
    except OSError:
        return []
    return sorted(e for e in entries if not e.startswith(".") and os.path.isdir(os.path.join(path, e)))


def short_list(names: Sequence[str], limit: int = 12) -> str:
    """``"a, b, c"``, truncated to ``limit`` names with a count of the rest."""
    names = list(names)
    if not names:
        return "none"
    more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def list_images(folder: str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Sorted absolute paths of image files under ``folder`` (recursive)."""
    found = []
    exts = tuple(e.lower() for e in extensions)
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if not f.startswith(".") and f.lower().endswith(exts):
                found.append(os.path.join(dirpath, f))
    return sorted(found)


def scan_class_folders(domain_dir: str, dataset_name: str) -> dict[str, list[str]]:
    """``{class folder: sorted image paths}`` for ``<domain_dir>/<class>/*``."""
    classes = list_subdirs(domain_dir)
    if not classes:
        raise DatasetError(
            f"{dataset_name}: the domain folder {domain_dir} has no class sub-folders. Expected "
            f"{domain_dir}/<class>/<image>.jpg. Check dataset.root points at the folder that "
            f"contains the domain folders."
        )
    images = {c: list_images(os.path.join(domain_dir, c)) for c in classes}
    empty = [c for c, paths in images.items() if not paths]
    if empty:
        raise DatasetError(
            f"{dataset_name}: {len(empty)} class folder(s) in {domain_dir} contain no images "
            f"(extensions {', '.join(IMAGE_EXTENSIONS)}): {', '.join(empty[:10])}"
            f"{' ...' if len(empty) > 10 else ''}. Re-extract the dataset or remove the empty folders."
        )
    return images


def check_same_classes(per_domain: Mapping[str, Sequence[str]], dataset_name: str) -> None:
    """Raise a DatasetError naming the difference when domains' class lists differ."""
    domains = list(per_domain)
    if not domains:
        return
    ref_name, ref = domains[0], list(per_domain[domains[0]])
    diffs = []
    for d in domains[1:]:
        cur = list(per_domain[d])
        if cur != ref:
            missing = sorted(set(ref) - set(cur))
            extra = sorted(set(cur) - set(ref))
            parts = []
            if missing:
                parts.append(f"lacks {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
            if extra:
                parts.append(f"has extra {', '.join(extra[:8])}{' ...' if len(extra) > 8 else ''}")
            if not parts:
                parts.append("has the same classes in a different label order")
            diffs.append(f"'{d}' {' and '.join(parts)}")
    if diffs:
        raise DatasetError(
            f"{dataset_name}: every domain must have the same class list (label = index in the "
            f"sorted class list), but compared with '{ref_name}' ({len(ref)} classes): "
            f"{'; '.join(diffs)}. Fix the folder names (a typo or a missing class folder) or "
            f"restrict dataset.domains to consistent domains."
        )


# ------------------------------------------------------------------- splitting
def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def check_fractions(val_fraction: float, test_fraction: float, dataset_name: str) -> None:
    v, t = float(val_fraction), float(test_fraction)
    if v < 0 or t < 0 or v + t >= 1:
        raise DatasetError(
            f"{dataset_name}: val_fraction={v} and test_fraction={t} must be >= 0 and sum to "
            f"less than 1 (the rest is train). Pass e.g. dataset.val_fraction=0.2 dataset.test_fraction=0.2."
        )


def group_by_label(samples: Iterable[Sample]) -> dict[int, list[str]]:
    by_label: dict[int, list[str]] = {}
    for path, label in samples:
        by_label.setdefault(int(label), []).append(path)
    return by_label


def stratified_split(
    samples: Iterable[Sample], val_fraction: float, test_fraction: float, seed: int, key: str
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Seeded per-class split into (train, val, test); see the module docstring."""
    train: list[Sample] = []
    val: list[Sample] = []
    test: list[Sample] = []
    for label, paths in sorted(group_by_label(samples).items()):
        paths = sorted(paths)
        random.Random(f"{seed}/{key}/{label}").shuffle(paths)
        n = len(paths)
        n_test = _round_half_up(n * float(test_fraction))
        n_val = _round_half_up(n * float(val_fraction))
        while n > 0 and n_test + n_val > n - 1:  # keep at least one train image
            if n_val >= n_test and n_val > 0:
                n_val -= 1
            else:
                n_test -= 1
        test += [(p, label) for p in sorted(paths[:n_test])]
        val += [(p, label) for p in sorted(paths[n_test : n_test + n_val])]
        train += [(p, label) for p in sorted(paths[n_test + n_val :])]
    return train, val, test


def few_shot_subset(samples: Iterable[Sample], k: int, seed: int, key: str) -> list[Sample]:
    """Keep ``k`` samples per class (all of them when a class has fewer)."""
    if int(k) < 1:
        raise DatasetError(f"few_shot must be a positive number of images per class, got {k}.")
    kept: list[Sample] = []
    for label, paths in sorted(group_by_label(samples).items()):
        paths = sorted(paths)
        random.Random(f"fewshot/{seed}/{key}/{label}").shuffle(paths)
        kept += [(p, label) for p in sorted(paths[: int(k)])]
    return kept


def read_split_file(path: str, base_dir: str, dataset_name: str) -> list[Sample]:
    """Read ``relative/path label`` lines; paths are resolved against ``base_dir``."""
    samples: list[Sample] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
                raise DatasetError(
                    f"{dataset_name}: line {lineno} of split file {path} is {line!r}; expected "
                    f"'relative/path/to/image.jpg <integer label>' (path relative to {base_dir})."
                )
            rel, label = parts[0].strip(), int(parts[1])
            if label < 0:
                raise DatasetError(f"{dataset_name}: negative label {label} on line {lineno} of {path}.")
            samples.append((os.path.normpath(os.path.join(base_dir, rel)), label))
    if not samples:
        raise DatasetError(f"{dataset_name}: split file {path} is empty; expected 'relative/path label' lines.")
    return samples


def find_split_file(split_dir: str, names: Sequence[str], split: str) -> str | None:
    """First existing ``{split_dir}/{name}_{split}.txt`` among candidate domain names."""
    for name in names:
        for variant in (name, name.replace(" ", "_")):
            candidate = os.path.join(split_dir, f"{variant}_{split}.txt")
            if os.path.isfile(candidate):
                return candidate
    return None

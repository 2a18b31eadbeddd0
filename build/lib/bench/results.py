"""Result records: JSON, written atomically (temp file + rename) under
`runtime.results_dir`, one per run id (bench/identity.py)."""
from __future__ import annotations

import json
import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Callable


SCHEMA_VERSION = 2  # 2: run ids cover data and weights fingerprints (bench/identity.py)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    versions = {}
    for package in ("torch", "torchvision", "open_clip_torch", "timm", "hydra-core", "clip-prompt-bench"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` into a temporary file beside `path`, then rename it over `path`: a reader
    (or a run killed mid-write) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def write_json_atomic(obj, path: Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w") as handle:
            json.dump(obj, handle, indent=2, sort_keys=False, default=str)
            handle.flush()
            os.fsync(handle.fileno())
    atomic_write(path, write)


def load_record(path: Path) -> dict | None:
    try:
        with open(path) as handle:
            record = json.load(handle)
        return record if record.get("status") == "complete" else None
    except (OSError, ValueError):
        return None

"""Run identity and result records.

A run is identified by a hash of its resolved configuration without the `runtime` keys
(DomainBed-style), so relaunching the same run finds its checkpoint and its record.
Records are JSON, written atomically (temp file + rename) under `runtime.results_dir`.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

SCHEMA_VERSION = 1


def identity_config(cfg: DictConfig) -> dict:
    """The part of the config that determines what a run computes."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("runtime", None)
    resolved.pop("hydra", None)
    resolved.get("dataset", {}).pop("root", None)  # where the images live is not what they are
    return resolved


def run_id(cfg: DictConfig) -> str:
    blob = json.dumps(identity_config(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


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


def record_path(cfg: DictConfig) -> Path:
    return Path(cfg.runtime.results_dir) / f"{run_id(cfg)}.json"


def load_record(path: Path) -> dict | None:
    try:
        with open(path) as handle:
            record = json.load(handle)
        return record if record.get("status") == "complete" else None
    except (OSError, ValueError):
        return None

"""Run identity: one hash of everything that changes what a run computes.

    run id = sha256(identity config, data fingerprint, weights fingerprint)[:12]

* identity config: the resolved config without `runtime.*` (how a run executes), without
  the speed switches proven exact (`method.truncate_text`: tests/methods/test_contract.py) and
  without where the data lives or how a missing dataset is explained (`dataset.root`,
  `dataset.download_hint`): the data fingerprint says what the data *is*;
* data fingerprint: the tasks (domains), their class lists, and every split's samples as
  (path relative to the dataset root, label, file size): split files and the image list
  are covered, cheaply (one stat per file, no decoding);
* weights fingerprint: `none`, the open_clip tag, or the SHA-256 of the content of a local
  checkpoint or of our own tag's shipped file (`cpb-toy`), cached by path, size and mtime
  in `runtime.cache_dir`, so a 600 MB file is hashed once.

The experiment id is the same hash without the seed: the report averages exactly the runs
that share it (DomainBed's grouping), so two settings are never merged into one row.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from pathlib import Path

from bench.atomic_io import write_json_atomic
from bench.models import OUR_CHECKPOINTS, WEIGHTS_DIR
from bench.schema import RunConfig

#: (section, key) left out of the identity: they do not change what a run computes.
NOT_IDENTITY = (("method", "truncate_text"), ("model", "grad_checkpointing"), ("dataset", "root"),
                ("dataset", "download_hint"))


#: (section, key, value) left out while at that value: opt-ins added after run ids existed, so a
#: run that does not use them keeps its id.
OFF_BY_DEFAULT = (("train", "jpeg_draft", False), ("train", "resized_cache_side", None))


def identity_config(cfg: RunConfig | dict) -> dict:
    """The part of the config that determines what a run computes (a typed config, or the
    plain dict a record keeps of one)."""
    resolved = dataclasses.asdict(cfg) if isinstance(cfg, RunConfig) else copy.deepcopy(cfg)
    for key in ("runtime", "hydra", "speed"):
        resolved.pop(key, None)
    for section, key in NOT_IDENTITY:
        resolved.get(section, {}).pop(key, None)
    for section, key, off in OFF_BY_DEFAULT:
        if section in resolved and key in resolved[section] and resolved[section][key] == off:
            resolved[section].pop(key)
    return resolved


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def data_fingerprint(dataset) -> str:
    """Hash of the tasks, class lists and every split's (relative path, label, size)."""
    root = Path(dataset.root)
    hasher = hashlib.sha256()
    for task in dataset.tasks:
        hasher.update(json.dumps([task.name, list(task.classnames)]).encode())
        for split in ("train", "val", "test"):
            hasher.update(f"\n{split}\n".encode())
            for path, label in task.split(split):
                try:
                    size = os.stat(path).st_size
                except OSError:
                    size = -1  # a missing file is part of what the data is
                relative = os.path.relpath(path, root) if os.path.isabs(path) else path
                hasher.update(f"{relative}\t{label}\t{size}\n".encode())
    return hasher.hexdigest()[:16]


def file_sha256(path: str, cache_dir: str) -> str:
    """SHA-256 of a file's content, cached in `cache_dir` by (absolute path, size, mtime)."""
    path = os.path.abspath(os.path.expanduser(path))
    stat = os.stat(path)
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = Path(os.path.expanduser(cache_dir)) / "weights_sha256.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    cache[key] = hasher.hexdigest()
    try:
        write_json_atomic(cache, cache_file)
    except OSError:
        pass  # an unwritable cache only costs a re-hash next time
    return cache[key]


def weights_fingerprint(pretrained: str | None, cache_dir: str) -> str:
    """`none`, `tag:<name>` for an open_clip tag, or `sha256:<content hash>` of a local
    checkpoint or of one of our own tags' shipped files (hash cached in `cache_dir`)."""
    if pretrained in (None, "", "none", "None"):
        return "none"
    if pretrained in OUR_CHECKPOINTS and (WEIGHTS_DIR / OUR_CHECKPOINTS[pretrained][1]).is_file():
        return "sha256:" + file_sha256(str(WEIGHTS_DIR / OUR_CHECKPOINTS[pretrained][1]), cache_dir)
    if os.path.isfile(os.path.expanduser(str(pretrained))):
        return "sha256:" + file_sha256(str(pretrained), cache_dir)
    return f"tag:{pretrained}"


def identity(cfg: RunConfig | dict, data: str, weights: str) -> dict:
    """What the run id hashes: the identity config and the two fingerprints."""
    return {"config": identity_config(cfg), "data_fingerprint": data, "weights_fingerprint": weights}


def run_id_of(ident: dict) -> str:
    return _digest(ident)[:12]


def experiment_id_of(ident: dict) -> str:
    """The run id without the seed: runs that differ only in their seed share it."""
    without_seed = copy.deepcopy(ident)
    without_seed["config"].pop("seed", None)
    return _digest(without_seed)[:12]

"""Run identity: one hash of everything that changes what a run computes.

    run id = sha256(identity config, data fingerprint, weights fingerprint)[:12]

* identity config: the resolved config without `runtime.*` (how a run executes), without
  the speed switches proven exact (`method.truncate_text`: tests/methods/test_contract.py) and
  without where the data lives or how a missing dataset is explained (`dataset.root`,
  `dataset.download_hint`): the data fingerprint says what the data *is*;
* data fingerprint: the tasks (domains), their class lists, and every split's samples as
  (path relative to the dataset root, label, file size): split files and the image list
  are covered, cheaply (one stat per file, no decoding).  `dataset.fingerprint=content`
  puts each file's SHA-256 in place of its size (cached by path, size and mtime, like the
  weights), so a copy whose damaged files kept their sizes gets another run id; the default
  stays `listing`, because hashing Office-Home's 15,600 images costs a full read of the
  dataset on the first run and the image check catches damaged files anyway;
* weights fingerprint: `none`, the open_clip tag, or the SHA-256 of the content of a local
  checkpoint or of our own tag's shipped file (`cpb-toy`), cached by path, size and mtime
  in `runtime.cache_dir`, so a 600 MB file is hashed once.

The world (how many processes share a run) is not part of the run id: one run on N processes
computes what one process does (tests/bench/test_distributed.py).  The exception is a method
whose per-step randomness differs with the world (its `exact_over_processes` is False, e.g.
LoRA with dropout): its identity then holds `world_size`, another experiment per world size.

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
from bench.shipped_weights import OUR_CHECKPOINTS, WEIGHTS_DIR
from bench.schema import RunConfig

#: (section, key) left out of the identity: they do not change what a run computes.
NOT_IDENTITY = (("method", "truncate_text"), ("model", "grad_checkpointing"), ("dataset", "root"),
                ("dataset", "download_hint"),
                ("dataset", "fingerprint"),  # how the data is fingerprinted: the fingerprint itself differs
                # policies that only decide whether a run goes on: every run that completes under one
                # value computes exactly what it would under another
                ("train", "max_nonfinite_steps"), ("dataset", "few_shot_short"))


#: (section (None: the root), key, value) left out while at that value: opt-ins added after run ids existed, so a
#: run that does not use them keeps its id.
OFF_BY_DEFAULT = (("train", "jpeg_draft", False), ("train", "resized_cache_side", None),
                  (None, "protocol", "multitask"), ("dataset", "target", None), ("dataset", "task_order", None))


def identity_config(cfg: RunConfig | dict) -> dict:
    """The part of the config that determines what a run computes (a typed config, or the
    plain dict a record keeps of one)."""
    resolved = dataclasses.asdict(cfg) if isinstance(cfg, RunConfig) else copy.deepcopy(cfg)
    for key in ("runtime", "hydra", "speed"):
        resolved.pop(key, None)
    for section, key in NOT_IDENTITY:
        resolved.get(section, {}).pop(key, None)
    for section, key, off in OFF_BY_DEFAULT:
        node = resolved if section is None else resolved.get(section)
        if isinstance(node, dict) and key in node and node[key] == off:
            node.pop(key)
    return resolved


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def data_fingerprint(dataset, content: bool = False, cache_dir: str | None = None) -> str:
    """Hash of the tasks, class lists and every split's (relative path, label, size), or with
    `content` (`dataset.fingerprint=content`) (relative path, label, SHA-256 of the file),
    the hashes cached in `cache_dir` by path, size and mtime."""
    root = Path(dataset.root)
    paths = [p for task in dataset.tasks for split in ("train", "val", "test") for p, _ in task.split(split)]
    hashes = files_sha256(paths, cache_dir, f"data-sha256/{_digest(str(root))[:16]}.json") if content else {}
    hasher = hashlib.sha256()
    for task in dataset.tasks:
        hasher.update(json.dumps([task.name, list(task.classnames)]).encode())
        for split in ("train", "val", "test"):
            hasher.update(f"\n{split}\n".encode())
            for path, label in task.split(split):
                if content:
                    what = hashes.get(os.path.abspath(os.path.expanduser(path)), "missing")
                else:
                    try:
                        what = os.stat(path).st_size
                    except OSError:
                        what = -1  # a missing file is part of what the data is
                relative = os.path.relpath(path, root) if os.path.isabs(path) else path
                hasher.update(f"{relative}\t{label}\t{what}\n".encode())
    return hasher.hexdigest()[:16] + ("-content" if content else "")


def with_skipped(fingerprint: str, root, skipped) -> str:
    """`fingerprint` naming also the images a run leaves out (`dataset.unreadable=skip`): they
    belong to the data it saw, so a copy whose damaged files kept their sizes is other data.
    Unchanged when nothing is skipped."""
    if not skipped:
        return fingerprint
    relative = sorted(os.path.relpath(p, root) if os.path.isabs(p) else p for p in skipped)
    return f"{fingerprint}-skips-{_digest(chr(10).join(relative))[:8]}"


def files_sha256(paths, cache_dir: str | None, cache_name: str) -> dict[str, str]:
    """{absolute path: SHA-256 of its content} for the files of `paths` that exist, cached in
    `cache_dir/cache_name` by (absolute path, size, mtime): read and written once per call."""
    cache_file = Path(os.path.expanduser(cache_dir)) / cache_name if cache_dir else None
    try:
        cache = json.loads(cache_file.read_text()) if cache_file else {}
    except (OSError, ValueError):
        cache = {}
    out, changed = {}, False
    for path in paths:
        path = os.path.abspath(os.path.expanduser(path))
        try:
            stat = os.stat(path)
        except OSError:
            continue
        key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in cache:
            hasher = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    hasher.update(block)
            cache[key], changed = hasher.hexdigest(), True
        out[path] = cache[key]
    if changed and cache_file:
        try:
            write_json_atomic(cache, cache_file)
        except OSError:
            pass  # an unwritable cache only costs a re-hash next time
    return out


def file_sha256(path: str, cache_dir: str) -> str:
    """SHA-256 of a file's content, cached in `cache_dir` by (absolute path, size, mtime)."""
    hashes = files_sha256([path], cache_dir, "weights_sha256.json")
    if not hashes:
        raise FileNotFoundError(path)
    return next(iter(hashes.values()))


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


def identity(cfg: RunConfig | dict, data: str, weights: str, world_size: int = 1,
             exact_over_processes: bool = True) -> dict:
    """What the run id hashes: the identity config and the two fingerprints, and the world size
    where the method is not exact over `world_size` processes (module docstring)."""
    ident = {"config": identity_config(cfg), "data_fingerprint": data, "weights_fingerprint": weights}
    if world_size > 1 and not exact_over_processes:
        ident["world_size"] = world_size
    return ident


def run_id_of(ident: dict) -> str:
    return _digest(ident)[:12]


def experiment_id_of(ident: dict) -> str:
    """The run id without the seed: runs that differ only in their seed share it.  (The digest of
    a copy one level deep: the report takes it of every record, and a deep copy of each config
    cost more than the hash.)"""
    without_seed = {**ident, "config": {k: v for k, v in ident["config"].items() if k != "seed"}}
    return _digest(without_seed)[:12]

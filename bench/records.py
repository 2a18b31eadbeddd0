"""The one schema of a result record, `RunRecord`, shared by its writer (`bench.run`), its
readers (`bench.run` on relaunch, `bench.sweep`) and `bench.report`.

A record is a JSON object written atomically to `results/runs/<run id>.json`.  It counts
as a result only when its status is "complete" *and* it has every required key in the
right shape; a record that says "complete" but is not is never taken for a result:

- `bench.report` skips it and names the file and the reason;
- `bench.run` and `bench.sweep launch` stop with a `RecordError` naming the file, the
  missing keys and the fix, rather than crash later with a KeyError or silently redo it.

Schema 2 adds, per split and task, the images listed, evaluated and skipped as unreadable
(`images`), the number of resumes and the accumulated times; schema 3 (this version) the
run's identity: `experiment_id` and the data and weights fingerprints (bench/identity.py).
Records of earlier schemas remain readable (their run ids differ: re-run them).  A
protocol=sequential record (still schema 3: fields older records lack are None) adds its
`task_order`, `stages`, `accuracy_matrix` and `sequential_metrics`, checked by `problem`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import logging
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.errors import RecordError
from bench.atomic_io import write_json_atomic

log = logging.getLogger(__name__)

#: the schema of the records this code writes; `RunRecord.schema_version` defaults to it, and a
#: record read back keeps the version it was written with (1 where it names none)
SCHEMA_VERSION = 3
REQUIRED_KEYS = ("run_id", "status", "method", "mode", "dataset", "model", "seed", "tasks", "accuracy", "params",
                 "config")
REQUIRED_SINCE_2 = ("schema_version", "images", "resumes", "wall_time_s", "train_time_s")
REQUIRED_SINCE_3 = ("experiment_id", "data_fingerprint", "weights_fingerprint")
PARAM_KEYS = ("trainable", "total", "trainable_percent")
IMAGE_COUNTS = ("listed", "evaluated", "skipped")


@dataclass(frozen=True)
class Provenance:
    """Which code made a record: the git commit of the installed package (None outside a
    checkout) and the versions of the packages its numbers depend on."""

    git_commit: str | None
    versions: dict[str, str]

    PACKAGES = ("torch", "torchvision", "open_clip_torch", "timm", "hydra-core", "clip-prompt-bench")

    @classmethod
    def of_this_process(cls) -> "Provenance":
        try:
            out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=Path(__file__).resolve().parent, timeout=5)
            commit = out.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            commit = None
        versions = {}
        for package in cls.PACKAGES:
            try:
                versions[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                pass
        return cls(commit, versions)


@dataclass
class RunRecord:
    """A run's result: what ran (method, mode, data, model, seed, its identity and resolved
    config), what it scored (per-task val/test accuracy and the average), what it cost
    (parameters, times, images/s, peak memory) and how it went (resumes, unreadable images).
    Written as JSON by `write_record` and read back by `read_record`; records of earlier
    schemas lack the newer fields (None)."""

    run_id: str
    status: str
    method: str
    mode: str
    dataset: str
    model: str
    seed: int
    tasks: list[str]
    accuracy: dict[str, dict[str, float]]   # split -> task (and "average") -> %
    params: dict[str, float]                # trainable, total, trainable_percent
    config: dict                            # the identity config (bench/identity.py)
    schema_version: int = SCHEMA_VERSION
    experiment_id: str | None = None
    pretrained: str | None = None
    sweep: str | None = None
    trial: int | None = None                # its trial number when the run is a search trial
    selected_epoch: int | None = None
    history: list[dict] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str | None = None
    weights_fingerprint: str | None = None
    dataset_root: str | None = None
    wall_time_s: float | None = None
    train_time_s: float | None = None
    resumes: int | None = None
    images: dict | None = None              # split -> task -> listed / evaluated / skipped
    train_images_per_s: float | None = None
    eval_images_per_s: float | None = None
    peak_memory_mb: float | None = None
    device: str | None = None
    git_commit: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    unreadable_images: int | None = None
    dataset_counts: list[dict] | None = None  # per domain and split group: images seen, published (datasets/published_counts.py)
    world_size: int = 1                     # processes that trained it (bench/distributed.py)
    backend: str | None = None              # nccl | gloo over several processes; None for one
    dataset_key: str | None = None          # the dataset's config name (configs/dataset/<key>.yaml)
    nonfinite_steps: int | None = None      # steps whose loss was NaN/inf: their update was skipped
    checkpoint_kept: str | None = None      # runtime.keep_checkpoint: what stayed on disk, and where
    warnings: list[str] = field(default_factory=list)  # degenerate data the run went on with
    protocol: str = "multitask"             # multitask | leave_one_out | sequential (bench/protocols.py)
    target: str | None = None               # leave_one_out: the held-out domain (its test accuracy is the result)
    selection: str | None = None            # train.selection: val (leave_one_out: the sources') | oracle | last
    # protocol=sequential (bench/sequential.py): the domains in the order trained, each stage's summary,
    # the accuracy matrices per split (row k: every domain after stage k, columns in task_order) and their
    # metrics (bench/continual.py)
    task_order: list[str] | None = None
    stages: list[dict] | None = None
    accuracy_matrix: dict[str, list[list[float]]] | None = None
    sequential_metrics: dict[str, dict] | None = None

    @classmethod
    def from_dict(cls, values: dict) -> "RunRecord":
        """The record of a JSON object that `problem` accepts (unknown keys are ignored), with
        the schema version it was written with."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in values.items() if k in known}, "schema_version": _version(values)})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def key(self) -> str:
        """The dataset's key, as a user types it (`--dataset officehome`) and as report files are
        named: `dataset_key`, or for older records the dataset name in its identity config."""
        return self.dataset_key or (self.config.get("dataset") or {}).get("name") or self.dataset

    @property
    def test_average(self) -> float:
        return self.accuracy["test"]["average"]


def problem(record) -> str | None:
    """Why `record` is not a complete result (None when it is one)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if "status" in record and record["status"] != "complete":
        return f"status {record['status']!r}"
    required = (REQUIRED_KEYS + (REQUIRED_SINCE_2 if _version(record) >= 2 else ())
                + (REQUIRED_SINCE_3 if _version(record) >= 3 else ()))
    missing = [key for key in required if key not in record]
    if missing:
        return "missing keys: " + ", ".join(missing)
    tasks, accuracy, params = record["tasks"], record["accuracy"], record["params"]
    if not isinstance(accuracy, dict) or not isinstance(params, dict) or "trainable" not in params:
        return "malformed accuracy/params"
    every_task = record.get("protocol", "multitask") == "multitask"  # records before protocols: multitask
    for split, values in accuracy.items():
        # leave_one_out validates on some tasks only (the sources, or the held-out one: bench/protocols.py)
        expected = [*tasks, "average"] if every_task or split == "test" else ["average"]
        missing = [t for t in expected if not isinstance(values, dict) or t not in values]
        if missing:
            return f"malformed accuracy: {split} lacks " + ", ".join(missing)
        not_numbers = [f"{t}={values[t]!r}" for t in values if not _is_number(values[t])]
        if not_numbers:
            return f"malformed accuracy: {split} has values that are not numbers: " + ", ".join(not_numbers)
    if record.get("protocol") == "sequential" and (why := _sequential_problem(record)):
        return why
    if not _is_number(params["trainable"]):
        return f"malformed params: trainable={params['trainable']!r} is not a number"
    if _version(record) >= 2:
        missing = [k for k in PARAM_KEYS if k not in params]
        missing += [f"images.{split}.{t}.{c}" for split in ("val", "test") for t in tasks for c in IMAGE_COUNTS
                    if c not in record["images"].get(split, {}).get(t, {})]
        if missing:
            return "missing keys: " + ", ".join(missing)
    return None


def _sequential_problem(record: dict) -> str | None:
    """Why a protocol=sequential record lacks its order or its square matrices (None: it has them)."""
    order, matrix = record.get("task_order"), record.get("accuracy_matrix")
    if not isinstance(order, list) or sorted(order) != sorted(record["tasks"]):
        return "malformed sequential record: task_order is not an order of its tasks"
    for split in ("val", "test"):
        rows = (matrix or {}).get(split) if isinstance(matrix, dict) else None
        if not isinstance(rows, list) or len(rows) != len(order) or not all(
                isinstance(row, list) and len(row) == len(order) and all(_is_number(v) for v in row) for row in rows):
            return f"malformed sequential record: accuracy_matrix.{split} is not {len(order)} x {len(order)} numbers"
    if not isinstance(record.get("sequential_metrics"), dict):
        return "malformed sequential record: sequential_metrics missing"
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _version(record: dict) -> int:
    version = record.get("schema_version", 1)
    return version if isinstance(version, int) else 1


def read_record(path: Path) -> tuple[RunRecord | None, str | None]:
    """(the record, None) when `path` holds a complete record, else (None, why not)."""
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"not valid JSON ({type(err).__name__})"
    why = problem(record)
    return (None, why) if why else (RunRecord.from_dict(record), None)


def load_complete_record(path: Path) -> RunRecord | None:
    """The complete record at `path`; None when there is none yet (absent, unfinished, or
    not readable JSON, which the next completion overwrites).  A record that says
    "complete" but is not raises RecordError: it must not pass for a result, and redoing
    it silently could hide a bug or a damaged disk."""
    record, why = read_record(path)
    if why and why.startswith("not valid JSON"):
        log.warning("The record %s is %s: it does not count as a result; the run computes it again.", path, why)
    if record is not None or why == "missing" or why.startswith(("not valid JSON", "status")):
        return record
    raise RecordError(
        f"The result record {path} is marked complete but is not a valid record ({why}). It was "
        "not written by this version of the harness, or was edited or damaged. Move it aside "
        f"(mv {path} {path}.bad) and launch the run again to recompute it.")


def write_record(record: RunRecord, path: Path) -> None:
    """Check `record` against the schema, then write it atomically."""
    record = record.to_dict()
    why = problem(record)
    if why:  # a bug in the writer, not a user error
        raise ValueError(f"refusing to write an invalid record to {path}: {why}")
    write_json_atomic(record, path)


def image_counts(dataset, screened: dict, evaluated: dict) -> dict:
    """`images` of a record: per split and task the images listed in the split, those left out as
    unreadable (at start-up or when decoded) and, for val and test, those evaluated: the
    denominator of that task's accuracy.  listed = evaluated + skipped."""
    counts = {}
    for split in ("train", "val", "test"):
        counts[split] = {}
        for task in dataset.tasks:
            before = screened[split][task.name]
            entry = {"listed": len(task.split(split)) + before, "skipped": before}
            if split in evaluated:  # a task a protocol does not evaluate on this split: 0 evaluated
                done = evaluated[split].get(task.name, {"evaluated": 0, "skipped": 0})
                entry = {"listed": entry["listed"], "evaluated": done["evaluated"],
                         "skipped": before + done["skipped"]}
            counts[split][task.name] = entry
    return counts

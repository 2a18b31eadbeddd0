"""The one schema of a result record, shared by its writer (`bench.run`), its readers
(`bench.run` on relaunch, `bench.sweep`) and `bench.report`.

A record is a JSON object written atomically to `results/runs/<run id>.json`.  It counts
as a result only when its status is "complete" *and* it has every required key in the
right shape; a record that says "complete" but is not is never taken for a result:

- `bench.report` skips it and names the file and the reason;
- `bench.run` and `bench.sweep launch` stop with a `RecordError` naming the file, the
  missing keys and the fix, rather than crash later with a KeyError or silently redo it.

Schema 2 adds, per split and task, the images listed, evaluated and skipped as unreadable
(`images`), the number of resumes and the accumulated times; schema 3 (this version) the
run's identity: `experiment_id` and the data and weights fingerprints (bench/identity.py).
Records of earlier schemas remain readable (their run ids differ: re-run them).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from bench.errors import RecordError
from bench.results import write_json_atomic

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
REQUIRED_KEYS = ("run_id", "status", "method", "mode", "dataset", "model", "seed", "tasks", "accuracy", "params",
                 "config")
REQUIRED_SINCE_2 = ("schema_version", "images", "resumes", "wall_time_s", "train_time_s")
REQUIRED_SINCE_3 = ("experiment_id", "data_fingerprint", "weights_fingerprint")
PARAM_KEYS = ("trainable", "total", "trainable_percent")
IMAGE_COUNTS = ("listed", "evaluated", "skipped")


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
    for split, values in accuracy.items():
        missing = [t for t in [*tasks, "average"] if not isinstance(values, dict) or t not in values]
        if missing:
            return f"malformed accuracy: {split} lacks " + ", ".join(missing)
    if _version(record) >= 2:
        missing = [k for k in PARAM_KEYS if k not in params]
        missing += [f"images.{split}.{t}.{c}" for split in ("val", "test") for t in tasks for c in IMAGE_COUNTS
                    if c not in record["images"].get(split, {}).get(t, {})]
        if missing:
            return "missing keys: " + ", ".join(missing)
    return None


def _version(record: dict) -> int:
    version = record.get("schema_version", 1)
    return version if isinstance(version, int) else 1


def read_record(path: Path) -> tuple[dict | None, str | None]:
    """(the record, None) when `path` holds a complete record, else (None, why not)."""
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"not valid JSON ({type(err).__name__})"
    why = problem(record)
    return (None, why) if why else (record, None)


def load_complete_record(path: Path) -> dict | None:
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


def write_record(record: dict, path: Path) -> None:
    """Check `record` against the schema, then write it atomically."""
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
            if split in evaluated:
                done = evaluated[split][task.name]
                entry = {"listed": entry["listed"], "evaluated": done["evaluated"],
                         "skipped": before + done["skipped"]}
            counts[split][task.name] = entry
    return counts

"""Atomic writes (temp file + rename): records, checkpoints, caches; a full disk or a read-only
folder is a StorageError naming the file."""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Callable


from bench import faults
from bench.errors import OutOfSpaceError, StorageError


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` into a temporary file beside `path`, then rename it over `path`: a reader
    (or a run killed mid-write) never sees half a file, and a failed write (full disk,
    read-only folder) keeps the previous `path`, removes its temporary file and raises a
    StorageError naming the file (OutOfSpaceError: "no space left on <folder>")."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        faults.before_write(tmp)
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:
        tmp.unlink(missing_ok=True)
        raise storage_error(error, path) from None


def storage_error(error: Exception, path: Path) -> Exception:
    """The one-paragraph error for a write to `path` that failed with `error`.

    torch.save reports a full disk as a RuntimeError from its zip writer
    (inline_container.cc); it is recognised by the free space left on the disk."""
    folder = path.parent
    if isinstance(error, RuntimeError):
        if "inline_container" not in str(error) and "write" not in str(error).lower():
            return error  # not an I/O failure: a bug, keep the traceback
        code = errno.ENOSPC if _free_bytes(folder) < 64 * 2**20 else errno.EIO
    else:
        code = error.errno
    kept = f"the previous {path.name} is kept" if path.exists() else f"nothing was written to {path.name}"
    if code == errno.ENOSPC:
        return OutOfSpaceError(
            f"No space left on {folder} while writing {path}; {kept} and no temporary file is left "
            "behind. Free space on that disk (or point runtime.results_dir, runtime.checkpoint_dir or "
            "CPB_CACHE at another disk) and launch the run again: it resumes from its last checkpoint.")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(
            f"Cannot write {path}: {folder} is not writable ({os.strerror(code)}). Make it writable or "
            "point runtime.results_dir / runtime.checkpoint_dir (or CPB_CACHE) at a writable folder.")
    return StorageError(
        f"Writing {path} failed ({os.strerror(code) if code else error}); {kept} and no temporary "
        "file is left behind. Check the disk holding that folder and launch the run again.")


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def write_json_atomic(obj, path: Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w") as handle:
            json.dump(obj, handle, indent=2, sort_keys=False, default=str)
            handle.flush()
            os.fsync(handle.fileno())
    atomic_write(path, write)



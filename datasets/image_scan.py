"""A cheap readability check of image files, cached by path, size and mtime.

`image_problem(path)` reads a file's header (PIL's `Image.open`) and its last bytes: a
missing, empty, non-image or truncated file (a JPEG without its end marker, a PNG without
its IEND chunk) is found without decoding the image; only a file that fails the tail
check is decoded in full, to confirm.  On Office-Home (~15,600 JPEGs) the first check
reads a few KB per file; `scan` remembers each verdict with the file's size and mtime, so
a relaunch only stats the files.  Used before training by `bench.run` and by
`python -m bench.check`.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

from PIL import Image

from bench.atomic_io import write_json_atomic
from bench.errors import StorageError

CHECK_VERSION = 1  # bump when image_problem changes: cached verdicts are then redone
_TAILS = {"JPEG": (b"\xff\xd9", 1024), "PNG": (b"IEND", 64)}


def image_problem(path: str) -> str | None:
    """None when `path` is a readable image, else a short reason ("missing", "empty file", ...)."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if size == 0:
        return "empty file"
    try:
        with Image.open(path) as image:
            fmt = image.format
            if fmt not in _TAILS:
                image.verify()
                return None
        marker, span = _TAILS[fmt]
        with open(path, "rb") as handle:
            handle.seek(max(0, size - span))
            if marker in handle.read():
                return None
        with Image.open(path) as image:  # no end marker: decode it all to be sure
            image.load()
        return None
    except Exception as error:  # noqa: BLE001 - PIL raises many types for corrupt files
        return f"unreadable ({type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''})"


def scan(paths: Iterable[str], cache_file: Path | None = None, workers: int = 8) -> dict[str, str]:
    """{path: problem} for the unreadable files among `paths`; verdicts cached in `cache_file`."""
    cache = _load(cache_file)
    todo, keys = [], {}
    for path in sorted(set(paths)):
        try:
            st = os.stat(path)
            keys[path] = [st.st_size, st.st_mtime_ns]
        except OSError:
            keys[path] = None  # missing: never cached, checked every time (cheap)
        hit = cache.get(path)
        if keys[path] is None or hit is None or hit[:2] != keys[path]:
            todo.append(path)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for path, problem in zip(todo, pool.map(image_problem, todo)):
            if keys[path] is not None:
                cache[path] = [*keys[path], problem]
    problems = {p: (cache[p][2] if keys[p] is not None else "missing") for p in keys}
    if todo and cache_file is not None:
        _save(cache, cache_file)
    return {p: why for p, why in problems.items() if why}


def cache_file_for(cache_dir: str | Path, root: str) -> Path:
    """One cache file per dataset root under `cache_dir`."""
    return Path(cache_dir).expanduser() / "image-checks" / f"{hashlib.sha1(root.encode()).hexdigest()[:16]}.json"


def _load(cache_file: Path | None) -> dict:
    try:
        data = json.loads(Path(cache_file).read_text())
        return data["files"] if data.get("version") == CHECK_VERSION else {}
    except (TypeError, OSError, ValueError, KeyError, AttributeError):
        return {}


def _save(cache: dict, cache_file: Path) -> None:
    """Best effort: a cache that cannot be written costs time on the next run, nothing else."""
    try:
        write_json_atomic({"version": CHECK_VERSION, "files": cache}, cache_file)
    except StorageError:
        pass

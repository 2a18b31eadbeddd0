"""glibc's malloc thresholds, pinned in data-loader workers.

Decoding a photo of a few thousand pixels a side allocates tens of MiB (Pillow's image
blocks, 16 MiB each), frees them, and allocates them again for the next image.  Whether
that memory is kept or handed back to the kernel, and then mapped and faulted in again
page by page, is decided by two glibc thresholds: `M_MMAP_THRESHOLD` (larger requests get a
fresh mapping of their own) and `M_TRIM_THRESHOLD` (free memory above it at the top of the
heap is returned).  glibc moves both at run time (freeing a mapped block of s <= 32 MiB
raises them to s and 2s), and whether a small allocation happens to sit above the freed
buffers decides whether they can be returned at all.  A forked DataLoader worker inherits
that history: on this project's VM, `torchvision.datasets.ImageFolder`'s workers decoded
the data-loading benchmark's photos at 61-64 images/s per core in some processes and 77 in
others, ours at 65 rising to 86 over eight epochs in one process and 83-86 in others; with the
thresholds pinned as below both ran at 83-88 in every process (issue 27: the history is
what made two back-to-back runs of the benchmark disagree by up to 1.7x).

`pin_malloc_thresholds` fixes both in the calling process (a loader's `worker_init_fn`):
the mapping threshold at glibc's own ceiling, 32 MiB, and the trim threshold at
`trim_mib`, so the decode buffers are reused.  Pixels are untouched; a worker keeps up to
`trim_mib` of freed memory instead of returning it.  Not glibc (musl, macOS): nothing.
"""
from __future__ import annotations

import ctypes
import functools
import os

MIB = 1 << 20
#: glibc's ceiling for its dynamic mapping threshold (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit),
#: also the largest value mallopt accepts for it
MMAP_THRESHOLD_MIB = 32
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # malloc.h


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    try:
        os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):  # not glibc
        return None
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return libc


def is_glibc() -> bool:
    """Whether this process runs on glibc (the thresholds exist only there)."""
    return _glibc() is not None


def pin_malloc_thresholds(trim_mib: int, worker_id: int | None = None) -> bool:
    """Fix glibc's mapping threshold at 32 MiB and its trim threshold at `trim_mib` MiB in this
    process (glibc stops moving them); True when glibc took both.  `worker_id` lets a
    `functools.partial` of it serve as a DataLoader's `worker_init_fn`."""
    if trim_mib < 0:
        raise ValueError(f"trim_mib must be >= 0, got {trim_mib}")
    libc = _glibc()
    if libc is None:
        return False
    mapped = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_MIB * MIB)
    trimmed = libc.mallopt(_M_TRIM_THRESHOLD, trim_mib * MIB)
    return bool(mapped and trimmed)


def malloc_pinning(trim_mib: int | None):
    """A DataLoader `worker_init_fn` that pins the thresholds (picklable, for spawned workers
    too); None when `trim_mib` is None (glibc's dynamic thresholds, as inherited)."""
    return None if trim_mib is None else functools.partial(pin_malloc_thresholds, trim_mib)

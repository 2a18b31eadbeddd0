"""Loader workers pin glibc's malloc thresholds (bench/malloc.py): freed decode buffers stay in the
process instead of going back to the kernel, whatever the history the worker was forked with."""
from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import pytest

from bench import malloc
from bench.malloc import is_glibc, malloc_pinning, pin_malloc_thresholds

glibc_only = pytest.mark.skipif(not is_glibc(), reason="the thresholds exist only in glibc")

# Mallocs 24 MiB (under the 32 MiB mapping threshold: from the heap), touches every page, frees it
# and prints how much of it the process still holds, in MiB.
KEPT_AFTER_FREE = textwrap.dedent("""
    import ctypes, sys
    from bench.malloc import pin_malloc_thresholds
    print(pin_malloc_thresholds(int(sys.argv[1])), end=" ")
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    def resident_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20
    size = 24 * 2**20
    before = resident_mib()
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
    print(round(resident_mib() - before))
""")


def _kept_mib(trim_mib: int) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", KEPT_AFTER_FREE, str(trim_mib)], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


@glibc_only
def test_pinned_thresholds_keep_a_freed_decode_buffer_and_a_zero_trim_returns_it():
    assert _kept_mib(128) == ("True", 24)  # kept: the next image reuses it without faulting pages in
    assert _kept_mib(0) == ("True", 0)  # trimmed at once: what the pinning avoids


def test_the_worker_init_function_is_picklable_and_null_leaves_glibc_alone():
    assert malloc_pinning(None) is None
    init = pickle.loads(pickle.dumps(malloc_pinning(128)))  # spawned workers get it by pickle
    assert init.func is pin_malloc_thresholds and init.args == (128,)
    with pytest.raises(ValueError, match="trim_mib must be >= 0"):
        pin_malloc_thresholds(-1)


def test_without_glibc_nothing_is_pinned(monkeypatch):
    def not_glibc(name):
        raise ValueError("unrecognized configuration name")

    malloc._glibc.cache_clear()
    monkeypatch.setattr(malloc.os, "confstr", not_glibc)
    try:
        assert not is_glibc() and pin_malloc_thresholds(128) is False
    finally:
        malloc._glibc.cache_clear()


def test_the_train_and_eval_loaders_workers_pin_the_setting(tmp_path):
    from bench.data import ImageSpec, MultiTaskData
    from bench.datasets import MultiDomainDataset, Task
    from bench.schema import RuntimeConfig, TrainConfig
    from tests.helpers import write_image

    paths = []
    for i in range(4):
        write_image(tmp_path / f"{i}.jpg", i)
        paths.append((str(tmp_path / f"{i}.jpg"), 0))
    dataset = MultiDomainDataset("d", str(tmp_path), (Task("photo", ("a",), tuple(paths), (), tuple(paths)),))
    spec = ImageSpec(8, {"mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bicubic"})
    default = RuntimeConfig.worker_malloc_trim_mib
    data = MultiTaskData(dataset, spec, TrainConfig(batch_size=2), seed=0, num_workers=1,
                         worker_malloc_trim_mib=default)
    for loader in (data.train_loader(0), data.eval_loader("test")):
        assert loader.worker_init_fn.args == (default,)
        assert sum(batch.images.shape[0] for batch in loader) == 4  # the worker started with it
    unpinned = MultiTaskData(dataset, spec, TrainConfig(batch_size=2), seed=0, num_workers=1)
    assert unpinned.train_loader(0).worker_init_fn is None
    no_workers = MultiTaskData(dataset, spec, TrainConfig(), seed=0, worker_malloc_trim_mib=default)
    assert "worker_init_fn" not in no_workers.loader_args  # the main process is left as it is

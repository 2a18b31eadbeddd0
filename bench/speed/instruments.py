"""Instruments: wall time per part of a step, and peak memory of a phase."""
from __future__ import annotations

import contextlib
import ctypes
import gc
import time
from collections import defaultdict

import torch

from bench.clip import PromptableCLIP


# ---- instruments ----------------------------------------------------------------------------
class Timers:
    """Wall time per part; `sync` (CUDA) makes a part's time its own at the cost of syncs."""

    def __init__(self, device: torch.device, enabled: bool):
        self.device, self.enabled = device, enabled
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, part: str):
        if not self.enabled:
            yield
            return
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[part] += time.perf_counter() - start

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def wrap_towers(self, method) -> None:
        for module in method.modules():
            if isinstance(module, PromptableCLIP):
                for name, part in (("encode_text", "text"), ("encode_image", "image")):
                    original = getattr(type(module), name).__get__(module)
                    setattr(module, name, self._timed(original, part))

    def _timed(self, function, part):
        def timed(*args, **kwargs):
            with self(part):
                return function(*args, **kwargs)
        return timed


class PeakMemory:
    """Growth of memory over a phase: CUDA max allocated, or the CPU resident high-water mark."""

    def __init__(self, device: torch.device):
        self.device, self.start, self.peak_mb = device, 0, 0.0

    def __enter__(self):
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current resident set
            self.start = _status_kb("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = _status_kb("VmHWM") * 1024
        self.peak_mb = (peak - self.start) / 2**20


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

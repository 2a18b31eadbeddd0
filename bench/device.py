"""The device a run computes on: which one, its autocast, and its peak memory."""
from __future__ import annotations

import contextlib
import resource

import torch

from bench.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """`runtime.device`: auto (CUDA when there is one), cpu, cuda or cuda:N."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device={name} was asked for but CUDA is not available here. Use "
                          "runtime.device=auto (GPU when there is one) or runtime.device=cpu.")
    return device


def autocast_for(device: torch.device, precision: str):
    """bf16 autocast on CUDA for `auto`; fp32 elsewhere (CPU bf16 only when asked)."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocations on a GPU, the resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

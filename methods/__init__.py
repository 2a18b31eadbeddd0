"""CLIP adaptation methods: one module per method, all registered in `METHODS`."""
from methods.base import Method, MethodError
from methods.registry import METHODS, build_method, register_method

# Importing a method module registers it.
from methods import bitfit, clip_adapter, cocoop, coop, full, lora, maple, mmap, vpt, zeroshot  # noqa: E402,F401

__all__ = ["METHODS", "Method", "MethodError", "build_method", "register_method"]

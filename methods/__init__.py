"""CLIP adaptation methods: one module per method, all registered in `METHODS`."""
from methods.base import Method
from methods.contract import MethodContract, MethodError
from methods.registry import METHODS, build_method, register_method

# Importing a method module registers it; this order is the order of every list of methods
# (reports, plots, sweeps, the speed benchmark, test matrices).
from methods import zeroshot, full, coop, cocoop, vpt, maple, mmap, clip_adapter, bitfit, lora  # noqa: E402,F401,I001

__all__ = ["METHODS", "Method", "MethodContract", "MethodError", "build_method", "register_method"]

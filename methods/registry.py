"""The method registry: a plain dict filled by the `register_method` decorator."""
from __future__ import annotations

from typing import Callable, Sequence

from methods.base import Method, MethodError

METHODS: dict[str, type[Method]] = {}


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    def decorate(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method '{name}' registered twice")
        METHODS[name] = cls
        cls.method_name = name
        return cls
    return decorate


def build_method(cfg, clip, tasks: Sequence, seed: int = 0) -> Method:
    """Build the method named by `cfg.name` (a resolved `method` config)."""
    name = cfg.get("name")
    if name not in METHODS:
        raise MethodError(f"Unknown method '{name}'. Available methods: {', '.join(sorted(METHODS))}. "
                          "Choose one with method=<name> (configs/method/<name>.yaml).")
    return METHODS[name](clip, tasks, cfg, seed=seed)

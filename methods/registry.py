"""The method registry: a plain dict filled by the `register_method` decorator."""
from __future__ import annotations

from typing import Callable, Sequence

from bench.config import MethodConfig
from methods.base import Method, MethodError

METHODS: dict[str, type[Method]] = {}


def register_method(name: str, config: type = MethodConfig) -> Callable[[type[Method]], type[Method]]:
    """Register a method class under `name`, with `config` the dataclass of its `method` block."""
    def decorate(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method '{name}' registered twice")
        METHODS[name] = cls
        cls.method_name = name
        cls.config_class = config
        return cls
    return decorate


def build_method(cfg, clip, tasks: Sequence, seed: int = 0) -> Method:
    """Build the method named by `cfg.name` (a resolved `method` config)."""
    name = cfg.get("name")
    if name not in METHODS:
        raise MethodError(f"Unknown method '{name}'. Available methods: {', '.join(sorted(METHODS))}. "
                          "Choose one with method=<name> (configs/method/<name>.yaml).")
    return METHODS[name](clip, tasks, cfg, seed=seed)

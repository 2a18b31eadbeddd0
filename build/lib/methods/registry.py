"""The method registry: a plain dict filled by the `register_method` decorator."""
from __future__ import annotations

from typing import Callable, Sequence

from bench.config import MethodConfig, method_config
from methods.base import Method

METHODS: dict[str, type[Method]] = {}


def register_method(name: str, config: type = MethodConfig,
                    label: str | None = None) -> Callable[[type[Method]], type[Method]]:
    """Register a method class under `name`, with `config` the dataclass of its `method` block
    and `label` its name in tables and plots (default: `name`)."""
    def decorate(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method '{name}' registered twice")
        METHODS[name] = cls
        cls.method_name = name
        cls.config_class = config
        cls.label = label or name
        return cls
    return decorate


def build_method(cfg, clip, tasks: Sequence, seed: int = 0) -> Method:
    """Build the method named by `cfg.name` from its `method` block (completed with the
    schema's defaults and validated: unknown names and bad values are ConfigErrors)."""
    cfg = method_config(cfg)
    return METHODS[cfg.name](clip, tasks, cfg, seed=seed)

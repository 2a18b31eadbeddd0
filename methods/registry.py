"""The method registry: a plain dict filled by the `register_method` decorator.  It only
stores; the run wiring (bench/app.py) checks a method's config and builds it."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from bench.schema import MethodConfig

if TYPE_CHECKING:  # for the annotations only: the registry sits below the methods it stores
    from bench.methods.contract import MethodContract

METHODS: dict[str, type["MethodContract"]] = {}


def register_method(name: str, config: type[MethodConfig] = MethodConfig,
                    label: str | None = None) -> Callable[[type], type]:
    """Register a method class under `name`, with `config` the dataclass of its `method` block
    and `label` its name in tables and plots (default: `name`)."""
    def decorate(cls: type) -> type:
        if name in METHODS:
            raise ValueError(f"method '{name}' registered twice")
        METHODS[name] = cls
        cls.method_name = name
        cls.config_class = config
        cls.label = label or name
        return cls
    return decorate

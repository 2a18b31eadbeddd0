"""The method registry: a plain dict filled by the `register_method` decorator.  It only
stores; the run wiring (bench/app.py) checks a method's config and builds it."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from bench.schema import MethodConfig, TrainConfig
from bench.search_space import EMPTY, SearchSpace

if TYPE_CHECKING:  # for the annotations only: the registry sits below the methods it stores
    from bench.methods.contract import MethodContract

METHODS: dict[str, type["MethodContract"]] = {}


def register_method(name: str, config: type[MethodConfig] = MethodConfig,
                    label: str | None = None, search: SearchSpace = EMPTY) -> Callable[[type], type]:
    """Register a method class under `name`, with `config` the dataclass of its `method` block,
    `label` its name in tables and plots (default: `name`) and `search` the distribution of the
    settings worth tuning (bench/search_space.py; checked here against `train` and `config`)."""
    def decorate(cls: type) -> type:
        if name in METHODS:
            raise ValueError(f"method '{name}' registered twice")
        search.check({"train": TrainConfig, "method": config}, f"method '{name}'")
        METHODS[name] = cls
        cls.method_name = name
        cls.config_class = config
        cls.label = label or name
        cls.search_space = search
        return cls
    return decorate

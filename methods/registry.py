"""The method registry: `METHODS`, name -> `MethodCard`, in the order of every list of methods.

A card is what a command needs to know of a method without building it (its typed settings,
label, sharing modes, search space) plus where its implementation lives.  The cards of the
methods shipped here are declared in methods/settings.py, which imports no torch; a method
declared elsewhere (a plug-in, the example of docs/architecture.md) registers its class and card at once
with `@register_method`.  The registry only stores; the run wiring (bench/app.py) checks a
method's config and builds it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Union

from bench.schema import MethodConfig, TrainConfig
from bench.search_space import EMPTY, SearchSpace

if TYPE_CHECKING:  # for the annotations only: the registry sits below the methods it stores
    from bench.methods.contract import MethodContract


@dataclass(frozen=True)
class MethodCard:
    """One registered method: `implementation` is "module:Class" (imported by `load`) or the class."""

    name: str
    implementation: Union[str, type]
    config_class: type[MethodConfig]
    label: str
    modes: tuple[str, ...]
    search_space: SearchSpace

    @property
    def class_name(self) -> str:
        """The implementing class's name, read without importing it."""
        if isinstance(self.implementation, str):
            return self.implementation.partition(":")[2]
        return self.implementation.__name__

    def load(self) -> type["MethodContract"]:
        """The method's class (its module imported on first use: torch and open_clip with it)."""
        if not isinstance(self.implementation, str):
            return self.implementation
        module, _, attribute = self.implementation.partition(":")
        importlib.import_module(module)
        cls = IMPLEMENTATIONS.get(self.name)
        if cls is None or cls.__name__ != attribute:
            raise RuntimeError(f"{self.implementation} should define class {attribute} marked "
                               f'@implements("{self.name}") (methods/registry.py)')
        return cls


METHODS: dict[str, MethodCard] = {}
#: name -> class, filled as implementations are imported (`@implements`)
IMPLEMENTATIONS: dict[str, type] = {}


def declare_method(name: str, implementation: Union[str, type], config: type[MethodConfig] = MethodConfig,
                   label: str | None = None, modes: tuple[str, ...] = ("mt",),
                   search: SearchSpace = EMPTY) -> MethodCard:
    """Register the card of method `name`: `config` the dataclass of its `method` block, `label` its
    name in tables and plots (default: `name`), `modes` its sharing modes and `search` the
    distribution of the settings worth tuning (bench/search_space.py; checked here against
    `train` and `config`)."""
    if name in METHODS:
        raise ValueError(f"method '{name}' registered twice")
    search.check({"train": TrainConfig, "method": config}, f"method '{name}'")
    card = MethodCard(name, implementation, config, label or name, tuple(modes), search)
    METHODS[name] = card
    return card


def implements(name: str) -> Callable[[type], type]:
    """Mark a class as the implementation of the declared method `name`: it gets the card's
    `method_name`, `config_class`, `label`, `modes` and `search_space`."""
    def decorate(cls: type) -> type:
        if name not in METHODS:
            raise ValueError(f"@implements('{name}'): no method card '{name}' is declared "
                             "(methods/settings.py declares them)")
        if name in IMPLEMENTATIONS and IMPLEMENTATIONS[name] is not cls:
            raise ValueError(f"method '{name}' has two implementations: {IMPLEMENTATIONS[name]} and {cls}")
        IMPLEMENTATIONS[name] = cls
        return _attach(METHODS[name], cls)
    return decorate


def register_method(name: str, config: type[MethodConfig] = MethodConfig,
                    label: str | None = None, search: SearchSpace = EMPTY) -> Callable[[type], type]:
    """Register a method class and its card in one step (a method defined outside methods/):
    its modes are the class's `modes`; the arguments are `declare_method`'s."""
    def decorate(cls: type) -> type:
        card = declare_method(name, cls, config, label, tuple(getattr(cls, "modes", ("mt",))), search)
        return _attach(card, cls)
    return decorate


def _attach(card: MethodCard, cls: type) -> type:
    cls.method_name = card.name
    cls.config_class = card.config_class
    cls.label = card.label
    cls.modes = card.modes
    cls.search_space = card.search_space
    return cls

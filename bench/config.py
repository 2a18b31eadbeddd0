"""The typed configuration: every setting, its type, its allowed values and its default.

Each config group has a dataclass here (train, runtime, model, dataset) and each method
declares its own block as a subclass of `MethodConfig` in its module, registered with
`@register_method(name, config=...)`.  The dataclasses are the only place a default lives:
the YAML files in configs/ set only what differs (a method's paper settings, a dataset's
layout), and code reads the resolved config, never `cfg.get(key, default)`.

Field types drive validation at start-up, before any data or model is loaded:
`Literal[...]` for choices, `setting(..., min=, max=, above=)` for ranges.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional


def setting(default: Any, doc: str = "", *, min: float | None = None, max: float | None = None,
            above: float | None = None) -> Any:
    """A config field: its default, a one-line doc, and an optional range (`above`: strict >)."""
    metadata = {"doc": doc, "min": min, "max": max, "above": above}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class MethodConfig:
    """Settings every method has; a method's own block subclasses this."""

    name: str = setting("", "registered method name (methods/registry.py)")
    mode: str = setting("mt", "parameter sharing: mt (one set for all tasks) | st (one per task) | "
                              "the method's own modes")
    truncate_text: bool = setting(True, "run the causal text tower only up to the last EOT (exact)")


__all__ = ["MethodConfig", "setting", "dataclass", "dataclasses", "Literal", "Optional"]

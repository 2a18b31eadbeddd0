"""`python -m bench.run --help [method=<name>] [dataset=<name>]`: help generated from the schema.

Lists the config groups a user chooses from (method, dataset, model; the internal groups
`method_schema` and `dataset_defaults` are wiring, never a choice) and every setting of the
chosen method and of the other sections: key, type, default (the chosen method's paper
settings and the dataset's defaults applied) and allowed range, with the field's help text
from bench/schema.py (`setting(...)` metadata).
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from bench.app import CONFIG_DIR, SECTIONS, compose_command_line, method_card
from bench.config_checks import bounds_in_words, describe
from bench.schema import RunConfig

#: config groups a user picks (the others in configs/ are internal wiring)
USER_GROUPS = ("method", "dataset", "model")


def _constraints(meta: dict) -> str:
    parts = [bounds_in_words(meta)] if bounds_in_words(meta) else []
    if meta.get("length") is not None:
        parts.append(f"exactly {meta['length']} values")
    if meta.get("min_length") is not None:
        parts.append(f"at least {meta['min_length']} value(s)")
    if meta.get("ascending"):
        parts.append("non-decreasing")
    return "; ".join(p for p in parts if p)


def settings_lines(schema: type, values, prefix: str, only: Sequence[str] | None = None) -> list[str]:
    """One entry per setting of `schema` (nested dataclasses expanded), defaults from `values`
    (`only`: these settings alone)."""
    hints = typing.get_type_hints(schema)
    lines = []
    for field in dataclasses.fields(schema):
        if only is not None and field.name not in only:
            continue
        kind, value = hints[field.name], values.get(field.name) if values is not None else None
        if dataclasses.is_dataclass(kind):
            lines += settings_lines(kind, value, f"{prefix}{field.name}.")
            continue
        shown = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        allowed = _constraints(field.metadata)
        lines.append(f"  {prefix}{field.name}: {describe(kind)}, default {shown!r}"
                     + (f", allowed {allowed}" if allowed else ""))
        if field.metadata.get("doc"):
            lines.append(f"      {field.metadata['doc']}")
    return lines


def help_text(overrides: Sequence[str]) -> str:
    """The help for a command line (its `method=`, `dataset=`, `model=` choices applied)."""
    cfg = compose_command_line([o for o in overrides if not o.startswith("-")])  # a bad choice: one paragraph
    method = method_card(str(cfg.method.name))
    groups = [f"  {group}: " + ", ".join(sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml")))
              for group in USER_GROUPS]
    lines = ["python -m bench.run [key=value ...]: train and evaluate one method on one dataset.", "",
             "Choose with group=option:", *groups, "",
             f"method={cfg.method.name} ({method.class_name}; modes {', '.join(method.modes)}): its settings",
             *settings_lines(method.config_class, cfg.method, "method."), ""]
    for key, schema in SECTIONS:
        lines += [f"{key} settings:", *settings_lines(schema, cfg[key], f"{key}."), ""]
    lines += ["  seed: an integer, default " + repr(cfg.seed) + ", allowed >= 0",
              *settings_lines(RunConfig, cfg, "", only=["protocol"]), "",
              "Another method's settings: python -m bench.run --help method=<name>. Hydra's own help: --hydra-help."]
    return "\n".join(lines)

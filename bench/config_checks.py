"""Checking config values against the typed schema, and building the typed objects.

`check_section(node, schema, prefix)` checks every value of a config node against its
field's type (`Literal[...]` for choices, `setting(..., min=, max=, above=)` for ranges),
converts what it may (a number given for a string), and raises one `ConfigError` paragraph
naming the key, the value and what is allowed.  `instantiate(schema, values)` then builds the
dataclass from the checked values.  Which schema a `method` block has is the run wiring's
business (bench/app.py knows the registry); nothing here imports more than the schema.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Literal, Mapping, Union

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from bench.errors import ConfigError

_NUMBER = (int, float)


def describe(kind: Any) -> str:
    """`kind` (a field's type) in words: "an integer", "one of sgd, adamw", ..."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is Union:
        parts = [describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"a list of {describe(args[0])}" if args else "a list"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(kind, str(kind))


def coerce(value: Any, kind: Any) -> tuple[bool, Any]:
    """(ok, value converted to `kind`)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return True, value
    if origin is Union:
        if value is None:
            return type(None) in args, None
        for arg in args:
            if arg is not type(None):
                ok, out = coerce(value, arg)
                if ok:
                    return True, out
        return False, value
    if origin is Literal:
        return value in args, value
    if origin is list:
        if not isinstance(value, (list, tuple, ListConfig)):
            return False, value
        items = [coerce(v, args[0]) if args else (True, v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if kind is bool:
        return isinstance(value, bool), value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind is float:
        ok = isinstance(value, _NUMBER) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if kind is str:
        if isinstance(value, str):
            return True, value
        return isinstance(value, _NUMBER) and not isinstance(value, bool), str(value)
    return isinstance(value, kind), value


def bounds_in_words(meta: Mapping) -> str:
    """The field's range in words: ">= 0 and < 1"."""
    parts = [f"{sign} {meta[key]}" for key, sign in (("above", "greater than"), ("min", ">="), ("below", "<"), ("max", "<="))
             if meta.get(key) is not None]
    return " and ".join(parts)


def _number_problem(value: Any, meta: Mapping) -> str | None:
    if not isinstance(value, _NUMBER) or isinstance(value, bool):
        return None
    fits = ((meta.get("above") is None or value > meta["above"]) and (meta.get("min") is None or value >= meta["min"])
            and (meta.get("below") is None or value < meta["below"]) and (meta.get("max") is None or value <= meta["max"]))
    return None if fits else bounds_in_words(meta)


def range_problem(value: Any, meta: Mapping) -> str | None:
    """What `value` must be to fit the field's range (None: it fits).  For a list: its length
    (`length`, `min_length`), each element's range, and the order (`ascending`)."""
    if not isinstance(value, (list, tuple)):
        return _number_problem(value, meta)
    if meta.get("length") is not None and len(value) != meta["length"]:
        return f"a list of exactly {meta['length']} values, not {len(value)}"
    if meta.get("min_length") is not None and len(value) < meta["min_length"]:
        return f"a list of at least {meta['min_length']} value(s)"
    for index, item in enumerate(value):
        if (bad := _number_problem(item, meta)) is not None:
            return f"a list whose every value is {bad} (value {index + 1} is {item!r})"
    if meta.get("ascending") and any(a > b for a, b in zip(value, value[1:])):
        return "a list in non-decreasing order (low first, then high)"
    return None


def _unknown(key: str, fields, prefix: str) -> ConfigError:
    close = difflib.get_close_matches(str(key), list(fields), n=1)
    hint = f" Did you mean {prefix}{close[0]}?" if close else ""
    where = f"`{prefix.rstrip('.')}`" if prefix else "the root"
    return ConfigError(f"Unknown setting {prefix}{key}.{hint} The settings of {where} are: "
                       f"{', '.join(fields)} (bench/schema.py lists each with its type and default).")


def unknown_setting(full_key: str, root: type, sections: Mapping[str, type]) -> ConfigError:
    """The error for a dotted key that `root` (with `sections` naming the schema of some of its
    sections, e.g. {"method": the chosen method's config}) does not have."""
    *path, key = full_key.lstrip("+~").split(".")
    schema: Any = root
    for depth, part in enumerate(path):
        hints = typing.get_type_hints(schema)
        if depth == 0 and part in sections:
            schema = sections[part]
        elif part in hints and dataclasses.is_dataclass(hints[part]):
            schema = hints[part]
        else:
            return _unknown(part, [f.name for f in dataclasses.fields(schema)],
                            "".join(p + "." for p in path[:depth]))
    return _unknown(key, [f.name for f in dataclasses.fields(schema)], "".join(p + "." for p in path))


def _dataclass_of(kind: Any) -> type | None:
    """The dataclass a field holds: `kind` itself, or X of `Optional[X]`; else None."""
    if dataclasses.is_dataclass(kind):
        return kind
    if typing.get_origin(kind) is Union:
        held = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(held) == 1 and dataclasses.is_dataclass(held[0]):
            return held[0]
    return None


def check_section(node: DictConfig, schema: type, prefix: str) -> None:
    """Check `node` against `schema` (recursively), converting values in place where allowed."""
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in list(node.keys()):
        if key not in fields:
            raise _unknown(key, fields, prefix)
    for name, spec in fields.items():
        kind = hints[name]
        if (section := _dataclass_of(kind)) is not None:
            if name not in node or node[name] is None:
                continue
            check_section(node[name], section, f"{prefix}{name}.")
            continue
        value = OmegaConf.to_container(node, resolve=True)[name] if name in node else getattr(schema(), name)
        ok, converted = coerce(value, kind)
        meta = spec.metadata
        problem = None if ok else describe(kind)
        if ok and (bad_range := range_problem(converted, meta)):
            problem = bad_range
        if problem:
            doc = f" ({meta['doc']})" if meta.get("doc") else ""
            raise ConfigError(f"{prefix}{name}={value!r} is not allowed: it must be {problem}{doc}. "
                              f"Fix it on the command line ({prefix}{name}=...) or in the YAML that sets it.")
        if name in node and converted != value:
            with open_dict(node):
                node[name] = converted


def instantiate(schema: type, values: Mapping[str, Any], sections: Mapping[str, type] | None = None) -> Any:
    """The dataclass `schema` built from checked `values` (a plain mapping, every key known),
    nested dataclasses included; `sections` overrides the schema of top-level sections (the
    `method` block is the chosen method's config class).  Values are kept as checked, so
    `dataclasses.asdict` of the result gives back `values` (the run id hashes it)."""
    hints = typing.get_type_hints(schema)
    kwargs = {}
    for field in dataclasses.fields(schema):
        if field.name not in values:
            continue
        kind = (sections or {}).get(field.name, hints[field.name])
        value = values[field.name]
        if (section := _dataclass_of(kind)) is not None and isinstance(value, Mapping):
            value = instantiate(section, value)
        kwargs[field.name] = value
    return schema(**kwargs)

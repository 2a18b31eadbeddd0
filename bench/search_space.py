"""Hyper-parameter search spaces: for each method, the distribution of the settings worth
tuning, typed and checked against the schema like every other setting.

After DomainBed's `hparams_registry` ("In Search of Lost Domain Generalization", Gulrajani &
Lopez-Paz, ICLR 2021): a method declares its space next to its config
(`register_method(..., search=SearchSpace(...))`), and trial t of method m under search seed
S draws each setting from its own generator, seeded by (S, m, t, the setting's name)
(bench.seeding.stable_seed).  So the same preset gives the same trials on any machine and in
any order, adding trials keeps the first ones, and adding a setting to a space never shifts
the draws of the others.  A drawn value is an ordinary override (`train.lr=0.00123`): the run
checks it as it checks the command line.
"""
from __future__ import annotations

import dataclasses
import math
import random
import typing
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from bench.errors import ConfigError
from bench.seeding import stable_seed
from bench.config_checks import coerce, describe, range_problem

#: significant digits a drawn number keeps, so that overrides and table labels stay readable
DIGITS = 3


def _rounded(value: float) -> float:
    return float(f"{value:.{DIGITS}g}")


@dataclass(frozen=True)
class LogUniform:
    """A number drawn log-uniformly in [low, high] (learning rates, weight decay)."""

    low: float
    high: float

    def __post_init__(self):
        if not 0 < self.low <= self.high:
            raise ConfigError(f"LogUniform({self.low}, {self.high}) is not a range: it needs 0 < low <= high.")

    def draw(self, rng: random.Random) -> float:
        return _rounded(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def bounds(self) -> tuple:
        return self.low, self.high


@dataclass(frozen=True)
class Uniform:
    """A number drawn uniformly in [low, high]."""

    low: float
    high: float

    def __post_init__(self):
        if not self.low <= self.high:
            raise ConfigError(f"Uniform({self.low}, {self.high}) is not a range: it needs low <= high.")

    def draw(self, rng: random.Random) -> float:
        return _rounded(rng.uniform(self.low, self.high))

    def bounds(self) -> tuple:
        return self.low, self.high


@dataclass(frozen=True)
class Choice:
    """One of a few values, each equally likely (prompt lengths, ranks, epochs)."""

    values: tuple

    def __post_init__(self):
        if not self.values:
            raise ConfigError("Choice() needs at least one value.")
        object.__setattr__(self, "values", tuple(self.values))

    def draw(self, rng: random.Random) -> Any:
        return self.values[rng.randrange(len(self.values))]

    def bounds(self) -> tuple:
        return self.values


Distribution = typing.Union[LogUniform, Uniform, Choice]


@dataclass(frozen=True)
class SearchSpace:
    """Settings (dotted keys: `train.lr`, `method.n_ctx`) and their distributions."""

    settings: Mapping[str, Distribution] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "settings", dict(self.settings))

    def __bool__(self) -> bool:
        return bool(self.settings)

    def check(self, sections: Mapping[str, type], owner: str) -> None:
        """Every key names a setting of `sections` ({"train": TrainConfig, "method": the
        method's config}) and every bound is a value that setting allows; else a ConfigError."""
        for key, distribution in self.settings.items():
            section, _, name = key.partition(".")
            fields = {f.name: f for f in dataclasses.fields(sections[section])} if section in sections else {}
            if name not in fields:
                known = [f"{s}.{f.name}" for s, schema in sections.items() for f in dataclasses.fields(schema)]
                raise ConfigError(f"The search space of {owner} names {key!r}, which is not a setting it can "
                                  f"tune. A search space names settings of {', '.join(sections)}: "
                                  f"{', '.join(known)}.")
            kind = typing.get_type_hints(sections[section])[name]
            for bound in distribution.bounds():
                ok, value = coerce(bound, kind)
                why = describe(kind) if not ok else range_problem(value, fields[name].metadata)
                if why:
                    raise ConfigError(f"The search space of {owner} gives {key} the bound {bound!r}, which that "
                                      f"setting does not allow: it must be {why}. Narrow the distribution.")

    def draw(self, seed: int, method: str, trial: int) -> dict[str, Any]:
        """Trial `trial`'s settings: each from its own generator, seeded by (seed, method, trial, key)."""
        return {key: distribution.draw(random.Random(stable_seed("search", seed, method, trial, key)))
                for key, distribution in sorted(self.settings.items())}


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """Drawn settings as command-line overrides (`train.lr=0.00123`)."""
    return [f"{key}={_override_value(value)}" for key, value in values.items()]


def _override_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Sequence):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    return str(value)


EMPTY = SearchSpace()

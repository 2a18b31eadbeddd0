"""The run wiring's configuration half: Hydra's configs in, checked and typed objects out.

This is the one place where the schema (bench/schema.py) meets the registries
(bench/methods, bench/datasets): it stores every schema in Hydra's ConfigStore, composes a
command line, checks the composed config *once* (`check`, before any data or model is
loaded) and returns the typed `RunConfig` whose `method` block is the chosen method's own
config class.  Everything below it (engine, methods, datasets) receives those dataclasses;
every command above it (run, sweep, report, speed, check) calls into here.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench.errors import ConfigError
from bench.methods import METHODS, MethodCard
from bench.protocols import check_protocol
from bench.schema import (DatasetConfig, MethodConfig, ModelConfig, RunConfig, RuntimeConfig, SpeedConfig,
                          TrainConfig, defaults_of)
from bench.config_checks import check_section, coerce, instantiate, unknown_setting

if TYPE_CHECKING:  # annotations only: building a method imports torch, checking a config does not
    from bench.methods.contract import MethodContract

CONFIG_DIR = str(Path(__file__).resolve().parent / "configs")
SECTIONS = (("train", TrainConfig), ("runtime", RuntimeConfig), ("model", ModelConfig),
            ("dataset", DatasetConfig))


def register_schemas() -> None:
    """Put the defaults into Hydra's ConfigStore: `schema` (the root), `speed_schema` and
    `method_schema/<name>` (each registered method's block, packaged at `method`)."""
    store = ConfigStore.instance()
    root = defaults_of(RunConfig)
    root.pop("method")
    store.store(name="schema", node=root)
    store.store(name="speed_schema", node={"speed": defaults_of(SpeedConfig)})
    for name, cls in METHODS.items():
        store.store(group="method_schema", name=name, node=defaults_of(cls.config_class), package="method")


register_schemas()
# configs/hydra/launcher/slurm.yaml: one task per GPU, and one for a CPU-only job
OmegaConf.register_new_resolver("cpb_at_least_one", lambda n: max(1, int(n)), replace=True)


# ---- composing -------------------------------------------------------------------------
def compose_config(overrides: Sequence[str], config_name: str = "config") -> DictConfig:
    """The config `python -m bench.run <overrides>` would run (Hydra's own overrides dropped)."""
    overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def check_command_line(overrides: Sequence[str], config_name: str = "config") -> RunConfig:
    """Compose and check the config of a command line before Hydra sets up its job, so a
    misspelt key or value is one paragraph and exit 2, not a traceback or a late crash."""
    return check(compose_command_line(overrides, config_name))


def compose_command_line(overrides: Sequence[str], config_name: str = "config") -> DictConfig:
    """`compose_config`, with Hydra's errors (an unknown key, a bad group choice, a parse error)
    turned into one ConfigError paragraph with the fix ("did you mean train.epochs")."""
    try:
        return compose_config(overrides, config_name)
    except (HydraException, OmegaConfBaseException) as error:
        text = " ".join(str(error).split()).split(" Config search path")[0]
        unknown = re.search(r"Could not override '([^']+)'", text)
        if unknown:
            method = chosen_method(overrides) or str(compose_config([]).method.name)
            schema = METHODS[method].config_class if method in METHODS else MethodConfig
            raise unknown_setting(unknown.group(1), RunConfig, {"method": schema}) from None
        raise ConfigError(f"The command line could not be applied: {text}.{_quoting_hint(overrides, text)} "
                          "`python -m bench.run --help` "
                          "lists the config groups and their choices; bench/schema.py lists every "
                          "setting with its type and default.") from None


def chosen_method(overrides: Sequence[str]) -> str | None:
    """The `method` config group these overrides choose, read by Hydra's own override parser as
    Hydra applies them (the last choice wins; quoting and `+method=` alike); None: the config's
    default.  Composing would say the same at 0.12 s a command line."""
    try:
        parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.lstrip("+~").startswith("hydra")])
    except HydraException:
        return None  # a line Hydra cannot parse: composing it reports why
    choices = [o.get_value_element_as_str() for o in parsed if o.key_or_group == "method" and not o.is_delete()]
    return choices[-1] if choices else None


_PARSE_ERRORS = ("missing EQUAL", "mismatched input", "no viable alternative", "LexerNoViableAlt",
                 "token recognition error", "extraneous input")


def _quoting_hint(overrides: Sequence[str], text: str) -> str:
    """A hint for the commonest parse error: a value with spaces or brackets left unquoted."""
    if not any(marker in text for marker in _PARSE_ERRORS):
        return ""
    bare = [o for o in overrides if "=" not in o and not o.startswith("-")]
    spaced = [o for o in overrides if "=" in o and any(c in o.split("=", 1)[1] for c in " ()[]{},")]
    culprit = f" ({bare[0]!r} has no key=: the rest of a value cut at a space?)" if bare else ""
    if not (bare or spaced):
        return ""
    return (f" A value with spaces or brackets must be quoted for Hydra inside the shell's quotes{culprit}: "
            "write 'dataset.root=\"/data/my folder\"' (a path) or 'key=\"text (with brackets)\"'.")


# ---- checking: once, typed objects out -------------------------------------------------------
def method_card(name: str) -> MethodCard:
    """The card of the registered method called `name` (its `config_class` is its schema)."""
    if name not in METHODS:
        raise ConfigError(f"Unknown method '{name}'. Registered methods: {', '.join(METHODS)}. "
                          "Choose one with method=<name> (configs/method/<name>.yaml).")
    return METHODS[name]


def _check_method(node: DictConfig) -> MethodCard:
    method = method_card(str(node.name))
    check_section(node, method.config_class, "method.")
    if node.mode not in method.modes:
        raise ConfigError(f"method.mode={node.mode!r} is not a mode of {node.name}: it runs in "
                          f"{', '.join(method.modes)}. Set method.mode to one of them.")
    return method


def check(cfg: DictConfig) -> RunConfig:
    """Check every section of a composed config against its schema and return it typed.

    Cheap and side-effect free (values a schema converts, such as a number given for a
    string, are converted in `cfg` too): called before any data or model is loaded."""
    readonly = OmegaConf.is_readonly(cfg)
    OmegaConf.set_readonly(cfg, False)
    try:
        for key, schema in SECTIONS:
            check_section(cfg[key], schema, f"{key}.")
        method = _check_method(cfg.method)
        ok, _ = coerce(cfg.seed, int)
        if not ok or cfg.seed < 0:
            raise ConfigError(f"seed={cfg.seed!r} is not allowed: it must be an integer >= 0. "
                              "Pass e.g. seed=1.")
        domains = cfg.dataset.domains
        check_protocol(cfg.protocol, cfg.dataset.target, cfg.dataset.task_order,
                       list(domains) if domains is not None else None, cfg.train.selection, cfg.method.name,
                       cfg.method.mode, method.modes)
        values = OmegaConf.to_container(cfg, resolve=True)
    finally:
        OmegaConf.set_readonly(cfg, readonly)
    values = {f.name: values[f.name] for f in dataclasses.fields(RunConfig)}
    typed = instantiate(RunConfig, values, {"method": method.config_class})
    if typed.protocol == "sequential" and (warmup := typed.method.warmup_on_every_task()):
        raise ConfigError(f"protocol=sequential trains the domains one at a time, but {warmup}.")
    return typed


def speed_config(cfg: DictConfig) -> SpeedConfig:
    """The `speed` block of a composed `configs/speed.yaml`, checked and typed (`speed.methods`:
    all, or a list of registered `name` or `name:mode`)."""
    check_section(cfg.speed, SpeedConfig, "speed.")
    scfg = instantiate(SpeedConfig, OmegaConf.to_container(cfg.speed, resolve=True))
    wanted = scfg.methods
    if wanted != "all":
        if not isinstance(wanted, list) or not wanted:
            raise ConfigError(f"speed.methods={wanted!r} is not allowed: it must be all or a non-empty list of "
                              "methods, e.g. speed.methods=[coop,coop:st].")
        for item in wanted:
            name, _, mode = str(item).partition(":")
            if name not in METHODS:
                raise ConfigError(f"speed.methods names an unknown method '{name}'. Registered methods: "
                                  f"{', '.join(METHODS)}. Write each as name or name:mode, e.g. "
                                  "speed.methods=[coop,coop:st].")
            if mode and mode not in METHODS[name].modes:
                raise ConfigError(f"speed.methods: '{item}' is not a mode of {name}: it runs in "
                                  f"{', '.join(METHODS[name].modes)}. Write it as {name}:<mode>.")
    return scfg


def check_speed_command_line(overrides: Sequence[str]) -> SpeedConfig:
    """`check_command_line` for `python -m bench.speed`: the run config and the speed block."""
    check_command_line(overrides, config_name="speed")
    return speed_config(compose_config(overrides, "speed"))


def _composed(node, prefix: str) -> DictConfig:
    """`node` itself: the factories' one way in is a block of a composed (or created) config."""
    if not isinstance(node, DictConfig):
        raise TypeError(f"The {prefix[:-1]} block must be an omegaconf DictConfig (a block of a composed config, "
                        f"or OmegaConf.create(...)), not {type(node).__name__}.")
    return node


def _completed(schema: type, node: DictConfig, prefix: str, check_node=None) -> DictConfig:
    node = OmegaConf.merge(defaults_of(schema), node)
    (check_node or (lambda n: check_section(n, schema, prefix)))(node)
    return node


def method_config(node: DictConfig) -> MethodConfig:
    """A method block (naming the method; settings it leaves out take the schema's defaults)
    completed, checked and typed."""
    card = method_card(str(node.name) if "name" in _composed(node, "method.") else "None")
    completed = _completed(card.config_class, node, "method.", _check_method)
    return instantiate(card.config_class, OmegaConf.to_container(completed, resolve=True))


def dataset_config(node: DictConfig) -> DatasetConfig:
    """A dataset block (possibly partial) completed with the schema's defaults, checked and typed."""
    completed = _completed(DatasetConfig, _composed(node, "dataset."), "dataset.")
    return instantiate(DatasetConfig, OmegaConf.to_container(completed, resolve=True))


def train_config(node: DictConfig) -> TrainConfig:
    """A train block (possibly partial) completed with the schema's defaults, checked and typed."""
    completed = _completed(TrainConfig, _composed(node, "train."), "train.")
    return instantiate(TrainConfig, OmegaConf.to_container(completed, resolve=True))


# ---- building from typed settings ----------------------------------------------------------
def build_method(cfg: MethodConfig, clip, tasks: Sequence, seed: int = 0) -> "MethodContract":
    """The method `cfg` names (a checked, typed block: `check` or `method_config` made it), built
    on `clip` for `tasks`."""
    if not isinstance(cfg, MethodConfig):
        raise TypeError(f"build_method takes a typed MethodConfig, not {type(cfg).__name__}: check the block "
                        "first (bench.app.method_config, or check for a whole run config).")
    return METHODS[cfg.name].load()(clip, tasks, cfg, seed=seed)

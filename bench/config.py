"""The typed configuration: every setting, its type, its allowed values and its default.

Each config group has a dataclass here (train, runtime, model, dataset, speed) and each
method declares its own block as a subclass of `MethodConfig` in its module, registered
with `@register_method(name, config=...)`.  The dataclasses are the only place a default
lives: they are stored in Hydra's ConfigStore (`register_schemas`), the YAML files in
configs/ set only what differs (a method's paper settings, a dataset's layout), and code
reads the resolved config, never a default of its own (no `get` with a fallback).

Precedence, lowest first: these defaults < the dataset's training defaults
(configs/dataset_defaults/<dataset>.yaml) < the method's paper settings
(configs/method/<method>.yaml) < the command line.

`validate(cfg)` checks every value against its field's type (`Literal[...]` for choices,
`setting(..., min=, max=, above=)` for ranges) before any data or model is loaded, and
raises a `ConfigError` paragraph naming the key, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from bench.errors import ConfigError


def setting(default: Any, doc: str = "", *, min: float | None = None, max: float | None = None,
            above: float | None = None) -> Any:
    """A config field: its default, a one-line doc, and an optional range (`above`: strict >)."""
    metadata = {"doc": doc, "min": min, "max": max, "above": above}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# ---- the groups ------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """The one training loop (bench/engine.py). Methods override what their papers prescribe."""

    epochs: int = setting(5, "training epochs; 0 evaluates the initial state", min=0)
    batch_size: int = setting(8, "images per task per step (every step holds a sub-batch of every task)", min=1)
    task_sampling: Literal["all", "round_robin"] = setting(
        "all", "all: each step a sub-batch of every task | round_robin: one task per step, in turn")
    eval_batch_size: int = setting(64, "images per evaluation batch", min=1)
    steps_per_epoch: Optional[int] = setting(None, "null: enough steps for the largest task to be seen once", min=1)
    optimizer: Literal["sgd", "adamw"] = setting("sgd", "sgd (momentum) | adamw")
    lr: float = setting(0.002, "base learning rate", above=0)
    momentum: float = setting(0.9, "SGD momentum", min=0, max=1)
    weight_decay: float = setting(5e-4, "weight decay (SGD: L2; AdamW: decoupled)", min=0)
    betas: list[float] = setting([0.9, 0.999], "AdamW betas")
    lr_min: float = setting(0.0, "learning rate at the end of the cosine", min=0)
    warmup_epochs: int = setting(1, "constant warm-up at warmup_lr for this many epochs (CoOp), then cosine", min=0)
    warmup_lr: float = setting(1e-5, "learning rate of the constant warm-up", min=0)
    schedule: Literal["cosine_dassl", "cosine_after_warmup"] = setting(
        "cosine_dassl", "cosine_dassl: the reference (Dassl) constant warm-up, then cosine over all epochs | "
        "cosine_after_warmup: timm's cosine over the epochs after the warm-up (bench/schedule.py)")
    task_loss: Literal["sum", "mean"] = setting("sum", "sum | mean over tasks of each task's mean cross-entropy")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = setting(
        "auto", "auto: bf16 autocast on CUDA, fp32 elsewhere | fp32 | bf16 | fp16")
    selection: Literal["val", "last"] = setting("val", "val: the epoch with the best validation average | last")
    augment: bool = setting(True, "random resized crop + flip (CoOp's augmentation)")
    crop_scale: list[float] = setting([0.08, 1.0], "RandomResizedCrop scale range")


@dataclass
class RuntimeConfig:
    """How a run executes, never what it computes: left out of the run id."""

    device: str = setting("auto", "auto | cpu | cuda | cuda:N")
    num_workers: Union[int, Literal["auto"]] = setting(
        "auto", "data-loader processes: auto = the usable CPU cores (at most 8) | 0 | N", min=0)
    progress: bool = setting(True, "progress bars")
    results_dir: str = setting("results/runs", "where result records go")
    checkpoint_dir: str = setting("outputs/checkpoints", "where checkpoints go")
    checkpoint_every_steps: int = setting(0, "also checkpoint inside an epoch (0: only at epoch ends)", min=0)
    resume: bool = setting(True, "resume from the run's checkpoint when one exists")
    skip_done: bool = setting(True, "a run whose record exists is not run again (prints it); "
                                    "false: train again from scratch")
    sweep: Optional[str] = setting(None, "name of the sweep this run belongs to (set by bench.sweep)")
    cache_dir: str = setting("${oc.env:CPB_CACHE,'~/.cache/clip-prompt-bench'}",
                             "image-check verdicts (by path, size and mtime) and other caches")


@dataclass
class ModelConfig:
    """The frozen CLIP every method wraps (bench/models.py)."""

    arch: str = setting("${dataset.model.arch}", "any open_clip ViT architecture, or ours in "
                        "bench/model_configs/; default: the dataset's model")
    pretrained: Optional[str] = setting("${dataset.model.pretrained}", "an open_clip tag, a local "
                                        "checkpoint path, or none; default: the dataset's model")
    cache_dir: Optional[str] = setting(None, "a Hugging Face cache holding the pretrained weights")
    quick_gelu: Optional[bool] = setting("${dataset.model.quick_gelu}", "null: from the pretrained tag "
                                         "(OpenAI weights use QuickGELU)")


@dataclass
class DatasetModelConfig:
    """A dataset's own default model (configs/model/default.yaml reads it)."""

    arch: str = setting("ViT-B-16", "CLIP ViT-B/16, the MmAP paper's model")
    pretrained: Optional[str] = setting("openai", "OpenAI's weights")
    quick_gelu: Optional[bool] = setting(None, "null: from the tag")


@dataclass
class DatasetConfig:
    """A multi-domain dataset: every domain is one task (datasets/)."""

    name: str = setting("", "the dataset's name in records and reports")
    builder: str = setting("", "registered builder (datasets/registry.py)")
    root: str = setting("", "folder holding the domain folders")
    domains: Optional[list[str]] = setting(None, "the domains (tasks), in order; null: every sub-folder")
    num_classes: Optional[int] = setting(None, "sanity check of the class count; null: none", min=1)
    val_fraction: float = setting(0.2, "validation share of each domain and class", min=0, max=1)
    test_fraction: float = setting(0.2, "test share (datasets without an official test split)", min=0, max=1)
    split_seed: int = setting(0, "seed of the stratified split", min=0)
    split_dir: Optional[str] = setting(None, "user split files {domain}_{train,val,test}.txt")
    few_shot: Optional[int] = setting(None, "keep k training images per class and domain; null: all", min=1)
    few_shot_seed: int = setting(0, "seed of the few-shot subset", min=0)
    download_hint: str = setting("", "shown in the 'not found' error")
    unreadable: Literal["error", "skip"] = setting(
        "error", "images that cannot be read: error: stop at start-up listing them | skip: leave them out, "
        "counted per split and task in the record (docs/reliability.md)")
    model: DatasetModelConfig = field(default_factory=DatasetModelConfig)


@dataclass
class MethodConfig:
    """Settings every method has; a method's own block subclasses this."""

    name: str = setting("", "registered method name (methods/registry.py)")
    mode: str = setting("mt", "parameter sharing: mt (one set for all tasks) | st (one per task) | "
                              "the method's own modes")
    truncate_text: bool = setting(True, "run the causal text tower only up to the last EOT (exact)")


@dataclass
class SpeedConfig:
    """`python -m bench.speed`: throughput and memory per method and mode."""

    variant: Literal["compare", "fast", "baseline"] = setting(
        "compare", "compare: optimised and baseline in one process | fast | baseline")
    data: Literal["synthetic", "real"] = setting("synthetic", "synthetic tensors | the dataset's loaders")
    methods: Any = setting("all", "all: every registered method and mode | a list, e.g. [coop, coop:st]")
    tasks: int = setting(4, "synthetic: tasks, each with the same class list", min=1)
    classes: int = setting(65, "synthetic: classes per task", min=1)
    batch_size: int = setting(8, "images per task per step (overrides train.batch_size)", min=1)
    warmup_steps: int = setting(2, "untimed steps first (fills the image cache where it applies)", min=0)
    steps: int = setting(3, "timed training steps", min=1)
    eval_images: int = setting(8, "synthetic: evaluation images per task", min=1)
    eval_repeats: int = setting(1, "timed evaluations, after one warm-up evaluation", min=1)
    augment: list[bool] = setting([True, False], "training rows; false only where it changes something")
    wrapper_rounds: int = setting(3, "wrapper vs open_clip timing: interleaved rounds (0: skip it)", min=0)
    loader_batches: int = setting(5, "real data: batches timed for decoding + augmentation alone", min=1)
    output: str = setting("results/speed.md", "the table; rows also accumulate in the .json beside it")


@dataclass
class RunConfig:
    """The root: `python -m bench.run` trains and evaluates one method on one dataset."""

    seed: int = setting(1, "the run's seed (initialisation, batches, augmentation)", min=0)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    method: MethodConfig = field(default_factory=MethodConfig)


# ---- Hydra -----------------------------------------------------------------------------
def defaults_of(schema: type) -> dict:
    """The schema's defaults as a plain dict (what the ConfigStore holds)."""
    return dataclasses.asdict(schema())


def register_schemas() -> None:
    """Put the defaults into Hydra's ConfigStore: `schema` (the root) and
    `method_schema/<name>` (each registered method's block, packaged at `method`)."""
    from hydra.core.config_store import ConfigStore

    from methods import METHODS

    store = ConfigStore.instance()
    root = defaults_of(RunConfig)
    root.pop("method")
    store.store(name="schema", node=root)
    store.store(name="speed_schema", node={"speed": defaults_of(SpeedConfig)})
    for name, cls in METHODS.items():
        store.store(group="method_schema", name=name, node=defaults_of(cls.config_class), package="method")


# ---- validation ------------------------------------------------------------------------
_NUMBER = (int, float)


def _describe(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is Union:
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"a list of {_describe(args[0])}" if args else "a list"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(kind, str(kind))


def _coerce(value: Any, kind: Any) -> tuple[bool, Any]:
    """(ok, value converted to `kind`)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return True, value
    if origin is Union:
        if value is None:
            return type(None) in args, None
        for arg in args:
            if arg is not type(None):
                ok, out = _coerce(value, arg)
                if ok:
                    return True, out
        return False, value
    if origin is Literal:
        return value in args, value
    if origin is list:
        if not isinstance(value, (list, tuple, ListConfig)):
            return False, value
        items = [_coerce(v, args[0]) if args else (True, v) for v in value]
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


def _range_problem(value: Any, meta: dict) -> str | None:
    if not isinstance(value, _NUMBER) or isinstance(value, bool):
        return None
    if meta.get("above") is not None and not value > meta["above"]:
        return f"greater than {meta['above']}"
    if meta.get("min") is not None and value < meta["min"]:
        return f">= {meta['min']}" + (f" and <= {meta['max']}" if meta.get("max") is not None else "")
    if meta.get("max") is not None and value > meta["max"]:
        return f"<= {meta['max']}" + (f" and >= {meta['min']}" if meta.get("min") is not None else "")
    return None


def _unknown(key: str, fields, prefix: str) -> ConfigError:
    close = difflib.get_close_matches(str(key), list(fields), n=1)
    hint = f" Did you mean {prefix}{close[0]}?" if close else ""
    where = f"`{prefix.rstrip('.')}`" if prefix else "the root"
    return ConfigError(f"Unknown setting {prefix}{key}.{hint} The settings of {where} are: "
                       f"{', '.join(fields)} (bench/config.py lists each with its type and default).")


def unknown_setting(full_key: str, method: str | None = None) -> ConfigError:
    """The error for a dotted key that no schema has (e.g. a misspelt override)."""
    *path, key = full_key.lstrip("+~").split(".")
    schema: Any = RunConfig
    for part in path:
        hints = typing.get_type_hints(schema)
        if part == "method" and schema is RunConfig:
            schema = method_schema(method).config_class if method else MethodConfig
        elif part in hints and dataclasses.is_dataclass(hints[part]):
            schema = hints[part]
        else:
            return _unknown(part, [f.name for f in dataclasses.fields(schema)],
                            ".".join(path[:path.index(part)]) + ("." if path.index(part) else ""))
    return _unknown(key, [f.name for f in dataclasses.fields(schema)], "".join(p + "." for p in path))


def _check_section(node: DictConfig, schema: type, prefix: str) -> None:
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in list(node.keys()):
        if key not in fields:
            raise _unknown(key, fields, prefix)
    for name, spec in fields.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            if name not in node or node[name] is None:
                continue
            _check_section(node[name], kind, f"{prefix}{name}.")
            continue
        value = OmegaConf.to_container(node, resolve=True)[name] if name in node else getattr(schema(), name)
        ok, converted = _coerce(value, kind)
        meta = spec.metadata
        problem = None if ok else _describe(kind)
        if ok and (bad_range := _range_problem(converted, meta)):
            problem = bad_range
        if problem:
            doc = f" ({meta['doc']})" if meta.get("doc") else ""
            raise ConfigError(f"{prefix}{name}={value!r} is not allowed: it must be {problem}{doc}. "
                              f"Fix it on the command line ({prefix}{name}=...) or in the YAML that sets it.")
        if name in node and converted != value:
            with open_dict(node):
                node[name] = converted


def method_schema(name: str) -> type:
    """The registered method class called `name` (its `config_class` is the schema)."""
    from methods import METHODS

    if name not in METHODS:
        raise ConfigError(f"Unknown method '{name}'. Registered methods: {', '.join(METHODS)}. "
                          "Choose one with method=<name> (configs/method/<name>.yaml).")
    return METHODS[name]


def _check_method(node: DictConfig) -> None:
    method = method_schema(str(node.name))
    _check_section(node, method.config_class, "method.")
    if node.mode not in method.modes:
        raise ConfigError(f"method.mode={node.mode!r} is not a mode of {node.name}: it runs in "
                          f"{', '.join(method.modes)}. Set method.mode to one of them.")


def method_config(block: Any) -> DictConfig:
    """A method block (a dict or DictConfig naming the method, possibly partial, as tests
    and tools write them) completed with its schema's defaults and validated."""
    name = block["name"] if "name" in block else None
    node = OmegaConf.merge(defaults_of(method_schema(str(name)).config_class), block)
    _check_method(node)
    return node


def dataset_config(block: Any) -> DictConfig:
    """A dataset block (possibly partial) completed with the schema's defaults and validated."""
    node = OmegaConf.merge(defaults_of(DatasetConfig), block)
    _check_section(node, DatasetConfig, "dataset.")
    return node


def validate(cfg: DictConfig) -> DictConfig:
    """Check every section of a composed config against its schema (in place; returns it).

    Cheap and side-effect free: called before any data or model is loaded."""
    readonly = OmegaConf.is_readonly(cfg)
    OmegaConf.set_readonly(cfg, False)
    try:
        for key, schema in (("train", TrainConfig), ("runtime", RuntimeConfig), ("model", ModelConfig),
                            ("dataset", DatasetConfig)):
            _check_section(cfg[key], schema, f"{key}.")
        _check_method(cfg.method)
        if "speed" in cfg:
            _check_section(cfg.speed, SpeedConfig, "speed.")
        ok, _ = _coerce(cfg.seed, int)
        if not ok or cfg.seed < 0:
            raise ConfigError(f"seed={cfg.seed!r} is not allowed: it must be an integer >= 0. "
                              "Pass e.g. seed=1.")
    finally:
        OmegaConf.set_readonly(cfg, readonly)
    return cfg

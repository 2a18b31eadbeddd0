"""Validation against the typed schema (bench/config_checks.py, through bench/app.py): a bad value is
one paragraph naming the key, the value and what is allowed, before any data or model is loaded."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

import pytest
from bench.methods import METHODS

from bench.app import check_command_line
from bench.errors import ConfigError
from bench.schema import (
    DatasetConfig,
    ModelConfig,
    RuntimeConfig,
    TrainConfig,
)

BAD_VALUES = [
    ("train.epochs=-1", "train.epochs=-1", ">= 0"),
    ("train.batch_size=0", "train.batch_size=0", ">= 1"),
    ("train.lr=abc", "train.lr='abc'", "a number"),
    ("train.lr=0", "train.lr=0", "greater than 0"),
    ("seed=-1", "seed=-1", ">= 0"),
    ("train.momentum=1.5", "train.momentum=1.5", "<= 1"),
    ("train.augment=maybe", "train.augment='maybe'", "true or false"),
    ("runtime.num_workers=-2", "runtime.num_workers=-2", ">= 0"),
    ("dataset.val_fraction=2", "dataset.val_fraction=2", "<= 1"),
    ("method.n_ctx=0", "method.n_ctx=0", ">= 1"),
    ("method.mode=grouped", "method.mode='grouped'", "mt, st"),
    ("train.lrr=0.1", "Unknown setting train.lrr", "Did you mean train.lr"),
]


@pytest.mark.parametrize("override,names,allowed", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_values_are_one_paragraph_naming_key_value_and_what_is_allowed(override, names, allowed):
    with pytest.raises(ConfigError) as error:
        check_command_line([override])
    message = str(error.value)
    assert names in message and allowed in message and "\n" not in message


def _choice_fields():
    """Every `Literal` setting of every schema, the methods' included (from the registry)."""
    sections = [("train", TrainConfig), ("runtime", RuntimeConfig), ("model", ModelConfig),
                ("dataset", DatasetConfig)]
    out = []
    for prefix, schema in sections:
        for name, kind in typing.get_type_hints(schema).items():
            if typing.get_origin(kind) is typing.Literal:
                out.append((f"{prefix}.{name}", typing.get_args(kind), []))
    for method, cls in METHODS.items():
        def walk(schema, prefix):
            for name, kind in typing.get_type_hints(schema).items():
                if dataclasses.is_dataclass(kind):
                    walk(kind, f"{prefix}{name}.")
                elif typing.get_origin(kind) is typing.Literal:
                    out.append((f"{prefix}{name}", typing.get_args(kind), [f"method={method}"]))
        walk(cls.config_class, "method.")
    return out


@pytest.mark.parametrize("key,choices,extra", _choice_fields(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_misspelt_choice_names_every_allowed_value(key, choices, extra):
    with pytest.raises(ConfigError) as error:
        check_command_line([*extra, f"{key}={choices[0]}x"])
    message = str(error.value)
    assert f"{key}='{choices[0]}x'" in message and all(str(c) in message for c in choices)


def test_cli_exits_2_before_any_data_or_model_is_loaded(tmp_path):
    # the dataset root does not exist and the weights tag cannot be downloaded here: an error
    # about them would mean validation came too late
    proc = subprocess.run([sys.executable, "-m", "bench.run", "dataset=officehome", f"dataset.root={tmp_path}/none",
                           "train.batch_size=0"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "train.batch_size=0 is not allowed" in proc.stderr and "office" not in proc.stderr.lower()

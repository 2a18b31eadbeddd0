"""The typed schema (bench/schema.py): every default lives there and nowhere else, the YAML files
set only what differs from it, and the configs ship in the package."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from bench.methods import METHODS
from helpers import REPO
from omegaconf import OmegaConf

from bench.schema import defaults_of


def test_no_defaults_in_code():
    """Code reads the validated config; `cfg.get(key, default)` would hide a second default."""
    pattern = re.compile(r"\b\w*cfg\w*(?:\.\w+)*\.get\(|\bcfg_(?:opt|get)\(")
    offenders = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
                 for folder in ("bench", "methods", "datasets") for path in (REPO / folder).rglob("*.py")
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("method", list(METHODS))
def test_method_yamls_set_only_what_differs_from_the_schema(method):
    block = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "method" / f"{method}.yaml").method)
    defaults = defaults_of(METHODS[method].config_class)
    assert block.pop("name") == method
    same = {key: value for key, value in block.items() if defaults.get(key) == value}
    assert not same, f"configs/method/{method}.yaml repeats schema defaults {same}"


def test_configs_ship_in_the_package():
    assert (Path(__import__("bench").__file__).parent / "configs" / "config.yaml").is_file()

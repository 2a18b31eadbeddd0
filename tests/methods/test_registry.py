"""The method registry (methods/registry.py): a name or mode it does not have names the choices."""
from __future__ import annotations

import pytest
from bench.methods import METHODS
from helpers import make_tasks, method_cfg
from omegaconf import OmegaConf

from bench.app import build_method
from bench.errors import ConfigError


def test_unknown_method_and_mode_name_the_choices(tiny_clip):
    with pytest.raises(ConfigError, match="Registered methods: .*coop"):
        build_method(OmegaConf.create({"name": "nope"}), tiny_clip, make_tasks(1))
    with pytest.raises(ConfigError, match="runs in mt, st"):
        build_method(method_cfg("coop", mode="grouped"), tiny_clip, make_tasks(1))
    assert {"zeroshot", "coop", "full"} <= set(METHODS)

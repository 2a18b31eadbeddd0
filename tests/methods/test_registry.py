"""The method registry (methods/registry.py): a name or mode it does not have names the choices."""
from __future__ import annotations

import pytest
from bench.methods import METHODS
from helpers import make_tasks, method_cfg, typed

from bench.app import build_method, method_config
from bench.errors import ConfigError


def test_unknown_method_and_mode_name_the_choices(tiny_clip):
    with pytest.raises(ConfigError, match="Registered methods: .*coop"):
        typed(method_config, {"name": "nope"})
    with pytest.raises(ConfigError, match="runs in mt, st"):
        build_method(method_cfg("coop", mode="grouped"), tiny_clip, make_tasks(1))
    assert {"zeroshot", "coop", "full"} <= set(METHODS)

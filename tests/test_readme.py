"""The README's examples run as written."""
from __future__ import annotations

import importlib.util
import re

import torch
from bench.methods import METHODS
from helpers import REPO, make_tasks, typed

from bench.app import build_method, method_config


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_the_add_a_method_example_registers_builds_and_trains(tmp_path, tiny_clip):

    code = next(block for block in readme_blocks("python") if "register_method" in block)
    path = tmp_path / "mycoop.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("readme_mycoop", path)
    try:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        assert METHODS["mycoop"].label == "MyCoOp"
        assert typed(method_config, {"name": "mycoop"}).n_ctx == 4
        tasks = make_tasks(2)
        for mode, sets in (("mt", 1), ("st", 2)):
            method = build_method(typed(method_config, {"name": "mycoop", "mode": mode}), tiny_clip, tasks)
            assert sum(p.numel() for _, p in method.trainable_parameters()) == sets * 4 * tiny_clip.text_width
            logits = method(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))
            logits[torch.isfinite(logits)].sum().backward()
            assert method.ctx.grad is not None and method.ctx.grad.abs().sum() > 0
    finally:
        METHODS.pop("mycoop", None)

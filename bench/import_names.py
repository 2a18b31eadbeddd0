"""Our packages' import names, and what happens when a checkout's folder is imported by another.

The distribution installs one top-level package, `bench`; the repository's `methods/` and
`datasets/` folders are its subpackages `bench.methods` and `bench.datasets` (pyproject.toml).
Run from the repository root, though, Python also finds those folders as top-level `methods`
and `datasets`, and Hugging Face's `datasets` (in most ML environments) would be shadowed by
ours.  `hand_over` prevents that: imported under a name that is not ours, the folder loads the
module of that name from the rest of `sys.path` in its place, or says there is none.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def hand_over(name: str, init_file: str) -> None:
    """Replace `sys.modules[name]` (our folder, imported as `name`) by the module `name` found on
    `sys.path` outside the folder holding it; ModuleNotFoundError when there is none."""
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(init_file)))
    elsewhere = [p for p in sys.path if os.path.abspath(p or os.curdir) != checkout]
    spec = importlib.machinery.PathFinder.find_spec(name, elsewhere)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(
            f"No module named '{name}': the folder {checkout}/{name} is clip-prompt-bench's "
            f"bench.{name} (import it as such), not a top-level '{name}'.", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the import statement returns sys.modules[name]
    spec.loader.exec_module(module)

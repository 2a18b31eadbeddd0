"""Our own pretrained tags and the files that hold them, inside this package.

Torch-free on purpose: a run's identity hashes the shipped file (bench/identity.py) for
commands that never build a model (`bench.sweep PRESET status`, `bench.report`).
"""
from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Our own pretrained tags: tag -> (the architecture it fits, its file in bench/weights/).
OUR_CHECKPOINTS = {"cpb-toy": ("cpb-tiny", "cpb-tiny-toy.pt")}

"""The toy world: the shipped pretrained tiny CLIP is the documented file, loads the same
weights every time, and can be regenerated bit for bit (slow)."""
from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import torch
from helpers import REPO

from bench.clip import ModelError
from bench.models import build_clip, resolve_pretrained
from bench.shipped_weights import OUR_CHECKPOINTS, WEIGHTS_DIR
from bench.pretrain_toy import HELD_OUT, TOY_CHECKPOINT_SHA256
from bench.toy_pretraining import sha256

ARCH, FILENAME = OUR_CHECKPOINTS["cpb-toy"]
SHIPPED = WEIGHTS_DIR / FILENAME


def test_shipped_checkpoint_has_the_documented_hash_and_size():
    assert SHIPPED.stat().st_size <= 8_000_000
    digest = sha256(SHIPPED)
    assert digest == TOY_CHECKPOINT_SHA256
    for page in ("README.md", "docs/toy-world.md"):
        stated = re.findall(r"\b[0-9a-f]{64}\b", (REPO / page).read_text())
        assert digest in stated, f"{page} must state the shipped checkpoint's SHA-256"
    assert SHIPPED.with_suffix(".csv").is_file() and SHIPPED.with_suffix(".png").is_file()


def test_toy_default_loads_the_shipped_weights_exactly():
    state = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    first, second = build_clip(ARCH, "cpb-toy"), build_clip(ARCH, "cpb-toy")
    loaded = first.model.state_dict()
    assert set(loaded) == set(state)
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor.to(loaded[name].dtype)), name
        assert torch.equal(loaded[name], second.model.state_dict()[name]), name
    torch.manual_seed(0)
    random = build_clip(ARCH, "none").model.state_dict()
    assert not torch.equal(random["visual.conv1.weight"], loaded["visual.conv1.weight"])


def test_our_tag_checks_the_architecture():
    with pytest.raises(ModelError, match="model.arch=cpb-tiny"):
        resolve_pretrained("ViT-B-16", "cpb-toy", None)


def test_weights_are_package_data():
    """A non-editable `pip install .` ships the checkpoint and its curve."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "bench.weights" in setuptools["packages"]
    patterns = setuptools["package-data"]["bench.weights"]
    for path in (SHIPPED, SHIPPED.with_suffix(".csv"), SHIPPED.with_suffix(".png")):
        assert path.parent == REPO / "bench" / "weights"
        assert any(fnmatch.fnmatch(path.name, p) for p in patterns), path.name


@pytest.mark.slow
def test_pretraining_regenerates_the_shipped_checkpoint(tmp_path):
    """`python -m bench.pretrain_toy` gives the shipped file bit for bit (same torch version
    and CPU type; minutes of CPU)."""
    out = tmp_path / "regenerated.pt"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "bench.pretrain_toy", "--out", str(out), "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sha256(out) == TOY_CHECKPOINT_SHA256
    assert out.with_suffix(".csv").is_file() and out.with_suffix(".png").is_file()


def run_toy_default(tmp_path: Path, *overrides: str) -> dict:
    """`python -m bench.run` as a user runs it, in its own folder; returns the run's record."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "bench.run", "runtime.progress=false", *overrides],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(next((tmp_path / "results" / "runs").glob("*.json")).read_text())
    assert record["pretrained"] == "cpb-toy"
    return record


def test_zero_shot_is_far_above_chance_and_coop_learns_on_the_toy_default(tmp_path, toy_default_run):
    """The pretrained tiny CLIP knows the shapes (chance: 20 %), a style it never saw is the
    hardest domain, and the default run (CoOp) learns what zero-shot misses there.

    The bars are far outside the noise. Measured (seed 1): CoOp's default run gains 18 points
    over zero-shot on the held-out sketch test split (200 images) and 7.7 on average (800).
    The standard error of such a paired difference is sqrt(q / n), q the fraction of images
    the two classifiers disagree on: even at q = 1/4, 3.5 points on sketch, 1.8 on average."""
    zero_shot = run_toy_default(tmp_path / "zeroshot", "method=zeroshot")
    cwd, proc = toy_default_run  # the same command as run_toy_default's, CoOp by default
    assert proc.returncode == 0, proc.stderr[-3000:]
    coop = json.loads(next((cwd / "results" / "runs").glob("*.json")).read_text())
    assert coop["pretrained"] == "cpb-toy"
    assert coop["method"] == "coop" and coop["seed"] == zero_shot["seed"]
    before, after = zero_shot["accuracy"]["test"], coop["accuracy"]["test"]
    assert before["average"] >= 40
    hardest = min(zero_shot["tasks"], key=before.get)
    assert hardest in HELD_OUT, (hardest, before)
    assert after["sketch"] >= before["sketch"] + 10, (before, after)
    assert after["average"] >= before["average"] + 4, (before, after)

"""Shared fixtures: tiny random-weight CLIPs, tiny tasks, and an isolated toy cache."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import open_clip
import pytest
import torch
from omegaconf import OmegaConf

from bench.app import load_dataset, train_config
from bench.models import build_clip

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm_local.sh"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"SLURM test cluster unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"SLURM test cluster unavailable: {reason}")


def _installed() -> bool:
    return all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged"))


@pytest.fixture(scope="session")
def slurm_cluster():
    """Start the local SLURM cluster; yield {"SLURM_CONF": path}; stop it afterwards."""
    if sys.platform != "linux":
        _unavailable("needs Linux")
    if os.geteuid() != 0:
        _unavailable("needs root to run the SLURM daemons (scripts/slurm_local.sh start)")
    if not _installed():  # tests never install system packages themselves; CI does (.ci/run)
        _unavailable("slurmctld, slurmd, sbatch or munged is not installed. Install them once with "
                     "`sudo scripts/slurm_local.sh install` (Debian/Ubuntu packages; .ci/run does this)")
    proc = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        _unavailable(f"`scripts/slurm_local.sh start` failed:\n{proc.stderr[-3000:]}")
    conf = subprocess.run([str(SCRIPT), "conf"], capture_output=True, text=True, check=True).stdout.strip()
    env = {"SLURM_CONF": conf}
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield env
    finally:
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@pytest.fixture(autouse=True)
def _same_random_draws_in_any_order():
    """Unseeded torch.randn in a test draws the same tensors whether the test runs alone, in a
    subset or in the whole suite (the global generator would otherwise carry the state over)."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _isolated_caches(tmp_path_factory):
    """Keep tests off the user's caches and offline; the toy dataset is generated once per session."""
    os.environ.setdefault("CPB_CACHE", str(tmp_path_factory.mktemp("cpb-cache")))
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(2)
    yield


def make_tasks(n_tasks: int = 3, classnames=("dog", "cat", "car", "house")):
    """Task-like objects (name, classnames) as methods see them."""
    return [SimpleNamespace(name=f"task{t}", classnames=tuple(classnames)) for t in range(n_tasks)]


@pytest.fixture(scope="session")
def tiny_clip():
    torch.manual_seed(0)
    return build_clip("cpb-tiny", "none")


def register_model_config(name: str, embed_dim: int, text_width: int, vision_width: int,
                          layers: int = 2, image_size: int = 32, patch_size: int = 16,
                          text_heads: int = 2, vision_head_width: int = 64, tmp_dir: Path | None = None) -> str:
    """Register an open_clip config with the given widths (e.g. ViT-L/14's 768/1024) and few layers."""
    cfg = {"embed_dim": embed_dim,
           "vision_cfg": {"image_size": image_size, "layers": layers, "width": vision_width,
                          "head_width": vision_head_width, "patch_size": patch_size},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": text_width,
                        "heads": text_heads, "layers": layers}}
    path = Path(tmp_dir) / f"{name}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return name


@pytest.fixture(scope="session")
def vit_l14_widths_clip(tmp_path_factory):
    """A CLIP with ViT-L/14's widths (768 text, 1024 vision) but only 2 layers."""
    name = register_model_config("cpb-test-l14-widths", 768, 768, 1024, layers=2, image_size=28,
                                 patch_size=14, text_heads=12, vision_head_width=64,
                                 tmp_dir=tmp_path_factory.mktemp("cfg"))
    torch.manual_seed(0)
    return build_clip(name, "none")


@pytest.fixture(scope="session")
def vit_b16_clip():
    """ViT-B/16 with random weights (no download): for parameter counts only, never trained."""
    return build_clip("ViT-B-16", "none")


def method_cfg(name: str, **overrides):
    """A resolved method config from configs/method/<name>.yaml with overrides."""
    cfg = OmegaConf.load(REPO / "configs" / "method" / f"{name}.yaml").method
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    return cfg


def train_cfg(**overrides):
    """The schema's train defaults cut to a few CPU steps (constant lr, last-epoch selection)."""
    return train_config({**dict(epochs=1, warmup_epochs=0, steps_per_epoch=2, batch_size=4, eval_batch_size=32,
                                selection="last", lr=0.01), **overrides})


@pytest.fixture(scope="session")
def toy_dataset():
    """The generated toy dataset (4 domains x 5 shapes), built once per session."""
    return load_dataset(OmegaConf.load(REPO / "configs" / "dataset" / "toy.yaml"))
